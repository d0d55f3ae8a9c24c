// stems app: add songs (drop or file picker), follow the queue, open a finished track in the mixer
// (mixer.js, shared with stems audition) and download it. Every request that changes something
// carries the token the server put in this page's <meta name="stems-token">.
// State for tests and scripts lives in the DOM: [data-job][data-state][data-error], #library
// [data-track], #downloads [data-download-stem] (each stem), [data-download] (zip, stem-file).
import { $, initMixer, loadTrack, reportError, status, unloadTrack } from "./mixer.js";

const TOKEN = $('meta[name="stems-token"]').content;
const state = { settings: null, tracks: [], open: null, uploads: Promise.resolve(), refused: 0 };

async function post(url, body = "") {
  const response = await fetch(url, { method: "POST", headers: { "X-Stems-Token": TOKEN }, body });
  const text = (await response.text()).trim();
  if (!response.ok) throw new Error(text || `HTTP ${response.status}`);
  return text ? JSON.parse(text) : null;
}

// ---- settings: what the next uploads make ----
function fillSettings() {
  const { models, outputs, formats, choice, max_upload_mb: maxMb } = state.settings;
  const fill = (name, options) => {
    const select = $(`[data-setting=${name}]`);
    select.replaceChildren(...options.map(([value, label]) => new Option(label, value)));
    select.value = choice[name];
  };
  fill("model", models.map((m) => [m, m]));
  fill("outputs", outputs.map((o) => [o.name, o.label]));
  fill("format", formats.map((f) => [f, f]));
  const size = maxMb >= 1024 ? `${+(maxMb / 1024).toFixed(1)}\u00a0GB` : `${maxMb}\u00a0MB`;
  $("#limits").textContent = `mp3, wav, flac, m4a, .stem.mp4… up to ${size}`;
  showFormat();
}

function showFormat() {
  // the DJ stem file is always a .stem.mp4: no format to choose
  const outputs = state.settings.outputs.find((o) => o.name === $("[data-setting=outputs]").value);
  $("[data-setting=format]").disabled = outputs.format === "stem.mp4";
}

async function saveSettings(event) {
  if (event.target.dataset.setting === "outputs") {  // the preset's format, which the user may then change
    const outputs = state.settings.outputs.find((o) => o.name === event.target.value);
    if (outputs.format !== "stem.mp4") $("[data-setting=format]").value = outputs.format;
  }
  showFormat();
  const choice = Object.fromEntries(["model", "outputs", "format"].map((k) => [k, $(`[data-setting=${k}]`).value]));
  try {
    state.settings = await post("/api/settings", JSON.stringify(choice));
  } catch (error) {
    reportError(`cannot change the settings: ${error.message}`);
  }
}

// ---- adding songs: one upload at a time, in the order given, each the raw body of one request ----
function addFiles(files) {
  for (const file of files) {
    const row = jobRow(null, file.name);  // a [data-job] once the server has it, or refused it
    $(".job-state", row).textContent = "waiting to send";
    $("#queue").append(row);
    state.uploads = state.uploads.then(() => upload(file, row));
  }
}

function upload(file, row) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();  // unlike fetch, it reports how much of the body is sent
    xhr.open("POST", "/api/upload");
    xhr.setRequestHeader("X-Stems-Token", TOKEN);
    xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name));
    xhr.upload.onprogress = (event) => {
      $("progress", row).value = event.lengthComputable ? event.loaded / event.total : 0;
      $(".job-state", row).textContent = `sending ${Math.round(100 * $("progress", row).value)}%`;
    };
    const refused = (line) => {
      Object.assign(row.dataset, { job: `refused-${++state.refused}`, state: "failed", error: line });
      $(".job-state", row).textContent = "not added";
      $(".job-error", row).textContent = line;
      resolve();
    };
    xhr.onload = () => {
      if (xhr.status !== 201) return refused(xhr.responseText.trim() || `HTTP ${xhr.status}`);
      const job = JSON.parse(xhr.responseText);
      row.remove();
      if (!$(`[data-job="${job.id}"]`)) showJob(job);  // unless the queue's poll was quicker (and newer)
      resolve();
    };
    xhr.onerror = () => refused(`${file.name}: cannot reach the stems app server`);
    xhr.send(file);
  });
}

// ---- the queue: the server's jobs, followed by long polling ----
function jobRow(id, name) {
  const row = document.createElement("li");
  if (id !== null) row.dataset.job = id;
  row.innerHTML = `<div class="job-head"><span class="job-name"></span><span class="job-state">waiting</span>
    <button class="listen" hidden>Listen</button><button class="cancel" title="Cancel">Cancel</button></div>
    <progress max="1" value="0"></progress><div class="job-meta"></div><div class="job-error"></div>`;
  $(".job-name", row).textContent = name;
  $(".job-name", row).title = name;
  $(".cancel", row).hidden = true;
  return row;
}

const STATE_TEXT = { queued: "queued", running: "", done: "done", failed: "failed", cancelled: "cancelled" };

function showJob(job) {
  let row = $(`[data-job="${job.id}"]`);
  if (!row) {
    row = jobRow(job.id, job.name);
    $(".cancel", row).addEventListener("click", () => post(`/api/jobs/${job.id}/cancel`).catch((e) => reportError(e.message)));
    $(".listen", row).addEventListener("click", () => openTrack(row.dataset.track));
    $("#queue").append(row);
  }
  const was = row.dataset.state;
  row.dataset.state = job.state;
  if (job.error) row.dataset.error = job.error;
  if (job.track) row.dataset.track = job.track;
  $("progress", row).value = job.progress;
  $(".job-state", row).textContent = job.state === "running" ? `${Math.round(100 * job.progress)}%` : STATE_TEXT[job.state];
  $(".job-meta", row).textContent = [job.model, outputsLabel(job.outputs), job.outputs === "dj" ? "stem.mp4" : job.format,
    job.state === "done" ? `${job.seconds.toFixed(1)} s` : ""].filter(Boolean).join(" · ");
  $(".job-error", row).textContent = job.error || "";
  $(".cancel", row).hidden = !["queued", "running"].includes(job.state);
  $(".listen", row).hidden = job.state !== "done";
  if (job.state === "done" && was !== "done") finished(job);
}

function outputsLabel(name) {
  return state.settings?.outputs.find((o) => o.name === name)?.label.toLowerCase() || name;
}

async function finished(job) {
  await refreshLibrary();
  if (!state.open) openTrack(job.track);  // the first track of the session opens by itself
}

async function followJobs() {
  let version = -1;
  for (;;) {
    try {
      const response = await fetch(`/api/jobs?since=${version}`);
      const answer = await response.json();
      version = answer.version;
      answer.jobs.forEach(showJob);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 2000));  // the server stopped or restarts
    }
  }
}

// ---- the library: tracks in the output folder, opened in the mixer without reloading ----
async function refreshLibrary() {
  try {
    state.tracks = (await (await fetch("/api/tracks")).json()).tracks;
  } catch (error) {
    reportError(`cannot reach the stems app server: ${error.message}`);
    return;
  }
  $("#library").replaceChildren(...state.tracks.map((track) => {
    const item = document.createElement("li");
    item.dataset.track = track.key;
    item.classList.toggle("current", track.key === state.open);
    item.innerHTML = `<button class="open"></button><button class="delete" title="Delete its stem files">✕</button>`;
    $(".open", item).textContent = track.name;
    $(".open", item).title = `${track.name}: ${track.stems.map((s) => s.name).join(", ")}`;
    $(".open", item).addEventListener("click", () => openTrack(track.key));
    $(".delete", item).addEventListener("click", () => deleteTrack(track));
    return item;
  }));
}

function openTrack(key) {
  const track = state.tracks.find((t) => t.key === key);
  if (!track) return;
  state.open = key;
  for (const item of document.querySelectorAll("#library li")) item.classList.toggle("current", item.dataset.track === key);
  showDownloads(track);
  loadTrack(track);
}

function showDownloads(track) {
  const bar = $("#downloads");
  const link = (href, text, filename) => Object.assign(document.createElement("a"), { href, textContent: text, download: filename });
  const stems = track.stems.map((stem) => {
    const a = link(stem.url, stem.name.replace(/_/g, " "), `${track.name} - ${decodeURIComponent(stem.url.split("/").pop())}`);
    a.dataset.downloadStem = stem.name;
    a.className = "stem";
    a.style.setProperty("--colour", stem.colour);
    return a;
  });
  const zip = link(track.zip, "all stems (zip)", "");
  zip.dataset.download = "zip";
  const extra = [zip];
  if (track.stem_file) {
    const ni = link(track.stem_file, "stem file (Traktor, Mixxx)", "");
    ni.dataset.download = "stem-file";
    ni.title = "Native Instruments Stem file: the mix and the four stems";
    extra.push(ni);
  }
  bar.replaceChildren(Object.assign(document.createElement("span"), { textContent: "Download" }), ...stems, ...extra);
  bar.hidden = false;
}

async function deleteTrack(track) {
  if (!confirm(`Delete "${track.name}" and its stem files?`)) return;
  try {
    await post(`/api/tracks/${encodeURIComponent(track.key)}/delete`);
  } catch (error) {
    reportError(`cannot delete ${track.name}: ${error.message}`);
  }
  if (state.open === track.key) {
    state.open = null;
    $("#downloads").hidden = true;
    unloadTrack();
  }
  await refreshLibrary();
}

// ---- wiring ----
function onDrag(event) {
  if (![...event.dataTransfer.types].includes("Files")) return;
  event.preventDefault();  // without it the browser opens the dropped file instead
  document.body.classList.toggle("dragging", event.type === "dragover");
  if (event.type === "drop") addFiles(event.dataTransfer.files);
}

async function init() {
  initMixer("stems");
  for (const type of ["dragover", "dragleave", "drop"]) document.addEventListener(type, onDrag);
  const input = $("[data-upload]");
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  document.querySelectorAll("[data-setting]").forEach((select) => select.addEventListener("change", saveSettings));
  try {
    state.settings = await (await fetch("/api/settings")).json();
  } catch (error) {
    reportError(`cannot reach the stems app server: ${error.message}`);
    return;
  }
  fillSettings();
  await refreshLibrary();
  status(state.tracks.length ? `${state.tracks.length} track${state.tracks.length > 1 ? "s" : ""} in the library` : "add a song to begin");
  followJobs();
}

init();

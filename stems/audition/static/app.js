// stems audition: every stem is decoded into one AudioContext and started on its clock, so the stems
// cannot drift apart as separate <audio> elements do. Graph per stem: source -> gain -> analyser -> out.
// State for tests and scripts lives in the DOM: body[data-ready], body[data-error], .row[data-stem],
// .row[data-gain], #time[data-time]; window.audition reads the audio graph itself.
"use strict";

const MIN_DB = -60;           // the fader's bottom is silence
const START_AHEAD_S = 0.05;   // schedule every source this far ahead so they all start on one sample
const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  ctx: null, tracks: [], sdrLabel: null, track: -1, stems: [], duration: 0,
  playing: false, startedAt: 0, offset: 0, loadId: 0, dragging: false,
};

function clock(seconds) {
  const m = Math.floor(seconds / 60), s = seconds - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

function status(text) { $("#status").textContent = text; }

function reportError(line) {
  const box = $("#error");
  box.hidden = false;
  box.textContent = box.textContent ? `${box.textContent}\n${line}` : line;
  document.body.dataset.error = box.textContent;
}

// ---- levels: mute and solo decide which stems sound, the fader how loud ----
function effectiveGain(stem) {
  const anySolo = state.stems.some((s) => s.solo);
  const audible = anySolo ? stem.solo : !stem.muted;
  return audible && stem.db > MIN_DB ? 10 ** (stem.db / 20) : 0;
}

function applyGains() {
  for (const stem of state.stems) {
    const gain = effectiveGain(stem);
    if (stem.gain) stem.gain.gain.setTargetAtTime(gain, state.ctx.currentTime, 0.005);  // short ramp: no click
    stem.row.dataset.gain = String(gain);
    stem.row.classList.toggle("silent", gain === 0);
    $(".mute", stem.row).setAttribute("aria-pressed", String(stem.muted));
    $(".solo", stem.row).setAttribute("aria-pressed", String(stem.solo));
    $(".db", stem.row).textContent = stem.db > MIN_DB ? `${stem.db > 0 ? "+" : ""}${stem.db.toFixed(1)} dB` : "−∞ dB";
  }
}

function toggleSolo(index) {
  // `index` counts the track's rows, including any whose file did not decode
  const name = state.tracks[state.track]?.stems[index]?.name;
  const stem = state.stems.find((s) => s.name === name);
  if (stem) { stem.solo = !stem.solo; applyGains(); }
}

// ---- transport: one clock for every stem ----
function position() {
  if (!state.playing) return state.offset;
  return Math.min(Math.max(state.ctx.currentTime - state.startedAt, 0), state.duration);
}

function play() {
  if (state.playing || !state.duration) return;
  state.ctx.resume();
  if (state.offset >= state.duration) state.offset = 0;
  const when = state.ctx.currentTime + START_AHEAD_S;
  for (const stem of state.stems) {
    const source = state.ctx.createBufferSource();
    source.buffer = stem.buffer;
    source.connect(stem.gain);
    source.start(when, Math.min(state.offset, stem.buffer.duration));
    stem.source = source;
  }
  state.startedAt = when - state.offset;
  state.playing = true;
  document.body.classList.add("playing");
}

function pause() {
  if (!state.playing) return;
  state.offset = position();
  for (const stem of state.stems) { stem.source.stop(); stem.source.disconnect(); stem.source = null; }
  state.playing = false;
  document.body.classList.remove("playing");
}

function seek(seconds) {
  const wasPlaying = state.playing;
  pause();
  state.offset = Math.min(Math.max(seconds, 0), state.duration);
  if (wasPlaying) play();
}

// ---- drawing: waveform overviews, playhead and meters, once per frame ----
function peaks(buffer, columns) {
  // min and max of the channels' mean per pixel column
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  const step = buffer.length / columns, out = new Float32Array(2 * columns);
  for (let x = 0; x < columns; x++) {
    let lo = 0, hi = 0;
    const end = Math.min(buffer.length, Math.floor((x + 1) * step));
    for (let i = Math.floor(x * step); i < end; i++) {
      let v = 0;
      for (const data of channels) v += data[i];
      v /= channels.length;
      if (v < lo) lo = v; else if (v > hi) hi = v;
    }
    out[2 * x] = lo; out[2 * x + 1] = hi;
  }
  return out;
}

function renderWaves() {
  // overviews go to offscreen canvases once per size (frames only copy them), all on one scale:
  // the loudest stem fills its row, the others keep their level relative to it
  const ratio = window.devicePixelRatio || 1;
  const sized = state.stems.map((stem) => {
    const canvas = $(".wave", stem.row);
    canvas.width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    canvas.height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    // a shorter stem spans only its share of the width, so every row shares one time axis
    const spanned = Math.max(1, Math.round(canvas.width * stem.buffer.duration / state.duration));
    return { stem, canvas, spanned, lanes: peaks(stem.buffer, spanned) };
  });
  const loudest = Math.max(1e-6, ...sized.map(({ lanes }) => Math.max(...lanes.map(Math.abs))));
  for (const { stem, canvas, spanned, lanes } of sized) {
    const image = new OffscreenCanvas(canvas.width, canvas.height), g = image.getContext("2d");
    const mid = canvas.height / 2, scale = mid * 0.94 / loudest;
    g.fillStyle = stem.colour;
    g.fillRect(0, Math.floor(mid), spanned, 1);
    for (let x = 0; x < spanned; x++) {
      const lo = lanes[2 * x], hi = lanes[2 * x + 1];
      g.fillRect(x, mid - hi * scale, 1, Math.max(1, (hi - lo) * scale));
    }
    stem.image = image;
  }
}

function drawFrame() {
  const now = position();
  if (state.playing && now >= state.duration) { pause(); state.offset = state.duration; }
  const time = $("#time");
  time.dataset.time = now.toFixed(3);
  time.firstChild.textContent = `${clock(now)} `;
  if (!state.dragging) $("#seek").value = String(now);  // the thumb follows the clock unless held
  for (const stem of state.stems) {
    if (!stem.image) continue;
    const canvas = $(".wave", stem.row), g = canvas.getContext("2d");
    const x = Math.round(canvas.width * (state.duration ? now / state.duration : 0));
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.globalAlpha = 1; g.drawImage(stem.image, 0, 0);
    g.fillStyle = "rgba(17, 19, 24, 0.55)"; g.fillRect(x, 0, canvas.width - x, canvas.height);  // not yet played
    g.fillStyle = "#ffffff"; g.fillRect(x, 0, Math.max(1, window.devicePixelRatio || 1), canvas.height);
    stem.analyser.getFloatTimeDomainData(stem.samples);
    let peak = 0;
    for (const v of stem.samples) peak = Math.max(peak, Math.abs(v));
    stem.level = Math.max(peak, stem.level * 0.9);  // fall back slowly, as meters do
    const db = 20 * Math.log10(stem.level + 1e-9);
    $(".meter-fill", stem.row).style.height = `${Math.max(0, Math.min(1, (db - MIN_DB) / -MIN_DB)) * 100}%`;
  }
  requestAnimationFrame(drawFrame);
}

// ---- loading a track: rows first (so errors can name them), then decode every stem ----
function buildRow(stem, index) {
  const row = $("#row-template").content.firstElementChild.cloneNode(true);
  row.dataset.stem = stem.name;
  row.style.setProperty("--colour", stem.colour);
  $(".name", row).textContent = stem.name.replace(/_/g, " ");
  $(".solo", row).title = `Solo (${index + 1})`;
  if (stem.sdr !== null && stem.sdr !== undefined) {
    $(".sdr", row).textContent = `SDR ${stem.sdr.toFixed(1)} dB`;
    $(".sdr", row).title = state.sdrLabel || "";
  }
  const entry = { ...stem, row, db: 0, muted: false, solo: false, level: 0, buffer: null, source: null, image: null };
  $(".mute", row).addEventListener("click", () => { entry.muted = !entry.muted; applyGains(); });
  $(".solo", row).addEventListener("click", () => toggleSolo(index));
  const fader = $(".fader", row);
  fader.addEventListener("input", () => { entry.db = Number(fader.value); applyGains(); });
  fader.addEventListener("dblclick", () => { fader.value = "0"; entry.db = 0; applyGains(); });
  $(".wave", row).addEventListener("click", (event) => {
    const box = event.currentTarget.getBoundingClientRect();
    seek(state.duration * (event.clientX - box.left) / box.width);
  });
  $("#mixer").append(row);
  return entry;
}

async function decode(stem) {
  const response = await fetch(stem.url);
  if (!response.ok) throw new Error(`HTTP ${response.status} ${(await response.text()).trim()}`);
  return state.ctx.decodeAudioData(await response.arrayBuffer());
}

async function loadTrack(index) {
  pause();
  const loadId = ++state.loadId, track = state.tracks[index];
  Object.assign(state, { track: index, stems: [], duration: 0, offset: 0 });
  document.body.dataset.ready = "false";
  delete document.body.dataset.error;
  $("#error").hidden = true; $("#error").textContent = "";
  $("#mixer").replaceChildren();
  $("#track-name").textContent = state.tracks.length > 1 ? "" : track.name;
  document.title = `${track.name} · stems audition`;
  for (const control of ["#play", "#seek", "#download"]) $(control).disabled = true;
  state.stems = track.stems.map(buildRow);
  applyGains();
  status(`decoding ${state.stems.length} stems…`);
  const results = await Promise.allSettled(state.stems.map(decode));
  if (loadId !== state.loadId) return;  // another track was chosen meanwhile
  results.forEach((result, i) => {
    const stem = state.stems[i];
    if (result.status === "fulfilled") { stem.buffer = result.value; return; }
    stem.row.classList.add("failed");
    reportError(`cannot decode ${decodeURIComponent(stem.url.split("/").pop())} (${stem.name} of ${track.name}): ${result.reason.message || result.reason}`);
  });
  state.stems = state.stems.filter((stem) => stem.buffer);
  if (!state.stems.length) { status("no stem could be decoded"); return; }
  for (const stem of state.stems) {
    stem.gain = state.ctx.createGain();
    stem.analyser = state.ctx.createAnalyser();
    stem.analyser.fftSize = 1024;
    stem.samples = new Float32Array(stem.analyser.fftSize);
    stem.gain.connect(stem.analyser).connect(state.ctx.destination);
  }
  state.duration = Math.max(...state.stems.map((stem) => stem.buffer.duration));
  $("#seek").max = String(state.duration);
  $("#time .dim").textContent = `/ ${clock(state.duration)}`;
  renderWaves();
  applyGains();
  for (const control of ["#play", "#seek", "#download"]) $(control).disabled = false;
  status(`${state.stems.length} stems · ${state.stems[0].buffer.sampleRate / 1000} kHz`);
  if (!document.body.dataset.error) document.body.dataset.ready = "true";
}

// ---- "download this mix": the same gains, rendered offline, written as a 16-bit wav ----
function wavBlob(buffer) {
  const channels = buffer.numberOfChannels, frames = buffer.length, bytes = frames * channels * 2;
  const view = new DataView(new ArrayBuffer(44 + bytes));
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + bytes, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, channels, true);
  view.setUint32(24, buffer.sampleRate, true); view.setUint32(28, buffer.sampleRate * channels * 2, true);
  view.setUint16(32, channels * 2, true); view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, bytes, true);
  const data = Array.from({ length: channels }, (_, c) => buffer.getChannelData(c));
  let clipped = 0;
  for (let i = 0, offset = 44; i < frames; i++) {
    for (let c = 0; c < channels; c++, offset += 2) {
      const v = data[c][i];
      if (v > 1 || v < -1) clipped++;
      view.setInt16(offset, Math.max(-32768, Math.min(32767, Math.round(v * 32767))), true);
    }
  }
  return { blob: new Blob([view], { type: "audio/wav" }), clipped };
}

async function downloadMix() {
  const rate = state.stems[0].buffer.sampleRate;
  const offline = new OfflineAudioContext(2, Math.ceil(state.duration * rate), rate);
  for (const stem of state.stems) {
    const source = offline.createBufferSource(), gain = offline.createGain();
    source.buffer = stem.buffer;
    gain.gain.value = effectiveGain(stem);
    source.connect(gain).connect(offline.destination);
    source.start(0);
  }
  status("rendering the mix…");
  const { blob, clipped } = wavBlob(await offline.startRendering());
  const link = Object.assign(document.createElement("a"), {
    href: URL.createObjectURL(blob), download: `${state.tracks[state.track].name} (mix).wav`,
  });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  status(clipped ? `mix written: ${clipped} samples clipped (lower a fader)` : "mix written");
}

// ---- wiring ----
function onKey(event) {
  if (event.target.tagName === "SELECT" || event.metaKey || event.ctrlKey || event.altKey) return;
  if (event.key === " ") {
    event.preventDefault();
    if (document.activeElement instanceof HTMLButtonElement) document.activeElement.blur();  // no second toggle on keyup
    state.playing ? pause() : play();
  } else if (/^[1-9]$/.test(event.key)) {
    toggleSolo(Number(event.key) - 1);
  } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && event.target.type !== "range") {
    event.preventDefault();
    seek(position() + (event.key === "ArrowLeft" ? -5 : 5));
  }
}

async function init() {
  state.ctx = new AudioContext({ latencyHint: "interactive" });
  window.audition = {  // for tests and scripts: what the audio graph really does
    position, play, pause, seek,
    playing: () => state.playing,
    contextTime: () => state.ctx.currentTime,
    gain: (name) => state.stems.find((s) => s.name === name)?.gain?.gain.value,
  };
  $("#play").addEventListener("click", () => (state.playing ? pause() : play()));
  $("#seek").addEventListener("input", (event) => seek(Number(event.target.value)));
  $("#seek").addEventListener("pointerdown", () => { state.dragging = true; });
  window.addEventListener("pointerup", () => { state.dragging = false; });
  $("#download").addEventListener("click", () => downloadMix().catch((error) => reportError(`cannot render the mix: ${error.message}`)));
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => state.duration && renderWaves());
  requestAnimationFrame(drawFrame);
  try {
    const response = await fetch("/api/tracks");
    ({ tracks: state.tracks, sdr_label: state.sdrLabel } = await response.json());
  } catch (error) {
    reportError(`cannot reach the stems audition server: ${error.message}`);
    return;
  }
  $("#sdr-label").textContent = state.sdrLabel || "";
  const picker = $("#track");
  if (state.tracks.length > 1) {
    picker.hidden = false;
    state.tracks.forEach((track, i) => picker.append(new Option(track.name, String(i))));
    picker.addEventListener("change", () => { location.hash = picker.value; loadTrack(Number(picker.value)); });
  }
  const fromHash = Number(location.hash.slice(1));
  const first = Number.isInteger(fromHash) && fromHash >= 0 && fromHash < state.tracks.length ? fromHash : 0;
  picker.value = String(first);
  loadTrack(first);
}

init();

// The mixer of `stems audition` and `stems app`: every stem is decoded into one AudioContext and
// started on its clock, so the stems cannot drift apart as separate <audio> elements do. Graph per
// stem: source -> gain -> analyser -> out. `initMixer` fills the page's #player; `loadTrack` shows a
// track ({name, stems: [{name, url, colour, sdr}]}). State for tests and scripts lives in the DOM:
// body[data-ready], body[data-error], .row[data-stem], .row[data-gain], #time[data-time];
// window.audition reads the audio graph itself.

const MIN_DB = -60;           // the fader's bottom is silence
const START_AHEAD_S = 0.05;   // schedule every source this far ahead so they all start on one sample
export const $ = (selector, root = document) => root.querySelector(selector);

const PLAYER = `
  <section id="transport" aria-label="Transport">
    <button id="play" class="round" aria-label="Play (space)" title="Play / pause (space)" disabled>
      <svg viewBox="0 0 24 24" aria-hidden="true"><path class="icon-play" d="M8 5v14l11-7z"/><path class="icon-pause" d="M7 5h4v14H7zm6 0h4v14h-4z"/></svg>
    </button>
    <span id="time" data-time="0">0:00.0 <span class="dim">/ 0:00.0</span></span>
    <input id="seek" type="range" min="0" max="1" step="any" value="0" aria-label="Position" disabled>
    <button id="download" title="Render the current faders, mutes and solos to a wav" disabled>Download this mix</button>
  </section>
  <div id="error" role="alert" hidden></div>
  <section id="mixer" aria-label="Mixer"></section>
  <footer>
    <span><kbd>space</kbd> play / pause</span>
    <span><kbd>1</kbd>–<kbd>9</kbd> solo a stem</span>
    <span><kbd>←</kbd> <kbd>→</kbd> seek 5 s</span>
    <span>double-click a fader: 0 dB</span>
    <span id="sdr-label"></span>
  </footer>`;

const ROW = `
  <div class="strip">
    <div class="title"><span class="swatch"></span><span class="name"></span><span class="sdr"></span></div>
    <div class="controls">
      <button class="mute" aria-pressed="false" title="Mute">M</button>
      <button class="solo" aria-pressed="false">S</button>
      <input class="fader" type="range" min="-60" max="6" step="0.5" value="0" aria-label="Level">
      <span class="db">0.0 dB</span>
    </div>
  </div>
  <div class="meter"><div class="meter-fill"></div></div>
  <canvas class="wave"></canvas>`;

const state = {
  ctx: null, title: "", track: null, sdrLabel: null, stems: [], duration: 0,
  playing: false, startedAt: 0, offset: 0, loadId: 0, dragging: false,
};

function clock(seconds) {
  const m = Math.floor(seconds / 60), s = seconds - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

export function status(text) { $("#status").textContent = text; }

export function reportError(line) {
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
  const name = state.track?.stems[index]?.name;
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
  const row = Object.assign(document.createElement("div"), { className: "row", innerHTML: ROW });
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

// back to no track: silence, no rows, the controls off; returns the new load's id
export function unloadTrack() {
  pause();
  Object.assign(state, { track: null, stems: [], duration: 0, offset: 0 });
  document.body.dataset.ready = "false";
  delete document.body.dataset.error;
  $("#error").hidden = true; $("#error").textContent = "";
  $("#mixer").replaceChildren();
  $("#track-name").textContent = "";
  document.title = state.title;
  for (const control of ["#play", "#seek", "#download"]) $(control).disabled = true;
  return ++state.loadId;
}

// `label` says what the SDR beside each stem is (none: no SDR shown); `showName` puts the track's
// name in the header (a page with a track list shows it there instead)
export async function loadTrack(track, { label = null, showName = true } = {}) {
  const loadId = unloadTrack();
  Object.assign(state, { track, sdrLabel: label });
  $("#sdr-label").textContent = label || "";
  $("#track-name").textContent = showName ? track.name : "";
  document.title = `${track.name} · ${state.title}`;
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
    href: URL.createObjectURL(blob), download: `${state.track.name} (mix).wav`,
  });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  status(clipped ? `mix written: ${clipped} samples clipped (lower a fader)` : "mix written");
}

// ---- wiring ----
function onKey(event) {
  if (["SELECT", "INPUT"].includes(event.target.tagName) && event.target.type !== "range") return;
  if (event.metaKey || event.ctrlKey || event.altKey) return;
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

// `title` ends the document's title ("stems audition"); wires the transport, keys and drawing
export function initMixer(title) {
  state.title = title;
  $("#player").innerHTML = PLAYER;
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
}

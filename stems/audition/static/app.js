// stems audition: the mixer (mixer.js) over the tracks the server found; a track list when there
// are several (#track, and the URL's #<index> to open one directly).
import { $, initMixer, loadTrack, reportError } from "./mixer.js";

async function init() {
  initMixer("stems audition");
  let tracks, label;
  try {
    const response = await fetch("/api/tracks");
    ({ tracks, sdr_label: label } = await response.json());
  } catch (error) {
    reportError(`cannot reach the stems audition server: ${error.message}`);
    return;
  }
  const picker = $("#track"), several = tracks.length > 1;
  const open = (index) => loadTrack(tracks[index], { label, showName: !several });
  if (several) {
    picker.hidden = false;
    tracks.forEach((track, i) => picker.append(new Option(track.name, String(i))));
    picker.addEventListener("change", () => { location.hash = picker.value; open(Number(picker.value)); });
  }
  const fromHash = Number(location.hash.slice(1));
  const first = Number.isInteger(fromHash) && fromHash >= 0 && fromHash < tracks.length ? fromHash : 0;
  picker.value = String(first);
  open(first);
}

init();

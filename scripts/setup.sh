#!/usr/bin/env bash
# Installs everything stems does into ./.venv (idempotent): ffmpeg (apt-get, if missing); chromium,
# fluidsynth, a small General MIDI soundfont, libopenmpt and shellcheck too when $1 names "test"; Debian's music packages
# that `stems dataset render` renders when $1 names "data"; then the package in editable mode with
# the training extras (torch, evaluation, plots, MIDI) and those named in $1 (e.g. "test"; "data"
# is no Python extra). An inference-only install is `pip install .` (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
    echo "installing ffmpeg (apt-get)" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi
# the browser test (tests/test_audition_browser.py) drives the system's Chromium: nothing is downloaded
if [[ "${1:-}" == *test* ]] && ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (apt-get)" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
apt_install() {  # the Debian packages named that are not installed yet
    local missing=()
    for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]} (apt-get)" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
# the render tests play a MIDI file (tests/test_render.py) through fluidsynth and a tracker module
# (tests/test_render_modules.py) through libopenmpt, both written by the tests; tests/test_scripts.py
# checks the shell scripts with shellcheck
[[ "${1:-}" == *test* ]] && apt_install fluidsynth timgm6mb-soundfont libopenmpt0 shellcheck
# what `stems dataset render` renders: MIDI songs and the soundfonts to play them, LMMS and its demo projects,
# libopenmpt and the games whose music is tracker modules
[[ "${1:-}" == *data* ]] && apt_install fluidsynth freedoom openttd-openmsx fluid-soundfont-gm musescore-general-soundfont \
    lmms lmms-common zynaddsubfx-data libopenmpt0 pingus-data tecnoballz-data njam-data
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extras="train"
words="${1:-}"
for word in ${words//,/ }; do
    if [ "$word" != data ]; then extras+=",$word"; fi
done
target=".[${extras}]"
stamp=".venv/.stems-installed-${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e "$target"
    touch "$stamp"
fi

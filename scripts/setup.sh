#!/usr/bin/env bash
# Installs everything stems does into ./.venv (idempotent): ffmpeg (apt-get, if missing), chromium
# too when $1 names "test", then the package in editable mode with the training extras (torch,
# evaluation, plots) and those named in $1 (e.g. "test"). An inference-only install is
# `pip install .` (see the README).
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
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extras="train${1:+,$1}"
target=".[${extras}]"
stamp=".venv/.stems-installed-${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e "$target"
    touch "$stamp"
fi

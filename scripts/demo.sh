#!/usr/bin/env bash
# Sets everything up, separates the real MUSDB excerpt that ships with stempeg into ./separated,
# and prints per-stem SDR against its true stems beside the mixture-as-estimate baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python scripts/demo_report.py

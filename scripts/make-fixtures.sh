#!/usr/bin/env bash
# Regenerates tests/fixtures/*.json from PyTorch (installed from PyPI into a virtual environment).
# The fixtures are committed; CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ALEXNET_VENV:-$HOME/.cache/alexnet-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy
fi
"$venv/bin/python" scripts/pytorch_reference.py graphs/tiny.ron tests/fixtures/tiny.json --batch 4
"$venv/bin/python" scripts/pytorch_reference.py graphs/alexnet.ron tests/fixtures/alexnet.json --batch 2
du -ch tests/fixtures/*.json | tail -1

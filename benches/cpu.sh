#!/usr/bin/env bash
# CPU benchmark: alexnet.ron's training step and inference batch on burn Flex (alexrt) and on
# PyTorch CPU (installed from PyPI into a virtual environment), side by side in one run, with
# ratios. Writes benches/results/cpu-<date>-<host>.md.
#   benches/cpu.sh [GRAPH] [BATCH] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
graph="${1:-graphs/alexnet.ron}"
batch="${2:-16}"
steps="${3:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/alexnet-target}"
venv="${ALEXNET_VENV:-$HOME/.cache/alexnet-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy
fi
cargo build --release --quiet -p alexc -p alexrt
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin/alexc" compile "$graph" --batch-size "$batch" -o "$work/train.bin" 2>/dev/null
"$bin/alexc" compile "$graph" --batch-size "$batch" --mode infer -o "$work/infer.bin" 2>/dev/null
echo "timing alexrt (burn Flex) ..." >&2
"$bin/alexrt" bench "$work/train.bin" --steps "$steps" --json > "$work/ours-train.json"
"$bin/alexrt" bench "$work/infer.bin" --steps "$steps" --json > "$work/ours-infer.json"
echo "timing PyTorch ..." >&2
"$venv/bin/python" benches/pytorch_cpu.py "$graph" --batch "$batch" --steps "$steps" > "$work/torch.json"
"$venv/bin/python" benches/report.py "$work" "$graph" "$batch" "$steps"

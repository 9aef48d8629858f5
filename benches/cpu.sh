#!/usr/bin/env bash
# CPU benchmark: alexnet.ron's training step and inference batch on burn Flex with our convolution
# engine (alexrt) and on PyTorch CPU, eager and torch.compile (installed from PyPI into a virtual
# environment), side by side in one run, at each batch size given, with ratios; and in bf16:
# alexrt's bf16 plan (alexc --precision bf16) beside PyTorch's torch.autocast("cpu", bfloat16),
# eager and torch.compile, and beside alexrt's own f32 step (also as the median of three
# alternated f32/bf16 pairs, which the machine's drift moves less). Writes
# benches/results/cpu-<date>-<host>.md.
#   benches/cpu.sh [GRAPH] [BATCHES] [STEPS]
# BATCHES is a space-separated list ("16 128" by default); STEPS (5 by default) is the number of
# timed steps at batch 32 and below, and 2 above it (each step there takes seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
graph="${1:-graphs/alexnet.ron}"
batches="${2:-16 128}"
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
for batch in $batches; do
  n="$steps"
  if [ "$batch" -gt 32 ]; then n=2; fi
  echo "$n" > "$work/steps-$batch"
  "$bin/alexc" compile "$graph" --batch-size "$batch" -o "$work/train.bin" 2>/dev/null
  "$bin/alexc" compile "$graph" --batch-size "$batch" --mode infer -o "$work/infer.bin" 2>/dev/null
  "$bin/alexc" compile "$graph" --batch-size "$batch" --precision bf16 -o "$work/train-bf16.bin" 2>/dev/null
  "$bin/alexc" compile "$graph" --batch-size "$batch" --mode infer --precision bf16 -o "$work/infer-bf16.bin" 2>/dev/null
  echo "batch $batch: timing alexrt (burn Flex) ..." >&2
  "$bin/alexrt" bench "$work/train.bin" --steps "$n" --json > "$work/ours-train-$batch.json"
  "$bin/alexrt" bench "$work/infer.bin" --steps "$n" --json > "$work/ours-infer-$batch.json"
  "$bin/alexrt" bench "$work/train-bf16.bin" --steps "$n" --json > "$work/ours-train-bf16-$batch.json"
  "$bin/alexrt" bench "$work/infer-bf16.bin" --steps "$n" --json > "$work/ours-infer-bf16-$batch.json"
  # The bf16/f32 ratio again from alternated pairs (f32 then bf16, three times): the machine's
  # drift over a minute then falls on both sides alike, and the report gives the pairs' median.
  for pair in 1 2 3; do
    "$bin/alexrt" bench "$work/train.bin" --steps "$n" --json > "$work/pair-f32-$batch-$pair.json"
    "$bin/alexrt" bench "$work/train-bf16.bin" --steps "$n" --json > "$work/pair-bf16-$batch-$pair.json"
  done
  echo "batch $batch: timing PyTorch, eager and torch.compile ..." >&2
  "$venv/bin/python" benches/pytorch_cpu.py "$graph" --batch "$batch" --steps "$n" --compile --bf16 \
    > "$work/torch-$batch.json"
done
"$venv/bin/python" benches/report.py "$work" "$graph" $batches

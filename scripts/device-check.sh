#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU, no Rust toolchain and no network: it runs
# alexrt and alexc built elsewhere with `cargo build --release --features cuda` (carried in
# $BIN, default ./bin) and the PyTorch already installed there, and writes its files and a table
# to the output folder (the first argument, or $OUT).
#   scripts/device-check.sh [OUT] [BATCH]
# Without a GPU it runs what it can and says what it skipped: for example, on lavapipe,
#   DEVICE=wgpu GRAPH=graphs/tiny.ron CHECK_FLAGS=--skip-conv scripts/device-check.sh out 8
# (lavapipe cannot hold alexnet.ron's 151 MB fc6 weight in one buffer). It keeps to 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-device-check-out}}"
batch="${2:-128}"
bin="${BIN:-./bin}"
device="${DEVICE:-cuda}"
graph="${GRAPH:-graphs/alexnet.ron}"
CHECK_FLAGS="${CHECK_FLAGS:-}"
mkdir -p "$out"
py="${PYTHON:-python3}"
status=0
run() { # name, timeout, command...
  local name="$1" limit="$2"; shift 2
  echo "== $name" | tee -a "$out/log.txt"
  timeout "$limit" "$@" > "$out/$name.json" 2>> "$out/log.txt"
  local rc=$?
  [ $rc -eq 0 ] || { echo "   $name failed (exit $rc)" | tee -a "$out/log.txt"; status=1; }
}
if ! "$bin/alexrt" --version >/dev/null 2>&1; then
  echo "no alexrt in $bin: build it with cargo build --release --features cuda and copy target/release/{alexc,alexrt} there" >&2
  exit 2
fi
run kernels 75 "$bin/alexrt" check-kernels --device "$device" --batch "$batch" --steps 20 $CHECK_FLAGS
"$bin/alexc" compile "$graph" --batch-size "$batch" -o "$out/step.bin" 2>> "$out/log.txt" || status=1
"$bin/alexc" compile "$graph" --batch-size "$batch" --split-grouped-conv -o "$out/step-split.bin" 2>> "$out/log.txt" || status=1
run alexrt-step 105 "$bin/alexrt" bench "$out/step.bin" --device "$device" --steps 10 --json
run alexrt-step-unfused 60 "$bin/alexrt" bench "$out/step.bin" --device "$device" --steps 5 --json --unfused
run alexrt-step-split 60 "$bin/alexrt" bench "$out/step-split.bin" --device "$device" --steps 5 --json
if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  run pytorch 170 "$py" benches/pytorch_gpu.py "$graph" --batch "$batch"
else
  echo "== pytorch: skipped (no torch with CUDA here)" | tee -a "$out/log.txt"
fi
# The commit the binaries were built from: bin/COMMIT, written next to them where they were built.
export CHECK_COMMIT="$(cat "$bin/COMMIT" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$py" benches/device_table.py "$out" "$batch" > "$out/table.md" || status=1
cat "$out/table.md"
exit $status

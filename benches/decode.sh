#!/usr/bin/env bash
# Data benchmark (docs/benchmarks.md): decode + the paper's augmentation (short side 256, centre
# 256, random 227 crop, flip, PCA lighting, normalisation), batched by 32, alexrt against its
# peers on the same images in one run, with one worker (the per-core figure) and with all cores.
#   benches/decode.sh [N]
# The images: N (default 1000) distinct ImageNet-sized JPEGs cut from scikit-image's photographs
# (benches/make_photos.py), the same packed by `alexrt pack` into 256px WebDataset shards, and
# N/4 camera-sized ones (long side 1600-2000) for the decoder's scaled path.
# Peers: torchvision's DataLoader (folder), the `webdataset` package with the same transforms
# (shards), NVIDIA DALI's CPU pipeline (both; a 424 MB wheel, ALEXNET_BENCH_NO_DALI=1 leaves it
# out), each reported as skipped where it will not install or run.
# ALEXNET_BASELINE_BIN=DIR adds DIR/alexrt (an earlier build, named by ALEXNET_BASELINE_NAME) on
# the same data, to measure a change.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/alexnet-target}"
venv="${ALEXNET_VENV:-$HOME/.cache/alexnet-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import torchvision, skimage, webdataset" 2>/dev/null; then
  "$venv/bin/pip" install --quiet torch torchvision numpy pillow scikit-image webdataset
fi
if [ -z "${ALEXNET_BENCH_NO_DALI:-}" ] && ! "$venv/bin/python" -c "import nvidia.dali" 2>/dev/null; then
  "$venv/bin/pip" install --quiet nvidia-dali-cuda120 || echo "NVIDIA DALI did not install; its rows say so" >&2
fi
cargo build --release --quiet --locked -p alexc -p alexrt
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
all="$(nproc)"
large=$((n / 4))

echo "making $n photographs and $large camera-sized ones" >&2
"$venv/bin/python" benches/make_photos.py "$work/folder" "$n"
"$venv/bin/python" benches/make_photos.py "$work/large" "$large" --long-side 1600 2000
"$bin/alexc" compile graphs/alexnet.ron -o "$work/plan.bin" 2>/dev/null
"$bin/alexrt" pack --data "$work/folder" --out "$work/shards" --shard-mib 8 >&2

results="$work/results.jsonl"
record() { # tool data workers json
  printf '{"tool": "%s", "data": "%s", "workers": %s, "result": %s}\n' "$1" "$2" "$3" "$4" >>"$results"
}
median() { # the JSON line (of those on stdin) with the median images_per_second
  "$venv/bin/python" -c 'import json, sys
runs = sorted((json.loads(l) for l in sys.stdin if l.strip()), key=lambda r: r["images_per_second"])
print(json.dumps(runs[len(runs) // 2]))'
}
ours() { # tool binary data-name dir count: the median of 5 runs (a timed pass of the shards is
  # about a quarter of a second, short enough for the machine's noise to move one run)
  for w in 1 "$all"; do
    record "$1" "$3" "$w" "$(for _ in 1 2 3 4 5; do
      "$2" bench-data --data "$5" --plan "$work/plan.bin" --images "$4" --workers "$w" --json
    done | median)"
  done
}
peer() { # tool data-name count args...
  local tool="$1" data="$2" count="$3"
  shift 3
  for w in 0 "$all"; do
    record "$tool" "$data" "$((w > 0 ? w : 1))" \
      "$("$venv/bin/python" benches/decode_peers.py "$tool" "$@" --images "$count" --workers "$w")"
  done
}
for tool in alexrt ${ALEXNET_BASELINE_BIN:+baseline}; do
  b="$bin/alexrt"
  [ "$tool" = baseline ] && b="$ALEXNET_BASELINE_BIN/alexrt"
  echo "$tool" >&2
  ours "$tool" "$b" shards "$n" "$work/shards"
  ours "$tool" "$b" folder "$n" "$work/folder"
  ours "$tool" "$b" large "$large" "$work/large"
done
echo "peers" >&2
peer torchvision folder "$n" "$work/folder"
peer torchvision large "$large" "$work/large"
peer webdataset shards "$n" "$work/folder" --shards "$work/shards"
if [ -z "${ALEXNET_BENCH_NO_DALI:-}" ]; then
  peer dali folder "$n" "$work/folder"
  peer dali shards "$n" "$work/folder" --shards "$work/shards" --source shards
fi
"$venv/bin/python" benches/decode_report.py "$results" "$n" "$large" "$all" \
  "$(du -sk "$work/folder/train" | cut -f1)" "$(du -sk "$work/shards/train" | cut -f1)" \
  "${ALEXNET_BASELINE_NAME:-${ALEXNET_BASELINE_BIN:-}}"

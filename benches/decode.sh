#!/usr/bin/env bash
# Data benchmark: decode + the paper's augmentation of JPEGs, per core, alexrt against torchvision
# on the same images in one run. Generates N ImageNet-sized JPEGs (500x375) unless DIR is given.
#   benches/decode.sh [N] [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-400}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/alexnet-target}"
venv="${ALEXNET_VENV:-$HOME/.cache/alexnet-venv}"
if ! "$venv/bin/python" -c "import torchvision" 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch torchvision numpy
fi
cargo build --release --quiet -p alexc -p alexrt
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
data="${2:-$work/data}"
if [ -z "${2:-}" ]; then
  "$venv/bin/python" - "$data" "$n" <<'PY'
import os, sys, numpy as np
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
for i in range(n):
    d = os.path.join(root, "train", f"n{i % 10:08d}")
    os.makedirs(d, exist_ok=True)
    y, x = np.mgrid[0:375, 0:500]
    img = np.stack([(np.sin(x / (7 + c) + i) * 60 + y / 3 + rng.normal(0, 20, x.shape)) for c in range(3)], -1)
    Image.fromarray(np.clip(img + 100, 0, 255).astype(np.uint8)).save(os.path.join(d, f"{i}.JPEG"), quality=90)
PY
fi
"$bin/alexc" compile graphs/alexnet.ron -o "$work/plan.bin" 2>/dev/null
ours=$("$bin/alexrt" bench-data --data "$data" --plan "$work/plan.bin" --images "$n" --workers 1 --json)
theirs=$("$venv/bin/python" benches/decode_torchvision.py "$data" --images "$n")
"$venv/bin/python" - "$ours" "$theirs" <<'PY'
import json, sys, datetime, subprocess, platform, os
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
text = "\n".join([
    f"# Data benchmark: decode + the paper's augmentation, one core",
    "",
    f"- date: {datetime.date.today()}, commit {commit}; machine: {cpu}, {os.cpu_count()} cores",
    f"- {o['images']} JPEGs (500x375): short side 256, centre 256, random 227 crop, flip, PCA lighting, normalise",
    "- alexrt: `alexrt bench-data --workers 1` (zune-jpeg, fast_image_resize); torchvision: PIL + transforms, 1 thread",
    "",
    "| what | alexrt | torchvision | alexrt / torchvision |",
    "| --- | ---: | ---: | ---: |",
    f"| images/s per core | {o['per_core']:.0f} | {t['images_per_second']:.0f} | {o['per_core'] / t['images_per_second']:.2f}x |",
]) + "\n"
print(text)
out = f"benches/results/decode-{datetime.date.today()}-{platform.node().split('.')[0] or 'host'}.md"
open(out, "w").write(text)
print(f"recorded in {out}", file=sys.stderr)
PY

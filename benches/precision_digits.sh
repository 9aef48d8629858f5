#!/usr/bin/env bash
# Mixed precision on real data (docs/benchmarks.md): graphs/tiny.ron trained in f32 and in bf16
# (`alexc compile --precision bf16`) on scikit-learn's handwritten digits (1,797 8x8 scans from
# UCI, shipped inside scikit-learn: no download), SEEDS seeds each, EPOCHS epochs, on the CPU;
# reports each run's validation top-1 (one image is 0.28 points) and the mean difference (the goal: bf16 within 1 point of
# f32), and records the table in benches/results/precision-digits-DATE-HOST.md.
#   benches/precision_digits.sh [EPOCHS] [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-15}"
seeds="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/alexnet-target}"
venv="${ALEXNET_VENV:-$HOME/.cache/alexnet-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import sklearn, PIL" 2>/dev/null || "$venv/bin/pip" install --quiet scikit-learn pillow
cargo build --release --quiet --locked -p alexc -p alexrt
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The digits as an ImageNet-layout folder: every fifth image of each class for validation (360),
# the rest for training (1,437); 4x nearest upscaling to 32x32 RGB PNGs (tiny.ron's input is 31).
"$venv/bin/python" - "$work/digits" <<'PY'
import os, sys
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
root = sys.argv[1]
d = load_digits()
seen = {}
for i, (img, label) in enumerate(zip(d.images, d.target)):
    k = seen.get(label, 0)
    seen[label] = k + 1
    split = "val" if k % 5 == 4 else "train"
    out = os.path.join(root, split, f"digit{label}")
    os.makedirs(out, exist_ok=True)
    grey = (img * (255 / 16)).astype(np.uint8).repeat(4, 0).repeat(4, 1)
    Image.fromarray(np.stack([grey] * 3, -1)).save(os.path.join(out, f"{i:04d}.png"))
PY

results="$work/results.txt"
for seed in $(seq 1 "$seeds"); do
  sed "s/seed: 7/seed: $seed/" graphs/tiny.ron >"$work/tiny-$seed.ron"
  for precision in f32 bf16; do
    "$bin/alexc" compile "$work/tiny-$seed.ron" --precision "$precision" -o "$work/$precision-$seed.bin" 2>/dev/null
    echo "seed $seed, $precision" >&2
    "$bin/alexrt" train "$work/$precision-$seed.bin" --device cpu --data "$work/digits" --epochs "$epochs" \
      --out "$work/run-$precision-$seed" 2>"$work/log-$precision-$seed.txt" >/dev/null
    top1="$("$venv/bin/python" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if "val" in r]
print(rows[-1]["val"]["top1"])' "$work/run-$precision-$seed/metrics.jsonl")"
    echo "$seed $precision $top1" >>"$results"
  done
done

"$venv/bin/python" - "$results" "$epochs" <<'PY'
import collections, datetime, os, platform, subprocess, sys
rows = [l.split() for l in open(sys.argv[1])]
epochs = sys.argv[2]
top1 = collections.defaultdict(dict)
for seed, precision, t in rows:
    top1[int(seed)][precision] = 100 * float(t)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
flags = open("/proc/cpuinfo").read()
lines = [
    "# Mixed precision on real data: tiny.ron on scikit-learn's digits, f32 and bf16",
    "",
    f"- date: {datetime.date.today()}, commit {commit}; machine: {cpu}, {os.cpu_count()} cores"
    f" (AVX512_BF16: {'yes' if 'avx512_bf16' in flags else 'no'}); device cpu",
    f"- data: 1,437 training and 360 validation digits (every fifth of each class; validation reads"
    f" full batches of 32, 352 images), 32x32 RGB PNGs;"
    f" graphs/tiny.ron with its seed changed, {epochs} epochs; `benches/precision_digits.sh`",
    "",
    "| seed | f32 validation top-1 | bf16 validation top-1 | bf16 - f32 (points) |",
    "| ---: | ---: | ---: | ---: |",
]
diffs = []
for seed in sorted(top1):
    f, b = top1[seed]["f32"], top1[seed]["bf16"]
    diffs.append(b - f)
    lines.append(f"| {seed} | {f:.2f}% | {b:.2f}% | {b - f:+.2f} |")
mf = sum(top1[s]["f32"] for s in top1) / len(top1)
mb = sum(top1[s]["bf16"] for s in top1) / len(top1)
lines.append(f"| mean | {mf:.2f}% | {mb:.2f}% | {mb - mf:+.2f} |")
met = mb >= mf - 1.0
lines += ["", f"Goal (bf16 within 1 point of f32, mean over seeds): {'met' if met else 'not met'}"
          f" ({mb - mf:+.2f} points; one validation image is {100 / 352:.2f} points)."]
text = "\n".join(lines) + "\n"
print(text)
out = f"benches/results/precision-digits-{datetime.date.today()}-{platform.node().split('.')[0] or 'host'}.md"
open(out, "w").write(text)
print(f"recorded in {out}", file=sys.stderr)
PY

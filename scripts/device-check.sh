#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU, no Rust toolchain and no network: it runs
# alexrt and alexc built elsewhere with `cargo build --release --features cuda` (carried in
# $BIN, default ./bin) and the PyTorch already installed there, and writes its files and a table
# to the output folder (the first argument, or $OUT).
#   scripts/device-check.sh [OUT] [BATCH]
# Without a GPU it runs what it can (the kernel check on --device ${DEVICE:-auto}) and says what it
# skipped. It keeps to about 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-device-check-out}}"
batch="${2:-128}"
bin="${BIN:-./bin}"
device="${DEVICE:-cuda}"
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
run kernels 120 "$bin/alexrt" check-kernels --device "$device" --batch "$batch"
"$bin/alexc" compile graphs/alexnet.ron --batch-size "$batch" -o "$out/alexnet.bin" 2>> "$out/log.txt"
run alexrt-step 180 "$bin/alexrt" bench "$out/alexnet.bin" --device "$device" --steps 10 --json
if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  run pytorch 300 "$py" benches/pytorch_gpu.py graphs/alexnet.ron --batch "$batch"
else
  echo "== pytorch: skipped (no torch with CUDA here)" | tee -a "$out/log.txt"
fi
"$py" - "$out" "$batch" <<'PY' | tee "$out/table.md"
import json, os, sys
out, batch = sys.argv[1], int(sys.argv[2])
def load(name):
    try:
        return json.load(open(os.path.join(out, name + ".json")))
    except Exception:
        return None
k, s, t = load("kernels"), load("alexrt-step"), load("pytorch")
print(f"# GPU check (batch {batch})\n")
if k:
    worst = max(max(v.values()) for v in k["max_relative_error"].values())
    print(f"- kernels on {k['device']}: largest relative error against the CPU reference {worst:.1e}")
    print(f"- copy bandwidth measured first: {k['copy_gbps']:.0f} GB/s\n")
    print("| kernel (conv1 shape) | alexrt ms | GB/s | % of copy | PyTorch fwd+bwd ms |\n| --- | ---: | ---: | ---: | ---: |")
    for name in ["lrn_forward", "lrn_backward", "pool_forward", "pool_backward"]:
        ref = ""
        if t:
            ref = f"{t['lrn_forward_backward_ms' if name.startswith('lrn') else 'pool_forward_backward_ms']:.2f}"
        print(f"| {name} | {k['ms'][name]:.2f} | {k['gbps'][name]:.0f} | {100 * k['gbps'][name] / k['copy_gbps']:.0f}% | {ref} |")
if s:
    print(f"\n- alexnet.ron training step: alexrt {s['images_per_second']:.0f} images/s, peak {s['peak_bytes'] / 2**30:.2f} GiB (plan arena {s['arena_bytes'] / 2**30:.2f} GiB)")
if t:
    for mode in ["eager", "compile"]:
        if f"{mode}_images_per_second" in t:
            ratio = f", alexrt/PyTorch {s['images_per_second'] / t[mode + '_images_per_second']:.2f}x" if s else ""
            print(f"- PyTorch {mode}: {t[mode + '_images_per_second']:.0f} images/s, peak {t[mode + '_peak_bytes'] / 2**30:.2f} GiB{ratio}")
    print(f"- conv2 (groups=2) in PyTorch: grouped {t['conv2_grouped_ms']:.2f} ms, split in two {t['conv2_split_ms']:.2f} ms")
PY
exit $status

#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU, no Rust toolchain and no network: it runs
# alexrt and alexc built elsewhere with `cargo build --release --features cuda` (carried in
# $BIN, default ./bin) and the PyTorch already installed there, and writes its files and a table
# to the output folder (the first argument, or $OUT).
#   scripts/device-check.sh [OUT] [BATCH]
# Without a GPU it runs what it can and says what it skipped: for example, on lavapipe,
#   DEVICE=wgpu GRAPH=graphs/tiny.ron CHECK_FLAGS=--skip-conv scripts/device-check.sh out 8
# (lavapipe cannot hold alexnet.ron's 151 MB fc6 weight in one buffer).
#
# It keeps to BUDGET seconds (default 540: the device tool's 10-minute command with room to
# spare). A fresh machine has no compiled kernels: the first alexrt process on CUDA compiles
# every kernel it launches (NVRTC, about 1 s each; 180 of them took 190 s on an H200 before
# alexnet's first step), so a warm-up step runs first with most of the budget and fills the
# kernel cache (ALEXRT_KERNEL_CACHE, here OUT/kernel-cache) that the timed runs then read. The
# steps run in order of importance; one that would not fit in what is left is skipped, and the
# log says so.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out="${1:-${OUT:-device-check-out}}"
batch="${2:-128}"
bin="${BIN:-./bin}"
device="${DEVICE:-cuda}"
graph="${GRAPH:-graphs/alexnet.ron}"
CHECK_FLAGS="${CHECK_FLAGS:-}"
budget="${BUDGET:-540}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export ALEXRT_KERNEL_CACHE="${ALEXRT_KERNEL_CACHE:-$(cd "$out" && pwd)/kernel-cache}"
status=0
start=$SECONDS
left() { echo $((budget - (SECONDS - start))); }
# run NAME LIMIT [RESERVE] COMMAND...: runs it within min(LIMIT, what is left - RESERVE) seconds,
# its stdout to OUT/NAME.json; skipped (and said so) when fewer than 10 seconds would be left.
run() {
  local name="$1" limit="$2" reserve="$3"; shift 3
  local can=$(( $(left) - reserve ))
  [ "$can" -lt "$limit" ] && limit=$can
  if [ "$limit" -lt 10 ]; then
    echo "== $name: skipped (the ${budget} s budget is spent: $(left) s left, $reserve s kept for what follows)" | tee -a "$out/log.txt"
    echo "$name skipped 0 0" >> "$out/times.txt"
    return
  fi
  echo "== $name (at most $limit s)" | tee -a "$out/log.txt"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.json" 2>> "$out/log.txt"
  local rc=$?
  echo "   $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$out/log.txt"
  echo "$name $rc $((SECONDS - t0)) $limit" >> "$out/times.txt"
  [ $rc -eq 0 ] || { echo "   $name failed (exit $rc)" | tee -a "$out/log.txt"; status=1; }
}
if ! "$bin/alexrt" --version >/dev/null 2>&1; then
  echo "no alexrt in $bin: build it with cargo build --release --features cuda and copy target/release/{alexc,alexrt} there" >&2
  exit 2
fi
have_torch=0
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null && have_torch=1
pytorch_limit=$(( have_torch ? 150 : 0 ))
# cubecl-cuda compiles each kernel at its first launch with NVRTC (which cudarc loads by name:
# libnvrtc.so.13, .12, ...) and CUDA's headers ($CUDA_PATH/include, else /usr/local/cuda's; it
# panics without them). Where the machine has no CUDA toolkit, PyTorch's pip wheels have both
# (CUDA 12: nvidia/cuda_nvrtc/lib and nvidia/cuda_runtime/include; CUDA 13: nvidia/cu13/lib and
# nvidia/cu13/include): point the loader and CUDA_PATH there.
nvidia_paths="$("$py" -c 'import glob, os, sys
for d in filter(None, sys.path):
    for lib, inc in (("cuda_nvrtc/lib", "cuda_runtime/include"), ("cu13/lib", "cu13/include")):
        lib, inc = os.path.join(d, "nvidia", lib), os.path.join(d, "nvidia", inc)
        if glob.glob(os.path.join(lib, "libnvrtc.so.*")) and os.path.isfile(os.path.join(inc, "cuda_runtime.h")):
            print(lib)
            print(inc)
            sys.exit()' 2>/dev/null)"
nvrtc_dir="$(sed -n 1p <<< "$nvidia_paths")"
headers_dir="$(sed -n 2p <<< "$nvidia_paths")"
if [ "$device" = cuda ] && [ -n "$nvrtc_dir" ]; then
  if [ -z "${CUDA_PATH:-}" ] && [ ! -e /usr/local/cuda/include/cuda_runtime.h ]; then
    CUDA_PATH="$(dirname "$headers_dir")"
    export CUDA_PATH
    echo "== CUDA_PATH=$CUDA_PATH (PyTorch's headers: no CUDA toolkit here)" | tee -a "$out/log.txt"
  fi
  if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
    export LD_LIBRARY_PATH="$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "== libnvrtc from $nvrtc_dir (PyTorch's)" | tee -a "$out/log.txt"
  fi
fi
# Every CubeCL kernel compiled by NVRTC for this GPU's architecture (alexrt check-nvrtc --arch
# native; docs/gpu-kernels-nvrtc.md): registers, spills and shared memory, which the table puts
# beside the kernels' times; with PyTorch's NVRTC and headers where found above.
nvrtc_args=()
if [ -n "$nvrtc_dir" ]; then
  nvrtc_args=(--nvrtc "$(find "$nvrtc_dir" -maxdepth 1 -name 'libnvrtc.so.*' | sort | head -1)"
              --include "$headers_dir")
fi
"$bin/alexc" compile "$graph" --batch-size "$batch" -o "$out/step.bin" 2>> "$out/log.txt" || status=1
"$bin/alexc" compile "$graph" --batch-size "$batch" --split-grouped-conv -o "$out/step-split.bin" 2>> "$out/log.txt" || status=1
# 1. Our kernels against the CPU, at a small batch (seconds: no burn convolution is timed).
run kernels-small 60 $((pytorch_limit + 120)) "$bin/alexrt" check-kernels --device "$device" --batch 8 --steps 1 --skip-conv
if [ "$device" = cuda ]; then
  run nvrtc 20 $((pytorch_limit + 120)) "$bin/alexrt" check-nvrtc --arch native --out "$out" ${nvrtc_args[@]+"${nvrtc_args[@]}"}
else
  echo "== nvrtc: skipped (NVRTC compiles for CUDA GPUs; --device $device)" | tee -a "$out/log.txt"
fi
# 2. The warm-up: one training step, compiling (and autotuning) every kernel it needs into the cache.
run warm-up "$budget" $((pytorch_limit + 90)) "$bin/alexrt" bench "$out/step.bin" --device "$device" --steps 1 --json
# 3. The timed step, reading the cache.
run alexrt-step 90 "$pytorch_limit" "$bin/alexrt" bench "$out/step.bin" --device "$device" --steps 10 --json
# 4. PyTorch on the same GPU, for the ratios.
if [ "$have_torch" = 1 ]; then
  run pytorch 150 0 "$py" benches/pytorch_gpu.py "$graph" --batch "$batch"
else
  echo "== pytorch: skipped (no torch with CUDA here)" | tee -a "$out/log.txt"
fi
# 5. What is left of the budget, in order: the kernels at full size with burn's grouped
# convolutions timed against the split, the split plan's step, the unfused step.
run kernels 75 0 "$bin/alexrt" check-kernels --device "$device" --batch "$batch" --steps 20 $CHECK_FLAGS
run alexrt-step-split 90 0 "$bin/alexrt" bench "$out/step-split.bin" --device "$device" --steps 5 --json
run alexrt-step-unfused 60 0 "$bin/alexrt" bench "$out/step.bin" --device "$device" --steps 5 --json --unfused
# 6. Mixed precision (alexc --precision bf16|f16): burn's products in the low type, our kernels
# storing it and computing in f32; each run's first step compiles its kernels, so 3 timed steps.
for p in bf16 f16; do
  "$bin/alexc" compile "$graph" --batch-size "$batch" --precision "$p" -o "$out/step-$p.bin" 2>> "$out/log.txt" || status=1
  run "alexrt-step-$p" 90 0 "$bin/alexrt" bench "$out/step-$p.bin" --device "$device" --steps 3 --json
done
# The data-parallel all-reduce on device memory (NCCL): one rank averages alexnet's fc7 + fc8
# gradient bucket (84 MB) with NCCL into fresh device buffers, checked against the host's mean and
# timed next to the host path (alexrt check-all-reduce). NCCL comes from PyTorch's pip wheels
# (site-packages/nvidia/nccl/lib/libnccl.so.2) or the system, linked as the libnccl.so cudarc
# loads. One rank only: a one-replica plan has no all-reduce to train with, and two ranks need two
# GPUs and an alexrt built with `--features cuda,mpi`, which does not start without Open MPI's
# libmpi.so.40 (not on the GPU machine; the binaries here are built with `cuda` only).
nccl_so="$("$py" -c 'import glob, os, sys
hits = [f for d in sys.path if d for f in sorted(glob.glob(os.path.join(d, "nvidia", "nccl", "lib", "libnccl.so*")))]
print(hits[0] if hits else "")' 2>/dev/null)"
[ -n "$nccl_so" ] || nccl_so="$(ldconfig -p 2>/dev/null | awk '/libnccl\.so/ { print $NF; exit }')"
if [ "$device" = cuda ] && [ -n "$nccl_so" ]; then
  mkdir -p "$out/nccl-lib" && ln -sf "$nccl_so" "$out/nccl-lib/libnccl.so"
  run all-reduce 15 0 env LD_LIBRARY_PATH="$(cd "$out/nccl-lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$bin/alexrt" check-all-reduce --device cuda --repeats 5
  echo "   (libnccl: $nccl_so)" | tee -a "$out/log.txt"
elif [ "$device" = cuda ]; then
  echo "== all-reduce: skipped (no libnccl.so* under PyTorch's nvidia/nccl/lib nor in ldconfig)" | tee -a "$out/log.txt"
else
  echo "== all-reduce: skipped (NCCL runs on --device cuda only, not $device)" | tee -a "$out/log.txt"
fi
# The paper's two-GPU training (alexc --devices 2): where the machine has two GPUs, two training
# steps at batch 32 of the placed plan on cuda:0,cuda:1 next to the same steps of the one-device
# plan on cuda:0 (same seed and data: the epoch losses in the two metrics.jsonl files should agree
# to f32), within what is left of the budget.
gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
if [ "$device" = cuda ] && [ "${gpus:-0}" -ge 2 ] && [ "$(left)" -lt 50 ]; then
  echo "== two-gpu: skipped (the ${budget} s budget is spent: $(left) s left)" | tee -a "$out/log.txt"
elif [ "$device" = cuda ] && [ "${gpus:-0}" -ge 2 ]; then
  two_batch=32
  "$bin/alexc" compile "$graph" --batch-size "$two_batch" --devices 2 --report json -o "$out/step-two.bin" \
    > "$out/placement.json" 2>> "$out/log.txt" || status=1
  "$bin/alexc" compile "$graph" --batch-size "$two_batch" -o "$out/step-one-32.bin" 2>> "$out/log.txt" || status=1
  for run in "two-gpu cuda:0,cuda:1 step-two.bin" "one-gpu cuda:0 step-one-32.bin"; do
    set -- $run
    echo "== $1-train" | tee -a "$out/log.txt"
    timeout 20 "$bin/alexrt" train "$out/$3" --device "$2" --epochs 1 --steps-per-epoch 2 \
      --train-images $((2 * two_batch)) --val-images "$two_batch" --out "$out/$1-run" >> "$out/log.txt" 2>&1 \
      || { echo "   $1-train failed" | tee -a "$out/log.txt"; status=1; }
    cat "$out/$1-run/metrics.jsonl" 2>/dev/null | tee -a "$out/log.txt"
  done
else
  echo "== two-gpu: skipped (this machine has ${gpus:-0} GPU(s) for --device $device; the step placed by alexc --devices 2 needs two CUDA GPUs)" | tee -a "$out/log.txt"
fi
# The commit the binaries were built from: bin/COMMIT, written next to them where they were built.
export CHECK_COMMIT="$(cat "$bin/COMMIT" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$py" benches/device_table.py "$out" "$batch" > "$out/table.md" || status=1
cat "$out/table.md"
exit $status

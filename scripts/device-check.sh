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
run kernels 75 "$bin/alexrt" check-kernels --device "$device" --batch "$batch" --steps 20 $CHECK_FLAGS
# Every CubeCL kernel compiled by NVRTC for this GPU's architecture (alexrt check-nvrtc --arch
# native; docs/gpu-kernels-nvrtc.md): registers, spills and shared memory, which the table puts
# beside the kernels' times; with PyTorch's NVRTC and headers where found above.
if [ "$device" = cuda ]; then
  nvrtc_args=()
  if [ -n "$nvrtc_dir" ]; then
    nvrtc_args=(--nvrtc "$(find "$nvrtc_dir" -maxdepth 1 -name 'libnvrtc.so.*' | sort | head -1)"
                --include "$headers_dir")
  fi
  echo "== nvrtc" | tee -a "$out/log.txt"
  timeout 20 "$bin/alexrt" check-nvrtc --arch native --out "$out" ${nvrtc_args[@]+"${nvrtc_args[@]}"} \
    > /dev/null 2>> "$out/log.txt" || { echo "   nvrtc failed (see log.txt)" | tee -a "$out/log.txt"; status=1; }
else
  echo "== nvrtc: skipped (NVRTC compiles for CUDA GPUs; --device $device)" | tee -a "$out/log.txt"
fi
"$bin/alexc" compile "$graph" --batch-size "$batch" -o "$out/step.bin" 2>> "$out/log.txt" || status=1
"$bin/alexc" compile "$graph" --batch-size "$batch" --split-grouped-conv -o "$out/step-split.bin" 2>> "$out/log.txt" || status=1
run alexrt-step 105 "$bin/alexrt" bench "$out/step.bin" --device "$device" --steps 10 --json
run alexrt-step-unfused 60 "$bin/alexrt" bench "$out/step.bin" --device "$device" --steps 5 --json --unfused
run alexrt-step-split 60 "$bin/alexrt" bench "$out/step-split.bin" --device "$device" --steps 5 --json
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
  run all-reduce 15 env LD_LIBRARY_PATH="$(cd "$out/nccl-lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
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
# to f32). Budget (the timeouts, worst case): 75 + 20 (NVRTC) + 105 + 60 + 60 s above and 15 s of NCCL, then
# either 135 s of PyTorch (one GPU: 470 s), or 2 x 20 s here and 95 s of PyTorch (two GPUs:
# 470 s); the compiles take seconds: within 8 minutes either way.
gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
pytorch_limit=135
if [ "$device" = cuda ] && [ "${gpus:-0}" -ge 2 ]; then
  pytorch_limit=95
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
if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  run pytorch "$pytorch_limit" "$py" benches/pytorch_gpu.py "$graph" --batch "$batch"
else
  echo "== pytorch: skipped (no torch with CUDA here)" | tee -a "$out/log.txt"
fi
# The commit the binaries were built from: bin/COMMIT, written next to them where they were built.
export CHECK_COMMIT="$(cat "$bin/COMMIT" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$py" benches/device_table.py "$out" "$batch" > "$out/table.md" || status=1
cat "$out/table.md"
exit $status

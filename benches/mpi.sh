#!/usr/bin/env bash
# Data-parallel benchmark on one machine: alexrt train under `mpirun -np 2` (Open MPI, shared
# memory) against the same work without communication, on the built-in synthetic data.
#   benches/mpi.sh [GRAPH] [BATCH] [STEPS]     (defaults: graphs/alexnet.ron 128 3)
# BATCH is per rank. It times, each over STEPS steps (the first included) of one epoch:
#   1. one process, 1 thread        (N=1 on one core: the per-rank resources)
#   2. one process, all threads     (N=1 on the whole machine)
#   3. two independent processes at once, 1 thread each: the all-reduce-free step of 2 ranks
#   4. mpirun -np 2, 1 thread each  (N=2), with the all-reduce time per step that rank 0 measures
# and writes benches/results/mpi-<date>-<host>.md with the machine, load and commit.
# Needs alexrt built with --features mpi (it builds it) and mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
graph="${1:-graphs/alexnet.ron}"
batch="${2:-128}"
steps="${3:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/alexnet-target}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"
trap 'wait; rm -rf "$work"' EXIT
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet -p alexc -p alexrt --features alexrt/mpi
  BIN="$work/bin"
  mkdir -p "$BIN"
  cp "$CARGO_TARGET_DIR/release/alexc" "$CARGO_TARGET_DIR/release/alexrt" "$BIN/"
fi
load_before="$(uptime)"
"$BIN/alexc" compile "$graph" --batch-size "$batch" -o "$work/one.bin" 2>/dev/null
"$BIN/alexc" compile "$graph" --batch-size "$batch" --replicas 2 -o "$work/two.bin" 2>/dev/null
images=$((batch * 2 * steps))
train() { # PLAN OUT [extra env/args...]: the epoch's images/s
  local plan="$1" out="$2"
  shift 2
  "$@" "$BIN/alexrt" train "$plan" --device cpu --epochs 1 --steps-per-epoch "$steps" \
    --train-images "$images" --val-images 4 --workers 1 --out "$work/$out" > "$work/$out.out" 2> "$work/$out.log" \
    || { echo "$out failed:" >&2; tail -5 "$work/$out.log" >&2; return 1; }
  sed -n 's/.*| \([0-9.]*\) images\/s,.*/\1/p' "$work/$out.log" | tail -1
}
echo "1/4 one process, 1 thread ..." >&2
ips_1t="$(train "$work/one.bin" one-1t env RAYON_NUM_THREADS=1)"
echo "2/4 one process, all threads ..." >&2
ips_all="$(train "$work/one.bin" one-all env)"
echo "3/4 two independent processes, 1 thread each ..." >&2
train "$work/one.bin" pair-a env RAYON_NUM_THREADS=1 > "$work/ips-a" &
train "$work/one.bin" pair-b env RAYON_NUM_THREADS=1 > "$work/ips-b"
wait
echo "4/4 mpirun -np 2 ..." >&2
ips_mpi="$(train "$work/two.bin" mpi mpirun --oversubscribe --mca btl self,vader -np 2)"
allreduce_ms="$(sed -n 's/.*gradient all-reduce \([0-9.]*\) ms per step.*/\1/p' "$work/mpi.log")"
load_after="$(uptime)"
python3 - "$batch" "$steps" "$ips_1t" "$ips_all" "$(cat "$work/ips-a")" "$(cat "$work/ips-b")" \
  "$ips_mpi" "$allreduce_ms" > "$work/table.md" <<'PY'
import sys
batch, steps = int(sys.argv[1]), int(sys.argv[2])
ips_1t, ips_all, pa, pb, ips_mpi, ar = map(float, sys.argv[3:9])
step = lambda ips, images: images / ips
s1, sall = step(ips_1t, batch), step(ips_all, batch)
spair = (step(pa, batch) + step(pb, batch)) / 2
smpi = step(ips_mpi, 2 * batch)
print(f"| run | images/s | step (s) | all-reduce per step |")
print(f"| --- | ---: | ---: | ---: |")
print(f"| N=1, 1 thread | {ips_1t:.1f} | {s1:.2f} | - |")
print(f"| N=1, all threads | {ips_all:.1f} | {sall:.2f} | - |")
print(f"| 2 independent processes, 1 thread each (no all-reduce) | {pa + pb:.1f} | {spair:.2f} | - |")
print(f"| N=2 (mpirun -np 2), 1 thread each | {ips_mpi:.1f} | {smpi:.2f} | {ar:.0f} ms ({100 * ar / 1000 / smpi:.1f}% of the step) |")
print()
print(f"- communication overhead: N=2 step / all-reduce-free step = {smpi / spair:.3f} ({100 * (smpi / spair - 1):+.1f}%)")
print(f"- scaling efficiency N=2 vs N=1 on one core each: {ips_mpi / (2 * ips_1t):.2f}; "
      f"vs one process on the whole machine: {ips_mpi / ips_all:.2f}x its throughput")
PY
out="benches/results/mpi-$(date -u +%Y-%m-%d)-$(hostname -s | cut -c1-12).md"
{
  echo "# Data parallel on one machine: $graph, batch $batch per rank, $steps steps, synthetic data"
  echo
  echo "- commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)'), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(mpirun --version | head -1)"
  echo "- load before: $load_before"
  echo "- load after: $load_after"
  echo "- each figure is over the epoch's $steps steps, the first (warm-up) included; all-reduce time is"
  echo "  what rank 0 spends in the gradient all-reduces (host copies, MPI, waiting for the other rank)"
  echo
  cat "$work/table.md"
} > "$out"
cat "$out"

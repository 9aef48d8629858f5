#!/usr/bin/env bash
# Data-parallel benchmark on one machine: alexrt train under `mpirun -np 2` (Open MPI, shared
# memory) against the same work without communication, on the built-in synthetic data.
#   benches/mpi.sh [GRAPH] [BATCH] [STEPS]     (defaults: graphs/alexnet.ron 128 6)
# BATCH is per rank. It times, each as the mean of the steps after the first (the warm-up) of
# one epoch of STEPS steps, read from the run's `step time:` line:
#   1. one process, 1 thread        (N=1 on one core: the per-rank resources)
#   2. one process, all threads     (N=1 on the whole machine)
#   3. two independent processes at once, 1 thread each: the all-reduce-free step of 2 ranks
#   4. mpirun -np 2, 1 thread each  (N=2), with rank 0's gradient all-reduce per step: the time
#      the step stood still for it (exposed) and the time from the first bucket's start to the
#      last one's completion (in flight; the rest is hidden behind the backward pass)
# and writes benches/results/mpi-<date>-<host>.md with the machine, load and commit (earlier runs
# of the day kept below). BIN=DIR uses the alexc and alexrt in DIR; NOTE=TEXT says what they are.
# Needs alexrt built with --features mpi (it builds it) and mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
graph="${1:-graphs/alexnet.ron}"
batch="${2:-128}"
steps="${3:-6}"
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
train() { # PLAN OUT [extra env/args...]: seconds per step after the first
  local plan="$1" out="$2"
  shift 2
  "$@" "$BIN/alexrt" train "$plan" --device cpu --epochs 1 --steps-per-epoch "$steps" \
    --train-images "$images" --val-images 4 --workers 1 --out "$work/$out" > "$work/$out.out" 2> "$work/$out.log" \
    || { echo "$out failed:" >&2; tail -5 "$work/$out.log" >&2; return 1; }
  local step
  step="$(sed -n 's/^step time: first [0-9.]*s, then \([0-9.]*\)s per step.*/\1/p' "$work/$out.log")"
  [ -n "$step" ] || { echo "$out: no 'step time:' line (alexrt too old, or STEPS < 2)" >&2; return 1; }
  echo "$step"
}
echo "1/4 one process, 1 thread ..." >&2
s_1t="$(train "$work/one.bin" one-1t env RAYON_NUM_THREADS=1)"
echo "2/4 one process, all threads ..." >&2
s_all="$(train "$work/one.bin" one-all env)"
echo "3/4 two independent processes, 1 thread each ..." >&2
train "$work/one.bin" pair-a env RAYON_NUM_THREADS=1 > "$work/step-a" &
train "$work/one.bin" pair-b env RAYON_NUM_THREADS=1 > "$work/step-b"
wait
echo "4/4 mpirun -np 2 ..." >&2
s_mpi="$(train "$work/two.bin" mpi mpirun --oversubscribe --mca btl self,vader -np 2)"
exposed_ms="$(sed -n 's/.*all-reduce after the first step: \([0-9.]*\) ms exposed.*/\1/p' "$work/mpi.log")"
flight_ms="$(sed -n 's/.*ms exposed of \([0-9.]*\) ms in flight per step.*/\1/p' "$work/mpi.log")"
load_after="$(uptime)"
python3 - "$batch" "$s_1t" "$s_all" "$(cat "$work/step-a")" "$(cat "$work/step-b")" \
  "$s_mpi" "$exposed_ms" "$flight_ms" > "$work/table.md" <<'PY'
import sys
batch = int(sys.argv[1])
s1, sall, sa, sb, smpi, exposed, flight = map(float, sys.argv[2:9])
spair = (sa + sb) / 2
print(f"| run | step (s) | images/s | all-reduce per step: exposed / in flight |")
print(f"| --- | ---: | ---: | ---: |")
print(f"| N=1, 1 thread | {s1:.3f} | {batch / s1:.1f} | - |")
print(f"| N=1, all threads | {sall:.3f} | {batch / sall:.1f} | - |")
print(f"| 2 independent processes, 1 thread each (no all-reduce) | {spair:.3f} ({sa:.3f}, {sb:.3f}) | {batch / sa + batch / sb:.1f} | - |")
print(f"| N=2 (mpirun -np 2), 1 thread each | {smpi:.3f} | {2 * batch / smpi:.1f} | "
      f"{exposed:.0f} / {flight:.0f} ms ({100 * exposed / 1000 / smpi:.1f}% / {100 * flight / 1000 / smpi:.1f}% of the step) |")
print()
print(f"- communication overhead: N=2 step / all-reduce-free step = {smpi / spair:.3f} ({100 * (smpi / spair - 1):+.1f}%)")
print(f"- all-reduce hidden behind the backward pass: {100 * (1 - exposed / flight) if flight > 0 else 0:.0f}% of its time in flight")
print(f"- scaling efficiency N=2 vs N=1 on one core each: {s1 / smpi:.2f}; "
      f"vs one process on the whole machine: {2 * sall / smpi:.2f}x its throughput")
PY
out="benches/results/mpi-$(date -u +%Y-%m-%d)-$(hostname -s | cut -c1-12).md"
{
  echo "# Data parallel on one machine: $graph, batch $batch per rank, $steps steps, synthetic data"
  echo
  echo "- commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)'), $(date -u '+%Y-%m-%d %H:%M UTC')"
  [ -z "${NOTE:-}" ] || echo "- binaries: $NOTE"
  echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(mpirun --version | head -1)"
  echo "- load before: $load_before"
  echo "- load after: $load_after"
  echo "- each step time is the mean of the epoch's steps after the first (warm-up), as the run reports it"
  echo "  (from one step's end to the next's); all-reduce: rank 0's, per step after the first: exposed is"
  echo "  the time the step stood still for it (host copies, MPI calls, waiting for the other rank), in"
  echo "  flight the time from the first bucket's start to the last one's completion"
  echo
  cat "$work/table.md"
  # Earlier runs of the day stay below the newest.
  if [ -f "$out" ]; then echo; echo "---"; echo; cat "$out"; fi
} > "$work/result.md"
mv "$work/result.md" "$out"
head -n 30 "$out"

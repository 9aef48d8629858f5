#!/usr/bin/env bash
# Data-parallel benchmark on one machine: alexrt train under `mpirun -np 2` (Open MPI, shared
# memory) against the same work without communication, on the built-in synthetic data.
#   benches/mpi.sh [GRAPH] [BATCH] [STEPS]     (defaults: graphs/alexnet.ron 128 6)
# BATCH is per rank. It times, each as the mean of the steps after the first (the warm-up) of
# one epoch of STEPS steps, read from the run's `step time:` line:
#   1. one process, 1 thread        (N=1 on one core: the per-rank resources)
#   2. one process, all threads     (N=1 on the whole machine)
# then ROUNDS (default 3) rounds of
#   3. two independent processes at once, 1 thread each: the all-reduce-free step of 2 ranks
#   4. mpirun -np 2, 1 thread each  (N=2), with each rank's gradient all-reduce per step: the
#      time the step stood still for it (exposed) and the time from the first bucket's start to
#      the last one's completion (in flight; the rest is hidden behind the backward pass)
# back to back, so that each N=2 run is compared with the pair run just before it: the machine
# is shared and its speed drifts by 10-20% over minutes, more than the overhead measured. The
# overhead reported is the median of the rounds' ratios, with every round's beside it. Last,
#   5. `mpirun -np 2 alexrt bench --ab-all-reduce`: PAIRS (default 8) pairs of steps with and
#      without the gradient all-reduce in one run, the ranks aligned before each step: what the
#      communication adds, measured where the drift falls on both alike (the median pair ratio).
# Writes benches/results/mpi-<date>-<host>.md with the machine, load and commit (earlier runs of
# the day kept below). BIN=DIR uses the alexc and alexrt in DIR; NOTE=TEXT says what they are;
# MPIRUN_ARGS adds arguments to mpirun (an MCA parameter to try).
# Needs alexrt built with --features mpi (it builds it) and mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
graph="${1:-graphs/alexnet.ron}"
batch="${2:-128}"
steps="${3:-6}"
rounds="${ROUNDS:-3}"
pairs="${PAIRS:-8}"
for n in "$batch" "$steps" "$rounds" "$pairs"; do
  case "$n" in ''|*[!0-9]*) echo "BATCH, STEPS, ROUNDS and PAIRS are counts; got '$n'" >&2; exit 2 ;; esac
done
[ "$steps" -ge 2 ] || { echo "STEPS must be 2 or more: the first step is the warm-up, left out" >&2; exit 2; }
[ "$rounds" -ge 1 ] && [ "$pairs" -ge 1 ] || { echo "ROUNDS and PAIRS must be 1 or more" >&2; exit 2; }
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
"$BIN/alexc" compile "$graph" --batch-size "$batch" -o "$work/one.bin" 2> "$work/alexc.log" \
  || { cat "$work/alexc.log" >&2; exit 1; }
"$BIN/alexc" compile "$graph" --batch-size "$batch" --replicas 2 -o "$work/two.bin" 2> "$work/alexc.log" \
  || { cat "$work/alexc.log" >&2; exit 1; }
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
  rm -rf "${work:?}/$out" # its checkpoint: half a gigabyte for alexnet
  echo "$step"
}
echo "1/$((3 + 2 * rounds)) one process, 1 thread ..." >&2
s_1t="$(train "$work/one.bin" one-1t env RAYON_NUM_THREADS=1)"
echo "2/$((3 + 2 * rounds)) one process, all threads ..." >&2
s_all="$(train "$work/one.bin" one-all env)"
rows=()
for r in $(seq 1 "$rounds"); do
  echo "$((1 + 2 * r))/$((3 + 2 * rounds)) round $r: two independent processes, 1 thread each ..." >&2
  train "$work/one.bin" "pair-a$r" env RAYON_NUM_THREADS=1 > "$work/step-a" &
  pid=$!
  train "$work/one.bin" "pair-b$r" env RAYON_NUM_THREADS=1 > "$work/step-b"
  wait "$pid"
  echo "$((2 + 2 * r))/$((3 + 2 * rounds)) round $r: mpirun -np 2 ..." >&2
  # shellcheck disable=SC2086 # MPIRUN_ARGS is a list of words
  s_mpi="$(train "$work/two.bin" "mpi$r" mpirun --oversubscribe --mca btl self,vader -x RAYON_NUM_THREADS=1 ${MPIRUN_ARGS:-} -np 2)"
  exposed="$(sed -n 's/.*all-reduce after the first step: \([0-9.]*\) ms exposed.*/\1/p' "$work/mpi$r.log")"
  flight="$(sed -n 's/.*ms exposed of \([0-9.]*\) ms in flight per step.*/\1/p' "$work/mpi$r.log")"
  parts="$(sed -n 's/.*in flight per step (\(.*\))$/\1/p' "$work/mpi$r.log")"
  # Each rank's exposed seconds, from the per-rank lines.
  ranks="$(sed -n 's/^  rank \([0-9]*\): .*(\([0-9.]*\)s of them the gradient all-reduce.*/\2/p' "$work/mpi$r.log" | paste -sd/)"
  [ -n "$exposed" ] && [ -n "$flight" ] && [ -n "$parts" ] && [ -n "$ranks" ] || {
    echo "mpi$r: no all-reduce times in the run's last lines (alexrt built without --features mpi, or too old)" >&2
    exit 1
  }
  rows+=("$(cat "$work/step-a") $(cat "$work/step-b") $s_mpi $exposed $flight ${ranks:-?}|$parts")
done
echo "$((3 + 2 * rounds))/$((3 + 2 * rounds)) mpirun -np 2 alexrt bench --ab-all-reduce ($pairs pairs of steps) ..." >&2
# shellcheck disable=SC2086 # MPIRUN_ARGS is a list of words
mpirun --oversubscribe --mca btl self,vader -x RAYON_NUM_THREADS=1 ${MPIRUN_ARGS:-} -np 2 "$BIN/alexrt" bench "$work/two.bin" --device cpu \
  --steps "$pairs" --ab-all-reduce > "$work/ab.txt" 2> "$work/ab.log" || { echo "the A/B run failed:" >&2; tail -5 "$work/ab.log" >&2; exit 1; }
load_after="$(uptime)"
python3 - "$batch" "$s_1t" "$s_all" "${rows[@]}" > "$work/table.md" <<'PY'
import statistics, sys
batch = int(sys.argv[1])
s1, sall = float(sys.argv[2]), float(sys.argv[3])
rounds = []
for row in sys.argv[4:]:
    nums, parts = row.split("|", 1)
    sa, sb, smpi, exposed, flight, ranks = nums.split()
    sa, sb, smpi, exposed, flight = map(float, (sa, sb, smpi, exposed, flight))
    rounds.append((sa, sb, smpi, exposed, flight, ranks, parts))
print(f"| run | step (s) | images/s |")
print(f"| --- | ---: | ---: |")
print(f"| N=1, 1 thread | {s1:.3f} | {batch / s1:.1f} |")
print(f"| N=1, all threads | {sall:.3f} | {batch / sall:.1f} |")
print()
print("| round | 2 independent processes, 1 thread each: step (s) | N=2 (mpirun -np 2): step (s) | N=2 / independent | all-reduce per step, rank 0: exposed / in flight (ms) | exposed per rank (s) | rank 0's exposed time: where (ms) |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
ratios = []
for i, (sa, sb, smpi, exposed, flight, ranks, parts) in enumerate(rounds, 1):
    spair = (sa + sb) / 2
    ratios.append(smpi / spair)
    print(f"| {i} | {spair:.3f} ({sa:.3f}, {sb:.3f}) | {smpi:.3f} | {smpi / spair:.3f} | "
          f"{exposed:.0f} / {flight:.0f} ({100 * exposed / 1000 / smpi:.1f}% / {100 * flight / 1000 / smpi:.1f}% of the step) | {ranks} | {parts} |")
print()
median = statistics.median(ratios)
smpi = statistics.median(r[2] for r in rounds)
exposed = statistics.median(r[3] for r in rounds)
flight = statistics.median(r[4] for r in rounds)
print(f"- communication overhead: N=2 step / all-reduce-free step, median of {len(ratios)} rounds = {median:.3f} "
      f"({100 * (median - 1):+.1f}%; rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
print(f"- rank 0's all-reduce exposed, median: {exposed:.0f} ms per step ({100 * exposed / 1000 / smpi:.1f}% of the median N=2 step); "
      f"hidden behind the backward pass: {100 * (1 - exposed / flight) if flight > 0 else 0:.0f}% of its time in flight")
print(f"- scaling efficiency N=2 vs N=1 on one core each (median N=2 step): {s1 / smpi:.2f}; "
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
  echo "  (from one step's end to the next's); all-reduce, per step after the first: exposed is the time"
  echo "  the step stood still for it (starting: host copies and the MPI call; advancing: MPI_Test between"
  echo "  nodes; waiting: where the averages are read, for MPI and for the other rank; averaging: scaling"
  echo "  the sums back into the gradients), in flight the time from the first bucket's start to the last"
  echo "  one's completion; ${rounds} rounds, each an independent pair then an N=2 run"
  echo
  cat "$work/table.md"
  echo
  echo "Within one run (step 5): \`mpirun -np 2 alexrt bench two.bin --steps $pairs --ab-all-reduce\`:"
  echo
  sed 's/^/    /' "$work/ab.txt"
  # Earlier runs of the day stay below the newest.
  if [ -f "$out" ]; then echo; echo "---"; echo; cat "$out"; fi
} > "$work/result.md"
mv "$work/result.md" "$out"
head -n 30 "$out"

#!/usr/bin/env bash
# The tests, as the README gives them and CI runs them: installs what they need where it can
# (scripts/deps.sh: Open MPI, Mesa's lavapipe; as root or with passwordless sudo), says
# `SKIPPED: <what> because <why>` for what it cannot, then runs `cargo test --workspace --locked`,
# with alexrt's `mpi` feature when Open MPI is usable. Extra arguments go to cargo test:
#   scripts/test.sh -p alexc
#   scripts/test.sh --features alexrt/cuda     # on a machine with an NVIDIA GPU
# ALEXNET_NO_INSTALL=1 installs nothing. docs/testing.md says what each test needs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "no cargo: install Rust 1.92 or later (https://rustup.rs), then run $0 again" >&2
  exit 1
fi

# shellcheck source=scripts/deps.sh
. scripts/deps.sh

command=(cargo test --workspace --locked)
if [ "$DEPS_MPI" = 1 ]; then
  command+=(--features alexrt/mpi)
fi
case " $* " in
  *alexrt/cuda*) ;;
  *) echo "SKIPPED: the CUDA and NCCL tests (runtime/tests/nccl.rs) because they need an NVIDIA GPU and the cuda feature (scripts/test.sh --features alexrt/cuda there)" ;;
esac

command+=("$@")
echo "${command[*]}"
exec "${command[@]}"

#!/usr/bin/env bash
# Builds what scripts/device-check.sh carries to a GPU machine: alexc and alexrt in release mode
# with the CUDA feature, stripped, in ./bin, with bin/COMMIT naming the commit they were built from
# (45 MB for alexrt: under the device tool's 64 MiB carry limit).
#   scripts/build-device-bin.sh     # then run scripts/device-check.sh on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/alexnet-target}"
cargo build --release --locked --features cuda -p alexrt -p alexc
mkdir -p bin
for b in alexc alexrt; do
  strip -o "bin/$b.tmp" "$CARGO_TARGET_DIR/release/$b"
  mv "bin/$b.tmp" "bin/$b"
done
commit="$(git rev-parse --short HEAD)"
git diff --quiet HEAD || commit="$commit-dirty"
echo "$commit" > bin/COMMIT
ls -la bin

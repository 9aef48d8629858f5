# shellcheck shell=bash disable=SC2034 # it sets variables for the scripts that source it
# What the build and the tests need from the machine, installed where this user can: sourced by
# scripts/test.sh (the README's test command) and .ci/run, from the repository root.
#
# It exports the environment the tests run in, then, on Debian or Ubuntu as root or with
# passwordless sudo, installs with apt-get what is missing:
#   - a C compiler and linker (build-essential), without which nothing builds;
#   - Open MPI and libclang (libopenmpi-dev openmpi-bin libclang-dev), for alexrt's `mpi` feature
#     and the data-parallel tests;
#   - Mesa's lavapipe (mesa-vulkan-drivers libvulkan1), Vulkan on the CPU, for the wgpu kernel tests;
#   - a Python virtual environment under ~/.cache with tests/requirements.txt (onnx, onnxruntime,
#     tensorboard: the interchange tests; never torch).
# It sets DEPS_MPI=1 when Open MPI is usable, DEPS_VULKAN=1 when lavapipe is installed, and
# ALEXNET_TEST_PYTHON to the venv's python when one was made; for each thing it cannot have it
# prints `SKIPPED: <what> because <why>`. ALEXNET_NO_INSTALL=1 installs nothing.

# Build outputs live outside the clone, so that later runs on this machine are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/alexnet-target}"
# The data-parallel tests run mpirun, as root in containers.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# wgpu's Vulkan loader looks here; containers often leave it unset.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

DEPS_MPI=0 DEPS_VULKAN=0
deps_why_not=""     # why the last deps_install could not install
deps_apt_updated=0

# Installs Debian packages, or says why not in deps_why_not and returns 1.
deps_install() {
  local sudo=()
  if [ -n "${ALEXNET_NO_INSTALL:-}" ]; then
    deps_why_not="ALEXNET_NO_INSTALL is set"
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    deps_why_not="there is no apt-get here to install $* with"
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      deps_why_not="this user is not root and has no passwordless sudo (sudo apt-get install $*)"
      return 1
    fi
  fi
  echo "installing $* (apt-get)"
  if [ "$deps_apt_updated" = 0 ]; then
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq; then
      deps_why_not="apt-get update failed (above)"
      return 1
    fi
    deps_apt_updated=1
  fi
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
    deps_why_not="apt-get install $* failed (above)"
    return 1
  fi
}

# Whether CHECK passes, after installing PACKAGES if it did not; if not, deps_why_not says why.
deps_ensure() { # CHECK PACKAGES...
  local check="$1"
  shift
  deps_why_not=""
  "$check" && return 0
  deps_install "$@" || return 1
  "$check" && return 0
  deps_why_not="it is still missing after apt-get install $*"
  return 1
}

deps_have_cc() { command -v cc >/dev/null 2>&1; }

# mpirun and mpicc, and the libclang that the `mpi` crate's bindings are generated with.
deps_have_mpi() {
  command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1 || return 1
  [ -n "${LIBCLANG_PATH:-}" ] || compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null \
    || compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null
}

# Mesa's lavapipe, where tests/e2e/wgpu_kernels.rs looks for it.
deps_have_lavapipe() { compgen -G '/usr/share/vulkan/icd.d/lvp_icd.*.json' >/dev/null; }

if ! deps_ensure deps_have_cc build-essential; then
  echo "no C compiler and linker (cc), which the build needs: $deps_why_not" >&2
  return 1
fi

if deps_ensure deps_have_mpi libopenmpi-dev openmpi-bin libclang-dev; then
  DEPS_MPI=1
  echo "Open MPI: $(mpirun --version 2>/dev/null | head -n 1)"
else
  echo "SKIPPED: the data-parallel tests (tests/e2e/data_parallel*.rs, alexrt's mpi feature) because Open MPI is not installed and $deps_why_not"
fi

if deps_ensure deps_have_lavapipe mesa-vulkan-drivers libvulkan1; then
  DEPS_VULKAN=1
  echo "Vulkan on the CPU: $(compgen -G '/usr/share/vulkan/icd.d/lvp_icd.*.json' | head -n 1)"
else
  echo "SKIPPED: the wgpu kernel tests (tests/e2e/wgpu_kernels.rs) because Mesa's lavapipe is not installed and $deps_why_not"
fi

# Python packages for tests that need them, listed in tests/requirements.txt: one venv,
# remade when the list changes.
if [ -f tests/requirements.txt ]; then
  deps_venv="$HOME/.cache/alexnet-test-venv"
  deps_stamp="$deps_venv/requirements.sha256"
  deps_sum=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$deps_stamp" 2>/dev/null)" != "$deps_sum" ]; then
    rm -rf "$deps_venv"
    deps_why_not="python3 -m venv or pip install failed (above)"
    if { python3 -m venv "$deps_venv" 2>/dev/null \
      || { rm -rf "$deps_venv"; deps_install python3-venv && python3 -m venv "$deps_venv"; }; } \
      && "$deps_venv/bin/pip" install -q -r tests/requirements.txt; then
      echo "$deps_sum" >"$deps_stamp"
    else
      echo "SKIPPED: the Python-based tests (tests/requirements.txt) because their virtual environment could not be made: $deps_why_not"
      rm -rf "$deps_venv"
    fi
  fi
  if [ -f "$deps_stamp" ]; then
    export ALEXNET_TEST_PYTHON="$deps_venv/bin/python"
  fi
fi

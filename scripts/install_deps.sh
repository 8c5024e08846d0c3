#!/usr/bin/env bash
# Installs what qtrain needs to build, test and run on Debian/Ubuntu (run as root).
#   build: cmake, gcc/g++, make, pkg-config; OpenBLAS (OpenMP build); Check for the tests
#   data:  bible-kjv, the default corpus (the King James Bible, offline)
#   plots: gnuplot-nox, which `qtrain study` draws its PNG plots with (pngcairo terminal)
#   MPI:   Open MPI (openmpi-bin: mpirun; libopenmpi-dev: mpi.h, libmpi) for data-parallel
#          training on the CPU backend and the mpi tests (cmake/dist.cmake builds them only
#          where MPI is found; QT_NO_MPI=1 skips installing it)
# With --tests (scripts/test.sh) also what only some tests need, best effort for Python: where it
# cannot be installed, those tests report themselves skipped with the reason.
#   fuzz:   clang and its sanitizer/libFuzzer runtime, for the fuzz targets (tests/fuzz, CTest
#           label fuzz): libclang-rt-dev where the release has it, else libclang-rt-14-dev
#   python: torch, numpy, transformers (the Hugging Face export round trip)
set -euo pipefail
with_tests=0
[ "${1:-}" = "--tests" ] && with_tests=1
pkgs=(cmake gcc g++ make pkg-config libopenblas-openmp-dev check bible-kjv gnuplot-nox)
if [ "$with_tests" = 1 ]; then
  pkgs+=(clang)
  if apt-cache show libclang-rt-dev >/dev/null 2>&1; then
    pkgs+=(libclang-rt-dev)
  else
    pkgs+=(libclang-rt-14-dev)
  fi
fi
if [ -z "${QT_NO_MPI:-}" ]; then
  pkgs+=(openmpi-bin libopenmpi-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "qtrain: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ---- Python for the transformers round trip (tests/export), best effort ----------------------
# torch (CPU) and numpy from Debian (python3-torch: 1.13 on Debian 12; PyTorch's own CPU wheel
# index is not reachable from every machine, and PyPI's Linux torch wheel pulls gigabytes of
# CUDA libraries), transformers, safetensors and tokenizers from the Python package index into
# .venv/, which also sees Debian's packages. transformers < 4.46: 4.50 and later need torch >= 2,
# and from 4.46 generate() imports torch.distributed.fsdp, which torch 1.13 cannot on Python 3.11.
# Nothing here can fail the install: without these packages the export_transformers test
# reports itself skipped, with the reason. QT_SKIP_PYTHON=1 skips the block.
# (set -e does not apply inside a function whose status is tested: each step says || return.)
install_python_deps() {
  local root venv SUDO="" py_missing=() p
  root="$(cd "$(dirname "$0")/.." && pwd)" || return 1
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  for p in python3 python3-numpy python3-torch python3-venv; do
    dpkg -s "$p" >/dev/null 2>&1 || py_missing+=("$p")
  done
  if [ ${#py_missing[@]} -gt 0 ]; then
    echo "qtrain: installing ${py_missing[*]} (the transformers export test)" >&2
    $SUDO apt-get update -qq || return 1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${py_missing[@]}" || return 1
  fi
  venv="$root/.venv"
  if ! "$venv/bin/python3" -c "import torch, transformers, safetensors, tokenizers" \
       >/dev/null 2>&1; then
    echo "qtrain: installing transformers, safetensors, tokenizers into $venv" >&2
    /usr/bin/python3 -m venv --system-site-packages "$venv" || return 1
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q \
      "transformers>=4.40,<4.46" safetensors tokenizers || return 1
  fi
}
if [ "$with_tests" = 1 ] && [ "${QT_SKIP_PYTHON:-0}" != 1 ] && ! install_python_deps; then
  echo "qtrain: note: the Python packages of the transformers export test did not install;" \
       "that test will report itself skipped" >&2
fi

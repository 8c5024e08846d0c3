#!/usr/bin/env bash
# Installs what qtrain needs to build, test and run on Debian/Ubuntu (run as root).
#   build: cmake, gcc/g++, make, pkg-config; OpenBLAS (OpenMP build); Check for the tests
#   data:  bible-kjv, the default corpus (the King James Bible, offline)
#   MPI:   Open MPI (openmpi-bin: mpirun; libopenmpi-dev: mpi.h, libmpi) for data-parallel
#          training on the CPU backend and the mpi tests (cmake/dist.cmake builds them only
#          where MPI is found; QT_NO_MPI=1 skips installing it)
set -euo pipefail
pkgs=(cmake gcc g++ make pkg-config libopenblas-openmp-dev check bible-kjv)
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

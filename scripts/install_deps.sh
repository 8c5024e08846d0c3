#!/usr/bin/env bash
# Installs what qtrain needs to build, test and run on Debian/Ubuntu (run as root).
#   build: cmake, gcc/g++, make, pkg-config; OpenBLAS (OpenMP build); Check for the tests
#   data:  bible-kjv, the default corpus (the King James Bible, offline)
#   fuzz:  clang and its sanitizer/libFuzzer runtime, for the fuzz targets (tests/fuzz, CTest
#          label fuzz): libclang-rt-dev where the release has it, else libclang-rt-14-dev
set -euo pipefail
pkgs=(cmake gcc g++ make pkg-config libopenblas-openmp-dev check bible-kjv clang)
if apt-cache show libclang-rt-dev >/dev/null 2>&1; then
  pkgs+=(libclang-rt-dev)
else
  pkgs+=(libclang-rt-14-dev)
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

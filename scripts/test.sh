#!/usr/bin/env bash
# Installs, builds and runs the whole test suite (CTest: Check suites, sanitizer subset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j 2 "$@"

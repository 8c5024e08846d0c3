#!/usr/bin/env bash
# run_fuzz.sh BIN CORPUS RUNS WORKDIR: the CTest regression of one fuzz target (label fuzz).
# Runs RUNS executions with a fixed seed, starting from the committed seeds in CORPUS (read,
# never written: new inputs go to WORKDIR/corpus, recreated each time, so every run starts the
# same); a crash is saved as WORKDIR/crash-* and fails the test. Longer runs: scripts/fuzz.sh.
set -euo pipefail
bin=$1 corpus=$2 runs=$3 work=$4
if [ ! -x "$bin" ]; then
  echo "run_fuzz: $bin is missing; build it: cmake --build build --target qt_fuzz" >&2
  exit 1
fi
rm -rf "$work"
mkdir -p "$work/corpus"
exec "$bin" -runs="$runs" -seed=1 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" "$corpus"

#!/usr/bin/env bash
# Fuzzes one reader for longer than the CTest regression (which runs each target 2000 times):
#
#     bash scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags...]
#
# TARGET: checkpoint | shard | tokenizer | config (tests/fuzz/fuzz_TARGET.c says what each
# reads and which properties it checks); SECONDS: default 120. Builds the targets first if
# needed (clang with libFuzzer: scripts/install_deps.sh installs it; the build directory is
# $QT_BUILD_DIR, default build). What the fuzzer finds is kept in
# <build>/fuzz/work/TARGET/corpus across runs (the committed seeds in tests/fuzz/corpus/TARGET
# are read, never written); a crashing input is saved as <build>/fuzz/work/TARGET/crash-* and
# the script exits non-zero. Reproduce one with: <build>/fuzz/fuzz_TARGET <crash file>.
# The last line sums up: executions, coverage (cov: edges, ft: features) and crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bash scripts/fuzz.sh checkpoint|shard|tokenizer|config [SECONDS] [libFuzzer flags]"
target=${1:-}
case "$target" in
  checkpoint|shard|tokenizer|config) ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
secs=${2:-120}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "fuzz.sh: SECONDS must be a positive integer, got '$secs'; $usage" >&2
  exit 2
fi
shift $(( $# >= 2 ? 2 : 1 ))
build=${QT_BUILD_DIR:-build}
bin=$build/fuzz/fuzz_$target
if [ ! -x "$bin" ]; then
  [ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target qt_fuzz
fi
if [ ! -x "$bin" ]; then
  echo "fuzz.sh: $bin was not built: clang with libFuzzer is missing (see the configure" \
       "output, or run scripts/install_deps.sh)" >&2
  exit 1
fi
work=$build/fuzz/work/$target
mkdir -p "$work/corpus"
log=$work/last.log
set +e
"$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -max_len=8192 \
  -print_final_stats=1 -artifact_prefix="$work/" "$@" "$work/corpus" "tests/fuzz/corpus/$target" \
  2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
crashes=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o \
  -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
echo "fuzz.sh: $target: ${runs:-?} executions in $secs s, cov ${cov:-?}, ft ${ft:-?}," \
     "corpus $(ls "$work/corpus" | wc -l) inputs, $crashes crash file(s) in $work (exit $rc)"
exit "$rc"

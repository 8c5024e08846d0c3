#!/bin/sh
# cuda_coverage.sh: line coverage of kernels/cuda/*.cu by the emulated CUDA tests, with gcov.
#
#   scripts/cuda_coverage.sh [build-dir]        (default: <repo>/build-coverage)
#
# Configures a separate build with QT_CUDA_COVERAGE=ON (the emulated kernels compiled with
# --coverage -O0; see cmake/cuda.cmake) and without the nvcc backend and sanitizer flavours,
# builds the test_cuda_*_emu tests, runs them, and runs gcov over the kernel objects. Prints
# each .cu file's executed/total lines and the total, and exits non-zero when a test fails or
# the total is below QT_CUDA_COVERAGE_MIN percent (default 90). Needs the CUDA toolkit's
# headers (the emulator) and gcov matching the compiler ($GCOV, default gcov).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-coverage}
min=${QT_CUDA_COVERAGE_MIN:-90}
gcov_tool=${GCOV:-gcov}
jobs=${QT_JOBS:-2}

mkdir -p "$build"
cmake -S "$root" -B "$build" -DQT_CUDA_COVERAGE=ON -DQT_CUDA_GPU=OFF \
    -DQT_SANITIZER_TESTS=OFF -DQT_CUEMU_SANITIZERS=OFF >"$build/cuda_coverage_configure.log" 2>&1 || {
    cat "$build/cuda_coverage_configure.log"
    echo "cuda_coverage: cmake configure failed" >&2
    exit 1
}
objdir=$build/CMakeFiles/qtrain_cuda_emu.dir/cuemu_sources
targets=
for t in "$root"/tests/cuda/test_cuda_*.c; do
    targets="$targets $(basename "$t" .c)_emu"
done
if [ -z "$targets" ]; then
    echo "cuda_coverage: no tests/cuda/test_cuda_*.c" >&2
    exit 1
fi
# shellcheck disable=SC2086 # one word per target
cmake --build "$build" -j"$jobs" --target $targets

# Counts from this run only.
find "$build" -name '*.gcda' -delete
test_rc=0
(cd "$build" && ctest -R '^test_cuda_.*_emu$' --output-on-failure) || test_rc=$?

if ! ls "$objdir"/*.gcno >/dev/null 2>&1; then
    echo "cuda_coverage: no .gcno files in $objdir: was QT_CUDA_COVERAGE applied?" >&2
    exit 1
fi
# gcov -n prints, per source file the object's code came from:
#   File '/path/kernels/cuda/x.cu'
#   Lines executed:93.10% of 145
# An object no test linked has no .gcda: gcov then counts all its lines as not executed.
report=$(cd "$objdir" && for g in *.gcno; do
    "$gcov_tool" -n -o . "${g%.gcno}.gcda" 2>/dev/null || true
done)
printf '%s\n' "$report" | awk -v dir="$root/kernels/cuda/" -v min="$min" -v rc="$test_rc" '
    /^File / {
        f = $0; sub(/^File .?/, "", f); sub(/.$/, "", f)
        keep = index(f, dir) == 1 && f ~ /\.cu$/
        next
    }
    /^Lines executed:/ && keep {
        split($0, a, /[:% ]+/) # Lines executed:<pct>% of <n>
        pct = a[3]; n = $NF
        hit[f] += int(pct * n / 100 + 0.5); tot[f] += n
        keep = 0
    }
    END {
        nfiles = 0
        for (f in tot) {
            name = substr(f, length(dir) + 1)
            printf "%-28s %5d / %5d lines  %6.2f%%\n", name, hit[f], tot[f], 100 * hit[f] / tot[f] | "sort"
            H += hit[f]; N += tot[f]; nfiles++
        }
        close("sort")
        if (N == 0) { print "cuda_coverage: no kernels/cuda/*.cu lines found"; exit 1 }
        pct = 100 * H / N
        printf "%-28s %5d / %5d lines  %6.2f%%  (%d files; minimum %s%%)\n", "TOTAL", H, N, pct, nfiles, min
        if (rc != 0) { print "cuda_coverage: emulated tests failed"; exit 1 }
        if (pct < min) { printf "cuda_coverage: line coverage %.2f%% is below %s%%\n", pct, min; exit 1 }
    }'

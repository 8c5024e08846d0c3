#!/bin/sh
# check_ptxas.sh: the compiler launcher of the nvcc build of kernels/cuda/*.cu (cmake/cuda.cmake),
# which makes a register spill or local memory in any kernel fail the build.
#
#   check_ptxas.sh <python3> <check_ptxas.py> <log-dir> <nvcc> <nvcc arguments...>
#
# Runs the compile with -Xptxas -v, saves everything it printed in <log-dir>/<source>.log, and
# hands the log to tests/cuemu/check_ptxas.py, which parses ptxas's resource report of every
# kernel for every architecture and fails on spill stores/loads, a stack frame or lmem > 0.
# On a failure the object file is removed, so the next build compiles and checks it again.
# A source that defines no __global__ function has no report and is only compiled; one that
# does must have a report (so a changed output format cannot pass the check vacuously).
set -u
if [ $# -lt 5 ]; then
    echo "usage: check_ptxas.sh <python3> <check_ptxas.py> <log-dir> <nvcc> <args...>" >&2
    exit 2
fi
py=$1
checker=$2
logdir=$3
shift 3

obj=
src=
prev=
for a in "$@"; do
    case $prev in -o) obj=$a ;; esac
    case $a in *.cu) src=$a ;; esac
    prev=$a
done
if [ -z "$src" ]; then
    # Not a compile of a .cu file (CMake's own probes): run it unchanged.
    exec "$@"
fi

mkdir -p "$logdir"
log=$logdir/$(basename "$src").log
"$@" -Xptxas -v >"$log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    grep -v -E '^ptxas info|^ +[0-9]+ bytes stack frame' "$log"
    exit $rc
fi

# Kernels are declared on lines that are not // comments.
if grep -E '^[^/]*__global__' "$src" >/dev/null 2>&1; then
    if ! "$py" "$checker" --quiet --log "$log"; then
        echo "check_ptxas.sh: $src: ptxas reports spills or local memory (full report: $log)"
        [ -n "$obj" ] && rm -f "$obj"
        exit 1
    fi
fi
# Anything else nvcc said (warnings of the host compiler, notes) still reaches the build log.
grep -v -E '^ptxas info|^ +[0-9]+ bytes stack frame' "$log" || true
exit 0

// bench/step_emu.c: `bench_step_emu`, the `qtrain bench step` command (bench/step.c) linked
// with the emulated CUDA backend (tests/cuemu): the record-only prediction where the build has
// no nvcc backend, and with --execute the step's kernels run on the emulator (small configs),
// which checks the record-only mode against an executed step.
#include "bench/step.h"

int main(int argc, char **argv) { return qt_cmd_bench_step(argc, argv); }

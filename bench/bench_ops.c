// bench/bench_ops.c: `bench_ops [FAMILY...] [--device cpu|cuda] [--json] [--reps N] [--quick]`,
// the op families' benchmarks as a program of their own: the same parser and run as
// `qtrain bench` (host/cli/cmd_bench.c, bench/registry.h), so the two never differ.
#include "commands.h"

int main(int argc, char **argv) { return qt_cmd_bench(argc, argv); }

// bench/registry.h: the op families' benchmarks (bench/bench_<family>.c), and the run over a
// selection of them that `qtrain bench` and `bench_ops` make.
#ifndef QTRAIN_BENCH_REGISTRY_H
#define QTRAIN_BENCH_REGISTRY_H

#include <stddef.h>
#include <stdio.h>

#include "bench/harness.h"

// Every family, in alphabetical order (the kernels/<family>.h names).
extern const qt_bench_family *const qt_bench_families[];
extern const int qt_bench_n_families;

// The family named `name`, or NULL.
const qt_bench_family *qt_bench_family_find(const char *name);
// The names, space-separated, into buf (for error messages).
void qt_bench_family_names(char *buf, size_t len);

// Measures the machine, prints the header, then runs the families `names` (n of them, checked
// with qt_bench_family_find first; n == 0: every family) in the order given, printing one line
// per case to `out`. Stops at the first failure (its message names family, device and shape).
qt_status qt_bench_main(const qt_bench_options *o, const char *const *names, int n, FILE *out);

#endif

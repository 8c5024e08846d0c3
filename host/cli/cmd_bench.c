// cmd_bench.c: `qtrain bench`: the op families' benchmarks (bench/registry.h) in this process,
// one table (or JSON lines) with the machine's measured roofline in the header.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "bench/registry.h"
#include "bench/step.h"
#include "commands.h"

static const char usage[] =
    "usage: qtrain bench [FAMILY...] [--device cpu|cuda] [--json] [--reps N] [--quick]\n"
    "       qtrain bench step [--config FILE] [--set key=value]... [--gpu a100|h100|h200] ...\n"
    "\n"
    "Times each op family's kernels (forward and backward where both exist) on the shapes of\n"
    "the default model and of OPT-125m (the LLaMA presets for dqt, rmsnorm, rope, swiglu),\n"
    "after measuring this machine's GEMM peak and copy bandwidth in the same run, and prints one\n"
    "table: median time, GB/s, GFLOP/s and the share of the measured roofline\n"
    "max(flops / peak, bytes / bandwidth).\n"
    "\n"
    "  FAMILY         one or more of the families below (default: all of them)\n"
    "  --device D     cpu (default; OMP_NUM_THREADS threads) or cuda (device 0, fp16 storage)\n"
    "  --json         one JSON object per line (the machine first) instead of the table\n"
    "  --reps N       timed repetitions per case (default: at least 3, until 0.3 s)\n"
    "  --quick        tiny shapes and a short machine measurement (a smoke test, not a\n"
    "                 measurement)\n"
    "\n"
    "`qtrain bench step --help` describes the step's cost model and its options.\n"
    "\n"
    "families:";

int qt_cmd_bench(int argc, char **argv) {
    // bench step: one training step's launches, predicted and measured (bench/step.h)
    if (argc > 1 && strcmp(argv[1], "step") == 0) return qt_cmd_bench_step(argc - 1, argv + 1);
    qt_bench_options o = {.device = QT_BENCH_CPU, .json = 0, .reps = 0, .quick = 0};
    const char **names = calloc((size_t)argc, sizeof *names);
    if (!names) {
        qt_error(QT_ERR_OOM, "out of memory");
        return qt_cli_fail();
    }
    int n = 0, rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *v = NULL;
        if (qt_args_switch(argv, i, "help")) {
            fputs(usage, stdout);
            for (int f = 0; f < qt_bench_n_families; f++)
                printf(" %s", qt_bench_families[f]->name);
            putchar('\n');
            free(names);
            return 0;
        } else if (qt_args_switch(argv, i, "json")) {
            o.json = 1;
        } else if (qt_args_switch(argv, i, "quick")) {
            o.quick = 1;
        } else if (qt_args_flag(argc, argv, &i, "reps", &v)) {
            if (qt_args_int("reps", v, 1, 100000, &o.reps) != QT_OK) rc = qt_cli_fail();
        } else if (qt_args_flag(argc, argv, &i, "device", &v)) {
            if (qt_args_need_value("device", v) != QT_OK) {
                rc = qt_cli_fail();
            } else if (strcmp(v, "cpu") == 0) {
                o.device = QT_BENCH_CPU;
            } else if (strcmp(v, "cuda") == 0) {
                o.device = QT_BENCH_CUDA;
            } else {
                qt_error(QT_ERR_ARG, "--device %s is not a benchmark device; use cpu or cuda", v);
                rc = qt_cli_fail();
            }
        } else if (strncmp(argv[i], "-", 1) == 0) {
            qt_args_unknown("bench", argv[i]);
            rc = qt_cli_fail();
        } else {
            names[n++] = argv[i];
        }
    }
    if (rc == 0 && qt_bench_main(&o, names, n, stdout) != QT_OK) rc = qt_cli_fail();
    free(names);
    return rc;
}

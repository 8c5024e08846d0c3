// bench_quant.c: the CPU quantizer (qt_cpu_quant_fake, kernels/cpu/quant.c) on a (768, 3072)
// fp32 tensor (an fc1 weight of the default model) in the common modes: 8-bit absmax per
// tensor/row/group of 128, nearest and stochastic, ternary absmean, and the calibration-time
// ranges (percentile, MSE search). Each time is the minimum over --reps repetitions (the
// machine is shared and noisy); Melem/s = elements / time.
// Usage: bench_quant [--reps R]   (threads: OMP_NUM_THREADS)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/quant.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            const long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > 100000) {
                fprintf(stderr, "bench_quant: error: --reps %s is not in 1..100000\n", argv[i]);
                return 2;
            }
            reps = (int)v;
        } else {
            fprintf(stderr, "bench_quant: error: unknown argument %s; usage: bench_quant "
                            "[--reps R]\n", argv[i]);
            return 2;
        }
    }
    const size_t rows = 768, cols = 3072, n = rows * cols;
    float *x = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    if (!x || !out) {
        fprintf(stderr, "bench_quant: error: out of memory\n");
        return 1;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * 0.1f;
    }
    struct {
        const char *name;
        int bits, gran, rnd, range, reps_div;
    } cases[] = {
        {"int8 absmax per-tensor nearest", 8, QT_QUANT_PER_TENSOR, QT_QUANT_NEAREST,
         QT_QUANT_RANGE_ABSMAX, 1},
        {"int8 absmax per-row nearest", 8, QT_QUANT_PER_ROW, QT_QUANT_NEAREST,
         QT_QUANT_RANGE_ABSMAX, 1},
        {"int8 absmax per-group128 nearest", 8, QT_QUANT_PER_GROUP, QT_QUANT_NEAREST,
         QT_QUANT_RANGE_ABSMAX, 1},
        {"int8 absmax per-row stochastic", 8, QT_QUANT_PER_ROW, QT_QUANT_STOCHASTIC,
         QT_QUANT_RANGE_ABSMAX, 1},
        {"ternary absmean per-tensor", QT_QUANT_TERNARY, QT_QUANT_PER_TENSOR, QT_QUANT_NEAREST,
         QT_QUANT_RANGE_ABSMEAN, 1},
        {"int8 percentile 99.999 per-tensor", 8, QT_QUANT_PER_TENSOR, QT_QUANT_NEAREST,
         QT_QUANT_RANGE_PERCENTILE, 1},
        {"int8 MSE search per-row (100 candidates)", 8, QT_QUANT_PER_ROW, QT_QUANT_NEAREST,
         QT_QUANT_RANGE_MSE, 5},
    };
    printf("%-42s %10s %10s\n", "mode (768 x 3072 fp32)", "ms", "Melem/s");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qt_quant_params p = qt_quant_params_default(cases[c].bits);
        p.granularity = (qt_quant_granularity)cases[c].gran;
        p.group_size = 128;
        p.rounding = (qt_quant_rounding)cases[c].rnd;
        p.range = (qt_quant_range)cases[c].range;
        p.seed = 1;
        p.stream = qt_quant_stream(0, 1);
        double best = 1e30;
        const int r = reps / cases[c].reps_div > 0 ? reps / cases[c].reps_div : 1;
        for (int k = 0; k < r; k++) {
            const double t0 = now_s();
            if (qt_cpu_quant_fake(&p, NULL, out, x, rows, cols) != QT_OK) {
                fprintf(stderr, "bench_quant: error: %s\n", qt_last_error());
                return 1;
            }
            const double t = now_s() - t0;
            if (t < best) best = t;
        }
        printf("%-42s %10.2f %10.1f\n", cases[c].name, best * 1e3, (double)n / best * 1e-6);
    }
    free(x);
    free(out);
    return 0;
}

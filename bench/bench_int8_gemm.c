// bench_int8_gemm.c: the INT8 GEMM (qt_cpu_gemm_s8s32) and the fused W8A8 linear
// (qt_cpu_linear_s8) on every path this CPU supports, next to OpenBLAS cblas_sgemm on the same
// shapes, all in one run: the default model's linear layers with M = 1024 tokens.
// Each time is the minimum over --reps repetitions (the machine is shared and noisy).
// GOP/s counts 2 M N K operations for both. ratio = sgemm time / int8 time (> 1: int8 faster).
// Usage: bench_int8_gemm [--reps R]   (threads: OMP_NUM_THREADS, for both libraries)
#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/int8_gemm.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static const char *const paths[] = {"portable", "avx2"};
#define N_PATHS ((int)(sizeof(paths) / sizeof(paths[0])))

int main(int argc, char **argv) {
    int reps = 10;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > 100000) {
                fprintf(stderr, "bench_int8_gemm: error: --reps %s is not in 1..100000\n",
                        argv[i]);
                return 1;
            }
            reps = (int)v;
        } else {
            fprintf(stderr, "bench_int8_gemm: error: unknown flag %s; use --reps R\n", argv[i]);
            return 1;
        }
    }
    const int M = 1024;
    const int shapes[][2] = {{768, 256}, {256, 256}, {1024, 256}, {256, 1024}, {4096, 256}};
    const int n_shapes = (int)(sizeof(shapes) / sizeof(shapes[0]));
    printf("bench_int8_gemm: M = %d, %d threads, min of %d reps\n", M, omp_get_max_threads(),
           reps);
    printf("%-6s %-6s %-16s %10s %9s %10s %9s %7s\n", "N", "K", "path", "int8 ms", "GOP/s",
           "sgemm ms", "GFLOP/s", "ratio");
    for (int s = 0; s < n_shapes; s++) {
        int N = shapes[s][0], K = shapes[s][1];
        size_t mk = (size_t)M * K, nk = (size_t)N * K, mn = (size_t)M * N;
        int8_t *A = malloc(mk), *B = malloc(nk);
        int32_t *C = malloc(mn * sizeof(int32_t));
        float *Af = malloc(mk * sizeof(float)), *Bf = malloc(nk * sizeof(float));
        float *Cf = malloc(mn * sizeof(float)), *as = malloc(M * sizeof(float));
        float *bs = malloc(N * sizeof(float)), *bias = malloc(N * sizeof(float));
        if (!A || !B || !C || !Af || !Bf || !Cf || !as || !bs || !bias) {
            fprintf(stderr, "bench_int8_gemm: error: out of memory at N=%d K=%d\n", N, K);
            return 1;
        }
        uint64_t seed = 0x9E3779B97F4A7C15ull + (uint64_t)s;
        for (size_t i = 0; i < mk; i++) A[i] = (int8_t)(int)(rng_next(&seed) & 0xFF);
        for (size_t i = 0; i < nk; i++) B[i] = (int8_t)(int)(rng_next(&seed) & 0xFF);
        for (size_t i = 0; i < mk; i++) Af[i] = (float)A[i] / 127.0f;
        for (size_t i = 0; i < nk; i++) Bf[i] = (float)B[i] / 127.0f;
        for (int i = 0; i < M; i++) as[i] = 0.01f;
        for (int i = 0; i < N; i++) bs[i] = 0.001f, bias[i] = 0.1f;
        double ops = 2.0 * M * N * K;

        // sgemm first: C = A B^T, row-major, the same TN layout.
        double t_sgemm = 1e30;
        for (int r = 0; r <= reps; r++) { // r = 0 warms up
            double t0 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, Af, K, Bf, K,
                        0.0f, Cf, N);
            double t = now_s() - t0;
            if (r > 0 && t < t_sgemm) t_sgemm = t;
        }
        for (int p = 0; p < N_PATHS; p++) {
            if (qt_cpu_gemm_s8_set_path(paths[p]) != QT_OK) {
                printf("%-6d %-6d %-16s skipped: %s\n", N, K, paths[p], qt_last_error());
                continue;
            }
            for (int fused = 0; fused < 2; fused++) {
                double t_best = 1e30;
                for (int r = 0; r <= reps; r++) {
                    double t0 = now_s();
                    qt_status st = fused ? qt_cpu_linear_s8(Cf, A, as, B, bs, bias, M, N, K)
                                         : qt_cpu_gemm_s8s32(C, A, B, M, N, K);
                    double t = now_s() - t0;
                    if (st != QT_OK) {
                        fprintf(stderr, "bench_int8_gemm: error: %s\n", qt_last_error());
                        return 1;
                    }
                    if (r > 0 && t < t_best) t_best = t;
                }
                char label[32];
                snprintf(label, sizeof(label), "%s%s", paths[p], fused ? "+linear" : "");
                printf("%-6d %-6d %-16s %10.3f %9.1f %10.3f %9.1f %7.2f\n", N, K, label,
                       1e3 * t_best, ops / t_best * 1e-9, 1e3 * t_sgemm, ops / t_sgemm * 1e-9,
                       t_sgemm / t_best);
                fflush(stdout);
            }
        }
        free(A);
        free(B);
        free(C);
        free(Af);
        free(Bf);
        free(Cf);
        free(as);
        free(bs);
        free(bias);
    }
    qt_cpu_gemm_s8_set_path(NULL);
    return 0;
}

// bench_cuda_int8_gemm.c: the CUDA INT8 GEMM (qt_cuda_gemm_s8s32, mma and cuBLASLt) and the
// fused W8A8 linear (qt_cuda_linear_s8 to fp16) next to the fp16 cuBLASLt GEMM (qt_cuda_gemm,
// fp32 accumulation) on the same shapes, all in one run: the default model's linear layers
// (qt_config_defaults: qkv, attention projection, MLP up and down, the LM head) with
// M = batch_size * seq_len tokens.
// Each time is the mean of --reps launches after --warmup, measured with CUDA events on one
// stream. TOP/s counts 2 M N K operations for all. ratio = fp16 time / int8 time (> 1: int8
// faster).
// Usage: bench_cuda_int8_gemm [--reps R] [--warmup W]
// Built against the nvcc backend (cmake/cuda.cmake defines QT_HAVE_CUDA); without it, or
// without a device, it says so and exits 0.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/config.h"

#ifdef QT_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "kernels/int8_gemm.h"
#include "kernels/linear.h"
#include "qtrain/backend.h"
#endif

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (!*v || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "bench_cuda_int8_gemm: error: %s %s is not in %d..%d\n", flag, v, lo, hi);
        return 0;
    }
    *out = (int)x;
    return 1;
}

#ifdef QT_HAVE_CUDA
#define CHECK_CUDA(expr)                                                                      \
    do {                                                                                      \
        cudaError_t e_ = (expr);                                                              \
        if (e_ != cudaSuccess) {                                                              \
            fprintf(stderr, "bench_cuda_int8_gemm: error: %s failed at %s:%d: %s\n", #expr,   \
                    __FILE__, __LINE__, cudaGetErrorString(e_));                              \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)
#define CHECK_QT(expr)                                                                        \
    do {                                                                                      \
        if ((expr) != QT_OK) {                                                                \
            fprintf(stderr, "bench_cuda_int8_gemm: error: %s: %s\n", #expr, qt_last_error()); \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

typedef enum { RUN_S8_MMA, RUN_S8_LT, RUN_LIN_MMA, RUN_LIN_LT, RUN_F16 } run_kind;

typedef struct {
    int M, N, K;
    int8_t *A, *B;
    int32_t *C;
    void *out; // fp16 (M, N)
    float *as, *bs;
    void *ha, *hb, *hc; // fp16 operands of the float GEMM
    void *gemm;         // qt_cuda_gemm handle
    cudaStream_t s;
} bench_ctx;

static void run_once(bench_ctx *b, run_kind k) {
    switch (k) {
    case RUN_S8_MMA:
        CHECK_QT(qt_cuda_gemm_s8s32(b->s, b->C, b->A, b->B, b->M, b->N, b->K, QT_CUDA_INT8_MMA));
        break;
    case RUN_S8_LT:
        CHECK_QT(qt_cuda_gemm_s8s32(b->s, b->C, b->A, b->B, b->M, b->N, b->K, QT_CUDA_INT8_CUBLASLT));
        break;
    case RUN_LIN_MMA:
    case RUN_LIN_LT:
        CHECK_QT(qt_cuda_linear_s8(b->s, QT_DTYPE_F16, b->out, b->A, b->as, b->B, b->bs, NULL, b->M, b->N, b->K, k == RUN_LIN_MMA ? QT_CUDA_INT8_MMA
                                                          : QT_CUDA_INT8_CUBLASLT));
        break;
    case RUN_F16: {
        // out (M, N) = x (M, K) w (N, K)^T, as the backend's linear_fwd calls it
        qt_gemm_desc d;
        memset(&d, 0, sizeof d);
        d.trans_b = 1;
        d.M = b->M;
        d.N = b->N;
        d.K = b->K;
        d.alpha = 1.0f;
        d.lda = b->K;
        d.ldb = b->K;
        d.ldc = b->N;
        d.batch = 1;
        d.inner = 1;
        CHECK_QT(qt_cuda_gemm(b->s, QT_DTYPE_F16, &d, b->ha, b->hb, b->hc, b->gemm));
        break;
    }
    }
}

// Mean milliseconds per call.
static double time_ms(bench_ctx *b, run_kind k, int warmup, int reps) {
    for (int i = 0; i < warmup; i++) run_once(b, k);
    cudaEvent_t e0, e1;
    CHECK_CUDA(cudaEventCreate(&e0));
    CHECK_CUDA(cudaEventCreate(&e1));
    CHECK_CUDA(cudaEventRecord(e0, b->s));
    for (int i = 0; i < reps; i++) run_once(b, k);
    CHECK_CUDA(cudaEventRecord(e1, b->s));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float ms = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    CHECK_CUDA(cudaEventDestroy(e0));
    CHECK_CUDA(cudaEventDestroy(e1));
    return (double)ms / reps;
}

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    CHECK_CUDA(cudaMalloc(&p, bytes));
    return p;
}
#endif

int main(int argc, char **argv) {
    int reps = 50, warmup = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            if (!parse_int("--reps", argv[++i], 1, 100000, &reps)) return 1;
        } else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) {
            if (!parse_int("--warmup", argv[++i], 0, 100000, &warmup)) return 1;
        } else {
            fprintf(stderr, "bench_cuda_int8_gemm: error: unknown flag %s; use --reps R "
                    "--warmup W\n", argv[i]);
            return 1;
        }
    }
#ifndef QT_HAVE_CUDA
    (void)reps;
    (void)warmup;
    printf("bench_cuda_int8_gemm: built without the nvcc CUDA backend: nothing to measure\n");
    return 0;
#else
    if (qt_cuda_device_count() == 0) {
        printf("bench_cuda_int8_gemm: no CUDA device: nothing to measure\n");
        return 0;
    }
    qt_config cfg;
    qt_config_defaults(&cfg);
    const int M = cfg.batch_size * cfg.seq_len, C = cfg.d_model;
    const int shapes[][3] = {
        {3 * C, C, 0}, {C, C, 1}, {cfg.d_ff, C, 2}, {C, cfg.d_ff, 3}, {cfg.vocab_size, C, 4}};
    const char *names[] = {"qkv", "attn proj", "mlp up", "mlp down", "lm head"};
    struct cudaDeviceProp prop;
    CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
    printf("bench_cuda_int8_gemm: %s (sm_%d%d), M = %d tokens, mean of %d reps after %d warmup\n",
           prop.name, prop.major, prop.minor, M, reps, warmup);
    printf("%-10s %6s %6s  %9s %9s %9s %9s %9s  %7s %7s %7s %7s\n", "layer", "N", "K",
           "f16 us", "s8mma us", "s8lt us", "linmma us", "linlt us", "mma x", "lt x",
           "linmma x", "linlt x");
    bench_ctx b;
    memset(&b, 0, sizeof b);
    CHECK_CUDA(cudaStreamCreate(&b.s));
    CHECK_QT(qt_cuda_gemm_create(&b.gemm, 0));
    for (int si = 0; si < (int)(sizeof shapes / sizeof shapes[0]); si++) {
        b.M = M;
        b.N = shapes[si][0];
        b.K = shapes[si][1];
        size_t mk = (size_t)b.M * b.K, nk = (size_t)b.N * b.K, mn = (size_t)b.M * b.N;
        b.A = dev_alloc(mk);
        b.B = dev_alloc(nk);
        b.C = dev_alloc(mn * sizeof(int32_t));
        b.out = dev_alloc(mn * 2);
        b.as = dev_alloc((size_t)b.M * sizeof(float));
        b.bs = dev_alloc((size_t)b.N * sizeof(float));
        b.ha = dev_alloc(mk * 2);
        b.hb = dev_alloc(nk * 2);
        b.hc = dev_alloc(mn * 2);
        // Bytes 0x11 (int8 17; fp16 ~6e-4; fp32 scales ~1e-28): finite values, not a
        // data-dependent speed anyway.
        CHECK_CUDA(cudaMemset(b.A, 0x11, mk));
        CHECK_CUDA(cudaMemset(b.B, 0x11, nk));
        CHECK_CUDA(cudaMemset(b.as, 0x11, (size_t)b.M * sizeof(float)));
        CHECK_CUDA(cudaMemset(b.bs, 0x11, (size_t)b.N * sizeof(float)));
        CHECK_CUDA(cudaMemset(b.ha, 0x11, mk * 2));
        CHECK_CUDA(cudaMemset(b.hb, 0x11, nk * 2));
        double t[5];
        const run_kind kinds[5] = {RUN_F16, RUN_S8_MMA, RUN_S8_LT, RUN_LIN_MMA, RUN_LIN_LT};
        for (int k = 0; k < 5; k++) t[k] = time_ms(&b, kinds[k], warmup, reps);
        printf("%-10s %6d %6d  %9.1f %9.1f %9.1f %9.1f %9.1f  %7.2f %7.2f %7.2f %7.2f\n",
               names[si], b.N, b.K, 1e3 * t[0], 1e3 * t[1], 1e3 * t[2], 1e3 * t[3], 1e3 * t[4],
               t[0] / t[1], t[0] / t[2], t[0] / t[3], t[0] / t[4]);
        double ops = 2.0 * b.M * b.N * b.K;
        printf("%-10s %6s %6s  %9.1f %9.1f %9.1f %9.1f %9.1f  (TOP/s)\n", "", "", "",
               ops / t[0] * 1e-9, ops / t[1] * 1e-9, ops / t[2] * 1e-9, ops / t[3] * 1e-9,
               ops / t[4] * 1e-9);
        void *bufs[] = {b.A, b.B, b.C, b.out, b.as, b.bs, b.ha, b.hb, b.hc};
        for (int i = 0; i < 9; i++) CHECK_CUDA(cudaFree(bufs[i]));
    }
    qt_cuda_gemm_destroy(b.gemm);
    qt_cuda_int8_release();
    CHECK_CUDA(cudaStreamDestroy(b.s));
    return 0;
#endif
}

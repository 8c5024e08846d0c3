// bench/harness_cuda.c: the CUDA side of the benchmark harness (bench/harness_cuda.h): device 0,
// one stream, event timing around each call, the machine measurement (the fp16 cuBLASLt GEMM
// peak, the device-to-device copy bandwidth) and device memory. Compiled only into the CUDA
// build (cmake/cuda.cmake, QT_HAVE_CUDA), on the nvcc kernels (qtrain_cuda_kernels).
#include "bench/harness_cuda.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/cuda_check.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"

struct qt_bench_cuda {
    cudaStream_t s;
    cudaEvent_t e0, e1;
    void *gemm; // qt_cuda_gemm handle
};

qt_status qt_bench_cuda_open(qt_bench_cuda **out, char *name, size_t name_len) {
    *out = NULL;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        (void)cudaGetLastError(); // clear the "no device" / "no driver" error
        return qt_error(QT_ERR_UNSUPPORTED,
                        "--device cuda: no CUDA device (cudaGetDeviceCount found none or no "
                        "driver is loaded); use --device cpu");
    }
    qt_bench_cuda *c = calloc(1, sizeof *c);
    if (!c) return qt_error(QT_ERR_OOM, "bench: out of memory");
    *out = c;
    struct cudaDeviceProp prop;
    QT_CHECK_CUDA(cudaSetDevice(0));
    QT_CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
    snprintf(name, name_len, "%s (sm_%d%d)", prop.name, prop.major, prop.minor);
    QT_CHECK_CUDA(cudaStreamCreate(&c->s));
    QT_CHECK_CUDA(cudaEventCreate(&c->e0));
    QT_CHECK_CUDA(cudaEventCreate(&c->e1));
    return qt_cuda_gemm_create(&c->gemm, 0);
}

void qt_bench_cuda_close(qt_bench_cuda *c) {
    if (!c) return;
    if (c->s) cudaStreamSynchronize(c->s);
    if (c->gemm) qt_cuda_gemm_destroy(c->gemm);
    if (c->e0) cudaEventDestroy(c->e0);
    if (c->e1) cudaEventDestroy(c->e1);
    if (c->s) cudaStreamDestroy(c->s);
    free(c);
}

qt_cuda_stream qt_bench_cuda_stream(const qt_bench_cuda *c) { return (qt_cuda_stream)c->s; }

void *qt_bench_cuda_gemm_handle(const qt_bench_cuda *c) { return c->gemm; }

qt_status qt_bench_cuda_time(qt_bench_cuda *c, qt_bench_fn fn, void *arg, double *ms) {
    QT_CHECK_CUDA(cudaEventRecord(c->e0, c->s));
    QT_TRY(fn(arg));
    QT_CHECK_CUDA(cudaEventRecord(c->e1, c->s));
    QT_CHECK_CUDA(cudaEventSynchronize(c->e1));
    QT_CHECK_CUDA(cudaGetLastError()); // an asynchronous fault of the op under test
    float t = 0.0f;
    QT_CHECK_CUDA(cudaEventElapsedTime(&t, c->e0, c->e1));
    *ms = (double)t;
    return QT_OK;
}

typedef struct {
    qt_bench_cuda *c;
    qt_gemm_desc d;
    void *A, *B, *C;
} peak_args;

static qt_status peak_gemm_call(void *arg) {
    peak_args *p = arg;
    return qt_cuda_gemm(p->c->s, QT_DTYPE_F16, &p->d, p->A, p->B, p->C, p->c->gemm);
}

// The best of `reps` timed calls after one warm-up.
static qt_status best_of(qt_bench_cuda *c, qt_bench_fn fn, void *arg, int reps, double *ms) {
    double t = 0;
    *ms = 0;
    for (int r = 0; r <= reps; r++) {
        QT_TRY(qt_bench_cuda_time(c, fn, arg, &t));
        if (r > 0 && (*ms == 0 || t < *ms)) *ms = t;
    }
    return QT_OK;
}

qt_status qt_bench_cuda_peak_gemm(qt_bench_cuda *c, int n, int reps, double *flops_per_s) {
    const size_t nn = (size_t)n * n;
    peak_args p = {.c = c, .d = qt_gemm_desc_single(0, 0, n, n, n, 0.0f, n, n, n)};
    qt_status st = QT_OK;
    double ms = 0;
    if (cudaMalloc(&p.A, nn * 2) != cudaSuccess || cudaMalloc(&p.B, nn * 2) != cudaSuccess ||
        cudaMalloc(&p.C, nn * 2) != cudaSuccess) {
        st = qt_error(QT_ERR_OOM, "bench: cannot allocate the %d^3 peak GEMM on the device", n);
        goto out;
    }
    // Nonzero operands (zeros can understate the power draw): bytes 0x2e make fp16 0x2e2e ~0.097,
    // bytes 0x21 0x2121 ~0.010; a dot product of n <= 8192 terms stays below 8, finite.
    if (cudaMemset(p.A, 0x2e, nn * 2) != cudaSuccess ||
        cudaMemset(p.B, 0x21, nn * 2) != cudaSuccess) {
        st = qt_error(QT_ERR_CUDA, "bench: cudaMemset of the peak GEMM's operands failed");
        goto out;
    }
    st = best_of(c, peak_gemm_call, &p, reps, &ms);
    if (st == QT_OK) *flops_per_s = 2.0 * n * (double)nn / (ms * 1e-3);
out:
    cudaFree(p.A);
    cudaFree(p.B);
    cudaFree(p.C);
    (void)cudaGetLastError();
    return st;
}

typedef struct {
    qt_bench_cuda *c;
    void *dst, *src;
    size_t bytes;
} copy_args;

static qt_status copy_call(void *arg) {
    copy_args *p = arg;
    QT_CHECK_CUDA(cudaMemcpyAsync(p->dst, p->src, p->bytes, cudaMemcpyDeviceToDevice, p->c->s));
    return QT_OK;
}

qt_status qt_bench_cuda_peak_copy(qt_bench_cuda *c, size_t bytes, int reps, double *bytes_per_s) {
    copy_args p = {.c = c, .bytes = bytes};
    qt_status st = QT_OK;
    double ms = 0;
    if (cudaMalloc(&p.src, bytes) != cudaSuccess || cudaMalloc(&p.dst, bytes) != cudaSuccess) {
        st = qt_error(QT_ERR_OOM, "bench: cannot allocate 2 x %zu MiB for the copy bandwidth",
                      bytes >> 20);
        goto out;
    }
    if (cudaMemset(p.src, 1, bytes) != cudaSuccess || cudaMemset(p.dst, 0, bytes) != cudaSuccess) {
        st = qt_error(QT_ERR_CUDA, "bench: cudaMemset of the copy buffers failed");
        goto out;
    }
    st = best_of(c, copy_call, &p, reps, &ms);
    if (st == QT_OK) *bytes_per_s = 2.0 * (double)bytes / (ms * 1e-3);
out:
    cudaFree(p.src);
    cudaFree(p.dst);
    (void)cudaGetLastError();
    return st;
}

qt_status qt_bench_cuda_alloc(void **p, size_t bytes) {
    QT_CHECK_CUDA(cudaMalloc(p, bytes));
    return QT_OK;
}

void qt_bench_cuda_free(void *p) { cudaFree(p); }

qt_status qt_bench_cuda_upload(qt_bench_cuda *c, void *dst, const void *src, size_t bytes) {
    QT_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->s));
    QT_CHECK_CUDA(cudaStreamSynchronize(c->s));
    return QT_OK;
}

qt_status qt_bench_cuda_zero(qt_bench_cuda *c, void *dst, size_t bytes) {
    QT_CHECK_CUDA(cudaMemsetAsync(dst, 0, bytes, c->s));
    return QT_OK;
}

qt_status qt_bench_cuda_from_f32(qt_bench_cuda *c, void *dst, qt_dtype dt, const float *src,
                                 size_t n) {
    if (dt == QT_DTYPE_F32) return qt_bench_cuda_upload(c, dst, src, n * sizeof(float));
    void *tmp = NULL;
    QT_CHECK_CUDA(cudaMalloc(&tmp, n * sizeof(float)));
    qt_status st = qt_bench_cuda_upload(c, tmp, src, n * sizeof(float));
    if (st == QT_OK) st = qt_cuda_cast(c->s, dt, dst, QT_DTYPE_F32, tmp, n);
    if (st == QT_OK && cudaStreamSynchronize(c->s) != cudaSuccess)
        st = qt_error(QT_ERR_CUDA, "bench: the fp32 -> %s cast of %zu elements failed: %s",
                      qt_dtype_name(dt), n, cudaGetErrorString(cudaGetLastError()));
    cudaFree(tmp);
    return st;
}

// activation.cu: GELU and ReLU forward and backward; fp32 math on fp32/fp16/bf16 storage.
//
// Math: GELU, tanh approximation (Hendrycks & Gimpel 2016),
//   gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), evaluated as
//   x sigmoid(2u) = x / (1 + e), e = exp(-2u) (one exp, no cancellation in 1 + tanh(u));
//   gelu'(x) = s + x (e s) s 2 u'(x), s = 1 / (1 + e), u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
//   exp's argument is capped at 88.3 like the CPU's vexpf, so e is finite and e s s never
//   becomes inf * 0.
// CPU twin: kernels/cpu/activation_impl.h (GELU, ReLU).
// Contract (kernels/activation.h): forwards overwrite (out may alias x); backwards ADD
// dout f'(x) into dx, except when dx aliases dout: then dx is overwritten with dout f'(x) (the
// in-place form, as on the CPU). No reductions: deterministic.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include <stdint.h>

#include "kernels/activation.h"

// ---- launch constants -----------------------------------------------------------------------
// Element-wise kernels: 256 threads a block, grid-stride loops over at most EW_MAX_BLOCKS
// blocks (enough to fill any current GPU many times over; a larger n loops).
#define EW_THREADS 256
#define EW_MAX_BLOCKS 8192
#define GELU_K 0.7978845608028654f // sqrt(2 / pi)
#define GELU_C 0.044715f
#define EXP_ARG_MAX 88.3f // the CPU's vexpf cap: exp stays finite

// ---- device helpers (storage <-> fp32: common.cuh) -----------------------------------

// exp(min(a, 88.3)), NaN passing through (the compare is false for NaN).
static __device__ __forceinline__ float exp_capped(float a) {
    return expf(a > EXP_ARG_MAX ? EXP_ARG_MAX : a);
}

static __device__ __forceinline__ float gelu(float x) {
    const float u = GELU_K * (x + GELU_C * x * x * x);
    return x / (1.0f + exp_capped(-2.0f * u));
}

static __device__ __forceinline__ float gelu_grad(float x) {
    const float x2 = x * x;
    const float u = GELU_K * (x + GELU_C * x2 * x);
    const float e = exp_capped(-2.0f * u), s = 1.0f / (1.0f + e);
    const float du = GELU_K * (1.0f + 3.0f * GELU_C * x2);
    return s + x * ((e * s) * s) * 2.0f * du;
}

// ---- kernels --------------------------------------------------------------------------------
// Element-wise kernels: thread i of the grid handles elements i, i + gridDim.x * blockDim.x,
// ... < n (the grid-stride loop is the bounds guard). No shared memory. Pointers are not
// __restrict__: the contract lets outputs alias inputs element for element.

template <typename T>
static __global__ void __launch_bounds__(EW_THREADS)
    gelu_fwd_elem(T *out, const T *x, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        qt_st(out + i, gelu(qt_ld(x + i)));
}

// overwrite: dx aliases dout, dx = dout gelu'(x); otherwise dx += dout gelu'(x).
template <typename T>
static __global__ void __launch_bounds__(EW_THREADS)
    gelu_bwd_elem(T *dx, const T *dout, const T *x, size_t n, int overwrite) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float prev = overwrite ? 0.0f : qt_ld(dx + i);
        qt_st(dx + i, prev + qt_ld(dout + i) * gelu_grad(qt_ld(x + i)));
    }
}

template <typename T>
static __global__ void __launch_bounds__(EW_THREADS)
    relu_fwd_elem(T *out, const T *x, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = qt_ld(x + i);
        qt_st(out + i, v < 0.0f ? 0.0f : v); // NaN stays NaN
    }
}

// dx (+)= dout where x > 0; overwrite as in gelu_bwd_elem.
template <typename T>
static __global__ void __launch_bounds__(EW_THREADS)
    relu_bwd_elem(T *dx, const T *dout, const T *x, size_t n, int overwrite) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float prev = overwrite ? 0.0f : qt_ld(dx + i);
        qt_st(dx + i, prev + (qt_ld(x + i) > 0.0f ? qt_ld(dout + i) : 0.0f));
    }
}

// ---- launchers ------------------------------------------------------------------------------

// Calls fn<T>(args...) for the storage type T of dt (checked before).
#define DT_DISPATCH(dt, fn, ...)                                                              \
    do {                                                                                      \
        switch (dt) {                                                                         \
        case QT_DTYPE_F32: fn<float>(__VA_ARGS__); break;                                     \
        case QT_DTYPE_F16: fn<__half>(__VA_ARGS__); break;                                    \
        default: fn<__nv_bfloat16>(__VA_ARGS__); break;                                       \
        }                                                                                     \
    } while (0)

static int dtype_ok(qt_dtype dt) {
    return dt == QT_DTYPE_F32 || dt == QT_DTYPE_F16 || dt == QT_DTYPE_BF16;
}

// 1 if p is aligned for elements of dt.
static int aligned(const void *p, qt_dtype dt) {
    return ((uintptr_t)p % qt_dtype_size(dt)) == 0;
}

// Blocks of EW_THREADS for n >= 1 elements, at most EW_MAX_BLOCKS (the kernels grid-stride).
static unsigned ew_blocks(size_t n) {
    const size_t b = QT_CEIL_DIV(n, (size_t)EW_THREADS);
    return (unsigned)(b < EW_MAX_BLOCKS ? b : EW_MAX_BLOCKS);
}

// The checks every element-wise launcher makes: dtype, non-NULL and aligned tensors (n > 0).
static qt_status check_elem(const char *op, qt_dtype dt, size_t n, const void *p0,
                            const void *p1, const void *p2) {
    if (!dtype_ok(dt))
        return qt_error(QT_ERR_ARG, "%s: dtype %d is not fp32, fp16 or bf16; pass a qt_dtype",
                        op, (int)dt);
    if (n == 0) return QT_OK;
    if (!p0 || !p1 || !p2)
        return qt_error(QT_ERR_ARG, "%s: a tensor pointer is NULL (n = %zu)", op, n);
    if (!aligned(p0, dt) || !aligned(p1, dt) || !aligned(p2, dt))
        return qt_error(QT_ERR_ARG, "%s: a tensor is not aligned to its %s element size", op,
                        qt_dtype_name(dt));
    return QT_OK;
}

template <typename T>
static void gelu_fwd_launch(cudaStream_t st, void *out, const void *x, size_t n) {
    QT_LAUNCH(gelu_fwd_elem<T>, ew_blocks(n), EW_THREADS, 0, st, (T *)out, (const T *)x, n);
}
template <typename T>
static void gelu_bwd_launch(cudaStream_t st, void *dx, const void *dout, const void *x,
                            size_t n) {
    QT_LAUNCH(gelu_bwd_elem<T>, ew_blocks(n), EW_THREADS, 0, st, (T *)dx, (const T *)dout,
              (const T *)x, n, (int)(dx == dout));
}
template <typename T>
static void relu_fwd_launch(cudaStream_t st, void *out, const void *x, size_t n) {
    QT_LAUNCH(relu_fwd_elem<T>, ew_blocks(n), EW_THREADS, 0, st, (T *)out, (const T *)x, n);
}
template <typename T>
static void relu_bwd_launch(cudaStream_t st, void *dx, const void *dout, const void *x,
                            size_t n) {
    QT_LAUNCH(relu_bwd_elem<T>, ew_blocks(n), EW_THREADS, 0, st, (T *)dx, (const T *)dout,
              (const T *)x, n, (int)(dx == dout));
}
extern "C" qt_status qt_cuda_gelu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x,
                                      size_t n) {
    const char *op = "cuda gelu_fwd";
    QT_TRY(check_elem(op, dt, n, out, x, x));
    if (n == 0) return QT_OK;
    DT_DISPATCH(dt, gelu_fwd_launch, (cudaStream_t)s, out, x, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_gelu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                                      const void *x, size_t n) {
    const char *op = "cuda gelu_bwd";
    QT_TRY(check_elem(op, dt, n, dx, dout, x));
    if (n == 0) return QT_OK;
    DT_DISPATCH(dt, gelu_bwd_launch, (cudaStream_t)s, dx, dout, x, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_relu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x,
                                      size_t n) {
    const char *op = "cuda relu_fwd";
    QT_TRY(check_elem(op, dt, n, out, x, x));
    if (n == 0) return QT_OK;
    DT_DISPATCH(dt, relu_fwd_launch, (cudaStream_t)s, out, x, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_relu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                                      const void *x, size_t n) {
    const char *op = "cuda relu_bwd";
    QT_TRY(check_elem(op, dt, n, dx, dout, x));
    if (n == 0) return QT_OK;
    DT_DISPATCH(dt, relu_bwd_launch, (cudaStream_t)s, dx, dout, x, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// swiglu.cu: the SwiGLU gated unit forward and backward on fp32/fp16/bf16 storage with fp32
// math.
//
// Math (Shazeer 2020, "GLU Variants Improve Transformer"; PAPERS.md, issue 4 section 3): each
// row of x (N, 2F) is [a | b] (the fused gate and up projections), out (N, F) = silu(a) b,
//   silu(a) = a s, s = sigmoid(a) = 1 / (1 + e), e = exp(-a);
//   backward: da = dout b silu'(a), silu'(a) = s (1 + a e s) (1 - s written as e s: no
//   cancellation for large a); db = dout silu(a).
//   exp's argument is capped at 88.3 like the CPU's vexpf, so e is finite and e s never becomes
//   inf * 0 for a << 0.
// CPU twin: kernels/cpu/swiglu_impl.h (qt_cpu_swiglu_{fwd,bwd}).
// Contract (kernels/swiglu.h): the forward overwrites out; the backward ADDS into dx
// (N, 2F). out must not alias x, and dx must not alias x or dout.
// Determinism: no reductions.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "kernels/swiglu.h"

// ---- launch constants -----------------------------------------------------------------------
// Element-wise: common.cuh's QT_EW_THREADS a block, grid-stride over at most QT_EW_MAX_BLOCKS
// blocks. exp's argument is capped by qt_exp_capped (common.cuh).

// ---- kernels --------------------------------------------------------------------------------
// Thread mapping: thread j of the grid handles output elements j, j + gridDim.x * blockDim.x,
// ... < N F (the grid-stride loop is the bounds guard); element k is (n, f) = (k / F, k % F),
// reading a = x[n, f] and b = x[n, F + f]. No shared memory.

template <typename T>
static __global__ void __launch_bounds__(QT_EW_THREADS)
    swiglu_fwd_elem(T *out, const T *x, size_t total, int F) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
        const size_t n = k / (size_t)F, f = k % (size_t)F;
        const T *xa = x + n * 2 * (size_t)F + f;
        const float a = qt_ld(xa), b = qt_ld(xa + F);
        qt_st(out + k, a / (1.0f + qt_exp_capped(-a)) * b);
    }
}

template <typename T>
static __global__ void __launch_bounds__(QT_EW_THREADS)
    swiglu_bwd_elem(T *dx, const T *dout, const T *x, size_t total, int F) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
        const size_t n = k / (size_t)F, f = k % (size_t)F, ia = n * 2 * (size_t)F + f;
        const float a = qt_ld(x + ia), b = qt_ld(x + ia + F), g = qt_ld(dout + k);
        const float e = qt_exp_capped(-a), s = 1.0f / (1.0f + e);
        const float silu = a * s, dsilu = s * (1.0f + a * (e * s));
        qt_add_st(dx + ia, g * b * dsilu);
        qt_add_st(dx + ia + F, g * silu);
    }
}

// ---- launchers ------------------------------------------------------------------------------

static qt_status check_args(const char *op, qt_dtype dt, int N, int F) {
    QT_TRY(qt_check_dtype(op, dt));
    if (N < 0 || F < 1)
        return qt_error(QT_ERR_ARG, "%s: N = %d, F = %d; need N >= 0 and F >= 1", op, N, F);
    return QT_OK;
}

template <typename T>
static void swiglu_fwd_launch(cudaStream_t st, void *out, const void *x, size_t total, int F) {
    QT_LAUNCH(swiglu_fwd_elem<T>, qt_ew_blocks(total, 1), QT_EW_THREADS, 0, st, (T *)out,
              (const T *)x, total, F);
}

template <typename T>
static void swiglu_bwd_launch(cudaStream_t st, void *dx, const void *dout, const void *x,
                              size_t total, int F) {
    QT_LAUNCH(swiglu_bwd_elem<T>, qt_ew_blocks(total, 1), QT_EW_THREADS, 0, st, (T *)dx,
              (const T *)dout, (const T *)x, total, F);
}

extern "C" qt_status qt_cuda_swiglu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x,
                                        int N, int F) {
    const char *op = "cuda swiglu_fwd";
    QT_TRY(check_args(op, dt, N, F));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("out", out, dt), qt_arg("x", x, dt)));
    QT_DTYPE_DISPATCH(dt, swiglu_fwd_launch, (cudaStream_t)s, out, x, (size_t)N * (size_t)F, F);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_swiglu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx,
                                        const void *dout, const void *x, int N, int F) {
    const char *op = "cuda swiglu_bwd";
    QT_TRY(check_args(op, dt, N, F));
    if (N == 0) return QT_OK;
    QT_TRY(
        qt_check_tensors(op, qt_arg("dx", dx, dt), qt_arg("dout", dout, dt), qt_arg("x", x, dt)));
    if (dx == x || dx == dout)
        return qt_error(QT_ERR_ARG, "%s: dx must not alias x or dout; pass a separate gradient "
                                    "buffer", op);
    QT_DTYPE_DISPATCH(dt, swiglu_bwd_launch, (cudaStream_t)s, dx, dout, x, (size_t)N * (size_t)F,
                      F);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// One kernel per call. fwd: reads x (2 E N F), writes out (E N F); 5 flops per output (the
// sigmoid's exp, add and divide, a times it, times b). bwd: reads dout (E N F), x and dx (+=)
// (4 E N F), writes dx (2 E N F); 13 flops per output (the sigmoid (3), silu (1), silu' (4),
// the two gradients (3) and their adds (2)).

extern "C" void qt_cuda_swiglu_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const void *x,
                                        int N, int F) {
    (void)out, (void)x;
    if (N <= 0 || F < 1) return;
    const double nf = (double)N * F, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "swiglu_fwd_elem", 3 * E * nf, 5 * nf);
}

extern "C" void qt_cuda_swiglu_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dout,
                                        const void *x, int N, int F) {
    if (N <= 0 || F < 1 || dx == x || dx == dout) return;
    const double nf = (double)N * F, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "swiglu_bwd_elem", 7 * E * nf, 13 * nf);
}

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

#include "kernels/activation.h"

// ---- launch constants -----------------------------------------------------------------------
// Element-wise kernels: common.cuh's QT_EW_THREADS a block, grid-stride over at most
// QT_EW_MAX_BLOCKS blocks, in 16-byte chunks (qt_vec) when every pointer is 16-byte aligned,
// one element at a time otherwise.
// gelu_act and relu_act (the math above) live in common.cuh: cuBLASLt's activation epilogues
// in linear.cu's emulated build evaluate the same functions.

// One chunk of elements [i, i + W) of the backward (qt_grid_chunks), read whole, then written:
// dx = (overwrite ? 0 : dx) + dout f'(x); overwrite means dx aliases dout, so dx is not read.
template <typename Act, typename T> struct act_bwd_chunk {
    T *dx;
    const T *dout, *x;
    int overwrite;
    template <int W> __device__ __forceinline__ void apply(size_t i) const {
        const qt_vec<T, W> vg = qt_vec<T, W>::load(dout + i), vx = qt_vec<T, W>::load(x + i);
        qt_vec<T, W> vd = overwrite ? vg : qt_vec<T, W>::load(dx + i);
        QT_UNROLL
        for (int k = 0; k < W; k++)
            vd.set(k, (overwrite ? 0.0f : vd.get(k)) + Act::bwd(vg.get(k), vx.get(k)));
        vd.store(dx + i);
    }
};

// ---- kernels --------------------------------------------------------------------------------
// Thread -> data: qt_grid_chunks<W> (thread g takes the W-element chunks g, g + gridDim.x *
// blockDim.x, ..., then the n % W tail elements likewise; the loop bounds are the guards).
// W > 1: every pointer 16-byte aligned (checked by the launcher). No shared memory. Pointers
// are not __restrict__: the contract lets outputs alias inputs element for element.

template <typename Act, typename T, int W>
static __global__ void __launch_bounds__(QT_EW_THREADS) act_fwd_elem(T *out, const T *x, size_t n) {
    qt_grid_chunks<W>(n, qt_map_chunk<T, T, Act>{out, x, Act()});
}

template <typename Act, typename T, int W>
static __global__ void __launch_bounds__(QT_EW_THREADS)
    act_bwd_elem(T *dx, const T *dout, const T *x, size_t n, int overwrite) {
    qt_grid_chunks<W>(n, act_bwd_chunk<Act, T>{dx, dout, x, overwrite});
}

// ---- launchers ------------------------------------------------------------------------------

template <typename T, typename Act>
static void act_fwd_launch(Act, cudaStream_t st, void *out, const void *x, size_t n) {
    constexpr int v = qt_vec<T>::width;
    const int w = qt_vec_aligned(out, x) ? v : 1;
    QT_LAUNCH(w > 1 ? act_fwd_elem<Act, T, v> : act_fwd_elem<Act, T, 1>, qt_ew_blocks(n, w),
              QT_EW_THREADS, 0, st, (T *)out, (const T *)x, n);
}

template <typename T, typename Act>
static void act_bwd_launch(Act, cudaStream_t st, void *dx, const void *dout, const void *x,
                           size_t n) {
    constexpr int v = qt_vec<T>::width;
    const int w = qt_vec_aligned(dx, dout, x) ? v : 1;
    QT_LAUNCH(w > 1 ? act_bwd_elem<Act, T, v> : act_bwd_elem<Act, T, 1>, qt_ew_blocks(n, w),
              QT_EW_THREADS, 0, st, (T *)dx, (const T *)dout, (const T *)x, n, (int)(dx == dout));
}

template <typename Act>
static qt_status act_fwd_run(const char *op, qt_cuda_stream s, qt_dtype dt, void *out,
                             const void *x, size_t n) {
    QT_TRY(qt_check_elementwise(op, dt, n, qt_arg("out", out, dt), qt_arg("x", x, dt)));
    if (n == 0) return QT_OK;
    QT_DTYPE_DISPATCH(dt, act_fwd_launch, Act(), (cudaStream_t)s, out, x, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

template <typename Act>
static qt_status act_bwd_run(const char *op, qt_cuda_stream s, qt_dtype dt, void *dx,
                             const void *dout, const void *x, size_t n) {
    QT_TRY(qt_check_elementwise(op, dt, n, qt_arg("dx", dx, dt), qt_arg("dout", dout, dt),
                                qt_arg("x", x, dt)));
    if (n == 0) return QT_OK;
    QT_DTYPE_DISPATCH(dt, act_bwd_launch, Act(), (cudaStream_t)s, dx, dout, x, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_gelu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x,
                                      size_t n) {
    return act_fwd_run<gelu_act>("cuda gelu_fwd", s, dt, out, x, n);
}

extern "C" qt_status qt_cuda_gelu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                                      const void *x, size_t n) {
    return act_bwd_run<gelu_act>("cuda gelu_bwd", s, dt, dx, dout, x, n);
}

extern "C" qt_status qt_cuda_relu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x,
                                      size_t n) {
    return act_fwd_run<relu_act>("cuda relu_fwd", s, dt, out, x, n);
}

extern "C" qt_status qt_cuda_relu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                                      const void *x, size_t n) {
    return act_bwd_run<relu_act>("cuda relu_bwd", s, dt, dx, dout, x, n);
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// One kernel per call. Bytes (E = dtype size): fwd reads x and writes out (2 E n); bwd reads
// dout, x and dx (+=) and writes dx (4 E n), or 3 E n when dx aliases dout (overwritten, not
// read). Flops per element: GELU 9 forward (the cube, u, exp, 1 + e, the divide), 20 backward
// (the derivative's 18 terms, the product with dout and the add); ReLU 1 (the compare) and 2.

static void act_cost(qt_cost *c, const char *name, qt_dtype dt, size_t n, double streams,
                     double flops) {
    if (n == 0) return;
    qt_cost_kernel(c, name, (double)qt_dtype_size(dt) * streams * (double)n, flops * (double)n);
}

extern "C" void qt_cuda_gelu_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const void *x,
                                      size_t n) {
    (void)out, (void)x;
    act_cost(c, "act_fwd_elem<gelu>", dt, n, 2, 9);
}

extern "C" void qt_cuda_gelu_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dout,
                                      const void *x, size_t n) {
    (void)x;
    act_cost(c, "act_bwd_elem<gelu>", dt, n, dx == dout ? 3 : 4, 20);
}

extern "C" void qt_cuda_relu_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const void *x,
                                      size_t n) {
    (void)out, (void)x;
    act_cost(c, "act_fwd_elem<relu>", dt, n, 2, 1);
}

extern "C" void qt_cuda_relu_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dout,
                                      const void *x, size_t n) {
    (void)x;
    act_cost(c, "act_bwd_elem<relu>", dt, n, dx == dout ? 3 : 4, 2);
}

// dropout.cu: qt_cuda_dropout_{fwd,bwd}, inverted dropout with the counter-based Philox mask
// of base/philox.h (Salmon et al., SC 2011), bit-identical to the CPU's:
//   keep_i = [qt_u32_to_uniform(word i of qt_philox_block(seed, stream, i / 4)) >= prob]
//          = [qt_philox_uniform(seed, stream, i) >= prob],   s = 1 / (1 - prob) (0 if prob >= 1)
//   forward:  out_i = keep_i ? x_i * s : 0
//   backward: dx_i += keep_i ? dout_i * s : 0, or dx_i = ... when dx aliases dout
// CPU twin: kernels/cpu/dropout.c (qt_cpu_dropout_{fwd,bwd}). The product and the sum are each
// rounded once in fp32 (__fmul_rn, __fadd_rn: never contracted to an fma), as the CPU does, so
// fp32 results match it bit for bit and fp16/bf16 ones are the CPU's fp32 result rounded once.
// prob <= 0 copies (forward) or adds dout (backward; nothing when aliased) without drawing.
// Contract (kernels/dropout.h): the forward overwrites out and may run in place
// (out == x); the backward adds into dx unless dx == dout. Each element is read and written by
// one thread, so aliasing is safe.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "base/philox.h"
#include "kernels/dropout.h"

// ---- launch constants ----------------------------------------------------------------------
// One Philox call yields four words, so a thread owns a group of 4 consecutive elements (the
// CPU's grouping). 256 threads per block: the usual occupancy-friendly size for a streaming
// kernel; Philox (10 rounds of 2 multiplies) dominates, not memory.
#define GROUP 4
#define THREADS 256

// ---- device helpers ------------------------------------------------------------------------

// y_i = (overwrite ? 0 : y_i) + (keep_i ? x_i s : 0) for one element; keep is decided by the
// caller from the element's Philox word (always kept when !masked).
template <typename T>
static __device__ __forceinline__ void apply_one(T *y, const T *x, size_t i, bool keep, float s,
                                                 bool masked, bool overwrite) {
    const float xv = qt_to_f32(x[i]);
    const float v = !masked ? xv : keep ? __fmul_rn(xv, s) : 0.0f;
    qt_st(y + i, overwrite ? v : __fadd_rn(qt_to_f32(y[i]), v));
}

// ---- kernels -------------------------------------------------------------------------------

// Thread -> data: global thread g owns elements [4g, 4g + 4) ∩ [0, n) and, when masked, draws
// their four words with one qt_philox_block(seed, stream, g). The four elements are spelled
// out (not a loop over the word array) so the words stay in registers. No shared memory.
// Guards: threads with 4g >= n return; the last group checks each element against n.
template <typename T>
static __global__ void __launch_bounds__(THREADS)
    dropout_apply_group4(T *y, const T *x, size_t n, float prob, float s, uint64_t seed,
                         uint64_t stream, int masked, int overwrite) {
    const size_t g = (size_t)blockIdx.x * THREADS + threadIdx.x;
    const size_t i0 = g * GROUP;
    if (i0 >= n) return;
    qt_u32x4 r = {{0u, 0u, 0u, 0u}};
    if (masked) r = qt_philox_block(seed, stream, g);
    const bool m = masked != 0, ow = overwrite != 0;
    apply_one(y, x, i0, qt_u32_to_uniform(r.v[0]) >= prob, s, m, ow);
    if (i0 + 1 < n) apply_one(y, x, i0 + 1, qt_u32_to_uniform(r.v[1]) >= prob, s, m, ow);
    if (i0 + 2 < n) apply_one(y, x, i0 + 2, qt_u32_to_uniform(r.v[2]) >= prob, s, m, ow);
    if (i0 + 3 < n) apply_one(y, x, i0 + 3, qt_u32_to_uniform(r.v[3]) >= prob, s, m, ow);
}

// ---- launchers -----------------------------------------------------------------------------

template <typename T>
static void launch(cudaStream_t st, void *y, const void *x, size_t n, float prob, float s,
                   uint64_t seed, uint64_t stream, int masked, int overwrite) {
    const size_t blocks = QT_CEIL_DIV(QT_CEIL_DIV(n, (size_t)GROUP), (size_t)THREADS);
    QT_LAUNCH(dropout_apply_group4<T>, (unsigned)blocks, THREADS, 0, st, (T *)y, (const T *)x,
              n, prob, s, seed, stream, masked, overwrite);
}

// y = (overwrite ? 0 : y) + dropout(x), dispatched on dt.
static qt_status dropout_run(const char *op, qt_cuda_stream s, qt_dtype dt, void *y,
                             const void *x, size_t n, float prob, uint64_t seed,
                             uint64_t stream, int overwrite) {
    QT_TRY(qt_check_dtype(op, dt));
    if (prob != prob)
        return qt_error(QT_ERR_ARG, "%s: dropout probability is NaN; pass one in [0, 1)", op);
    if (n == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("y", y, dt), qt_arg("x", x, dt)));
    QT_TRY(qt_check_grid(op, QT_CEIL_DIV(QT_CEIL_DIV(n, (size_t)GROUP), (size_t)THREADS)));
    const int masked = prob > 0.0f;
    if (!masked && overwrite && y == x) return QT_OK; // copy onto itself
    // the CPU's scale, computed the same way on the host
    const float scale = !masked ? 1.0f : prob < 1.0f ? 1.0f / (1.0f - prob) : 0.0f;
    QT_DTYPE_DISPATCH(dt, launch, (cudaStream_t)s, y, x, n, prob, scale, seed, stream, masked,
                      overwrite);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_dropout_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x,
                                         size_t n, float prob, uint64_t seed, uint64_t stream) {
    return dropout_run("dropout_fwd", s, dt, out, x, n, prob, seed, stream, 1);
}

extern "C" qt_status qt_cuda_dropout_bwd(qt_cuda_stream s, qt_dtype dt, void *dx,
                                         const void *dout, size_t n, float prob, uint64_t seed,
                                         uint64_t stream) {
    // dx == dout: the sole contribution, overwritten (the CPU's rule)
    return dropout_run("dropout_bwd", s, dt, dx, dout, n, prob, seed, stream, dx == dout);
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// One kernel per call, none when it would copy a tensor onto itself (p = 0, in place). Bytes:
// reads x, writes y (2 E n), and reads y too when it accumulates (the backward into a separate
// dx: 3 E n). Flops per element: the compare with the uniform draw and the scaling when masked
// (the Philox draw is integer work and not counted), the add when accumulating.

static void dropout_cost(qt_cost *c, qt_dtype dt, const void *y, const void *x, size_t n,
                         float prob, int overwrite) {
    if (prob != prob || n == 0) return;
    const int masked = prob > 0.0f;
    if (!masked && overwrite && y == x) return;
    const double N = (double)n, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "dropout_apply_group4", (overwrite ? 2 : 3) * E * N,
                   ((masked ? 2 : 0) + (overwrite ? 0 : 1)) * N);
}

extern "C" void qt_cuda_dropout_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const void *x,
                                         size_t n, float prob, uint64_t seed, uint64_t stream) {
    (void)seed, (void)stream;
    dropout_cost(c, dt, out, x, n, prob, 1);
}

extern "C" void qt_cuda_dropout_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dout,
                                         size_t n, float prob, uint64_t seed, uint64_t stream) {
    (void)seed, (void)stream;
    dropout_cost(c, dt, dx, dout, n, prob, dx == dout);
}

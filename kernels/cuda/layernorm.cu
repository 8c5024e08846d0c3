// layernorm.cu: LayerNorm forward and backward, and the residual add fused with the LayerNorm
// that follows it, on fp32/fp16/bf16 storage with fp32 math.
//
// Math (Ba et al. 2016, "Layer Normalization"): over the last dimension of x (N, C),
//   mean = sum(x) / C; rstd = 1 / sqrt(sum((x - mean)^2) / C + eps)   (biased variance, two
//   passes so there is no E[x^2] - mean^2 cancellation), out = (x - mean) rstd w + b;
//   backward with xh = (x - mean) rstd and g = dout w:
//   dx = rstd (g - mean(g) - xh mean(g xh)), dw = sum_rows(dout xh), db = sum_rows(dout).
// CPU twin: kernels/cpu/layernorm_impl.h (qt_cpu_layernorm_{fwd,bwd}); qt_cpu_add for the add.
// Contract (kernels/layernorm.h): forwards overwrite out, mean, rstd (and resid); the
// backward ADDS into dx, dw, db (each may be NULL). mean and rstd are fp32 whatever dt is.
// qt_cuda_add_layernorm_fwd: resid = a + b rounded to dt, then out = LayerNorm(resid) computed
// from the rounded resid (what the backward will read back as its x); resid may alias a or b.
// Determinism: every reduction has a fixed order (warp butterflies, a fixed-shape tree), so
// results are bit-identical from run to run; no atomics.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "kernels/layernorm.h"

// ---- launch constants -----------------------------------------------------------------------
// Row kernels: one warp per row, LN_ROWS_PER_BLOCK warps per block (128 threads: enough warps
// per block for the scheduler, few enough that the last block of a small N wastes little).
#define LN_ROWS_PER_BLOCK 4
// dw/db kernel: a block owns LN_COLS (one warp's width, so each row's loads are coalesced)
// columns, and LN_ROW_LANES threads per column stride over the rows; the LN_ROW_LANES partial
// sums are then added by a fixed-shape tree in shared memory. A power of 2.
#define LN_COLS 32
#define LN_ROW_LANES 16

// ---- device helpers -------------------------------------------------------------------------

// The rest of a forward row after its first pass: one warp, lane `lane` holding the partial sum
// s of its columns lane, lane + 32, ... of r (C). mean = warp sum / C; a second pass sums the
// squared deviations, rstd = 1 / sqrt(that / C + eps); a third writes o (C) = (r - mean) rstd w
// + b; lane 0 stores mean[row], rstd[row]. Shared by both forward kernels, so they compute the
// same statistics in the same order.
template <typename T>
static __device__ __forceinline__ void layernorm_row_finish(T *o, float *mean, float *rstd, int row,
                                                            const T *r, const T *w, const T *b,
                                                            float s, int C, int lane) {
    const float inv_c = 1.0f / (float)C;
    const float mu = qt_warp_sum(s) * inv_c;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) {
        const float d = qt_ld(r + c) - mu;
        ss += d * d;
    }
    const float rs = 1.0f / sqrtf(qt_warp_sum(ss) * inv_c + QT_LAYERNORM_EPS);
    for (int c = lane; c < C; c += 32)
        qt_st(o + c, (qt_ld(r + c) - mu) * rs * qt_ld(w + c) + qt_ld(b + c));
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// ---- kernels --------------------------------------------------------------------------------

// out (N, C), mean (N), rstd (N) from x (N, C), w (C), b (C).
// Thread mapping: block (32, LN_ROWS_PER_BLOCK); warp threadIdx.y owns row
// blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.y, lane threadIdx.x visits columns lane, lane + 32,
// ... in three passes (sum, then layernorm_row_finish: squared deviations, output); x is re-read
// from L1/L2 rather than held in registers (no dynamically indexed arrays, so no local memory).
// Guards: a warp whose row is >= N exits as a whole (no block barrier follows).
template <typename T>
static __global__ void __launch_bounds__(32 * LN_ROWS_PER_BLOCK)
    layernorm_fwd_rowwarp(T *out, float *mean, float *rstd, const T *x, const T *w, const T *b,
                          int N, int C) {
    const int row = blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.y, lane = threadIdx.x;
    if (row >= N) return;
    const T *xr = x + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += qt_ld(xr + c);
    layernorm_row_finish(out + (size_t)row * C, mean, rstd, row, xr, w, b, s, C, lane);
}

// resid (N, C) = a + b (rounded to T), then out, mean, rstd = LayerNorm(resid) as above.
// Same mapping and guards as layernorm_fwd_rowwarp. resid may alias a or b: each element is
// read and then written by the same lane, and the later passes read resid back (the rounded
// value), so no pointer here is __restrict__.
template <typename T>
static __global__ void __launch_bounds__(32 * LN_ROWS_PER_BLOCK)
    add_layernorm_fwd_rowwarp(T *resid, T *out, float *mean, float *rstd, const T *a,
                              const T *b, const T *w, const T *bias, int N, int C) {
    const int row = blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.y, lane = threadIdx.x;
    if (row >= N) return;
    const size_t off = (size_t)row * C;
    T *r = resid + off;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) {
        qt_st(r + c, qt_ld(a + off + c) + qt_ld(b + off + c));
        s += qt_ld(r + c);
    }
    layernorm_row_finish(out + off, mean, rstd, row, (const T *)r, w, bias, s, C, lane);
}

// dx (N, C) += rstd (g - mean(g) - xh mean(g xh)), g = dout w, xh = (x - mean) rstd.
// Same mapping and guards as layernorm_fwd_rowwarp: two passes per row (the two sums, then dx).
template <typename T>
static __global__ void __launch_bounds__(32 * LN_ROWS_PER_BLOCK)
    layernorm_bwd_dx_rowwarp(T *dx, const T *dout, const T *x, const float *mean,
                             const float *rstd, const T *w, int N, int C) {
    const int row = blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.y, lane = threadIdx.x;
    if (row >= N) return;
    const size_t off = (size_t)row * C;
    const float mu = mean[row], rs = rstd[row], inv_c = 1.0f / (float)C;
    float sg = 0.0f, sgx = 0.0f;
    for (int c = lane; c < C; c += 32) {
        const float g = qt_ld(dout + off + c) * qt_ld(w + c);
        sg += g;
        sgx += g * ((qt_ld(x + off + c) - mu) * rs);
    }
    const float mg = qt_warp_sum(sg) * inv_c, mgx = qt_warp_sum(sgx) * inv_c;
    for (int c = lane; c < C; c += 32) {
        const float xh = (qt_ld(x + off + c) - mu) * rs;
        const float g = qt_ld(dout + off + c) * qt_ld(w + c);
        qt_add_st(dx + off + c, rs * (g - mg - xh * mgx));
    }
}

// dw (C) += column sums of dout xh, db (C) += column sums of dout (either may be NULL).
// Thread mapping: block (LN_COLS, LN_ROW_LANES), grid ceil(C / LN_COLS); thread (tx, ty) owns
// column blockIdx.x * LN_COLS + tx and sums rows ty, ty + LN_ROW_LANES, ... in order (pass 1);
// the LN_ROW_LANES partials of a column are then added by qt_block_tree over ty in shared
// memory (pass 2). Both orders depend only on N, so the result is deterministic.
// Shared memory: two (LN_ROW_LANES, LN_COLS + 1) fp32 tiles (+1 column: no bank conflicts in
// the tree's reads down a column).
// Guards: threads of columns >= C accumulate nothing but take part in every barrier.
template <typename T>
static __global__ void __launch_bounds__(LN_COLS *LN_ROW_LANES)
    layernorm_bwd_dwdb_colblock(T *dw, T *db, const T *dout, const T *x, const float *mean,
                                const float *rstd, int N, int C) {
    QT_SHARED(float, sw, LN_ROW_LANES, LN_COLS + 1);
    QT_SHARED(float, sb, LN_ROW_LANES, LN_COLS + 1);
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * LN_COLS + tx;
    float aw = 0.0f, ab = 0.0f;
    if (c < C) {
        for (int n = ty; n < N; n += LN_ROW_LANES) {
            const size_t i = (size_t)n * C + c;
            const float d = qt_ld(dout + i);
            aw += d * ((qt_ld(x + i) - mean[n]) * rstd[n]);
            ab += d;
        }
    }
    sw[ty][tx] = aw;
    sb[ty][tx] = ab;
    qt_block_tree<LN_ROW_LANES>(ty, [&](int dst, int src) {
        sw[dst][tx] += sw[src][tx];
        sb[dst][tx] += sb[src][tx];
    });
    if (ty == 0 && c < C) {
        if (dw) qt_add_st(dw + c, sw[0][tx]);
        if (db) qt_add_st(db + c, sb[0][tx]);
    }
}

// ---- launchers ------------------------------------------------------------------------------

template <typename T>
static void layernorm_fwd_launch(cudaStream_t st, void *out, float *mean, float *rstd,
                                 const void *x, const void *w, const void *b, int N, int C) {
    const dim3 block(32, LN_ROWS_PER_BLOCK), grid(QT_CEIL_DIV(N, LN_ROWS_PER_BLOCK));
    QT_LAUNCH(layernorm_fwd_rowwarp<T>, grid, block, 0, st, (T *)out, mean, rstd,
              (const T *)x, (const T *)w, (const T *)b, N, C);
}

template <typename T>
static void add_layernorm_fwd_launch(cudaStream_t st, void *resid, void *out, float *mean,
                                     float *rstd, const void *a, const void *b, const void *w,
                                     const void *bias, int N, int C) {
    const dim3 block(32, LN_ROWS_PER_BLOCK), grid(QT_CEIL_DIV(N, LN_ROWS_PER_BLOCK));
    QT_LAUNCH(add_layernorm_fwd_rowwarp<T>, grid, block, 0, st, (T *)resid, (T *)out, mean,
              rstd, (const T *)a, (const T *)b, (const T *)w, (const T *)bias, N, C);
}

template <typename T>
static void layernorm_bwd_launch(cudaStream_t st, void *dx, void *dw, void *db,
                                 const void *dout, const void *x, const float *mean,
                                 const float *rstd, const void *w, int N, int C) {
    if (dx) {
        const dim3 block(32, LN_ROWS_PER_BLOCK), grid(QT_CEIL_DIV(N, LN_ROWS_PER_BLOCK));
        QT_LAUNCH(layernorm_bwd_dx_rowwarp<T>, grid, block, 0, st, (T *)dx, (const T *)dout,
                  (const T *)x, mean, rstd, (const T *)w, N, C);
    }
    if (dw || db) {
        const dim3 block(LN_COLS, LN_ROW_LANES), grid(QT_CEIL_DIV(C, LN_COLS));
        QT_LAUNCH(layernorm_bwd_dwdb_colblock<T>, grid, block, 0, st, (T *)dw, (T *)db,
                  (const T *)dout, (const T *)x, mean, rstd, N, C);
    }
}

static qt_status check_shape(const char *op, qt_dtype dt, int N, int C) {
    QT_TRY(qt_check_dtype(op, dt));
    if (N < 0 || C < 1)
        return qt_error(QT_ERR_ARG, "%s: N = %d, C = %d; need N >= 0 and C >= 1", op, N, C);
    return QT_OK;
}

extern "C" qt_status qt_cuda_layernorm_fwd(qt_cuda_stream s, qt_dtype dt, void *out,
                                           float *mean, float *rstd, const void *x,
                                           const void *w, const void *b, int N, int C) {
    const char *op = "cuda layernorm_fwd";
    QT_TRY(check_shape(op, dt, N, C));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("out", out, dt), qt_arg("mean", mean), qt_arg("rstd", rstd),
                            qt_arg("x", x, dt), qt_arg("w", w, dt), qt_arg("b", b, dt)));
    QT_DTYPE_DISPATCH(dt, layernorm_fwd_launch, (cudaStream_t)s, out, mean, rstd, x, w, b, N, C);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_add_layernorm_fwd(qt_cuda_stream s, qt_dtype dt, void *resid,
                                               void *out, float *mean, float *rstd,
                                               const void *a, const void *b, const void *w,
                                               const void *bias, int N, int C) {
    const char *op = "cuda add_layernorm_fwd";
    QT_TRY(check_shape(op, dt, N, C));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("resid", resid, dt), qt_arg("out", out, dt),
                            qt_arg("mean", mean), qt_arg("rstd", rstd), qt_arg("a", a, dt),
                            qt_arg("b", b, dt), qt_arg("w", w, dt), qt_arg("bias", bias, dt)));
    if (out == resid || out == a || out == b)
        return qt_error(QT_ERR_ARG, "%s: out must not alias resid, a or b (only resid may alias "
                                    "a or b); pass a separate output buffer", op);
    QT_DTYPE_DISPATCH(dt, add_layernorm_fwd_launch, (cudaStream_t)s, resid, out, mean, rstd, a, b,
                      w, bias, N, C);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_layernorm_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, void *dw,
                                           void *db, const void *dout, const void *x,
                                           const float *mean, const float *rstd, const void *w,
                                           int N, int C) {
    const char *op = "cuda layernorm_bwd";
    QT_TRY(check_shape(op, dt, N, C));
    if (N == 0 || (!dx && !dw && !db)) return QT_OK;
    QT_TRY(qt_check_tensors(
        op, qt_arg("dx", dx, dt, QT_ARG_OPTIONAL), qt_arg("dw", dw, dt, QT_ARG_OPTIONAL),
        qt_arg("db", db, dt, QT_ARG_OPTIONAL), qt_arg("dout", dout, dt), qt_arg("x", x, dt),
        qt_arg("mean", mean), qt_arg("rstd", rstd),
        qt_arg("w (needed for dx)", w, dt, dx ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL)));
    QT_DTYPE_DISPATCH(dt, layernorm_bwd_launch, (cudaStream_t)s, dx, dw, db, dout, x, mean, rstd, w,
                      N, C);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// fwd, one kernel: reads x (E N C), w, b (2 E C); writes out (E N C), fp32 mean and rstd
// (8 N); 8 flops per element (the sum, x - mean and its square summed, (x - mean) rstd w + b).
// Its second and third passes re-read x from L1/L2 (not counted). add_fwd: reads a, b, writes
// resid and out (4 E N C), one more flop (the add). bwd, up to two kernels: dx: reads dout,
// x, dx (+=) (3 E N C), w (E C), mean, rstd (8 N); writes dx; 12 flops per element (g = dout w,
// xh, the two row sums, dx += rstd (g - mg - xh mgx)). dw/db: reads dout, x (2 E N C), mean,
// rstd, and the dw, db it adds into; writes them; 4 flops per element (xh, dout xh, two adds).

extern "C" void qt_cuda_layernorm_fwd_cost(qt_cost *c, qt_dtype dt, const void *out,
                                           const float *mean, const float *rstd, const void *x,
                                           const void *w, const void *b, int N, int C) {
    (void)out, (void)mean, (void)rstd, (void)x, (void)w, (void)b;
    if (N <= 0 || C < 1) return;
    const double n = (double)N * C, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "layernorm_fwd_rowwarp", E * (2 * n + 2.0 * C) + 8.0 * N, 8 * n);
}

extern "C" void qt_cuda_add_layernorm_fwd_cost(qt_cost *c, qt_dtype dt, const void *resid,
                                               const void *out, const float *mean,
                                               const float *rstd, const void *a, const void *b,
                                               const void *w, const void *bias, int N, int C) {
    (void)resid, (void)out, (void)mean, (void)rstd, (void)a, (void)b, (void)w, (void)bias;
    if (N <= 0 || C < 1) return;
    const double n = (double)N * C, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "add_layernorm_fwd_rowwarp", E * (4 * n + 2.0 * C) + 8.0 * N, 9 * n);
}

extern "C" void qt_cuda_layernorm_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dw,
                                           const void *db, const void *dout, const void *x,
                                           const float *mean, const float *rstd, const void *w,
                                           int N, int C) {
    (void)dout, (void)x, (void)mean, (void)rstd, (void)w;
    if (N <= 0 || C < 1 || (!dx && !dw && !db)) return;
    const double n = (double)N * C, E = (double)qt_dtype_size(dt);
    if (dx) qt_cost_kernel(c, "layernorm_bwd_dx_rowwarp", E * (4 * n + C) + 8.0 * N, 12 * n);
    if (dw || db)
        qt_cost_kernel(c, "layernorm_bwd_dwdb_colblock",
                       E * (2 * n + 2.0 * C * ((dw ? 1 : 0) + (db ? 1 : 0))) + 8.0 * N, 4 * n);
}

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
// The residual ops fuse a block's residual connection with the LayerNorm after it, so the model
// makes one launch where it made three (dropout, add, LayerNorm) and one where it made two
// (the LayerNorm's dx, then dropout's backward of it):
//   qt_cuda_layernorm_residual_fwd: resid = x + round(drop(branch)) rounded to dt, then out =
//     LayerNorm(resid) from the rounded resid (what the backward reads back as its x); resid may
//     alias x or branch. drop(v)_i = keep_i ? v_i s : 0 with keep_i = [qt_philox_uniform(seed,
//     stream, i) >= prob] on the flat index i of (N, C): dropout.cu's mask, rounded as its
//     output is, so this equals dropout_fwd, add, layernorm_fwd bit for bit.
//   qt_cuda_layernorm_residual_bwd: dx += the LayerNorm's dx (rounded to dt), then dbranch =
//     drop(dx) from the rounded dx, written: dropout's backward of what dx now holds.
// Rows go in chunks of consecutive columns (QT_ROW_CHUNKS): 128-bit loads and stores where C and
// the pointers allow, and then one Philox block per four elements, as dropout.cu draws; rows
// that do not divide into chunks go column by column, one block per element (4x the integer
// work: about 70 integer ops per element, estimate).
// Determinism: every reduction has a fixed order (warp butterflies, a fixed-shape tree), so
// results are bit-identical from run to run; no atomics.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "base/philox.h"
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

// Rows go in chunks of W consecutive columns per lane (QT_ROW_CHUNKS, common.cuh; W from
// qt_row_width). All row kernels visit a row in this order, so both forwards compute the same
// statistics bit for bit.

// The rest of a forward row after its first pass: lane `lane` holding the partial sum s of its
// chunks of r (C). mean = warp sum / C; a second pass sums the squared deviations, rstd = 1 /
// sqrt(that / C + eps); a third writes o (C) = (r - mean) rstd w + b; lane 0 stores mean[row],
// rstd[row]. Shared by both forward kernels.
template <typename T, int W>
static __device__ __forceinline__ void layernorm_row_finish(T *o, float *mean, float *rstd, int row,
                                                            const T *r, const T *w, const T *b,
                                                            float s, int C, int lane) {
    typedef qt_vec<T, W> vec;
    const float inv_c = 1.0f / (float)C;
    const float mu = qt_warp_sum(s) * inv_c;
    float ss = 0.0f;
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vr = vec::load(r + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) {
            const float d = vr.get(k) - mu;
            ss += d * d;
        }
    }
    const float rs = 1.0f / sqrtf(qt_warp_sum(ss) * inv_c + QT_LAYERNORM_EPS);
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vr = vec::load(r + c), vw = vec::load(w + c), vb = vec::load(b + c);
        vec vo;
        QT_UNROLL
        for (int k = 0; k < W; k++) vo.set(k, (vr.get(k) - mu) * rs * vw.get(k) + vb.get(k));
        vo.store(o + c);
    }
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// v rounded to T and widened back: the value a T store of v holds.
template <typename T> static __device__ __forceinline__ float round_to(float v) {
    T t;
    qt_st(&t, v);
    return qt_to_f32(t);
}

// drop(v) for the W flat elements i0 .. i0 + W - 1 of a chunk (in place in v): v s when kept,
// 0 when dropped (a dropped inf or NaN too), v unchanged when !masked (prob 0: no draw).
// dropout.cu's mask: element i's word is word i % 4 of qt_philox_block(seed, stream, i / 4);
// W > 1 chunks start at a multiple of 4 (W | C), so a chunk draws W / 4 blocks; W = 1 draws
// one block per element.
template <int W>
static __device__ __forceinline__ void drop_chunk(float (&v)[W], size_t i0, int masked,
                                                  float prob, float s, uint64_t seed,
                                                  uint64_t stream) {
    if (!masked) return;
    if constexpr (W == 1) {
        v[0] = qt_philox_uniform(seed, stream, i0) >= prob ? __fmul_rn(v[0], s) : 0.0f;
    } else {
        static_assert(W % 4 == 0, "a chunk holds whole Philox groups");
        QT_UNROLL
        for (int g = 0; g < W; g += 4) {
            const qt_u32x4 r = qt_philox_block(seed, stream, (i0 + g) / 4);
            QT_UNROLL
            for (int k = 0; k < 4; k++)
                v[g + k] = qt_u32_to_uniform(r.v[k]) >= prob ? __fmul_rn(v[g + k], s) : 0.0f;
        }
    }
}

// ---- kernels --------------------------------------------------------------------------------

// out (N, C), mean (N), rstd (N) from x (N, C), w (C), b (C).
// Thread mapping: block (32, LN_ROWS_PER_BLOCK); warp threadIdx.y owns row
// blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.y, its lanes the row's chunks (LN_CHUNKS), in three
// passes (sum, then layernorm_row_finish: squared deviations, output); x is re-read from L1/L2
// rather than held in registers (no dynamically indexed arrays, so no local memory).
// Guards: a warp whose row is >= N exits as a whole (no block barrier follows); the chunk loop
// stops at C.
template <typename T, int W>
static __global__ void __launch_bounds__(32 * LN_ROWS_PER_BLOCK)
    layernorm_fwd_rowwarp(T *out, float *mean, float *rstd, const T *x, const T *w, const T *b,
                          int N, int C) {
    typedef qt_vec<T, W> vec;
    const int row = blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.y, lane = threadIdx.x;
    if (row >= N) return;
    const T *xr = x + (size_t)row * C;
    float s = 0.0f;
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vx = vec::load(xr + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) s += vx.get(k);
    }
    layernorm_row_finish<T, W>(out + (size_t)row * C, mean, rstd, row, xr, w, b, s, C, lane);
}

// resid (N, C) = x + round_T(drop(branch)) (rounded to T), then out, mean, rstd =
// LayerNorm(resid) as above. Same mapping and guards as layernorm_fwd_rowwarp. resid may alias
// x or branch: each chunk is read and then written by the same lane, and the later passes
// read resid back (the rounded value), so no pointer here is __restrict__.
template <typename T, int W>
static __global__ void __launch_bounds__(32 * LN_ROWS_PER_BLOCK)
    layernorm_residual_fwd_rowwarp(T *resid, T *out, float *mean, float *rstd, const T *x,
                                   const T *branch, const T *w, const T *b, int N, int C,
                                   int masked, float prob, float s, uint64_t seed,
                                   uint64_t stream) {
    typedef qt_vec<T, W> vec;
    const int row = blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.y, lane = threadIdx.x;
    if (row >= N) return;
    const size_t off = (size_t)row * C;
    T *r = resid + off;
    float sum = 0.0f;
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vb = vec::load(branch + off + c), vx = vec::load(x + off + c);
        float v[W];
        QT_UNROLL
        for (int k = 0; k < W; k++) v[k] = vb.get(k);
        drop_chunk<W>(v, off + c, masked, prob, s, seed, stream);
        vec vr;
        QT_UNROLL
        for (int k = 0; k < W; k++) {
            vr.set(k, __fadd_rn(round_to<T>(v[k]), vx.get(k)));
            sum += vr.get(k);
        }
        vr.store(r + c);
    }
    layernorm_row_finish<T, W>(out + off, mean, rstd, row, (const T *)r, w, b, sum, C, lane);
}

// dx (N, C) += rstd (g - mean(g) - xh mean(g xh)), g = dout w, xh = (x - mean) rstd; with
// RESID (the residual op's backward), then dbranch (N, C) = drop(dx) from the rounded dx,
// written (dx and dbranch separate buffers; without RESID dbranch is unused).
// Same mapping and guards as layernorm_fwd_rowwarp: two passes per row (the two sums, then dx).
template <typename T, int W, bool RESID>
static __global__ void __launch_bounds__(32 * LN_ROWS_PER_BLOCK)
    layernorm_bwd_dx_rowwarp(T *dx, T *dbranch, const T *dout, const T *x, const float *mean,
                             const float *rstd, const T *w, int N, int C, int masked, float prob,
                             float s, uint64_t seed, uint64_t stream) {
    typedef qt_vec<T, W> vec;
    const int row = blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.y, lane = threadIdx.x;
    if (row >= N) return;
    const size_t off = (size_t)row * C;
    const float mu = mean[row], rs = rstd[row], inv_c = 1.0f / (float)C;
    float sg = 0.0f, sgx = 0.0f;
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vd = vec::load(dout + off + c), vx = vec::load(x + off + c);
        const vec vw = vec::load(w + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) {
            const float g = vd.get(k) * vw.get(k);
            sg += g;
            sgx += g * ((vx.get(k) - mu) * rs);
        }
    }
    const float mg = qt_warp_sum(sg) * inv_c, mgx = qt_warp_sum(sgx) * inv_c;
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vd = vec::load(dout + off + c), vx = vec::load(x + off + c);
        const vec vw = vec::load(w + c);
        vec vdx = vec::load(dx + off + c);
        float d[W];
        QT_UNROLL
        for (int k = 0; k < W; k++) {
            const float xh = (vx.get(k) - mu) * rs;
            const float g = vd.get(k) * vw.get(k);
            vdx.set(k, vdx.get(k) + rs * (g - mg - xh * mgx)); // += rounded once to T
            d[k] = vdx.get(k);
        }
        vdx.store(dx + off + c);
        if constexpr (RESID) {
            drop_chunk<W>(d, off + c, masked, prob, s, seed, stream);
            vec vbr;
            QT_UNROLL
            for (int k = 0; k < W; k++) vbr.set(k, d[k]);
            vbr.store(dbranch + off + c);
        }
    }
}

// dw (C) += column sums of dout xh, db (C) += column sums of dout (either may be NULL).
// Thread mapping: block (LN_COLS, LN_ROW_LANES), grid (ceil(C / LN_COLS), S): block (x, split)
// takes the rows of slice `split` (qt_colsum_slice); thread (tx, ty) owns column x LN_COLS + tx
// and sums the slice's rows r0 + ty, r0 + ty + LN_ROW_LANES, ... in order (pass 1); the
// LN_ROW_LANES partials of a column are then added by qt_block_tree over ty in shared memory
// (pass 2), and qt_colsum_finish adds the S slices in order (pass 3, S > 1 only). Every order
// depends only on N and C, so the result is deterministic.
// Shared memory: two (LN_ROW_LANES, LN_COLS + 1) fp32 tiles (+1 column: no bank conflicts in
// the tree's reads down a column).
// Guards: threads of columns >= C accumulate nothing but take part in every barrier.
template <typename T>
static __global__ void __launch_bounds__(LN_COLS *LN_ROW_LANES)
    layernorm_bwd_dwdb_colblock(T *dw, T *db, const T *dout, const T *x, const float *mean,
                                const float *rstd, int N, int C, int S, void *scratch) {
    QT_SHARED(float, sw, LN_ROW_LANES, LN_COLS + 1);
    QT_SHARED(float, sb, LN_ROW_LANES, LN_COLS + 1);
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * LN_COLS + tx;
    int r0, r1;
    qt_colsum_slice(N, S, (int)blockIdx.y, &r0, &r1);
    float aw = 0.0f, ab = 0.0f;
    if (c < C) {
        for (int n = r0 + ty; n < r1; n += LN_ROW_LANES) {
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
    T *const out[2] = {dw, db};
    const float sum[2] = {sw[0][tx], sb[0][tx]};
    qt_colsum_finish(out, sum, ty, c, C, S, scratch);
}

// ---- launchers ------------------------------------------------------------------------------

template <typename T>
static void layernorm_fwd_launch(cudaStream_t st, void *out, float *mean, float *rstd,
                                 const void *x, const void *w, const void *b, int N, int C) {
    constexpr int v = qt_vec<T>::width;
    const dim3 block(32, LN_ROWS_PER_BLOCK), grid(QT_CEIL_DIV(N, LN_ROWS_PER_BLOCK));
    QT_LAUNCH(qt_row_width<T>(C, out, x, w, b) > 1 ? layernorm_fwd_rowwarp<T, v>
                                                 : layernorm_fwd_rowwarp<T, 1>,
              grid, block, 0, st, (T *)out, mean, rstd, (const T *)x, (const T *)w,
              (const T *)b, N, C);
}

template <typename T>
static void layernorm_residual_fwd_launch(cudaStream_t st, void *resid, void *out, float *mean,
                                          float *rstd, const void *x, const void *branch,
                                          const void *w, const void *b, int N, int C, int masked,
                                          float prob, float s, uint64_t seed, uint64_t stream) {
    constexpr int v = qt_vec<T>::width;
    const dim3 block(32, LN_ROWS_PER_BLOCK), grid(QT_CEIL_DIV(N, LN_ROWS_PER_BLOCK));
    QT_LAUNCH(qt_row_width<T>(C, resid, out, x, branch, w, b) > 1
                  ? layernorm_residual_fwd_rowwarp<T, v>
                  : layernorm_residual_fwd_rowwarp<T, 1>,
              grid, block, 0, st, (T *)resid, (T *)out, mean, rstd, (const T *)x,
              (const T *)branch, (const T *)w, (const T *)b, N, C, masked, prob, s, seed, stream);
}

// The dw/db kernel, shared by both backwards.
template <typename T>
static void layernorm_dwdb_launch(cudaStream_t st, void *dw, void *db, const void *dout,
                                  const void *x, const float *mean, const float *rstd, int N,
                                  int C, void *scratch) {
    const int S = qt_colsum_splits(N, C, LN_COLS, 2, scratch);
    const dim3 block(LN_COLS, LN_ROW_LANES), grid(QT_CEIL_DIV(C, LN_COLS), S);
    QT_LAUNCH(layernorm_bwd_dwdb_colblock<T>, grid, block, 0, st, (T *)dw, (T *)db,
              (const T *)dout, (const T *)x, mean, rstd, N, C, S, scratch);
}

// The dx kernel (with the residual's dbranch when RESID).
template <typename T, bool RESID>
static void layernorm_dx_launch(cudaStream_t st, void *dx, void *dbranch, const void *dout,
                                const void *x, const float *mean, const float *rstd,
                                const void *w, int N, int C, int masked, float prob, float s,
                                uint64_t seed, uint64_t stream) {
    constexpr int v = qt_vec<T>::width;
    const int wide = RESID ? qt_row_width<T>(C, dx, dbranch, dout, x, w) > 1
                           : qt_row_width<T>(C, dx, dout, x, w) > 1;
    const dim3 block(32, LN_ROWS_PER_BLOCK), grid(QT_CEIL_DIV(N, LN_ROWS_PER_BLOCK));
    QT_LAUNCH(wide ? layernorm_bwd_dx_rowwarp<T, v, RESID> : layernorm_bwd_dx_rowwarp<T, 1, RESID>,
              grid, block, 0, st, (T *)dx, (T *)dbranch, (const T *)dout, (const T *)x, mean,
              rstd, (const T *)w, N, C, masked, prob, s, seed, stream);
}

template <typename T>
static void layernorm_residual_bwd_launch(cudaStream_t st, void *dx, void *dbranch, void *dw,
                                          void *db, const void *dout, const void *x,
                                          const float *mean, const float *rstd, const void *w,
                                          int N, int C, int masked, float prob, float s,
                                          uint64_t seed, uint64_t stream, void *scratch) {
    layernorm_dx_launch<T, true>(st, dx, dbranch, dout, x, mean, rstd, w, N, C, masked, prob, s,
                                 seed, stream);
    if (dw || db) layernorm_dwdb_launch<T>(st, dw, db, dout, x, mean, rstd, N, C, scratch);
}

template <typename T>
static void layernorm_bwd_launch(cudaStream_t st, void *dx, void *dw, void *db,
                                 const void *dout, const void *x, const float *mean,
                                 const float *rstd, const void *w, int N, int C,
                                 void *scratch) {
    if (dx)
        layernorm_dx_launch<T, false>(st, dx, NULL, dout, x, mean, rstd, w, N, C, 0, 0.0f, 1.0f,
                                      0, 0);
    if (dw || db) layernorm_dwdb_launch<T>(st, dw, db, dout, x, mean, rstd, N, C, scratch);
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

// The dropout probability's checks and scale, dropout.cu's: NaN and values outside [0, 1]
// refused; s = 1 / (1 - prob), 0 when prob >= 1; no draw when prob <= 0.
static qt_status residual_prob(const char *op, float prob, int *masked, float *s) {
    if (!(prob >= 0.0f && prob <= 1.0f))
        return qt_error(QT_ERR_ARG,
                        "%s: dropout probability %g is outside [0, 1]; pass one in [0, 1)", op,
                        (double)prob);
    *masked = prob > 0.0f;
    *s = !*masked ? 1.0f : prob < 1.0f ? 1.0f / (1.0f - prob) : 0.0f;
    return QT_OK;
}

extern "C" qt_status qt_cuda_layernorm_residual_fwd(qt_cuda_stream s, qt_dtype dt, void *resid,
                                                    void *out, float *mean, float *rstd,
                                                    const void *x, const void *branch,
                                                    const void *w, const void *b, int N, int C,
                                                    float prob, uint64_t seed, uint64_t stream) {
    const char *op = "cuda layernorm_residual_fwd";
    QT_TRY(check_shape(op, dt, N, C));
    int masked = 0;
    float scale = 1.0f;
    QT_TRY(residual_prob(op, prob, &masked, &scale));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("resid", resid, dt), qt_arg("out", out, dt),
                            qt_arg("mean", mean), qt_arg("rstd", rstd), qt_arg("x", x, dt),
                            qt_arg("branch", branch, dt), qt_arg("w", w, dt), qt_arg("b", b, dt)));
    if (out == resid || out == x || out == branch)
        return qt_error(QT_ERR_ARG, "%s: out must not alias resid, x or branch (only resid may "
                                    "alias x or branch); pass a separate output buffer", op);
    QT_DTYPE_DISPATCH(dt, layernorm_residual_fwd_launch, (cudaStream_t)s, resid, out, mean, rstd,
                      x, branch, w, b, N, C, masked, prob, scale, seed, stream);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_layernorm_residual_bwd(qt_cuda_stream s, qt_dtype dt, void *dx,
                                                    void *dbranch, void *dw, void *db,
                                                    const void *dout, const void *x,
                                                    const float *mean, const float *rstd,
                                                    const void *w, int N, int C, float prob,
                                                    uint64_t seed, uint64_t stream,
                                                    void *scratch) {
    const char *op = "cuda layernorm_residual_bwd";
    QT_TRY(check_shape(op, dt, N, C));
    int masked = 0;
    float scale = 1.0f;
    QT_TRY(residual_prob(op, prob, &masked, &scale));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(
        op, qt_arg("dx", dx, dt), qt_arg("dbranch", dbranch, dt),
        qt_arg("dw", dw, dt, QT_ARG_OPTIONAL), qt_arg("db", db, dt, QT_ARG_OPTIONAL),
        qt_arg("dout", dout, dt), qt_arg("x", x, dt), qt_arg("mean", mean), qt_arg("rstd", rstd),
        qt_arg("w", w, dt), qt_arg("scratch", (const float *)scratch, QT_ARG_OPTIONAL)));
    if (dbranch == dx || dbranch == dout || dbranch == x)
        return qt_error(QT_ERR_ARG, "%s: dbranch must not alias dx, dout or x; pass a separate "
                                    "buffer", op);
    QT_DTYPE_DISPATCH(dt, layernorm_residual_bwd_launch, (cudaStream_t)s, dx, dbranch, dw, db,
                      dout, x, mean, rstd, w, N, C, masked, prob, scale, seed, stream, scratch);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_layernorm_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, void *dw,
                                           void *db, const void *dout, const void *x,
                                           const float *mean, const float *rstd, const void *w,
                                           int N, int C, void *scratch) {
    const char *op = "cuda layernorm_bwd";
    QT_TRY(check_shape(op, dt, N, C));
    if (N == 0 || (!dx && !dw && !db)) return QT_OK;
    QT_TRY(qt_check_tensors(
        op, qt_arg("dx", dx, dt, QT_ARG_OPTIONAL), qt_arg("dw", dw, dt, QT_ARG_OPTIONAL),
        qt_arg("db", db, dt, QT_ARG_OPTIONAL), qt_arg("dout", dout, dt), qt_arg("x", x, dt),
        qt_arg("mean", mean), qt_arg("rstd", rstd),
        qt_arg("w (needed for dx)", w, dt, dx ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL),
        qt_arg("scratch", (const float *)scratch, QT_ARG_OPTIONAL)));
    QT_DTYPE_DISPATCH(dt, layernorm_bwd_launch, (cudaStream_t)s, dx, dw, db, dout, x, mean, rstd, w,
                      N, C, scratch);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// fwd, one kernel: reads x (E N C), w, b (2 E C); writes out (E N C), fp32 mean and rstd
// (8 N); 8 flops per element (the sum, x - mean and its square summed, (x - mean) rstd w + b).
// Its second and third passes re-read x from L1/L2 (not counted). residual_fwd: reads x,
// branch, writes resid and out (4 E N C), one more flop (the add), two more when masked (the
// compare and the scale; the Philox draw is integer work, not counted, as in dropout.cu).
// residual_bwd: the dx kernel also writes dbranch (5 E N C), two more flops when masked. bwd, up to two kernels: dx: reads dout,
// x, dx (+=) (3 E N C), w (E C), mean, rstd (8 N); writes dx; 12 flops per element (g = dout w,
// xh, the two row sums, dx += rstd (g - mg - xh mgx)). dw/db: reads dout, x (2 E N C), mean,
// rstd, and the dw, db it adds into; writes them; 4 flops per element (xh, dout xh, two adds);
// split over S row slices (a scratch given), also the fp32 partials (2 S C of each output).

extern "C" void qt_cuda_layernorm_fwd_cost(qt_cost *c, qt_dtype dt, const void *out,
                                           const float *mean, const float *rstd, const void *x,
                                           const void *w, const void *b, int N, int C) {
    (void)out, (void)mean, (void)rstd, (void)x, (void)w, (void)b;
    if (N <= 0 || C < 1) return;
    const double n = (double)N * C, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "layernorm_fwd_rowwarp", E * (2 * n + 2.0 * C) + 8.0 * N, 8 * n);
}

extern "C" void qt_cuda_layernorm_residual_fwd_cost(qt_cost *c, qt_dtype dt, const void *resid,
                                                    const void *out, const float *mean,
                                                    const float *rstd, const void *x,
                                                    const void *branch, const void *w,
                                                    const void *b, int N, int C, float prob,
                                                    uint64_t seed, uint64_t stream) {
    (void)resid, (void)out, (void)mean, (void)rstd, (void)x, (void)branch, (void)w, (void)b;
    (void)seed, (void)stream;
    if (N <= 0 || C < 1 || !(prob >= 0.0f && prob <= 1.0f)) return;
    const double n = (double)N * C, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "layernorm_residual_fwd_rowwarp", E * (4 * n + 2.0 * C) + 8.0 * N,
                   (prob > 0.0f ? 11 : 9) * n);
}

// The dw/db kernel's record, shared by both backwards.
static void dwdb_cost(qt_cost *c, double E, const void *dw, const void *db, int N, int C,
                      const void *scratch) {
    if (!dw && !db) return;
    const double n = (double)N * C, outs = (dw ? 1 : 0) + (db ? 1 : 0);
    const double S = qt_colsum_splits(N, C, LN_COLS, 2, scratch);
    qt_cost_kernel(c, "layernorm_bwd_dwdb_colblock",
                   E * (2 * n + 2.0 * C * outs) + 8.0 * N + (S > 1 ? 8.0 * S * C * outs : 0.0),
                   4 * n);
}

extern "C" void qt_cuda_layernorm_residual_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx,
                                                    const void *dbranch, const void *dw,
                                                    const void *db, const void *dout,
                                                    const void *x, const float *mean,
                                                    const float *rstd, const void *w, int N,
                                                    int C, float prob, uint64_t seed,
                                                    uint64_t stream, const void *scratch) {
    (void)dx, (void)dbranch, (void)dout, (void)x, (void)mean, (void)rstd, (void)w, (void)seed;
    (void)stream;
    if (N <= 0 || C < 1 || !(prob >= 0.0f && prob <= 1.0f)) return;
    const double n = (double)N * C, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "layernorm_bwd_dx_rowwarp", E * (5 * n + C) + 8.0 * N,
                   (prob > 0.0f ? 14 : 12) * n);
    dwdb_cost(c, E, dw, db, N, C, scratch);
}

extern "C" void qt_cuda_layernorm_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dw,
                                           const void *db, const void *dout, const void *x,
                                           const float *mean, const float *rstd, const void *w,
                                           int N, int C, const void *scratch) {
    (void)dout, (void)x, (void)mean, (void)rstd, (void)w;
    if (N <= 0 || C < 1 || (!dx && !dw && !db)) return;
    const double n = (double)N * C, E = (double)qt_dtype_size(dt);
    if (dx) qt_cost_kernel(c, "layernorm_bwd_dx_rowwarp", E * (4 * n + C) + 8.0 * N, 12 * n);
    dwdb_cost(c, E, dw, db, N, C, scratch);
}

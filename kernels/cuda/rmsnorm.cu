// rmsnorm.cu: RMSNorm forward and backward (the LLaMA family's norm) on fp32/fp16/bf16 storage
// with fp32 math.
//
// Math (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization"; PAPERS.md, issue 4
// section 3): over the last dimension of x (N, C),
//   rstd = 1 / sqrt(sum(x^2) / C + QT_RMSNORM_EPS), out = x rstd w   (no mean, no bias);
//   backward with xh = x rstd and g = dout w:
//   dx = rstd (g - xh mean(g xh)), dw = sum_rows(dout xh).
// CPU twin: kernels/cpu/rmsnorm_impl.h (qt_cpu_rmsnorm_{fwd,bwd}).
// Contract (kernels/rmsnorm.h): the forward overwrites out and rstd; the backward ADDS
// into dx and dw (either may be NULL). rstd is fp32 whatever dt is.
// Determinism: every reduction has a fixed order (warp butterflies over a row, strided rows
// then a fixed-shape tree for dw), so results are bit-identical from run to run; no atomics.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "kernels/rmsnorm.h"

// ---- launch constants -----------------------------------------------------------------------
// Row kernels: one warp per row, RMS_ROWS_PER_BLOCK warps per block (128 threads).
#define RMS_ROWS_PER_BLOCK 4
// dw kernel: a block owns RMS_COLS columns (one warp wide: coalesced row loads) and
// RMS_ROW_LANES threads per column stride over the rows; a tree in shared memory adds their
// partial sums. A power of 2.
#define RMS_COLS 32
#define RMS_ROW_LANES 16

// ---- kernels --------------------------------------------------------------------------------

// out (N, C), rstd (N) from x (N, C), w (C).
// Thread mapping: block (32, RMS_ROWS_PER_BLOCK); warp threadIdx.y owns row
// blockIdx.x * RMS_ROWS_PER_BLOCK + threadIdx.y, its lanes the row's chunks of W columns
// (QT_ROW_CHUNKS: 128-bit accesses when W > 1), in two passes (sum of squares, output); x is
// re-read rather than held in registers (no dynamically indexed arrays, so no local memory).
// Guards: a warp whose row is >= N exits as a whole (no block barrier follows); the chunk loop
// stops at C.
template <typename T, int W>
static __global__ void __launch_bounds__(32 * RMS_ROWS_PER_BLOCK)
    rmsnorm_fwd_rowwarp(T *out, float *rstd, const T *x, const T *w, int N, int C) {
    typedef qt_vec<T, W> vec;
    const int row = blockIdx.x * RMS_ROWS_PER_BLOCK + threadIdx.y, lane = threadIdx.x;
    if (row >= N) return;
    const T *xr = x + (size_t)row * C;
    T *o = out + (size_t)row * C;
    float ss = 0.0f;
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vx = vec::load(xr + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) ss += vx.get(k) * vx.get(k);
    }
    const float rs = 1.0f / sqrtf(qt_warp_sum(ss) * (1.0f / (float)C) + QT_RMSNORM_EPS);
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vx = vec::load(xr + c), vw = vec::load(w + c);
        vec vo;
        QT_UNROLL
        for (int k = 0; k < W; k++) vo.set(k, vx.get(k) * rs * vw.get(k));
        vo.store(o + c);
    }
    if (lane == 0) rstd[row] = rs;
}

// dx (N, C) += rstd (g - xh mean(g xh)), g = dout w, xh = x rstd.
// Same mapping and guards as rmsnorm_fwd_rowwarp: two passes per row (the sum, then dx).
template <typename T, int W>
static __global__ void __launch_bounds__(32 * RMS_ROWS_PER_BLOCK)
    rmsnorm_bwd_dx_rowwarp(T *dx, const T *dout, const T *x, const float *rstd, const T *w,
                           int N, int C) {
    typedef qt_vec<T, W> vec;
    const int row = blockIdx.x * RMS_ROWS_PER_BLOCK + threadIdx.y, lane = threadIdx.x;
    if (row >= N) return;
    const size_t off = (size_t)row * C;
    const float rs = rstd[row];
    float sgx = 0.0f;
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vd = vec::load(dout + off + c), vx = vec::load(x + off + c);
        const vec vw = vec::load(w + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) sgx += vd.get(k) * vw.get(k) * (vx.get(k) * rs);
    }
    const float mgx = qt_warp_sum(sgx) * (1.0f / (float)C);
    QT_ROW_CHUNKS(c, W, C, lane) {
        const vec vd = vec::load(dout + off + c), vx = vec::load(x + off + c);
        const vec vw = vec::load(w + c);
        vec vdx = vec::load(dx + off + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) {
            const float xh = vx.get(k) * rs;
            const float g = vd.get(k) * vw.get(k);
            vdx.set(k, vdx.get(k) + rs * (g - xh * mgx)); // += rounded once to T
        }
        vdx.store(dx + off + c);
    }
}

// dw (C) += column sums of dout xh.
// Thread mapping: block (RMS_COLS, RMS_ROW_LANES), grid ceil(C / RMS_COLS); thread (tx, ty)
// owns column blockIdx.x * RMS_COLS + tx and sums rows ty, ty + RMS_ROW_LANES, ... in order
// (pass 1); the RMS_ROW_LANES partials of a column are then added by qt_block_tree over ty in
// shared memory (pass 2). Both orders depend only on N: deterministic.
// Shared memory: one (RMS_ROW_LANES, RMS_COLS + 1) fp32 tile (+1: no bank conflicts down a
// column). Guards: threads of columns >= C accumulate nothing but take part in every barrier.
template <typename T>
static __global__ void __launch_bounds__(RMS_COLS *RMS_ROW_LANES)
    rmsnorm_bwd_dw_colblock(T *dw, const T *dout, const T *x, const float *rstd, int N, int C) {
    QT_SHARED(float, sw, RMS_ROW_LANES, RMS_COLS + 1);
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * RMS_COLS + tx;
    float aw = 0.0f;
    if (c < C) {
        for (int n = ty; n < N; n += RMS_ROW_LANES) {
            const size_t i = (size_t)n * C + c;
            aw += qt_ld(dout + i) * (qt_ld(x + i) * rstd[n]);
        }
    }
    sw[ty][tx] = aw;
    qt_block_tree<RMS_ROW_LANES>(ty, [&](int dst, int src) { sw[dst][tx] += sw[src][tx]; });
    if (ty == 0 && c < C) qt_add_st(dw + c, sw[0][tx]);
}

// ---- launchers ------------------------------------------------------------------------------

static qt_status check_shape(const char *op, qt_dtype dt, int N, int C) {
    QT_TRY(qt_check_dtype(op, dt));
    if (N < 0 || C < 1)
        return qt_error(QT_ERR_ARG, "%s: N = %d, C = %d; need N >= 0 and C >= 1", op, N, C);
    return QT_OK;
}

template <typename T>
static void rmsnorm_fwd_launch(cudaStream_t st, void *out, float *rstd, const void *x,
                               const void *w, int N, int C) {
    constexpr int v = qt_vec<T>::width;
    const dim3 block(32, RMS_ROWS_PER_BLOCK), grid(QT_CEIL_DIV(N, RMS_ROWS_PER_BLOCK));
    QT_LAUNCH(qt_row_width<T>(C, out, x, w) > 1 ? rmsnorm_fwd_rowwarp<T, v>
                                                 : rmsnorm_fwd_rowwarp<T, 1>,
              grid, block, 0, st, (T *)out, rstd, (const T *)x, (const T *)w, N, C);
}

template <typename T>
static void rmsnorm_bwd_launch(cudaStream_t st, void *dx, void *dw, const void *dout,
                               const void *x, const float *rstd, const void *w, int N, int C) {
    if (dx) {
        constexpr int v = qt_vec<T>::width;
        const dim3 block(32, RMS_ROWS_PER_BLOCK), grid(QT_CEIL_DIV(N, RMS_ROWS_PER_BLOCK));
        QT_LAUNCH(qt_row_width<T>(C, dx, dout, x, w) > 1 ? rmsnorm_bwd_dx_rowwarp<T, v>
                                                          : rmsnorm_bwd_dx_rowwarp<T, 1>,
                  grid, block, 0, st, (T *)dx, (const T *)dout, (const T *)x, rstd,
                  (const T *)w, N, C);
    }
    if (dw) {
        const dim3 block(RMS_COLS, RMS_ROW_LANES), grid(QT_CEIL_DIV(C, RMS_COLS));
        QT_LAUNCH(rmsnorm_bwd_dw_colblock<T>, grid, block, 0, st, (T *)dw, (const T *)dout,
                  (const T *)x, rstd, N, C);
    }
}

extern "C" qt_status qt_cuda_rmsnorm_fwd(qt_cuda_stream s, qt_dtype dt, void *out, float *rstd,
                                         const void *x, const void *w, int N, int C) {
    const char *op = "cuda rmsnorm_fwd";
    QT_TRY(check_shape(op, dt, N, C));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("out", out, dt), qt_arg("rstd", rstd), qt_arg("x", x, dt),
                            qt_arg("w", w, dt)));
    QT_DTYPE_DISPATCH(dt, rmsnorm_fwd_launch, (cudaStream_t)s, out, rstd, x, w, N, C);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_rmsnorm_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, void *dw,
                                         const void *dout, const void *x, const float *rstd,
                                         const void *w, int N, int C) {
    const char *op = "cuda rmsnorm_bwd";
    QT_TRY(check_shape(op, dt, N, C));
    if (N == 0 || (!dx && !dw)) return QT_OK;
    QT_TRY(qt_check_tensors(
        op, qt_arg("dx", dx, dt, QT_ARG_OPTIONAL), qt_arg("dw", dw, dt, QT_ARG_OPTIONAL),
        qt_arg("dout", dout, dt), qt_arg("x", x, dt), qt_arg("rstd", rstd),
        qt_arg("w (needed for dx)", w, dt, dx ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL)));
    QT_DTYPE_DISPATCH(dt, rmsnorm_bwd_launch, (cudaStream_t)s, dx, dw, dout, x, rstd, w, N, C);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// fwd, one kernel: reads x (E N C), w (E C); writes out (E N C), fp32 rstd (4 N); 4 flops per
// element (the square and its sum, x rstd w). bwd, up to two kernels: dx reads dout, x, dx
// (+=) (3 E N C), w, rstd and writes dx, 7 flops per element (g = dout w, the row sum of g x,
// dx += rstd (g - x rstd^2 mean(g x))); dw reads dout, x (2 E N C), rstd and dw (+=), writes
// dw, 2 flops per element (dout x rstd summed).

extern "C" void qt_cuda_rmsnorm_fwd_cost(qt_cost *c, qt_dtype dt, const void *out,
                                         const float *rstd, const void *x, const void *w, int N,
                                         int C) {
    (void)out, (void)rstd, (void)x, (void)w;
    if (N <= 0 || C < 1) return;
    const double n = (double)N * C, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "rmsnorm_fwd_rowwarp", E * (2 * n + C) + 4.0 * N, 4 * n);
}

extern "C" void qt_cuda_rmsnorm_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dw,
                                         const void *dout, const void *x, const float *rstd,
                                         const void *w, int N, int C) {
    (void)dout, (void)x, (void)rstd, (void)w;
    if (N <= 0 || C < 1 || (!dx && !dw)) return;
    const double n = (double)N * C, E = (double)qt_dtype_size(dt);
    if (dx) qt_cost_kernel(c, "rmsnorm_bwd_dx_rowwarp", E * (4 * n + C) + 4.0 * N, 7 * n);
    if (dw) qt_cost_kernel(c, "rmsnorm_bwd_dw_colblock", E * (2 * n + 2.0 * C) + 4.0 * N, 2 * n);
}

// softmax_clip.cu: qt_cuda_softmax_clip_{fwd,bwd}, the attention softmax variants (vanilla,
// clipped, length-normalized clipped "NCS"; PAPERS.md sections 1-2) fused with the score
// scaling and the key-length mask, one kernel for all three, fp32 math whatever the storage.
//
// CPU twin: kernels/cpu/softmax_clip.c (row math in kernels/cpu/common/softmax_row.h); the map's
// coefficients come from base/softmax_clip_math.h, shared with it.
//   row r attends columns [0, n), n = lens[r]; z_j = scale * scores_j (rounded once, never
//   fused into the subtraction of the max, so both passes see the same z_j, as the CPU's do);
//   p_j = exp(z_j - max z) / sum_k exp(z_k - max z) on [0, n), 0 elsewhere   (saved, fp32)
//   probs_j = clip(a p_j + c, 0, 1) on [0, n), exactly 0 elsewhere (by index: NCS with
//             beta > eta has c > 0, so clip(c) would not be 0)
//   backward: g_j = a dprobs_j [0 <= a p_j + c <= 1] (inclusive, as torch.clip),
//             dscores_j += scale p_j (g_j - sum_k p_k g_k) on [0, n); masked columns untouched.
// a p + c is evaluated with two separately rounded operations (__fmul_rn then __fadd_rn, never
// contracted to an fma) in both directions: the backward's clip mask sees exactly the value the
// forward clipped, from the saved fp32 p, and the same value the CPU's clip_arg computes.
// Contract (kernels/softmax_clip.h): the forward overwrites probs (dt) and p (fp32) and may
// run in place (probs == scores: each element is read before the same thread writes it); the
// backward adds into dscores (dt). A row whose lens is outside [1, cols] (the CPU asserts) is
// written as NaN, in p and probs or added into dscores, so the bad input shows in the loss
// instead of reading out of bounds.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "base/softmax_clip_math.h"
#include "base/params_check.h"
#include "kernels/softmax_clip.h"

// ---- launch constants ----------------------------------------------------------------------
// One warp per row: attention rows are T <= a few thousand long, so 32 lanes striding the row
// keep every lane busy while the reductions stay in shuffles (no shared memory, no barriers).
// 4 warps per block: small enough that the tail block of an odd row count wastes little.
#define ROWS_PER_BLOCK 4

// ---- device helpers ------------------------------------------------------------------------

// The (a, c) of row length n, rounded once to float like the CPU's row_clip_coeffs.
static __device__ __forceinline__ void row_coeffs(int kind, float gamma, float zeta, float eta,
                                                  float beta, int n, float *a, float *c) {
    double ad, cd;
    qt_softmax_clip_coeffs(kind, gamma, zeta, eta, beta, n, &ad, &cd);
    *a = (float)ad;
    *c = (float)cd;
}

// a p + c with two roundings, as the CPU's clip_arg (see the file header).
static __device__ __forceinline__ float clip_arg(float a, float p, float c) {
    return __fadd_rn(__fmul_rn(a, p), c);
}

// ---- kernels -------------------------------------------------------------------------------

// Rows go in chunks of W consecutive columns per lane (QT_ROW_CHUNKS): W = qt_vec<T>::width
// (128-bit loads and stores of the scores, probabilities and gradients; the fp32 p in two or
// one 16-byte accesses per chunk) where cols is a multiple of it and the pointers are 16-byte
// aligned, else W = 1. The attended prefix [0, n) rarely ends on a chunk boundary: elements of
// a chunk at or past n are masked one by one inside it.

// Thread -> data: warp w of block b owns row r = b * ROWS_PER_BLOCK + w; lane l handles the
// chunks starting at W l, W (l + 32), ... of it. Pass 1: each lane keeps an online (max m, sum
// s of exp(z - m)) over its attended columns (qt_softmax_push); qt_warp_allreduce's butterfly
// merges the 32 pairs, so every lane holds the row's max and sum. Pass 2 re-reads the scores
// and writes p and probs on [0, n), zeros on [n, cols) (chunks wholly past n without reading
// the scores). No shared memory. Guards: a warp past the last row returns as a whole (it shares
// one r), so the shuffles always see 32 live lanes.
template <typename T, int W>
static __global__ void __launch_bounds__(ROWS_PER_BLOCK *QT_WARP)
    softmax_clip_fwd_rowwarp(int kind, float scale, float gamma, float zeta, float eta, float beta,
                             T *probs, float *p, const T *scores, const int *lens, int rows,
                             int cols) {
    typedef qt_vec<T, W> vec;
    typedef qt_vec<float, W> fvec;
    const int lane = (int)(threadIdx.x % QT_WARP);
    const int r = (int)(blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / QT_WARP);
    if (r >= rows) return;
    const size_t off = (size_t)r * (size_t)cols;
    const T *zr = scores + off;
    T *yr = probs + off;
    float *pr = p + off;
    const int n = lens[r];
    if (n < 1 || n > cols) { // bad lens: NaN row (see the file header)
        for (int j = lane; j < cols; j += QT_WARP) {
            pr[j] = qt_nan_f32();
            qt_st(yr + j, qt_nan_f32());
        }
        return;
    }
    float a, c; // first, while few registers are live (double division has a slow path)
    row_coeffs(kind, gamma, zeta, eta, beta, n, &a, &c);

    qt_softmax_acc acc = {-INFINITY, 0.0f};
    QT_ROW_CHUNKS(j, W, n, lane) {
        const vec vz = vec::load(zr + j);
        QT_UNROLL
        for (int k = 0; k < W; k++)
            if (j + k < n) qt_softmax_push(acc, __fmul_rn(scale, vz.get(k)));
    }
    acc = qt_warp_allreduce(acc, qt_op_softmax_merge());
    const float m = acc.m, inv = 1.0f / acc.s;

    QT_ROW_CHUNKS(j, W, cols, lane) {
        vec vy;
        fvec vp;
        if (j >= n) { // masked: exactly 0 by index
            QT_UNROLL
            for (int k = 0; k < W; k++) {
                vp.e[k] = 0.0f;
                vy.set(k, 0.0f);
            }
        } else {
            const vec vz = vec::load(zr + j);
            QT_UNROLL
            for (int k = 0; k < W; k++) {
                const float pj =
                    j + k < n ? expf(__fmul_rn(scale, vz.get(k)) - m) * inv : 0.0f;
                vp.e[k] = pj;
                vy.set(k, j + k < n ? fminf(fmaxf(clip_arg(a, pj, c), 0.0f), 1.0f) : 0.0f);
            }
        }
        vp.store(pr + j);
        vy.store(yr + j);
    }
}

// Thread -> data as in the forward: warp per row, lanes taking its chunks of attended columns.
// Pass 1: dot = sum_j p_j g_j, reduced by shuffles (every lane gets it). Pass 2: each lane adds
// its columns' gradient into dscores; in a chunk that crosses n the masked elements are stored
// back as the very bits loaded, and chunks past n are not touched. No shared memory; a warp
// past the last row returns whole.
template <typename T, int W>
static __global__ void __launch_bounds__(ROWS_PER_BLOCK *QT_WARP)
    softmax_clip_bwd_rowwarp(int kind, float scale, float gamma, float zeta, float eta, float beta,
                             T *dscores, const T *dprobs, const float *p, const int *lens, int rows,
                             int cols) {
    typedef qt_vec<T, W> vec;
    typedef qt_vec<float, W> fvec;
    const int lane = (int)(threadIdx.x % QT_WARP);
    const int r = (int)(blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / QT_WARP);
    if (r >= rows) return;
    const size_t off = (size_t)r * (size_t)cols;
    T *dr = dscores + off;
    const T *gr = dprobs + off;
    const float *pr = p + off;
    const int n = lens[r];
    if (n < 1 || n > cols) { // bad lens: NaN into the row (see the file header)
        for (int j = lane; j < cols; j += QT_WARP)
            qt_st(dr + j, qt_nan_f32());
        return;
    }
    float a, c;
    row_coeffs(kind, gamma, zeta, eta, beta, n, &a, &c);

    float dot = 0.0f;
    QT_ROW_CHUNKS(j, W, n, lane) {
        const fvec vp = fvec::load(pr + j);
        const vec vg = vec::load(gr + j);
        QT_UNROLL
        for (int k = 0; k < W; k++) {
            if (j + k >= n) continue;
            const float pj = vp.e[k], y = clip_arg(a, pj, c);
            const float g = (y >= 0.0f && y <= 1.0f) ? a * vg.get(k) : 0.0f;
            dot += pj * g;
        }
    }
    dot = qt_warp_sum(dot);
    QT_ROW_CHUNKS(j, W, n, lane) {
        const fvec vp = fvec::load(pr + j);
        const vec vg = vec::load(gr + j);
        vec vd = vec::load(dr + j);
        QT_UNROLL
        for (int k = 0; k < W; k++) {
            if (j + k >= n) continue; // masked: the loaded bits go back unchanged
            const float pj = vp.e[k], y = clip_arg(a, pj, c);
            const float g = (y >= 0.0f && y <= 1.0f) ? a * vg.get(k) : 0.0f;
            vd.set(k, vd.get(k) + scale * pj * (g - dot));
        }
        vd.store(dr + j);
    }
}

// ---- launchers -----------------------------------------------------------------------------

static qt_status check_args(const char *op, qt_dtype dt, const qt_softmax_params *prm, int rows,
                            int cols) {
    QT_TRY(qt_check_dtype(op, dt));
    QT_TRY(qt_check_softmax_params(op, prm)); // base/params_check.h: the CPU op's checks
    if (rows < 0 || cols < 1)
        return qt_error(QT_ERR_ARG, "%s: shape (rows %d, cols %d); need rows >= 0, cols >= 1", op,
                        rows, cols);
    return QT_OK;
}

template <typename T>
static void launch_fwd(cudaStream_t st, const qt_softmax_params *prm, void *probs, float *p,
                       const void *scores, const int *lens, int rows, int cols) {
    constexpr int v = qt_vec<T>::width;
    QT_LAUNCH(qt_row_width<T>(cols, (const T *)probs, (const T *)scores, p) > 1
                  ? softmax_clip_fwd_rowwarp<T, v>
                  : softmax_clip_fwd_rowwarp<T, 1>,
              (unsigned)QT_CEIL_DIV((size_t)rows, ROWS_PER_BLOCK), ROWS_PER_BLOCK * QT_WARP, 0, st,
              (int)prm->kind, prm->scale, prm->gamma, prm->zeta, prm->eta, prm->beta, (T *)probs,
              p, (const T *)scores, lens, rows, cols);
}

template <typename T>
static void launch_bwd(cudaStream_t st, const qt_softmax_params *prm, void *dscores,
                       const void *dprobs, const float *p, const int *lens, int rows, int cols) {
    constexpr int v = qt_vec<T>::width;
    QT_LAUNCH(qt_row_width<T>(cols, (const T *)dscores, (const T *)dprobs, p) > 1
                  ? softmax_clip_bwd_rowwarp<T, v>
                  : softmax_clip_bwd_rowwarp<T, 1>,
              (unsigned)QT_CEIL_DIV((size_t)rows, ROWS_PER_BLOCK), ROWS_PER_BLOCK * QT_WARP, 0, st,
              (int)prm->kind, prm->scale, prm->gamma, prm->zeta, prm->eta, prm->beta, (T *)dscores,
              (const T *)dprobs, p, lens, rows, cols);
}

extern "C" qt_status qt_cuda_softmax_clip_fwd(qt_cuda_stream s, qt_dtype dt,
                                              const qt_softmax_params *prm, void *probs,
                                              float *p, const void *scores, const int *lens,
                                              int rows, int cols) {
    const char *op = "softmax_clip_fwd";
    QT_TRY(check_args(op, dt, prm, rows, cols));
    if (rows == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("probs", probs, dt), qt_arg("p", p),
                            qt_arg("scores", scores, dt), qt_arg("lens", lens)));
    QT_DTYPE_DISPATCH(dt, launch_fwd, (cudaStream_t)s, prm, probs, p, scores, lens, rows, cols);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_softmax_clip_bwd(qt_cuda_stream s, qt_dtype dt,
                                              const qt_softmax_params *prm, void *dscores,
                                              const void *dprobs, const float *p,
                                              const int *lens, int rows, int cols) {
    const char *op = "softmax_clip_bwd";
    QT_TRY(check_args(op, dt, prm, rows, cols));
    if (rows == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("dscores", dscores, dt), qt_arg("dprobs", dprobs, dt),
                            qt_arg("p", p), qt_arg("lens", lens)));
    QT_DTYPE_DISPATCH(dt, launch_bwd, (cudaStream_t)s, prm, dscores, dprobs, p, lens, rows, cols);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// One kernel per call; `att` = the attended (row, column) pairs (kernels/softmax_clip.h: causal
// rows when rows is a multiple of cols). fwd: reads the attended scores (E att) and lens
// (4 rows), writes probs and p over the whole rows (E + 4 bytes per element, the masked ones
// as zeros); per attended element scale, max, z - max, exp, sum, normalize (6), the clip
// variants' stretch and two bounds (3). Its second pass re-reads the scores (not counted).
// bwd: reads dprobs, fp32 p and dscores (+=) on the attended columns and lens, writes dscores
// there ((3 E + 4) att + 4 rows); per attended element the dot's product and add (2),
// (g - dot) p, scale, the add (4), the clip mask and stretch (2, clip variants).

static double softmax_cost_attended(int rows, int cols) {
    if (rows % cols == 0) return (double)(rows / cols) * cols * (cols + 1.0) / 2;
    return (double)rows * cols;
}

static int softmax_cost_ok(const qt_softmax_params *prm, int rows, int cols) {
    if (!prm || rows <= 0 || cols < 1) return 0;
    const int kind = (int)prm->kind;
    return kind == QT_SOFTMAX_VANILLA || kind == QT_SOFTMAX_CLIPPED || kind == QT_SOFTMAX_NCS;
}

extern "C" void qt_cuda_softmax_clip_fwd_cost(qt_cost *c, qt_dtype dt, const qt_softmax_params *prm,
                                              const void *probs, const float *p, const void *scores,
                                              const int *lens, int rows, int cols) {
    (void)probs, (void)p, (void)scores, (void)lens;
    if (!softmax_cost_ok(prm, rows, cols)) return;
    const double att = softmax_cost_attended(rows, cols), E = (double)qt_dtype_size(dt);
    const double clip = prm->kind == QT_SOFTMAX_VANILLA ? 0 : 3;
    qt_cost_kernel(c, "softmax_clip_fwd_rowwarp",
                   E * att + 4.0 * rows + (E + 4) * (double)rows * cols, (6 + clip) * att);
}

extern "C" void qt_cuda_softmax_clip_bwd_cost(qt_cost *c, qt_dtype dt, const qt_softmax_params *prm,
                                              const void *dscores, const void *dprobs,
                                              const float *p, const int *lens, int rows, int cols) {
    (void)dscores, (void)dprobs, (void)p, (void)lens;
    if (!softmax_cost_ok(prm, rows, cols)) return;
    const double att = softmax_cost_attended(rows, cols), E = (double)qt_dtype_size(dt);
    const double clip = prm->kind == QT_SOFTMAX_VANILLA ? 0 : 2;
    qt_cost_kernel(c, "softmax_clip_bwd_rowwarp", (3 * E + 4) * att + 4.0 * rows, (6 + clip) * att);
}

// embedding.cu: token plus position embeddings, forward and backward, on fp32/fp16/bf16
// storage with fp32 math.
//
// Math: out[b, t] = wte[tokens[b, t]] + wpe[t] (GPT-2's learned absolute positions), or
// wte[tokens[b, t]] alone when wpe is NULL (models whose positions come from RoPE);
// backward: dwte[v] += sum of dout[b, t] over the (b, t) with tokens[b, t] == v,
//           dwpe[t] += sum over b of dout[b, t].
// CPU twin: kernels/cpu/embedding.c (qt_cpu_embedding_{fwd,bwd}).
// Contract (kernels/embedding.h): the forward overwrites out (wpe may be NULL); the
// backward ADDS into dwte and dwpe (dwpe may be NULL: no position gradient). Tokens must lie
// in [0, V); V is not passed, so only negative tokens can be caught here: such a token (a bug
// upstream, the data loader checks tokens) gives a NaN output row and no gradient, never an
// out-of-bounds access.
// Determinism, no atomics: each row of dwte is written by exactly one thread block. In the
// sorted backward (what the model runs) that is the block of the token's bucket
// (qt_embedding_buckets, built on the host with the batch), O(N C); in the plain one, the block
// of the token's first occurrence, which sums the dout rows of all its occurrences in token
// order in fp32 and adds that sum once (one rounding per step in fp16/bf16, not one per
// occurrence). Finding the occurrences costs a scan of the tokens per block, O(N^2 / 256)
// token reads per channel slice, cheap next to the N C gradient reads at training sizes; no
// scratch is needed. dwpe: one thread per (t, c) sums the B rows in order.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include <limits.h>

#include "kernels/embedding.h"

// ---- launch constants -----------------------------------------------------------------------
// Forward and dwpe: a block covers EMB_THREADS channels of one row (grid.y: channel slices).
#define EMB_THREADS 128
// dwte: a block covers EMB_BWD_THREADS channels of one token; its threads also scan
// EMB_BWD_THREADS tokens per step for the token's occurrences (a multiple of 32: whole warps
// vote). Wider than the forward, so the token scan takes fewer steps.
#define EMB_BWD_THREADS 256

// ---- kernels --------------------------------------------------------------------------------

// out (N, C) from tokens (N), wte (V, C), wpe (T, C) or NULL (no positions); N = B T, row n
// at position n % T.
// Thread mapping: grid (N, ceil(C / EMB_THREADS)), block EMB_THREADS; thread x of block
// (n, y) writes channel y * EMB_THREADS + x of row n. Guard: channels >= C do nothing.
template <typename T>
static __global__ void __launch_bounds__(EMB_THREADS)
    embedding_fwd_rowslice(T *out, const int *tokens, const T *wte, const T *wpe, int Tlen,
                           int C) {
    const int n = blockIdx.x, c = blockIdx.y * EMB_THREADS + threadIdx.x;
    if (c >= C) return;
    const int tok = tokens[n], t = n % Tlen;
    float v = qt_nan_f32(); // NaN for a negative token: see the file header
    if (tok >= 0) {
        v = qt_ld(wte + (size_t)tok * C + c);
        if (wpe) v += qt_ld(wpe + (size_t)t * C + c); // wpe NULL (uniform): token embedding only
    }
    qt_st(out + (size_t)n * C + c, v);
}

// dwte (V, C) += dout rows summed per token, from dout (N, C) and tokens (N).
// Thread mapping: grid (N, ceil(C / EMB_BWD_THREADS)), block EMB_BWD_THREADS; block (n, y)
// stands for position n and owns channels y * EMB_BWD_THREADS + threadIdx.x. Only the block
// of the token's first occurrence does anything: the block scans the tokens in steps of
// blockDim.x (thread i tests token m0 + i), leaves as a whole if an earlier position holds the
// same token (__syncthreads_or: block-uniform), and otherwise each warp's ballot of matches
// goes to shared memory; then every thread walks the set bits in token order, adding those
// dout rows for its channel. One fp32 sum per (token, channel), added to dwte once.
// Shared memory: one 32-bit match mask per warp. Guards: positions >= N never match; threads of
// channels >= C scan and vote but read and write no gradient.
template <typename T>
static __global__ void __launch_bounds__(EMB_BWD_THREADS)
    embedding_bwd_wte_owner(T *dwte, const T *dout, const int *tokens, int N, int C) {
    QT_SHARED(unsigned, masks, EMB_BWD_THREADS / 32);
    const int n = blockIdx.x, c = blockIdx.y * EMB_BWD_THREADS + threadIdx.x;
    const int tok = tokens[n];
    if (tok < 0) return; // block-uniform: skipped (see the file header)
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float acc = 0.0f;
    for (int m0 = 0; m0 < N; m0 += EMB_BWD_THREADS) {
        const int m = m0 + threadIdx.x;
        const int match = m < N && tokens[m] == tok;
        if (__syncthreads_or(match && m < n)) return; // not the first occurrence
        const unsigned bal = __ballot_sync(QT_FULL_MASK, match);
        if (lane == 0) masks[warp] = bal;
        __syncthreads();
        if (c < C) {
            for (int w = 0; w < EMB_BWD_THREADS / 32; w++) {
                for (unsigned bits = masks[w]; bits != 0; bits &= bits - 1) {
                    const int mm = m0 + w * 32 + (__ffs((int)bits) - 1);
                    acc += qt_ld(dout + (size_t)mm * C + c);
                }
            }
        }
        __syncthreads(); // the masks are rewritten next step
    }
    if (c < C) qt_add_st(dwte + (size_t)tok * C + c, acc);
}

// dwte (V, C) += the dout rows of each token bucket (qt_embedding_buckets: order (N), start
// (U + 1), token (U)), summed in position order in fp32 and added once: the scan kernel's
// sums in the scan kernel's order, without the scan.
// Thread mapping: grid (U, ceil(C / EMB_BWD_THREADS)), block EMB_BWD_THREADS; block (u, y)
// owns token[u]'s row, thread x channel y * EMB_BWD_THREADS + x, and walks the bucket's
// positions. No shared memory. Guard: channels >= C do nothing.
template <typename T>
static __global__ void __launch_bounds__(EMB_BWD_THREADS)
    embedding_bwd_wte_bucket(T *dwte, const T *dout, const int *order, const int *start,
                             const int *token, int C) {
    const int u = blockIdx.x, c = blockIdx.y * EMB_BWD_THREADS + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int k = start[u]; k < start[u + 1]; k++) acc += qt_ld(dout + (size_t)order[k] * C + c);
    qt_add_st(dwte + (size_t)token[u] * C + c, acc);
}

// dwpe (T, C) += sum over b of dout[b, t] (dout (B, T, C)).
// Thread mapping: grid (T, ceil(C / EMB_THREADS)), block EMB_THREADS; thread x of block
// (t, y) owns dwpe[t, y * EMB_THREADS + x] and adds the B rows in order. Guard: c < C.
template <typename T>
static __global__ void __launch_bounds__(EMB_THREADS)
    embedding_bwd_wpe_rowslice(T *dwpe, const T *dout, int B, int Tlen, int C) {
    const int t = blockIdx.x, c = blockIdx.y * EMB_THREADS + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int b = 0; b < B; b++) acc += qt_ld(dout + ((size_t)b * Tlen + t) * C + c);
    qt_add_st(dwpe + (size_t)t * C + c, acc);
}

// ---- launchers ------------------------------------------------------------------------------

// dtype and shape checks shared by both directions.
static qt_status check_shape(const char *op, qt_dtype dt, int B, int T, int C) {
    QT_TRY(qt_check_dtype(op, dt));
    if (B < 0 || T < 1 || C < 1)
        return qt_error(QT_ERR_ARG, "%s: B = %d, T = %d, C = %d; need B >= 0, T >= 1, C >= 1",
                        op, B, T, C);
    if ((long long)B * T > INT_MAX)
        return qt_error(QT_ERR_ARG, "%s: B T = %lld tokens exceeds %d; split the batch", op,
                        (long long)B * T, INT_MAX);
    return QT_OK;
}

template <typename T>
static void embedding_fwd_launch(cudaStream_t st, void *out, const int *tokens, const void *wte,
                                 const void *wpe, int N, int Tlen, int C) {
    const dim3 grid(N, QT_CEIL_DIV(C, EMB_THREADS));
    QT_LAUNCH(embedding_fwd_rowslice<T>, grid, EMB_THREADS, 0, st, (T *)out, tokens,
              (const T *)wte, (const T *)wpe, Tlen, C);
}

template <typename T>
static void embedding_bwd_launch(cudaStream_t st, void *dwte, void *dwpe, const void *dout,
                                 const int *tokens, int B, int Tlen, int C) {
    const int N = B * Tlen;
    if (dwte) {
        const dim3 grid(N, QT_CEIL_DIV(C, EMB_BWD_THREADS));
        QT_LAUNCH(embedding_bwd_wte_owner<T>, grid, EMB_BWD_THREADS, 0, st, (T *)dwte,
                  (const T *)dout, tokens, N, C);
    }
    if (dwpe) {
        const dim3 grid(Tlen, QT_CEIL_DIV(C, EMB_THREADS));
        QT_LAUNCH(embedding_bwd_wpe_rowslice<T>, grid, EMB_THREADS, 0, st, (T *)dwpe,
                  (const T *)dout, B, Tlen, C);
    }
}

template <typename T>
static void embedding_bwd_sorted_launch(cudaStream_t st, void *dwte, void *dwpe,
                                        const void *dout, const int *order, const int *start,
                                        const int *token, int n_buckets, int B, int Tlen, int C) {
    if (dwte) {
        const dim3 grid(n_buckets, QT_CEIL_DIV(C, EMB_BWD_THREADS));
        QT_LAUNCH(embedding_bwd_wte_bucket<T>, grid, EMB_BWD_THREADS, 0, st, (T *)dwte,
                  (const T *)dout, order, start, token, C);
    }
    if (dwpe) {
        const dim3 grid(Tlen, QT_CEIL_DIV(C, EMB_THREADS));
        QT_LAUNCH(embedding_bwd_wpe_rowslice<T>, grid, EMB_THREADS, 0, st, (T *)dwpe,
                  (const T *)dout, B, Tlen, C);
    }
}

extern "C" qt_status qt_cuda_embedding_fwd(qt_cuda_stream s, qt_dtype dt, void *out,
                                           const int *tokens, const void *wte, const void *wpe,
                                           int B, int T, int C) {
    const char *op = "cuda embedding_fwd";
    QT_TRY(check_shape(op, dt, B, T, C));
    if (B == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("out", out, dt), qt_arg("tokens", tokens),
                            qt_arg("wte", wte, dt), qt_arg("wpe", wpe, dt, QT_ARG_OPTIONAL)));
    QT_DTYPE_DISPATCH(dt, embedding_fwd_launch, (cudaStream_t)s, out, tokens, wte, wpe, B * T, T,
                      C);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_embedding_bwd(qt_cuda_stream s, qt_dtype dt, void *dwte,
                                           void *dwpe, const void *dout, const int *tokens,
                                           int B, int T, int C) {
    const char *op = "cuda embedding_bwd";
    QT_TRY(check_shape(op, dt, B, T, C));
    if (B == 0 || (!dwte && !dwpe)) return QT_OK;
    QT_TRY(qt_check_tensors(
        op, qt_arg("dwte", dwte, dt, QT_ARG_OPTIONAL), qt_arg("dwpe", dwpe, dt, QT_ARG_OPTIONAL),
        qt_arg("dout", dout, dt),
        qt_arg("tokens (needed for dwte)", tokens, dwte ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL)));
    QT_DTYPE_DISPATCH(dt, embedding_bwd_launch, (cudaStream_t)s, dwte, dwpe, dout, tokens, B, T, C);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_embedding_bwd_sorted(qt_cuda_stream s, qt_dtype dt, void *dwte,
                                                  void *dwpe, const void *dout, const int *order,
                                                  const int *start, const int *token,
                                                  int n_buckets, int B, int T, int C) {
    const char *op = "cuda embedding_bwd_sorted";
    QT_TRY(check_shape(op, dt, B, T, C));
    if (n_buckets < 0 || n_buckets > B * T || (B > 0 && n_buckets == 0))
        return qt_error(QT_ERR_ARG, "%s: %d buckets for B T = %d tokens; need 1 to B T "
                        "(qt_embedding_buckets)", op, n_buckets, B * T);
    if (B == 0 || (!dwte && !dwpe)) return QT_OK;
    QT_TRY(qt_check_grid(op, (size_t)n_buckets));
    const qt_arg_need need = dwte ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL;
    QT_TRY(qt_check_tensors(
        op, qt_arg("dwte", dwte, dt, QT_ARG_OPTIONAL), qt_arg("dwpe", dwpe, dt, QT_ARG_OPTIONAL),
        qt_arg("dout", dout, dt), qt_arg("order (needed for dwte)", order, need),
        qt_arg("start (needed for dwte)", start, need),
        qt_arg("token (needed for dwte)", token, need)));
    QT_DTYPE_DISPATCH(dt, embedding_bwd_sorted_launch, (cudaStream_t)s, dwte, dwpe, dout, order,
                      start, token, n_buckets, B, T, C);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// fwd, one kernel: reads tokens (4 B T), the gathered wte rows (E B T C) and wpe (E T C, when
// given), writes out (E B T C); one add per element with wpe. bwd, up to two kernels:
// dwte: reads dout (E B T C) and tokens, reads and writes the dwte rows of the tokens (+=,
// 2 E B T C when all B T tokens differ: the upper bound, the token values being unknown here),
// one add per element; its scan of the tokens for each token's first occurrence (O((B T)^2)
// integer compares out of L1/L2) is not DRAM traffic nor floating point and is not counted,
// which is why this launch's prediction is far below its measured time. dwpe: reads dout
// (E B T C) and dwpe (+=, E T C), writes dwpe; one add per element of dout.

extern "C" void qt_cuda_embedding_fwd_cost(qt_cost *c, qt_dtype dt, const void *out,
                                           const int *tokens, const void *wte, const void *wpe,
                                           int B, int T, int C) {
    (void)out, (void)tokens, (void)wte;
    if (B <= 0 || T < 1 || C < 1) return;
    const double btc = (double)B * T * C, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "embedding_fwd_rowslice",
                   E * (2 * btc + (wpe ? (double)T * C : 0.0)) + 4.0 * B * T, wpe ? btc : 0.0);
}

extern "C" void qt_cuda_embedding_bwd_cost(qt_cost *c, qt_dtype dt, const void *dwte,
                                           const void *dwpe, const void *dout, const int *tokens,
                                           int B, int T, int C) {
    (void)dout, (void)tokens;
    if (B <= 0 || T < 1 || C < 1 || (!dwte && !dwpe)) return;
    const double btc = (double)B * T * C, tc = (double)T * C, E = (double)qt_dtype_size(dt);
    if (dwte) qt_cost_kernel(c, "embedding_bwd_wte_owner", 3 * E * btc + 4.0 * B * T, btc);
    if (dwpe) qt_cost_kernel(c, "embedding_bwd_wpe_rowslice", E * (btc + 2 * tc), btc);
}

// The sorted backward: dwte's kernel reads dout (E B T C), order and the bucket table
// (4 (B T + 2 U + 1)), reads and writes the U rows of dwte (+=, 2 E U C); one add per element
// of dout. No scan. dwpe: as above.
extern "C" void qt_cuda_embedding_bwd_sorted_cost(qt_cost *c, qt_dtype dt, const void *dwte,
                                                  const void *dwpe, const void *dout,
                                                  const int *order, const int *start,
                                                  const int *token, int n_buckets, int B, int T,
                                                  int C) {
    (void)dout, (void)order, (void)start, (void)token;
    if (B <= 0 || T < 1 || C < 1 || n_buckets < 1 || (!dwte && !dwpe)) return;
    const double btc = (double)B * T * C, tc = (double)T * C, E = (double)qt_dtype_size(dt);
    const double U = n_buckets;
    if (dwte)
        qt_cost_kernel(c, "embedding_bwd_wte_bucket",
                       E * (btc + 2 * U * C) + 4.0 * ((double)B * T + 2 * U + 1), btc);
    if (dwpe) qt_cost_kernel(c, "embedding_bwd_wpe_rowslice", E * (btc + 2 * tc), btc);
}

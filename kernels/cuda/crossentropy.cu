// crossentropy.cu: qt_cuda_crossentropy_{fwd,bwd}, the softmax over the vocabulary fused with
// the cross-entropy loss, one block per row, fp32 math whatever the storage.
//   m = max_j z_j, S = sum_j exp(z_j - m), probs_j = exp(z_j - m) / S,
//   loss = log S - (z_t - m)  (= -log probs_t without forming it: tiny probabilities lose
//          nothing), t = targets[n]; rows with t < 0 are ignored: loss 0, probs still written;
//   backward: dlogits_j += dloss (probs_j - [j == t]); ignored rows get nothing.
// CPU twin: kernels/cpu/crossentropy.c (qt_cpu_crossentropy_{fwd,bwd}).
// Contract (kernels/crossentropy.h): the forward overwrites losses (fp32) and probs (dt);
// probs may alias logits (z_t is read before the block's first barrier, every other element is
// read and then written by the same thread after it). The backward adds into dlogits, except
// when dlogits == probs: then it overwrites them with the gradient, ignored rows with 0 (the
// CPU's aliasing rule). A target >= V (the CPU asserts) gives a NaN loss and a NaN gradient row
// instead of an out-of-bounds read.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "kernels/crossentropy.h"

// ---- launch constants ----------------------------------------------------------------------
// One block per row: V is thousands to tens of thousands, so a whole block strides the row
// (coalesced) and the two reductions cost one barrier each. 256 threads: 8 warps, enough
// loads in flight per row on sm_80/sm_90 without making small-V rows mostly idle.
#define WARP 32
#define THREADS 256
#define NWARPS (THREADS / WARP)
#define FULL_MASK 0xffffffffu

// ---- device helpers ------------------------------------------------------------------------

static __device__ __forceinline__ float nan_f32() { return __int_as_float(0x7fc00000); }

// Merges the online-softmax pair (mo, so) into (m, s): s is a sum of exp(z - m). An empty
// side has m = -inf and s = 0; two empty sides stay empty (exp(-inf + inf) would be NaN).
static __device__ __forceinline__ void merge(float &m, float &s, float mo, float so) {
    const float mn = fmaxf(m, mo);
    s = mn == -INFINITY ? 0.0f : s * expf(m - mn) + so * expf(mo - mn);
    m = mn;
}

// ---- kernels -------------------------------------------------------------------------------

// Thread -> data: block n owns row n; thread t handles columns t, t + 256, ... Pass 1: an
// online (max, sum) per thread, merged across the warp by a shuffle butterfly, then across the
// 8 warps through shared memory (red_m, red_s: one pair per warp), every thread merging the 8
// pairs in warp order, so all agree on (m, S) bit for bit. Pass 2 writes probs. Thread 0 reads
// z_t first and writes the loss. Guards: the column loops stop at V; the grid is exactly N.
template <typename T>
static __global__ void __launch_bounds__(THREADS)
    crossentropy_fwd_rowblock(float *losses, T *probs, const T *logits, const int *targets,
                              int V) {
    QT_SHARED(float, red_m, NWARPS);
    QT_SHARED(float, red_s, NWARPS);
    const int tid = (int)threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    const size_t off = (size_t)blockIdx.x * (size_t)V;
    const T *z = logits + off;
    T *pr = probs + off; // may alias z: see the file header
    const int t = targets[blockIdx.x];
    float zt = 0.0f;
    if (tid == 0 && t >= 0 && t < V) zt = qt_to_f32(z[t]); // before any thread writes probs

    float m = -INFINITY, s = 0.0f;
    for (int j = tid; j < V; j += THREADS) {
        const float v = qt_to_f32(z[j]);
        if (v > m) {
            s = s * expf(m - v) + 1.0f; // the first element: 0 * exp(-inf) + 1
            m = v;
        } else if (m != -INFINITY) { // v = m = -inf adds nothing
            s += expf(v - m);
        }
    }
    for (int o = WARP / 2; o > 0; o >>= 1) {
        const float mo = __shfl_xor_sync(FULL_MASK, m, o);
        const float so = __shfl_xor_sync(FULL_MASK, s, o);
        merge(m, s, mo, so);
    }
    if (lane == 0) {
        red_m[warp] = m;
        red_s[warp] = s;
    }
    __syncthreads();
    m = red_m[0];
    s = red_s[0];
    for (int w = 1; w < NWARPS; w++) merge(m, s, red_m[w], red_s[w]);

    const float inv = 1.0f / s;
    for (int j = tid; j < V; j += THREADS) qt_st(pr + j, expf(qt_to_f32(z[j]) - m) * inv);
    if (tid == 0) losses[blockIdx.x] = t < 0 ? 0.0f : t >= V ? nan_f32() : logf(s) - (zt - m);
}

// Thread -> data: block n owns row n, threads stride its V columns; each element is read and
// written by one thread (so dlogits == probs is safe). No shared memory. The row's target and
// dloss are uniform across the block, so the early exits do not diverge.
template <typename T>
static __global__ void __launch_bounds__(THREADS)
    crossentropy_bwd_rowblock(T *dlogits, const float *dlosses, const T *probs,
                              const int *targets, int V, int overwrite) {
    const size_t off = (size_t)blockIdx.x * (size_t)V;
    T *d = dlogits + off;
    const T *pr = probs + off;
    const int t = targets[blockIdx.x];
    if (t < 0) { // ignored: no gradient; an in-place buffer must not keep the probs
        if (overwrite)
            for (int j = (int)threadIdx.x; j < V; j += THREADS) qt_st(d + j, 0.0f);
        return;
    }
    const float dl = t < V ? dlosses[blockIdx.x] : nan_f32();
    for (int j = (int)threadIdx.x; j < V; j += THREADS) {
        float v = dl * qt_to_f32(pr[j]);
        if (!overwrite) v = qt_to_f32(d[j]) + v;
        if (j == t) v -= dl;
        qt_st(d + j, v);
    }
}

// ---- launchers -----------------------------------------------------------------------------

static qt_status check_args(const char *op, qt_dtype dt, const void *out1, const void *out2,
                            const void *in, const int *targets, int N, int V) {
    if (dt != QT_DTYPE_F32 && dt != QT_DTYPE_F16 && dt != QT_DTYPE_BF16)
        return qt_error(QT_ERR_ARG, "%s: dtype %d is not fp32, fp16 or bf16", op, (int)dt);
    if (N < 0 || V < 1)
        return qt_error(QT_ERR_ARG, "%s: shape (N %d, V %d); need N >= 0, V >= 1", op, N, V);
    if (N > 0 && (!out1 || !out2 || !in || !targets))
        return qt_error(QT_ERR_ARG, "%s: a tensor pointer is NULL for N = %d rows", op, N);
    return QT_OK;
}

template <typename T>
static void launch_fwd(cudaStream_t st, float *losses, void *probs, const void *logits,
                       const int *targets, int N, int V) {
    QT_LAUNCH(crossentropy_fwd_rowblock<T>, N, THREADS, 0, st, losses, (T *)probs,
              (const T *)logits, targets, V);
}

template <typename T>
static void launch_bwd(cudaStream_t st, void *dlogits, const float *dlosses, const void *probs,
                       const int *targets, int N, int V, int overwrite) {
    QT_LAUNCH(crossentropy_bwd_rowblock<T>, N, THREADS, 0, st, (T *)dlogits, dlosses,
              (const T *)probs, targets, V, overwrite);
}

extern "C" qt_status qt_cuda_crossentropy_fwd(qt_cuda_stream s, qt_dtype dt, float *losses,
                                              void *probs, const void *logits,
                                              const int *targets, int N, int V) {
    QT_TRY(check_args("crossentropy_fwd", dt, losses, probs, logits, targets, N, V));
    if (N == 0) return QT_OK;
    cudaStream_t st = (cudaStream_t)s;
    if (dt == QT_DTYPE_F32)
        launch_fwd<float>(st, losses, probs, logits, targets, N, V);
    else if (dt == QT_DTYPE_F16)
        launch_fwd<__half>(st, losses, probs, logits, targets, N, V);
    else
        launch_fwd<__nv_bfloat16>(st, losses, probs, logits, targets, N, V);
    QT_CHECK_LAUNCH("crossentropy_fwd");
    return QT_OK;
}

extern "C" qt_status qt_cuda_crossentropy_bwd(qt_cuda_stream s, qt_dtype dt, void *dlogits,
                                              const float *dlosses, const void *probs,
                                              const int *targets, int N, int V) {
    QT_TRY(check_args("crossentropy_bwd", dt, dlogits, dlosses, probs, targets, N, V));
    if (N == 0) return QT_OK;
    const int overwrite = dlogits == probs; // in place: dlogits = dloss (probs - onehot)
    cudaStream_t st = (cudaStream_t)s;
    if (dt == QT_DTYPE_F32)
        launch_bwd<float>(st, dlogits, dlosses, probs, targets, N, V, overwrite);
    else if (dt == QT_DTYPE_F16)
        launch_bwd<__half>(st, dlogits, dlosses, probs, targets, N, V, overwrite);
    else
        launch_bwd<__nv_bfloat16>(st, dlogits, dlosses, probs, targets, N, V, overwrite);
    QT_CHECK_LAUNCH("crossentropy_bwd");
    return QT_OK;
}

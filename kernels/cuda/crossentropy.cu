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
// (coalesced) and the one (max, sum) reduction costs two barriers. 256 threads: 8 warps, enough
// loads in flight per row on sm_80/sm_90 without making small-V rows mostly idle.
#define THREADS 256

// ---- kernels -------------------------------------------------------------------------------

// Thread -> data: block n owns row n; thread t handles columns t, t + 256, ... Pass 1: an
// online (max, sum) per thread (qt_softmax_push), merged by qt_block_allreduce: across the warp
// by a shuffle butterfly, then across the 8 warps through shared memory (red: one pair per
// warp), every thread merging the 8 pairs in warp order, so all agree on (m, S) bit for bit.
// Pass 2 writes probs. Thread 0 reads z_t first and writes the loss. Guards: the column loops
// stop at V; the grid is exactly N.
template <typename T>
static __global__ void __launch_bounds__(THREADS)
    crossentropy_fwd_rowblock(float *losses, T *probs, const T *logits, const int *targets,
                              int V) {
    QT_SHARED(qt_softmax_acc, red, THREADS / QT_WARP);
    const int tid = (int)threadIdx.x;
    const size_t off = (size_t)blockIdx.x * (size_t)V;
    const T *z = logits + off;
    T *pr = probs + off; // may alias z: see the file header
    const int t = targets[blockIdx.x];
    float zt = 0.0f;
    if (tid == 0 && t >= 0 && t < V) zt = qt_to_f32(z[t]); // before any thread writes probs

    qt_softmax_acc acc = {-INFINITY, 0.0f};
    for (int j = tid; j < V; j += THREADS)
        qt_softmax_push(acc, qt_to_f32(z[j]));
    acc = qt_block_allreduce<THREADS>(acc, red, qt_op_softmax_merge());
    const float m = acc.m, s = acc.s, inv = 1.0f / s;
    for (int j = tid; j < V; j += THREADS) qt_st(pr + j, expf(qt_to_f32(z[j]) - m) * inv);
    if (tid == 0) losses[blockIdx.x] = t < 0 ? 0.0f : t >= V ? qt_nan_f32() : logf(s) - (zt - m);
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
    const float dl = t < V ? dlosses[blockIdx.x] : qt_nan_f32();
    for (int j = (int)threadIdx.x; j < V; j += THREADS) {
        float v = dl * qt_to_f32(pr[j]);
        if (!overwrite) v = qt_to_f32(d[j]) + v;
        if (j == t) v -= dl;
        qt_st(d + j, v);
    }
}

// ---- launchers -----------------------------------------------------------------------------

static qt_status check_shape(const char *op, qt_dtype dt, int N, int V) {
    QT_TRY(qt_check_dtype(op, dt));
    if (N < 0 || V < 1)
        return qt_error(QT_ERR_ARG, "%s: shape (N %d, V %d); need N >= 0, V >= 1", op, N, V);
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
    const char *op = "crossentropy_fwd";
    QT_TRY(check_shape(op, dt, N, V));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("losses", losses), qt_arg("probs", probs, dt),
                            qt_arg("logits", logits, dt), qt_arg("targets", targets)));
    QT_DTYPE_DISPATCH(dt, launch_fwd, (cudaStream_t)s, losses, probs, logits, targets, N, V);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_crossentropy_bwd(qt_cuda_stream s, qt_dtype dt, void *dlogits,
                                              const float *dlosses, const void *probs,
                                              const int *targets, int N, int V) {
    const char *op = "crossentropy_bwd";
    QT_TRY(check_shape(op, dt, N, V));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("dlogits", dlogits, dt), qt_arg("dlosses", dlosses),
                            qt_arg("probs", probs, dt), qt_arg("targets", targets)));
    const int overwrite = dlogits == probs; // in place: dlogits = dloss (probs - onehot)
    QT_DTYPE_DISPATCH(dt, launch_bwd, (cudaStream_t)s, dlogits, dlosses, probs, targets, N, V,
                      overwrite);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// One kernel per call. fwd: reads logits (E N V) and targets (4 N), writes probs (E N V) and
// the fp32 losses (4 N); 5 flops per logit (the max, z - m, exp, the sum, the normalizing
// product). The kernel reads each row twice (the online max/sum pass, then the probs pass):
// the second read is a re-read, not counted. bwd: reads probs (E N V), dlosses and targets
// (8 N) and, unless dlogits == probs (overwritten in place), dlogits (+=); writes dlogits;
// 2 flops per logit (dloss (p - onehot) and the add).

extern "C" void qt_cuda_crossentropy_fwd_cost(qt_cost *c, qt_dtype dt, const float *losses,
                                              const void *probs, const void *logits,
                                              const int *targets, int N, int V) {
    (void)losses, (void)probs, (void)logits, (void)targets;
    if (N <= 0 || V < 1) return;
    const double nv = (double)N * (double)V, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "crossentropy_fwd_rowblock", 2 * E * nv + 8.0 * N, 5 * nv);
}

extern "C" void qt_cuda_crossentropy_bwd_cost(qt_cost *c, qt_dtype dt, const void *dlogits,
                                              const float *dlosses, const void *probs,
                                              const int *targets, int N, int V) {
    (void)dlosses, (void)targets;
    if (N <= 0 || V < 1) return;
    const double nv = (double)N * (double)V, E = (double)qt_dtype_size(dt);
    const double streams = dlogits == probs ? 2 : 3;
    qt_cost_kernel(c, "crossentropy_bwd_rowblock", streams * E * nv + 8.0 * N, 2 * nv);
}

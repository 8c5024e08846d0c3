// crossentropy.cu: qt_cuda_crossentropy_{fwd,bwd}, the classifier's loss and its gradient
// straight from the logits, one block per row, fp32 math and statistics whatever the storage.
//   m = max_j z_j, S = sum_j exp(z_j - m), stats = {m, 1 / S},
//   loss = log S - (z_t - m)  (= -log softmax_t without forming it: tiny probabilities lose
//          nothing), t = targets[n]; rows with t < 0 are ignored: loss 0, stats still written;
//   backward: dlogits_j += dloss (exp(z_j - m) (1 / S) - [j == t]); ignored rows get nothing.
// No probability is ever stored: in fp16 those of a 50k vocabulary (about 2e-5 each) are
// subnormal, 8 bits or fewer; each gradient element is now rounded once, from fp32.
// CPU twin: kernels/cpu/crossentropy.c (qt_cpu_crossentropy_{fwd,bwd}).
// qt_cuda_crossentropy_fwd_bwd: both in one launch, the gradient over the logits (training).
// Contract (kernels/crossentropy.h): the forward overwrites losses and stats (fp32) and only
// reads the logits. The backward adds into dlogits, except when dlogits == logits: then it
// overwrites them with the gradient, ignored rows with 0 (the CPU's aliasing rule; each element
// is read and then written by the same thread). A target >= V (the CPU refuses it) gives a NaN
// loss and a NaN gradient row instead of an out-of-bounds read.
// Rows go in chunks of W consecutive columns per thread: 128-bit loads and stores where V and
// the pointers allow (qt_row_width), column by column otherwise.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "kernels/crossentropy.h"

// ---- launch constants ----------------------------------------------------------------------
// One block per row: V is thousands to tens of thousands, so a whole block strides the row
// (coalesced) and the one (max, sum) reduction costs two barriers. 256 threads: 8 warps, enough
// loads in flight per row on sm_80/sm_90 without making small-V rows mostly idle.
#define THREADS 256

// The chunks of a row of V columns that thread tid visits, W columns each.
#define CE_CHUNKS(c, W, V, tid) for (int c = (tid) * (W); c < (V); c += THREADS * (W))

// ---- kernels -------------------------------------------------------------------------------

// Thread -> data: block n owns row n; thread t handles the chunks starting at W t,
// W (t + 256), ... One pass: an online (max, sum) per thread (qt_softmax_push), merged by
// qt_block_allreduce: across the warp by a shuffle butterfly, then across the 8 warps through
// shared memory (red: one pair per warp), every thread merging the 8 pairs in warp order, so
// all agree on (m, S) bit for bit. Thread 0 reads z_t and writes the loss and stats. Guards:
// the chunk loops stop at V; the grid is exactly N.
template <typename T, int W>
static __global__ void __launch_bounds__(THREADS)
    crossentropy_fwd_rowblock(float *losses, float *stats, const T *logits, const int *targets,
                              int V) {
    typedef qt_vec<T, W> vec;
    QT_SHARED(qt_softmax_acc, red, THREADS / QT_WARP);
    const int tid = (int)threadIdx.x;
    const T *z = logits + (size_t)blockIdx.x * (size_t)V;
    qt_softmax_acc acc = {-INFINITY, 0.0f};
    CE_CHUNKS(c, W, V, tid) {
        const vec vz = vec::load(z + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) qt_softmax_push(acc, vz.get(k));
    }
    acc = qt_block_allreduce<THREADS>(acc, red, qt_op_softmax_merge());
    if (tid == 0) {
        const int t = targets[blockIdx.x];
        const float m = acc.m, s = acc.s;
        stats[2 * (size_t)blockIdx.x] = m;
        stats[2 * (size_t)blockIdx.x + 1] = 1.0f / s;
        losses[blockIdx.x] =
            t < 0 ? 0.0f : t >= V ? qt_nan_f32() : logf(s) - (qt_to_f32(z[t]) - m);
    }
}

// Thread -> data: block n owns row n, threads take its chunks as in the forward; each element
// is read and written by one thread (so dlogits == logits is safe). No shared memory. The row's
// target, dloss and stats are uniform across the block, so the early exit does not diverge.
template <typename T, int W>
static __global__ void __launch_bounds__(THREADS)
    crossentropy_bwd_rowblock(T *dlogits, const float *dlosses, const T *logits,
                              const float *stats, const int *targets, int V, int overwrite) {
    typedef qt_vec<T, W> vec;
    const int tid = (int)threadIdx.x;
    const size_t off = (size_t)blockIdx.x * (size_t)V;
    T *d = dlogits + off;
    const T *z = logits + off;
    const int t = targets[blockIdx.x];
    if (t < 0) { // ignored: no gradient; an in-place buffer must not keep the logits
        if (overwrite) {
            vec zero;
            QT_UNROLL
            for (int k = 0; k < W; k++) zero.set(k, 0.0f);
            CE_CHUNKS(c, W, V, tid) zero.store(d + c);
        }
        return;
    }
    const float dl = t < V ? dlosses[blockIdx.x] : qt_nan_f32();
    const float m = stats[2 * (size_t)blockIdx.x], inv = stats[2 * (size_t)blockIdx.x + 1];
    CE_CHUNKS(c, W, V, tid) {
        const vec vz = vec::load(z + c);
        vec vd;
        if (!overwrite) vd = vec::load(d + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) {
            float v = dl * (expf(vz.get(k) - m) * inv);
            if (!overwrite) v = vd.get(k) + v;
            if (c + k == t) v -= dl;
            vd.set(k, v);
        }
        vd.store(d + c);
    }
}

// Both in one launch (training, the gradient's scale known up front): block n owns row n and
// does the forward's pass and reduction above, then the backward's pass in place over the
// logits with the (m, 1 / S) it just reduced: losses, stats and gradient bit for bit those of
// the two kernels. Thread 0 reads z_t before the reduction, whose barriers order it before
// any thread overwrites z_t. The second pass re-reads each thread's own chunks right after the
// first, from L2 (a row is at most a few hundred KB; one block per row in flight per SM slot).
template <typename T, int W>
static __global__ void __launch_bounds__(THREADS)
    crossentropy_fwd_bwd_rowblock(float *losses, float *stats, T *logits, const float *dlosses,
                                  const int *targets, int V) {
    typedef qt_vec<T, W> vec;
    QT_SHARED(qt_softmax_acc, red, THREADS / QT_WARP);
    const int tid = (int)threadIdx.x;
    T *z = logits + (size_t)blockIdx.x * (size_t)V;
    const int t = targets[blockIdx.x];
    const float zt = tid == 0 && t >= 0 && t < V ? qt_to_f32(z[t]) : 0.0f;
    qt_softmax_acc acc = {-INFINITY, 0.0f};
    CE_CHUNKS(c, W, V, tid) {
        const vec vz = vec::load(z + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) qt_softmax_push(acc, vz.get(k));
    }
    acc = qt_block_allreduce<THREADS>(acc, red, qt_op_softmax_merge());
    const float m = acc.m, inv = 1.0f / acc.s;
    if (tid == 0) {
        stats[2 * (size_t)blockIdx.x] = m;
        stats[2 * (size_t)blockIdx.x + 1] = inv;
        losses[blockIdx.x] = t < 0 ? 0.0f : t >= V ? qt_nan_f32() : logf(acc.s) - (zt - m);
    }
    vec vd;
    if (t < 0) { // ignored: no gradient, and the logits must not stay in the gradient's place
        QT_UNROLL
        for (int k = 0; k < W; k++) vd.set(k, 0.0f);
        CE_CHUNKS(c, W, V, tid) vd.store(z + c);
        return;
    }
    const float dl = t < V ? dlosses[blockIdx.x] : qt_nan_f32();
    CE_CHUNKS(c, W, V, tid) {
        const vec vz = vec::load(z + c);
        QT_UNROLL
        for (int k = 0; k < W; k++) {
            float v = dl * (expf(vz.get(k) - m) * inv);
            if (c + k == t) v -= dl;
            vd.set(k, v);
        }
        vd.store(z + c);
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
static void launch_fwd(cudaStream_t st, float *losses, float *stats, const void *logits,
                       const int *targets, int N, int V) {
    if (qt_row_width<T>(V, (const T *)logits) > 1)
        QT_LAUNCH((crossentropy_fwd_rowblock<T, qt_vec<T>::width>), N, THREADS, 0, st, losses,
                  stats, (const T *)logits, targets, V);
    else
        QT_LAUNCH((crossentropy_fwd_rowblock<T, 1>), N, THREADS, 0, st, losses, stats,
                  (const T *)logits, targets, V);
}

template <typename T>
static void launch_bwd(cudaStream_t st, void *dlogits, const float *dlosses, const void *logits,
                       const float *stats, const int *targets, int N, int V, int overwrite) {
    if (qt_row_width<T>(V, (const T *)dlogits, (const T *)logits) > 1)
        QT_LAUNCH((crossentropy_bwd_rowblock<T, qt_vec<T>::width>), N, THREADS, 0, st,
                  (T *)dlogits, dlosses, (const T *)logits, stats, targets, V, overwrite);
    else
        QT_LAUNCH((crossentropy_bwd_rowblock<T, 1>), N, THREADS, 0, st, (T *)dlogits, dlosses,
                  (const T *)logits, stats, targets, V, overwrite);
}

template <typename T>
static void launch_fwd_bwd(cudaStream_t st, float *losses, float *stats, void *logits,
                           const float *dlosses, const int *targets, int N, int V) {
    if (qt_row_width<T>(V, (const T *)logits) > 1)
        QT_LAUNCH((crossentropy_fwd_bwd_rowblock<T, qt_vec<T>::width>), N, THREADS, 0, st,
                  losses, stats, (T *)logits, dlosses, targets, V);
    else
        QT_LAUNCH((crossentropy_fwd_bwd_rowblock<T, 1>), N, THREADS, 0, st, losses, stats,
                  (T *)logits, dlosses, targets, V);
}

extern "C" qt_status qt_cuda_crossentropy_fwd(qt_cuda_stream s, qt_dtype dt, float *losses,
                                              float *stats, const void *logits,
                                              const int *targets, int N, int V) {
    const char *op = "crossentropy_fwd";
    QT_TRY(check_shape(op, dt, N, V));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("losses", losses), qt_arg("stats", stats),
                            qt_arg("logits", logits, dt), qt_arg("targets", targets)));
    QT_DTYPE_DISPATCH(dt, launch_fwd, (cudaStream_t)s, losses, stats, logits, targets, N, V);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_crossentropy_bwd(qt_cuda_stream s, qt_dtype dt, void *dlogits,
                                              const float *dlosses, const void *logits,
                                              const float *stats, const int *targets, int N,
                                              int V) {
    const char *op = "crossentropy_bwd";
    QT_TRY(check_shape(op, dt, N, V));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("dlogits", dlogits, dt), qt_arg("dlosses", dlosses),
                            qt_arg("logits", logits, dt), qt_arg("stats", stats),
                            qt_arg("targets", targets)));
    const int overwrite = dlogits == logits; // in place: dlogits = dloss (softmax - onehot)
    QT_DTYPE_DISPATCH(dt, launch_bwd, (cudaStream_t)s, dlogits, dlosses, logits, stats, targets,
                      N, V, overwrite);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_crossentropy_fwd_bwd(qt_cuda_stream s, qt_dtype dt, float *losses,
                                                  float *stats, void *logits,
                                                  const float *dlosses, const int *targets,
                                                  int N, int V) {
    const char *op = "crossentropy_fwd_bwd";
    QT_TRY(check_shape(op, dt, N, V));
    if (N == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("losses", losses), qt_arg("stats", stats),
                            qt_arg("logits", logits, dt), qt_arg("dlosses", dlosses),
                            qt_arg("targets", targets)));
    QT_DTYPE_DISPATCH(dt, launch_fwd_bwd, (cudaStream_t)s, losses, stats, logits, dlosses,
                      targets, N, V);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// One kernel per call. fwd: reads logits (E N V) and targets (4 N) once, writes the losses and
// stats (12 N); 4 flops per logit (the online max, z - m, exp, the sum). bwd: reads logits
// (E N V), dlosses, stats and targets (16 N) and, unless dlogits == logits (overwritten in
// place), dlogits (+=); writes dlogits; 5 flops per logit (z - m, exp, the two products, the
// add or the subtraction).

extern "C" void qt_cuda_crossentropy_fwd_cost(qt_cost *c, qt_dtype dt, const float *losses,
                                              const float *stats, const void *logits,
                                              const int *targets, int N, int V) {
    (void)losses, (void)stats, (void)logits, (void)targets;
    if (N <= 0 || V < 1) return;
    const double nv = (double)N * (double)V, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "crossentropy_fwd_rowblock", E * nv + 16.0 * N, 4 * nv);
}

extern "C" void qt_cuda_crossentropy_bwd_cost(qt_cost *c, qt_dtype dt, const void *dlogits,
                                              const float *dlosses, const void *logits,
                                              const float *stats, const int *targets, int N,
                                              int V) {
    (void)dlosses, (void)stats, (void)targets;
    if (N <= 0 || V < 1) return;
    const double nv = (double)N * (double)V, E = (double)qt_dtype_size(dt);
    const double streams = dlogits == logits ? 2 : 3;
    qt_cost_kernel(c, "crossentropy_bwd_rowblock", streams * E * nv + 16.0 * N, 5 * nv);
}

// fwd_bwd: the forward's reads and writes, then the gradient written over the logits (its
// second read of each row is served by L2, not counted: base/cost.h); dlosses read (4 N);
// the two kernels' flops.
extern "C" void qt_cuda_crossentropy_fwd_bwd_cost(qt_cost *c, qt_dtype dt, const float *losses,
                                                  const float *stats, const void *logits,
                                                  const float *dlosses, const int *targets,
                                                  int N, int V) {
    (void)losses, (void)stats, (void)logits, (void)dlosses, (void)targets;
    if (N <= 0 || V < 1) return;
    const double nv = (double)N * (double)V, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "crossentropy_fwd_bwd_rowblock", 2.0 * E * nv + 20.0 * N, 9 * nv);
}

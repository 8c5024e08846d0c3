// sumsq.cu: the deterministic sum of squares behind the global gradient norm and the loss
// scaler's overflow check.
//
// qt_cuda_sumsq: sum of x^2 in double; two stages with a block count that depends only on n,
// each summing in a fixed order (grid-stride per thread, then fixed-shape trees), so the result
// is bit-identical from run to run and GPU to GPU. Squares are non-negative, so an inf or NaN
// anywhere gives an inf or NaN total, never a cancelled finite one: the overflow check.
// CPU twin: kernels/cpu/sumsq.c (qt_cpu_sumsq; it also accumulates in double, but in chunks of
// its own: the two agree to double rounding, not bit for bit).
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "kernels/sumsq.h"

// ---- launch constants -----------------------------------------------------------------------
// sumsq stage 1: SUMSQ_THREADS a block (8 warps); one block per SUMSQ_MIN_PER_BLOCK elements,
// at most SUMSQ_MAX_BLOCKS (enough to fill a GPU several times; each thread then loops). The
// stage-1 partials go to partials[0, blocks), the total to partials[SUMSQ_MAX_BLOCKS].
#define SUMSQ_THREADS 256
#define SUMSQ_MIN_PER_BLOCK (SUMSQ_THREADS * 16)
#define SUMSQ_MAX_BLOCKS 1024

// ---- device helpers -------------------------------------------------------------------------

// Sum of v over the block (blockDim.x == SUMSQ_THREADS), valid in thread 0: warp butterflies
// (qt_warp_sum), then warp 0 butterflies the SUMSQ_THREADS / 32 warp sums, padded with zeros to
// a warp. A deliberate special case beside common.cuh's qt_block_allreduce (which folds the
// warp sums in warp order): this second stage is the order sumsq has always had, so the norms
// and overflow checks of earlier runs keep their bits. Every thread must call it.
static __device__ __forceinline__ double block_sum(double v) {
    QT_SHARED(double, warp_sums, SUMSQ_THREADS / QT_WARP);
    const int warp = threadIdx.x / QT_WARP, lane = threadIdx.x % QT_WARP;
    v = qt_warp_sum(v);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (warp == 0) total = qt_warp_sum(lane < SUMSQ_THREADS / QT_WARP ? warp_sums[lane] : 0.0);
    return total;
}

// ---- kernels --------------------------------------------------------------------------------

// Stage 1: partials[blockIdx.x] = sum over this block's elements of x^2, in double.
// Thread mapping: grid-stride over x with the launch's fixed grid; then block_sum.
// Shared memory: block_sum's SUMSQ_THREADS / 32 doubles. Guard: the grid-stride bound.
template <typename T>
static __global__ void __launch_bounds__(SUMSQ_THREADS)
    sumsq_partial_block(double *partials, const T *x, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    double acc = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const double xi = (double)qt_ld(x + i);
        acc += xi * xi; // exact: a float's square fits a double's mantissa
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// Stage 2, one block: *total = sum of partials[0, nparts), thread t adding t, t +
// SUMSQ_THREADS, ... in order, then block_sum.
static __global__ void __launch_bounds__(SUMSQ_THREADS)
    sumsq_final_block(double *total, const double *partials, int nparts) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < nparts; i += SUMSQ_THREADS) acc += partials[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) *total = acc;
}

// ---- launchers ------------------------------------------------------------------------------

template <typename T>
static void sumsq_partial_launch(cudaStream_t st, int blocks, double *partials, const void *x,
                                 size_t n) {
    QT_LAUNCH(sumsq_partial_block<T>, blocks, SUMSQ_THREADS, 0, st, partials, (const T *)x, n);
}

extern "C" size_t qt_cuda_sumsq_scratch_size(void) { return SUMSQ_MAX_BLOCKS + 1; }

// The two stages into partials[SUMSQ_MAX_BLOCKS] (n >= 1, arguments checked).
static qt_status sumsq_stages(const char *op, cudaStream_t st, qt_dtype dt, const void *x,
                              size_t n, double *partials) {
    // The block count depends on n alone: the summation order, hence the bits, too.
    const size_t nb = QT_CEIL_DIV(n, (size_t)SUMSQ_MIN_PER_BLOCK);
    const int blocks = (int)(nb < SUMSQ_MAX_BLOCKS ? nb : SUMSQ_MAX_BLOCKS);
    QT_DTYPE_DISPATCH(dt, sumsq_partial_launch, st, blocks, partials, x, n);
    QT_CHECK_LAUNCH(op);
    QT_LAUNCH(sumsq_final_block, 1, SUMSQ_THREADS, 0, st, partials + SUMSQ_MAX_BLOCKS,
              (const double *)partials, blocks);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_sumsq(qt_cuda_stream s, qt_dtype dt, double *out_host,
                                   const void *x, size_t n, double *partials) {
    const char *op = "cuda sumsq";
    QT_TRY(qt_check_dtype(op, dt));
    if (!out_host) return qt_error(QT_ERR_ARG, "%s: out_host is NULL", op);
    if (n == 0) {
        *out_host = 0.0;
        return QT_OK;
    }
    QT_TRY(qt_check_tensors(op, qt_arg("x", x, dt),
                            qt_arg("partials (qt_cuda_sumsq_scratch_size() doubles)", partials)));
    cudaStream_t st = (cudaStream_t)s;
    QT_TRY(sumsq_stages(op, st, dt, x, n, partials));
    QT_CHECK_CUDA(cudaMemcpyAsync(out_host, partials + SUMSQ_MAX_BLOCKS, sizeof(double),
                                  cudaMemcpyDeviceToHost, st));
    QT_CHECK_CUDA(cudaStreamSynchronize(st));
    return QT_OK;
}

extern "C" qt_status qt_cuda_sumsq_device(qt_cuda_stream s, qt_dtype dt, const void *x, size_t n,
                                          double *partials) {
    const char *op = "cuda sumsq_device";
    QT_TRY(qt_check_dtype(op, dt));
    QT_TRY(qt_check_tensors(op, qt_arg("x", x, dt, n ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL),
                            qt_arg("partials (qt_cuda_sumsq_scratch_size() doubles)", partials)));
    if (n == 0) { // the total of nothing, on the device like the others
        QT_CHECK_CUDA(cudaMemsetAsync(partials + SUMSQ_MAX_BLOCKS, 0, sizeof(double),
                                      (cudaStream_t)s));
        return QT_OK;
    }
    return sumsq_stages(op, (cudaStream_t)s, dt, x, n, partials);
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// Two kernels, then the total's copy to the host and the wait for it (a host synchronization):
// sumsq_partial_block reads x (E n) and writes its blocks' partials, 2 flops per element (the
// square and the add, in double); sumsq_final_block adds the partials; the copy moves one
// double.

extern "C" void qt_cuda_sumsq_cost(qt_cost *c, qt_dtype dt, const double *out_host, const void *x,
                                   size_t n, const double *partials) {
    (void)x, (void)partials;
    if (!out_host || n == 0) return;
    const size_t nb = QT_CEIL_DIV(n, (size_t)SUMSQ_MIN_PER_BLOCK);
    const double blocks = (double)(nb < SUMSQ_MAX_BLOCKS ? nb : SUMSQ_MAX_BLOCKS);
    qt_cost_add(c, "sumsq_partial_block", QT_LAUNCH_KERNEL, QT_MATH_FP64,
                (double)qt_dtype_size(dt) * (double)n + 8 * blocks, 2.0 * (double)n, 1);
    qt_cost_add(c, "sumsq_final_block", QT_LAUNCH_KERNEL, QT_MATH_FP64, 8 * blocks + 8, blocks, 1);
    qt_cost_add(c, "memcpy", QT_LAUNCH_COPY_D2H, QT_MATH_NONE, 8, 0, 1);
    qt_cost_add(c, "cudaStreamSynchronize", QT_LAUNCH_SYNC, QT_MATH_NONE, 0, 0, 1);
}

// qt_cuda_sumsq_device: the two kernels alone (n == 0: one 8-byte memset).
extern "C" void qt_cuda_sumsq_device_cost(qt_cost *c, qt_dtype dt, const void *x, size_t n,
                                          const double *partials) {
    (void)x, (void)partials;
    if (n == 0) {
        qt_cost_add(c, "cudaMemsetAsync", QT_LAUNCH_MEMSET, QT_MATH_NONE, 8, 0, 1);
        return;
    }
    const size_t nb = QT_CEIL_DIV(n, (size_t)SUMSQ_MIN_PER_BLOCK);
    const double blocks = (double)(nb < SUMSQ_MAX_BLOCKS ? nb : SUMSQ_MAX_BLOCKS);
    qt_cost_add(c, "sumsq_partial_block", QT_LAUNCH_KERNEL, QT_MATH_FP64,
                (double)qt_dtype_size(dt) * (double)n + 8 * blocks, 2.0 * (double)n, 1);
    qt_cost_add(c, "sumsq_final_block", QT_LAUNCH_KERNEL, QT_MATH_FP64, 8 * blocks + 8, blocks, 1);
}

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

#include <stdint.h>

#include "kernels/sumsq.h"

// ---- launch constants -----------------------------------------------------------------------
// sumsq stage 1: SUMSQ_THREADS a block (8 warps); one block per SUMSQ_MIN_PER_BLOCK elements,
// at most SUMSQ_MAX_BLOCKS (enough to fill a GPU several times; each thread then loops). The
// stage-1 partials go to partials[0, blocks), the total to partials[SUMSQ_MAX_BLOCKS].
#define SUMSQ_THREADS 256
#define SUMSQ_MIN_PER_BLOCK (SUMSQ_THREADS * 16)
#define SUMSQ_MAX_BLOCKS 1024

// ---- device helpers (storage <-> fp32: common.cuh) -----------------------------------

// Sum over a warp by an xor butterfly (commutative adds: every lane gets the same bits).
static __device__ __forceinline__ double warp_sum(double v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// Sum of v over the block (blockDim.x == SUMSQ_THREADS), valid in thread 0: warp butterflies,
// then warp 0 adds the SUMSQ_THREADS / 32 warp sums in warp order. Every thread must call it.
static __device__ __forceinline__ double block_sum(double v) {
    QT_SHARED(double, warp_sums, SUMSQ_THREADS / 32);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    v = warp_sum(v);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (warp == 0) total = warp_sum(lane < SUMSQ_THREADS / 32 ? warp_sums[lane] : 0.0);
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

// Stage 2, one block: partials[SUMSQ_MAX_BLOCKS] = sum of partials[0, nparts), thread t adding
// t, t + SUMSQ_THREADS, ... in order, then block_sum.
static __global__ void __launch_bounds__(SUMSQ_THREADS)
    sumsq_final_block(double *partials, int nparts) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < nparts; i += SUMSQ_THREADS) acc += partials[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[SUMSQ_MAX_BLOCKS] = acc;
}

// ---- launchers ------------------------------------------------------------------------------

static int dtype_ok(qt_dtype dt) {
    return dt == QT_DTYPE_F32 || dt == QT_DTYPE_F16 || dt == QT_DTYPE_BF16;
}

// 1 if p is aligned for elements of dt.
static int aligned(const void *p, qt_dtype dt) {
    return ((uintptr_t)p % qt_dtype_size(dt)) == 0;
}

extern "C" size_t qt_cuda_sumsq_scratch_size(void) { return SUMSQ_MAX_BLOCKS + 1; }

extern "C" qt_status qt_cuda_sumsq(qt_cuda_stream s, qt_dtype dt, double *out_host,
                                   const void *x, size_t n, double *partials) {
    const char *op = "cuda sumsq";
    if (!dtype_ok(dt))
        return qt_error(QT_ERR_ARG, "%s: dtype %d is not fp32, fp16 or bf16; pass a qt_dtype",
                        op, (int)dt);
    if (!out_host) return qt_error(QT_ERR_ARG, "%s: out_host is NULL", op);
    if (n == 0) {
        *out_host = 0.0;
        return QT_OK;
    }
    if (!x || !partials)
        return qt_error(QT_ERR_ARG, "%s: x and partials must be non-NULL (partials: device "
                                    "scratch of qt_cuda_sumsq_scratch_size() doubles)", op);
    if (!aligned(x, dt) || (uintptr_t)partials % sizeof(double) != 0)
        return qt_error(QT_ERR_ARG, "%s: x or partials is not aligned to its element size", op);
    // The block count depends on n alone: the summation order, hence the bits, too.
    const size_t nb = QT_CEIL_DIV(n, (size_t)SUMSQ_MIN_PER_BLOCK);
    const int blocks = (int)(nb < SUMSQ_MAX_BLOCKS ? nb : SUMSQ_MAX_BLOCKS);
    cudaStream_t st = (cudaStream_t)s;
    switch (dt) {
    case QT_DTYPE_F32:
        QT_LAUNCH(sumsq_partial_block<float>, blocks, SUMSQ_THREADS, 0, st, partials,
                  (const float *)x, n);
        break;
    case QT_DTYPE_F16:
        QT_LAUNCH(sumsq_partial_block<__half>, blocks, SUMSQ_THREADS, 0, st, partials,
                  (const __half *)x, n);
        break;
    default:
        QT_LAUNCH(sumsq_partial_block<__nv_bfloat16>, blocks, SUMSQ_THREADS, 0, st, partials,
                  (const __nv_bfloat16 *)x, n);
        break;
    }
    QT_CHECK_LAUNCH(op);
    QT_LAUNCH(sumsq_final_block, 1, SUMSQ_THREADS, 0, st, partials, blocks);
    QT_CHECK_LAUNCH(op);
    QT_CHECK_CUDA(cudaMemcpyAsync(out_host, partials + SUMSQ_MAX_BLOCKS, sizeof(double),
                                  cudaMemcpyDeviceToHost, st));
    QT_CHECK_CUDA(cudaStreamSynchronize(st));
    return QT_OK;
}

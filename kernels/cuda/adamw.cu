// adamw.cu: the AdamW step over fp32 master weights (writing the rounded fp16/bf16 parameters
// back) or over fp32 parameters in place, and the deterministic sum of squares behind the global
// gradient norm and the loss scaler's overflow check.
//
// Math (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), per element, with
// t = prm->step (1-based):
//   g = grad grad_scale; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   mhat = m / (1 - b1^t); vhat = v / (1 - b2^t);
//   w -= lr (mhat / (sqrt(vhat) + eps) + weight_decay w)
// CPU twins: kernels/cpu/adamw.c (qt_cpu_adamw_step), kernels/cpu/sumsq.c (qt_cpu_sumsq).
// Contract (include/qtrain/cuda_ops.h): m, v (n) fp32, updated in place; grad (n) in dt.
//   master == NULL: dt must be fp32 and param (n) is updated in place;
//   master != NULL: master (n) fp32 is updated and param (n) = master rounded to dt (nearest
//   even), so the working copy is always the rounded master.
// The update uses the CPU's operations in the CPU's order with the _rn intrinsics (no FMA
// contraction, IEEE division and sqrt even under --use_fast_math), and the bias corrections
// come from the host in double like the CPU's, so each value rounds as on the CPU: m and v
// match bit for bit (neither the ISO C11 CPU build nor the emulated build, compiled with
// -ffp-contract=off, fuses a*b + c), the weights to the last bit or so (the CPU's vsqrtf is
// within 1 ulp of sqrt).
// qt_cuda_sumsq: sum of x^2 in double; two stages with a block count that depends only on n,
// each summing in a fixed order (grid-stride per thread, then fixed-shape trees), so the result
// is bit-identical from run to run and GPU to GPU. Squares are non-negative, so an inf or NaN
// anywhere gives an inf or NaN total, never a cancelled finite one: the overflow check.
#include "qt_cuda_compat.h"
#include "qt_cuda_check.h"
#include "qt_cuda_dtype.h"

#include <math.h>
#include <stdint.h>

#include "qtrain/cuda_ops.h"

// ---- launch constants -----------------------------------------------------------------------
// AdamW: element-wise, grid-stride over at most ADAMW_MAX_BLOCKS blocks.
#define ADAMW_THREADS 256
#define ADAMW_MAX_BLOCKS 8192
// sumsq stage 1: SUMSQ_THREADS a block (8 warps); one block per SUMSQ_MIN_PER_BLOCK elements,
// at most SUMSQ_MAX_BLOCKS (enough to fill a GPU several times; each thread then loops). The
// stage-1 partials go to partials[0, blocks), the total to partials[SUMSQ_MAX_BLOCKS].
#define SUMSQ_THREADS 256
#define SUMSQ_MIN_PER_BLOCK (SUMSQ_THREADS * 16)
#define SUMSQ_MAX_BLOCKS 1024

// ---- device helpers (storage <-> fp32: qt_cuda_dtype.h) -----------------------------------

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

// One AdamW step on n elements; see the file header. bc1 = 1 - b1^t, bc2 = 1 - b2^t.
// Thread mapping: grid-stride, thread i handles i, i + gridDim.x * blockDim.x, ... < n (the
// bounds guard). No shared memory. master == NULL only when T is float (checked by the
// launcher): then param itself is the fp32 weight.
template <typename T>
static __global__ void __launch_bounds__(ADAMW_THREADS)
    adamw_step_elem(T *param, float *master, const T *grad, float *m, float *v, size_t n,
                    float lr, float b1, float b2, float eps, float wd, float gs, float bc1,
                    float bc2) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float g = __fmul_rn(qt_ld(grad + i), gs);
        const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(1.0f - b1, g));
        const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(1.0f - b2, g), g));
        m[i] = mi;
        v[i] = vi;
        const float mhat = __fdiv_rn(mi, bc1), vhat = __fdiv_rn(vi, bc2);
        const float w = master ? master[i] : qt_ld(param + i);
        const float step = __fadd_rn(__fdiv_rn(mhat, __fadd_rn(__fsqrt_rn(vhat), eps)),
                                     __fmul_rn(wd, w));
        const float wn = __fsub_rn(w, __fmul_rn(lr, step));
        if (master) master[i] = wn;
        qt_st(param + i, wn);
    }
}

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

template <typename T>
static void adamw_launch(cudaStream_t st, void *param, float *master, const void *grad,
                         float *m, float *v, size_t n, const qt_adamw_params *prm, float bc1,
                         float bc2) {
    const size_t nb = QT_CEIL_DIV(n, (size_t)ADAMW_THREADS);
    const unsigned grid = (unsigned)(nb < ADAMW_MAX_BLOCKS ? nb : ADAMW_MAX_BLOCKS);
    QT_LAUNCH(adamw_step_elem<T>, grid, ADAMW_THREADS, 0, st, (T *)param, master,
              (const T *)grad, m, v, n, prm->lr, prm->beta1, prm->beta2, prm->eps,
              prm->weight_decay, prm->grad_scale, bc1, bc2);
}

extern "C" qt_status qt_cuda_adamw_step(qt_cuda_stream s, qt_dtype dt, void *param,
                                        float *master, const void *grad, float *m, float *v,
                                        size_t n, const qt_adamw_params *prm) {
    const char *op = "cuda adamw_step";
    if (!dtype_ok(dt))
        return qt_error(QT_ERR_ARG, "%s: dtype %d is not fp32, fp16 or bf16; pass a qt_dtype",
                        op, (int)dt);
    if (!prm) return qt_error(QT_ERR_ARG, "%s: prm is NULL; pass the step's qt_adamw_params", op);
    if (prm->step < 1)
        return qt_error(QT_ERR_ARG, "%s: step = %d; steps are 1-based, pass step >= 1", op,
                        prm->step);
    if (!master && dt != QT_DTYPE_F32)
        return qt_error(QT_ERR_ARG,
                        "%s: %s parameters need fp32 master weights (master is NULL); pass "
                        "the optimizer's master copy", op, qt_dtype_name(dt));
    if (n == 0) return QT_OK;
    if (!param || !grad || !m || !v)
        return qt_error(QT_ERR_ARG, "%s: param, grad, m and v must all be non-NULL", op);
    if (!aligned(param, dt) || !aligned(grad, dt) || !aligned(master, QT_DTYPE_F32) ||
        !aligned(m, QT_DTYPE_F32) || !aligned(v, QT_DTYPE_F32))
        return qt_error(QT_ERR_ARG, "%s: a tensor is not aligned to its element size", op);
    // the CPU's bias corrections: double, then rounded to float once
    const float bc1 = (float)(1.0 - pow((double)prm->beta1, (double)prm->step));
    const float bc2 = (float)(1.0 - pow((double)prm->beta2, (double)prm->step));
    cudaStream_t st = (cudaStream_t)s;
    switch (dt) {
    case QT_DTYPE_F32: adamw_launch<float>(st, param, master, grad, m, v, n, prm, bc1, bc2); break;
    case QT_DTYPE_F16: adamw_launch<__half>(st, param, master, grad, m, v, n, prm, bc1, bc2); break;
    default: adamw_launch<__nv_bfloat16>(st, param, master, grad, m, v, n, prm, bc1, bc2); break;
    }
    QT_CHECK_LAUNCH(op);
    return QT_OK;
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

// adamw.cu: the AdamW step over fp32 master weights (writing the rounded fp16/bf16 parameters
// back) or over fp32 parameters in place.
//
// Math (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), per element, with
// t = prm->step (1-based):
//   g = grad grad_scale; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   mhat = m / (1 - b1^t); vhat = v / (1 - b2^t);
//   w -= lr (mhat / (sqrt(vhat) + eps) + weight_decay w)
// CPU twin: kernels/cpu/adamw.c (qt_cpu_adamw_step).
// Contract (kernels/adamw.h): m, v (n) fp32, updated in place; grad (n) in dt.
//   master == NULL: dt must be fp32 and param (n) is updated in place;
//   master != NULL: master (n) fp32 is updated and param (n) = master rounded to dt (nearest
//   even), so the working copy is always the rounded master.
// The update uses the CPU's operations in the CPU's order with the _rn intrinsics (no FMA
// contraction, IEEE division and sqrt even under --use_fast_math), and the bias corrections
// come from the host in double like the CPU's, so each value rounds as on the CPU: m and v
// match bit for bit (neither the ISO C11 CPU build nor the emulated build, compiled with
// -ffp-contract=off, fuses a*b + c), the weights to the last bit or so (the CPU's vsqrtf is
// within 1 ulp of sqrt).
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include <math.h>

#include "kernels/adamw.h"

// ---- launch constants -----------------------------------------------------------------------
// AdamW: element-wise, grid-stride (common.cuh's QT_EW_THREADS, QT_EW_MAX_BLOCKS).

// ---- kernels --------------------------------------------------------------------------------

// One AdamW step on n elements; see the file header. bc1 = 1 - b1^t, bc2 = 1 - b2^t.
// Thread mapping: grid-stride, thread i handles i, i + gridDim.x * blockDim.x, ... < n (the
// bounds guard). No shared memory. master == NULL only when T is float (checked by the
// launcher): then param itself is the fp32 weight.
template <typename T>
static __global__ void __launch_bounds__(QT_EW_THREADS)
    adamw_step_elem(T *param, float *master, const T *grad, float *m, float *v, size_t n, float lr,
                    float b1, float b2, float eps, float wd, float gs, float bc1, float bc2) {
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

// ---- launchers ------------------------------------------------------------------------------

template <typename T>
static void adamw_launch(cudaStream_t st, void *param, float *master, const void *grad,
                         float *m, float *v, size_t n, const qt_adamw_params *prm, float bc1,
                         float bc2) {
    QT_LAUNCH(adamw_step_elem<T>, qt_ew_blocks(n, 1), QT_EW_THREADS, 0, st, (T *)param, master,
              (const T *)grad, m, v, n, prm->lr, prm->beta1, prm->beta2, prm->eps,
              prm->weight_decay, prm->grad_scale, bc1, bc2);
}

extern "C" qt_status qt_cuda_adamw_step(qt_cuda_stream s, qt_dtype dt, void *param,
                                        float *master, const void *grad, float *m, float *v,
                                        size_t n, const qt_adamw_params *prm) {
    const char *op = "cuda adamw_step";
    QT_TRY(qt_check_dtype(op, dt));
    if (!prm) return qt_error(QT_ERR_ARG, "%s: prm is NULL; pass the step's qt_adamw_params", op);
    if (prm->step < 1)
        return qt_error(QT_ERR_ARG, "%s: step = %d; steps are 1-based, pass step >= 1", op,
                        prm->step);
    if (!master && dt != QT_DTYPE_F32)
        return qt_error(QT_ERR_ARG,
                        "%s: %s parameters need fp32 master weights (master is NULL); pass "
                        "the optimizer's master copy", op, qt_dtype_name(dt));
    if (n == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("param", param, dt),
                            qt_arg("master", master, QT_ARG_OPTIONAL), qt_arg("grad", grad, dt),
                            qt_arg("m", m), qt_arg("v", v)));
    // the CPU's bias corrections: double, then rounded to float once
    const float bc1 = (float)(1.0 - pow((double)prm->beta1, (double)prm->step));
    const float bc2 = (float)(1.0 - pow((double)prm->beta2, (double)prm->step));
    QT_DTYPE_DISPATCH(dt, adamw_launch, (cudaStream_t)s, param, master, grad, m, v, n, prm, bc1,
                      bc2);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// One kernel per call (per tensor: the optimizer calls it once per parameter tensor). Bytes:
// with masters, reads master, m, v (fp32) and grad (E), writes master, m, v and param (E):
// 24 n + 2 E n; fp32 in place, reads param, grad, m, v and writes param, m, v: 28 n. 18 flops
// per element: g = grad gs (1), m (3), v (4), the bias corrections (2), sqrt, + eps, the
// divide (3), + wd w (2), w - lr step (2), as kernels/cpu/adamw.c.

extern "C" void qt_cuda_adamw_step_cost(qt_cost *c, qt_dtype dt, const void *param,
                                        const float *master, const void *grad, const float *m,
                                        const float *v, size_t n, const qt_adamw_params *prm) {
    (void)param, (void)grad, (void)m, (void)v;
    if (!prm || n == 0) return;
    const double N = (double)n, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "adamw_step_elem", master ? 24 * N + 2 * E * N : 28 * N, 18 * N);
}

// ==== multi-tensor AdamW (issue 10 item 2c) ==================================================
// Every parameter tensor in one launch: one block per chunk (QT_ADAMW_CHUNK elements of one
// tensor, so a block has one weight decay), the chunk table built once on the host
// (qt_cuda_adamw_chunks) and kept on the device by the caller. The step's decision comes from
// the device: sumsq is the gradients' sum of squares (qt_cuda_sumsq_device), and every thread
// derives the norm, the skip and the grad_scale from it with qt_optimizer_update's operations
// in double, then float, so a kept step scales the gradients exactly as the per-tensor path.

// Threads of a chunk's block; each thread takes elements t, t + 256, ... of its chunk.
#define ADAMW_MULTI_THREADS 256

// The step's grad_scale from the sum of squares; 0 when the step is skipped (norm not finite).
static __device__ __forceinline__ float adamw_multi_scale(double sumsq, float loss_scale,
                                                          float grad_clip) {
    const double norm = sqrt(sumsq) / (double)loss_scale;
    if (!isfinite(norm)) return 0.0f;
    float scale = __fdiv_rn(1.0f, loss_scale);
    if (grad_clip > 0 && norm > (double)grad_clip)
        scale = __fdiv_rn((float)((double)grad_clip / (norm + 1e-6)), loss_scale);
    return scale;
}

// Block b updates chunk b. Thread mapping: element t, t + blockDim.x, ... < chunk n (the
// bounds guard). No shared memory; a skipped step returns before touching anything.
template <typename T>
static __global__ void __launch_bounds__(ADAMW_MULTI_THREADS)
    adamw_multi_chunk(T *params, float *master, const T *grads, float *m, float *v,
                      const qt_adamw_chunk *chunks, const double *sumsq, float lr, float b1,
                      float b2, float eps, float loss_scale, float grad_clip, float bc1,
                      float bc2) {
    const float gs = adamw_multi_scale(*sumsq, loss_scale, grad_clip);
    if (gs == 0.0f) return;
    const qt_adamw_chunk ck = chunks[blockIdx.x];
    T *p = params + ck.param;
    float *mw = master ? master + ck.param : NULL;
    const T *g = grads + ck.grad;
    float *mc = m + ck.grad, *vc = v + ck.grad;
    const float wd = ck.weight_decay;
    for (uint32_t i = threadIdx.x; i < ck.n; i += blockDim.x) {
        const float gi = __fmul_rn(qt_ld(g + i), gs);
        const float mi = __fadd_rn(__fmul_rn(b1, mc[i]), __fmul_rn(1.0f - b1, gi));
        const float vi = __fadd_rn(__fmul_rn(b2, vc[i]), __fmul_rn(__fmul_rn(1.0f - b2, gi), gi));
        mc[i] = mi;
        vc[i] = vi;
        const float mhat = __fdiv_rn(mi, bc1), vhat = __fdiv_rn(vi, bc2);
        const float w = mw ? mw[i] : qt_ld(p + i);
        const float step = __fadd_rn(__fdiv_rn(mhat, __fadd_rn(__fsqrt_rn(vhat), eps)),
                                     __fmul_rn(wd, w));
        const float wn = __fsub_rn(w, __fmul_rn(lr, step));
        if (mw) mw[i] = wn;
        qt_st(p + i, wn);
    }
}

extern "C" size_t qt_cuda_adamw_chunks(qt_adamw_chunk *out, const qt_adamw_span *spans,
                                       int n_spans) {
    size_t k = 0;
    for (int s = 0; spans && s < n_spans; s++)
        for (size_t off = 0; off < spans[s].n; off += QT_ADAMW_CHUNK, k++) {
            if (!out) continue;
            const size_t n = spans[s].n - off;
            out[k].param = (uint64_t)(spans[s].param + off);
            out[k].grad = (uint64_t)(spans[s].grad + off);
            out[k].n = (uint32_t)(n < QT_ADAMW_CHUNK ? n : QT_ADAMW_CHUNK);
            out[k].weight_decay = spans[s].weight_decay;
        }
    return k;
}

template <typename T>
static void adamw_multi_launch(cudaStream_t st, void *params, float *master, const void *grads,
                               float *m, float *v, const qt_adamw_chunk *chunks, size_t n_chunks,
                               const qt_adamw_multi_params *prm, const double *sumsq, float bc1,
                               float bc2) {
    QT_LAUNCH(adamw_multi_chunk<T>, (unsigned)n_chunks, ADAMW_MULTI_THREADS, 0, st, (T *)params,
              master, (const T *)grads, m, v, chunks, sumsq, prm->lr, prm->beta1, prm->beta2,
              prm->eps, prm->loss_scale, prm->grad_clip, bc1, bc2);
}

extern "C" qt_status qt_cuda_adamw_multi(qt_cuda_stream s, qt_dtype dt, void *params,
                                         float *master, const void *grads, float *m, float *v,
                                         const qt_adamw_chunk *chunks, size_t n_chunks,
                                         size_t n_elems, const qt_adamw_multi_params *prm,
                                         const double *sumsq) {
    const char *op = "cuda adamw_multi";
    QT_TRY(qt_check_dtype(op, dt));
    if (!prm) return qt_error(QT_ERR_ARG, "%s: prm is NULL; pass the step's parameters", op);
    if (prm->step < 1)
        return qt_error(QT_ERR_ARG, "%s: step = %d; steps are 1-based, pass step >= 1", op,
                        prm->step);
    if (!(prm->loss_scale > 0.0f) || !isfinite(prm->loss_scale))
        return qt_error(QT_ERR_ARG, "%s: loss_scale %g; pass a finite scale > 0 (1: none)", op,
                        (double)prm->loss_scale);
    if (!master && dt != QT_DTYPE_F32)
        return qt_error(QT_ERR_ARG,
                        "%s: %s parameters need fp32 master weights (master is NULL); pass "
                        "the optimizer's master copy", op, qt_dtype_name(dt));
    if (n_chunks == 0) return QT_OK;
    if (n_elems < n_chunks || n_elems > n_chunks * (size_t)QT_ADAMW_CHUNK)
        return qt_error(QT_ERR_ARG, "%s: %zu elements cannot fill %zu chunks of at most %d; pass "
                        "qt_cuda_adamw_chunks' table and its total", op, n_elems, n_chunks,
                        QT_ADAMW_CHUNK);
    QT_TRY(qt_check_grid(op, n_chunks));
    QT_TRY(qt_check_tensors(op, qt_arg("params", params, dt),
                            qt_arg("master", master, QT_ARG_OPTIONAL), qt_arg("grads", grads, dt),
                            qt_arg("m", m), qt_arg("v", v),
                            qt_arg("chunks", (const uint64_t *)chunks),
                            qt_arg("sumsq", sumsq)));
    const float bc1 = (float)(1.0 - pow((double)prm->beta1, (double)prm->step));
    const float bc2 = (float)(1.0 - pow((double)prm->beta2, (double)prm->step));
    QT_DTYPE_DISPATCH(dt, adamw_multi_launch, (cudaStream_t)s, params, master, grads, m, v,
                      chunks, n_chunks, prm, sumsq, bc1, bc2);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// Cost: one launch over n_elems elements, adamw_step_elem's bytes and flops per element (a
// skipped step moves almost nothing; the model counts the applied one) plus the chunk table
// (24 bytes a chunk; every block's read of the one sum of squares hits the cache).
extern "C" void qt_cuda_adamw_multi_cost(qt_cost *c, qt_dtype dt, const void *params,
                                         const float *master, const void *grads, const float *m,
                                         const float *v, const qt_adamw_chunk *chunks,
                                         size_t n_chunks, size_t n_elems,
                                         const qt_adamw_multi_params *prm, const double *sumsq) {
    (void)params, (void)grads, (void)m, (void)v, (void)chunks, (void)sumsq;
    if (!prm || n_chunks == 0) return;
    const double N = (double)n_elems, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "adamw_multi_chunk",
                   (master ? 24 * N + 2 * E * N : 28 * N) +
                       (double)sizeof(qt_adamw_chunk) * (double)n_chunks,
                   18 * N);
}

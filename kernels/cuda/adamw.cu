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

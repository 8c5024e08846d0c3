// base/dqt_math.h: the arithmetic of one direct-quantized-training step (DQT, Zhao et al. 2024;
// PAPERS.md section 7), shared by the CPU reference (kernels/cpu/dqt.c) and the CUDA kernels
// (kernels/cuda/dqt.cu), so that both write the same codes, m and v bit for bit and the same
// stats. Contract and update rule: kernels/dqt.h.
//
// Per element (c the current code, grad already widened to fp32):
//   g = grad gs;  m' = b1 m + (1 - b1) g;  v' = b2 v + (1 - b2) g g
//   mhat = m' / bc1;  vhat = v' / bc2          (bc = 1 - beta^t, in double on the host, once)
//   w = c s_in;  upd = lr (mhat / (sqrt(vhat) + eps) + wd w);  w' = w - upd
//   t = c (s_in / s_out) - upd / s_out         (= w' / s_out in exact arithmetic)
//   q' = clamp(floor(t) + [u < t - floor(t)], qmin, qmax),  u = qt_philox_uniform(seed,
//        stream, i)
// m' and v' are qt_cpu_adamw_step's expressions in its order (kernels/cpu/adamw.c), so the
// moments equal an AdamW step's bit for bit. sqrt is the correctly rounded one on both sides
// (sqrtf / __fsqrt_rn; AdamW's vsqrtf may differ in the last bit, so w' may too).
//
// Two choices beyond the header's formula q' = floor(w'/s_out + u), equal to it in
// distribution (u and 1 - u are both uniform) and in exact arithmetic:
//   - t is formed from the code and the update, not as fl(fl(c s) / s): that round trip misses
//     c by an ulp for ~12% of (c, s) pairs, so an update of 0 (lr = 0, e.g. the first step of a
//     warmup) would move codes at random. Here upd = 0 and s_in = s_out give t = c exactly.
//   - The draw compares u with the fraction f = t - floor(t) (exact for |t| < 2^23) instead of
//     rounding t + u, which rounds up when u is within an ulp of t + u below 1: a code on the
//     grid (f = 0) never moves, and P(up) = ceil(f 2^24) / 2^24, within 2^-24 of f.
// NaN (a NaN gradient) makes t NaN, which clamps to qmin, like the quantizer; the loss scaler
// skips such steps before they get here.
//
// Float order: every multiply, add, divide and sqrt rounds on its own (the device uses the
// _rn intrinsics; host code must not contract a*b + c into an fma: gcc in ISO C11 mode does
// not, and the emulated .cu files are built with -ffp-contract=off, since g++ -std=c++17
// otherwise contracts).
//
// Stats reduction order (abs_sum = sum |w'| in double; max_abs_code = max |c| before the step).
// The n elements form chunks of QT_DQT_CHUNK; chunk k covers [k CHUNK, min(n, (k+1) CHUNK)).
// Within a chunk, lane l (0 <= l < QT_DQT_LANES) sums the elements k CHUNK + l + j LANES,
// j = 0, 1, ... in order, starting from 0.0; then a tree: lanes[l] += lanes[l + s] for
// s = LANES/2, ..., 1 (l < s); lanes[0] is the chunk's partial. The partials are combined the
// same way: lane l sums partials l, l + LANES, ... in order, then the same tree. The CUDA
// kernel runs one block of LANES threads per chunk (thread = lane) and one block for the
// partials; the CPU loops in this order on any number of threads. Double additions only, so
// the result is the same bits everywhere.
#ifndef QTRAIN_DQT_MATH_H
#define QTRAIN_DQT_MATH_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "hd.h"
#include "quant_math.h"
#include "params.h"
#include "status.h"

#define QT_DQT_LANES 256
#define QT_DQT_PER_LANE 16
#define QT_DQT_CHUNK (QT_DQT_LANES * QT_DQT_PER_LANE) // 4096 elements

// The step's constants, computed once on the host (qt_dqt_coef_of in kernels/cpu/dqt.c and
// the launcher in kernels/cuda/dqt.cu use the same expressions).
typedef struct {
    float lr, b1, b2, c1, c2; // c1 = 1 - b1, c2 = 1 - b2 (float, as adamw.c computes them)
    float eps, wd, gs;        // eps, weight decay, grad scale
    float bc1, bc2;           // (float)(1 - beta^t), the powers in double
    float s_in, s_out, ratio; // ratio = s_in / s_out (1 exactly when equal)
    int qmin, qmax;
} qt_dqt_coef;

// One rounding each, never contracted (see the header).
QT_HD float qt_dqt_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
QT_HD float qt_dqt_add(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
QT_HD float qt_dqt_sub(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
QT_HD float qt_dqt_div(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
QT_HD float qt_dqt_sqrt(float a) {
#if defined(__CUDA_ARCH__)
    return __fsqrt_rn(a);
#else
    return sqrtf(a);
#endif
}

// The AdamW part for one element: *m, *v are read and replaced by m', v'; returns w' and sets
// *t = w' / s_out in the form above.
QT_HD float qt_dqt_update(const qt_dqt_coef *k, float grad, int code, float *m, float *v,
                          float *t) {
    const float g = qt_dqt_mul(grad, k->gs);
    const float mi = qt_dqt_add(qt_dqt_mul(k->b1, *m), qt_dqt_mul(k->c1, g));
    const float vi = qt_dqt_add(qt_dqt_mul(k->b2, *v), qt_dqt_mul(qt_dqt_mul(k->c2, g), g));
    *m = mi;
    *v = vi;
    const float mhat = qt_dqt_div(mi, k->bc1), vhat = qt_dqt_div(vi, k->bc2);
    const float c = (float)code;
    const float w = qt_dqt_mul(c, k->s_in);
    const float dir = qt_dqt_add(qt_dqt_div(mhat, qt_dqt_add(qt_dqt_sqrt(vhat), k->eps)),
                                 qt_dqt_mul(k->wd, w));
    const float upd = qt_dqt_mul(k->lr, dir);
    *t = qt_dqt_sub(qt_dqt_mul(c, k->ratio), qt_dqt_div(upd, k->s_out));
    return qt_dqt_sub(w, upd);
}

// The new code of t under the uniform u (see the header): floor, up with probability frac.
QT_HD int qt_dqt_round(float t, float u, int qmin, int qmax) {
    const float fl = floorf(t);
    const float r = qt_dqt_add(fl, u < qt_dqt_sub(t, fl) ? 1.0f : 0.0f);
    // clamp by compares (gcc calls libm for fminf/fmaxf); NaN fails both, giving qmin
    const float lo = (float)qmin, hi = (float)qmax;
    return (int)(r >= hi ? hi : r >= lo ? r : lo);
}

// ---- host side: argument checks and the constants of a call ----------------------------------

// QT_OK, or QT_ERR_ARG naming the bad field of dp (op prefixes the message).
static inline qt_status qt_dqt_check(const char *op, const qt_dqt_params *dp) {
    if (!dp) return qt_error(QT_ERR_ARG, "%s: params are NULL; pass a qt_dqt_params", op);
    if (dp->adam.step < 1)
        return qt_error(QT_ERR_ARG, "%s: adam.step = %d; steps are 1-based, pass step >= 1", op,
                        dp->adam.step);
    if (!(dp->qmin >= -128 && dp->qmin < dp->qmax && dp->qmax <= 127))
        return qt_error(QT_ERR_ARG,
                        "%s: grid [%d, %d] is not an int8 range; use qmin < qmax within "
                        "[-128, 127] (ternary: [-1, 1])", op, dp->qmin, dp->qmax);
    if (!(dp->scale_in > 0.0f && dp->scale_in <= FLT_MAX && dp->scale_out > 0.0f &&
          dp->scale_out <= FLT_MAX))
        return qt_error(QT_ERR_ARG,
                        "%s: scale_in = %g, scale_out = %g; both must be finite and > 0", op,
                        (double)dp->scale_in, (double)dp->scale_out);
    return QT_OK;
}

// The constants of a call from checked params: bias corrections in double, rounded once.
static inline qt_dqt_coef qt_dqt_coef_of(const qt_dqt_params *dp) {
    const qt_adamw_params *a = &dp->adam;
    qt_dqt_coef k;
    k.lr = a->lr;
    k.b1 = a->beta1;
    k.b2 = a->beta2;
    k.c1 = 1.0f - a->beta1;
    k.c2 = 1.0f - a->beta2;
    k.eps = a->eps;
    k.wd = a->weight_decay;
    k.gs = a->grad_scale;
    k.bc1 = (float)(1.0 - pow((double)a->beta1, (double)a->step));
    k.bc2 = (float)(1.0 - pow((double)a->beta2, (double)a->step));
    k.s_in = dp->scale_in;
    k.s_out = dp->scale_out;
    k.ratio = dp->scale_in / dp->scale_out;
    k.qmin = dp->qmin;
    k.qmax = dp->qmax;
    return k;
}

#endif

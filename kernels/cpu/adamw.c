// adamw.c: qt_cpu_adamw_step, one decoupled-weight-decay Adam step (Loshchilov & Hutter) on
// fp32 parameters and moments, in place (float only):
//   g = grad * grad_scale; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   mhat = m / (1 - b1^t); vhat = v / (1 - b2^t);
//   param -= lr (mhat / (sqrt(vhat) + eps) + weight_decay param)
// The bias corrections are computed in double once per call. Element-parallel, vectorized
// (sqrt is vsqrtf from common/vmath.h, within 1 ulp of sqrtf: glibc's scalar sqrtf made the
// step 6x slower).
#include "common/real.h"

#include <stddef.h>

#include "base/status.h"
#include "common/check.h"
#include "kernels/adamw.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

qt_status qt_cpu_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                            const qt_adamw_params *prm) {
    const char *op = "adamw_step";
    if (!prm) return qt_error(QT_ERR_ARG, "%s: prm is NULL; pass the step's qt_adamw_params", op);
    if (prm->step < 1)
        return qt_error(QT_ERR_ARG, "%s: step = %d; steps are 1-based, pass step >= 1", op,
                        prm->step);
    QT_TRY(check_ptrs(op, n == 0 || (param && grad && m && v), "param, grad, m and v"));
    const float b1 = prm->beta1, b2 = prm->beta2, eps = prm->eps, lr = prm->lr;
    const float wd = prm->weight_decay, gs = prm->grad_scale;
    const float bc1 = (float)(1.0 - pow((double)b1, (double)prm->step));
    const float bc2 = (float)(1.0 - pow((double)b2, (double)prm->step));
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float g = grad[i] * gs;
        const float mi = b1 * m[i] + (1.0f - b1) * g;
        const float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float mhat = mi / bc1, vhat = vi / bc2;
        param[i] -= lr * (mhat / (vsqrtf(vhat) + eps) + wd * param[i]);
    }
    return QT_OK;
}

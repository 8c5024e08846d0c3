// base/softmax_clip_math.h: the affine-then-clip map shared by the three softmax variants
// (PAPERS.md sections 1-2; FLASH_CLIP.md section 0).
//
// For a row that attends N keys with plain softmax p, the output is clip(a*p + c, 0, 1):
//   vanilla: a = 1, c = 0 (the clip is then the identity)
//   clipped: a = zeta - gamma, c = gamma
//   NCS:     a = (N*eta - beta) / (N - 1), c = (beta - eta) / (N - 1); N = 1 gives a = 1, c = 0
// The gradient passes where 0 <= a*p + c <= 1, boundaries included, as torch.clip does.
#ifndef QTRAIN_SOFTMAX_CLIP_MATH_H
#define QTRAIN_SOFTMAX_CLIP_MATH_H

#include "hd.h"

// Must stay in sync with qt_softmax_kind in kernels/softmax_clip.h.
#define QT_SOFTMAX_KIND_VANILLA 0
#define QT_SOFTMAX_KIND_CLIPPED 1
#define QT_SOFTMAX_KIND_NCS 2

// The (a, c) of the map for a row attending `n_keys` keys, in double so that the float and
// double instantiations of the kernels share it (the float kernels round a and c once).
QT_HD void qt_softmax_clip_coeffs(int kind, double gamma, double zeta, double eta, double beta,
                                  int n_keys, double *a, double *c) {
    if (kind == QT_SOFTMAX_KIND_CLIPPED) {
        *a = zeta - gamma;
        *c = gamma;
    } else if (kind == QT_SOFTMAX_KIND_NCS && n_keys > 1) {
        *a = ((double)n_keys * eta - beta) / (double)(n_keys - 1);
        *c = (beta - eta) / (double)(n_keys - 1);
    } else {
        *a = 1.0;
        *c = 0.0;
    }
}

#endif

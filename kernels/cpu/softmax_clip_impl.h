// softmax_clip_impl.h: the body of the softmax-clip ops, written once over REAL (no include
// guard; see common/real.h). Row kernels and their math are in common/softmax_row.h.

#include "common/softmax_row.h"

qt_status FN(qt_cpu_softmax_clip_fwd)(const qt_softmax_params *prm, REAL *probs, REAL *p,
                                      const REAL *scores, const int *lens, int rows, int cols) {
    QT_TRY(check_softmax_rows(OPNAME("softmax_clip_fwd"), prm, "rows", rows, "cols", cols,
                              probs && p && scores, "probs, p, scores and lens", lens,
                              (size_t)rows));
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)cols >= PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const size_t off = (size_t)r * (size_t)cols;
        FN(softmax_clip_row_fwd)(prm, probs + off, p + off, scores + off, lens[r], cols);
    }
    return QT_OK;
}

qt_status FN(qt_cpu_softmax_clip_bwd)(const qt_softmax_params *prm, REAL *dscores,
                                      const REAL *dprobs, const REAL *p, const int *lens,
                                      int rows, int cols) {
    QT_TRY(check_softmax_rows(OPNAME("softmax_clip_bwd"), prm, "rows", rows, "cols", cols,
                              dscores && dprobs && p, "dscores, dprobs, p and lens", lens,
                              (size_t)rows));
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)cols >= PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const size_t off = (size_t)r * (size_t)cols;
        FN(softmax_clip_row_bwd)(prm, dscores + off, dprobs + off, p + off, lens[r]);
    }
    return QT_OK;
}

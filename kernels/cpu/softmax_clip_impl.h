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

// The sink variants' checks: the plain ops' (rows, cols, params, pointers, lens), then the sink
// kind, the head layout and the logits.
static qt_status FN(sink_check)(const char *op, qt_sink_kind sink, int rows, int H, int head_rows,
                                int logits_ok) {
    const int kind = (int)sink;
    if (kind < QT_SINK_NONE || kind > QT_SINK_LEARNED)
        return qt_error(QT_ERR_ARG, "%s: sink kind %d is not none (0), zero (1) or learned (2)", op,
                        kind);
    if (H < 1 || head_rows < 1)
        return qt_error(QT_ERR_ARG, "%s: H = %d, head_rows = %d; need both >= 1", op, H, head_rows);
    return check_ptrs(op, rows == 0 || kind != QT_SINK_LEARNED || logits_ok,
                      "logits (learned sink)");
}

qt_status FN(qt_cpu_softmax_clip_sink_fwd)(const qt_softmax_params *prm, qt_sink_kind sink,
                                           REAL *probs, REAL *p, const REAL *scores,
                                           const int *lens, const REAL *logits, int rows, int cols,
                                           int H, int head_rows) {
    const char *op = OPNAME("softmax_clip_sink_fwd");
    QT_TRY(check_softmax_rows(op, prm, "rows", rows, "cols", cols, probs && p && scores,
                              "probs, p, scores and lens", lens, (size_t)rows));
    QT_TRY(FN(sink_check)(op, sink, rows, H, head_rows, logits != NULL));
    if (sink == QT_SINK_NONE)
        return FN(qt_cpu_softmax_clip_fwd)(prm, probs, p, scores, lens, rows, cols);
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)cols >= PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const size_t off = (size_t)r * (size_t)cols;
        const REAL s0 = sink == QT_SINK_LEARNED ? logits[(r / head_rows) % H] : (REAL)0;
        FN(softmax_clip_row_fwd_sink)(prm, s0, probs + off, p + off, scores + off, lens[r], cols);
    }
    return QT_OK;
}

qt_status FN(qt_cpu_softmax_clip_sink_bwd)(const qt_softmax_params *prm, qt_sink_kind sink,
                                           REAL *dscores, REAL *dlogits, const REAL *dprobs,
                                           const REAL *p, const int *lens, int rows, int cols,
                                           int H, int head_rows) {
    const char *op = OPNAME("softmax_clip_sink_bwd");
    QT_TRY(check_softmax_rows(op, prm, "rows", rows, "cols", cols, dscores && dprobs && p,
                              "dscores, dprobs, p and lens", lens, (size_t)rows));
    QT_TRY(FN(sink_check)(op, sink, rows, H, head_rows, 1));
    // The scores' gradient has the plain form (common/softmax_row.h).
    QT_TRY(FN(qt_cpu_softmax_clip_bwd)(prm, dscores, dprobs, p, lens, rows, cols));
    if (sink != QT_SINK_LEARNED || !dlogits) return QT_OK;
    // The logits' gradient: rows in order (one sum per head, deterministic).
    for (int r = 0; r < rows; r++) {
        const size_t off = (size_t)r * (size_t)cols;
        dlogits[(r / head_rows) % H] +=
            FN(softmax_sink_row_grad)(prm, dprobs + off, p + off, lens[r]);
    }
    return QT_OK;
}

// common/check.h: the argument checks the CPU reference ops share (the error contract of
// kernels/<family>.h).
//
// Each helper returns QT_OK, or records QT_ERR_ARG with a message that names the op, the bad
// value and the fix (qt_last_error(): "layernorm_fwd: N = -1, C = 8; need N >= 0 and C >= 1")
// and returns it. An op runs every check before it writes any output, so a refused call leaves
// its outputs untouched. The checks cost O(1), or one pass over an index array (lens, tokens,
// targets) that the op reads anyway; they mirror the CUDA launchers' checks (kernels/cuda/), so
// both twins refuse the same inputs.
// Not per REAL (the checks do no arithmetic on the elements): include-guarded.
#ifndef QTRAIN_KERNELS_CPU_COMMON_CHECK_H
#define QTRAIN_KERNELS_CPU_COMMON_CHECK_H

#include <math.h>
#include <stddef.h>

#include "base/params.h"
#include "base/params_check.h"
#include "base/status.h"

// A row count `an` = a >= 0 and a row length `bn` = b >= 1 (N and C, N and F, rows and cols).
static inline qt_status check_rows(const char *op, const char *an, int a, const char *bn, int b) {
    if (a < 0 || b < 1)
        return qt_error(QT_ERR_ARG, "%s: %s = %d, %s = %d; need %s >= 0 and %s >= 1", op, an, a,
                        bn, b, an, bn);
    return QT_OK;
}

// ok is the conjunction of the required pointers being non-NULL; `names` lists them.
static inline qt_status check_ptrs(const char *op, int ok, const char *names) {
    if (!ok)
        return qt_error(QT_ERR_ARG, "%s: a required tensor is NULL; pass %s", op, names);
    return QT_OK;
}

// C channels split into H heads (hn names H): H >= 1, C >= 1 and C % H == 0.
static inline qt_status check_heads(const char *op, int C, const char *hn, int H) {
    if (H < 1 || C < 1 || C % H != 0)
        return qt_error(QT_ERR_ARG,
                        "%s: C = %d, %s = %d; need C a positive multiple of %s >= 1", op, C, hn,
                        H, hn);
    return QT_OK;
}

// lens (rows): every row attends between 1 and max_len keys.
static inline qt_status check_lens(const char *op, const int *lens, size_t rows, int max_len) {
    for (size_t r = 0; r < rows; r++)
        if (lens[r] < 1 || lens[r] > max_len)
            return qt_error(QT_ERR_ARG,
                            "%s: lens[%zu] = %d is outside [1, %d]; a row attends at least one "
                            "key and at most the row length",
                            op, r, lens[r], max_len);
    return QT_OK;
}

// The checks of an op on masked softmax rows (softmax_clip, attention), in order: the params
// (qt_check_softmax_params, base/params_check.h, shared with the CUDA launchers);
// the shape, rn = rows >= 0 and cn = cols >= 1; with rows > 0, the required pointers (ok and
// names as in check_ptrs; lens is always required) and lens (n_lens) within [1, cols].
static inline qt_status check_softmax_rows(const char *op, const qt_softmax_params *prm,
                                           const char *rn, int rows, const char *cn, int cols,
                                           int ok, const char *names, const int *lens,
                                           size_t n_lens) {
    QT_TRY(qt_check_softmax_params(op, prm));
    QT_TRY(check_rows(op, rn, rows, cn, cols));
    if (rows == 0) return QT_OK;
    QT_TRY(check_ptrs(op, ok && lens, names));
    return check_lens(op, lens, n_lens, cols);
}

#endif

// crossentropy.c: qt_cpu_crossentropy_{fwd,bwd}[_f64], softmax and cross-entropy fused per row
// (max-subtracted; the loss as log-sum-exp minus the target logit, so tiny probabilities lose
// nothing). Rows with a negative target are ignored (loss 0, no gradient).
// Contract (kernels/crossentropy.h): the forward writes losses and the row statistics
// {max, 1 / sum exp} and leaves the logits; the backward recomputes each probability from them
// and adds dloss (p - onehot) into dlogits, or, when dlogits aliases logits, overwrites it with
// that gradient (ignored rows then become 0). Rows in parallel, vectorized (float exp is
// vexpf); the body is crossentropy_impl.h, for float and double.
#include "common/real.h"

#include <string.h>

#include "base/status.h"
#include "common/check.h"
#include "kernels/crossentropy.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

// The checks both directions make, before anything is written: N >= 0, V >= 1, the pointers
// (ok, names: check_ptrs) and every target below V (negative targets mark ignored rows).
static qt_status ce_check(const char *op, int ok, const char *names, const int *targets, int N,
                          int V) {
    QT_TRY(check_rows(op, "N", N, "V", V));
    if (N == 0) return QT_OK;
    QT_TRY(check_ptrs(op, ok && targets, names));
    for (int n = 0; n < N; n++)
        if (targets[n] >= V)
            return qt_error(QT_ERR_ARG,
                            "%s: targets[%d] = %d is outside the vocabulary [0, V = %d); pass "
                            "token ids below V (or < 0 to ignore the row)",
                            op, n, targets[n], V);
    return QT_OK;
}

// The row functions of crossentropy_impl.h: one copy of the machine code for every op.
#define QT_NOINLINE __attribute__((noinline))

#include "crossentropy_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "crossentropy_impl.h"


// gate.c: qt_cpu_gate_{fwd,bwd}[_f64] and qt_cpu_gate_mul_{fwd,bwd}[_f64], the attention gate
// of PAPERS.md section 3: out_h = sigmoid(G_h(x_h)) * ctx_h, with G linear per head, an MLP
// per head (Linear(D -> n_hid) -> ReLU -> Linear(n_hid -> 1)) or one Linear(C -> H).
// Contract (kernels/gate.h): forwards overwrite gate, hidden, out (out may alias ctx);
// backwards add into dx, dw1, db1, dw2, db2, dctx, dgate (NULL skips one).
// The gate is small next to the projections (N C or N C n_hid / H multiply-adds), so plain
// vectorized loops: dx and the forward parallel over tokens, parameter gradients over the
// rows of w1. The body is gate_impl.h, instantiated for float and double.
#include "common/real.h"

#include <stddef.h>

#include "base/status.h"
#include "common/check.h"
#include "kernels/gate.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

// The gate's shape (as kernels/cuda/gate.cu checks it): a known kind, N >= 0, C a positive
// multiple of n_heads, n_hid >= 1 for the MLP.
static qt_status gate_check(const char *op, const qt_gate_shape *g, int N, int C) {
    if (!g) return qt_error(QT_ERR_ARG, "%s: gate shape is NULL; pass one", op);
    const int kind = (int)g->kind;
    if (kind != QT_GATE_LINEAR && kind != QT_GATE_MLP && kind != QT_GATE_ALL_HEADS)
        return qt_error(QT_ERR_ARG,
                        "%s: gate kind %d is not linear (1), mlp (2) or all_heads (3)", op, kind);
    QT_TRY(check_rows(op, "N", N, "C", C));
    QT_TRY(check_heads(op, C, "n_heads", g->n_heads));
    if (kind == QT_GATE_MLP && g->n_hid < 1)
        return qt_error(QT_ERR_ARG, "%s: mlp gate with n_hid = %d; need n_hid >= 1", op,
                        g->n_hid);
    return QT_OK;
}

// gate_mul's shape and pointers (ok, names: check_ptrs): N >= 0, C a positive multiple of H.
static qt_status gate_mul_check(const char *op, int ok, const char *names, int N, int C, int H) {
    QT_TRY(check_rows(op, "N", N, "C", C));
    QT_TRY(check_heads(op, C, "H", H));
    return check_ptrs(op, N == 0 || ok, names);
}

#include "gate_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "gate_impl.h"

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

#include "kernels/gate.h"
#include "base/status.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

#include "gate_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "gate_impl.h"

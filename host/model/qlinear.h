// qlinear.h (internal): the block linears of quantized training (quant.mode), used by model.c
// and optimizer.c.
#ifndef QTRAIN_HOST_QLINEAR_H
#define QTRAIN_HOST_QLINEAR_H

#include "qtrain/model.h"

// out (N, OC) = Q_a(x) Q_w(w)^T + b for block linear `which` of `layer` under cfg.quant_mode
// (plain linear_fwd when none). w is the weight view (int8 codes for DQT).
qt_status qt_qlinear_fwd(qt_model *m, int layer, qt_linear_id which, void *out, const void *x,
                         const void *w, const void *b, int N, int IC, int OC);

// Its straight-through backward: dx (N, IC) +=, dw (OC, IC) +=, db (OC) += (each may be NULL),
// with the output gradient quantized (quant.g_*) into dW or dX as quant.backward says.
qt_status qt_qlinear_bwd(qt_model *m, int layer, qt_linear_id which, void *dx, void *dw, void *db,
                         const void *dout, const void *x, const void *w, int N, int IC, int OC);

// The same with dx (N, IC) overwritten (=) instead of accumulated, so the caller does not zero
// it first: unquantized, one GEMM with beta 0 writes it (no memset, dx never read); the
// quantized paths zero it and accumulate. dw, db += as in qt_qlinear_bwd.
qt_status qt_qlinear_bwd_set(qt_model *m, int layer, qt_linear_id which, void *dx, void *dw,
                             void *db, const void *dout, const void *x, const void *w, int N,
                             int IC, int OC);

// The quantizer of Adam's m (role 'm') or v ('v') under quant.mode = qat; 0 when it is off.
int qt_qlinear_moment_quant(const qt_config *cfg, char role, qt_quant_params *p);

// The DQT grid of cfg.dqt_bits: [-1, 1] ternary, else [-2^(b-1), 2^(b-1) - 1].
void qt_dqt_grid(const qt_config *cfg, int *qmin, int *qmax);

#endif

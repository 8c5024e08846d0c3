// kernels/gate.h: the attention gate: out_h = sigmoid(G_h(x_h)) * ctx_h
//
// PAPERS.md section 3. Kinds and shapes: qt_gate_shape in base/params.h.
// Family files: kernels/cpu/gate.c (the C reference), kernels/cuda/gate.cu, tests/test_gate.c,
// tests/cuda/test_cuda_gate.c, bench/bench_gate.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_GATE_H
#define QTRAIN_KERNELS_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Parameter tensors by kind (w2, b2 only for MLP; pass NULL otherwise):
//   linear:    w1 (H, D),        b1 (H)
//   mlp:       w1 (H, n_hid, D), b1 (H, n_hid), w2 (H, n_hid), b2 (H)
//   all heads: w1 (H, C),        b1 (H)
//              (H = n_heads gate values per token: with n_heads = C, one per channel, this is
//              Qwen's elementwise gate, Linear(C -> C); gate_mul then takes H = C)
// The bias that sets the initial gate value (logit(pi_init)) is b1, or b2 for the MLP.
// gate (N, H): sigmoid of the gate logits. hidden (N, H, n_hid): the MLP's pre-ReLU hidden
// layer saved for the backward (NULL for the other kinds). x (N, C).
qt_status qt_cpu_gate_fwd(const qt_gate_shape *g, float *gate, float *hidden, const float *x,
                          const float *w1, const float *b1, const float *w2, const float *b2, int N,
                          int C);
// From dgate (N, H): dx (N, C) +=, dw1, db1, dw2, db2 += (NULL where the kind has none).
qt_status qt_cpu_gate_bwd(const qt_gate_shape *g, float *dx, float *dw1, float *db1, float *dw2,
                          float *db2, const float *dgate, const float *gate, const float *hidden,
                          const float *x, const float *w1, const float *w2, int N, int C);
// out (N, C) = gate[n, h] * ctx[n, c] for c in head h. out may alias ctx.
qt_status qt_cpu_gate_mul_fwd(float *out, const float *gate, const float *ctx, int N, int C, int H);
// dctx (N, C) += gate * dout; dgate (N, H) += sum over the head's channels of dout * ctx.
qt_status qt_cpu_gate_mul_bwd(float *dctx, float *dgate, const float *dout, const float *gate,
                              const float *ctx, int N, int C, int H);
qt_status qt_cpu_gate_fwd_f64(const qt_gate_shape *g, double *gate, double *hidden, const double *x,
                              const double *w1, const double *b1, const double *w2,
                              const double *b2, int N, int C);
qt_status qt_cpu_gate_bwd_f64(const qt_gate_shape *g, double *dx, double *dw1, double *db1,
                              double *dw2, double *db2, const double *dgate, const double *gate,
                              const double *hidden, const double *x, const double *w1,
                              const double *w2, int N, int C);
qt_status qt_cpu_gate_mul_fwd_f64(double *out, const double *gate, const double *ctx, int N, int C,
                                  int H);
qt_status qt_cpu_gate_mul_bwd_f64(double *dctx, double *dgate, const double *dout,
                                  const double *gate, const double *ctx, int N, int C, int H);

// CUDA (kernels/cuda/gate.cu): the gate function, and the gate fused with the context multiply.
qt_status qt_cuda_gate_fwd(qt_cuda_stream s, qt_dtype dt, const qt_gate_shape *g, float *gate,
                           float *hidden, const void *x, const void *w1, const void *b1,
                           const void *w2, const void *b2, int N, int C);
qt_status qt_cuda_gate_bwd(qt_cuda_stream s, qt_dtype dt, const qt_gate_shape *g, void *dx,
                           void *dw1, void *db1, void *dw2, void *db2, const float *dgate,
                           const float *gate, const float *hidden, const void *x,
                           const void *w1, const void *w2, int N, int C);
qt_status qt_cuda_gate_mul_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const float *gate,
                               const void *ctx, int N, int C, int H);
qt_status qt_cuda_gate_mul_bwd(qt_cuda_stream s, qt_dtype dt, void *dctx, float *dgate,
                               const void *dout, const float *gate, const void *ctx, int N,
                               int C, int H);

// Cost model (base/cost.h; counted in kernels/cuda/gate.cu): the launches each launcher above
// makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_gate_fwd_cost(qt_cost *c, qt_dtype dt, const qt_gate_shape *g, const float *gate,
                           const float *hidden, const void *x, const void *w1, const void *b1,
                           const void *w2, const void *b2, int N, int C);
void qt_cuda_gate_bwd_cost(qt_cost *c, qt_dtype dt, const qt_gate_shape *g, const void *dx,
                           const void *dw1, const void *db1, const void *dw2, const void *db2,
                           const float *dgate, const float *gate, const float *hidden,
                           const void *x, const void *w1, const void *w2, int N, int C);
void qt_cuda_gate_mul_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const float *gate,
                               const void *ctx, int N, int C, int H);
void qt_cuda_gate_mul_bwd_cost(qt_cost *c, qt_dtype dt, const void *dctx, const float *dgate,
                               const void *dout, const float *gate, const void *ctx, int N, int C,
                               int H);

#ifdef __cplusplus
}
#endif
#endif

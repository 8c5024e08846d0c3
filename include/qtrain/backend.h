// qtrain/backend.h: the interface a compute backend (cpu, cuda) implements.
//
// The host runtime (model, trainer, optimizer, evaluation) exists once and runs every op
// through a qt_backend. A backend is a table of function pointers plus an opaque context;
// a NULL entry means "this backend cannot do that", and qt_backend_check() names the first
// missing entry, so support is read off the table, never a second switch.
// Pointers passed to the ops are backend memory (from alloc); shapes and semantics are those
// of the matching qt_cpu_* op in qtrain/ops.h, in the same argument order, after `ctx`.
#ifndef QTRAIN_BACKEND_H
#define QTRAIN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "qtrain/ops.h"
#include "qtrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// A batched row-major GEMM: for i in [0, batch):
//   C_i (M, N) = alpha * op(A_i) op(B_i) + beta * C_i,  op(X) = X or X^T
// where X_i = X + (i / inner) * x_outer + (i % inner) * x_inner (elements). Two-level
// batching addresses (batch, head) slices of a (B, T, 3C) tensor without a permute.
typedef struct {
    int trans_a, trans_b;
    int M, N, K;
    float alpha, beta;
    int lda, ldb, ldc;
    int batch, inner; // inner >= 1 divides batch
    int64_t a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
} qt_gemm_desc;

typedef struct qt_backend_ops {
    // ---- memory
    qt_status (*alloc)(void *ctx, void **ptr, size_t bytes);
    void (*free)(void *ctx, void *ptr);
    qt_status (*zero)(void *ctx, void *ptr, size_t bytes);
    qt_status (*to_host)(void *ctx, void *dst_host, const void *src, size_t bytes);
    qt_status (*to_device)(void *ctx, void *dst, const void *src_host, size_t bytes);
    qt_status (*sync)(void *ctx);

    // ---- ops (see qtrain/ops.h for shapes and the accumulate-in-backward rule)
    qt_status (*gemm)(void *ctx, const qt_gemm_desc *d, const float *A, const float *B,
                      float *C);
    qt_status (*linear_fwd)(void *ctx, float *out, const float *x, const float *w,
                            const float *b, int N, int IC, int OC);
    qt_status (*linear_bwd)(void *ctx, float *dx, float *dw, float *db, const float *dout,
                            const float *x, const float *w, int N, int IC, int OC);
    qt_status (*softmax_clip_fwd)(void *ctx, const qt_softmax_params *prm, float *probs,
                                  float *p, const float *scores, const int *lens, int rows,
                                  int cols);
    qt_status (*softmax_clip_bwd)(void *ctx, const qt_softmax_params *prm, float *dscores,
                                  const float *dprobs, const float *p, const int *lens,
                                  int rows, int cols);
    qt_status (*gate_fwd)(void *ctx, const qt_gate_shape *g, float *gate, float *hidden,
                          const float *x, const float *w1, const float *b1, const float *w2,
                          const float *b2, int N, int C);
    qt_status (*gate_bwd)(void *ctx, const qt_gate_shape *g, float *dx, float *dw1, float *db1,
                          float *dw2, float *db2, const float *dgate, const float *gate,
                          const float *hidden, const float *x, const float *w1,
                          const float *w2, int N, int C);
    qt_status (*gate_mul_fwd)(void *ctx, float *out, const float *gate, const float *ctxv,
                              int N, int C, int H);
    qt_status (*gate_mul_bwd)(void *ctx, float *dctx, float *dgate, const float *dout,
                              const float *gate, const float *ctxv, int N, int C, int H);
    qt_status (*layernorm_fwd)(void *ctx, float *out, float *mean, float *rstd, const float *x,
                               const float *w, const float *b, int N, int C);
    qt_status (*layernorm_bwd)(void *ctx, float *dx, float *dw, float *db, const float *dout,
                               const float *x, const float *mean, const float *rstd,
                               const float *w, int N, int C);
    qt_status (*gelu_fwd)(void *ctx, float *out, const float *x, size_t n);
    qt_status (*gelu_bwd)(void *ctx, float *dx, const float *dout, const float *x, size_t n);
    qt_status (*relu_fwd)(void *ctx, float *out, const float *x, size_t n);
    qt_status (*relu_bwd)(void *ctx, float *dx, const float *dout, const float *x, size_t n);
    qt_status (*embedding_fwd)(void *ctx, float *out, const int *tokens, const float *wte,
                               const float *wpe, int B, int T, int C);
    qt_status (*embedding_bwd)(void *ctx, float *dwte, float *dwpe, const float *dout,
                               const int *tokens, int B, int T, int C);
    qt_status (*add)(void *ctx, float *out, const float *a, const float *b, size_t n);
    qt_status (*dropout_fwd)(void *ctx, float *out, const float *x, size_t n, float prob,
                             uint64_t seed, uint64_t stream);
    qt_status (*dropout_bwd)(void *ctx, float *dx, const float *dout, size_t n, float prob,
                             uint64_t seed, uint64_t stream);
    qt_status (*crossentropy_fwd)(void *ctx, float *losses, float *probs, const float *logits,
                                  const int *targets, int N, int V);
    qt_status (*crossentropy_bwd)(void *ctx, float *dlogits, const float *dlosses,
                                  const float *probs, const int *targets, int N, int V);
    qt_status (*adamw_step)(void *ctx, float *param, const float *grad, float *m, float *v,
                            size_t n, const qt_adamw_params *prm);
    // *out = sum of squares of x (n), accumulated in double, returned to the host.
    qt_status (*sumsq)(void *ctx, double *out, const float *x, size_t n);
} qt_backend_ops;

typedef struct qt_backend {
    const qt_backend_ops *ops;
    void *ctx;        // owned by the backend; freed by qt_backend_free
    const char *name; // "cpu", "cuda"
    int threads;      // CPU threads in use (informational)
} qt_backend;

// The CPU backend: the reference ops of qtrain/ops.h with OpenMP and OpenBLAS on `threads`
// threads (0: every core).
qt_status qt_backend_cpu_init(qt_backend *be, int threads);
void qt_backend_free(qt_backend *be);

// QT_OK if every op the runtime calls is present; else QT_ERR_UNSUPPORTED naming the first
// missing entry.
qt_status qt_backend_check(const qt_backend *be);

#ifdef __cplusplus
}
#endif
#endif

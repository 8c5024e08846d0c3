// backend_cpu.c: the CPU backend: host memory and the qt_cpu_* reference ops.
//
// Every op forwards to kernels/cpu (the batched GEMM too: qt_cpu_gemm in kernels/cpu/linear.c,
// which runs the batch in parallel with single-threaded sgemm calls) and returns its status.
// The context is one workspace (cpu_ctx below) for the temporary buffers of the quantized ops,
// so that no op allocates per call: a training step allocates nothing after the first.
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/activation.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/crossentropy.h"
#include "kernels/dqt.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gate.h"
#include "kernels/int8_gemm.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/quant.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/softmax_clip.h"
#include "kernels/sumsq.h"
#include "kernels/swiglu.h"
#include "qtrain/backend.h"

// ---- the workspace --------------------------------------------------------------------------

// The backend's context: one 64-byte aligned block for the temporary buffers of the ops that
// need them (the INT8 linear's codes, scales, zero points and packed GEMM panels; fake
// quantization's per-slice grids; the fused attention's tiles). It grows to the largest request and
// is kept until qt_backend_free; a training step asks for the same sizes at every step, so once the
// first step has run it never grows again (qt_backend_cpu_workspace reports it). The ops of one
// backend run one at a time (the runtime calls them in sequence), so one block serves them all.
typedef struct {
    unsigned char *ws; // (bytes)
    size_t bytes;      // capacity: the largest request so far, the high-water mark
    size_t grows;      // how many times the block was (re)allocated
} cpu_ctx;

#define WS_ALIGN 64 // every piece: vector loads, and the INT8 GEMM's 32-byte panels

static size_t ws_round(size_t bytes) { return (bytes + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

// Points parts[i] at n disjoint aligned pieces of sizes[i] bytes of the workspace, growing it
// first when they do not fit (the old contents are not kept: nothing lives there between ops).
static qt_status ws_carve(cpu_ctx *c, const char *op, int n, const size_t *sizes, void **parts) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += ws_round(sizes[i]);
    if (total > c->bytes) {
        unsigned char *p = aligned_alloc(WS_ALIGN, total);
        if (!p)
            return qt_error(QT_ERR_OOM, "%s: cannot grow the CPU backend's workspace to %zu bytes",
                            op, total);
        free(c->ws);
        c->ws = p;
        c->bytes = total;
        c->grows++;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        parts[i] = c->ws + off;
        off += ws_round(sizes[i]);
    }
    return QT_OK;
}

static void cpu_destroy(void *ctx) {
    cpu_ctx *c = ctx;
    if (!c) return;
    free(c->ws);
    free(c);
}

static qt_status cpu_alloc(void *ctx, void **ptr, size_t bytes) {
    (void)ctx;
    // 64-byte alignment for vector loads; never zero bytes (aligned_alloc(.., 0) may be NULL).
    size_t rounded = (bytes + 63) / 64 * 64;
    *ptr = aligned_alloc(64, rounded ? rounded : 64);
    if (!*ptr) return qt_error(QT_ERR_OOM, "cannot allocate %zu bytes of host memory", bytes);
    return QT_OK;
}
static void cpu_free(void *ctx, void *ptr) {
    (void)ctx;
    free(ptr);
}
static qt_status cpu_zero(void *ctx, void *ptr, size_t bytes) {
    (void)ctx;
    memset(ptr, 0, bytes);
    return QT_OK;
}
static qt_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    (void)ctx;
    if (bytes) memmove(dst, src, bytes);
    return QT_OK;
}
// The CPU backend stores fp32, so the converting copies are plain copies.
static qt_status cpu_to_host_f32(void *ctx, float *dst, const void *src, size_t n) {
    return cpu_copy(ctx, dst, src, n * sizeof(float));
}
static qt_status cpu_to_device_f32(void *ctx, void *dst, const float *src, size_t n) {
    return cpu_copy(ctx, dst, src, n * sizeof(float));
}
static qt_status cpu_sync(void *ctx) {
    (void)ctx;
    return QT_OK;
}

static qt_status cpu_gemm(void *ctx, const qt_gemm_desc *d, const void *A, const void *B,
                          void *C) {
    (void)ctx;
    return qt_cpu_gemm(d, A, B, C);
}

// The remaining entries forward to kernels/cpu; `void *` tensors are fp32 here.
static qt_status cpu_linear_fwd(void *ctx, void *out, const void *x, const void *w, const void *b,
                                int N, int IC, int OC) {
    (void)ctx;
    return qt_cpu_linear_fwd(out, x, w, b, N, IC, OC);
}
static qt_status cpu_linear_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout,
                                const void *x, const void *w, int N, int IC, int OC) {
    (void)ctx;
    return qt_cpu_linear_bwd(dx, dw, db, dout, x, w, N, IC, OC);
}
// The fused attention op: its workspace (the tiles of every thread) is carved from the
// backend's, so a training step allocates nothing after the first.
static qt_status cpu_attention_flash_fwd(void *ctx, const qt_attn_params *ap, void *out, void *ctxv,
                                         float *lse, float *R, int64_t *nzero, const void *qkv,
                                         const float *gate, const void *sink, const int *lens,
                                         int B, int T, int C, int H) {
    const size_t bytes = qt_cpu_attention_flash_ws_bytes(ap, B, T, C, H, omp_get_max_threads());
    void *ws = NULL;
    QT_TRY(ws_carve(ctx, "cpu attention_flash_fwd", 1, &bytes, &ws));
    return qt_cpu_attention_flash_fwd(ap, out, ctxv, lse, R, nzero, qkv, gate, sink, lens, B, T, C,
                                      H, ws, bytes);
}
static qt_status cpu_attention_flash_bwd(void *ctx, const qt_attn_params *ap, void *dqkv,
                                         float *dgate, void *dsink, const void *dout,
                                         const void *qkv, const void *ctxv, const float *lse,
                                         const float *R, const float *gate, const void *sink,
                                         const int *lens, int B, int T, int C, int H) {
    const size_t bytes = qt_cpu_attention_flash_ws_bytes(ap, B, T, C, H, omp_get_max_threads());
    void *ws = NULL;
    QT_TRY(ws_carve(ctx, "cpu attention_flash_bwd", 1, &bytes, &ws));
    return qt_cpu_attention_flash_bwd(ap, dqkv, dgate, dsink, dout, qkv, ctxv, lse, R, gate, sink,
                                      lens, B, T, C, H, ws, bytes);
}
static qt_status cpu_softmax_clip_fwd(void *ctx, const qt_softmax_params *prm, void *probs,
                                      float *p, const void *scores, const int *lens, int rows,
                                      int cols) {
    (void)ctx;
    return qt_cpu_softmax_clip_fwd(prm, probs, p, scores, lens, rows, cols);
}
static qt_status cpu_softmax_clip_bwd(void *ctx, const qt_softmax_params *prm, void *dscores,
                                      const void *dprobs, const float *p, const int *lens,
                                      int rows, int cols) {
    (void)ctx;
    return qt_cpu_softmax_clip_bwd(prm, dscores, dprobs, p, lens, rows, cols);
}
static qt_status cpu_softmax_clip_sink_fwd(void *ctx, const qt_softmax_params *prm,
                                           qt_sink_kind sink, void *probs, float *p,
                                           const void *scores, const int *lens, const void *logits,
                                           int rows, int cols, int H, int head_rows) {
    (void)ctx;
    return qt_cpu_softmax_clip_sink_fwd(prm, sink, probs, p, scores, lens, logits, rows, cols, H,
                                        head_rows);
}
static qt_status cpu_softmax_clip_sink_bwd(void *ctx, const qt_softmax_params *prm,
                                           qt_sink_kind sink, void *dscores, void *dlogits,
                                           const void *dprobs, const float *p, const int *lens,
                                           int rows, int cols, int H, int head_rows) {
    (void)ctx;
    return qt_cpu_softmax_clip_sink_bwd(prm, sink, dscores, dlogits, dprobs, p, lens, rows, cols, H,
                                        head_rows);
}
static qt_status cpu_gate_fwd(void *ctx, const qt_gate_shape *g, float *gate, float *hidden,
                              const void *x, const void *w1, const void *b1, const void *w2,
                              const void *b2, int N, int C) {
    (void)ctx;
    return qt_cpu_gate_fwd(g, gate, hidden, x, w1, b1, w2, b2, N, C);
}
static qt_status cpu_gate_bwd(void *ctx, const qt_gate_shape *g, void *dx, void *dw1, void *db1,
                              void *dw2, void *db2, const float *dgate, const float *gate,
                              const float *hidden, const void *x, const void *w1, const void *w2,
                              int N, int C) {
    (void)ctx;
    return qt_cpu_gate_bwd(g, dx, dw1, db1, dw2, db2, dgate, gate, hidden, x, w1, w2, N, C);
}
static qt_status cpu_gate_mul_fwd(void *ctx, void *out, const float *gate, const void *ctxv,
                                  int N, int C, int H) {
    (void)ctx;
    return qt_cpu_gate_mul_fwd(out, gate, ctxv, N, C, H);
}
static qt_status cpu_gate_mul_bwd(void *ctx, void *dctx, float *dgate, const void *dout,
                                  const float *gate, const void *ctxv, int N, int C, int H) {
    (void)ctx;
    return qt_cpu_gate_mul_bwd(dctx, dgate, dout, gate, ctxv, N, C, H);
}
static qt_status cpu_layernorm_fwd(void *ctx, void *out, float *mean, float *rstd, const void *x,
                                   const void *w, const void *b, int N, int C) {
    (void)ctx;
    return qt_cpu_layernorm_fwd(out, mean, rstd, x, w, b, N, C);
}
static qt_status cpu_layernorm_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout,
                                   const void *x, const float *mean, const float *rstd,
                                   const void *w, int N, int C) {
    (void)ctx;
    return qt_cpu_layernorm_bwd(dx, dw, db, dout, x, mean, rstd, w, N, C);
}
static qt_status cpu_layernorm_residual_fwd(void *ctx, void *resid, void *out, float *mean,
                                            float *rstd, const void *x, const void *branch,
                                            const void *w, const void *b, int N, int C,
                                            float prob, uint64_t seed, uint64_t stream) {
    (void)ctx;
    return qt_cpu_layernorm_residual_fwd(resid, out, mean, rstd, x, branch, w, b, N, C, prob,
                                         seed, stream);
}
static qt_status cpu_layernorm_residual_bwd(void *ctx, void *dx, void *dbranch, void *dw,
                                            void *db, const void *dout, const void *x,
                                            const float *mean, const float *rstd, const void *w,
                                            int N, int C, float prob, uint64_t seed,
                                            uint64_t stream) {
    (void)ctx;
    return qt_cpu_layernorm_residual_bwd(dx, dbranch, dw, db, dout, x, mean, rstd, w, N, C, prob,
                                         seed, stream);
}
static qt_status cpu_linear_act_fwd(void *ctx, qt_linear_act act, void *out, void *pre,
                                   const void *x, const void *w, const void *b, int N, int IC,
                                   int OC) {
    (void)ctx;
    return qt_cpu_linear_act_fwd(act, out, pre, x, w, b, N, IC, OC);
}
static qt_status cpu_linear_act_dx(void *ctx, qt_linear_act act, void *dx, const void *dout,
                                  const void *w, const void *saved, int N, int IC, int OC) {
    (void)ctx;
    return qt_cpu_linear_act_dx(act, dx, dout, w, saved, N, IC, OC);
}
static qt_status cpu_gelu_fwd(void *ctx, void *out, const void *x, size_t n) {
    (void)ctx;
    return qt_cpu_gelu_fwd(out, x, n);
}
static qt_status cpu_gelu_bwd(void *ctx, void *dx, const void *dout, const void *x, size_t n) {
    (void)ctx;
    return qt_cpu_gelu_bwd(dx, dout, x, n);
}
static qt_status cpu_relu_fwd(void *ctx, void *out, const void *x, size_t n) {
    (void)ctx;
    return qt_cpu_relu_fwd(out, x, n);
}
static qt_status cpu_relu_bwd(void *ctx, void *dx, const void *dout, const void *x, size_t n) {
    (void)ctx;
    return qt_cpu_relu_bwd(dx, dout, x, n);
}
static qt_status cpu_embedding_fwd(void *ctx, void *out, const int *tokens, const void *wte,
                                   const void *wpe, int B, int T, int C) {
    (void)ctx;
    return qt_cpu_embedding_fwd(out, tokens, wte, wpe, B, T, C);
}
static qt_status cpu_embedding_bwd(void *ctx, void *dwte, void *dwpe, const void *dout,
                                   const int *tokens, int B, int T, int C) {
    (void)ctx;
    return qt_cpu_embedding_bwd(dwte, dwpe, dout, tokens, B, T, C);
}
static qt_status cpu_add(void *ctx, void *out, const void *a, const void *b, size_t n) {
    (void)ctx;
    return qt_cpu_add(out, a, b, n);
}
static qt_status cpu_dropout_fwd(void *ctx, void *out, const void *x, size_t n, float prob,
                                 uint64_t seed, uint64_t stream) {
    (void)ctx;
    return qt_cpu_dropout_fwd(out, x, n, prob, seed, stream);
}
static qt_status cpu_dropout_bwd(void *ctx, void *dx, const void *dout, size_t n, float prob,
                                 uint64_t seed, uint64_t stream) {
    (void)ctx;
    return qt_cpu_dropout_bwd(dx, dout, n, prob, seed, stream);
}
static qt_status cpu_crossentropy_fwd(void *ctx, float *losses, float *stats, const void *logits,
                                      const int *targets, int N, int V) {
    (void)ctx;
    return qt_cpu_crossentropy_fwd(losses, stats, logits, targets, N, V);
}
static qt_status cpu_crossentropy_bwd(void *ctx, void *dlogits, const float *dlosses,
                                      const void *logits, const float *stats, const int *targets,
                                      int N, int V) {
    (void)ctx;
    return qt_cpu_crossentropy_bwd(dlogits, dlosses, logits, stats, targets, N, V);
}
static qt_status cpu_crossentropy_fwd_bwd(void *ctx, float *losses, float *stats, void *logits,
                                          const float *dlosses, const int *targets, int N, int V) {
    (void)ctx;
    return qt_cpu_crossentropy_fwd_bwd(losses, stats, logits, dlosses, targets, N, V);
}
static qt_status cpu_adamw_step(void *ctx, void *param, float *master, const void *grad, float *m,
                                float *v, size_t n, const qt_adamw_params *prm) {
    (void)ctx;
    if (master) return qt_error(QT_ERR_ARG, "cpu backend: fp32 parameters take no master copy");
    return qt_cpu_adamw_step(param, grad, m, v, n, prm);
}
static qt_status cpu_sumsq(void *ctx, double *out, const void *x, size_t n) {
    (void)ctx;
    return qt_cpu_sumsq(out, x, n);
}
// ---- LLaMA family: kernels/cpu/rmsnorm.c, rope.c, swiglu.c
static qt_status cpu_rmsnorm_fwd(void *ctx, void *out, float *rstd, const void *x, const void *w,
                                 int N, int C) {
    (void)ctx;
    return qt_cpu_rmsnorm_fwd(out, rstd, x, w, N, C);
}
static qt_status cpu_rmsnorm_bwd(void *ctx, void *dx, void *dw, const void *dout, const void *x,
                                 const float *rstd, const void *w, int N, int C) {
    (void)ctx;
    return qt_cpu_rmsnorm_bwd(dx, dw, dout, x, rstd, w, N, C);
}
static qt_status cpu_rope_fwd(void *ctx, void *qkv, int B, int T, int C, int H, float theta) {
    (void)ctx;
    return qt_cpu_rope_fwd(qkv, B, T, C, H, theta);
}
static qt_status cpu_rope_bwd(void *ctx, void *dqkv, int B, int T, int C, int H, float theta) {
    (void)ctx;
    return qt_cpu_rope_bwd(dqkv, B, T, C, H, theta);
}
static qt_status cpu_swiglu_fwd(void *ctx, void *out, const void *x, int N, int F) {
    (void)ctx;
    return qt_cpu_swiglu_fwd(out, x, N, F);
}
static qt_status cpu_swiglu_bwd(void *ctx, void *dx, const void *dout, const void *x, int N,
                                int F) {
    (void)ctx;
    return qt_cpu_swiglu_bwd(dx, dout, x, N, F);
}
// ---- end of the llama part

// ---- quantized training (dqt part): fake quantization (kernels/cpu/quant.c), the W8A8 linear
// through the INT8 GEMM (kernels/cpu/int8_gemm.c) and direct quantized training
// (kernels/cpu/dqt.c). Tensors are fp32 here.

// out = dequant(quant(x)) of a (rows, cols) tensor; no running state (RUNNING is refused).
static qt_status cpu_quant_fake(void *ctx, qt_dtype dt, const qt_quant_params *p, void *out,
                                const void *x, size_t rows, size_t cols) {
    if (dt != QT_DTYPE_F32)
        return qt_error(QT_ERR_ARG, "cpu quant_fake: dtype %s; the CPU backend stores fp32 only, "
                                    "pass QT_DTYPE_F32", qt_dtype_name(dt));
    if (p && (p->range == QT_QUANT_RANGE_RUNNING || p->range == QT_QUANT_RANGE_FIXED))
        return qt_error(QT_ERR_ARG, "cpu quant_fake: the running and fixed ranges need a "
                                    "qt_quant_running state the backend does not keep; use "
                                    "absmax or absmean");
    QT_TRY(qt_quant_check(p, rows, cols, NULL));
    // the per-slice grids (step, zero point) in the workspace
    const size_t ns = qt_quant_num_scales(p, rows, cols);
    const size_t sizes[2] = {ns * sizeof(float), ns * sizeof(int32_t)};
    void *grid[2] = {NULL, NULL};
    if (ns) QT_TRY(ws_carve(ctx, "cpu quant_fake", 2, sizes, grid));
    return qt_cpu_quant_fake_ws(p, NULL, out, x, rows, cols, grid[0], grid[1]);
}

// codes (rows, cols) and one scale per row of x (rows, cols) under q; a per-tensor scale is
// copied to every row (the GEMM's epilogue takes one per row). zeros (rows): scratch for the
// (symmetric, so zero) zero points.
static qt_status cpu_s8_quantize(const qt_quant_params *q, int8_t *codes, float *scales,
                                 int32_t *zeros, const float *x, int rows, int cols) {
    QT_TRY(qt_cpu_quant_quantize(q, NULL, codes, scales, zeros, x, (size_t)rows, (size_t)cols));
    if (q->granularity == QT_QUANT_PER_TENSOR)
        for (int r = 1; r < rows; r++) scales[r] = scales[0];
    return QT_OK;
}

// out (N, OC) = Qa(x (N, IC)) Qw(w (OC, IC))^T + b (OC): int32 accumulation, dequantized in
// the GEMM's epilogue. The codes, scales and zero points of x and w and the GEMM's packed
// panels live in the workspace.
static qt_status cpu_linear_s8_fwd(void *ctx, void *out, const void *x, const void *w,
                                   const void *b, int N, int IC, int OC,
                                   const qt_quant_params *aq, const qt_quant_params *wq) {
    QT_TRY(qt_quant_check_s8_linear("cpu linear_s8_fwd", aq, wq, N, IC, OC));
    if (N == 0 || OC == 0) return QT_OK;
    const size_t rmax = (size_t)(N > OC ? N : OC);
    const size_t sizes[6] = {(size_t)N * (size_t)IC,    (size_t)OC * (size_t)IC,
                             (size_t)N * sizeof(float), (size_t)OC * sizeof(float),
                             rmax * sizeof(int32_t),    qt_cpu_gemm_s8_scratch_bytes(N, OC, IC)};
    void *part[6];
    QT_TRY(ws_carve(ctx, "cpu linear_s8_fwd", 6, sizes, part));
    int8_t *xc = part[0], *wc = part[1]; // (N, IC), (OC, IC)
    float *xs = part[2], *ws = part[3];  // (N), (OC)
    QT_TRY(cpu_s8_quantize(aq, xc, xs, part[4], x, N, IC));
    QT_TRY(cpu_s8_quantize(wq, wc, ws, part[4], w, OC, IC));
    return qt_cpu_linear_s8_ws(out, xc, xs, wc, ws, b, N, OC, IC, part[5], sizes[5]);
}

// SwitchBack's dX: dx (N, IC) += Qg(g (N, OC)) Qw(w (OC, IC)), g per token, w per tensor, on
// the INT8 GEMM (TN: the weight codes transposed to (IC, OC)); the product goes through a
// scratch (N, IC) and is added, since the GEMM's epilogue overwrites. Every temporary buffer
// lives in the workspace.
static qt_status cpu_linear_s8_dx(void *ctx, void *dx, const void *g, const void *w, int N,
                                  int IC, int OC, const qt_quant_params *gq,
                                  const qt_quant_params *wq) {
    QT_TRY(qt_quant_check_s8_dx("cpu linear_s8_dx", gq, wq, N, IC, OC));
    const size_t nw = (size_t)OC * IC, nx = (size_t)N * IC;
    const size_t sizes[8] = {(size_t)N * OC,
                             nw,
                             nw,
                             (size_t)N * sizeof(float),
                             (size_t)IC * sizeof(float),
                             nx * sizeof(float),
                             (size_t)N * sizeof(int32_t),
                             qt_cpu_gemm_s8_scratch_bytes(N, IC, OC)};
    void *part[8];
    QT_TRY(ws_carve(ctx, "cpu linear_s8_dx", 8, sizes, part));
    int8_t *gc = part[0], *wc = part[1], *wt = part[2]; // (N, OC), (OC, IC), (IC, OC)
    float *gs = part[3], *ws = part[4], *tmp = part[5]; // (N), (IC), (N, IC)
    int32_t *zeros = part[6];                           // (N)
    QT_TRY(cpu_s8_quantize(gq, gc, gs, zeros, g, N, OC));
    QT_TRY(qt_cpu_quant_quantize(wq, NULL, wc, ws, zeros, w, (size_t)OC, (size_t)IC));
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < IC; i++)
            wt[(size_t)i * OC + o] = wc[(size_t)o * IC + i];
    for (int i = 1; i < IC; i++)
        ws[i] = ws[0];
    QT_TRY(qt_cpu_linear_s8_ws(tmp, gc, gs, wt, ws, NULL, N, IC, OC, part[7], sizes[7]));
    float *d = dx;
    for (size_t k = 0; k < nx; k++)
        d[k] += tmp[k];
    return QT_OK;
}

// out (n) = codes (n, int8) * scale.
static qt_status cpu_dqt_dequant(void *ctx, void *out, const int8_t *codes, float scale,
                                 size_t n) {
    (void)ctx;
    return qt_cpu_dqt_dequant(out, codes, scale, n);
}

// One DQT step (qt_cpu_dqt_step, which checks its params and tensors).
static qt_status cpu_dqt_step(void *ctx, const qt_dqt_params *dp, int8_t *codes,
                              const void *grad, float *m, float *v, size_t n,
                              qt_dqt_stats *stats) {
    (void)ctx;
    return qt_cpu_dqt_step(dp, codes, grad, m, v, n, stats);
}
// ---- end of the dqt part

static const qt_backend_ops cpu_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .to_host = cpu_copy,
    .to_device = cpu_copy,
    .to_host_f32 = cpu_to_host_f32,
    .to_device_f32 = cpu_to_device_f32,
    .sync = cpu_sync,
    .destroy = cpu_destroy,
    .gemm = cpu_gemm,
    .linear_fwd = cpu_linear_fwd,
    .linear_bwd = cpu_linear_bwd,
    .attention_flash_fwd = cpu_attention_flash_fwd,
    .attention_flash_bwd = cpu_attention_flash_bwd,
    .softmax_clip_fwd = cpu_softmax_clip_fwd,
    .softmax_clip_bwd = cpu_softmax_clip_bwd,
    .softmax_clip_sink_fwd = cpu_softmax_clip_sink_fwd,
    .softmax_clip_sink_bwd = cpu_softmax_clip_sink_bwd,
    .gate_fwd = cpu_gate_fwd,
    .gate_bwd = cpu_gate_bwd,
    .gate_mul_fwd = cpu_gate_mul_fwd,
    .gate_mul_bwd = cpu_gate_mul_bwd,
    .layernorm_fwd = cpu_layernorm_fwd,
    .layernorm_bwd = cpu_layernorm_bwd,
    .layernorm_residual_fwd = cpu_layernorm_residual_fwd,
    .layernorm_residual_bwd = cpu_layernorm_residual_bwd,
    .linear_act_fwd = cpu_linear_act_fwd,
    .linear_act_dx = cpu_linear_act_dx,
    .gelu_fwd = cpu_gelu_fwd,
    .gelu_bwd = cpu_gelu_bwd,
    .relu_fwd = cpu_relu_fwd,
    .relu_bwd = cpu_relu_bwd,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    // no embedding_bwd_sorted: the plain scatter is O(N C) here and faster (qtrain bench
    // embedding, one thread: bucket_bwd ran at 0.72x and 0.97x of bwd's speed)
    .add = cpu_add,
    .dropout_fwd = cpu_dropout_fwd,
    .dropout_bwd = cpu_dropout_bwd,
    .crossentropy_fwd = cpu_crossentropy_fwd,
    .crossentropy_bwd = cpu_crossentropy_bwd,
    .crossentropy_fwd_bwd = cpu_crossentropy_fwd_bwd,
    .adamw_step = cpu_adamw_step,
    .sumsq = cpu_sumsq,
    // llama part
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .rope_fwd = cpu_rope_fwd,
    .rope_bwd = cpu_rope_bwd,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    // end of the llama part
    // dqt part
    .quant_fake = cpu_quant_fake,
    .linear_s8_fwd = cpu_linear_s8_fwd,
    .linear_s8_dx = cpu_linear_s8_dx,
    .dqt_dequant = cpu_dqt_dequant,
    .dqt_step = cpu_dqt_step,
    // end of the dqt part
};

qt_status qt_backend_cpu_init(qt_backend *be, int threads) {
    if (threads < 0) return qt_error(QT_ERR_ARG, "threads = %d must be >= 0", threads);
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return qt_error(QT_ERR_OOM, "cannot allocate the CPU backend's context");
    be->ops = &cpu_ops;
    be->ctx = c;
    be->name = "cpu";
    be->dtype = QT_DTYPE_F32;
    be->threads = threads > 0 ? threads : omp_get_max_threads();
    return QT_OK;
}

qt_status qt_backend_cpu_workspace(const qt_backend *be, size_t *bytes, size_t *grows) {
    if (!be || be->ops != &cpu_ops || !be->ctx)
        return qt_error(QT_ERR_ARG,
                        "qt_backend_cpu_workspace: '%s' is not an initialized CPU "
                        "backend; pass one from qt_backend_cpu_init",
                        be && be->name ? be->name : "(null)");
    const cpu_ctx *c = be->ctx;
    if (bytes) *bytes = c->bytes;
    if (grows) *grows = c->grows;
    return QT_OK;
}

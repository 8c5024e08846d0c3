// f64_backend.c: see f64_backend.h.
#include "f64_backend.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/philox.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/crossentropy.h"
#include "kernels/gate.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/softmax_clip.h"
#include "kernels/swiglu.h"

typedef struct {
    float *shadow; // what the model sees
    double *real;  // the values
    size_t n;      // elements
} region;

typedef struct {
    region r[256];
    int n;
} f64_ctx;

static region *find(f64_ctx *c, const void *p) {
    for (int i = 0; i < c->n; i++) {
        const char *s = (const char *)c->r[i].shadow;
        if ((const char *)p >= s && (const char *)p < s + c->r[i].n * sizeof(float)) return &c->r[i];
    }
    return NULL;
}

static double *D(void *ctx, const void *p) {
    if (!p) return NULL;
    region *r = find(ctx, p);
    QT_ASSERT(r != NULL, "f64 backend: pointer %p is not from this backend", p);
    return r->real + ((const char *)p - (const char *)r->shadow) / (ptrdiff_t)sizeof(float);
}

double *qt_test_f64_ptr(const qt_backend *be, const void *p) { return D(be->ctx, p); }

static qt_status f_alloc(void *ctx, void **ptr, size_t bytes) {
    f64_ctx *c = ctx;
    QT_ASSERT(c->n < 256, "f64 backend: too many allocations");
    size_t n = (bytes + 3) / 4 + 1;
    region *r = &c->r[c->n++];
    r->shadow = calloc(n, sizeof(float));
    r->real = calloc(n, sizeof(double));
    r->n = n;
    *ptr = r->shadow;
    return r->shadow && r->real ? QT_OK : qt_error(QT_ERR_OOM, "f64 backend: out of memory");
}
static void f_free(void *ctx, void *ptr) {
    region *r = find(ctx, ptr);
    if (!r) return;
    free(r->shadow);
    free(r->real);
    r->shadow = NULL;
    r->real = NULL;
    r->n = 0;
}
static qt_status f_zero(void *ctx, void *ptr, size_t bytes) {
    memset(ptr, 0, bytes);
    double *d = D(ctx, ptr);
    memset(d, 0, bytes / 4 * sizeof(double));
    return QT_OK;
}
static qt_status f_to_host(void *ctx, void *dst, const void *src, size_t bytes) {
    const double *d = D(ctx, src);
    float *out = dst;
    for (size_t i = 0; i < bytes / 4; i++) out[i] = (float)d[i];
    return QT_OK;
}
// Host data may be floats or ints (tokens, lengths): both go to the shadow as bytes; the
// double copy reads them as floats, which only matters for float data.
static qt_status f_to_device(void *ctx, void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
    double *d = D(ctx, dst);
    const float *in = src;
    for (size_t i = 0; i < bytes / 4; i++) d[i] = in[i];
    return QT_OK;
}
static qt_status f_to_host_f32(void *ctx, float *dst, const void *src, size_t n) {
    return f_to_host(ctx, dst, src, n * sizeof(float));
}
static qt_status f_to_device_f32(void *ctx, void *dst, const float *src, size_t n) {
    return f_to_device(ctx, dst, src, n * sizeof(float));
}
static qt_status f_sync(void *ctx) {
    (void)ctx;
    return QT_OK;
}
static qt_status f_gemm(void *ctx, const qt_gemm_desc *d, const void *A, const void *B, void *C) {
    const qt_gemm_desc *g = d;
    const double *a = D(ctx, A), *b = D(ctx, B);
    double *c = D(ctx, C);
    for (int i = 0; i < g->batch; i++) {
        int64_t o = i / g->inner, in = i % g->inner;
        cblas_dgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                    g->trans_b ? CblasTrans : CblasNoTrans, g->M, g->N, g->K, g->alpha,
                    a + o * g->a_outer + in * g->a_inner, g->lda,
                    b + o * g->b_outer + in * g->b_inner, g->ldb, g->beta,
                    c + o * g->c_outer + in * g->c_inner, g->ldc);
    }
    return QT_OK;
}
static qt_status f_linear_fwd(void *ctx, void *out, const void *x, const void *w, const void *b, int N, int IC, int OC) {
    return qt_cpu_linear_fwd_f64(D(ctx, out), D(ctx, x), D(ctx, w), D(ctx, b), N, IC, OC);
}
static qt_status f_linear_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout, const void *x, const void *w, int N, int IC, int OC) {
    return qt_cpu_linear_bwd_f64(D(ctx, dx), D(ctx, dw), D(ctx, db), D(ctx, dout), D(ctx, x),
                                 D(ctx, w), N, IC, OC);
}
static qt_status f_softmax_fwd(void *ctx, const qt_softmax_params *prm, void *probs, float *p, const void *scores, const int *lens, int rows, int cols) {
    return qt_cpu_softmax_clip_fwd_f64(prm, D(ctx, probs), D(ctx, p), D(ctx, scores), lens, rows,
                                       cols);
}
static qt_status f_softmax_bwd(void *ctx, const qt_softmax_params *prm, void *dscores, const void *dprobs, const float *p, const int *lens, int rows, int cols) {
    return qt_cpu_softmax_clip_bwd_f64(prm, D(ctx, dscores), D(ctx, dprobs), D(ctx, p), lens, rows,
                                       cols);
}
static qt_status f_softmax_sink_fwd(void *ctx, const qt_softmax_params *prm, qt_sink_kind sink,
                                    void *probs, float *p, const void *scores, const int *lens,
                                    const void *logits, int rows, int cols, int H, int head_rows) {
    return qt_cpu_softmax_clip_sink_fwd_f64(prm, sink, D(ctx, probs), D(ctx, p), D(ctx, scores),
                                            lens, D(ctx, logits), rows, cols, H, head_rows);
}
static qt_status f_softmax_sink_bwd(void *ctx, const qt_softmax_params *prm, qt_sink_kind sink,
                                    void *dscores, void *dlogits, const void *dprobs,
                                    const float *p, const int *lens, int rows, int cols, int H,
                                    int head_rows) {
    return qt_cpu_softmax_clip_sink_bwd_f64(prm, sink, D(ctx, dscores), D(ctx, dlogits),
                                            D(ctx, dprobs), D(ctx, p), lens, rows, cols, H,
                                            head_rows);
}
// The fused attention op in double, its workspace allocated per call (a test backend). The
// zero counts (nzero) are not kept: this backend's regions hold doubles, not int64.
static qt_status f_attn_flash_fwd(void *ctx, const qt_attn_params *ap, void *out, void *ctxv,
                                  float *lse, float *R, int64_t *nzero, const void *qkv,
                                  const float *gate, const void *sink, const int *lens, int B,
                                  int T, int C, int H) {
    (void)nzero;
    const size_t bytes = qt_cpu_attention_flash_ws_bytes_f64(ap, B, T, C, H, 1);
    void *ws = malloc(bytes);
    if (!ws) return qt_error(QT_ERR_OOM, "f64 backend: no workspace for attention_flash_fwd");
    qt_status st = qt_cpu_attention_flash_fwd_f64(ap, D(ctx, out), D(ctx, ctxv), D(ctx, lse),
                                                  D(ctx, R), NULL, D(ctx, qkv), D(ctx, gate),
                                                  D(ctx, sink), lens, B, T, C, H, ws, bytes);
    free(ws);
    return st;
}
static qt_status f_attn_flash_bwd(void *ctx, const qt_attn_params *ap, void *dqkv, float *dgate,
                                  void *dsink, const void *dout, const void *qkv, const void *ctxv,
                                  const float *lse, const float *R, const float *gate,
                                  const void *sink, const int *lens, int B, int T, int C, int H) {
    const size_t bytes = qt_cpu_attention_flash_ws_bytes_f64(ap, B, T, C, H, 1);
    void *ws = malloc(bytes);
    if (!ws) return qt_error(QT_ERR_OOM, "f64 backend: no workspace for attention_flash_bwd");
    qt_status st = qt_cpu_attention_flash_bwd_f64(
        ap, D(ctx, dqkv), D(ctx, dgate), D(ctx, dsink), D(ctx, dout), D(ctx, qkv), D(ctx, ctxv),
        D(ctx, lse), D(ctx, R), D(ctx, gate), D(ctx, sink), lens, B, T, C, H, ws, bytes);
    free(ws);
    return st;
}
static qt_status f_gate_fwd(void *ctx, const qt_gate_shape *g, float *gate, float *hidden, const void *x, const void *w1, const void *b1, const void *w2, const void *b2, int N, int C) {
    return qt_cpu_gate_fwd_f64(g, D(ctx, gate), D(ctx, hidden), D(ctx, x), D(ctx, w1), D(ctx, b1),
                               D(ctx, w2), D(ctx, b2), N, C);
}
static qt_status f_gate_bwd(void *ctx, const qt_gate_shape *g, void *dx, void *dw1, void *db1, void *dw2, void *db2, const float *dgate, const float *gate, const float *hidden, const void *x, const void *w1, const void *w2, int N, int C) {
    return qt_cpu_gate_bwd_f64(g, D(ctx, dx), D(ctx, dw1), D(ctx, db1), D(ctx, dw2), D(ctx, db2),
                               D(ctx, dgate), D(ctx, gate), D(ctx, hidden), D(ctx, x), D(ctx, w1),
                               D(ctx, w2), N, C);
}
static qt_status f_gate_mul_fwd(void *ctx, void *out, const float *gate, const void *ctxv, int N, int C, int H) {
    return qt_cpu_gate_mul_fwd_f64(D(ctx, out), D(ctx, gate), D(ctx, ctxv), N, C, H);
}
static qt_status f_gate_mul_bwd(void *ctx, void *dctx, float *dgate, const void *dout, const float *gate, const void *ctxv, int N, int C, int H) {
    return qt_cpu_gate_mul_bwd_f64(D(ctx, dctx), D(ctx, dgate), D(ctx, dout), D(ctx, gate),
                                   D(ctx, ctxv), N, C, H);
}
static qt_status f_ln_fwd(void *ctx, void *out, float *mean, float *rstd, const void *x, const void *w, const void *b, int N, int C) {
    return qt_cpu_layernorm_fwd_f64(D(ctx, out), D(ctx, mean), D(ctx, rstd), D(ctx, x), D(ctx, w),
                                    D(ctx, b), N, C);
}
static qt_status f_ln_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout, const void *x, const float *mean, const float *rstd, const void *w, int N, int C) {
    return qt_cpu_layernorm_bwd_f64(D(ctx, dx), D(ctx, dw), D(ctx, db), D(ctx, dout), D(ctx, x),
                                    D(ctx, mean), D(ctx, rstd), D(ctx, w), N, C);
}
static qt_status f_gelu_fwd(void *ctx, void *out, const void *x, size_t n) {
    return qt_cpu_gelu_fwd_f64(D(ctx, out), D(ctx, x), n);
}
static qt_status f_gelu_bwd(void *ctx, void *dx, const void *dout, const void *x, size_t n) {
    return qt_cpu_gelu_bwd_f64(D(ctx, dx), D(ctx, dout), D(ctx, x), n);
}
static qt_status f_relu_fwd(void *ctx, void *out, const void *x, size_t n) {
    return qt_cpu_relu_fwd_f64(D(ctx, out), D(ctx, x), n);
}
static qt_status f_relu_bwd(void *ctx, void *dx, const void *dout, const void *x, size_t n) {
    return qt_cpu_relu_bwd_f64(D(ctx, dx), D(ctx, dout), D(ctx, x), n);
}
// A linear with its activation: qt_cpu_linear_act_fwd / _dx's composition, in double (the
// model's fused FFN schedule: ReLU keeps no pre and its backward reads the output).
static qt_status f_linear_act_fwd(void *ctx, qt_linear_act act, void *out, void *pre,
                                  const void *x, const void *w, const void *b, int N, int IC,
                                  int OC) {
    void *lin = pre ? pre : out;
    QT_TRY(f_linear_fwd(ctx, lin, x, w, b, N, IC, OC));
    const size_t n = (size_t)N * (size_t)OC;
    return act == QT_LINEAR_ACT_GELU ? f_gelu_fwd(ctx, out, lin, n) : f_relu_fwd(ctx, out, lin, n);
}
static qt_status f_linear_act_dx(void *ctx, qt_linear_act act, void *dx, const void *dout,
                                 const void *w, const void *saved, int N, int IC, int OC) {
    const qt_gemm_desc d = qt_gemm_desc_single(0, 0, N, IC, OC, 0.0f, OC, IC, IC);
    QT_TRY(f_gemm(ctx, &d, dout, w, dx));
    const size_t n = (size_t)N * (size_t)IC;
    return act == QT_LINEAR_ACT_GELU ? f_gelu_bwd(ctx, dx, dx, saved, n)
                                     : f_relu_bwd(ctx, dx, dx, saved, n);
}
// Embedding, add, dropout, cross-entropy's reduction helpers, AdamW and sumsq have no _f64
// twin in ops.h; they are a few lines each in double here.
static qt_status f_embed_fwd(void *ctx, void *out, const int *tokens, const void *wte, const void *wpe, int B, int T, int C) {
    double *o = D(ctx, out);
    const double *te = D(ctx, wte), *pe = D(ctx, wpe);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) // llama part: wpe may be NULL (no positions)
                o[((size_t)b * T + t) * C + c] = te[(size_t)tokens[b * T + t] * C + c] +
                                                 (pe ? pe[(size_t)t * C + c] : 0.0);
    return QT_OK;
}
static qt_status f_embed_bwd(void *ctx, void *dwte, void *dwpe, const void *dout, const int *tokens, int B, int T, int C) {
    double *dte = D(ctx, dwte), *dpe = D(ctx, dwpe);
    const double *d = D(ctx, dout);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                double g = d[((size_t)b * T + t) * C + c];
                dte[(size_t)tokens[b * T + t] * C + c] += g;
                if (dpe) dpe[(size_t)t * C + c] += g;
            }
    return QT_OK;
}
static qt_status f_add(void *ctx, void *out, const void *a, const void *b, size_t n) {
    double *o = D(ctx, out);
    const double *x = D(ctx, a), *y = D(ctx, b);
    for (size_t i = 0; i < n; i++) o[i] = x[i] + y[i];
    return QT_OK;
}
static qt_status f_drop_fwd(void *ctx, void *out, const void *x, size_t n, float prob, uint64_t seed, uint64_t stream) {
    double *o = D(ctx, out);
    const double *in = D(ctx, x);
    for (size_t i = 0; i < n; i++)
        o[i] = qt_philox_uniform(seed, stream, i) >= prob ? in[i] / (1.0 - (double)prob) : 0.0;
    return QT_OK;
}
static qt_status f_drop_bwd(void *ctx, void *dx, const void *dout, size_t n, float prob, uint64_t seed, uint64_t stream) {
    double *o = D(ctx, dx);
    const double *d = D(ctx, dout);
    for (size_t i = 0; i < n; i++)
        if (qt_philox_uniform(seed, stream, i) >= prob) o[i] += d[i] / (1.0 - (double)prob);
    return QT_OK;
}
static qt_status f_ce_fwd(void *ctx, float *losses, float *stats, const void *logits,
                         const int *targets, int N, int V) {
    return qt_cpu_crossentropy_fwd_f64(D(ctx, losses), D(ctx, stats), D(ctx, logits), targets, N,
                                       V);
}
static qt_status f_ce_bwd(void *ctx, void *dlogits, const float *dlosses, const void *logits,
                         const float *stats, const int *targets, int N, int V) {
    return qt_cpu_crossentropy_bwd_f64(D(ctx, dlogits), D(ctx, dlosses), D(ctx, logits),
                                       D(ctx, stats), targets, N, V);
}
static qt_status f_adamw(void *ctx, void *param, float *master, const void *grad, float *m, float *v, size_t n, const qt_adamw_params *prm) {
    const qt_adamw_params *p = prm;
    QT_ASSERT(master == NULL, "f64 backend: no master weights");
    double *w = D(ctx, param), *mm = D(ctx, m), *vv = D(ctx, v);
    const double *g = D(ctx, grad);
    double c1 = 1.0 - pow(p->beta1, p->step), c2 = 1.0 - pow(p->beta2, p->step);
    for (size_t i = 0; i < n; i++) {
        double gi = g[i] * p->grad_scale;
        mm[i] = p->beta1 * mm[i] + (1.0 - p->beta1) * gi;
        vv[i] = p->beta2 * vv[i] + (1.0 - p->beta2) * gi * gi;
        w[i] -= p->lr * ((mm[i] / c1) / (sqrt(vv[i] / c2) + p->eps) + p->weight_decay * w[i]);
    }
    return QT_OK;
}
static qt_status f_sumsq(void *ctx, double *out, const void *x, size_t n) {
    const double *d = D(ctx, x);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += d[i] * d[i];
    *out = s;
    return QT_OK;
}
// ---- LLaMA family (llama part): the _f64 twins of kernels/cpu/rmsnorm.c, rope.c and swiglu.c
static qt_status f_rms_fwd(void *ctx, void *out, float *rstd, const void *x, const void *w, int N,
                           int C) {
    return qt_cpu_rmsnorm_fwd_f64(D(ctx, out), D(ctx, rstd), D(ctx, x), D(ctx, w), N, C);
}
static qt_status f_rms_bwd(void *ctx, void *dx, void *dw, const void *dout, const void *x,
                           const float *rstd, const void *w, int N, int C) {
    return qt_cpu_rmsnorm_bwd_f64(D(ctx, dx), D(ctx, dw), D(ctx, dout), D(ctx, x), D(ctx, rstd),
                                  D(ctx, w), N, C);
}
static qt_status f_rope_fwd(void *ctx, void *qkv, int B, int T, int C, int H, float theta) {
    return qt_cpu_rope_fwd_f64(D(ctx, qkv), B, T, C, H, theta);
}
static qt_status f_rope_bwd(void *ctx, void *dqkv, int B, int T, int C, int H, float theta) {
    return qt_cpu_rope_bwd_f64(D(ctx, dqkv), B, T, C, H, theta);
}
static qt_status f_swiglu_fwd(void *ctx, void *out, const void *x, int N, int F) {
    return qt_cpu_swiglu_fwd_f64(D(ctx, out), D(ctx, x), N, F);
}
static qt_status f_swiglu_bwd(void *ctx, void *dx, const void *dout, const void *x, int N,
                              int F) {
    return qt_cpu_swiglu_bwd_f64(D(ctx, dx), D(ctx, dout), D(ctx, x), N, F);
}
// ---- end of the llama part

static const qt_backend_ops f64_ops = {
    .alloc = f_alloc, .free = f_free, .zero = f_zero, .to_host = f_to_host,
    .to_device = f_to_device, .to_host_f32 = f_to_host_f32,
    .to_device_f32 = f_to_device_f32, .sync = f_sync, .gemm = f_gemm, .linear_fwd = f_linear_fwd,
    .linear_bwd = f_linear_bwd, .linear_act_fwd = f_linear_act_fwd,
    .linear_act_dx = f_linear_act_dx, .attention_flash_fwd = f_attn_flash_fwd,
    .attention_flash_bwd = f_attn_flash_bwd, .softmax_clip_sink_fwd = f_softmax_sink_fwd,
    .softmax_clip_sink_bwd = f_softmax_sink_bwd, .softmax_clip_fwd = f_softmax_fwd,
    .softmax_clip_bwd = f_softmax_bwd, .gate_fwd = f_gate_fwd, .gate_bwd = f_gate_bwd,
    .gate_mul_fwd = f_gate_mul_fwd, .gate_mul_bwd = f_gate_mul_bwd, .layernorm_fwd = f_ln_fwd,
    .layernorm_bwd = f_ln_bwd, .gelu_fwd = f_gelu_fwd, .gelu_bwd = f_gelu_bwd,
    .relu_fwd = f_relu_fwd, .relu_bwd = f_relu_bwd, .embedding_fwd = f_embed_fwd,
    .embedding_bwd = f_embed_bwd, .add = f_add, .dropout_fwd = f_drop_fwd,
    .dropout_bwd = f_drop_bwd, .crossentropy_fwd = f_ce_fwd, .crossentropy_bwd = f_ce_bwd,
    .adamw_step = f_adamw, .sumsq = f_sumsq,
    // llama part
    .rmsnorm_fwd = f_rms_fwd, .rmsnorm_bwd = f_rms_bwd, .rope_fwd = f_rope_fwd,
    .rope_bwd = f_rope_bwd, .swiglu_fwd = f_swiglu_fwd, .swiglu_bwd = f_swiglu_bwd,
    // end of the llama part
};

qt_status qt_test_f64_backend_init(qt_backend *be) {
    f64_ctx *c = calloc(1, sizeof *c);
    if (!c) return qt_error(QT_ERR_OOM, "f64 backend: out of memory");
    be->ops = &f64_ops;
    be->ctx = c;
    be->name = "cpu-f64-test";
    be->dtype = QT_DTYPE_F32; // the model sees 4-byte elements (the shadows)
    be->threads = 1;
    return QT_OK;
}

void qt_test_f64_backend_free(qt_backend *be) {
    f64_ctx *c = be->ctx;
    for (int i = 0; i < c->n; i++) {
        free(c->r[i].shadow);
        free(c->r[i].real);
    }
    free(c);
    be->ctx = NULL;
    be->ops = NULL;
}

// attention_layer_ref.c: qt_cpu_attention_layer_{fwd,bwd} and qt_attention_layer_act_sizes, one
// whole attention layer (float only) composed from the families' qt_cpu ops, a test oracle:
//   qkv = x Wqkv^T + bqkv            (linear)
//   ctx = attention(qkv)             (attention core with the softmax variant)
//   gated = gate(x) * ctx            (gate + gate_mul, when the layer is gated)
//   out = gated Wo^T + bo            (linear)
// Contract (attention_layer_ref.h): the forward overwrites out and the activations; the
// backward adds into dx and the gradients and overwrites scratch, laid out as
//   [ (B, H, T, T) attention scratch | dqkv (B, T, 3C) | dctx (B, T, C) ]
// with, for a gated layer, d gated (B, T, C) parked in the dqkv slot until dctx is formed
// and dgate (B, T, H) in the attention slot until the gate's backward has run.
#include <stddef.h>
#include <string.h>

#include "attention_layer_ref.h"
#include "base/status.h"
#include "kernels/attention.h"
#include "kernels/gate.h"
#include "kernels/linear.h"

void qt_gate_param_sizes(const qt_gate_shape *g, int C, size_t sz[4]) {
    size_t H = (size_t)g->n_heads, D = (size_t)C / H, nh = (size_t)g->n_hid;
    sz[0] = sz[1] = sz[2] = sz[3] = 0;
    if (g->kind == QT_GATE_LINEAR) {
        sz[0] = H * D;
        sz[1] = H;
    } else if (g->kind == QT_GATE_MLP) {
        sz[0] = H * nh * D;
        sz[1] = H * nh;
        sz[2] = H * nh;
        sz[3] = H;
    } else if (g->kind == QT_GATE_ALL_HEADS) {
        sz[0] = H * (size_t)C;
        sz[1] = H;
    }
}

void qt_attention_layer_act_sizes(const qt_attention_layer_shape *s, size_t sizes[7]) {
    const size_t B = (size_t)s->B, T = (size_t)s->T, C = (size_t)s->C, H = (size_t)s->H;
    const int gated = s->gate.kind != QT_GATE_NONE;
    sizes[0] = B * T * 3 * C;                                                 // qkv
    sizes[1] = B * H * T * T;                                                 // p
    sizes[2] = B * H * T * T;                                                 // probs
    sizes[3] = B * T * C;                                                     // ctx
    sizes[4] = gated ? B * T * H : 0;                                         // gate
    sizes[5] = s->gate.kind == QT_GATE_MLP ? B * T * H * (size_t)s->gate.n_hid : 0; // hidden
    sizes[6] = gated ? B * T * C : 0;                                         // gated
}

static qt_status layer_check(const qt_attention_layer_shape *s, const char *op) {
    if (!(s->B >= 1 && s->T >= 1 && s->H >= 1 && s->C % s->H == 0))
        return qt_error(QT_ERR_ARG,
                        "%s: B = %d, T = %d, C = %d, H = %d; need B, T, H >= 1 and C a multiple "
                        "of H",
                        op, s->B, s->T, s->C, s->H);
    if (s->gate.kind != QT_GATE_NONE && s->gate.n_heads != s->H)
        return qt_error(QT_ERR_ARG,
                        "%s: gate n_heads = %d differs from the layer's H = %d; "
                        "pass n_heads = H",
                        op, s->gate.n_heads, s->H);
    return QT_OK;
}

qt_status qt_cpu_attention_layer_fwd(const qt_attention_layer_shape *s,
                                     const qt_attention_layer_params *w, qt_attention_layer_acts *a,
                                     float *out, const float *x, const int *lens) {
    QT_TRY(layer_check(s, "attention_layer_fwd"));
    const int B = s->B, T = s->T, C = s->C, H = s->H, N = B * T;
    QT_TRY(qt_cpu_linear_fwd(a->qkv, x, w->qkv_w, w->qkv_b, N, C, 3 * C));
    QT_TRY(qt_cpu_attention_fwd(&s->softmax, a->ctx, a->probs, a->p, a->qkv, lens, B, T, C, H));
    const float *proj_in = a->ctx;
    if (s->gate.kind != QT_GATE_NONE) {
        QT_TRY(qt_cpu_gate_fwd(&s->gate, a->gate, a->hidden, x, w->gate_w1, w->gate_b1, w->gate_w2,
                               w->gate_b2, N, C));
        QT_TRY(qt_cpu_gate_mul_fwd(a->gated, a->gate, a->ctx, N, C, H));
        proj_in = a->gated;
    }
    return qt_cpu_linear_fwd(out, proj_in, w->proj_w, w->proj_b, N, C, C);
}

qt_status qt_cpu_attention_layer_bwd(const qt_attention_layer_shape *s,
                                     const qt_attention_layer_params *w,
                                     const qt_attention_layer_acts *a, qt_attention_layer_grads *g,
                                     float *dx, float *scratch, const float *dout, const float *x,
                                     const int *lens) {
    QT_TRY(layer_check(s, "attention_layer_bwd"));
    const int B = s->B, T = s->T, C = s->C, H = s->H, N = B * T;
    const size_t btc = (size_t)N * C;
    float *att = scratch;                      // (B, H, T, T)
    float *dqkv = att + (size_t)B * H * T * T; // (B, T, 3C)
    float *dctx = dqkv + 3 * btc;              // (B, T, C)
    const int gated = s->gate.kind != QT_GATE_NONE;

    // out = proj_in Wo^T + bo
    float *dproj_in = gated ? dqkv : dctx;
    memset(dproj_in, 0, btc * sizeof(float));
    QT_TRY(qt_cpu_linear_bwd(dproj_in, g->proj_w, g->proj_b, dout, gated ? a->gated : a->ctx,
                             w->proj_w, N, C, C));
    if (gated) {
        // gated = gate * ctx: dgate into the attention slot, dctx into its own slot
        float *dgate = att; // (B, T, H)
        memset(dgate, 0, (size_t)N * H * sizeof(float));
        memset(dctx, 0, btc * sizeof(float));
        QT_TRY(qt_cpu_gate_mul_bwd(dctx, dgate, dproj_in, a->gate, a->ctx, N, C, H));
        QT_TRY(qt_cpu_gate_bwd(&s->gate, dx, g->gate_w1, g->gate_b1, g->gate_w2, g->gate_b2, dgate,
                               a->gate, a->hidden, x, w->gate_w1, w->gate_w2, N, C));
    }
    // ctx = attention(qkv), then qkv = x Wqkv^T + bqkv
    memset(dqkv, 0, 3 * btc * sizeof(float));
    QT_TRY(qt_cpu_attention_bwd(&s->softmax, dqkv, att, dctx, a->qkv, a->probs, a->p, lens, B, T, C,
                                H));
    return qt_cpu_linear_bwd(dx, g->qkv_w, g->qkv_b, dqkv, x, w->qkv_w, N, C, 3 * C);
}

// test_model.c: whole-model gradient checks on a 2-layer model, for every attention variant
// and every gate function.
//
// 1. The model code (host/model/model.c, unchanged) runs on a double-precision test backend
//    (f64_backend.c), and every parameter tensor's gradient is checked element by element
//    against central finite differences of the double loss: relative error under 1e-6. The
//    variants run through the fused attention op (attention_flash_*), the `composed` ones
//    through gemm + softmax_clip[_sink] + gate_mul with the fused op removed from the table
//    (and the FFN's linear + activation as two ops: linear_act_* removed too).
// 2. The same model on the float CPU backend gives the same gradients within float rounding.
// 3. The fused op and the composed path are one function: same loss and gradients in double
//    (1e-12) for every variant; 20 training steps of the default model agree within float
//    rounding (test_model_fused_trains_as_composed).
// 4. With the fused op the activation arena grows linearly in T and holds no (B, H, T, T)
//    buffer; composed, it grows quadratically (the check can fail).
// 5. A training step after the first allocates nothing (test_model_step_allocates_nothing).
// 6. qt_model_forward_train (the classifier's backward in the forward's op) equals forward +
//    backward bit for bit, with and without the backend's crossentropy_fwd_bwd.
#define _GNU_SOURCE // dl_iterate_phdr
#include <errno.h>
#include <link.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "f64_backend.h"
#include "qtrain/model.h"
#include "qtrain/optimizer.h"
#include "qtrain/trainer.h"
#include "testutil.h"

typedef struct {
    const char *name;
    const char *sets[8];
    int composed; // hide the backend's fused ops: gemm + softmax_clip, linear + activation
} variant;

static const variant variants[] = {
    {"vanilla", {NULL}, 0},
    {"clipped", {"attn.softmax=clipped", "attn.gamma=-0.03", "attn.zeta=1.05", NULL}, 0},
    {"clipped_alpha", {"attn.softmax=clipped", "attn.alpha=0.5", NULL}, 0},
    {"ncs", {"attn.softmax=ncs", "attn.eta=1.2", "attn.beta=0.6", NULL}, 0},
    {"ncs_c_positive", {"attn.softmax=ncs", "attn.eta=1.0", "attn.beta=1.5", NULL}, 0},
    {"gate_linear", {"attn.gate=linear", "attn.gate_pi_init=0.25", NULL}, 0},
    {"gate_mlp", {"attn.gate=mlp", "attn.gate_n_hid=3", NULL}, 0},
    {"gate_all_heads", {"attn.gate=all_heads", NULL}, 0},
    {"ncs_gate_linear", {"attn.softmax=ncs", "attn.gate=linear", NULL}, 0},
    {"clipped_gate_mlp", {"attn.softmax=clipped", "attn.gamma=-0.03", "attn.gate=mlp", NULL}, 0},
    {"relu_untied_dropout",
     {"model.activation=relu", "model.tie_embeddings=0", "model.dropout=0.1", NULL},
     0},
    {"no_bias", {"model.bias=0", NULL}, 0},
    {"composed_relu_no_bias", {"model.activation=relu", "model.bias=0", NULL}, 1},
    {"composed_clipped", {"attn.softmax=clipped", "attn.gamma=-0.03", "attn.zeta=1.05", NULL}, 1},
    {"composed_ncs_gate_mlp", {"attn.softmax=ncs", "attn.gate=mlp", NULL}, 1},
    {"composed_vanilla_attn_dropout", {"model.attn_dropout=0.2", NULL}, 1},
    {"llama",
     {"model.arch=llama", "model.norm=rmsnorm", "model.pos=rope", "model.activation=swiglu",
      "model.bias=0", "model.tie_embeddings=0", NULL},
     0},
    {"rmsnorm_rope_bias_clipped",
     {"model.norm=rmsnorm", "model.pos=rope", "model.rope_theta=100", "attn.softmax=clipped",
      "attn.gamma=-0.03", NULL},
     0},
    {"composed_swiglu_gate_linear", {"model.activation=swiglu", "attn.gate=linear", NULL}, 1},
    // the 2025 outlier-free variants, fused and composed
    {"off_by_one", {"attn.sink=off_by_one", NULL}, 0},
    {"sink_learned", {"attn.sink=learned", NULL}, 0},
    {"gate_elementwise", {"attn.gate=elementwise", "attn.gate_pi_init=0.3", NULL}, 0},
    {"ncs_c_positive_sink_gate_elementwise",
     {"attn.softmax=ncs", "attn.eta=1.0", "attn.beta=1.5", "attn.sink=learned",
      "attn.gate=elementwise", NULL},
     0},
    {"clipped_off_by_one_gate_all_heads",
     {"attn.softmax=clipped", "attn.gamma=-0.03", "attn.sink=off_by_one", "attn.gate=all_heads",
      NULL},
     0},
    {"composed_sink_learned_gate_elementwise",
     {"attn.sink=learned", "attn.gate=elementwise", NULL},
     1},
    {"composed_ncs_off_by_one_attn_dropout",
     {"attn.softmax=ncs", "attn.sink=off_by_one", "model.attn_dropout=0.2", NULL},
     1},
};

// Backends with the fused attention op and the fused linear + activation removed, for the
// `composed` variants.
static qt_backend_ops composed_ops[4];
static void compose(qt_backend *be, int slot) {
    composed_ops[slot] = *be->ops;
    composed_ops[slot].attention_flash_fwd = NULL;
    composed_ops[slot].attention_flash_bwd = NULL;
    composed_ops[slot].linear_act_fwd = NULL;
    composed_ops[slot].linear_act_dx = NULL;
    be->ops = &composed_ops[slot];
}
static void maybe_compose(qt_backend *be, const variant *v, int slot) {
    if (v->composed) compose(be, slot);
}
#define N_VARIANTS ((int)(sizeof variants / sizeof variants[0]))

enum { B = 2, T = 7, V = 37 };

static void tiny_config(qt_config *cfg, const variant *v) {
    qt_config_defaults(cfg);
    const char *base[] = {"model.n_layer=2",  "model.d_model=16",     "model.n_head=2",
                          "model.d_ff=24",    "model.max_seq_len=8",  "model.vocab_size=257",
                          "model.init_std=0.3", "train.seed=7",       "train.seq_len=8"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        ck_assert_int_eq(qt_config_set(cfg, base[i], "test"), QT_OK);
    for (int i = 0; v->sets[i]; i++)
        ck_assert_msg(qt_config_set(cfg, v->sets[i], "test") == QT_OK, "%s: %s", v->sets[i],
                      qt_last_error());
}

static void tiny_batch(int *in, int *tg) {
    for (int i = 0; i < B * T; i++) {
        in[i] = (i * 7 + 3) % V;
        tg[i] = (i * 5 + 1) % V;
    }
    tg[4] = -1; // an ignored target
}

static double loss_at(qt_model *m, const int *in, const int *tg) {
    float loss = 0.0f;
    ck_assert_msg(qt_model_forward(m, in, tg, B, T, &loss) == QT_OK, "%s", qt_last_error());
    return loss;
}

// The double loss of the last forward (qt_model_forward reports it rounded to float).
static double loss_f64(qt_model *m, const int *in, const int *tg) {
    loss_at(m, in, tg);
    const double *losses = qt_test_f64_ptr(m->be, m->losses);
    double sum = 0.0;
    for (int i = 0; i < B * T; i++)
        if (tg[i] >= 0) sum += losses[i];
    return sum / m->fwd_count;
}

static void model_on(qt_model *m, qt_backend *be, const variant *v) {
    qt_config cfg;
    tiny_config(&cfg, v);
    ck_assert_msg(qt_model_init(m, &cfg, be, B, T) == QT_OK, "%s", qt_last_error());
    m->training = 1; // dropout (when configured) with a fixed stream is a fixed function
    m->dropout_stream = 3;
}

START_TEST(test_model_gradients_f64) {
    const variant *v = &variants[_i];
    qt_backend be;
    ck_assert_int_eq(qt_test_f64_backend_init(&be), QT_OK);
    maybe_compose(&be, v, 0);
    qt_model m;
    model_on(&m, &be, v);
    int in[B * T], tg[B * T];
    tiny_batch(in, tg);
    ck_assert_int_eq(qt_model_zero_grad(&m), QT_OK);
    loss_f64(&m, in, tg);
    ck_assert_int_eq(qt_model_backward(&m, 1.0f), QT_OK);
    const double *grads = qt_test_f64_ptr(&be, m.grads);
    double *g = malloc(m.n_params * sizeof(double));
    memcpy(g, grads, m.n_params * sizeof(double));
    double *w = qt_test_f64_ptr(&be, m.params);
    const double h = 1e-5;
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const qt_tensor_info *t = &m.tensors[ti];
        // Up to 8 elements per tensor, spread over it.
        size_t step = t->numel > 8 ? t->numel / 8 : 1;
        double max_err = 0.0, max_ref = 0.0;
        size_t worst = 0;
        double worst_a = 0, worst_fd = 0;
        for (size_t i = (size_t)ti % step; i < t->numel; i += step) {
            double *wi = w + t->offset + i, saved = *wi;
            *wi = saved + h;
            double lp = loss_f64(&m, in, tg);
            *wi = saved - h;
            double lm = loss_f64(&m, in, tg);
            *wi = saved;
            double fd = (lp - lm) / (2 * h), a = g[t->offset + i];
            if (fabs(fd) > max_ref) max_ref = fabs(fd);
            if (!(fabs(a - fd) <= max_err)) {
                max_err = fabs(a - fd);
                worst = i;
                worst_a = a;
                worst_fd = fd;
            }
        }
        // Relative to the tensor's largest checked gradient (elementwise relative error is
        // meaningless for gradients that are zero up to rounding).
        double rel = max_err / (max_ref > 1e-9 ? max_ref : 1e-9);
        ck_assert_msg(rel <= 1e-6, "%s: %s[%zu]: analytic %.12g vs finite difference %.12g "
                      "(relative error %.3g)", v->name, t->name, worst, worst_a, worst_fd, rel);
    }
    free(g);
    qt_model_free(&m);
    qt_test_f64_backend_free(&be);
}
END_TEST

// The float CPU backend computes the same gradients as the double model, up to rounding.
START_TEST(test_model_gradients_f32_match_f64) {
    const variant *v = &variants[_i];
    qt_backend be64, be32;
    ck_assert_int_eq(qt_test_f64_backend_init(&be64), QT_OK);
    ck_assert_int_eq(qt_backend_cpu_init(&be32, 2), QT_OK);
    maybe_compose(&be64, v, 0);
    maybe_compose(&be32, v, 1);
    qt_model m64, m32;
    model_on(&m64, &be64, v);
    model_on(&m32, &be32, v);
    int in[B * T], tg[B * T];
    tiny_batch(in, tg);
    double l64 = loss_f64(&m64, in, tg), l32 = loss_at(&m32, in, tg);
    ck_assert_msg(fabs(l64 - l32) <= 1e-5 * fabs(l64), "%s: loss %.9g (f64) vs %.9g (f32)",
                  v->name, l64, l32);
    ck_assert_int_eq(qt_model_backward(&m64, 1.0f), QT_OK);
    ck_assert_int_eq(qt_model_backward(&m32, 1.0f), QT_OK);
    const double *g64 = qt_test_f64_ptr(&be64, m64.grads);
    for (int ti = 0; ti < m32.n_tensors; ti++) {
        const qt_tensor_info *t = &m32.tensors[ti];
        double max_ref = 0.0, max_err = 0.0;
        for (size_t i = 0; i < t->numel; i++) {
            double ref = g64[t->offset + i], got = ((const float *)m32.grads)[t->offset + i];
            if (fabs(ref) > max_ref) max_ref = fabs(ref);
            if (!(fabs(got - ref) <= max_err)) max_err = fabs(got - ref);
        }
        double rel = max_err / (max_ref > 1e-9 ? max_ref : 1e-9);
        ck_assert_msg(rel <= 1e-3, "%s: %s: float gradient off by %.3g relative", v->name,
                      t->name, rel);
    }
    qt_model_free(&m64);
    qt_model_free(&m32);
    qt_test_f64_backend_free(&be64);
    qt_backend_free(&be32);
}
END_TEST

// The backward of an equal loss with loss_scale s is s times the gradient (the hook loss
// scaling and gradient accumulation rely on), and forward is deterministic.
START_TEST(test_model_loss_scale_and_determinism) {
    qt_config cfg;
    tiny_config(&cfg, &variants[0]);
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    qt_model m;
    ck_assert_int_eq(qt_model_init(&m, &cfg, &be, B, T), QT_OK);
    int in[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) in[i] = tg[(i + 1) % (B * T)] = (i * 11 + 2) % V;
    double l1 = loss_at(&m, in, tg), l2 = loss_at(&m, in, tg);
    ck_assert_msg(l1 == l2, "forward not deterministic: %.9g vs %.9g", l1, l2);
    ck_assert_msg(fabs(l1 - log(257.0)) < 1.0, "initial loss %.4f far from ln V", l1);
    qt_model_zero_grad(&m);
    ck_assert_int_eq(qt_model_backward(&m, 1.0f), QT_OK);
    float *g1 = malloc(m.n_params * sizeof(float));
    memcpy(g1, m.grads, m.n_params * sizeof(float));
    qt_model_zero_grad(&m);
    loss_at(&m, in, tg);
    ck_assert_int_eq(qt_model_backward(&m, 4.0f), QT_OK);
    const float *g4 = m.grads; // fp32 on the CPU backend
    for (size_t i = 0; i < m.n_params; i++)
        ck_assert_msg(fabsf(g4[i] - 4.0f * g1[i]) <= 1e-6f + 1e-5f * fabsf(4.0f * g1[i]),
                      "grad %zu: %g vs 4 * %g", i, g4[i], g1[i]);
    free(g1);
    qt_model_free(&m);
    qt_backend_free(&be);
}
END_TEST

// The fused op and the composed path compute one function: on the double backend, the loss
// and every gradient of the same model agree within 1e-12 relative (per tensor, to its
// largest gradient), for every variant (the composed ones included, with the fused op put back).
START_TEST(test_model_fused_equals_composed_f64) {
    const variant *v = &variants[_i];
    if (strstr(v->name, "dropout")) return; // attention dropout: the fused op declines it
    qt_backend bf, bc;
    ck_assert_int_eq(qt_test_f64_backend_init(&bf), QT_OK);
    ck_assert_int_eq(qt_test_f64_backend_init(&bc), QT_OK);
    compose(&bc, 2);
    qt_model mf, mc;
    model_on(&mf, &bf, v);
    model_on(&mc, &bc, v);
    int in[B * T], tg[B * T];
    tiny_batch(in, tg);
    double lf = loss_f64(&mf, in, tg), lc = loss_f64(&mc, in, tg);
    ck_assert_msg(mf.fwd_fused == 1 && mc.fwd_fused == 0, "%s: fused %d, composed %d", v->name,
                  mf.fwd_fused, mc.fwd_fused);
    ck_assert_msg(fabs(lf - lc) <= 1e-12 * fabs(lc), "%s: loss %.17g (fused) vs %.17g", v->name, lf,
                  lc);
    ck_assert_int_eq(qt_model_backward(&mf, 1.0f), QT_OK);
    ck_assert_int_eq(qt_model_backward(&mc, 1.0f), QT_OK);
    const double *gf = qt_test_f64_ptr(&bf, mf.grads), *gc = qt_test_f64_ptr(&bc, mc.grads);
    for (int ti = 0; ti < mf.n_tensors; ti++) {
        const qt_tensor_info *t = &mf.tensors[ti];
        double e = qt_test_rel_err_f64(gf + t->offset, gc + t->offset, t->numel);
        ck_assert_msg(e <= 1e-12, "%s: %s: fused vs composed gradient %g", v->name, t->name, e);
    }
    qt_model_free(&mf);
    qt_model_free(&mc);
    qt_test_f64_backend_free(&bf);
    qt_test_f64_backend_free(&bc);
}
END_TEST

// Counts the calls of the CPU backend's fused residual forward, to show the model took it.
static int residual_fwd_calls;
static qt_status (*residual_fwd_real)(void *, void *, void *, float *, float *, const void *,
                                      const void *, const void *, const void *, int, int, float,
                                      uint64_t, uint64_t);
static qt_status residual_fwd_counted(void *ctx, void *resid, void *out, float *mean, float *rstd,
                                      const void *x, const void *branch, const void *w,
                                      const void *b, int N, int C, float prob, uint64_t seed,
                                      uint64_t stream) {
    residual_fwd_calls++;
    return residual_fwd_real(ctx, resid, out, mean, rstd, x, branch, w, b, N, C, prob, seed,
                             stream);
}

// The residual connections fused with their LayerNorm (layernorm_residual_*, the CPU backend's
// op) compute what dropout, add and layernorm compute one by one: on the float CPU backend the
// loss and every gradient are bit-identical with the op removed, for every variant (dropout on
// in relu_untied_dropout, so the fused masks are the composed ones), and the model used the
// op (the composed backend lacks it).
START_TEST(test_model_residual_fused_equals_composed) {
    const variant *v = &variants[_i];
    qt_backend bf, bc;
    ck_assert_int_eq(qt_backend_cpu_init(&bf, 2), QT_OK);
    ck_assert_int_eq(qt_backend_cpu_init(&bc, 2), QT_OK);
    maybe_compose(&bf, v, 0);
    static qt_backend_ops fused, unfused;
    fused = *bf.ops;
    residual_fwd_real = fused.layernorm_residual_fwd;
    fused.layernorm_residual_fwd = residual_fwd_counted;
    bf.ops = &fused;
    unfused = *bf.ops;
    unfused.layernorm_residual_fwd = NULL;
    unfused.layernorm_residual_bwd = NULL;
    bc.ops = &unfused;
    residual_fwd_calls = 0;
    qt_model mf, mc;
    model_on(&mf, &bf, v);
    model_on(&mc, &bc, v);
    int in[B * T], tg[B * T];
    tiny_batch(in, tg);
    ck_assert_int_eq(qt_model_zero_grad(&mf), QT_OK);
    ck_assert_int_eq(qt_model_zero_grad(&mc), QT_OK);
    const double lf = loss_at(&mf, in, tg), lc = loss_at(&mc, in, tg);
    ck_assert_msg(lf == lc, "%s: loss %.9g (fused residual) vs %.9g", v->name, lf, lc);
    // per layer the attention residual with LN2 and the FFN residual with the next norm, where
    // the norms are LayerNorms (RMSNorm models compose)
    const int want = mf.cfg.norm == QT_NORM_LAYERNORM ? 2 * mf.cfg.n_layer : 0;
    ck_assert_msg(residual_fwd_calls == want, "%s: %d fused residual calls, want %d", v->name,
                  residual_fwd_calls, want);
    ck_assert_int_eq(qt_model_backward(&mf, 1.0f), QT_OK);
    ck_assert_int_eq(qt_model_backward(&mc, 1.0f), QT_OK);
    for (int ti = 0; ti < mf.n_tensors; ti++) {
        const qt_tensor_info *t = &mf.tensors[ti];
        const float *gf = (const float *)mf.grads + t->offset;
        const float *gc = (const float *)mc.grads + t->offset;
        ck_assert_msg(!memcmp(gf, gc, t->numel * sizeof(float)),
                      "%s: %s: fused-residual gradient differs from the composed one", v->name,
                      t->name);
    }
    qt_model_free(&mf);
    qt_model_free(&mc);
    qt_backend_free(&bf);
    qt_backend_free(&bc);
}
END_TEST

// The activation arena of the default model (B = 8) at T = 64, 128, 256 on the CPU backend:
// with the fused op it grows linearly in T (second difference 0 bytes) and holds no
// (B, H, T, T) buffer; with the fused op removed it grows quadratically, by exactly the
// composed path's (B, H, T, T) fp32 buffers (p and probs per layer, d_probs and d_scores
// shared: 2 L + 2), which shows the first check can fail. qt_model_memory_report's
// attn_tt_bytes says the same.
START_TEST(test_model_activations_linear_in_T) {
    qt_config cfg;
    qt_config_defaults(&cfg);
    cfg.max_seq_len = 256;
    const int Ts[3] = {64, 128, 256}, Bb = 8;
    size_t act[2][3], tt[2][3];
    for (int composed = 0; composed < 2; composed++)
        for (int k = 0; k < 3; k++) {
            qt_backend be;
            ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
            if (composed) compose(&be, 3);
            qt_model m;
            ck_assert_msg(qt_model_init(&m, &cfg, &be, Bb, Ts[k]) == QT_OK, "%s", qt_last_error());
            qt_model_memory mem;
            qt_model_memory_report(&m, &mem);
            act[composed][k] = mem.act_bytes;
            tt[composed][k] = mem.attn_tt_bytes;
            qt_model_free(&m);
            qt_backend_free(&be);
        }
    const long long d2f =
        (long long)(act[0][2] - act[0][1]) - 2LL * (long long)(act[0][1] - act[0][0]);
    ck_assert_msg(d2f == 0 && tt[0][0] == 0 && tt[0][1] == 0 && tt[0][2] == 0,
                  "fused: activations %zu, %zu, %zu bytes at T = 64, 128, 256 (second difference "
                  "%lld), (B, H, T, T) buffers %zu bytes",
                  act[0][0], act[0][1], act[0][2], d2f, tt[0][2]);
    // composed: the quadratic term is exactly the (B, H, T, T) buffers: T = 64 -> 128 -> 256
    // adds 3 and 12 units of B H 64^2 elements each, a second difference of 6 units.
    const long long d2c =
        (long long)(act[1][2] - act[1][1]) - 2LL * (long long)(act[1][1] - act[1][0]);
    const long long unit = (long long)Bb * cfg.n_head * 64 * 64 * 4; // one buffer at T = 64
    const long long nbuf = 2LL * cfg.n_layer + 2;                    // p, probs; d_probs, d_scores
    ck_assert_msg(d2c == 6 * nbuf * unit && tt[1][2] == (size_t)(16 * nbuf * unit),
                  "composed: second difference %lld, want %lld; (B, H, T, T) bytes %zu", d2c,
                  6 * nbuf * unit, tt[1][2]);
}
END_TEST

// Training equivalence: 20 steps of the default model (configs/default.conf's values, B 8 x T
// 128, a learnable synthetic stream) with the fused op and with the composed path, on the float
// CPU backend. The two sum in different orders: layer 0's attention output differs by float
// rounding (measured 7.5e-8 of its max; bound 1e-6, and > 0: two computations are compared);
// the losses agree within 1e-5 relative at every step (measured: equal to the last float bit,
// the attention branch's rounding being far below the loss's resolution at this stage); the
// parameters after 20 steps within 2e-5 of their largest (measured 1.1e-6).
// qt_model_forward_train (the classifier's backward inside the forward's op) gives the loss and
// gradients of qt_model_forward + qt_model_backward bit for bit, with the backend's
// crossentropy_fwd_bwd and without it; a backward with another loss scale is refused.
START_TEST(test_model_forward_train_equals_forward_backward) {
    float *ref = NULL, ref_loss = 0.0f;
    size_t np = 0;
    static qt_backend_ops no_fused;
    for (int path = 0; path < 3; path++) {
        qt_backend be;
        ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
        if (path == 2) {
            no_fused = *be.ops;
            no_fused.crossentropy_fwd_bwd = NULL;
            be.ops = &no_fused;
        }
        qt_model m;
        model_on(&m, &be, &variants[10]); // relu_untied_dropout: dropout on, the fused FFN too
        int in[B * T], tg[B * T];
        tiny_batch(in, tg);
        float loss = 0.0f;
        ck_assert_int_eq(qt_model_zero_grad(&m), QT_OK);
        if (path == 0)
            ck_assert_int_eq(qt_model_forward(&m, in, tg, B, T, &loss), QT_OK);
        else
            ck_assert_int_eq(qt_model_forward_train(&m, in, tg, B, T, &loss, 2.5f), QT_OK);
        ck_assert_int_eq(m.dlogits_ready, path == 1);
        ck_assert_int_eq(qt_model_backward(&m, 2.5f), QT_OK);
        if (path == 0) {
            np = m.n_params;
            ref = malloc(np * sizeof(float));
            memcpy(ref, m.grads, np * sizeof(float));
            ref_loss = loss;
        } else {
            ck_assert_msg(loss == ref_loss, "path %d: loss %.9g vs %.9g", path, (double)loss,
                          (double)ref_loss);
            ck_assert_msg(memcmp(m.grads, ref, np * sizeof(float)) == 0,
                          "path %d: the gradients differ from forward + backward", path);
        }
        if (path == 1) {
            ck_assert_int_eq(qt_model_forward_train(&m, in, tg, B, T, &loss, 1.0f), QT_OK);
            ck_assert_int_eq(qt_model_backward(&m, 2.0f), QT_ERR_ARG);
            ck_assert_ptr_nonnull(strstr(qt_last_error(), "loss scale"));
            ck_assert_int_eq(qt_model_forward_train(&m, in, NULL, B, T, &loss, 1.0f), QT_ERR_ARG);
        }
        qt_model_free(&m);
        qt_backend_free(&be);
    }
    free(ref);
}
END_TEST

START_TEST(test_model_fused_trains_as_composed) {
    qt_config cfg;
    qt_config_defaults(&cfg);
    const int Bb = cfg.batch_size, Tt = cfg.seq_len, steps = 20;
    float loss[2][20];
    float *params[2] = {NULL, NULL}, *ctx0[2] = {NULL, NULL};
    size_t np = 0, nctx = (size_t)Bb * Tt * cfg.d_model;
    int *in = malloc((size_t)Bb * Tt * sizeof(int)), *tg = malloc((size_t)Bb * Tt * sizeof(int));
    for (int path = 0; path < 2; path++) {
        qt_backend be;
        ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
        if (path) compose(&be, 3);
        qt_model m;
        qt_optimizer opt;
        ck_assert_msg(qt_model_init(&m, &cfg, &be, Bb, Tt) == QT_OK, "%s", qt_last_error());
        ck_assert_int_eq(qt_optimizer_init(&opt, &m), QT_OK);
        m.training = 1;
        uint64_t s = 42;
        for (int step = 0; step < steps; step++) {
            for (int i = 0; i < Bb * Tt; i++) { // a learnable stream: t' = 5 t + 3, 1 in 8 random
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                in[i] = i % Tt == 0 || (s >> 60) == 0 ? (int)((s >> 33) % (uint64_t)cfg.vocab_size)
                                                      : (in[i - 1] * 5 + 3) % cfg.vocab_size;
                tg[i] = (in[i] * 5 + 3) % cfg.vocab_size;
            }
            ck_assert_int_eq(qt_model_zero_grad(&m), QT_OK);
            m.dropout_stream = (uint64_t)step;
            ck_assert_int_eq(qt_model_forward(&m, in, tg, Bb, Tt, &loss[path][step]), QT_OK);
            ck_assert_int_eq(m.fwd_fused, !path);
            if (step == 0) { // the first layer's attention output, as the two paths computed it
                ctx0[path] = malloc(nctx * sizeof(float));
                memcpy(ctx0[path], m.acts[0].ctx, nctx * sizeof(float));
            }
            ck_assert_int_eq(qt_model_backward(&m, 1.0f), QT_OK);
            double norm = 0.0;
            int skipped = 0;
            ck_assert_int_eq(
                qt_optimizer_step(&opt, &m, qt_lr_at(&cfg, step), 1.0f, &norm, &skipped), QT_OK);
        }
        np = m.n_float_params;
        params[path] = malloc(np * sizeof(float));
        memcpy(params[path], m.params, np * sizeof(float));
        qt_optimizer_free(&opt, &m);
        qt_model_free(&m);
        qt_backend_free(&be);
    }
    double dctx = 0.0, mctx = 0.0, dpar = 0.0, mpar = 0.0;
    for (size_t i = 0; i < nctx; i++) {
        dctx = fmax(dctx, fabs((double)ctx0[0][i] - ctx0[1][i]));
        mctx = fmax(mctx, fabs((double)ctx0[1][i]));
    }
    for (size_t i = 0; i < np; i++) {
        dpar = fmax(dpar, fabs((double)params[0][i] - params[1][i]));
        mpar = fmax(mpar, fabs((double)params[1][i]));
    }
    // the paths differ (the first attention output by float rounding), and stay close
    ck_assert_msg(dctx > 0.0 && dctx <= 1e-6 * mctx,
                  "layer 0's attention output: fused vs composed differ by %g (max %g)", dctx,
                  mctx);
    ck_assert_msg(dpar <= 2e-5 * mpar, "parameters after %d steps differ by %g (max %g)", steps,
                  dpar, mpar);
    double worst = 0.0;
    for (int step = 0; step < steps; step++) {
        const double e = fabs((double)loss[0][step] - loss[1][step]) / fabs((double)loss[1][step]);
        ck_assert_msg(e <= 1e-5, "step %d: loss %.9g (fused) vs %.9g (composed)", step,
                      loss[0][step], loss[1][step]);
        worst = fmax(worst, e);
    }
    ck_assert_msg(loss[0][steps - 1] < loss[0][0] - 0.1, "20 steps did not train: %g -> %g",
                  loss[0][0], loss[0][steps - 1]);
    if (getenv("QT_MODEL_VERBOSE"))
        fprintf(stderr,
                "fused vs composed, %d steps: losses %.7f -> %.7f (fused), %.7f (composed), "
                "worst relative difference %.3g; ctx %.3g, parameters %.3g apart\n",
                steps, loss[0][0], loss[0][steps - 1], loss[1][steps - 1], worst, dctx / mctx,
                dpar / mpar);
    QT_TEST_FREE_ALL(in, tg, params[0], params[1], ctx0[0], ctx0[1]);
}
END_TEST

// The learned sink is a parameter: self_attn.sinks (H) per layer, no weight decay (a bias),
// 0 at init (off-by-one softmax), with a gradient, and in the checkpoint (saved, then loaded
// into a fresh model of the checkpoint's config). The elementwise gate's weight is (C, C).
START_TEST(test_model_sink_and_elementwise_params) {
    const variant v = {"sink", {"attn.sink=learned", "attn.gate=elementwise", NULL}, 0};
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    qt_model m;
    model_on(&m, &be, &v);
    const int H = m.cfg.n_head, C = m.cfg.d_model;
    int si = qt_model_find_tensor(&m, "decoder.layers.1.self_attn.sinks");
    int gi = qt_model_find_tensor(&m, "decoder.layers.0.self_attn.gate.weight");
    ck_assert_msg(si >= 0 && gi >= 0, "sink %d, gate %d", si, gi);
    const qt_tensor_info *st = &m.tensors[si], *gt = &m.tensors[gi];
    ck_assert(st->ndim == 1 && st->shape[0] == H && st->kind == QT_TENSOR_BIAS);
    ck_assert(gt->ndim == 2 && gt->shape[0] == C && gt->shape[1] == C);
    float *sink = (float *)m.params + st->param_offset;
    for (int h = 0; h < H; h++)
        ck_assert(sink[h] == 0.0f);
    int in[B * T], tg[B * T];
    tiny_batch(in, tg);
    for (int h = 0; h < H; h++)
        sink[h] = 0.5f - (float)h; // a softmax the sinks change
    ck_assert_int_eq(qt_model_zero_grad(&m), QT_OK);
    loss_at(&m, in, tg);
    ck_assert_int_eq(qt_model_backward(&m, 1.0f), QT_OK);
    const float *g = (const float *)m.grads + st->offset;
    ck_assert_msg(g[0] != 0.0f && g[1] != 0.0f, "sink gradient %g %g", g[0], g[1]);
    char *dir = qt_test_tmpdir("sink"), path[512];
    snprintf(path, sizeof path, "%s/ckpt.bin", dir);
    qt_train_progress pr = {0};
    ck_assert_msg(qt_train_state_save(path, &m, NULL, &pr) == QT_OK, "%s", qt_last_error());
    qt_config cfg;
    ck_assert_int_eq(qt_train_state_read_config(path, &cfg), QT_OK);
    ck_assert(cfg.sink == QT_SINK_LEARNED && cfg.gate == QT_GATE_ELEMENTWISE);
    qt_model m2;
    ck_assert_int_eq(qt_model_init(&m2, &cfg, &be, B, T), QT_OK);
    ck_assert_msg(qt_train_state_load(path, &m2, NULL, NULL) == QT_OK, "%s", qt_last_error());
    const float *sink2 = (const float *)m2.params + m2.tensors[si].param_offset;
    for (int h = 0; h < H; h++)
        ck_assert(sink2[h] == 0.5f - (float)h);
    qt_model_free(&m2);
    qt_model_free(&m);
    qt_backend_free(&be);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

// A backend without the sink ops (the CUDA backend today) refuses attn.sink at init, naming
// the op and the key: it never silently computes another softmax.
START_TEST(test_model_refuses_sink_without_op) {
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    compose(&be, 3);
    composed_ops[3].softmax_clip_sink_fwd = NULL;
    composed_ops[3].softmax_clip_sink_bwd = NULL;
    const variant v = {"off_by_one", {"attn.sink=off_by_one", NULL}, 1};
    qt_config cfg;
    tiny_config(&cfg, &v);
    qt_model m;
    ck_assert_int_eq(qt_model_init(&m, &cfg, &be, B, T), QT_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(qt_last_error(), "softmax_clip_sink_fwd") &&
                      strstr(qt_last_error(), "attn.sink"),
                  "message: %s", qt_last_error());
    qt_backend_free(&be);
}
END_TEST

// Bad configs are rejected by qt_model_init with a message naming the key.
START_TEST(test_model_rejects_bad_config) {
    qt_config cfg;
    tiny_config(&cfg, &variants[0]);
    cfg.n_head = 3; // does not divide 16
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    qt_model m;
    ck_assert_int_eq(qt_model_init(&m, &cfg, &be, B, T), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "n_head") != NULL, "message: %s", qt_last_error());
    qt_backend_free(&be);
}
END_TEST

// ---- no allocation inside a training step ------------------------------------------------
//
// The model sizes its arenas and host staging at init (qt_model_init); a training step (zero
// the gradients, forward, backward, AdamW) allocates nothing. Counted during steps 2..5, after
// a first step:
//   - calls of the backend's alloc entry: the CPU backend's table with `alloc` wrapped;
//   - malloc, calloc, realloc, aligned_alloc, posix_memalign and memalign called from
//     libqtrain's code (return address inside libqtrain.so's executable segments). This
//     executable replaces them, forwarding to glibc's allocator (__libc_*, which glibc exports
//     for this); calls from OpenMP and OpenBLAS, whose pools are not ours, are not counted.
//     Not in the ASan build (libqtrain is linked statically there and ASan owns malloc): that
//     build counts the backend's alloc entry only.
// The quantized ops' temporary buffers (INT8 codes and scales, packed panels, fake
// quantization's per-slice grids) live in the CPU backend's workspace, grown during the first
// step (qt_backend_cpu_workspace), as the CUDA backend's live in its context
// (host/backends/backend_cuda.c, ws_reserve): they are counted too.
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#define COUNT_HOST_ALLOCS 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
#else
#define COUNT_HOST_ALLOCS 0
#endif

static volatile int counting;       // count host allocations now
static long host_allocs, be_allocs; // allocations counted

#if COUNT_HOST_ALLOCS
static uintptr_t lib_lo, lib_hi; // libqtrain.so's executable segments (one range)

static void count_host(const void *caller) {
    uintptr_t a = (uintptr_t)caller;
    if (counting && a >= lib_lo && a < lib_hi)
        __atomic_fetch_add(&host_allocs, 1, __ATOMIC_RELAXED);
}

void *malloc(size_t n) {
    count_host(__builtin_return_address(0));
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t size) {
    count_host(__builtin_return_address(0));
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n) {
    count_host(__builtin_return_address(0));
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n) {
    count_host(__builtin_return_address(0));
    return __libc_memalign(align, n);
}
void *memalign(size_t align, size_t n) {
    count_host(__builtin_return_address(0));
    return __libc_memalign(align, n);
}
int posix_memalign(void **out, size_t align, size_t n) {
    count_host(__builtin_return_address(0));
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

// Finds libqtrain.so's executable segments.
static int find_lib(struct dl_phdr_info *info, size_t size, void *user) {
    (void)size;
    (void)user;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "/libqtrain.so")) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (!lib_lo || lo < lib_lo) lib_lo = lo;
        if (hi > lib_hi) lib_hi = hi;
    }
    return 1;
}
#endif

static const qt_backend_ops *cpu_ops; // the wrapped table
static qt_backend_ops counting_ops;
static qt_status counting_alloc(void *ctx, void **ptr, size_t bytes) {
    be_allocs++;
    return cpu_ops->alloc(ctx, ptr, bytes);
}

static const struct {
    const char *name;
    const char *preset; // configs/<preset>.conf, or NULL: qt_config_defaults
    const char *sets[8];
} step_variants[] = {
    {"default", NULL, {NULL}},
    {"default-gated", "default-gated", {NULL}},
    {"llama-tiny", "llama-tiny", {NULL}},
    {"qat", NULL,
     {"quant.mode=qat", "quant.g_bits=8", "quant.m_bits=8", "quant.v_bits=8",
      "quant.w_rounding=stochastic", "quant.backward=dx", NULL}},
    {"llama-tiny-bitnet", "llama-tiny-bitnet", {NULL}},
    {"llama-tiny-dqt", "llama-tiny-dqt", {"quant.dqt_scale=absmean", NULL}},
    // the encoder: post-LN with dropout (composed attention), pre-LN fused with a gate
    {"bert-6l", "bert-6l", {"model.n_layer=2", NULL}},
    {"bert-6l-pre-fused", "bert-6l",
     {"model.n_layer=2", "model.dropout=0", "model.norm_position=pre", "attn.softmax=ncs",
      "attn.gate=mlp", NULL}},
};
enum { STEP_B = 2, STEP_T = 16, STEPS = 5 };

static qt_status train_step(qt_model *m, qt_optimizer *opt, const int *in, const int *tg,
                            int step) {
    QT_TRY(qt_model_zero_grad(m));
    m->dropout_stream = (uint64_t)step;
    if (m->cfg.arch == QT_ARCH_BERT) { // the encoder's lengths and types, set each step
        static const int lens[STEP_B] = {STEP_T, 11};
        static const int types[STEP_B * STEP_T] = {0};
        QT_TRY(qt_model_set_encoder_batch(m, lens, types, STEP_B, STEP_T));
    }
    float loss = 0.0f;
    QT_TRY(qt_model_forward(m, in, tg, STEP_B, STEP_T, &loss));
    QT_TRY(qt_model_backward(m, 1.0f));
    double norm = 0.0;
    int skipped = 0;
    return qt_optimizer_step(opt, m, qt_lr_at(&m->cfg, step), 1.0f, &norm, &skipped);
}

START_TEST(test_model_step_allocates_nothing) {
    const char *name = step_variants[_i].name;
    qt_config cfg;
    qt_config_defaults(&cfg);
    if (step_variants[_i].preset) {
        const char *dir = getenv("QT_SOURCE_DIR");
        char path[1024];
        snprintf(path, sizeof path, "%s/configs/%s.conf", dir ? dir : ".",
                 step_variants[_i].preset);
        ck_assert_msg(qt_config_load(&cfg, path) == QT_OK, "%s", qt_last_error());
    }
    for (int i = 0; step_variants[_i].sets[i]; i++)
        ck_assert_msg(qt_config_set(&cfg, step_variants[_i].sets[i], "test") == QT_OK, "%s: %s",
                      name, qt_last_error());
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    cpu_ops = be.ops;
    counting_ops = *be.ops;
    counting_ops.alloc = counting_alloc;
    be.ops = &counting_ops;
#if COUNT_HOST_ALLOCS
    lib_lo = lib_hi = 0;
    ck_assert_msg(dl_iterate_phdr(find_lib, NULL) == 1 && lib_lo < lib_hi,
                  "libqtrain.so is not loaded: this test counts the allocations made from it");
#endif
    // The counters see init's allocations: each hook is live.
    host_allocs = be_allocs = 0;
    counting = 1;
    qt_model m;
    qt_optimizer opt;
    ck_assert_msg(qt_model_init(&m, &cfg, &be, STEP_B, STEP_T) == QT_OK, "%s: %s", name,
                  qt_last_error());
    ck_assert_msg(qt_optimizer_init(&opt, &m) == QT_OK, "%s: %s", name, qt_last_error());
    ck_assert_msg(be_allocs >= 3, "%s: init made %ld backend allocations", name, be_allocs);
    ck_assert_msg(!COUNT_HOST_ALLOCS || host_allocs >= 3, "%s: init made %ld host allocations",
                  name, host_allocs);
    m.training = 1;
    int in[STEP_B * STEP_T], tg[STEP_B * STEP_T];
    for (int i = 0; i < STEP_B * STEP_T; i++) {
        in[i] = (i * 7 + 3) % 251;
        tg[i] = (i * 5 + 1) % 251;
    }
    ck_assert_msg(train_step(&m, &opt, in, tg, 0) == QT_OK, "%s: %s", name, qt_last_error());
    host_allocs = be_allocs = 0;
    for (int step = 1; step < STEPS; step++)
        ck_assert_msg(train_step(&m, &opt, in, tg, step) == QT_OK, "%s: %s", name, qt_last_error());
    counting = 0;
    ck_assert_msg(be_allocs == 0 && host_allocs == 0,
                  "%s: steps 2..%d made %ld backend and %ld host allocations; size the "
                  "workspace at qt_model_init", name, STEPS, be_allocs, host_allocs);
    qt_optimizer_free(&opt, &m);
    qt_model_free(&m);
    qt_backend_free(&be);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("gradients");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_model_gradients_f64, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_model_gradients_f32_match_f64, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_model_fused_equals_composed_f64, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_model_residual_fused_equals_composed, 0, N_VARIANTS);
    tcase_add_test(tc, test_model_activations_linear_in_T);
    tcase_add_test(tc, test_model_sink_and_elementwise_params);
    tcase_add_test(tc, test_model_refuses_sink_without_op);
    tcase_add_test(tc, test_model_loss_scale_and_determinism);
    tcase_add_test(tc, test_model_rejects_bad_config);
    suite_add_tcase(s, tc);
    TCase *steps = tcase_create("steps");
    tcase_set_timeout(steps, 120);
    tcase_add_loop_test(steps, test_model_step_allocates_nothing, 0,
                        (int)(sizeof step_variants / sizeof step_variants[0]));
    tcase_add_test(steps, test_model_fused_trains_as_composed);
    tcase_add_test(steps, test_model_forward_train_equals_forward_backward);
    suite_add_tcase(s, steps);
    return qt_test_run_suite(s);
}

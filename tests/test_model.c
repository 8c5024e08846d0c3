// test_model.c: whole-model gradient checks on a 2-layer model, for every attention variant
// and every gate function.
//
// 1. The model code (host/model/model.c, unchanged) runs on a double-precision test backend
//    (f64_backend.c), and every parameter tensor's gradient is checked element by element
//    against central finite differences of the double loss: relative error under 1e-6.
// 2. The same model on the float CPU backend gives the same gradients within float rounding.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "f64_backend.h"
#include "qtrain/model.h"
#include "testutil.h"

typedef struct {
    const char *name;
    const char *sets[8];
    int composed; // hide the backend's fused attention core: gemm + softmax_clip path
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
     {"model.activation=relu", "model.tie_embeddings=0", "model.dropout=0.1", NULL}, 0},
    {"no_bias", {"model.bias=0", NULL}, 0},
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
};

// Backends with the fused attention core removed, for the `composed` variants.
static qt_backend_ops composed_ops[2];
static void maybe_compose(qt_backend *be, const variant *v, int slot) {
    if (!v->composed) return;
    composed_ops[slot] = *be->ops;
    composed_ops[slot].attention_fwd = NULL;
    composed_ops[slot].attention_bwd = NULL;
    be->ops = &composed_ops[slot];
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
}
END_TEST

int main(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("gradients");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_model_gradients_f64, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_model_gradients_f32_match_f64, 0, N_VARIANTS);
    tcase_add_test(tc, test_model_loss_scale_and_determinism);
    tcase_add_test(tc, test_model_rejects_bad_config);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

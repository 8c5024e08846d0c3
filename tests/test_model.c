// test_model.c: whole-model gradient checks on a 2-layer model, for every attention variant
// and every gate function, against central finite differences of the float loss.
//
// The model runs in float, so a per-element check would drown in rounding noise. Instead,
// for each parameter tensor, the analytic directional derivative g . v along a random
// direction v (restricted to that tensor) is compared with (L(w + h v) - L(w - h v)) / 2h.
// A wrong gradient in any tensor changes g . v by far more than the tolerance.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/model.h"
#include "testutil.h"

typedef struct {
    const char *name;
    const char *sets[8];
} variant;

static const variant variants[] = {
    {"vanilla", {NULL}},
    {"clipped", {"attn.softmax=clipped", "attn.gamma=-0.03", "attn.zeta=1.05", NULL}},
    {"clipped_alpha", {"attn.softmax=clipped", "attn.alpha=0.5", NULL}},
    {"ncs", {"attn.softmax=ncs", "attn.eta=1.2", "attn.beta=0.6", NULL}},
    {"ncs_c_positive", {"attn.softmax=ncs", "attn.eta=1.0", "attn.beta=1.5", NULL}},
    {"gate_linear", {"attn.gate=linear", "attn.gate_pi_init=0.25", NULL}},
    {"gate_mlp", {"attn.gate=mlp", "attn.gate_n_hid=3", NULL}},
    {"gate_all_heads", {"attn.gate=all_heads", NULL}},
    {"ncs_gate_linear", {"attn.softmax=ncs", "attn.gate=linear", NULL}},
    {"clipped_gate_mlp", {"attn.softmax=clipped", "attn.gamma=-0.03", "attn.gate=mlp", NULL}},
    {"relu_untied_dropout",
     {"model.activation=relu", "model.tie_embeddings=0", "model.dropout=0.1", NULL}},
    {"no_bias_norm_decay", {"model.bias=0", NULL}},
};
#define N_VARIANTS ((int)(sizeof variants / sizeof variants[0]))

enum { B = 2, T = 7, V = 37 };

static void tiny_config(qt_config *cfg, const variant *v) {
    qt_config_defaults(cfg);
    const char *base[] = {"model.n_layer=2", "model.d_model=16", "model.n_head=2",
                          "model.d_ff=24",   "model.max_seq_len=8", "model.vocab_size=257",
                          "model.init_std=0.3", "train.seed=7", "train.seq_len=8"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        ck_assert_int_eq(qt_config_set(cfg, base[i], "test"), QT_OK);
    for (int i = 0; v->sets[i]; i++)
        ck_assert_msg(qt_config_set(cfg, v->sets[i], "test") == QT_OK, "%s: %s", v->sets[i],
                      qt_last_error());
}

static double loss_at(qt_model *m, const int *in, const int *tg) {
    float loss = 0.0f;
    ck_assert_msg(qt_model_forward(m, in, tg, B, T, &loss) == QT_OK, "%s", qt_last_error());
    return loss;
}

START_TEST(test_model_gradients) {
    const variant *v = &variants[_i];
    qt_config cfg;
    tiny_config(&cfg, v);
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    qt_model m;
    ck_assert_msg(qt_model_init(&m, &cfg, &be, B, T) == QT_OK, "%s", qt_last_error());
    m.training = 1; // dropout (when configured) with a fixed stream is a fixed function
    m.dropout_stream = 3;
    int in[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) {
        in[i] = (i * 7 + 3) % V;
        tg[i] = (i * 5 + 1) % V;
    }
    tg[4] = -1; // an ignored target
    ck_assert_int_eq(qt_model_zero_grad(&m), QT_OK);
    loss_at(&m, in, tg);
    ck_assert_int_eq(qt_model_backward(&m, 1.0f), QT_OK);
    float *grads = malloc(m.n_params * sizeof(float));
    memcpy(grads, m.grads, m.n_params * sizeof(float));

    int checked = 0;
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const qt_tensor_info *t = &m.tensors[ti];
        float *w = m.params + t->offset;
        double *dir = malloc(t->numel * sizeof(double));
        qt_test_fill_uniform_f64(dir, t->numel, -1.0, 1.0, 1000 + (uint64_t)ti);
        double analytic = 0.0, gnorm = 0.0;
        for (size_t i = 0; i < t->numel; i++) {
            analytic += grads[t->offset + i] * dir[i];
            gnorm += (double)grads[t->offset + i] * grads[t->offset + i];
        }
        float *saved = malloc(t->numel * sizeof(float));
        memcpy(saved, w, t->numel * sizeof(float));
        const double h = 1e-2;
        for (size_t i = 0; i < t->numel; i++) w[i] = saved[i] + (float)(h * dir[i]);
        double lp = loss_at(&m, in, tg);
        for (size_t i = 0; i < t->numel; i++) w[i] = saved[i] - (float)(h * dir[i]);
        double lm = loss_at(&m, in, tg);
        memcpy(w, saved, t->numel * sizeof(float));
        double fd = (lp - lm) / (2 * h);
        // Scale: the size g . v would have for a gradient of this norm, so tensors whose
        // directional derivative is near zero by chance are judged on absolute error.
        double scale = sqrt(gnorm) * sqrt((double)t->numel / 3.0) + 1e-4;
        double err = fabs(fd - analytic) / scale;
        ck_assert_msg(err <= 2e-2, "%s: tensor %s: analytic %.8g vs finite difference %.8g "
                      "(error %.3g of scale %.3g)", v->name, t->name, analytic, fd, err, scale);
        ck_assert_msg(gnorm > 0 || strstr(t->name, "embed_positions") != NULL,
                      "%s: tensor %s has an all-zero gradient", v->name, t->name);
        checked++;
        free(saved);
        free(dir);
    }
    ck_assert_int_gt(checked, 10);
    free(grads);
    qt_model_free(&m);
    qt_backend_free(&be);
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
    for (size_t i = 0; i < m.n_params; i++)
        ck_assert_msg(fabsf(m.grads[i] - 4.0f * g1[i]) <= 1e-6f + 1e-5f * fabsf(4.0f * g1[i]),
                      "grad %zu: %g vs 4 * %g", i, m.grads[i], g1[i]);
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
    tcase_add_loop_test(tc, test_model_gradients, 0, N_VARIANTS);
    tcase_add_test(tc, test_model_loss_scale_and_determinism);
    tcase_add_test(tc, test_model_rejects_bad_config);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

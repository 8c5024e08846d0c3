// test_loss_scaler.c: dynamic loss scaling. An inf injected into a gradient skips the step
// (weights and both Adam moments unchanged bit for bit) and halves the scale; clean windows
// double it; a scaled step updates the weights exactly as an unscaled one would.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/loss_scaler.h"
#include "qtrain/optimizer.h"
#include "testutil.h"

enum { B = 2, T = 8 };

static void tiny(qt_config *cfg) {
    qt_config_defaults(cfg);
    const char *sets[] = {"model.n_layer=1", "model.d_model=16", "model.n_head=2", "model.d_ff=32",
                          "model.max_seq_len=8", "model.vocab_size=300", "train.seq_len=8",
                          "train.loss_scale_window=3"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        ck_assert_int_eq(qt_config_set(cfg, sets[i], "test"), QT_OK);
}

static void grads_for(qt_model *m, float scale) {
    int in[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) {
        in[i] = (i * 13 + 5) % 300;
        tg[i] = (i * 7 + 2) % 300;
    }
    float loss;
    ck_assert_int_eq(qt_model_zero_grad(m), QT_OK);
    ck_assert_int_eq(qt_model_forward(m, in, tg, B, T, &loss), QT_OK);
    ck_assert_int_eq(qt_model_backward(m, scale), QT_OK);
}

START_TEST(test_inf_skips_step_and_halves_scale) {
    qt_config cfg;
    tiny(&cfg);
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    qt_model m;
    qt_optimizer opt;
    ck_assert_int_eq(qt_model_init(&m, &cfg, &be, B, T), QT_OK);
    ck_assert_int_eq(qt_optimizer_init(&opt, &m), QT_OK);
    qt_loss_scaler ls;
    qt_loss_scaler_init(&ls, &cfg, QT_DTYPE_F16); // what an fp16 run uses
    ck_assert(ls.enabled && ls.scale == 65536.0f);
    // One clean step first, so the moments are non-zero when we check they do not move.
    double norm;
    int skipped;
    grads_for(&m, ls.scale);
    ck_assert_int_eq(qt_optimizer_step(&opt, &m, 1e-3f, ls.scale, &norm, &skipped), QT_OK);
    ck_assert_int_eq(skipped, 0);
    qt_loss_scaler_update(&ls, skipped);

    size_t bytes = m.n_params * sizeof(float);
    float *p0 = malloc(bytes), *m0 = malloc(bytes), *v0 = malloc(bytes);
    memcpy(p0, m.params, bytes);
    memcpy(m0, opt.m, bytes);
    memcpy(v0, opt.v, bytes);
    grads_for(&m, ls.scale);
    ((float *)m.grads)[m.tensors[3].offset + 1] = INFINITY; // an overflowed fp16 gradient
    ck_assert_int_eq(qt_optimizer_step(&opt, &m, 1e-3f, ls.scale, &norm, &skipped), QT_OK);
    ck_assert_int_eq(skipped, 1);
    ck_assert(!isfinite(norm));
    qt_loss_scaler_update(&ls, skipped);
    ck_assert_msg(ls.scale == 32768.0f, "scale %g after an overflow", ls.scale);
    ck_assert_int_eq(ls.skipped, 1);
    ck_assert_int_eq(opt.step, 1);
    ck_assert_msg(memcmp(p0, m.params, bytes) == 0, "weights changed on a skipped step");
    ck_assert_msg(memcmp(m0, opt.m, bytes) == 0, "Adam m changed on a skipped step");
    ck_assert_msg(memcmp(v0, opt.v, bytes) == 0, "Adam v changed on a skipped step");

    // A NaN is an overflow too.
    grads_for(&m, ls.scale);
    ((float *)m.grads)[0] = NAN;
    ck_assert_int_eq(qt_optimizer_step(&opt, &m, 1e-3f, ls.scale, &norm, &skipped), QT_OK);
    ck_assert_int_eq(skipped, 1);
    qt_loss_scaler_update(&ls, skipped);
    ck_assert(ls.scale == 16384.0f);

    // Without scaling (fp32, bf16) a non-finite gradient is a diverged run: an error.
    grads_for(&m, 1.0f);
    ((float *)m.grads)[0] = INFINITY;
    ck_assert_int_eq(qt_optimizer_step(&opt, &m, 1e-3f, 1.0f, &norm, &skipped), QT_ERR_ARG);
    free(p0);
    free(m0);
    free(v0);
    qt_optimizer_free(&opt, &m);
    qt_model_free(&m);
    qt_backend_free(&be);
}
END_TEST

START_TEST(test_scale_grows_after_clean_window) {
    qt_config cfg;
    tiny(&cfg);
    qt_loss_scaler ls;
    qt_loss_scaler_init(&ls, &cfg, QT_DTYPE_F16);
    for (int i = 0; i < 2; i++) qt_loss_scaler_update(&ls, 0);
    ck_assert(ls.scale == 65536.0f);
    qt_loss_scaler_update(&ls, 0); // third clean step: window of 3 complete
    ck_assert(ls.scale == 131072.0f);
    qt_loss_scaler_update(&ls, 1);
    ck_assert(ls.scale == 65536.0f);
    for (int i = 0; i < 2; i++) qt_loss_scaler_update(&ls, 0);
    ck_assert_msg(ls.scale == 65536.0f, "the window restarts after an overflow");
    qt_loss_scaler init_bf16;
    qt_loss_scaler_init(&init_bf16, &cfg, QT_DTYPE_BF16);
    ck_assert(!init_bf16.enabled && init_bf16.scale == 1.0f);
    qt_loss_scaler_update(&init_bf16, 1);
    ck_assert(init_bf16.scale == 1.0f && init_bf16.skipped == 0);
}
END_TEST

// Scaling the loss by S and unscaling in the optimizer gives the unscaled update.
START_TEST(test_scaled_step_equals_unscaled) {
    qt_config cfg;
    tiny(&cfg);
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    qt_model a, b;
    qt_optimizer oa, ob;
    ck_assert_int_eq(qt_model_init(&a, &cfg, &be, B, T), QT_OK);
    ck_assert_int_eq(qt_model_init(&b, &cfg, &be, B, T), QT_OK);
    ck_assert_int_eq(qt_optimizer_init(&oa, &a), QT_OK);
    ck_assert_int_eq(qt_optimizer_init(&ob, &b), QT_OK);
    double na, nb;
    grads_for(&a, 1.0f);
    grads_for(&b, 1024.0f);
    ck_assert_int_eq(qt_optimizer_step(&oa, &a, 1e-3f, 1.0f, &na, NULL), QT_OK);
    ck_assert_int_eq(qt_optimizer_step(&ob, &b, 1e-3f, 1024.0f, &nb, NULL), QT_OK);
    ck_assert_msg(fabs(na - nb) <= 1e-5 * na, "grad norm %.9g vs %.9g", na, nb);
    double err = qt_test_max_err(b.params, a.params, a.n_params, 1e-7, 1e-5);
    ck_assert_msg(err <= 1.0, "scaled update differs (error %.3g of tolerance)", err);
    qt_optimizer_free(&oa, &a);
    qt_optimizer_free(&ob, &b);
    qt_model_free(&a);
    qt_model_free(&b);
    qt_backend_free(&be);
}
END_TEST

int main(void) {
    Suite *s = suite_create("loss_scaler");
    TCase *tc = tcase_create("loss_scaler");
    tcase_add_test(tc, test_inf_skips_step_and_halves_scale);
    tcase_add_test(tc, test_scale_grows_after_clean_window);
    tcase_add_test(tc, test_scaled_step_equals_unscaled);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

// test_ptq.c: post-training quantization evaluation (host/eval/ptq.c, qtrain/ptq.h, PAPERS.md
// section 5) on tiny OPT-style models trained for a few dozen steps on synthetic shards:
// - the fake-quantized and the true INT8 GEMM path agree within 1% in perplexity (measured
//   difference printed), for W8A8 / W4A8 / W6A6, min-max and percentile activation ranges,
//   absmax and MSE weight ranges, tied (embedding output quantized) and untied embeddings,
//   gated attention (the gated context gets its own range) and plain attention, and the LLaMA
//   family (RMSNorm, RoPE, SwiGLU, no biases, untied head), and on a backend other than the
//   fp32 CPU one (the tests' double backend: every tensor copied through the host);
// - W8A8 stays within 25% of full precision; W4A8 and W6A6 move the perplexity further from
//   full precision than W8A8 (in either direction: quantization noise can lower the
//   perplexity of an under-trained model, as it does here for W4A8);
// - the reported FP perplexity equals plain qt_evaluate exactly, and afterwards the
//   parameters, hooks and a plain evaluation are bit for bit what they were;
// - bad configurations (0 calibration batches, bits outside 2..8, unknown presets, bad
//   ranges) are QT_ERR_ARG naming the field; a quantization-trained model is refused.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/data.h"
#include "qtrain/evaluate.h"
#include "qtrain/ptq.h"
#include "qtrain/trainer.h"
#include "f64_backend.h"
#include "testutil.h"

#define VOCAB 64

// A trained tiny model, its backend and the loaders PTQ needs.
typedef struct {
    char *dir;
    qt_backend be;
    qt_model model;
    qt_dataloader *train, *val;
} fixture;

static const char *const llama_sets[] = {"model.arch=llama",      "model.norm=rmsnorm",
                                         "model.pos=rope",        "model.activation=swiglu",
                                         "model.bias=0",          "model.tie_embeddings=0",
                                         "model.d_ff=88",         NULL};

// Trains a tiny model (gated or not, tied or not, then the settings of `extra`, NULL-ended)
// for `steps` steps and loads its checkpoint into an eval model, as `qtrain eval` does.
static void fixture_open_ex(fixture *f, int gated, int tied, int steps,
                            const char *const *extra) {
    memset(f, 0, sizeof *f);
    f->dir = qt_test_tmpdir("ptq");
    qt_test_write_synthetic_shards(f->dir);
    qt_config cfg;
    qt_config_defaults(&cfg);
    const char *sets[] = {"model.n_layer=2",     "model.d_model=32",     "model.n_head=2",
                          "model.d_ff=64",       "model.max_seq_len=16", "model.vocab_size=257",
                          "model.dropout=0",     "train.batch_size=8",   "train.seq_len=16",
                          "train.max_steps=40",  "train.warmup_steps=4", "train.lr=1e-2",
                          "train.eval_every=40", "train.eval_batches=1", "train.threads=2"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        ck_assert_msg(qt_config_set(&cfg, sets[i], "test") == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_config_set(&cfg, gated ? "attn.gate=linear" : "attn.gate=none", "t"),
                     QT_OK);
    ck_assert_int_eq(
        qt_config_set(&cfg, tied ? "model.tie_embeddings=1" : "model.tie_embeddings=0", "t"),
        QT_OK);
    char kv[64];
    snprintf(kv, sizeof kv, "train.max_steps=%d", steps);
    ck_assert_int_eq(qt_config_set(&cfg, kv, "t"), QT_OK);
    snprintf(kv, sizeof kv, "train.eval_every=%d", steps);
    ck_assert_int_eq(qt_config_set(&cfg, kv, "t"), QT_OK);
    for (int i = 0; extra && extra[i]; i++)
        ck_assert_msg(qt_config_set(&cfg, extra[i], "test") == QT_OK, "%s", qt_last_error());
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", f->dir);
    char run[1100], ckpt[1200];
    snprintf(run, sizeof run, "%s/run", f->dir);
    qt_train_opts o = {.out_dir = run, .quiet = 1};
    ck_assert_msg(qt_train(&cfg, &o) == QT_OK, "%s", qt_last_error());
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.bin", run);
    qt_config ec;
    ck_assert_msg(qt_train_state_read_config(ckpt, &ec) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_backend_cpu_init(&f->be, 2), QT_OK);
    ck_assert_msg(qt_model_init(&f->model, &ec, &f->be, ec.batch_size, ec.seq_len) == QT_OK, "%s",
                  qt_last_error());
    ck_assert_msg(qt_train_state_load(ckpt, &f->model, NULL, NULL) == QT_OK, "%s",
                  qt_last_error());
    ck_assert_int_eq(qt_dataloader_open(&f->train, f->dir, "train", ec.batch_size, ec.seq_len,
                                        ec.vocab_size, ec.seed, 0),
                     QT_OK);
    ck_assert_int_eq(qt_dataloader_open(&f->val, f->dir, "val", ec.batch_size, ec.seq_len,
                                        ec.vocab_size, ec.seed, 0),
                     QT_OK);
}

static void fixture_open(fixture *f, int gated, int tied, int steps) {
    fixture_open_ex(f, gated, tied, steps, NULL);
}

static void fixture_close(fixture *f) {
    qt_dataloader_free(f->train);
    qt_dataloader_free(f->val);
    qt_model_free(&f->model);
    qt_backend_free(&f->be);
    qt_test_rmtree(f->dir);
    free(f->dir);
}

static qt_ptq_result run_ptq(fixture *f, const char *preset, qt_quant_range act,
                             qt_quant_range wr, const char *tag) {
    qt_ptq_config c = qt_ptq_config_default();
    ck_assert_int_eq(qt_ptq_config_preset(&c, preset), QT_OK);
    c.act_range = act;
    c.weight_range = wr;
    c.calib_batches = 4;
    c.eval_batches = 4;
    qt_ptq_result r;
    ck_assert_msg(qt_ptq_evaluate(&f->model, f->train, f->val, &c, &r) == QT_OK, "%s %s: %s",
                  tag, preset, qt_last_error());
    printf("ptq %-22s %s: fp %.4f  fake %.4f  int8 %.4f  |int8 - fake| / fake = %.3g (%s, %d "
           "weight tensors, %d ranges, %lld tokens)\n",
           tag, preset, r.fp_ppl, r.fake_ppl, r.int8_ppl, r.int8_vs_fake,
           r.int8_gemm ? r.int8_gemm : "-", r.weight_tensors, r.act_ranges, r.tokens);
    fflush(stdout);
    ck_assert_msg(isfinite(r.fp_ppl) && isfinite(r.fake_ppl) && isfinite(r.int8_ppl),
                  "%s %s: non-finite perplexity", tag, preset);
    ck_assert_msg(r.int8_linears == 4LL * 2 * c.eval_batches,
                  "%s %s: %lld INT8 GEMM calls, want 4 linears x 2 layers x %d batches", tag,
                  preset, r.int8_linears, c.eval_batches);
    ck_assert_msg(r.int8_vs_fake <= 0.01,
                  "%s %s: INT8 path ppl %.6f vs fake %.6f differ by %.3g > 1%%", tag, preset,
                  r.int8_ppl, r.fake_ppl, r.int8_vs_fake);
    return r;
}

static void host_params(const qt_model *m, float *out) {
    ck_assert_int_eq(m->be->ops->to_host_f32(m->be->ctx, out, m->params, m->n_float_params), QT_OK);
}

// The main acceptance: fake vs INT8, bit-width ordering, FP untouched. Tied embeddings and
// gated attention (the case where a linear's input, the gated context, is not a site).
START_TEST(test_presets_gated_tied) {
    fixture f;
    fixture_open(&f, 1, 1, 40);
    qt_model *m = &f.model;
    qt_eval_result plain;
    ck_assert_int_eq(qt_evaluate(m, f.val, 4, &plain), QT_OK);
    float *before = malloc(m->n_float_params * sizeof(float));
    float *after = malloc(m->n_float_params * sizeof(float));
    ck_assert(before && after);
    host_params(m, before);

    qt_ptq_result w8 = run_ptq(&f, "w8a8", QT_QUANT_RANGE_RUNNING, QT_QUANT_RANGE_ABSMAX,
                               "gated tied minmax");
    ck_assert_msg(w8.fp_ppl == plain.val_ppl && w8.fp_loss == plain.val_loss,
                  "ptq fp ppl %.9g != plain evaluation %.9g", w8.fp_ppl, plain.val_ppl);
    ck_assert_int_eq(w8.head_tied, 1);
    // 2 layers: 11 sites each + embedding + final norm, + the 4 linear inputs of each layer
    ck_assert_int_eq(w8.act_ranges, 2 * 11 + 2 + 2 * 4);
    // tied: wte kept; wpe, per layer ln1, qkv, proj, gate, ln2, fc1, fc2, and the final norm
    ck_assert_int_eq(w8.weight_tensors, 1 + 2 * 7 + 1);
    // the model learned something, and W8A8 costs little of it
    ck_assert_msg(w8.fp_ppl < 0.5 * VOCAB, "fp ppl %.3f: the tiny model did not train",
                  w8.fp_ppl);
    ck_assert_msg(w8.fake_ppl <= 1.25 * w8.fp_ppl,
                  "W8A8 ppl %.4f vs fp %.4f: more than 25%% worse", w8.fake_ppl, w8.fp_ppl);

    qt_ptq_result w4 = run_ptq(&f, "w4a8", QT_QUANT_RANGE_RUNNING, QT_QUANT_RANGE_ABSMAX,
                               "gated tied minmax");
    qt_ptq_result w6 = run_ptq(&f, "w6a6", QT_QUANT_RANGE_RUNNING, QT_QUANT_RANGE_ABSMAX,
                               "gated tied minmax");
    // Fewer bits add quantization noise, which moves the perplexity further from full
    // precision. (Not necessarily upwards: on this under-trained tiny model the noise of W4A8
    // lowers the perplexity below W8A8's, so only the distance from FP is asserted.)
    const double d8 = fabs(log(w8.fake_ppl / w8.fp_ppl)), d4 = fabs(log(w4.fake_ppl / w4.fp_ppl));
    const double d6 = fabs(log(w6.fake_ppl / w6.fp_ppl));
    ck_assert_msg(d4 >= d8, "W4A8 |log ppl ratio| %.4g below W8A8's %.4g", d4, d8);
    ck_assert_msg(d6 >= d8, "W6A6 |log ppl ratio| %.4g below W8A8's %.4g", d6, d8);
    ck_assert_msg(w4.fp_ppl == w8.fp_ppl && w6.fp_ppl == w8.fp_ppl,
                  "fp ppl changed between runs: %.9g %.9g %.9g", w8.fp_ppl, w4.fp_ppl,
                  w6.fp_ppl);

    // everything restored: parameters, hooks, a plain evaluation
    host_params(m, after);
    ck_assert_msg(memcmp(before, after, m->n_float_params * sizeof(float)) == 0,
                  "parameters differ after qt_ptq_evaluate");
    ck_assert_ptr_null(m->hooks);
    qt_eval_result again;
    ck_assert_int_eq(qt_evaluate(m, f.val, 4, &again), QT_OK);
    ck_assert_msg(again.val_loss == plain.val_loss, "plain eval after ptq %.9g != before %.9g",
                  again.val_loss, plain.val_loss);
    qt_eval_result_free(&again);
    qt_eval_result_free(&plain);
    free(before);
    free(after);
    fixture_close(&f);
}
END_TEST

// Percentile activation ranges and MSE weight ranges; untied embeddings (the embedding matrix
// quantized, the head kept) and ungated attention (every linear input is a site).
START_TEST(test_ranges_untied_ungated) {
    fixture f;
    fixture_open(&f, 0, 0, 40);
    qt_ptq_result a = run_ptq(&f, "w8a8", QT_QUANT_RANGE_PERCENTILE, QT_QUANT_RANGE_MSE,
                              "plain untied pct+mse");
    ck_assert_int_eq(a.head_tied, 0);
    // no embedding-output range when untied: 11 sites per layer + final norm + 4 inputs
    ck_assert_int_eq(a.act_ranges, 2 * 11 + 1 + 2 * 4);
    // wte, wpe, per layer ln1, qkv, proj, ln2, fc1, fc2, final norm (lm_head kept)
    ck_assert_int_eq(a.weight_tensors, 2 + 2 * 6 + 1);
    ck_assert_msg(a.fake_ppl <= 1.25 * a.fp_ppl, "W8A8 ppl %.4f vs fp %.4f", a.fake_ppl,
                  a.fp_ppl);
    qt_ptq_result b = run_ptq(&f, "w8a8", QT_QUANT_RANGE_RUNNING, QT_QUANT_RANGE_ABSMAX,
                              "plain untied minmax");
    ck_assert_msg(b.fake_ppl <= 1.25 * b.fp_ppl, "W8A8 ppl %.4f vs fp %.4f", b.fake_ppl,
                  b.fp_ppl);
    run_ptq(&f, "w4a8", QT_QUANT_RANGE_RUNNING, QT_QUANT_RANGE_MSE, "plain untied minmax+mse");

    // A backend that is not the fp32 CPU one (the test's double-precision backend): sites and
    // linear inputs go through to_host_f32 / to_device_f32 copies. Same answers up to the
    // float-vs-double arithmetic of the model.
    qt_backend be64;
    qt_model m64;
    char ckpt[1200];
    snprintf(ckpt, sizeof ckpt, "%s/run/ckpt.bin", f.dir);
    ck_assert_int_eq(qt_test_f64_backend_init(&be64), QT_OK);
    ck_assert_msg(qt_model_init(&m64, &f.model.cfg, &be64, f.model.B, f.model.T) == QT_OK, "%s",
                  qt_last_error());
    ck_assert_msg(qt_train_state_load(ckpt, &m64, NULL, NULL) == QT_OK, "%s", qt_last_error());
    qt_ptq_config c = qt_ptq_config_default();
    c.calib_batches = 4;
    c.eval_batches = 4;
    qt_ptq_result r64;
    ck_assert_msg(qt_ptq_evaluate(&m64, f.train, f.val, &c, &r64) == QT_OK, "%s",
                  qt_last_error());
    printf("ptq %-22s w8a8: fp %.4f  fake %.4f  int8 %.4f  |int8 - fake| / fake = %.3g\n",
           "f64 backend (copies)", r64.fp_ppl, r64.fake_ppl, r64.int8_ppl, r64.int8_vs_fake);
    fflush(stdout);
    ck_assert_msg(r64.int8_vs_fake <= 0.01 && r64.int8_linears == 4LL * 2 * 4,
                  "f64 backend: int8 %.6f vs fake %.6f (%lld INT8 GEMMs)", r64.int8_ppl,
                  r64.fake_ppl, r64.int8_linears);
    ck_assert_msg(fabs(r64.fp_ppl - b.fp_ppl) <= 1e-4 * b.fp_ppl &&
                      fabs(r64.fake_ppl - b.fake_ppl) <= 0.01 * b.fake_ppl,
                  "f64 backend fp %.6f fake %.6f vs cpu fp %.6f fake %.6f", r64.fp_ppl,
                  r64.fake_ppl, b.fp_ppl, b.fake_ppl);
    qt_model_free(&m64);
    qt_test_f64_backend_free(&be64);
    fixture_close(&f);
}
END_TEST

// The LLaMA family: RMSNorm gains quantized like LayerNorm's, SwiGLU's fc1 (2F, C) and fc2
// input (its product) through the INT8 GEMM, RoPE'd q/k as the QKV site, untied head kept.
START_TEST(test_llama) {
    fixture f;
    fixture_open_ex(&f, 0, 0, 40, llama_sets);
    qt_ptq_result a = run_ptq(&f, "w8a8", QT_QUANT_RANGE_RUNNING, QT_QUANT_RANGE_ABSMAX,
                              "llama untied minmax");
    ck_assert_int_eq(a.head_tied, 0);
    ck_assert_int_eq(a.act_ranges, 2 * 11 + 1 + 2 * 4);
    // wte (no position table), per layer 2 norms + 4 linears, final norm; lm_head kept
    ck_assert_int_eq(a.weight_tensors, 1 + 2 * 6 + 1);
    ck_assert_msg(a.fake_ppl <= 1.25 * a.fp_ppl, "W8A8 ppl %.4f vs fp %.4f", a.fake_ppl,
                  a.fp_ppl);
    qt_ptq_result b = run_ptq(&f, "w4a8", QT_QUANT_RANGE_RUNNING, QT_QUANT_RANGE_ABSMAX,
                              "llama untied minmax");
    ck_assert_msg(fabs(log(b.fake_ppl / b.fp_ppl)) >= fabs(log(a.fake_ppl / a.fp_ppl)),
                  "llama: W4A8 ppl %.4f closer to fp %.4f than W8A8 %.4f", b.fake_ppl, b.fp_ppl,
                  a.fake_ppl);
    run_ptq(&f, "w6a6", QT_QUANT_RANGE_PERCENTILE, QT_QUANT_RANGE_MSE, "llama untied pct+mse");
    fixture_close(&f);
}
END_TEST

// The int8 path can be skipped; bad configurations are clear errors and change nothing.
START_TEST(test_bad_config) {
    qt_ptq_config c = qt_ptq_config_default();
    ck_assert_int_eq(c.weight_bits, 8);
    ck_assert_int_eq(c.act_bits, 8);
    ck_assert_int_eq(c.calib_batches, 16);
    ck_assert_int_eq(qt_ptq_check(&c), QT_OK);
    ck_assert_int_eq(qt_ptq_config_preset(&c, "w4a8"), QT_OK);
    ck_assert(c.weight_bits == 4 && c.act_bits == 8);
    ck_assert_int_eq(qt_ptq_config_preset(&c, "w6a6"), QT_OK);
    ck_assert(c.weight_bits == 6 && c.act_bits == 6);
    ck_assert_int_eq(qt_ptq_config_preset(&c, "w3a3"), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "w8a8, w4a8 or w6a6"));
    ck_assert(c.weight_bits == 6 && c.act_bits == 6); // unchanged

    c = qt_ptq_config_default();
    c.calib_batches = 0;
    ck_assert_int_eq(qt_ptq_check(&c), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "calibration batches"));
    c = qt_ptq_config_default();
    c.weight_bits = 9;
    ck_assert_int_eq(qt_ptq_check(&c), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "weight bits = 9"));
    c = qt_ptq_config_default();
    c.act_bits = 1;
    ck_assert_int_eq(qt_ptq_check(&c), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "activation bits = 1"));
    c = qt_ptq_config_default();
    c.weight_range = QT_QUANT_RANGE_RUNNING;
    ck_assert_int_eq(qt_ptq_check(&c), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "use absmax or mse"));
    c.weight_range = (qt_quant_range)40; // no such method: refused, not shifted past 32 bits
    ck_assert_int_eq(qt_ptq_check(&c), QT_ERR_ARG);
    c = qt_ptq_config_default();
    c.act_range = QT_QUANT_RANGE_ABSMEAN;
    ck_assert_int_eq(qt_ptq_check(&c), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "use minmax or percentile"));
    c = qt_ptq_config_default();
    c.act_range = QT_QUANT_RANGE_PERCENTILE;
    c.percentile = 30.0f;
    ck_assert_int_eq(qt_ptq_check(&c), QT_ERR_ARG);
    c = qt_ptq_config_default();
    c.eval_batches = 0;
    ck_assert_int_eq(qt_ptq_check(&c), QT_ERR_ARG);
    ck_assert_int_eq(qt_ptq_check(NULL), QT_ERR_ARG);

    // qt_ptq_evaluate refuses before touching the model
    fixture f;
    fixture_open(&f, 0, 1, 2);
    float *before = malloc(f.model.n_float_params * sizeof(float));
    float *after = malloc(f.model.n_float_params * sizeof(float));
    ck_assert(before && after);
    host_params(&f.model, before);
    c = qt_ptq_config_default();
    c.calib_batches = 0;
    qt_ptq_result r;
    ck_assert_int_eq(qt_ptq_evaluate(&f.model, f.train, f.val, &c, &r), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "calibration batches"));
    // fake path only
    c = qt_ptq_config_default();
    c.calib_batches = 2;
    c.eval_batches = 2;
    c.int8_path = 0;
    ck_assert_msg(qt_ptq_evaluate(&f.model, f.train, f.val, &c, &r) == QT_OK, "%s",
                  qt_last_error());
    ck_assert(isfinite(r.fake_ppl) && isnan(r.int8_ppl) && isnan(r.int8_vs_fake));
    ck_assert_ptr_null(r.int8_gemm);
    host_params(&f.model, after);
    ck_assert(memcmp(before, after, f.model.n_float_params * sizeof(float)) == 0);
    free(before);
    free(after);

    // a model whose own forward quantizes its linears (quant.mode != none) is refused
    qt_config qc = f.model.cfg;
    ck_assert_int_eq(qt_config_set(&qc, "quant.mode=qat", "test"), QT_OK);
    qt_model qm;
    ck_assert_msg(qt_model_init(&qm, &qc, &f.be, qc.batch_size, qc.seq_len) == QT_OK, "%s",
                  qt_last_error());
    c = qt_ptq_config_default();
    ck_assert_int_eq(qt_ptq_evaluate(&qm, f.train, f.val, &c, &r), QT_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "quant.mode = qat"));
    qt_model_free(&qm);
    fixture_close(&f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ptq");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_presets_gated_tied);
    tcase_add_test(tc, test_ranges_untied_ungated);
    tcase_add_test(tc, test_llama);
    tcase_add_test(tc, test_bad_config);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

// test_quant_train.c: quantized training on the CPU backend (quant.mode = qat, bitnet, dqt).
//
// - The block linears compute exactly what PAPERS.md sections 6-8 say: the forward multiplies
//   the quantized input by the quantized weight, the straight-through backward puts the
//   quantized gradient where quant.backward says (checked against the reference ops).
// - The qat INT8 GEMM forward agrees with the fake-quantized one.
// - DQT keeps its block weights as int8 codes only (no float copy in any arena), its forward
//   and backward are those of a model holding codes * scale, its codes stay on the grid, a
//   resumed run reproduces an uninterrupted one, and ternary DQT on a tiny LLaMA lowers the
//   validation loss far below its initial value.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/model/qlinear.h"
#include "qtrain/checkpoint.h"
#include "qtrain/data.h"
#include "qtrain/evaluate.h"
#include "kernels/int8_gemm.h"
#include "qtrain/optimizer.h"
#include "qtrain/trainer.h"
#include "expect_error.h"
#include "testutil.h"
#include "kernels/linear.h"
#include "kernels/quant.h"

static void set_all(qt_config *cfg, const char *const *sets, size_t n) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(qt_config_set(cfg, sets[i], "test") == QT_OK, "%s: %s", sets[i],
                      qt_last_error());
}

// A tiny LLaMA (RMSNorm, RoPE, SwiGLU, no biases, untied head) over the synthetic corpus.
static void tiny_llama(qt_config *cfg, const char *data_dir) {
    qt_config_defaults(cfg);
    const char *sets[] = {
        "model.arch=llama",      "model.norm=rmsnorm",     "model.pos=rope",
        "model.activation=swiglu", "model.bias=0",         "model.tie_embeddings=0",
        "model.n_layer=2",       "model.d_model=32",       "model.n_head=2",
        "model.d_ff=48",         "model.max_seq_len=16",   "model.vocab_size=257",
        "train.batch_size=8",    "train.seq_len=16",       "train.max_steps=12",
        "train.warmup_steps=5",  "train.lr=5e-3",          "train.log_every=1",
        "train.eval_every=0",    "train.eval_batches=4",   "train.threads=2",
        "train.weight_decay=0.01", "train.eps=1e-6",
    };
    set_all(cfg, sets, sizeof sets / sizeof sets[0]);
    if (data_dir) snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", data_dir);
}

static void random_tokens(int *tok, int n, int V, uint64_t seed) {
    float *u = malloc((size_t)n * sizeof(float));
    qt_test_fill_uniform(u, (size_t)n, 0.0f, 1.0f, seed);
    for (int i = 0; i < n; i++) tok[i] = (int)(u[i] * (float)(V - 1));
    free(u);
}

static double rel_err(double got, double want) {
    return fabs(got - want) / fmax(fabs(want), 1e-30);
}

// ---- the block linear against the reference ops -----------------------------------------

// One block linear (layer 0, QKV: IC = C, OC = 3C) of a model in `mode`, against
// qt_cpu_linear_* on qt_cpu_quant_fake'd operands computed here from the same quantizers.
static void check_linear(const char *const *sets, size_t nsets, const qt_quant_params *wq,
                         const qt_quant_params *aq, const qt_quant_params *gq, int dx_placement) {
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    qt_config cfg;
    tiny_llama(&cfg, NULL);
    cfg.quant_mode = QT_QMODE_QAT;
    set_all(&cfg, sets, nsets);
    qt_model m;
    ck_assert_msg(qt_model_init(&m, &cfg, &be, 2, 16) == QT_OK, "%s", qt_last_error());
    int N = 29, IC = cfg.d_model, OC = 3 * cfg.d_model; // N < B*T: a partial batch
    size_t nx = (size_t)N * IC, nw = (size_t)OC * IC, ny = (size_t)N * OC;
    float *x = qt_test_falloc(nx), *w = qt_test_falloc(nw), *g = qt_test_falloc(ny);
    qt_test_fill_uniform(x, nx, -2.0f, 2.0f, 1);
    qt_test_fill_uniform(w, nw, -0.3f, 0.3f, 2);
    qt_test_fill_uniform(g, ny, -1e-3f, 1e-3f, 3);
    x[5] = 7.5f; // an outlier: per-token ranges matter
    float *out = qt_test_falloc(ny), *dx = qt_test_falloc(nx), *dw = qt_test_falloc(nw);
    float *db = qt_test_falloc((size_t)OC);
    memset(dx, 0, nx * sizeof(float));
    memset(dw, 0, nw * sizeof(float));
    memset(db, 0, (size_t)OC * sizeof(float));
    qt_test_poison(out, ny);
    ck_assert_msg(qt_qlinear_fwd(&m, 0, QT_LINEAR_QKV, out, x, w, NULL, N, IC, OC) == QT_OK, "%s",
                  qt_last_error());
    ck_assert_msg(qt_qlinear_bwd(&m, 0, QT_LINEAR_QKV, dx, dw, db, g, x, w, N, IC, OC) == QT_OK,
                  "%s", qt_last_error());

    // Reference: the same quantizers (with the streams the model uses are irrelevant here: the
    // quantizers under test round to nearest).
    float *xq = qt_test_falloc(nx), *wqv = qt_test_falloc(nw), *gqv = qt_test_falloc(ny);
    memcpy(xq, x, nx * sizeof(float));
    memcpy(wqv, w, nw * sizeof(float));
    memcpy(gqv, g, ny * sizeof(float));
    if (aq) ck_assert_int_eq(qt_cpu_quant_fake(aq, NULL, xq, x, (size_t)N, (size_t)IC), QT_OK);
    if (wq) ck_assert_int_eq(qt_cpu_quant_fake(wq, NULL, wqv, w, (size_t)OC, (size_t)IC), QT_OK);
    if (gq) ck_assert_int_eq(qt_cpu_quant_fake(gq, NULL, gqv, g, (size_t)N, (size_t)OC), QT_OK);
    float *ref = qt_test_falloc(ny), *rdx = qt_test_falloc(nx), *rdw = qt_test_falloc(nw);
    float *rdb = qt_test_falloc((size_t)OC);
    memset(rdx, 0, nx * sizeof(float));
    memset(rdw, 0, nw * sizeof(float));
    memset(rdb, 0, (size_t)OC * sizeof(float));
    QT_EXPECT_OK(qt_cpu_linear_fwd(ref, xq, wqv, NULL, N, IC, OC));
    // default placement: dW = G_q^T X_q, dX = G W_q; SwitchBack: dX = G_q W_q, dW = G^T X_q
    QT_EXPECT_OK(qt_cpu_linear_bwd(NULL, rdw, NULL, dx_placement ? g : gqv, xq, wqv, N, IC, OC));
    QT_EXPECT_OK(qt_cpu_linear_bwd(rdx, NULL, rdb, dx_placement ? gqv : g, xq, wqv, N, IC, OC));
    if (dx_placement) {
        // db comes from the unquantized G in both placements.
        memset(rdb, 0, (size_t)OC * sizeof(float));
        QT_EXPECT_OK(qt_cpu_linear_bwd(NULL, NULL, rdb, g, xq, wqv, N, IC, OC));
    }
    double e_out = qt_test_max_err(out, ref, ny, 1e-6, 1e-5);
    double e_dx = qt_test_max_err(dx, rdx, nx, 1e-9, 1e-5);
    double e_dw = qt_test_max_err(dw, rdw, nw, 1e-9, 1e-5);
    double e_db = qt_test_max_err(db, rdb, (size_t)OC, 1e-9, 1e-5);
    ck_assert_msg(e_out <= 1.0 && e_dx <= 1.0 && e_dw <= 1.0 && e_db <= 1.0,
                  "%s: out %g dx %g dw %g db %g (in tolerance units)", sets[0], e_out, e_dx, e_dw,
                  e_db);
    // The quantization did something: the fake-quantized result differs from the float one.
    float *plain = qt_test_falloc(ny);
    QT_EXPECT_OK(qt_cpu_linear_fwd(plain, x, w, NULL, N, IC, OC));
    ck_assert_msg(qt_test_max_err(out, plain, ny, 1e-6, 1e-5) > 1.0,
                  "%s: quantized output equals the float one", sets[0]);
    free(plain);
    free(x), free(w), free(g), free(out), free(dx), free(dw), free(db);
    free(xq), free(wqv), free(gqv), free(ref), free(rdx), free(rdw), free(rdb);
    qt_model_free(&m);
    qt_backend_free(&be);
}

START_TEST(test_qat_linear_is_ste_with_quantized_dw) {
    const char *sets[] = {"quant.w_bits=4", "quant.w_granularity=row", "quant.a_bits=6",
                          "quant.a_granularity=row", "quant.g_bits=5", "quant.g_granularity=row",
                          "quant.backward=dw", "quant.int8_gemm=0"};
    qt_quant_params w = qt_quant_params_default(4), a = qt_quant_params_default(6);
    qt_quant_params g = qt_quant_params_default(5);
    w.granularity = a.granularity = g.granularity = QT_QUANT_PER_ROW;
    g.floor = 1e-9f;
    check_linear(sets, sizeof sets / sizeof sets[0], &w, &a, &g, 0);
}
END_TEST

START_TEST(test_qat_linear_switchback_quantizes_dx) {
    const char *sets[] = {"quant.w_bits=8", "quant.w_granularity=tensor", "quant.a_bits=8",
                          "quant.a_granularity=group", "quant.a_group=8", "quant.a_symmetric=0",
                          "quant.g_bits=8", "quant.backward=dx", "quant.int8_gemm=0"};
    qt_quant_params w = qt_quant_params_default(8), a = qt_quant_params_default(8);
    qt_quant_params g = qt_quant_params_default(8);
    a.granularity = QT_QUANT_PER_GROUP;
    a.group_size = 8;
    a.symmetric = 0;
    g.granularity = QT_QUANT_PER_ROW;
    g.floor = 1e-9f;
    check_linear(sets, sizeof sets / sizeof sets[0], &w, &a, &g, 1);
}
END_TEST

// The same with the INT8 GEMM on: the forward (W and X 8-bit) and SwitchBack's dX (G 8-bit per
// token, W 8-bit per tensor) run on integers and still equal the fake-quantized reference.
START_TEST(test_qat_linear_int8_forward_and_switchback_dx) {
    const char *sets[] = {"quant.w_bits=8", "quant.w_granularity=tensor", "quant.a_bits=8",
                          "quant.a_granularity=row", "quant.g_bits=8", "quant.g_granularity=row",
                          "quant.backward=dx", "quant.int8_gemm=1"};
    qt_quant_params w = qt_quant_params_default(8), a = qt_quant_params_default(8);
    qt_quant_params g = qt_quant_params_default(8);
    a.granularity = g.granularity = QT_QUANT_PER_ROW;
    g.floor = 1e-9f;
    check_linear(sets, sizeof sets / sizeof sets[0], &w, &a, &g, 1);
}
END_TEST

START_TEST(test_bitnet_linear_is_ternary_times_8bit) {
    const char *sets[] = {"quant.mode=bitnet"};
    qt_quant_params w = qt_quant_params_default(QT_QUANT_TERNARY);
    w.range = QT_QUANT_RANGE_ABSMEAN;
    qt_quant_params a = qt_quant_params_default(8);
    a.granularity = QT_QUANT_PER_ROW;
    check_linear(sets, 1, &w, &a, NULL, 0);
}
END_TEST

// ---- the qat INT8 forward -----------------------------------------------------------------

// out (rows, cols) = softmax of each row of z, in double, rounded to float.
static void softmax_rows(float *out, const float *z, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const float *zr = z + (size_t)r * cols;
        double mx = zr[0], s = 0.0;
        for (int j = 1; j < cols; j++) mx = zr[j] > mx ? zr[j] : mx;
        for (int j = 0; j < cols; j++) s += exp(zr[j] - mx);
        for (int j = 0; j < cols; j++) out[(size_t)r * cols + j] = (float)(exp(zr[j] - mx) / s);
    }
}

START_TEST(test_qat_int8_forward_matches_fake_quant) {
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    float loss[2];
    size_t nprobs = (size_t)32 * 257;
    float *probs[2] = {qt_test_falloc(nprobs), qt_test_falloc(nprobs)};
    for (int int8 = 0; int8 < 2; int8++) {
        qt_config cfg;
        tiny_llama(&cfg, NULL);
        const char *sets[] = {"quant.mode=qat", "quant.w_bits=8", "quant.a_bits=8",
                              "quant.w_granularity=row", "quant.a_granularity=row"};
        set_all(&cfg, sets, sizeof sets / sizeof sets[0]);
        cfg.q_int8_gemm = int8;
        qt_model m;
        ck_assert_msg(qt_model_init(&m, &cfg, &be, 2, 16) == QT_OK, "%s", qt_last_error());
        int tok[33];
        random_tokens(tok, 33, 257, 7);
        ck_assert_msg(qt_model_forward(&m, tok, tok + 1, 2, 16, &loss[int8]) == QT_OK, "%s",
                      qt_last_error());
        softmax_rows(probs[int8], m.logits, 32, 257); // the logits' probabilities
        qt_model_free(&m);
    }
    double e = rel_err(loss[1], loss[0]);
    double ep = qt_test_max_err(probs[1], probs[0], nprobs, 1e-7, 1e-4);
    printf("qat W8A8 loss: fake quant %.7f, INT8 GEMM (%s) %.7f, rel diff %.2e; "
           "probabilities within %.3g of the tolerance\n",
           loss[0], qt_cpu_gemm_s8_path(), loss[1], e, ep);
    ck_assert_msg(e <= 1e-5, "INT8 forward loss %.9g vs fake-quant %.9g", loss[1], loss[0]);
    ck_assert_msg(ep <= 1.0, "INT8 forward probabilities differ from fake quant: %g", ep);
    free(probs[0]);
    free(probs[1]);
    qt_backend_free(&be);
}
END_TEST

// ---- DQT ------------------------------------------------------------------------------------

static int is_block_linear(const char *name) {
    static const char *const suffix[] = {"qkv_proj.weight", "out_proj.weight", "fc1.weight",
                                         "fc2.weight"};
    size_t n = strlen(name);
    for (int i = 0; i < 4; i++) {
        size_t k = strlen(suffix[i]);
        if (n >= k && strcmp(name + n - k, suffix[i]) == 0 && strstr(name, "layers.")) return 1;
    }
    return 0;
}

START_TEST(test_dqt_weights_exist_only_as_int8) {
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    qt_config cfg, ref_cfg;
    tiny_llama(&cfg, NULL);
    ref_cfg = cfg;
    cfg.quant_mode = QT_QMODE_DQT;
    qt_model m, ref;
    ck_assert_msg(qt_model_init(&m, &cfg, &be, 2, 16) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_model_init(&ref, &ref_cfg, &be, 2, 16) == QT_OK, "%s", qt_last_error());

    // 1. Storage: every block linear is quantized and has no slot in the float arena, whose
    // size is exactly that of the other tensors; the codes are one byte per weight.
    size_t float_numel = 0, quant_numel = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const qt_tensor_info *t = &m.tensors[i];
        ck_assert_msg(t->quantized == is_block_linear(t->name), "%s: quantized = %d", t->name,
                      t->quantized);
        if (t->quantized)
            quant_numel += t->numel;
        else
            float_numel += (t->numel + 15) / 16 * 16;
    }
    ck_assert_uint_eq(m.n_float_params, float_numel);
    ck_assert_uint_lt(m.n_float_params, ref.n_float_params - quant_numel + 1);
    qt_model_memory mem;
    qt_model_memory_report(&m, &mem);
    ck_assert_uint_eq(mem.n_quantized, quant_numel);
    double bytes_per_weight = (double)mem.code_bytes / (double)mem.n_quantized;
    printf("dqt: %zu weights as int8 codes, %.4f bytes/weight; float arena %zu of %zu elements\n",
           mem.n_quantized, bytes_per_weight, m.n_float_params, ref.n_float_params);
    ck_assert_msg(bytes_per_weight < 1.05, "%.4f bytes per quantized weight", bytes_per_weight);
    qt_optimizer opt;
    ck_assert_int_eq(qt_optimizer_init(&opt, &m), QT_OK);
    ck_assert_ptr_null(opt.master); // fp32 backend: no master copy of anything

    // 2. The codes are ternary and use all three values.
    int8_t *codes = malloc(m.n_code_bytes);
    memcpy(codes, m.codes, m.n_code_bytes);
    int count[3] = {0};
    for (int i = 0; i < m.n_tensors; i++) {
        const qt_tensor_info *t = &m.tensors[i];
        if (!t->quantized) continue;
        ck_assert(m.code_scales[i] > 0.0f);
        for (size_t k = 0; k < t->numel; k++) {
            int q = codes[t->code_offset + k];
            ck_assert_msg(q >= -1 && q <= 1, "%s[%zu] = %d off the ternary grid", t->name, k, q);
            count[q + 1]++;
        }
    }
    ck_assert(count[0] > 0 && count[1] > 0 && count[2] > 0);

    // 3. Forward and backward are those of a model holding codes * scale, with 8-bit per-token
    // inputs: a qat reference with those weights and no weight quantizer.
    ref_cfg.quant_mode = QT_QMODE_QAT;
    ref_cfg.q_w.bits = 0;
    ref_cfg.q_int8_gemm = 0;
    qt_model_free(&ref);
    ck_assert_msg(qt_model_init(&ref, &ref_cfg, &be, 2, 16) == QT_OK, "%s", qt_last_error());
    float *rp = (float *)ref.params;
    for (int i = 0; i < m.n_tensors; i++) {
        const qt_tensor_info *t = &m.tensors[i], *rt = &ref.tensors[i];
        for (size_t k = 0; k < t->numel; k++)
            rp[rt->param_offset + k] = t->quantized
                                           ? (float)codes[t->code_offset + k] * m.code_scales[i]
                                           : ((float *)m.params)[t->param_offset + k];
    }
    int tok[33];
    random_tokens(tok, 33, 257, 11);
    float lq, lr;
    ck_assert_msg(qt_model_forward(&m, tok, tok + 1, 2, 16, &lq) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_model_forward(&ref, tok, tok + 1, 2, 16, &lr) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(lq == lr, "dqt loss %.9g vs codes*scale reference %.9g", lq, lr);
    ck_assert_int_eq(qt_model_backward(&m, 1.0f), QT_OK);
    ck_assert_int_eq(qt_model_backward(&ref, 1.0f), QT_OK);
    double e = qt_test_max_err((float *)m.grads, (float *)ref.grads, m.n_params, 1e-9, 1e-6);
    ck_assert_msg(e <= 1.0, "dqt gradients differ from the reference's: %g", e);

    // 4. A step moves codes, keeps them on the grid, and adds no float storage.
    ck_assert_int_eq(qt_optimizer_step(&opt, &m, 0.05f, 1.0f, NULL, NULL), QT_OK);
    size_t changed = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const qt_tensor_info *t = &m.tensors[i];
        if (!t->quantized) continue;
        for (size_t k = 0; k < t->numel; k++) {
            int q = m.codes[t->code_offset + k];
            ck_assert(q >= -1 && q <= 1);
            changed += q != codes[t->code_offset + k];
        }
    }
    ck_assert_msg(changed > 0, "a step with lr 0.05 changed no code");
    ck_assert_uint_eq(m.n_float_params, float_numel);
    free(codes);
    qt_optimizer_free(&opt, &m);
    qt_model_free(&m);
    qt_model_free(&ref);
    qt_backend_free(&be);
}
END_TEST

// Reads "val_loss" of the last eval line of metrics.jsonl.
static double last_val_loss(const char *run_dir) {
    char path[1200], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    double v = NAN;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"val_loss\":");
        if (p) v = strtod(p + 11, NULL);
    }
    fclose(f);
    return v;
}

// The validation loss of the model as initialised (what training starts from).
static double initial_val_loss(const qt_config *cfg) {
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    qt_model m;
    ck_assert_msg(qt_model_init(&m, cfg, &be, cfg->batch_size, cfg->seq_len) == QT_OK, "%s",
                  qt_last_error());
    qt_dataloader *val = NULL;
    ck_assert_msg(qt_dataloader_open(&val, cfg->data_dir, "val", cfg->batch_size, cfg->seq_len,
                                     cfg->vocab_size, cfg->seed, 0) == QT_OK,
                  "%s", qt_last_error());
    qt_eval_result r;
    ck_assert_msg(qt_evaluate(&m, val, cfg->eval_batches, &r) == QT_OK, "%s", qt_last_error());
    double loss = r.val_loss;
    qt_eval_result_free(&r);
    qt_dataloader_free(val);
    qt_model_free(&m);
    qt_backend_free(&be);
    return loss;
}

START_TEST(test_ternary_dqt_llama_lowers_val_loss) {
    char *dir = qt_test_tmpdir("dqt_learn");
    qt_test_write_synthetic_shards(dir);
    qt_config cfg;
    tiny_llama(&cfg, dir);
    const char *sets[] = {"quant.mode=dqt", "quant.dqt_bits=1", "train.max_steps=150",
                          "train.lr=2e-2", "train.warmup_steps=10", "train.min_lr=1e-3"};
    set_all(&cfg, sets, sizeof sets / sizeof sets[0]);
    ck_assert_int_eq(qt_config_validate(&cfg), QT_OK);
    double before = initial_val_loss(&cfg);
    char out[1100];
    snprintf(out, sizeof out, "%s/run", dir);
    qt_train_opts o = {.out_dir = out, .quiet = 1};
    ck_assert_msg(qt_train(&cfg, &o) == QT_OK, "%s", qt_last_error());
    double after = last_val_loss(out);
    // The corpus: 15 in 16 tokens follow from the previous one, the rest uniform over 64, so
    // the best possible loss is about 0.51 nats; the uniform guess is ln 257 = 5.55.
    printf("ternary dqt tiny llama: val loss %.4f at init -> %.4f after %d steps\n", before,
           after, cfg.max_steps);
    ck_assert_msg(after < 0.5 * before, "val loss %.4f -> %.4f: not far below", before, after);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

static void read_codes(const char *run_dir, const char *name, int8_t *out, size_t n, float *scale) {
    char path[1200], sname[128];
    snprintf(path, sizeof path, "%s/ckpt.bin", run_dir);
    snprintf(sname, sizeof sname, "%s.scale", name);
    qt_ckpt *ck = NULL;
    ck_assert_msg(qt_ckpt_read(path, &ck) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_ckpt_get(ck, name, QT_CKPT_I8, n, out) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_ckpt_get(ck, sname, QT_CKPT_F32, 1, scale) == QT_OK, "%s", qt_last_error());
    qt_ckpt_free(ck);
}

START_TEST(test_dqt_resume_is_bit_exact) {
    char *dir = qt_test_tmpdir("dqt_resume");
    qt_test_write_synthetic_shards(dir);
    qt_config cfg;
    tiny_llama(&cfg, dir);
    // The absmean rule exercises the dry-run pass and a scale that changes every step.
    const char *sets[] = {"quant.mode=dqt", "quant.dqt_bits=4", "quant.dqt_scale=absmean",
                          "train.max_steps=8"};
    set_all(&cfg, sets, sizeof sets / sizeof sets[0]);
    char full[1100], part[1100], ckpt[1200];
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(part, sizeof part, "%s/part", dir);
    qt_train_opts o_full = {.out_dir = full, .quiet = 1};
    ck_assert_msg(qt_train(&cfg, &o_full) == QT_OK, "%s", qt_last_error());
    qt_train_opts o_half = {.out_dir = part, .stop_at_step = 4, .quiet = 1};
    ck_assert_msg(qt_train(&cfg, &o_half) == QT_OK, "%s", qt_last_error());
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.bin", part);
    qt_train_opts o_rest = {.out_dir = part, .resume_from = ckpt, .quiet = 1};
    ck_assert_msg(qt_train(&cfg, &o_rest) == QT_OK, "%s", qt_last_error());
    const char *name = "decoder.layers.1.fc1.weight";
    size_t n = (size_t)2 * cfg.d_ff * cfg.d_model;
    int8_t *a = malloc(n), *b = malloc(n);
    float sa, sb;
    read_codes(full, name, a, n, &sa);
    read_codes(part, name, b, n, &sb);
    ck_assert_msg(memcmp(a, b, n) == 0 && sa == sb, "resumed DQT codes or scale differ");
    ck_assert_msg(last_val_loss(full) == last_val_loss(part), "final val loss differs");
    free(a);
    free(b);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

// qat with every quantizer on (W, A, G, Adam m and v) and bitnet both train.
START_TEST(test_qat_and_bitnet_train) {
    char *dir = qt_test_tmpdir("qat_learn");
    qt_test_write_synthetic_shards(dir);
    const char *modes[][8] = {
        {"quant.mode=qat", "quant.w_bits=8", "quant.a_bits=8", "quant.g_bits=8",
         "quant.g_rounding=stochastic", "quant.m_bits=8", "quant.v_bits=8", "quant.backward=dx"},
        {"quant.mode=bitnet", "quant.mode=bitnet", "quant.mode=bitnet", "quant.mode=bitnet",
         "quant.mode=bitnet", "quant.mode=bitnet", "quant.mode=bitnet", "quant.mode=bitnet"},
    };
    for (int k = 0; k < 2; k++) {
        qt_config cfg;
        tiny_llama(&cfg, dir);
        set_all(&cfg, modes[k], 8);
        const char *more[] = {"train.max_steps=80", "train.lr=1e-2"};
        set_all(&cfg, more, 2);
        double before = initial_val_loss(&cfg);
        char out[1100];
        snprintf(out, sizeof out, "%s/run%d", dir, k);
        qt_train_opts o = {.out_dir = out, .quiet = 1};
        ck_assert_msg(qt_train(&cfg, &o) == QT_OK, "%s", qt_last_error());
        double after = last_val_loss(out);
        printf("%s: val loss %.4f -> %.4f after %d steps\n", modes[k][0], before, after,
               cfg.max_steps);
        ck_assert_msg(after < 0.5 * before, "%s: val loss %.4f -> %.4f", modes[k][0], before,
                      after);
    }
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *quant_train_suite(void) {
    Suite *s = suite_create("quant_train");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_qat_linear_is_ste_with_quantized_dw);
    tcase_add_test(tc, test_qat_linear_switchback_quantizes_dx);
    tcase_add_test(tc, test_qat_linear_int8_forward_and_switchback_dx);
    tcase_add_test(tc, test_bitnet_linear_is_ternary_times_8bit);
    tcase_add_test(tc, test_qat_int8_forward_matches_fake_quant);
    tcase_add_test(tc, test_dqt_weights_exist_only_as_int8);
    tcase_add_test(tc, test_dqt_resume_is_bit_exact);
    tcase_add_test(tc, test_ternary_dqt_llama_lowers_val_loss);
    tcase_add_test(tc, test_qat_and_bitnet_train);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return qt_test_run_suite(quant_train_suite());
}

// test_encoder.c: the masked-LM encoder (model.arch = bert, qtrain/model.h) and its masking
// (qtrain/mlm.h).
//
// 0. Packing: [CLS] sentences [SEP]s [PAD]s, newlines dropped, types, lengths, repeatable.
// 1. Masking statistics on a large batch: 15% of the eligible tokens chosen, 80/10/10 within
//    3 standard errors; [CLS], [SEP] and padding never chosen; deterministic in (seed, stream).
// 2. Whole-model gradients in double (f64_backend.c) against central finite differences
//    (relative error <= 1e-6) for vanilla/clipped/ncs x none/linear/mlp gates on a tiny post-LN
//    encoder, plus pre-LN, no biases with dropout, and the composed attention path.
// 3. Padding is invisible: changing the padded positions' tokens and types leaves the loss and
//    every gradient bit-identical, the position embeddings of padded positions get exactly zero
//    gradient, and (composed path) every padding key gets exactly zero probability, under
//    vanilla, clipped and NCS, fused and composed.
// 4. NCS's N is each sequence's unpadded length: with Q = K = 0 every attended probability is
//    beta / len_b as the NCS map gives for N = len_b (composed), and the fused op's context is
//    (beta / len_b) times the sum of the real values.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "f64_backend.h"
#include "qtrain/data.h"
#include "qtrain/mlm.h"
#include "qtrain/model.h"
#include "testutil.h"

// ---- 1. masking ------------------------------------------------------------------------------

START_TEST(test_mlm_mask_statistics) {
    enum { SEQS = 1500, TT = 128 };
    const qt_mlm_tokens tk = qt_mlm_tokens_of(4100);
    ck_assert_int_eq(tk.n_text, 4096);
    ck_assert(tk.pad == 4096 && tk.cls == 4097 && tk.sep == 4098 && tk.mask == 4099);
    int tokens[TT], orig[TT], targets[TT];
    long eligible = 0, chosen = 0, masked = 0, randomized = 0, kept = 0;
    for (int s = 0; s < SEQS; s++) {
        const int len = 20 + (s * 37) % (TT - 19); // 20..128
        for (int t = 0; t < TT; t++) {
            tokens[t] = t >= len ? tk.pad : t == 0 ? tk.cls : t % 17 == 0 || t == len - 1
                                                            ? tk.sep
                                                            : (s * 131 + t * 7) % tk.n_text;
            orig[t] = tokens[t];
            eligible += t < len && tokens[t] < tk.n_text;
        }
        int n = qt_mlm_mask(&tk, 0.15f, 1337, qt_mlm_stream(0, (uint64_t)s), tokens, targets, len,
                            TT);
        int counted = 0;
        for (int t = 0; t < TT; t++) {
            if (targets[t] < 0) {
                ck_assert_msg(tokens[t] == orig[t], "seq %d pos %d: unchosen token changed", s, t);
                continue;
            }
            counted++;
            ck_assert_msg(t < len && orig[t] < tk.n_text,
                          "seq %d pos %d: a special or padding token (%d) was chosen", s, t,
                          orig[t]);
            ck_assert_int_eq(targets[t], orig[t]);
            if (tokens[t] == tk.mask) masked++;
            else if (tokens[t] == orig[t]) kept++;
            else {
                ck_assert_msg(tokens[t] >= 0 && tokens[t] < tk.n_text, "random token %d",
                              tokens[t]);
                randomized++;
            }
        }
        ck_assert_int_eq(n, counted);
        chosen += n;
    }
    const double p = (double)chosen / (double)eligible;
    const double se = sqrt(0.15 * 0.85 / (double)eligible);
    ck_assert_msg(fabs(p - 0.15) <= 3 * se, "chosen share %.5f of %ld, want 0.15 +- %.5f", p,
                  eligible, 3 * se);
    const double fm = (double)masked / chosen, fr = (double)randomized / chosen,
                 fk = (double)kept / chosen;
    const double se8 = sqrt(0.8 * 0.2 / chosen), se1 = sqrt(0.1 * 0.9 / chosen);
    ck_assert_msg(fabs(fm - 0.8) <= 3 * se8, "[MASK] share %.5f, want 0.8 +- %.5f", fm, 3 * se8);
    ck_assert_msg(fabs(fr - 0.1) <= 3 * se1, "random share %.5f, want 0.1 +- %.5f", fr, 3 * se1);
    ck_assert_msg(fabs(fk - 0.1) <= 3 * se1, "kept share %.5f, want 0.1 +- %.5f", fk, 3 * se1);

    // A pure function of (seed, stream): the same twice, another stream or seed differs.
    int a[TT], b[TT], ta[TT], tb[TT];
    for (int t = 0; t < TT; t++) a[t] = b[t] = t == 0 ? tk.cls : (t * 13) % tk.n_text;
    qt_mlm_mask(&tk, 0.15f, 7, qt_mlm_stream(3, 9), a, ta, TT, TT);
    qt_mlm_mask(&tk, 0.15f, 7, qt_mlm_stream(3, 9), b, tb, TT, TT);
    ck_assert(memcmp(a, b, sizeof a) == 0 && memcmp(ta, tb, sizeof ta) == 0);
    for (int t = 0; t < TT; t++) b[t] = t == 0 ? tk.cls : (t * 13) % tk.n_text;
    qt_mlm_mask(&tk, 0.15f, 7, qt_mlm_stream(4, 9), b, tb, TT, TT);
    ck_assert_msg(memcmp(ta, tb, sizeof ta) != 0, "another epoch gave the same masks");
}
END_TEST

// ---- packing: sentences into [CLS] s [SEP] ... [PAD] sequences ------------------------------

START_TEST(test_mlm_packing) {
    char *dir = qt_test_tmpdir("mlm_pack");
    char corpus[1024], data[1024];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    FILE *f = fopen(corpus, "w");
    ck_assert(f != NULL);
    enum { LINES = 300 };
    for (int i = 0; i < LINES; i++) // lines of 1..4 words, a few of 40: longer than a sequence
        for (int w = 0, n = i % 11 == 0 ? 40 : 1 + i % 4; w < n; w++)
            fprintf(f, "%s%s", w ? " " : "", w == n - 1 ? "amen.\n" : i % 2 ? "the" : "word");
    fclose(f);
    ck_assert_msg(qt_prepare(corpus, data, 260, 0.5, 0) == QT_OK, "%s", qt_last_error());
    { // prepare.json names the encoder's special ids and vocabulary
        char jpath[1100], json[4096];
        snprintf(jpath, sizeof jpath, "%s/prepare.json", data);
        FILE *jf = fopen(jpath, "r");
        ck_assert(jf != NULL);
        json[fread(json, 1, sizeof json - 1, jf)] = '\0';
        fclose(jf);
        ck_assert_msg(strstr(json, "\"mlm_special_tokens\": {\"pad\": 260, \"cls\": 261, "
                                   "\"sep\": 262, \"mask\": 263, \"model_vocab_size\": 264}"),
                      "prepare.json: %s", json);
    }
    enum { PB = 3, PT = 32 };
    qt_dataloader *dl = NULL;
    // the vocabulary must be the tokenizer's plus the specials
    ck_assert_int_eq(qt_dataloader_open_mlm(&dl, data, "train", PB, PT, 262, 0.15f, 5, 0),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "model.vocab_size = 264"));
    ck_assert_msg(qt_dataloader_open_mlm(&dl, data, "train", PB, PT, 264, 0.15f, 5, 0) == QT_OK,
                  "%s", qt_last_error());
    const qt_mlm_tokens tk = qt_mlm_tokens_of(264);
    qt_tokenizer *tok = NULL;
    char tpath[1100];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.bin", data);
    ck_assert_int_eq(qt_tokenizer_load(&tok, tpath), QT_OK);
    const uint64_t W = qt_dataloader_num_windows(dl);
    int in[PB * PT], tg[PB * PT], sentences = 0;
    long chosen = 0, eligible = 0;
    for (uint64_t bi = 0; bi < W / PB; bi++) {
        ck_assert_int_eq(qt_dataloader_next(dl, in, tg), QT_OK);
        const int *lens = qt_dataloader_lens(dl), *types = qt_dataloader_types(dl);
        ck_assert(lens && types);
        for (int b = 0; b < PB; b++) {
            const int *x = in + b * PT, *y = tg + b * PT, *ty = types + b * PT, len = lens[b];
            ck_assert_int_eq(x[0], tk.cls);
            ck_assert_int_le(len, PT);
            ck_assert_int_eq(x[len - 1], tk.sep);
            int seps = 0;
            for (int t = 0; t < PT; t++) {
                const int orig = y[t] >= 0 ? y[t] : x[t];
                if (t >= len) {
                    ck_assert_int_eq(x[t], tk.pad);
                    ck_assert_int_eq(ty[t], 0);
                    ck_assert_int_eq(y[t], -1);
                    continue;
                }
                ck_assert_int_eq(ty[t], seps > 0);
                if (orig == tk.sep) seps++;
                if (orig < tk.n_text) {
                    eligible++;
                    chosen += y[t] >= 0;
                    size_t nb;
                    const uint8_t *bytes = qt_tokenizer_token_bytes(tok, orig, &nb);
                    ck_assert_ptr_null(memchr(bytes, '\n', nb)); // newlines were dropped
                }
            }
            sentences += seps;
        }
    }
    // every line (cut into pieces of at most T - 2 tokens) once per epoch, sequences packed
    ck_assert_int_ge(sentences, LINES / 2 - 2);
    ck_assert_msg((double)sentences / (double)W > 1.5, "%d sentences in %llu sequences", sentences,
                  (unsigned long long)W);
    ck_assert_msg(chosen > 0.08 * eligible && chosen < 0.22 * eligible, "%ld of %ld chosen",
                  chosen, eligible);
    // resume: seek back gives the same masked batch
    qt_dataloader_rewind(dl);
    int in2[PB * PT], tg2[PB * PT];
    ck_assert_int_eq(qt_dataloader_next(dl, in, tg), QT_OK);
    qt_dataloader_rewind(dl);
    ck_assert_int_eq(qt_dataloader_next(dl, in2, tg2), QT_OK);
    ck_assert(memcmp(in, in2, sizeof in) == 0 && memcmp(tg, tg2, sizeof tg) == 0);
    qt_tokenizer_free(tok);
    qt_dataloader_free(dl);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

// ---- the tiny encoder ---------------------------------------------------------------------

typedef struct {
    const char *name;
    const char *sets[8];
    int composed; // hide the backend's fused attention op
} variant;

#define CLIPPED "attn.softmax=clipped", "attn.gamma=-0.03", "attn.zeta=1.05"
#define NCS "attn.softmax=ncs", "attn.eta=1.2", "attn.beta=0.6"
static const variant variants[] = {
    {"vanilla", {NULL}, 0},
    {"vanilla_gate_linear", {"attn.gate=linear", "attn.gate_pi_init=0.3", NULL}, 0},
    {"vanilla_gate_mlp", {"attn.gate=mlp", "attn.gate_n_hid=3", NULL}, 0},
    {"clipped", {CLIPPED, NULL}, 0},
    {"clipped_gate_linear", {CLIPPED, "attn.gate=linear", NULL}, 0},
    {"clipped_gate_mlp", {CLIPPED, "attn.gate=mlp", "attn.gate_n_hid=3", NULL}, 0},
    {"ncs", {NCS, NULL}, 0},
    {"ncs_gate_linear", {NCS, "attn.gate=linear", NULL}, 0},
    {"ncs_gate_mlp", {NCS, "attn.gate=mlp", "attn.gate_n_hid=3", NULL}, 0},
    {"pre_ln_ncs_gate_linear", {"model.norm_position=pre", NCS, "attn.gate=linear", NULL}, 0},
    {"no_bias_relu_dropout",
     {"model.bias=0", "model.activation=relu", "model.dropout=0.1", NULL},
     0},
    {"composed_clipped_gate_mlp", {CLIPPED, "attn.gate=mlp", "attn.gate_n_hid=3", NULL}, 1},
    {"composed_ncs_attn_dropout", {NCS, "model.attn_dropout=0.2", NULL}, 1},
};
#define N_VARIANTS ((int)(sizeof variants / sizeof variants[0]))

enum { B = 2, T = 7, VOCAB = 261 };
static const int lens[B] = {7, 4};

static qt_backend_ops composed_ops;
static void maybe_compose(qt_backend *be, int composed) {
    if (!composed) return;
    composed_ops = *be->ops;
    composed_ops.attention_flash_fwd = NULL;
    composed_ops.attention_flash_bwd = NULL;
    be->ops = &composed_ops;
}

static void tiny_config(qt_config *cfg, const char *const *sets) {
    qt_config_defaults(cfg);
    const char *base[] = {"model.arch=bert", "model.loss=mlm", "model.norm_position=post",
                          "model.n_layer=2", "model.d_model=16", "model.n_head=2",
                          "model.d_ff=24", "model.max_seq_len=8", "model.vocab_size=261",
                          "model.init_std=0.3", "train.seed=7", "train.seq_len=8"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        ck_assert_msg(qt_config_set(cfg, base[i], "test") == QT_OK, "%s", qt_last_error());
    for (int i = 0; sets && sets[i]; i++)
        ck_assert_msg(qt_config_set(cfg, sets[i], "test") == QT_OK, "%s: %s", sets[i],
                      qt_last_error());
}

// A packed batch: [CLS] text [SEP] text [SEP] [PAD]..., targets on a few text positions,
// types 0 through the first [SEP], 1 after it. `pad_tok`, `pad_type`: what padding holds.
static void tiny_batch(int *in, int *tg, int *types, int pad_tok, int pad_type) {
    const qt_mlm_tokens tk = qt_mlm_tokens_of(VOCAB);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const int i = b * T + t;
            const int first_sep = 3;
            in[i] = t == 0 ? tk.cls : t == first_sep || t == lens[b] - 1 ? tk.sep
                                                                          : (i * 7 + 3) % tk.n_text;
            types[i] = t <= first_sep ? 0 : 1;
            tg[i] = -1;
            if (t >= lens[b]) {
                in[i] = pad_tok;
                types[i] = pad_type;
            }
        }
    // chosen: text positions of both sequences, one of them masked, one randomized
    tg[1] = in[1];
    in[1] = tk.mask;
    tg[2] = in[2];
    in[2] = 11;
    tg[5] = in[5];
    tg[T + 1] = in[T + 1];
    in[T + 1] = tk.mask;
    tg[T + 2] = in[T + 2];
}

static void model_on(qt_model *m, qt_backend *be, const variant *v) {
    qt_config cfg;
    tiny_config(&cfg, v->sets);
    ck_assert_msg(qt_model_init(m, &cfg, be, B, T) == QT_OK, "%s: %s", v->name, qt_last_error());
    m->training = 1; // dropout (when configured) with a fixed stream is a fixed function
    m->dropout_stream = 3;
}

static double loss_f64(qt_model *m, const int *in, const int *tg) {
    float loss = 0.0f;
    ck_assert_msg(qt_model_forward(m, in, tg, B, T, &loss) == QT_OK, "%s", qt_last_error());
    const double *losses = qt_test_f64_ptr(m->be, m->losses);
    double sum = 0.0;
    for (int i = 0; i < B * T; i++)
        if (tg[i] >= 0) sum += losses[i];
    return sum / m->fwd_count;
}

// ---- 2. gradients ---------------------------------------------------------------------------

START_TEST(test_encoder_gradients_f64) {
    const variant *v = &variants[_i];
    qt_backend be;
    ck_assert_int_eq(qt_test_f64_backend_init(&be), QT_OK);
    maybe_compose(&be, v->composed);
    qt_model m;
    model_on(&m, &be, v);
    int in[B * T], tg[B * T], types[B * T];
    const qt_mlm_tokens tk = qt_mlm_tokens_of(VOCAB);
    tiny_batch(in, tg, types, tk.pad, 0);
    ck_assert_msg(qt_model_set_encoder_batch(&m, lens, types, B, T) == QT_OK, "%s",
                  qt_last_error());
    ck_assert_int_eq(qt_model_zero_grad(&m), QT_OK);
    loss_f64(&m, in, tg);
    ck_assert_int_eq(m.fwd_count, 5);
    ck_assert_msg(qt_model_backward(&m, 1.0f) == QT_OK, "%s", qt_last_error());
    double *g = malloc(m.n_params * sizeof(double));
    memcpy(g, qt_test_f64_ptr(&be, m.grads), m.n_params * sizeof(double));
    double *w = qt_test_f64_ptr(&be, m.params);
    const double h = 1e-5;
    int checked_tensors = 0;
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const qt_tensor_info *t = &m.tensors[ti];
        size_t step = t->numel > 8 ? t->numel / 8 : 1;
        double max_err = 0.0, max_ref = 0.0, worst_a = 0, worst_fd = 0;
        size_t worst = 0;
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
        double rel = max_err / (max_ref > 1e-9 ? max_ref : 1e-9);
        ck_assert_msg(rel <= 1e-6, "%s: %s[%zu]: analytic %.12g vs finite difference %.12g "
                      "(relative error %.3g)", v->name, t->name, worst, worst_a, worst_fd, rel);
        checked_tensors += max_ref > 1e-9;
    }
    // every tensor has a gradient: the check compared real numbers
    ck_assert_msg(checked_tensors == m.n_tensors, "%s: only %d of %d tensors had a gradient",
                  v->name, checked_tensors, m.n_tensors);
    ck_assert_int_ge(qt_model_find_tensor(&m, "bert.embeddings.token_type_embeddings.weight"), 0);
    ck_assert_int_ge(qt_model_find_tensor(&m, "cls.predictions.bias"), 0);
    free(g);
    qt_model_free(&m);
    qt_test_f64_backend_free(&be);
}
END_TEST

// ---- 3. padding ------------------------------------------------------------------------------

// Loss and a copy of the gradients of one forward + backward on the float CPU backend.
static float grads_of(qt_model *m, const int *in, const int *tg, const int *types, float *g) {
    ck_assert_msg(qt_model_set_encoder_batch(m, lens, types, B, T) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_model_zero_grad(m), QT_OK);
    float loss = 0.0f;
    ck_assert_msg(qt_model_forward(m, in, tg, B, T, &loss) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_model_backward(m, 1.0f) == QT_OK, "%s", qt_last_error());
    memcpy(g, m->grads, m->n_params * sizeof(float));
    return loss;
}

static const variant pad_variants[] = {
    {"vanilla", {NULL}, 0},
    {"clipped", {CLIPPED, NULL}, 0},
    {"ncs", {NCS, NULL}, 0},
    {"ncs_c_positive", {"attn.softmax=ncs", "attn.eta=1.0", "attn.beta=1.5", NULL}, 0},
    {"composed_vanilla", {NULL}, 1},
    {"composed_clipped", {CLIPPED, NULL}, 1},
    {"composed_ncs_c_positive_gate_mlp",
     {"attn.softmax=ncs", "attn.eta=1.0", "attn.beta=1.5", "attn.gate=mlp", NULL},
     1},
};

START_TEST(test_encoder_padding_invisible) {
    const variant *v = &pad_variants[_i];
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    maybe_compose(&be, v->composed);
    qt_model m;
    model_on(&m, &be, v);
    const qt_mlm_tokens tk = qt_mlm_tokens_of(VOCAB);
    int in[B * T], tg[B * T], types[B * T], in2[B * T], tg2[B * T], types2[B * T];
    tiny_batch(in, tg, types, tk.pad, 0);
    tiny_batch(in2, tg2, types2, 5, 1); // padding holds text token 5 of type 1 instead
    float *g1 = malloc(m.n_params * sizeof(float)), *g2 = malloc(m.n_params * sizeof(float));
    const float l1 = grads_of(&m, in, tg, types, g1);
    if (v->composed) {
        // every padding key of every row has probability exactly 0
        const int H = m.cfg.n_head;
        for (int l = 0; l < m.cfg.n_layer; l++) {
            const float *probs = m.acts[l].probs;
            for (int b = 0; b < B; b++)
                for (int r = 0; r < H * T; r++)
                    for (int j = lens[b]; j < T; j++) {
                        const float p = probs[((size_t)b * H * T + r) * T + j];
                        ck_assert_msg(p == 0.0f, "%s: layer %d seq %d row %d: padding key %d "
                                      "has probability %g", v->name, l, b, r, j, (double)p);
                    }
        }
    }
    const float l2 = grads_of(&m, in2, tg2, types2, g2);
    ck_assert_msg(memcmp(&l1, &l2, sizeof l1) == 0, "%s: loss %.9g with [PAD] vs %.9g with "
                  "other padding", v->name, (double)l1, (double)l2);
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const qt_tensor_info *t = &m.tensors[ti];
        for (size_t i = 0; i < t->numel; i++)
            ck_assert_msg(g1[t->offset + i] == g2[t->offset + i], "%s: %s[%zu]: gradient %.9g "
                          "with [PAD] vs %.9g with other padding", v->name, t->name, i,
                          (double)g1[t->offset + i], (double)g2[t->offset + i]);
    }
    // positions past the longest sequence are only ever padding: exactly zero gradient
    const int wpe = qt_model_find_tensor(&m, "bert.embeddings.position_embeddings.weight");
    ck_assert_int_ge(wpe, 0);
    const int C = m.cfg.d_model;
    for (int t = lens[0] > lens[1] ? lens[0] : lens[1]; t < T; t++)
        for (int c = 0; c < C; c++)
            ck_assert_msg(g1[m.tensors[wpe].offset + (size_t)t * C + c] == 0.0f,
                          "%s: padded position %d has a gradient", v->name, t);
    free(g1);
    free(g2);
    qt_model_free(&m);
    qt_backend_free(&be);
}
END_TEST

// ---- 4. NCS's N -----------------------------------------------------------------------------

START_TEST(test_encoder_ncs_n_is_sequence_length) {
    const variant v = {"composed_ncs", {NCS, NULL}, 1};
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    maybe_compose(&be, 1);
    qt_model m;
    model_on(&m, &be, &v);
    const int C = m.cfg.d_model, H = m.cfg.n_head;
    // Q = K = V = 0 in layer 0: every score is 0, so p = 1 / N and NCS gives beta / N.
    memset(m.p.layers[0].qkv_w, 0, (size_t)3 * C * C * sizeof(float));
    memset(m.p.layers[0].qkv_b, 0, (size_t)3 * C * sizeof(float));
    const qt_mlm_tokens tk = qt_mlm_tokens_of(VOCAB);
    int in[B * T], tg[B * T], types[B * T];
    tiny_batch(in, tg, types, tk.pad, 0);
    ck_assert_int_eq(qt_model_set_encoder_batch(&m, lens, types, B, T), QT_OK);
    ck_assert_msg(qt_model_forward(&m, in, tg, B, T, NULL) == QT_OK, "%s", qt_last_error());
    const float *probs = m.acts[0].probs;
    for (int b = 0; b < B; b++)
        for (int r = 0; r < H * T; r++)
            for (int j = 0; j < T; j++) {
                const float p = probs[((size_t)b * H * T + r) * T + j];
                const double want = j < lens[b] ? 0.6 / lens[b] : 0.0;
                ck_assert_msg(fabs(p - want) <= 1e-6, "seq %d (length %d) row %d key %d: "
                              "probability %.8f, want beta / len = %.8f", b, lens[b], r, j,
                              (double)p, want);
            }
    long long zeros, attended;
    ck_assert_int_eq(qt_model_zero_probs(&m, 0, &zeros, &attended), QT_OK);
    ck_assert_int_eq(attended, (long long)H * T * (lens[0] + lens[1]));
    ck_assert_int_eq(zeros, 0);
    qt_model_free(&m);
    qt_backend_free(&be);

    // The fused op (no probabilities to read): with Q = K = 0, each query's context is
    // (beta / len_b) sum_{j < len_b} v_j, which only N = len_b gives.
    ck_assert_int_eq(qt_backend_cpu_init(&be, 2), QT_OK);
    model_on(&m, &be, &v);
    memset(m.p.layers[0].qkv_w, 0, (size_t)2 * C * C * sizeof(float)); // q and k rows only
    memset(m.p.layers[0].qkv_b, 0, (size_t)2 * C * sizeof(float));
    ck_assert_int_eq(qt_model_set_encoder_batch(&m, lens, types, B, T), QT_OK);
    ck_assert_msg(qt_model_forward(&m, in, tg, B, T, NULL) == QT_OK, "%s", qt_last_error());
    ck_assert(m.fwd_fused);
    const float *qkv = m.acts[0].qkv, *ctx = m.acts[0].ctx;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double vsum = 0.0;
            for (int j = 0; j < lens[b]; j++) vsum += qkv[((size_t)b * T + j) * 3 * C + 2 * C + c];
            const double want = 0.6 / lens[b] * vsum;
            for (int t = 0; t < T; t++) {
                const float got = ctx[((size_t)b * T + t) * C + c];
                ck_assert_msg(fabs(got - want) <= 1e-5 * (1.0 + fabs(want)), "fused: seq %d "
                              "query %d channel %d: context %.8f, want (beta / %d) sum v = %.8f",
                              b, t, c, (double)got, lens[b], want);
            }
        }
    qt_model_free(&m);
    qt_backend_free(&be);
}
END_TEST

START_TEST(test_encoder_refusals) {
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 1), QT_OK);
    qt_config cfg;
    tiny_config(&cfg, NULL);
    qt_model m;
    ck_assert_int_eq(qt_model_init(&m, &cfg, &be, B, T), QT_OK);
    int in[B * T], tg[B * T], types[B * T];
    tiny_batch(in, tg, types, qt_mlm_tokens_of(VOCAB).pad, 0);
    // a forward before the batch's lengths are set
    ck_assert_int_eq(qt_model_forward(&m, in, tg, B, T, NULL), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "qt_model_set_encoder_batch"));
    const int bad_lens[B] = {0, 3};
    ck_assert_int_eq(qt_model_set_encoder_batch(&m, bad_lens, types, B, T), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "length 0"));
    types[3] = 2;
    ck_assert_int_eq(qt_model_set_encoder_batch(&m, lens, types, B, T), QT_ERR_ARG);
    qt_model_free(&m);
    // the config's relations
    tiny_config(&cfg, NULL);
    ck_assert_int_eq(qt_config_set(&cfg, "model.loss=clm", "test"), QT_OK);
    ck_assert_int_eq(qt_config_validate(&cfg), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "model.loss = mlm"));
    qt_config_defaults(&cfg);
    ck_assert_int_eq(qt_config_set(&cfg, "model.norm_position=post", "test"), QT_OK);
    ck_assert_int_eq(qt_config_validate(&cfg), QT_ERR_ARG);
    tiny_config(&cfg, NULL);
    ck_assert_int_eq(qt_config_set(&cfg, "model.tie_embeddings=0", "test"), QT_OK);
    ck_assert_int_eq(qt_config_validate(&cfg), QT_ERR_ARG);
    // a decoder has no encoder batch
    qt_config_defaults(&cfg);
    ck_assert_int_eq(qt_config_set(&cfg, "model.n_layer=1", "test"), QT_OK);
    ck_assert_int_eq(qt_model_init(&m, &cfg, &be, 1, 4), QT_OK);
    const int one[1] = {4};
    int zt[4] = {0};
    ck_assert_int_eq(qt_model_set_encoder_batch(&m, one, zt, 1, 4), QT_ERR_ARG);
    qt_model_free(&m);
    qt_backend_free(&be);
}
END_TEST

int main(void) {
    Suite *s = suite_create("encoder");
    TCase *tc = tcase_create("encoder");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_mlm_mask_statistics);
    tcase_add_test(tc, test_mlm_packing);
    tcase_add_loop_test(tc, test_encoder_gradients_f64, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_encoder_padding_invisible, 0,
                        (int)(sizeof pad_variants / sizeof pad_variants[0]));
    tcase_add_test(tc, test_encoder_ncs_n_is_sequence_length);
    tcase_add_test(tc, test_encoder_refusals);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

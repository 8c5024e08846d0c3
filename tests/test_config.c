// test_config.c: qt_config defaults, parsing, validation, write/load round trips and the presets
// in configs/ (found through $QT_SOURCE_DIR, which CTest sets; "." otherwise).
#include "qtrain/config.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/names.h"
#include "testutil.h"

// Every key with a value different from its default: the round-trip test writes a config
// holding these and checks that the file names exactly these keys and loads back equal.
// A key added to the table but not here fails test_write_names_every_key.
static const char *const every_key[][2] = {
    {"model.arch", "opt"},
    {"model.n_layer", "7"},
    {"model.d_model", "96"},
    {"model.n_head", "3"},
    {"model.d_ff", "333"},
    {"model.max_seq_len", "77"},
    {"model.vocab_size", "65536"},
    {"model.activation", "relu"},
    {"model.norm", "layernorm"},
    {"model.pos", "learned"},
    {"model.rope_theta", "500000"},
    {"model.loss", "clm"},
    {"model.norm_position", "pre"}, // post is bert's only, and this config is a decoder
    {"model.tie_embeddings", "0"},
    {"model.bias", "0"},
    {"model.init_std", "0.006"},
    {"model.dropout", "0.1"},
    {"model.attn_dropout", "0.3"},
    {"attn.softmax", "ncs"},
    {"attn.gamma", "-0.0234375"},
    {"attn.zeta", "1.1"},
    {"attn.alpha", "0"},
    {"attn.eta", "1.7"},
    {"attn.beta", "0.9"},
    {"attn.gate", "all_heads"},
    {"attn.gate_n_hid", "8"},
    {"attn.gate_pi_init", "0.25"},
    {"attn.sink", "learned"},
    {"train.batch_size", "3"},
    {"train.seq_len", "61"},
    {"train.grad_accum", "5"},
    {"train.max_steps", "123456"},
    {"train.lr", "3e-4"},
    {"train.min_lr", "1.5e-5"},
    {"train.warmup_steps", "17"},
    {"train.schedule", "constant"},
    {"train.beta1", "0.8"},
    {"train.beta2", "0.999"},
    {"train.eps", "1e-6"},
    {"train.weight_decay", "0.01"},
    {"train.decay_norm_weights", "1"},
    {"train.grad_clip", "0"},
    {"train.seed", "18446744073709551615"},
    {"train.threads", "2"},
    {"train.log_every", "3"},
    {"train.eval_every", "0"},
    {"train.eval_batches", "4"},
    {"train.ckpt_every", "50"},
    {"train.precision", "bf16"},
    {"train.loss_scale_init", "1024"},
    {"train.loss_scale_window", "100"},
    {"train.loss_scale_growth", "4"},
    {"train.loss_scale_backoff", "0.25"},
    {"quant.mode", "qat"},
    {"quant.w_bits", "4"},
    {"quant.w_granularity", "tensor"},
    {"quant.w_group", "64"},
    {"quant.w_rounding", "stochastic"},
    {"quant.w_symmetric", "0"},
    {"quant.w_range", "absmax"},
    {"quant.a_bits", "6"},
    {"quant.a_granularity", "group"},
    {"quant.a_group", "32"},
    {"quant.a_rounding", "nearest"},
    {"quant.a_symmetric", "1"},
    {"quant.a_range", "absmean"},
    {"quant.g_bits", "5"},
    {"quant.g_granularity", "row"},
    {"quant.g_group", "16"},
    {"quant.g_rounding", "stochastic"},
    {"quant.g_symmetric", "1"},
    {"quant.g_range", "absmax"},
    {"quant.m_bits", "3"},
    {"quant.m_granularity", "group"},
    {"quant.m_group", "128"},
    {"quant.m_rounding", "nearest"},
    {"quant.m_symmetric", "0"},
    {"quant.m_range", "absmax"},
    {"quant.v_bits", "7"},
    {"quant.v_granularity", "tensor"},
    {"quant.v_group", "256"},
    {"quant.v_rounding", "stochastic"},
    {"quant.v_symmetric", "1"},
    {"quant.v_range", "absmean"},
    {"quant.backward", "dx"},
    {"quant.int8_gemm", "0"},
    {"quant.dqt_bits", "4"},
    {"quant.dqt_scale", "absmean"},
    {"data.dir", "/tmp/some dir/#corpus \"x\"\\y"},
    {"data.mlm_prob", "0.2"},
    {"dist.bucket_mb", "0.5"},
    {"dist.zero", "1"},
    {"dist.timeout_s", "7"},
};
#define N_EVERY ((int)(sizeof(every_key) / sizeof(every_key[0])))

// A config with every key set away from its default (through qt_config_set).
static void set_every_key(qt_config *cfg) {
    qt_config_defaults(cfg);
    for (int i = 0; i < N_EVERY; i++) {
        char line[256];
        if (every_key[i][1][0] == '/') {
            // data.dir holds '#' and '"': quote it the way the file format wants.
            snprintf(line, sizeof line, "%s = \"/tmp/some dir/#corpus \\\"x\\\"\\\\y\"",
                     every_key[i][0]);
        } else {
            snprintf(line, sizeof line, "%s = %s", every_key[i][0], every_key[i][1]);
        }
        qt_status st = qt_config_set(cfg, line, "test");
        ck_assert_msg(st == QT_OK, "setting '%s' failed: %s", line, qt_last_error());
    }
    ck_assert_str_eq(cfg->data_dir, "/tmp/some dir/#corpus \"x\"\\y");
}

// Writes cfg to a file and returns its path (malloc'd, in dir).
static char *write_to_file(const qt_config *cfg, const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    ck_assert_ptr_nonnull(path);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    qt_status st = qt_config_write(cfg, f);
    ck_assert_msg(st == QT_OK, "qt_config_write: %s", qt_last_error());
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

static char *write_text(const char *dir, const char *name, const char *text) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    ck_assert_ptr_nonnull(path);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

static void assert_same(const qt_config *a, const qt_config *b, const char *what) {
    if (memcmp(a, b, sizeof *a) == 0) return;
    // Name the first differing key to make the failure readable.
    FILE *fa = tmpfile(), *fb = tmpfile();
    ck_assert_ptr_nonnull(fa);
    ck_assert_ptr_nonnull(fb);
    qt_config_write(a, fa);
    qt_config_write(b, fb);
    rewind(fa);
    rewind(fb);
    char la[1024], lb[1024];
    while (fgets(la, sizeof la, fa) && fgets(lb, sizeof lb, fb)) {
        ck_assert_msg(strcmp(la, lb) == 0, "%s: configs differ: '%s' vs '%s'", what, la, lb);
    }
    fclose(fa);
    fclose(fb);
    ck_abort_msg("%s: configs differ in bytes that qt_config_write does not show", what);
}

// Expects qt_config_set(assignment) to fail with QT_ERR_ARG, a message holding `needle`
// (and `needle2` if not NULL), and the config left unchanged.
static void expect_set_error(const char *assignment, const char *needle, const char *needle2) {
    qt_config cfg, before;
    qt_config_defaults(&cfg);
    before = cfg;
    qt_status st = qt_config_set(&cfg, assignment, "--set");
    ck_assert_msg(st == QT_ERR_ARG, "'%s' gave status %d (%s), want QT_ERR_ARG", assignment, st,
                  qt_last_error());
    const char *msg = qt_last_error();
    ck_assert_msg(strstr(msg, needle) != NULL, "'%s': message '%s' lacks '%s'", assignment, msg,
                  needle);
    ck_assert_msg(needle2 == NULL || strstr(msg, needle2) != NULL, "'%s': message '%s' lacks '%s'",
                  assignment, msg, needle2);
    ck_assert_msg(strncmp(msg, "--set: ", 7) == 0, "'%s': message '%s' does not name its origin",
                  assignment, msg);
    ck_assert_msg(memcmp(&cfg, &before, sizeof cfg) == 0, "'%s' changed the config", assignment);
}

// Expects qt_config_validate to fail with QT_ERR_ARG naming `needle` after the assignments.
static void expect_invalid(const char *const *assignments, int n, const char *needle) {
    qt_config cfg;
    qt_config_defaults(&cfg);
    for (int i = 0; i < n; i++) {
        qt_status st = qt_config_set(&cfg, assignments[i], "test");
        ck_assert_msg(st == QT_OK, "'%s': %s", assignments[i], qt_last_error());
    }
    qt_status st = qt_config_validate(&cfg);
    ck_assert_msg(st == QT_ERR_ARG, "after '%s' validate gave %d, want QT_ERR_ARG", assignments[0],
                  st);
    ck_assert_msg(strstr(qt_last_error(), needle) != NULL, "after '%s': message '%s' lacks '%s'",
                  assignments[0], qt_last_error(), needle);
}

static const char *source_dir(void) {
    const char *s = getenv("QT_SOURCE_DIR");
    return (s && *s) ? s : ".";
}

// ---------------------------------------------------------------------------------------

START_TEST(test_defaults_validate) {
    qt_config cfg;
    qt_config_defaults(&cfg);
    ck_assert_msg(qt_config_validate(&cfg) == QT_OK, "defaults invalid: %s", qt_last_error());
    ck_assert_int_eq(cfg.n_layer, 4);
    ck_assert_int_eq(cfg.d_model, 256);
    ck_assert_int_eq(cfg.n_head, 4);
    ck_assert_int_eq(cfg.vocab_size, 4096);
    ck_assert_int_eq(cfg.softmax, QT_SOFTMAX_VANILLA);
    ck_assert_int_eq(cfg.schedule, QT_SCHED_COSINE);
    ck_assert(cfg.eta == 1.03f && cfg.beta == 1.0f && cfg.attn_dropout == -1.0f);
    ck_assert(cfg.seed == 1337);
    ck_assert_str_eq(cfg.data_dir, "data/kjv");
}
END_TEST

START_TEST(test_set_every_key) {
    qt_config cfg;
    set_every_key(&cfg);
    ck_assert_int_eq(cfg.n_layer, 7);
    ck_assert_int_eq(cfg.vocab_size, 65536);
    ck_assert_int_eq(cfg.activation, QT_ACT_RELU);
    ck_assert_int_eq(cfg.softmax, QT_SOFTMAX_NCS);
    ck_assert_int_eq(cfg.gate, QT_GATE_ALL_HEADS);
    ck_assert_int_eq(cfg.schedule, QT_SCHED_CONSTANT);
    ck_assert(cfg.gamma == -0.0234375f);
    ck_assert(cfg.lr == 3e-4f);
    ck_assert(cfg.seed == UINT64_MAX);
    ck_assert_msg(qt_config_validate(&cfg) == QT_OK, "%s", qt_last_error());
    // Spaces are optional around '=' and around the value.
    ck_assert_int_eq(qt_config_set(&cfg, "model.n_layer=9", NULL), QT_OK);
    ck_assert_int_eq(cfg.n_layer, 9);
    ck_assert_int_eq(qt_config_set(&cfg, "  model.n_layer \t=  11  ", NULL), QT_OK);
    ck_assert_int_eq(cfg.n_layer, 11);
}
END_TEST

START_TEST(test_write_names_every_key) {
    qt_config cfg;
    set_every_key(&cfg);
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(qt_config_write(&cfg, f), QT_OK);
    rewind(f);
    int seen[N_EVERY] = {0};
    int n_lines = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '=');
        if (line[0] == '#' || !eq) continue;
        n_lines++;
        size_t klen = strcspn(line, " =");
        int found = 0;
        for (int i = 0; i < N_EVERY; i++) {
            if (strlen(every_key[i][0]) == klen && strncmp(line, every_key[i][0], klen) == 0) {
                seen[i]++;
                found = 1;
            }
        }
        ck_assert_msg(found, "qt_config_write wrote a key the test does not know: %s", line);
    }
    fclose(f);
    for (int i = 0; i < N_EVERY; i++) {
        ck_assert_msg(seen[i] == 1, "key %s written %d times", every_key[i][0], seen[i]);
    }
    ck_assert_int_eq(n_lines, N_EVERY);
}
END_TEST

START_TEST(test_round_trip) {
    char *dir = qt_test_tmpdir("config");
    qt_config want, got;

    qt_config_defaults(&want);
    char *path = write_to_file(&want, dir, "defaults.conf");
    set_every_key(&got); // start far from the defaults: every key must be overwritten
    ck_assert_msg(qt_config_load(&got, path) == QT_OK, "%s", qt_last_error());
    assert_same(&got, &want, "defaults");
    free(path);

    set_every_key(&want);
    path = write_to_file(&want, dir, "every.conf");
    qt_config_defaults(&got);
    ck_assert_msg(qt_config_load(&got, path) == QT_OK, "%s", qt_last_error());
    assert_same(&got, &want, "every key changed");
    free(path);

    // Random floats in every float key's range, bit-exact through the %g text.
    uint64_t seed = 42;
    for (int it = 0; it < 200; it++) {
        float u[16];
        qt_test_fill_uniform(u, 16, 1e-7f, 1.0f, seed + (uint64_t)it);
        qt_config_defaults(&want);
        want.init_std = u[0];
        want.dropout = u[1] * 0.99f;
        want.attn_dropout = u[2] * 0.5f;
        want.gamma = -u[3] * 1e-3f;
        want.zeta = 1.0f + u[4] * 1e5f;
        want.eta = 1.0f + u[5];
        want.beta = u[6];
        want.gate_pi_init = u[7] * 0.999f;
        want.lr = u[8] * 1e-2f;
        want.min_lr = want.lr * u[9];
        want.beta1 = u[10] * 0.99f;
        want.beta2 = u[11] * 0.99f;
        want.eps = u[12] * 1e-30f;
        want.weight_decay = u[13];
        want.grad_clip = u[14] * 1e3f;
        want.seed = (uint64_t)(u[15] * 1e18);
        ck_assert_msg(qt_config_validate(&want) == QT_OK, "iter %d: %s", it, qt_last_error());
        FILE *f = tmpfile();
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(qt_config_write(&want, f), QT_OK);
        rewind(f);
        qt_config_defaults(&got);
        char line[1024];
        int lineno = 0;
        while (fgets(line, sizeof line, f)) {
            lineno++;
            char *hash = strchr(line, '#');
            if (hash) *hash = '\0'; // no data.dir with '#' here
            if (!strchr(line, '=')) continue;
            ck_assert_msg(qt_config_set(&got, line, "rt") == QT_OK, "iter %d line %d: %s", it,
                          lineno, qt_last_error());
        }
        fclose(f);
        char what[64];
        snprintf(what, sizeof what, "random floats, seed %llu", (unsigned long long)(seed + it));
        assert_same(&got, &want, what);
    }
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_unknown_key_names_file_line) {
    char *dir = qt_test_tmpdir("config");
    char *path = write_text(dir, "x.conf",
                            "# a comment\n"
                            "model.n_layer = 3   # inline comment\n"
                            "\n"
                            "   \t\n"
                            "model.nlayer = 4\n");
    qt_config cfg, before;
    qt_config_defaults(&cfg);
    before = cfg;
    ck_assert_int_eq(qt_config_load(&cfg, path), QT_ERR_ARG);
    char want[1200];
    snprintf(want, sizeof want, "%s:5: unknown key 'model.nlayer'", path);
    ck_assert_msg(strstr(qt_last_error(), want) != NULL, "message '%s' lacks '%s'", qt_last_error(),
                  want);
    ck_assert_msg(strstr(qt_last_error(), "did you mean 'model.n_layer'") != NULL,
                  "message '%s' suggests no close key", qt_last_error());
    // A failed load leaves the config as it was (line 2 was good but is not applied).
    ck_assert_msg(memcmp(&cfg, &before, sizeof cfg) == 0, "a failed load changed the config");
    free(path);

    expect_set_error("n_head = 4", "unknown key 'n_head'", "model.n_head");
    expect_set_error("train.learning_rate = 1", "unknown key 'train.learning_rate'", NULL);
    expect_set_error("attn.softmx = ncs", "unknown key", "attn.softmax");

    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_load_format) {
    char *dir = qt_test_tmpdir("config");
    qt_config cfg;

    char *path = write_text(dir, "ok.conf",
                            "model.n_layer=3\n"
                            "  attn.softmax   =   clipped   # the clipped variant\n"
                            "data.dir = \"my #data\"  # quoted: '#' inside is kept\n"
                            "train.seed = 7");
    qt_config_defaults(&cfg);
    ck_assert_msg(qt_config_load(&cfg, path) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(cfg.n_layer, 3);
    ck_assert_int_eq(cfg.softmax, QT_SOFTMAX_CLIPPED);
    ck_assert_str_eq(cfg.data_dir, "my #data");
    ck_assert(cfg.seed == 7);
    free(path);

    path =
        write_text(dir, "dup.conf", "model.n_layer = 3\nmodel.d_model = 64\nmodel.n_layer = 4\n");
    qt_config_defaults(&cfg);
    ck_assert_int_eq(qt_config_load(&cfg, path), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "dup.conf:3") &&
                      strstr(qt_last_error(), "model.n_layer") && strstr(qt_last_error(), "line 1"),
                  "duplicate key message: %s", qt_last_error());
    free(path);

    path = write_text(dir, "noeq.conf", "model.n_layer 3\n");
    ck_assert_int_eq(qt_config_load(&cfg, path), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "noeq.conf:1") && strstr(qt_last_error(), "key = value"),
                  "missing '=' message: %s", qt_last_error());
    free(path);

    path = write_text(dir, "bad.conf", "\n\nmodel.n_head = 4x\n");
    ck_assert_int_eq(qt_config_load(&cfg, path), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "bad.conf:3: model.n_head = 4x"), "message: %s",
                  qt_last_error());
    free(path);

    char missing[1100];
    snprintf(missing, sizeof missing, "%s/none.conf", dir);
    ck_assert_int_eq(qt_config_load(&cfg, missing), QT_ERR_IO);
    ck_assert_msg(strstr(qt_last_error(), "none.conf"), "message: %s", qt_last_error());

    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_impossible_values_at_set) {
    expect_set_error("attn.gamma = 0.1", "attn.gamma = 0.1 is impossible", "gamma <= 0");
    expect_set_error("attn.zeta = 0.5", "attn.zeta = 0.5", "zeta >= 1");
    expect_set_error("attn.softmax = softclip", "attn.softmax = softclip", "vanilla|clipped|ncs");
    expect_set_error("attn.gate = mlp2", "attn.gate", "none|linear|mlp|all_heads");
    expect_set_error("model.activation = swish", "model.activation", "gelu|relu|swiglu");
    expect_set_error("train.schedule = Cosine", "train.schedule", "linear|cosine|constant");
    expect_set_error("model.norm = batchnorm", "model.norm", "layernorm|rmsnorm");
    expect_set_error("quant.mode = int4", "quant.mode", "none|qat|bitnet|dqt");
    expect_set_error("quant.dqt_bits = 9", "quant.dqt_bits", "ternary");
    expect_set_error("quant.w_bits = -1", "quant.w_bits", "0 (off)");
    expect_set_error("quant.a_granularity = channel", "quant.a_granularity", "tensor|row|group");
    // A name of the enum that this key does not take: the evaluation-only ranges.
    expect_set_error("quant.w_range = minmax", "quant.w_range", "one of absmax|absmean");
    expect_set_error("quant.g_range = mse", "quant.g_range", "one of absmax|absmean");
    expect_set_error("model.n_layer = 12x", "model.n_layer = 12x", "trailing 'x'");
    expect_set_error("model.n_layer = 1.5", "model.n_layer", NULL);
    expect_set_error("model.n_layer = ", "model.n_layer", "no value");
    expect_set_error("model.n_layer = 99999999999999999999", "model.n_layer", "int");
    expect_set_error("train.max_steps = 2147483648", "train.max_steps", NULL);
    expect_set_error("model.n_layer = 0", "model.n_layer = 0", "[1, 1024]");
    expect_set_error("model.n_layer = -3", "model.n_layer", NULL);
    expect_set_error("model.vocab_size = 256", "model.vocab_size", "[257, 65536]");
    expect_set_error("model.vocab_size = 65537", "model.vocab_size", NULL);
    expect_set_error("model.tie_embeddings = 2", "model.tie_embeddings", "0 (off) or 1 (on)");
    expect_set_error("model.dropout = 1", "model.dropout", "[0, 1)");
    expect_set_error("model.dropout = -0.1", "model.dropout", NULL);
    expect_set_error("model.attn_dropout = -2", "model.attn_dropout", NULL);
    expect_set_error("attn.gate_pi_init = 0", "attn.gate_pi_init", "(0, 1)");
    expect_set_error("attn.gate_pi_init = 1", "attn.gate_pi_init", NULL);
    expect_set_error("attn.eta = 0", "attn.eta", NULL);
    expect_set_error("attn.alpha = -1", "attn.alpha", NULL);
    expect_set_error("train.lr = 0", "train.lr", "> 0");
    expect_set_error("train.lr = nan", "train.lr", NULL);
    expect_set_error("train.lr = inf", "train.lr", NULL);
    expect_set_error("train.lr = 1e99", "train.lr", NULL);
    expect_set_error("train.lr = 0.001abc", "train.lr", "trailing 'abc'");
    expect_set_error("train.lr = fast", "train.lr = fast", "not a number");
    expect_set_error("train.beta1 = 1", "train.beta1", "[0, 1)");
    expect_set_error("train.beta2 = -0.5", "train.beta2", NULL);
    expect_set_error("train.eps = 0", "train.eps", NULL);
    expect_set_error("train.grad_accum = 0", "train.grad_accum", NULL);
    expect_set_error("train.batch_size = 0", "train.batch_size", NULL);
    expect_set_error("train.seed = -1", "train.seed", NULL);
    expect_set_error("train.seed = 18446744073709551616", "train.seed", "64 bits");
    expect_set_error("data.dir = \"unterminated", "data.dir", "quote");
    expect_set_error("data.dir = \"\"", "data.dir", "empty");
    expect_set_error("model.n_layer", "key = value", NULL);
    expect_set_error(" = 3", "key", NULL);
}
END_TEST

START_TEST(test_impossible_relations_at_validate) {
    const char *heads[] = {"model.n_head = 5"};
    expect_invalid(heads, 1, "model.n_head = 5 does not divide model.d_model = 256");
    const char *seq[] = {"train.seq_len = 256"};
    expect_invalid(seq, 1, "train.seq_len = 256 exceeds model.max_seq_len = 128");
    const char *ncs[] = {"attn.eta = 0.5", "attn.softmax = ncs"};
    expect_invalid(ncs, 2, "2*eta > beta");
    const char *ncs_edge[] = {"attn.eta = 0.5", "attn.beta = 1"}; // 2 eta = beta: N = 2 fails
    expect_invalid(ncs_edge, 2, "attn.beta");
    const char *both[] = {"attn.alpha = 12", "attn.gamma = -0.1"};
    expect_invalid(both, 2, "attn.alpha");
    const char *lr[] = {"train.min_lr = 0.01"};
    expect_invalid(lr, 1, "train.min_lr");
    const char *gate[] = {"model.d_model = 12", "model.n_head = 4", "attn.gate = mlp"};
    expect_invalid(gate, 3, "attn.gate_n_hid");
    const char *rope[] = {"model.d_model = 12", "model.n_head = 4", "model.pos = rope"};
    expect_invalid(rope, 3, "must be even");
    const char *llama[] = {"model.arch = llama", "model.norm = rmsnorm", "model.pos = rope",
                           "model.activation = swiglu", "model.tie_embeddings = 0"};
    expect_invalid(llama, 5, "model.bias = 0");
    const char *ternary[] = {"quant.mode = qat", "quant.w_bits = 1", "quant.w_symmetric = 0"};
    expect_invalid(ternary, 3, "quant.w_symmetric = 1");
    const char *absmean[] = {"quant.mode = qat", "quant.a_range = absmean", "quant.a_symmetric = 0"};
    expect_invalid(absmean, 3, "quant.a_range = absmean needs a symmetric grid");

    // Ranges are checked again at validate, for configs filled in directly.
    qt_config cfg;
    qt_config_defaults(&cfg);
    cfg.gamma = 0.5f;
    ck_assert_int_eq(qt_config_validate(&cfg), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "attn.gamma = 0.5 is impossible"), "%s", qt_last_error());
    qt_config_defaults(&cfg);
    cfg.dropout = NAN;
    ck_assert_int_eq(qt_config_validate(&cfg), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "model.dropout"), "%s", qt_last_error());
    qt_config_defaults(&cfg);
    cfg.softmax = (qt_softmax_kind)7;
    ck_assert_int_eq(qt_config_validate(&cfg), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "attn.softmax"), "%s", qt_last_error());
    qt_config_defaults(&cfg);
    cfg.attn_dropout = -0.5f; // in [-1, 1) but neither -1 nor a probability
    ck_assert_int_eq(qt_config_validate(&cfg), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "model.attn_dropout"), "%s", qt_last_error());

    // Borderline values that are possible.
    const char *ok[] = {"model.n_head = 256", "train.seq_len = 128",    "attn.eta = 0.51",
                        "attn.beta = 1",      "model.vocab_size = 257", "train.min_lr = 0.001"};
    qt_config_defaults(&cfg);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(qt_config_set(&cfg, ok[i], NULL), QT_OK);
    ck_assert_msg(qt_config_validate(&cfg) == QT_OK, "%s", qt_last_error());
}
END_TEST

START_TEST(test_gamma) {
    qt_config cfg;
    qt_config_defaults(&cfg);
    ck_assert(qt_config_gamma(&cfg) == 0.0f);
    cfg.gamma = -0.025f;
    ck_assert(qt_config_gamma(&cfg) == -0.025f);
    cfg.gamma = 0.0f;
    cfg.alpha = 12.0f;
    cfg.max_seq_len = 512;
    float g = qt_config_gamma(&cfg);
    ck_assert_msg(fabsf(g - (-12.0f / 512.0f)) <= 1e-9f, "gamma %g, want -12/512", (double)g);
}
END_TEST

START_TEST(test_presets) {
    char path[2048];
    snprintf(path, sizeof path, "%s/configs", source_dir());
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "cannot open %s (set QT_SOURCE_DIR)", path);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".conf") != 0) continue;
        snprintf(path, sizeof path, "%s/configs/%s", source_dir(), e->d_name);
        qt_config cfg;
        qt_config_defaults(&cfg);
        ck_assert_msg(qt_config_load(&cfg, path) == QT_OK, "%s", qt_last_error());
        ck_assert_msg(qt_config_validate(&cfg) == QT_OK, "%s: %s", e->d_name, qt_last_error());
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 5);

    qt_config cfg, want;
    // default.conf names every key with its default value.
    snprintf(path, sizeof path, "%s/configs/default.conf", source_dir());
    set_every_key(&cfg);
    ck_assert_msg(qt_config_load(&cfg, path) == QT_OK, "%s", qt_last_error());
    qt_config_defaults(&want);
    assert_same(&cfg, &want, "configs/default.conf");

    snprintf(path, sizeof path, "%s/configs/tiny.conf", source_dir());
    qt_config_defaults(&cfg);
    ck_assert_msg(qt_config_load(&cfg, path) == QT_OK, "%s", qt_last_error());
    ck_assert(cfg.n_layer == 2 && cfg.d_model == 64 && cfg.n_head == 2 && cfg.d_ff == 128);
    ck_assert(cfg.max_seq_len == 32 && cfg.vocab_size == 512 && cfg.batch_size == 4);
    ck_assert(cfg.seq_len == 32 && cfg.max_steps == 20);

    snprintf(path, sizeof path, "%s/configs/opt-125m-clipped.conf", source_dir());
    qt_config_defaults(&cfg);
    ck_assert_msg(qt_config_load(&cfg, path) == QT_OK, "%s", qt_last_error());
    ck_assert(cfg.n_layer == 12 && cfg.d_model == 768 && cfg.n_head == 12 && cfg.d_ff == 3072);
    ck_assert(cfg.max_seq_len == 512 && cfg.vocab_size == 50272 && cfg.init_std == 0.006f);
    ck_assert(cfg.softmax == QT_SOFTMAX_CLIPPED && cfg.alpha == 12.0f);
    ck_assert(cfg.schedule == QT_SCHED_LINEAR && cfg.lr == 4e-4f && cfg.warmup_steps == 2000);
    ck_assert(cfg.decay_norm_weights == 1 && cfg.weight_decay == 0.1f);
}
END_TEST

// Every name table (qtrain/names.h): each value's name reads back as that value, names are
// distinct and non-empty, a subset hides the other values, and joins list the subset in order.
START_TEST(test_names) {
    static const struct {
        const char *what;
        const qt_names *t;
        int n;
    } tables[] = {
        {"arch", &qt_arch_names, 3},
        {"activation", &qt_activation_names, 3},
        {"norm", &qt_norm_names, 2},
        {"pos", &qt_pos_names, 2},
        {"loss", &qt_loss_names, 2},
        {"norm_position", &qt_norm_position_names, 2},
        {"sched", &qt_sched_names, 3},
        {"precision", &qt_precision_names, 4},
        {"softmax", &qt_softmax_names, 3},
        {"gate", &qt_gate_names, 5},
        {"sink", &qt_sink_names, 3},
        {"quant_mode", &qt_quant_mode_names, 4},
        {"quant_backward", &qt_quant_backward_names, 2},
        {"dqt_scale", &qt_dqt_scale_names, 3},
        {"quant_granularity", &qt_quant_granularity_names, 3},
        {"quant_rounding", &qt_quant_rounding_names, 2},
        {"quant_range", &qt_quant_range_names, 6},
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        const qt_names *t = tables[i].t;
        ck_assert_msg(t->n == tables[i].n, "%s: %d names, want %d", tables[i].what, t->n,
                      tables[i].n);
        for (int v = 0; v < t->n; v++) {
            const char *name = qt_name(t, v);
            ck_assert_msg(name[0] != '\0', "%s: value %d has an empty name", tables[i].what, v);
            int back = qt_name_value(t, name, strlen(name), QT_NAMES_ALL);
            ck_assert_msg(back == v, "%s: '%s' (value %d) reads back as %d", tables[i].what, name,
                          v, back);
            ck_assert_msg(qt_name_value(t, name, strlen(name), ~QT_NAME_BIT(v)) == -1,
                          "%s: '%s' found outside its subset", tables[i].what, name);
        }
        ck_assert_str_eq(qt_name(t, -1), "?");
        ck_assert_str_eq(qt_name(t, t->n), "?");
        ck_assert_int_eq(qt_name_value(t, "no-such-name", 12, QT_NAMES_ALL), -1);
    }
    // The spellings configs, checkpoints and the CLI depend on.
    ck_assert_str_eq(qt_name(&qt_softmax_names, QT_SOFTMAX_NCS), "ncs");
    ck_assert_str_eq(qt_name(&qt_gate_names, QT_GATE_ALL_HEADS), "all_heads");
    ck_assert_str_eq(qt_name(&qt_quant_mode_names, QT_QMODE_BITNET), "bitnet");
    ck_assert_str_eq(qt_name(&qt_precision_names, QT_PRECISION_BF16), "bf16");
    ck_assert_str_eq(qt_name(&qt_quant_range_names, QT_QUANT_RANGE_RUNNING), "minmax");
    ck_assert_str_eq(qt_name(&qt_quant_range_names, QT_QUANT_RANGE_PERCENTILE), "percentile");
    ck_assert_str_eq(qt_name(&qt_quant_range_names, QT_QUANT_RANGE_MSE), "mse");
    ck_assert_str_eq(qt_name(&qt_dqt_scale_names, QT_DQT_SCALE_ABSMAX_PRE), "absmax_pre");
    // Length-delimited: a prefix or an extension of a name is not that name.
    ck_assert_int_eq(qt_name_value(&qt_gate_names, "linearx", 6, QT_NAMES_ALL), QT_GATE_LINEAR);
    ck_assert_int_eq(qt_name_value(&qt_gate_names, "line", 4, QT_NAMES_ALL), -1);
    char buf[64];
    unsigned act = QT_NAME_BIT(QT_QUANT_RANGE_RUNNING) | QT_NAME_BIT(QT_QUANT_RANGE_PERCENTILE);
    qt_names_join(&qt_quant_range_names, act, " or ", buf, sizeof buf);
    ck_assert_str_eq(buf, "minmax or percentile");
    qt_names_join(&qt_quant_mode_names, QT_NAMES_ALL, "|", buf, sizeof buf);
    ck_assert_str_eq(buf, "none|qat|bitnet|dqt");
    qt_names_join(&qt_quant_mode_names, QT_NAMES_ALL, "|", buf, 6);
    ck_assert_str_eq(buf, "none|");
    ck_assert(!qt_names_allow(QT_NAMES_ALL, -1) && !qt_names_allow(QT_NAMES_ALL, 32));
    ck_assert(qt_names_allow(QT_NAME_BIT(3), 3) && !qt_names_allow(QT_NAME_BIT(3), 2));
    // train.precision's dtype: auto is the backend's.
    ck_assert_int_eq(qt_config_precision_dtype(QT_PRECISION_AUTO, QT_DTYPE_F16), QT_DTYPE_F16);
    ck_assert_int_eq(qt_config_precision_dtype(QT_PRECISION_FP32, QT_DTYPE_F16), QT_DTYPE_F32);
    ck_assert_int_eq(qt_config_precision_dtype(QT_PRECISION_BF16, QT_DTYPE_F32), QT_DTYPE_BF16);
}
END_TEST

// qt_config_parse, the one parser of config text (files and checkpoints' stored configs):
// comments respect quotes, lines of any length, errors name source:line, and a failed parse
// leaves the config unchanged.
START_TEST(test_parse_text) {
    qt_config cfg, before;
    qt_config_defaults(&cfg);
    const char text[] = "model.n_layer = 5 # five\r\n"
                        "data.dir = \"/data/run#1\" # the '#' inside the quotes is kept\n"
                        "\n"
                        "train.seed = 9"; // no final newline
    ck_assert_msg(qt_config_parse(&cfg, text, strlen(text), "mem") == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(cfg.n_layer, 5);
    ck_assert_str_eq(cfg.data_dir, "/data/run#1");
    ck_assert(cfg.seed == 9);

    // A line of ~1100 bytes: data.dir of 500 escaped quotes.
    size_t cap = 2000, n = 0;
    char *big = malloc(cap);
    ck_assert_ptr_nonnull(big);
    n += (size_t)snprintf(big, cap, "data.dir = \"");
    for (int i = 0; i < 500; i++) {
        big[n++] = '\\';
        big[n++] = '"';
    }
    n += (size_t)snprintf(big + n, cap - n, "x\"   # and a comment with \" a quote\n");
    qt_config_defaults(&cfg);
    ck_assert_msg(qt_config_parse(&cfg, big, n, "mem") == QT_OK, "%s", qt_last_error());
    ck_assert_uint_eq(strlen(cfg.data_dir), 501);
    ck_assert(cfg.data_dir[0] == '"' && cfg.data_dir[499] == '"' && cfg.data_dir[500] == 'x');
    free(big);

    // Errors: source and line named, config unchanged (line 1 was good but is not applied).
    qt_config_defaults(&cfg);
    before = cfg;
    const char bad[] = "model.n_layer = 2\nmodel.d_model = 12x\n";
    ck_assert_int_eq(qt_config_parse(&cfg, bad, strlen(bad), "run/ckpt.bin (stored config)"),
                     QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "run/ckpt.bin (stored config):2: model.d_model = 12x"),
                  "message: %s", qt_last_error());
    ck_assert_msg(memcmp(&cfg, &before, sizeof cfg) == 0, "a failed parse changed the config");
    const char nul[] = "model.n_layer = 2\nmodel.d_model\0 = 12\n";
    ck_assert_int_eq(qt_config_parse(&cfg, nul, sizeof nul - 1, "nul"), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "nul:2") && strstr(qt_last_error(), "NUL"), "message: %s",
                  qt_last_error());
    ck_assert_msg(memcmp(&cfg, &before, sizeof cfg) == 0, "a failed parse changed the config");
    const char unclosed[] = "data.dir = \"a#b\n";
    ck_assert_int_eq(qt_config_parse(&cfg, unclosed, strlen(unclosed), "u"), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "closing quote"), "message: %s", qt_last_error());
    // The empty text changes nothing.
    ck_assert_int_eq(qt_config_parse(&cfg, "", 0, "empty"), QT_OK);
    ck_assert_msg(memcmp(&cfg, &before, sizeof cfg) == 0, "an empty text changed the config");
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults_validate);
    tcase_add_test(tc, test_set_every_key);
    tcase_add_test(tc, test_write_names_every_key);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_unknown_key_names_file_line);
    tcase_add_test(tc, test_load_format);
    tcase_add_test(tc, test_impossible_values_at_set);
    tcase_add_test(tc, test_impossible_relations_at_validate);
    tcase_add_test(tc, test_gamma);
    tcase_add_test(tc, test_presets);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_parse_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return qt_test_run_suite(config_suite());
}

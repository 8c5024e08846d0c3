// test_export.c: the safetensors reader and writer (qtrain/safetensors.h), the JSON reader under
// it (host/io/json.h), and export/import (qtrain/hf.h) without Python: import(export(ckpt)) is
// ckpt byte for byte for OPT, LLaMA and the variants transformers cannot run (clipped softmax,
// NCS, gates, DQT codes), a weights-only export imports the same parameters at step 0, and
// broken directories are refused naming the problem. The transformers side is
// tests/export/check_transformers.py (CTest export_transformers).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/io/json.h"
#include "qtrain/checkpoint.h"
#include "qtrain/hf.h"
#include "qtrain/safetensors.h"
#include "qtrain/tokenizer.h"
#include "qtrain/trainer.h"
#include "testutil.h"

// ---- JSON -----------------------------------------------------------------------------------

static void expect_json_error(const char *text, const char *needle) {
    qt_json *j = NULL;
    qt_status st = qt_json_parse(text, strlen(text), "t.json", &j);
    ck_assert_msg(st == QT_ERR_FORMAT && j == NULL, "'%s' parsed (status %d)", text, st);
    ck_assert_msg(strstr(qt_last_error(), needle) != NULL, "'%s': message '%s' lacks '%s'", text,
                  qt_last_error(), needle);
    ck_assert_msg(strstr(qt_last_error(), "t.json") != NULL, "'%s': message names no file", text);
}

START_TEST(test_json_values) {
    const char *text = " {\"a\": [1, -2.5e3, 18446744073709551615, 18446744073709551616],"
                       " \"s\": \"x\\u00e9\\ud83d\\ude00\\n\\\"\", \"t\": true, \"n\": null,"
                       " \"o\": {}, \"e\": []} ";
    qt_json *j = NULL;
    ck_assert_msg(qt_json_parse(text, strlen(text), "t", &j) == QT_OK, "%s", qt_last_error());
    const qt_json *a = qt_json_get(j, "a");
    ck_assert(a && a->type == QT_JSON_ARRAY && a->n == 4);
    ck_assert(a->items[0].is_uint && a->items[0].uint == 1);
    ck_assert(!a->items[1].is_uint && a->items[1].number == -2500.0);
    ck_assert(a->items[2].is_uint && a->items[2].uint == UINT64_MAX); // exact, past 2^53
    ck_assert(!a->items[3].is_uint);                                  // 2^64 does not fit
    const qt_json *s = qt_json_get(j, "s");
    ck_assert(s && s->type == QT_JSON_STRING);
    ck_assert_str_eq(s->str, "x\xc3\xa9\xf0\x9f\x98\x80\n\"");
    ck_assert(qt_json_get(j, "t")->boolean == 1);
    ck_assert(qt_json_get(j, "n")->type == QT_JSON_NULL);
    ck_assert(qt_json_get(j, "o")->type == QT_JSON_OBJECT && qt_json_get(j, "o")->n == 0);
    ck_assert(qt_json_get(j, "missing") == NULL);
    qt_json_free(j);
}
END_TEST

START_TEST(test_json_errors) {
    expect_json_error("", "unexpected end");
    expect_json_error("{\"a\": 1,}", "expected a string key");
    expect_json_error("[1 2]", "expected ',' or ']'");
    expect_json_error("{\"a\": 1, \"a\": 2}", "duplicate key \"a\"");
    expect_json_error("{\"a\": 01}", "leading zeros");
    expect_json_error("{\"a\": \"\\ud800\"}", "surrogate");
    expect_json_error("{\"a\": \"\xff\"}", "UTF-8");
    expect_json_error("{\"a\": \"tab\there\"}", "control character");
    expect_json_error("{\"a\": tru}", "expected a value");
    expect_json_error("{} {}", "after the value");
    expect_json_error("\"unterminated", "unterminated string");
    char deep[200];
    memset(deep, '[', 100);
    deep[100] = '\0';
    expect_json_error(deep, "nested deeper than 64");
}
END_TEST

// ---- safetensors ----------------------------------------------------------------------------

// A safetensors image: the 8-byte length, `header`, then data_len bytes of `fill`.
static unsigned char *st_image(const char *header, size_t data_len, unsigned char fill,
                               size_t *len) {
    size_t n = strlen(header);
    *len = 8 + n + data_len;
    unsigned char *b = malloc(*len + 1);
    ck_assert(b != NULL);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    memset(b + 8 + n, fill, data_len);
    return b;
}

static void expect_st_error(const char *header, size_t data_len, const char *needle) {
    size_t len;
    unsigned char *b = st_image(header, data_len, 0, &len);
    qt_st_file *f = NULL;
    qt_status st = qt_st_parse(b, len, "bad.safetensors", &f);
    ck_assert_msg(st == QT_ERR_FORMAT && f == NULL, "header '%s' accepted (status %d)", header, st);
    ck_assert_msg(strstr(qt_last_error(), needle) != NULL, "header '%s': message '%s' lacks '%s'",
                  header, qt_last_error(), needle);
    ck_assert_msg(strstr(qt_last_error(), "bad.safetensors") != NULL, "message names no file");
    free(b);
}

START_TEST(test_st_roundtrip) {
    char *dir = qt_test_tmpdir("st");
    char path[1024];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    float w[6] = {1.5f, -2.0f, 0.0f, -0.0f, 3.25e-20f, INFINITY};
    int8_t codes[5] = {-1, 0, 1, 127, -128};
    double d = 2.5;
    uint64_t u[2] = {UINT64_MAX, 7};
    uint8_t text[3] = {'a', 'b', 'c'};
    qt_st_tensor t[6] = {
        {"codes", QT_ST_I8, 1, {5}, codes}, {"w", QT_ST_F32, 2, {2, 3}, w},
        {"scalar", QT_ST_F64, 0, {0}, &d},  {"empty", QT_ST_F32, 2, {0, 4}, NULL},
        {"u", QT_ST_U64, 1, {2}, u},        {"text", QT_ST_U8, 1, {3}, text},
    };
    const char *keys[2] = {"format", "note"}, *vals[2] = {"pt", "caf\xc3\xa9 \"quoted\""};
    ck_assert_msg(qt_st_write(path, t, 6, keys, vals, 2) == QT_OK, "%s", qt_last_error());
    qt_st_file *f = NULL;
    ck_assert_msg(qt_st_read(path, &f) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_st_count(f), 6);
    const unsigned char *base = qt_st_at(f, 0)->data; // any tensor: find the data start
    for (int i = 0; i < 6; i++) {
        const qt_st_tensor *r = qt_st_at(f, i);
        ck_assert_str_eq(r->name, t[i].name); // header order is the caller's
        ck_assert_int_eq(r->dtype, t[i].dtype);
        ck_assert_int_eq(r->ndim, t[i].ndim);
        for (int k = 0; k < t[i].ndim; k++)
            ck_assert_int_eq(r->shape[k], t[i].shape[k]);
        size_t bytes = qt_st_tensor_bytes(&t[i]);
        ck_assert(bytes == 0 || memcmp(r->data, t[i].data, bytes) == 0);
        if ((const unsigned char *)r->data < base) base = r->data;
    }
    // Widest elements first: every tensor aligned to its element size within the file.
    struct stat sb;
    ck_assert(stat(path, &sb) == 0);
    for (int i = 0; i < 6; i++) {
        const qt_st_tensor *r = qt_st_at(f, i);
        size_t off = (size_t)((const unsigned char *)r->data - base);
        ck_assert_msg(off % qt_st_dtype_size(r->dtype) == 0, "%s at %zu", r->name, off);
    }
    ck_assert_str_eq(qt_st_meta(f, "format"), "pt");
    ck_assert_str_eq(qt_st_meta(f, "note"), vals[1]);
    ck_assert(qt_st_meta(f, "absent") == NULL);
    ck_assert(qt_st_find(f, "w") == qt_st_at(f, 1));
    qt_st_free(f);

    // Bad tensors are refused and leave nothing behind.
    qt_st_tensor dup[2] = {{"a", QT_ST_F32, 1, {1}, w}, {"a", QT_ST_F32, 1, {1}, w}};
    ck_assert_int_eq(qt_st_write(path, dup, 2, NULL, NULL, 0), QT_ERR_ARG);
    ck_assert(strstr(qt_last_error(), "appears twice") != NULL);
    qt_st_tensor meta[1] = {{"__metadata__", QT_ST_F32, 1, {1}, w}};
    ck_assert_int_eq(qt_st_write(path, meta, 1, NULL, NULL, 0), QT_ERR_ARG);
    qt_st_tensor nodata[1] = {{"x", QT_ST_F32, 1, {2}, NULL}};
    ck_assert_int_eq(qt_st_write(path, nodata, 1, NULL, NULL, 0), QT_ERR_ARG);
    ck_assert(qt_st_read(path, &f) == QT_OK); // the good file is still there
    qt_st_free(f);
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/none.safetensors", dir);
    ck_assert_int_eq(qt_st_read(missing, &f), QT_ERR_IO);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

#define T8 "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

START_TEST(test_st_errors) {
    // Sizes: a file shorter than its length field, a length past the file, past the limit.
    size_t len;
    unsigned char *b = st_image("{}", 0, 0, &len);
    qt_st_file *f = NULL;
    ck_assert_int_eq(qt_st_parse(b, 5, "bad.safetensors", &f), QT_ERR_FORMAT);
    ck_assert(strstr(qt_last_error(), "shorter than the 8-byte header length") != NULL);
    b[0] = 200; // header length 200, 2 bytes there
    ck_assert_int_eq(qt_st_parse(b, len, "bad.safetensors", &f), QT_ERR_FORMAT);
    ck_assert(strstr(qt_last_error(), "header length 200 exceeds the 2 bytes") != NULL);
    free(b);
    size_t big = QT_ST_MAX_HEADER + 16;
    b = calloc(big, 1); // zero pages: only the length and the first byte are read
    ck_assert(b != NULL);
    uint64_t n = QT_ST_MAX_HEADER + 1;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(n >> (8 * i));
    ck_assert_int_eq(qt_st_parse(b, big, "bad.safetensors", &f), QT_ERR_FORMAT);
    ck_assert(strstr(qt_last_error(), "exceeds the limit") != NULL);
    free(b);
    // The header.
    expect_st_error("[]", 0, "does not start with '{'");
    expect_st_error("{" T8 ",}", 8, "invalid JSON");
    expect_st_error("{" T8 "," T8 "}", 16, "duplicate key \"t\"");
    expect_st_error("{\"t\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                    "unknown dtype \"F33\"");
    expect_st_error("{\"t\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                    "unknown dtype");
    expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                    "out of range");
    expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
                    "out of range");
    expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                    "needs 12 bytes");
    expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                    "shape[0] is not a non-negative integer");
    expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8,
                    "shape[0]");
    expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                    "\"data_offsets\":[0,8]}}",
                    8, "overflows");
    expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "lacks \"data_offsets\"");
    expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
                    "unknown field \"x\"");
    expect_st_error("{\"t\":[1]}", 8, "expected an object");
    expect_st_error("{\"__metadata__\":{\"a\":1}," T8 "}", 8, "allows only strings");
    // Offsets that do not tile the data buffer.
    expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                    "leaving bytes [0, 4) unused");
    expect_st_error("{" T8 ",\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                    "overlaps");
    expect_st_error("{" T8 "}", 12, "trailing bytes");
    // What is valid: trailing spaces, an empty tensor anywhere, no tensors at all.
    const char *ok[] = {"{" T8 "}    ",
                        "{\"e\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[8,8]}," T8 "}",
                        "{}"};
    const size_t ok_len[] = {8, 8, 0};
    for (int i = 0; i < 3; i++) {
        b = st_image(ok[i], ok_len[i], 0, &len);
        ck_assert_msg(qt_st_parse(b, len, "ok", &f) == QT_OK, "'%s': %s", ok[i], qt_last_error());
        qt_st_free(f);
        free(b);
    }
}
END_TEST

// ---- export and import ----------------------------------------------------------------------

static char *g_dir; // the synthetic shards (and a tokenizer) for every case

static void make_data(void) {
    g_dir = qt_test_tmpdir("export");
    qt_test_write_synthetic_shards(g_dir);
}

static void free_data(void) {
    qt_test_rmtree(g_dir);
    free(g_dir);
}

// Trains `sets` (over a small base config) for 3 steps into dir/<name>; returns the checkpoint.
static char *train(const char *name, const char *const *sets, int n_sets) {
    qt_config cfg;
    qt_config_defaults(&cfg);
    const char *base[] = {"model.n_layer=2",      "model.d_model=32",     "model.n_head=2",
                          "model.d_ff=48",        "model.max_seq_len=16", "model.vocab_size=257",
                          "train.batch_size=2",   "train.seq_len=16",     "train.max_steps=3",
                          "train.warmup_steps=1", "train.lr=3e-3",        "train.eval_every=0",
                          "train.eval_batches=1", "train.threads=2"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        ck_assert_int_eq(qt_config_set(&cfg, base[i], "test"), QT_OK);
    for (int i = 0; i < n_sets; i++)
        ck_assert_msg(qt_config_set(&cfg, sets[i], "test") == QT_OK, "%s", qt_last_error());
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", g_dir);
    char out[1024];
    snprintf(out, sizeof out, "%s/%s", g_dir, name);
    qt_train_opts o = {.out_dir = out, .quiet = 1};
    ck_assert_msg(qt_train(&cfg, &o) == QT_OK, "%s: %s", name, qt_last_error());
    char *ckpt = malloc(1100);
    snprintf(ckpt, 1100, "%s/ckpt.bin", out);
    return ckpt;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len + 1);
    ck_assert(b != NULL && fread(b, 1, *len, f) == *len);
    fclose(f);
    return b;
}

static void expect_same_file(const char *a, const char *b, const char *what) {
    size_t la, lb;
    unsigned char *x = slurp(a, &la), *y = slurp(b, &lb);
    ck_assert_msg(la == lb && memcmp(x, y, la) == 0, "%s: %s (%zu bytes) != %s (%zu bytes)", what,
                  a, la, b, lb);
    free(x);
    free(y);
}

// Every entry of `want` whose name starts with "decoder." or "lm_head." (parameters and DQT
// scales) is in `got` with the same dtype, shape and bytes.
static void expect_same_params(const char *want_path, const char *got_path, const char *what) {
    qt_ckpt *want = NULL, *got = NULL;
    ck_assert(qt_ckpt_read(want_path, &want) == QT_OK);
    ck_assert_msg(qt_ckpt_read(got_path, &got) == QT_OK, "%s", qt_last_error());
    int n = 0;
    for (int i = 0; i < qt_ckpt_count(want); i++) {
        const qt_ckpt_entry *w = qt_ckpt_entry_at(want, i);
        if (strncmp(w->name, "decoder.", 8) != 0 && strncmp(w->name, "lm_head.", 8) != 0) continue;
        const qt_ckpt_entry *g = qt_ckpt_find(got, w->name);
        ck_assert_msg(g != NULL, "%s: %s missing", what, w->name);
        ck_assert_msg(g->dtype == w->dtype && g->ndim == w->ndim, "%s: %s", what, w->name);
        size_t bytes = (size_t)qt_ckpt_entry_numel(w) * qt_ckpt_dtype_size(w->dtype);
        ck_assert_msg(memcmp(g->data, w->data, bytes) == 0, "%s: %s differs", what, w->name);
        n++;
    }
    ck_assert_int_gt(n, 0);
    qt_ckpt_free(want);
    qt_ckpt_free(got);
}

static void roundtrip(const char *name, const char *const *sets, int n_sets, int runs) {
    char *ckpt = train(name, sets, n_sets);
    char hf[1100], back[1100], weights[1100], back2[1100];
    snprintf(hf, sizeof hf, "%s/%s/hf", g_dir, name);
    snprintf(back, sizeof back, "%s/%s/imported.bin", g_dir, name);
    qt_hf_export_report r;
    ck_assert_msg(qt_hf_export(ckpt, hf, NULL, &r) == QT_OK, "%s: %s", name, qt_last_error());
    ck_assert_msg(r.runs_in_transformers == runs, "%s: runs_in_transformers %d (%s)", name,
                  r.runs_in_transformers, r.why_not);
    ck_assert_int_gt(r.n_state, 0);
    qt_hf_import_report ir;
    ck_assert_msg(qt_hf_import(hf, back, &ir) == QT_OK, "%s: %s", name, qt_last_error());
    ck_assert(ir.full && ir.step == 3);
    expect_same_file(ckpt, back, name); // the whole checkpoint, byte for byte

    // Weights only: the same parameters, at step 0 with zero moments, and it resumes.
    snprintf(weights, sizeof weights, "%s/%s/hf-weights", g_dir, name);
    snprintf(back2, sizeof back2, "%s/%s/imported-weights.bin", g_dir, name);
    qt_hf_export_opts o = {NULL, 1};
    ck_assert_msg(qt_hf_export(ckpt, weights, &o, &r) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(r.n_state, 0);
    ck_assert_msg(qt_hf_import(weights, back2, &ir) == QT_OK, "%s", qt_last_error());
    ck_assert(!ir.full && ir.step == 0);
    expect_same_params(ckpt, back2, name);
    qt_config cfg;
    ck_assert(qt_train_state_read_config(back2, &cfg) == QT_OK);
    qt_backend be;
    qt_model m;
    qt_optimizer opt;
    qt_train_progress p;
    ck_assert(qt_backend_cpu_init(&be, 1) == QT_OK);
    ck_assert(qt_model_init(&m, &cfg, &be, 1, 4) == QT_OK);
    ck_assert(qt_optimizer_init(&opt, &m) == QT_OK);
    ck_assert_msg(qt_train_state_load(back2, &m, &opt, &p) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(p.step, 0);
    float *mom = malloc(m.n_params * sizeof(float));
    ck_assert(be.ops->to_host(be.ctx, mom, opt.m, m.n_params * sizeof(float)) == QT_OK);
    for (size_t i = 0; i < m.n_params; i++)
        ck_assert(mom[i] == 0.0f);
    free(mom);
    qt_optimizer_free(&opt, &m);
    qt_model_free(&m);
    qt_backend_free(&be);
    free(ckpt);
}

START_TEST(test_roundtrip_opt) { roundtrip("opt", NULL, 0, 1); }
END_TEST

START_TEST(test_roundtrip_opt_variant) {
    const char *sets[] = {"model.tie_embeddings=0", "model.activation=relu", "model.bias=0"};
    roundtrip("opt-variant", sets, 3, 1);
}
END_TEST

START_TEST(test_roundtrip_llama) {
    const char *sets[] = {"model.arch=llama", "model.norm=rmsnorm",
                          "model.pos=rope",   "model.activation=swiglu",
                          "model.bias=0",     "model.tie_embeddings=0"};
    roundtrip("llama", sets, 6, 1);
}
END_TEST

START_TEST(test_roundtrip_not_in_transformers) {
    const char *clipped_gated[] = {"attn.softmax=clipped", "attn.gamma=-0.03", "attn.gate=mlp"};
    roundtrip("clipped-gated", clipped_gated, 3, 0);
    const char *ncs[] = {"attn.softmax=ncs", "attn.gate=linear"};
    roundtrip("ncs", ncs, 2, 0);
    const char *dqt[] = {"model.arch=llama",        "model.norm=rmsnorm", "model.pos=rope",
                         "model.activation=swiglu", "model.bias=0",       "model.tie_embeddings=0",
                         "quant.mode=dqt"};
    roundtrip("dqt", dqt, 7, 0);
}
END_TEST

// A DQT export has I8 codes and one repeated scale per split piece; gates keep qtrain's names.
START_TEST(test_export_names) {
    const char *dqt[] = {"model.arch=llama",        "model.norm=rmsnorm", "model.pos=rope",
                         "model.activation=swiglu", "model.bias=0",       "model.tie_embeddings=0",
                         "quant.mode=dqt",          "attn.gate=linear"};
    char *ckpt = train("names", dqt, 8);
    char hf[1100], path[1200];
    snprintf(hf, sizeof hf, "%s/names/hf", g_dir);
    qt_hf_export_report r;
    ck_assert_msg(qt_hf_export(ckpt, hf, NULL, &r) == QT_OK, "%s", qt_last_error());
    ck_assert(strstr(r.why_not, "quant.mode = dqt") && strstr(r.why_not, "attn.gate = linear"));
    snprintf(path, sizeof path, "%s/model.safetensors", hf);
    qt_st_file *f = NULL;
    ck_assert(qt_st_read(path, &f) == QT_OK);
    const qt_st_tensor *q = qt_st_find(f, "model.layers.1.self_attn.q_proj.weight");
    const qt_st_tensor *up = qt_st_find(f, "model.layers.0.mlp.up_proj.weight");
    ck_assert(q && q->dtype == QT_ST_I8 && q->shape[0] == 32 && q->shape[1] == 32);
    ck_assert(up && up->dtype == QT_ST_I8 && up->shape[0] == 48);
    const qt_st_tensor *qs = qt_st_find(f, "model.layers.1.self_attn.q_proj.weight_scale");
    const qt_st_tensor *vs = qt_st_find(f, "model.layers.1.self_attn.v_proj.weight_scale");
    ck_assert(qs && vs && memcmp(qs->data, vs->data, 4) == 0 && *(const float *)qs->data > 0);
    ck_assert(qt_st_find(f, "model.layers.0.self_attn.gate.weight") != NULL);
    ck_assert(qt_st_find(f, "model.norm.weight") && qt_st_find(f, "lm_head.weight"));
    ck_assert(qt_st_find(f, "model.layers.0.input_layernorm.weight") != NULL);
    qt_st_free(f);
    free(ckpt);
}
END_TEST

// OPT's positions get two zero rows; model.bias = 0 gets zero LayerNorm biases.
START_TEST(test_export_opt_layout) {
    const char *sets[] = {"model.bias=0"};
    char *ckpt = train("layout", sets, 1);
    char hf[1100], path[1200];
    snprintf(hf, sizeof hf, "%s/layout/hf", g_dir);
    ck_assert_msg(qt_hf_export(ckpt, hf, NULL, NULL) == QT_OK, "%s", qt_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors", hf);
    qt_st_file *f = NULL;
    qt_ckpt *ck = NULL;
    ck_assert(qt_st_read(path, &f) == QT_OK && qt_ckpt_read(ckpt, &ck) == QT_OK);
    const qt_st_tensor *pos = qt_st_find(f, "model.decoder.embed_positions.weight");
    const qt_ckpt_entry *wpe = qt_ckpt_find(ck, "decoder.embed_positions.weight");
    ck_assert(pos && wpe && pos->shape[0] == 18 && pos->shape[1] == 32);
    const float *p = pos->data;
    for (int i = 0; i < 2 * 32; i++)
        ck_assert(p[i] == 0.0f);
    ck_assert(memcmp(p + 64, wpe->data, 16 * 32 * sizeof(float)) == 0);
    const qt_st_tensor *b = qt_st_find(f, "model.decoder.layers.1.final_layer_norm.bias");
    ck_assert(b && b->shape[0] == 32 && ((const float *)b->data)[5] == 0.0f);
    ck_assert(qt_st_find(f, "model.decoder.final_layer_norm.bias") != NULL);
    ck_assert(qt_st_find(f, "model.decoder.layers.0.fc1.bias") == NULL);
    ck_assert(qt_st_find(f, "lm_head.weight") == NULL); // tied
    qt_st_free(f);
    qt_ckpt_free(ck);
    free(ckpt);
}
END_TEST

// Rewrites dir/model.safetensors without tensor `drop` (NULL: none), with tensor `add` (NULL:
// none) and with element 0 of tensor `poke` (NULL: none) set to 1.
static void rewrite_model(const char *dir, const char *drop, const char *add, const char *poke) {
    char path[1200], tmp[1300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(tmp, sizeof tmp, "%s/model.safetensors.orig", dir);
    ck_assert(rename(path, tmp) == 0);
    qt_st_file *f = NULL;
    ck_assert(qt_st_read(tmp, &f) == QT_OK);
    int n = qt_st_count(f), k = 0;
    qt_st_tensor *t = calloc((size_t)n + 1, sizeof *t);
    float one = 1.0f, *copy = NULL;
    for (int i = 0; i < n; i++) {
        const qt_st_tensor *s = qt_st_at(f, i);
        if (drop && strcmp(s->name, drop) == 0) continue;
        t[k] = *s;
        if (poke && strcmp(s->name, poke) == 0) {
            size_t bytes = qt_st_tensor_bytes(s);
            copy = malloc(bytes);
            memcpy(copy, s->data, bytes);
            copy[0] = one;
            t[k].data = copy;
        }
        k++;
    }
    if (add) t[k++] = (qt_st_tensor){add, QT_ST_F32, 1, {1}, &one};
    const char *keys[1] = {"format"}, *vals[1] = {"pt"};
    ck_assert(qt_st_write(path, t, k, keys, vals, 1) == QT_OK);
    qt_st_free(f);
    free(t);
    free(copy);
    unlink(tmp);
}

static void expect_import_error(const char *dir, const char *needle) {
    char out[1200];
    snprintf(out, sizeof out, "%s/refused.bin", g_dir);
    qt_status st = qt_hf_import(dir, out, NULL);
    ck_assert_msg(st != QT_OK, "import of %s accepted", dir);
    ck_assert_msg(strstr(qt_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                  qt_last_error(), needle);
    ck_assert_msg(access(out, F_OK) != 0, "a refused import left %s", out);
}

START_TEST(test_import_refuses) {
    const char *sets[] = {"model.bias=0"};
    char *ckpt = train("refuse", sets, 1);
    char hf[1100], path[1200];
    snprintf(hf, sizeof hf, "%s/refuse/hf", g_dir);
    const char *q = "model.decoder.layers.0.self_attn.q_proj.weight";
    const char *lnb = "model.decoder.layers.0.final_layer_norm.bias";
    struct {
        const char *drop, *add, *poke, *needle;
    } cases[] = {
        {q, NULL, NULL, "self_attn.q_proj.weight is missing"},
        {NULL, "model.decoder.extra", NULL, "tensor model.decoder.extra is not part"},
        {NULL, NULL, lnb, "is not F32 [32] zeros"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert(qt_hf_export(ckpt, hf, NULL, NULL) == QT_OK);
        rewrite_model(hf, cases[i].drop, cases[i].add, cases[i].poke);
        expect_import_error(hf, cases[i].needle);
    }
    // config.json: not ours, another architecture, garbage; a state file that lost an entry.
    ck_assert(qt_hf_export(ckpt, hf, NULL, NULL) == QT_OK);
    snprintf(path, sizeof path, "%s/config.json", hf);
    size_t len;
    unsigned char *cj = slurp(path, &len);
    FILE *f = fopen(path, "w");
    fputs("{\"model_type\": \"opt\"}", f);
    fclose(f);
    expect_import_error(hf, "has no \"qtrain\" object");
    f = fopen(path, "w");
    fputs("{\"model_type\": \"opt\", \"qtrain\": ", f);
    fclose(f);
    expect_import_error(hf, "invalid JSON");
    char *edited = malloc(len + 1);
    memcpy(edited, cj, len);
    edited[len] = '\0';
    char *mt = strstr(edited, "\"model_type\": \"opt\"");
    ck_assert(mt != NULL);
    memcpy(mt, "\"model_type\": \"gpt\"", 19);
    f = fopen(path, "w");
    fwrite(edited, 1, len, f);
    fclose(f);
    expect_import_error(hf, "model_type is \"gpt\"");
    free(edited);
    f = fopen(path, "w");
    fwrite(cj, 1, len, f);
    fclose(f);
    free(cj);
    snprintf(path, sizeof path, "%s/qtrain_state.safetensors", hf);
    qt_st_file *sf = NULL;
    ck_assert(qt_st_read(path, &sf) == QT_OK);
    qt_st_tensor *t = calloc((size_t)qt_st_count(sf), sizeof *t);
    int k = 0;
    for (int i = 0; i < qt_st_count(sf); i++)
        if (strcmp(qt_st_at(sf, i)->name, "optimizer.v") != 0) t[k++] = *qt_st_at(sf, i);
    const char *keys[1] = {"qtrain.entries"};
    const char *vals[1] = {qt_st_meta(sf, "qtrain.entries")};
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    ck_assert(qt_st_write(tmp, t, k, keys, vals, 1) == QT_OK);
    qt_st_free(sf);
    free(t);
    ck_assert(rename(tmp, path) == 0);
    expect_import_error(hf, "entry optimizer.v is missing");
    // A weights-only export into the same directory removes the stale state file.
    qt_hf_export_opts o = {NULL, 1};
    ck_assert(qt_hf_export(ckpt, hf, &o, NULL) == QT_OK);
    ck_assert(access(path, F_OK) != 0);
    free(ckpt);
}
END_TEST

// The tokenizer goes out as tokenizer.json (readable JSON with V tokens and V - 256 merges).
START_TEST(test_export_tokenizer) {
    static const char text[] = "In the beginning God created the heaven and the earth. And the "
                               "earth was without form, and void; and darkness was upon the face "
                               "of the deep. 1234 5678 caf\xc3\xa9 na\xc3\xafve!";
    qt_tokenizer *tok = NULL;
    ck_assert(qt_tokenizer_train(&tok, (const uint8_t *)text, sizeof text - 1, 300, NULL, NULL) ==
              QT_OK);
    char tpath[1100], hf[1100], path[1200];
    snprintf(tpath, sizeof tpath, "%s/tok300.bin", g_dir);
    ck_assert(qt_tokenizer_save(tok, tpath) == QT_OK);
    const char *v512[] = {"model.vocab_size=512"};
    char *ckpt = train("tok", v512, 1);
    snprintf(hf, sizeof hf, "%s/tok/hf", g_dir);
    qt_hf_export_opts o = {tpath, 0};
    qt_hf_export_report r;
    ck_assert_msg(qt_hf_export(ckpt, hf, &o, &r) == QT_OK, "%s", qt_last_error());
    ck_assert(r.tokenizer);
    snprintf(path, sizeof path, "%s/tokenizer.json", hf);
    size_t len;
    unsigned char *b = slurp(path, &len);
    qt_json *j = NULL;
    ck_assert_msg(qt_json_parse((const char *)b, len, path, &j) == QT_OK, "%s", qt_last_error());
    const qt_json *model = qt_json_get(j, "model");
    ck_assert_str_eq(qt_json_get(model, "type")->str, "BPE");
    int dups = 0;
    ck_assert(qt_hf_write_tokenizer(tok, 16, g_dir, &dups) == QT_OK);
    ck_assert_int_eq(qt_json_get(model, "vocab")->n, 300 - dups);
    ck_assert_int_eq(qt_json_get(model, "merges")->n, 300 - 256);
    // Token ' t' (space, 't') is "\xc4\xa0t" in the byte-level alphabet (space is U+0120).
    const qt_json *vocab = qt_json_get(model, "vocab");
    ck_assert(qt_json_get(vocab, "\xc4\xa0t") != NULL || qt_json_get(vocab, "\xc4\xa0th"));
    qt_json_free(j);
    free(b);
    // The run's default tokenizer is absent here: the export says so and writes none.
    qt_hf_export_opts none = {NULL, 0};
    ck_assert(qt_hf_export(ckpt, hf, &none, &r) == QT_OK);
    ck_assert(!r.tokenizer && strstr(r.tokenizer_note, "no tokenizer exported"));
    ck_assert(access(path, F_OK) != 0); // the earlier tokenizer.json is gone
    // A tokenizer larger than the model is refused before anything is written.
    char *small = train("tok257", NULL, 0);
    snprintf(hf, sizeof hf, "%s/tok257/hf", g_dir);
    ck_assert_int_eq(qt_hf_export(small, hf, &o, &r), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "has 300 tokens but the model only 257"), "%s",
                  qt_last_error());
    ck_assert(access(hf, F_OK) != 0);
    qt_tokenizer_free(tok);
    free(small);
    free(ckpt);
}
END_TEST

// Runs `qtrain ARGS` (the binary of this build), stderr into *err (malloc'd); the exit code.
static int run_cli(const char *args, char **err) {
    const char *bin = getenv("QT_BINARY_DIR");
    ck_assert_msg(bin != NULL, "QT_BINARY_DIR is not set (run through ctest)");
    char cmd[4096], errpath[1100];
    snprintf(errpath, sizeof errpath, "%s/cli-stderr.txt", g_dir);
    snprintf(cmd, sizeof cmd, "'%s/qtrain' %s >/dev/null 2>'%s'", bin, args, errpath);
    int status = system(cmd);
    size_t len;
    *err = (char *)slurp(errpath, &len);
    (*err)[len] = '\0';
    return status == -1 || !WIFEXITED(status) ? -1 : WEXITSTATUS(status);
}

// The commands: export and import through the program, the warning for a variant, the errors.
START_TEST(test_cli) {
    const char *sets[] = {"attn.softmax=clipped", "attn.gamma=-0.03"};
    char *ckpt = train("cli", sets, 2);
    char args[4096], back[1100], *err = NULL;
    snprintf(back, sizeof back, "%s/cli/back.bin", g_dir);
    snprintf(args, sizeof args, "export --ckpt '%s' --format safetensors --out '%s/cli/hf'", ckpt,
             g_dir);
    ck_assert_int_eq(run_cli(args, &err), 0);
    ck_assert_msg(strstr(err, "qtrain: warning: stock transformers will NOT compute") &&
                      strstr(err, "attn.softmax = clipped"),
                  "stderr: %s", err);
    ck_assert_msg(strstr(err, "qtrain: note: no tokenizer exported"), "stderr: %s", err);
    free(err);
    snprintf(args, sizeof args, "import --from '%s/cli/hf' --out '%s'", g_dir, back);
    ck_assert_int_eq(run_cli(args, &err), 0);
    free(err);
    expect_same_file(ckpt, back, "cli");
    snprintf(args, sizeof args, "export --ckpt '%s' --out '%s/cli/x' --format gguf", ckpt, g_dir);
    ck_assert_int_eq(run_cli(args, &err), 1);
    ck_assert_msg(strstr(err, "qtrain: error: --format gguf is not supported"), "%s", err);
    free(err);
    ck_assert_int_eq(run_cli("import --from /nonexistent --out x.bin", &err), 1);
    ck_assert_msg(strstr(err, "qtrain: error: cannot open config.json"), "%s", err);
    free(err);
    free(ckpt);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("export");
    TCase *tj = tcase_create("json");
    tcase_add_test(tj, test_json_values);
    tcase_add_test(tj, test_json_errors);
    suite_add_tcase(s, tj);
    TCase *ts = tcase_create("safetensors");
    tcase_add_test(ts, test_st_roundtrip);
    tcase_add_test(ts, test_st_errors);
    suite_add_tcase(s, ts);
    TCase *te = tcase_create("hf");
    tcase_add_unchecked_fixture(te, make_data, free_data);
    tcase_set_timeout(te, 600);
    tcase_add_test(te, test_roundtrip_opt);
    tcase_add_test(te, test_roundtrip_opt_variant);
    tcase_add_test(te, test_roundtrip_llama);
    tcase_add_test(te, test_roundtrip_not_in_transformers);
    tcase_add_test(te, test_export_names);
    tcase_add_test(te, test_export_opt_layout);
    tcase_add_test(te, test_import_refuses);
    tcase_add_test(te, test_export_tokenizer);
    tcase_add_test(te, test_cli);
    suite_add_tcase(s, te);
    return s;
}

int main(void) { return qt_test_run_suite(suite()); }

// make_seeds.c: writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/),
// small valid inputs the fuzzers mutate from; each is checked to load here before it is
// written. Run by hand after a format change, then commit the files:
//     build/fuzz/make_seeds tests/fuzz/corpus
#include <math.h>

#include "fuzz_model.h"
#include "fuzz_util.h"
#include "qtrain/checkpoint.h"
#include "qtrain/data.h"
#include "qtrain/tokenizer.h"

static const char *out_root;

static void seed(const char *target, const char *name, uint8_t mode, const void *body, size_t n) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", out_root, target);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *buf = malloc(n + 1);
    if (!buf) abort();
    buf[0] = mode;
    memcpy(buf + 1, body, n);
    fz_write(path, buf, n + 1);
    free(buf);
    printf("%s (%zu bytes)\n", path, n + 1);
}

static void must(qt_status st, const char *what) {
    if (st != QT_OK) {
        fprintf(stderr, "make_seeds: %s: %s\n", what, qt_last_error());
        exit(1);
    }
}

// A training checkpoint of fuzz_model.h's model, in train_state.c's format, with a short
// stored config (a quoted data.dir holding '#') and a tokenizer identity.
static void checkpoint_seed(void) {
    uint64_t meta[4] = {1, 3, 0, 5}, tok[2] = {0x0123456789abcdefull, 300};
    double scaler[3] = {65536.0, 10.0, 0.0};
    const char config[] = "model.n_layer = 2\ndata.dir = \"data #1\"  # a comment\n";
    float w[12], b[5], scale = 0.05f, m[FZ_N_PARAMS], v[FZ_N_PARAMS];
    int8_t q[8] = {-1, 0, 1, 1, 0, -1, 1, 0};
    for (int i = 0; i < 12; i++)
        w[i] = 0.1f * (float)(i - 6);
    for (int i = 0; i < 5; i++)
        b[i] = 0.01f * (float)i;
    for (int i = 0; i < FZ_N_PARAMS; i++)
        m[i] = 1e-3f * (float)i, v[i] = 1e-6f * (float)i;
    qt_ckpt_entry e[] = {
        {"qtrain.meta", QT_CKPT_U64, 1, {4}, meta},
        {"qtrain.config", QT_CKPT_U8, 1, {(int64_t)strlen(config)}, config},
        {"qtrain.loss_scaler", QT_CKPT_F64, 1, {3}, scaler},
        {"qtrain.tokenizer", QT_CKPT_U64, 1, {2}, tok},
        {"w", QT_CKPT_F32, 2, {4, 3}, w},
        {"q", QT_CKPT_I8, 2, {2, 4}, q},
        {"q.scale", QT_CKPT_F32, 1, {1}, &scale},
        {"b", QT_CKPT_F32, 1, {5}, b},
        {"optimizer.m", QT_CKPT_F32, 1, {FZ_N_PARAMS}, m},
        {"optimizer.v", QT_CKPT_F32, 1, {FZ_N_PARAMS}, v},
    };
    char path[600];
    fz_path(path, sizeof path, "seed.ckpt");
    must(qt_ckpt_write(path, e, (int)(sizeof e / sizeof e[0])), "writing the checkpoint seed");
    static fz_model fm;
    fz_model_init(&fm);
    qt_train_progress progress;
    must(qt_train_state_load(path, &fm.model, &fm.opt, &progress), "loading the checkpoint seed");
    if (progress.step != 3 || progress.tokenizer.vocab_size != 300 || fm.scales[1] != scale) {
        fprintf(stderr, "make_seeds: the checkpoint seed loads wrong\n");
        exit(1);
    }
    size_t n = 0;
    uint8_t *bytes = fz_read(path, &n);
    seed("checkpoint", "train_state", 1, bytes, n); // mode 1: checksum recomputed
    free(bytes);
}

static void shard_seeds(void) {
    uint8_t buf[QT_SHARD_HEADER_BYTES + 2 * 40 + 3];
    memset(buf, 0, sizeof buf);
    buf[1] = 1; // p[2]: vocabulary 258
    buf[2] = 9; // p[3]: split after 18 tokens
    uint8_t *shard = buf + 3;
    uint32_t magic = QT_SHARD_MAGIC, count = 40;
    for (int i = 0; i < 4; i++) {
        shard[i] = (uint8_t)(magic >> (8 * i));
        shard[8 + i] = (uint8_t)(count >> (8 * i));
    }
    shard[4] = 1; // version
    for (int t = 0; t < 40; t++) {
        uint16_t tok = (uint16_t)((t * 37 + 11) % 258);
        shard[QT_SHARD_HEADER_BYTES + 2 * t] = (uint8_t)tok;
        shard[QT_SHARD_HEADER_BYTES + 2 * t + 1] = (uint8_t)(tok >> 8);
    }
    buf[0] = 4 * 3 + 3; // p[1]: B = 4, T = 4
    seed("shard", "one_shard", 0, buf, sizeof buf);
    seed("shard", "two_shards_shuffled", 2 | 4 | 8, buf, sizeof buf);
    const char json[] =
        "xxx{\n  \"input\": \"data/kjv.txt\",\n  \"vocab_size\": 300,\n"
        "  \"tokenizer\": {\"file\": \"tokenizer.bin\", \"fnv1a64\": \"0123456789abcdef\", "
        "\"vocab_size\": 300},\n  \"val_unigram_entropy_nats\": 2.940300\n}\n";
    seed("shard", "prepare_json", 1, json, sizeof json - 1); // "xxx": the 3 parameter bytes
}

static void tokenizer_seeds(void) {
    const char text[] = "the cat sat on the mat; the hat, the bat. 42 cats!\n";
    qt_tokenizer *tok = NULL;
    must(qt_tokenizer_train(&tok, (const uint8_t *)text, strlen(text), 264, NULL, NULL),
         "training the tokenizer seed");
    char path[600];
    fz_path(path, sizeof path, "seed_tok.bin");
    must(qt_tokenizer_save(tok, path), "saving the tokenizer seed");
    qt_tokenizer_free(tok);
    size_t n = 0;
    uint8_t *file = fz_read(path, &n);
    uint8_t *body = malloc(n + strlen(text));
    if (!file || !body) abort();
    memcpy(body, file, n);
    memcpy(body + n, text, strlen(text));
    seed("tokenizer", "file_and_text", 1, body, n + strlen(text));     // mode 1: checksum fixed
    seed("tokenizer", "train_text", 2 | (2 << 2), text, strlen(text)); // train 265 tokens
    free(body);
    free(file);
}

static void config_seeds(void) {
    const char conf[] = "# tiny\nmodel.n_layer = 2   # two\nmodel.d_model = 64\n"
                        "attn.softmax = clipped\nattn.gamma = -0.03\n"
                        "data.dir = \"runs/a#1 \\\"q\\\"\"\ntrain.seed = 18446744073709551615\n"
                        "train.lr=3e-4\nquant.mode = qat\n";
    char buf[sizeof conf + 64];
    snprintf(buf, sizeof buf, "%smodel.n_head=4\n", conf);
    seed("config", "file_and_set", 1, buf, strlen(buf)); // the last line is a --set
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR (e.g. tests/fuzz/corpus)\n");
        return 2;
    }
    out_root = argv[1];
    mkdir(out_root, 0755);
    checkpoint_seed();
    shard_seeds();
    tokenizer_seeds();
    config_seeds();
    return 0;
}

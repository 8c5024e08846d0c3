// qt_export_ref.c: qtrain's side of the transformers comparison (tests/export/
// check_transformers.py), linked with libqtrain:
//
//   qt_export_ref logits CKPT B T TOKENS OUT   the logits (B, T, V) fp32 of the checkpoint's model
//                                              on the CPU backend (fp32, no dropout) for the
//                                              int32 tokens (B, T) in file TOKENS, into OUT
//   qt_export_ref encode TOKENIZER TEXT OUT    qt_tokenizer_encode of file TEXT's bytes, as
//                                              int32 token ids into OUT
//
// Files are raw little-endian arrays. Errors: one line on stderr, exit 1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/backend.h"
#include "qtrain/tokenizer.h"
#include "qtrain/trainer.h"

static int fail(const char *what) {
    fprintf(stderr, "qt_export_ref: %s: %s\n", what, qt_last_error());
    return 1;
}

// The whole file at path (malloc'd) and its size; NULL on failure.
static void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static int write_all(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    int bad = fwrite(buf, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad;
}

static int cmd_logits(const char *ckpt, int B, int T, const char *tokens_path, const char *out) {
    qt_config cfg;
    if (qt_train_state_read_config(ckpt, &cfg) != QT_OK) return fail(ckpt);
    size_t n = 0;
    int *tokens = read_all(tokens_path, &n);
    if (!tokens || n != (size_t)B * T * sizeof(int)) {
        fprintf(stderr, "qt_export_ref: %s: expected %d x %d int32 tokens\n", tokens_path, B, T);
        free(tokens);
        return 1;
    }
    qt_backend be;
    qt_model m;
    if (qt_backend_cpu_init(&be, 0) != QT_OK) return fail("cpu backend");
    if (qt_model_init(&m, &cfg, &be, B, T) != QT_OK) return fail("model");
    int rc = 0;
    const size_t count = (size_t)B * T * cfg.vocab_size;
    float *logits = malloc(count * sizeof(float));
    if (!logits || qt_train_state_load(ckpt, &m, NULL, NULL) != QT_OK ||
        qt_model_forward(&m, tokens, NULL, B, T, NULL) != QT_OK ||
        be.ops->to_host_f32(be.ctx, logits, m.logits, count) != QT_OK)
        rc = fail("forward");
    else if (write_all(out, logits, count * sizeof(float)) != 0)
        rc = fail(out);
    free(logits);
    free(tokens);
    qt_model_free(&m);
    qt_backend_free(&be);
    return rc;
}

static int cmd_encode(const char *tok_path, const char *text_path, const char *out) {
    qt_tokenizer *tok = NULL;
    if (qt_tokenizer_load(&tok, tok_path) != QT_OK) return fail(tok_path);
    size_t len = 0, n = 0;
    uint8_t *text = read_all(text_path, &len);
    uint16_t *ids = NULL;
    int rc = 0;
    if (!text) {
        fprintf(stderr, "qt_export_ref: cannot read %s\n", text_path);
        rc = 1;
    } else if (qt_tokenizer_encode(tok, text, len, &ids, &n) != QT_OK) {
        rc = fail("encode");
    } else {
        int *wide = malloc((n + 1) * sizeof(int));
        for (size_t i = 0; wide && i < n; i++)
            wide[i] = ids[i];
        rc = !wide || write_all(out, wide, n * sizeof(int)) != 0;
        if (rc) fprintf(stderr, "qt_export_ref: cannot write %s\n", out);
        free(wide);
    }
    free(ids);
    free(text);
    qt_tokenizer_free(tok);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "logits") == 0)
        return cmd_logits(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5], argv[6]);
    if (argc == 5 && strcmp(argv[1], "encode") == 0) return cmd_encode(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: qt_export_ref logits CKPT B T TOKENS OUT\n"
                    "       qt_export_ref encode TOKENIZER TEXT OUT\n");
    return 2;
}

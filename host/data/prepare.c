// prepare.c: a text file -> tokenizer.bin, train/val shards and prepare.json (qtrain/data.h).
//
// The validation split is the tail of the text, cut at a line boundary, and the tokenizer is
// trained on the training part only, so validation text is unseen by every learned piece.
// prepare.json's val_unigram_entropy_nats is the cross-entropy of the validation tokens under
// the training tokens' unigram distribution with add-one smoothing,
//     H = -(1 / N_val) sum_{t in val} log((count_train(t) + 1) / (N_train + V)),
// the loss of a model that ignores context: a trained model's validation loss must be below it.
#include <errno.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/io/clock.h"
#include "host/io/file.h"
#include "qtrain/data.h"
#include "qtrain/mlm.h"
#include "qtrain/tokenizer.h"

typedef struct {
    int verbose;
    int last_decile;
    double t0;
} progress_state;

static void train_progress(int done, int total, void *user) {
    progress_state *p = user;
    int decile = (int)((long long)done * 10 / total);
    if (!p->verbose || decile == p->last_decile) return;
    p->last_decile = decile;
    fprintf(stderr, "prepare: tokenizer: %d/%d merges (%.1f s)\n", done, total,
            qt_clock_seconds() - p->t0);
}

// Writes tokens (n,) as <dir>/<split>_NNN.bin shards of at most shard_tokens each (at least
// one shard, so an empty split still shows up), then removes any other <split>_*.bin there.
static qt_status write_split(const char *dir, const char *split, const uint16_t *tokens,
                             size_t n, size_t shard_tokens, int *n_shards) {
    size_t count = n == 0 ? 1 : (n + shard_tokens - 1) / shard_tokens;
    // Zero-padded to a common width so the loader's name order is the shard order.
    int width = 3;
    for (size_t c = count - 1; c >= 1000; c /= 10) width++;
    size_t plen = strlen(dir) + strlen(split) + 32;
    char *path = malloc(plen);
    if (!path) return qt_error(QT_ERR_OOM, "out of memory writing shards");
    qt_status st = QT_OK;
    for (size_t s = 0; s < count && st == QT_OK; s++) {
        size_t begin = s * shard_tokens;
        size_t len = n - begin < shard_tokens ? n - begin : shard_tokens;
        char num[24];
        int digits = snprintf(num, sizeof num, "%zu", s);
        char pad[24] = "";
        for (int k = digits; k < width && k < 20; k++) strcat(pad, "0");
        snprintf(path, plen, "%s/%s_%s%s.bin", dir, split, pad, num);
        st = qt_shard_write(path, tokens + begin, len);
    }
    free(path);
    if (st != QT_OK) return st;
    *n_shards = (int)count;

    // Stale shards from an earlier prepare would be picked up by the loader's <split>_*.bin.
    DIR *d = opendir(dir);
    if (!d) return qt_error(QT_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    size_t slen = strlen(split);
    for (struct dirent *e; (e = readdir(d)) != NULL && st == QT_OK;) {
        const char *name = e->d_name;
        size_t nlen = strlen(name);
        if (nlen < slen + 5 || strncmp(name, split, slen) != 0 || name[slen] != '_' ||
            strcmp(name + nlen - 4, ".bin") != 0)
            continue;
        // Ours: exactly `width` digits naming an index below count.
        const char *digits = name + slen + 1;
        size_t ndig = nlen - slen - 5;
        int ours = ndig == (size_t)width;
        size_t idx = 0;
        for (size_t k = 0; k < ndig && ours; k++) {
            ours = digits[k] >= '0' && digits[k] <= '9';
            idx = idx * 10 + (size_t)(digits[k] - '0');
        }
        if (ours && idx < count) continue;
        size_t len = strlen(dir) + nlen + 2;
        char *stale = malloc(len);
        if (!stale) {
            st = qt_error(QT_ERR_OOM, "out of memory removing stale shards");
            break;
        }
        snprintf(stale, len, "%s/%s", dir, name);
        if (unlink(stale) != 0)
            st = qt_error(QT_ERR_IO, "cannot remove stale shard %s: %s; remove it by hand",
                          stale, strerror(errno));
        free(stale);
    }
    closedir(d);
    return st;
}

// Removes what prepare writes into dir (tokenizer.bin, prepare.json, train_*.bin, val_*.bin),
// after a failure in a directory it created.
static void remove_outputs(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    size_t dlen = strlen(dir);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *name = e->d_name;
        size_t nlen = strlen(name);
        int ours = strcmp(name, "tokenizer.bin") == 0 || strcmp(name, "prepare.json") == 0 ||
                   ((strncmp(name, "train_", 6) == 0 || strncmp(name, "val_", 4) == 0) &&
                    nlen > 4 && strcmp(name + nlen - 4, ".bin") == 0);
        if (!ours) continue;
        char *path = malloc(dlen + nlen + 2);
        if (!path) break;
        snprintf(path, dlen + nlen + 2, "%s/%s", dir, name);
        unlink(path);
        free(path);
    }
    closedir(d);
}

// Writes s to f as a JSON string (quotes and escapes included).
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static qt_status write_json(const char *out_dir, const char *text_path, int vocab_size,
                            double val_fraction, qt_tokenizer_id tok_id,
                            const qt_prepare_stats *s) {
    char *body = NULL;
    size_t body_len = 0;
    FILE *f = open_memstream(&body, &body_len);
    if (!f) return qt_error(QT_ERR_OOM, "out of memory writing prepare.json");
    fprintf(f, "{\n  \"input\": ");
    json_string(f, text_path);
    fprintf(f, ",\n  \"vocab_size\": %d,\n  \"val_fraction\": %g,\n", vocab_size,
            val_fraction);
    fprintf(f,
            "  \"tokenizer\": {\"file\": \"tokenizer.bin\", \"fnv1a64\": \"%016llx\", "
            "\"vocab_size\": %d},\n",
            (unsigned long long)tok_id.checksum, tok_id.vocab_size);
    // the masked-LM encoder's special tokens follow the tokenizer's (qtrain/mlm.h)
    fprintf(f,
            "  \"mlm_special_tokens\": {\"pad\": %d, \"cls\": %d, \"sep\": %d, \"mask\": %d, "
            "\"model_vocab_size\": %d},\n",
            vocab_size + QT_MLM_PAD, vocab_size + QT_MLM_CLS, vocab_size + QT_MLM_SEP,
            vocab_size + QT_MLM_MASK, vocab_size + QT_MLM_SPECIALS);
    fprintf(f, "  \"train_bytes\": %llu,\n  \"val_bytes\": %llu,\n",
            (unsigned long long)s->train_bytes, (unsigned long long)s->val_bytes);
    fprintf(f, "  \"train_tokens\": %llu,\n  \"val_tokens\": %llu,\n",
            (unsigned long long)s->train_tokens, (unsigned long long)s->val_tokens);
    fprintf(f, "  \"train_shards\": %d,\n  \"val_shards\": %d,\n", s->train_shards,
            s->val_shards);
    fprintf(f, "  \"val_unigram_entropy_nats\": %.6f\n}\n", s->val_unigram_entropy);
    fclose(f);
    size_t plen = strlen(out_dir) + 32;
    char *path = malloc(plen);
    qt_status st;
    if (!path || !body) {
        st = qt_error(QT_ERR_OOM, "out of memory writing prepare.json");
    } else {
        snprintf(path, plen, "%s/prepare.json", out_dir);
        const void *bufs[1] = {body};
        size_t lens[1] = {body_len};
        st = qt_data_write_atomic(path, bufs, lens, 1);
    }
    free(path);
    free(body);
    return st;
}

qt_status qt_prepare(const char *text_path, const char *out_dir, int vocab_size,
                     double val_fraction, int verbose) {
    return qt_prepare_ex(text_path, out_dir, vocab_size, val_fraction, QT_PREPARE_SHARD_TOKENS,
                         verbose, NULL);
}

qt_status qt_prepare_ex(const char *text_path, const char *out_dir, int vocab_size,
                        double val_fraction, size_t shard_tokens, int verbose,
                        qt_prepare_stats *stats) {
    if (!text_path || !out_dir) return qt_error(QT_ERR_ARG, "qt_prepare: NULL path");
    if (vocab_size <= 256 || vocab_size > QT_TOKENIZER_MAX_VOCAB)
        return qt_error(QT_ERR_ARG, "--vocab-size %d out of range; use 257 to %d", vocab_size,
                        QT_TOKENIZER_MAX_VOCAB);
    if (!(val_fraction > 0.0 && val_fraction < 1.0))
        return qt_error(QT_ERR_ARG, "--val-fraction %g out of range; use a value in (0, 1), "
                        "e.g. 0.05", val_fraction);
    if (shard_tokens < 1 || shard_tokens > QT_SHARD_MAX_TOKENS)
        return qt_error(QT_ERR_ARG, "shard size %zu tokens out of range [1, %zu]", shard_tokens,
                        QT_SHARD_MAX_TOKENS);

    qt_prepare_stats s;
    memset(&s, 0, sizeof s);
    uint8_t *text = NULL;
    size_t len = 0;
    qt_tokenizer *tok = NULL;
    uint16_t *train = NULL, *val = NULL;
    size_t n_train = 0, n_val = 0;
    uint64_t *counts = NULL;
    char *path = NULL;
    char *created = NULL; // the topmost directory this call created, if any
    double t0 = qt_clock_seconds();

    qt_status st = qt_io_read_file(text_path, "input text", NULL, SIZE_MAX - 1, &text, &len);
    if (st != QT_OK) goto out;
    // The validation part starts at the first line start at or after len * (1 - val_fraction),
    // or failing that the last one before it.
    size_t cut0 = len - (size_t)((double)len * val_fraction);
    size_t cut = cut0;
    while (cut < len && !(cut > 0 && text[cut - 1] == '\n')) cut++;
    if (cut >= len) {
        cut = cut0 < len ? cut0 : len;
        while (cut > 0 && text[cut - 1] != '\n') cut--;
    }
    if (cut == 0 || cut >= len) {
        st = qt_error(QT_ERR_ARG, "input text %s (%zu bytes) has no line break to split %g of "
                      "it off for validation; use a text with several lines", text_path, len,
                      val_fraction);
        goto out;
    }
    s.train_bytes = cut;
    s.val_bytes = len - cut;
    if (verbose)
        fprintf(stderr, "prepare: %s: %zu bytes, train %zu, validation %zu (from a line "
                "boundary)\n", text_path, len, cut, len - cut);
    // The output directory is created only once the tokenizer is trained (an impossible
    // vocabulary leaves nothing behind); whether it can be is checked before that work.
    st = qt_io_check_dir_creatable(out_dir, "output directory");
    if (st != QT_OK) goto out;

    progress_state prog = {verbose, -1, qt_clock_seconds()};
    st = qt_tokenizer_train(&tok, text, cut, vocab_size, train_progress, &prog);
    if (st != QT_OK) goto out;
    s.tokenizer_seconds = qt_clock_seconds() - prog.t0;
    st = qt_io_make_dirs_created(out_dir, 0755, "output directory", &created);
    if (st != QT_OK) goto out;
    // Shards and tokenizers of killed prepares (`*.tmp.<pid>` of dead pids).
    int stale = 0;
    uint64_t stale_bytes = 0;
    st = qt_io_remove_stale_temps(out_dir, &stale, &stale_bytes);
    if (st != QT_OK) goto out;
    if (verbose && stale)
        fprintf(stderr, "prepare: removed %d temporary file(s) of killed runs (%.1f MiB)\n", stale,
                (double)stale_bytes / (1024.0 * 1024.0));
    size_t plen = strlen(out_dir) + 32;
    path = malloc(plen);
    if (!path) {
        st = qt_error(QT_ERR_OOM, "out of memory");
        goto out;
    }
    snprintf(path, plen, "%s/tokenizer.bin", out_dir);
    st = qt_tokenizer_save(tok, path);
    if (st != QT_OK) goto out;
    if (verbose)
        fprintf(stderr, "prepare: tokenizer: %d tokens trained in %.2f s, saved to %s\n",
                vocab_size, s.tokenizer_seconds, path);

    double t1 = qt_clock_seconds();
    st = qt_tokenizer_encode(tok, text, cut, &train, &n_train);
    if (st != QT_OK) goto out;
    st = qt_tokenizer_encode(tok, text + cut, len - cut, &val, &n_val);
    if (st != QT_OK) goto out;
    s.encode_seconds = qt_clock_seconds() - t1;
    s.train_tokens = n_train;
    s.val_tokens = n_val;
    if (verbose)
        fprintf(stderr, "prepare: encoded train %zu tokens, validation %zu tokens (%.2f bytes "
                "per token) in %.2f s\n", n_train, n_val, (double)cut / (double)n_train,
                s.encode_seconds);

    st = write_split(out_dir, "train", train, n_train, shard_tokens, &s.train_shards);
    if (st != QT_OK) goto out;
    st = write_split(out_dir, "val", val, n_val, shard_tokens, &s.val_shards);
    if (st != QT_OK) goto out;

    counts = calloc((size_t)vocab_size, sizeof *counts);
    if (!counts) {
        st = qt_error(QT_ERR_OOM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_train; i++) counts[train[i]]++;
    double sum = 0.0, denom = (double)n_train + (double)vocab_size;
    for (size_t i = 0; i < n_val; i++) sum += log(((double)counts[val[i]] + 1.0) / denom);
    s.val_unigram_entropy = -sum / (double)n_val;

    st = write_json(out_dir, text_path, vocab_size, val_fraction, qt_tokenizer_identity(tok), &s);
    if (st != QT_OK) goto out;
    if (verbose)
        fprintf(stderr, "prepare: wrote %s: %d train and %d validation shards; validation "
                "unigram entropy %.4f nats/token; %.2f s in all\n", out_dir, s.train_shards,
                s.val_shards, s.val_unigram_entropy, qt_clock_seconds() - t0);
    if (stats) *stats = s;
out:
    // A directory this call created holds only what it wrote: a failure removes both.
    if (st != QT_OK && created) {
        remove_outputs(out_dir);
        qt_io_remove_created_dirs(out_dir, created);
    }
    free(created);
    free(counts);
    free(path);
    free(train);
    free(val);
    qt_tokenizer_free(tok);
    free(text);
    return st;
}

// ---- prepare.json's tokenizer identity -----------------------------------------------------
// A small strict JSON reader (RFC 8259 values; nesting depth at most 64) that looks only at
// the top-level member "tokenizer": {"fnv1a64": "<16 hex digits>", "vocab_size": <int>, ...}.

typedef struct {
    const char *p, *end;
    int depth;
} json_in;

static void jread_ws(json_in *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

// A string at j->p; its bytes (escapes decoded, \u as '?' beyond ASCII) into out[cap] when out
// is not NULL and it fits (*fits = 0 otherwise). 0 when malformed.
static int jread_string(json_in *j, char *out, size_t cap, int *fits) {
    size_t n = 0;
    if (fits) *fits = 1;
    if (j->p >= j->end || *j->p != '"') return 0;
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (j->p >= j->end) return 0;
            char e = *j->p++;
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *at = e ? strchr(from, e) : NULL;
            if (at) {
                c = (unsigned char)to[at - from];
            } else if (e == 'u') {
                unsigned v = 0;
                for (int k = 0; k < 4; k++) {
                    if (j->p >= j->end) return 0;
                    char h = *j->p++;
                    int d = h >= '0' && h <= '9'   ? h - '0'
                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                   : -1;
                    if (d < 0) return 0;
                    v = v * 16 + (unsigned)d;
                }
                c = v < 0x80 ? (unsigned char)v : '?';
            } else {
                return 0;
            }
        }
        if (out) {
            if (n + 1 < cap)
                out[n++] = (char)c;
            else if (fits)
                *fits = 0;
        }
    }
    if (j->p >= j->end) return 0;
    j->p++;
    if (out && cap) out[n] = '\0';
    return 1;
}

// A number at j->p (JSON's grammar); its value in *v when v is not NULL. 0 when malformed.
static int jread_number(json_in *j, double *v) {
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9')) return 0;
    if (*j->p == '0')
        j->p++;
    else
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9')) return 0;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9')) return 0;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (v) {
        char buf[64];
        size_t n = (size_t)(j->p - s);
        if (n >= sizeof buf) {
            *v = 1e300; // longer than any value this reader wants: out of every range
        } else {
            memcpy(buf, s, n);
            buf[n] = '\0';
            *v = strtod(buf, NULL);
        }
    }
    return 1;
}

static int jread_literal(json_in *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return 0;
    j->p += n;
    return 1;
}

// Any value; 0 when malformed.
static int jread_skip(json_in *j) {
    jread_ws(j);
    if (j->p >= j->end) return 0;
    char c = *j->p;
    if (c == '"') return jread_string(j, NULL, 0, NULL);
    if (c == 't') return jread_literal(j, "true");
    if (c == 'f') return jread_literal(j, "false");
    if (c == 'n') return jread_literal(j, "null");
    if (c != '{' && c != '[') return jread_number(j, NULL);
    if (++j->depth > 64) return 0;
    char close = c == '{' ? '}' : ']';
    j->p++;
    jread_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        if (c == '{') {
            jread_ws(j);
            if (!jread_string(j, NULL, 0, NULL)) return 0;
            jread_ws(j);
            if (j->p >= j->end || *j->p++ != ':') return 0;
        }
        if (!jread_skip(j)) return 0;
        jread_ws(j);
        if (j->p >= j->end) return 0;
        char d = *j->p++;
        if (d == close) break;
        if (d != ',') return 0;
    }
    j->depth--;
    return 1;
}

// The members of the object at j->p: for each, fn(key, j, user) parses (or skips) its value.
// 0 when malformed or when fn returns 0.
static int jread_object(json_in *j, int (*fn)(const char *key, json_in *j, void *user),
                        void *user) {
    jread_ws(j);
    if (j->p >= j->end || *j->p != '{') return 0;
    j->p++;
    jread_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 1;
    }
    for (;;) {
        char key[64];
        int fits;
        jread_ws(j);
        if (!jread_string(j, key, sizeof key, &fits)) return 0;
        if (!fits) key[0] = '\0'; // a long key is none of ours
        jread_ws(j);
        if (j->p >= j->end || *j->p++ != ':') return 0;
        jread_ws(j);
        if (!fn(key, j, user)) return 0;
        jread_ws(j);
        if (j->p >= j->end) return 0;
        char d = *j->p++;
        if (d == '}') return 1;
        if (d != ',') return 0;
    }
}

typedef struct {
    qt_tokenizer_id id;
    int has_sum, has_vocab, found;
    const char *bad; // what is wrong with "tokenizer", or NULL
} tok_member;

static int tokenizer_field(const char *key, json_in *j, void *user) {
    tok_member *t = user;
    if (strcmp(key, "fnv1a64") == 0) {
        char hex[24];
        int fits;
        if (!jread_string(j, hex, sizeof hex, &fits)) return 0;
        if (!fits || strlen(hex) != 16 || strspn(hex, "0123456789abcdef") != 16) {
            t->bad = "\"fnv1a64\" is not 16 lowercase hex digits";
            return 1;
        }
        t->id.checksum = strtoull(hex, NULL, 16);
        t->has_sum = 1;
        return 1;
    }
    if (strcmp(key, "vocab_size") == 0) {
        double v = 0;
        if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
            if (!jread_number(j, &v)) return 0;
            if (v >= 257 && v <= QT_TOKENIZER_MAX_VOCAB && v == (double)(int)v) {
                t->id.vocab_size = (int)v;
                t->has_vocab = 1;
                return 1;
            }
        } else if (!jread_skip(j)) {
            return 0;
        }
        t->bad = "\"vocab_size\" is not an integer in 257..65536";
        return 1;
    }
    return jread_skip(j);
}

static int top_field(const char *key, json_in *j, void *user) {
    tok_member *t = user;
    if (strcmp(key, "tokenizer") != 0) return jread_skip(j);
    if (t->found) {
        t->bad = "\"tokenizer\" appears twice";
        return jread_skip(j);
    }
    t->found = 1;
    if (j->p < j->end && *j->p == '{') return jread_object(j, tokenizer_field, t);
    t->bad = "\"tokenizer\" is not an object";
    return jread_skip(j);
}

qt_status qt_data_parse_tokenizer_id(const char *text, size_t len, const char *path,
                                     qt_tokenizer_id *id) {
    id->checksum = 0;
    id->vocab_size = 0;
    json_in j = {text, text + len, 0};
    tok_member t;
    memset(&t, 0, sizeof t);
    int ok = jread_object(&j, top_field, &t);
    jread_ws(&j);
    if (!ok || j.p != j.end)
        return qt_error(QT_ERR_FORMAT,
                        "%s is not valid JSON (at byte %zu): fix it or re-create "
                        "the data with qtrain prepare",
                        path, (size_t)(j.p - text));
    if (!t.found) return QT_OK; // an older prepare.json: unknown
    if (!t.bad && !(t.has_sum && t.has_vocab)) t.bad = "it lacks \"fnv1a64\" or \"vocab_size\"";
    if (t.bad)
        return qt_error(QT_ERR_FORMAT,
                        "%s: its \"tokenizer\" member is malformed: %s; re-create "
                        "the data with qtrain prepare",
                        path, t.bad);
    *id = t.id;
    return QT_OK;
}

qt_status qt_data_tokenizer_id(const char *dir, qt_tokenizer_id *id) {
    id->checksum = 0;
    id->vocab_size = 0;
    size_t plen = strlen(dir) + 16;
    char *path = malloc(plen);
    if (!path) return qt_error(QT_ERR_OOM, "out of memory reading %s/prepare.json", dir);
    snprintf(path, plen, "%s/prepare.json", dir);
    qt_status st = QT_OK;
    if (access(path, F_OK) == 0) {
        uint8_t *text = NULL;
        size_t len = 0;
        st = qt_io_read_file(path, "data description", NULL, 1 << 20, &text, &len);
        if (st == QT_OK) st = qt_data_parse_tokenizer_id((const char *)text, len, path, id);
        free(text);
    }
    free(path);
    return st;
}

// dataloader.c: batches of (inputs, targets) from llm.c-format shards; the window layout,
// epoch order and resume contract are in qtrain/data.h.
//
// Shards are memory-mapped (read-only), so a split larger than memory still loads and opening
// costs one pass over the tokens (the vocabulary check). The epoch's window order is a
// Fisher-Yates shuffle driven by Philox (base/philox.h) keyed by the seed, with a
// stream per epoch: a pure function of (seed, epoch), rebuilt on seek, so resuming reproduces
// the batches bit for bit. Draws are unbiased (rejection sampling on 32-bit words).
//
// The masked-LM mode (qt_dataloader_open_mlm, qtrain/mlm.h) packs sentences instead: at open,
// one pass over the stream lays out the packed sequences (their stream ranges are the
// "windows"); a batch rebuilds each from its range the same way, then masks it with the
// Philox stream of (epoch, sequence index).
#include "qtrain/data.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/philox.h"
#include "qtrain/mlm.h"

// Philox stream tag for data order ("data"), kept apart from every other use of the seed.
#define DATA_STREAM_TAG 0x64617461u

typedef struct {
    char *path;
    qt_shard_view v; // the whole file, mapped read-only; v.tokens little-endian
} shard_map;

struct qt_dataloader {
    int B, T, vocab_size;
    uint64_t seed;
    int shuffle;
    shard_map *shards;    // (n_shards,)
    int n_shards;
    uint64_t *starts;     // (n_shards + 1,): shard s holds stream tokens [starts[s], starts[s+1])
    uint64_t n_tokens;    // N
    uint64_t n_windows;   // W = (N - T - 1) / T + 1
    uint32_t *perm;       // (W,): this epoch's window order (shuffle only)
    uint64_t perm_epoch;  // the epoch perm was built for
    int *window;          // (T + 1,): scratch for one window
    qt_data_pos pos;
    // masked-LM mode (mlm = 1): windows are packed sequences of sentences
    int mlm;
    qt_mlm_tokens tk;     // the special ids
    float mlm_prob;
    uint8_t *boundary;    // (tk.n_text,): 1 for tokens that end a sentence (hold a newline)
    uint64_t *seq_start;  // (n_windows + 1,): sequence w packs stream tokens [start[w], start[w+1])
    int *lens, *types;    // (B,), (B, T): the last batch's lengths and token types
};

static int host_is_big_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Maps one shard and checks its header, size and tokens.
static qt_status map_shard(shard_map *s, int vocab_size) {
    QT_TRY(qt_shard_map(s->path, &s->v));
    int swap = host_is_big_endian();
    for (size_t i = 0; i < s->v.n; i++) {
        uint16_t t = s->v.tokens[i];
        if (swap) t = (uint16_t)(t << 8 | t >> 8);
        if (t >= vocab_size)
            return qt_error(QT_ERR_FORMAT,
                            "shard %s holds token %u at position %zu, outside the vocabulary "
                            "(size %d): it was made with another tokenizer; re-create the "
                            "shards with qtrain prepare or use the matching vocabulary",
                            s->path, t, i, vocab_size);
    }
    return QT_OK;
}

// Builds perm for `epoch`: Fisher-Yates, j uniform in [0, i] from Philox word (i, attempt).
static void build_perm(qt_dataloader *dl, uint64_t epoch) {
    const uint64_t W = dl->n_windows;
    const uint64_t stream = qt_stream_id(DATA_STREAM_TAG, epoch, 0);
    for (uint64_t i = 0; i < W; i++) dl->perm[i] = (uint32_t)i;
    for (uint64_t i = W - 1; i >= 1; i--) {
        const uint64_t range = i + 1;
        // Accept r below the largest multiple of range that fits in 2^32; r % range is then
        // exactly uniform. Each try has probability > 1/2; after 64 the modulo bias is moot.
        const uint64_t limit = (UINT64_C(1) << 32) - ((UINT64_C(1) << 32) % range);
        uint64_t r = 0;
        for (uint64_t attempt = 0; attempt < 64; attempt++) {
            r = qt_philox_u32(dl->seed, stream, i * 64 + attempt);
            if (r < limit) break;
        }
        uint64_t j = r % range;
        uint32_t tmp = dl->perm[i];
        dl->perm[i] = dl->perm[j];
        dl->perm[j] = tmp;
    }
    dl->perm_epoch = epoch;
}

void qt_dataloader_free(qt_dataloader *dl) {
    if (!dl) return;
    for (int s = 0; s < dl->n_shards; s++) {
        qt_shard_unmap(&dl->shards[s].v);
        free(dl->shards[s].path);
    }
    free(dl->shards);
    free(dl->starts);
    free(dl->perm);
    free(dl->window);
    free(dl->boundary);
    free(dl->seq_start);
    free(dl->lens);
    free(dl->types);
    free(dl);
}

static qt_status layout_mlm(qt_dataloader *dl, const char *dir, const char *split);
static qt_status load_boundaries(qt_dataloader *dl, const char *dir);

// Both modes: mlm_vocab > 0 opens the masked-LM mode for an encoder of that vocabulary.
static qt_status open_loader(qt_dataloader **out, const char *dir, const char *split, int B,
                             int T, int vocab_size, uint64_t seed, int shuffle, int mlm_vocab,
                             float mlm_prob) {
    if (!out || !dir || !split) return qt_error(QT_ERR_ARG, "qt_dataloader_open: NULL argument");
    *out = NULL;
    if (B < 1 || T < 1)
        return qt_error(QT_ERR_ARG, "data loader: batch size %d and sequence length %d must be "
                        ">= 1", B, T);
    if (vocab_size < 1 || vocab_size > 65536)
        return qt_error(QT_ERR_ARG, "data loader: vocab size %d out of range [1, 65536]",
                        vocab_size);
    if (!*split || strchr(split, '/'))
        return qt_error(QT_ERR_ARG, "data loader: invalid split name '%s'", split);

    qt_status st = QT_OK;
    char **names = NULL;
    size_t n_names = 0, cap_names = 0;
    qt_dataloader *dl = calloc(1, sizeof *dl);
    if (!dl) return qt_error(QT_ERR_OOM, "out of memory opening data in %s", dir);
    dl->B = B;
    dl->T = T;
    dl->vocab_size = vocab_size;
    dl->seed = seed;
    dl->shuffle = shuffle != 0;
    if (mlm_vocab > 0) {
        dl->mlm = 1;
        dl->tk = qt_mlm_tokens_of(mlm_vocab);
        dl->mlm_prob = mlm_prob;
        if (T < 3) {
            st = qt_error(QT_ERR_ARG, "masked-LM data: sequence length %d holds no text between "
                          "[CLS] and [SEP]; use train.seq_len >= 3", T);
            goto fail;
        }
        // the tokenizer first: a vocabulary mismatch is named as such, not as bad shards
        st = load_boundaries(dl, dir);
        if (st != QT_OK) goto fail;
    }

    // <split>_*.bin, sorted by name.
    DIR *d = opendir(dir);
    if (!d) {
        st = qt_error(QT_ERR_IO, "cannot open data directory %s: %s; create it with "
                      "qtrain prepare --out %s", dir, strerror(errno), dir);
        goto fail;
    }
    size_t plen = strlen(split);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t nlen = strlen(e->d_name);
        if (nlen < plen + 5 || strncmp(e->d_name, split, plen) != 0 || e->d_name[plen] != '_' ||
            strcmp(e->d_name + nlen - 4, ".bin") != 0)
            continue;
        if (n_names == cap_names) {
            size_t cap = cap_names ? 2 * cap_names : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                closedir(d);
                goto oom;
            }
            names = nn;
            cap_names = cap;
        }
        names[n_names] = strdup(e->d_name);
        if (!names[n_names]) {
            closedir(d);
            goto oom;
        }
        n_names++;
    }
    closedir(d);
    if (n_names == 0) {
        st = qt_error(QT_ERR_ARG, "no shards %s/%s_*.bin; create them with qtrain prepare "
                      "--out %s", dir, split, dir);
        goto fail;
    }
    if (n_names > (size_t)INT32_MAX) goto oom;
    qsort(names, n_names, sizeof *names, cmp_str);

    dl->shards = calloc(n_names, sizeof *dl->shards);
    dl->starts = calloc(n_names + 1, sizeof *dl->starts);
    if (!dl->shards || !dl->starts) goto oom;
    for (size_t i = 0; i < n_names; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path) goto oom;
        snprintf(path, len, "%s/%s", dir, names[i]);
        dl->shards[i].path = path;
        dl->n_shards = (int)i + 1;
        st = map_shard(&dl->shards[i], vocab_size);
        if (st != QT_OK) goto fail;
        dl->starts[i + 1] = dl->starts[i] + dl->shards[i].v.n;
    }
    dl->n_tokens = dl->starts[n_names];
    uint64_t need = (uint64_t)B * ((uint64_t)T + 1);
    if (dl->mlm) {
        st = layout_mlm(dl, dir, split);
        if (st != QT_OK) goto fail;
    } else if (dl->n_tokens < need) {
        st = qt_error(QT_ERR_ARG, "split '%s' in %s has %llu tokens, fewer than one batch needs "
                      "(B x (T + 1) = %d x %d = %llu); use a smaller batch size or sequence "
                      "length, or more data", split, dir, (unsigned long long)dl->n_tokens, B,
                      T + 1, (unsigned long long)need);
        goto fail;
    }
    if (!dl->mlm) dl->n_windows = (dl->n_tokens - (uint64_t)T - 1) / (uint64_t)T + 1;
    if (dl->n_windows > UINT32_MAX) {
        st = qt_error(QT_ERR_ARG, "split '%s' in %s has %llu windows of %d tokens, more than "
                      "2^32; use a longer sequence length", split, dir,
                      (unsigned long long)dl->n_windows, T);
        goto fail;
    }
    dl->window = malloc(((size_t)T + 1) * sizeof *dl->window);
    if (!dl->window) goto oom;
    if (dl->mlm) {
        dl->lens = malloc((size_t)B * sizeof *dl->lens);
        dl->types = malloc((size_t)B * T * sizeof *dl->types);
        if (!dl->lens || !dl->types) goto oom;
    }
    if (dl->shuffle) {
        dl->perm = malloc(dl->n_windows * sizeof *dl->perm);
        if (!dl->perm) goto oom;
        build_perm(dl, 0);
    }
    for (size_t i = 0; i < n_names; i++) free(names[i]);
    free(names);
    *out = dl;
    return QT_OK;
oom:
    st = qt_error(QT_ERR_OOM, "out of memory opening data in %s", dir);
fail:
    for (size_t i = 0; i < n_names; i++) free(names[i]);
    free(names);
    qt_dataloader_free(dl);
    return st;
}

// dst (n,) = stream tokens [start, start + n), crossing shard boundaries as needed.
static void copy_tokens(const qt_dataloader *dl, uint64_t start, int n, int *dst) {
    // The shard holding `start`: the last s with starts[s] <= start and a non-empty range.
    int lo = 0, hi = dl->n_shards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (dl->starts[mid] <= start) lo = mid;
        else hi = mid - 1;
    }
    int s = lo;
    int swap = host_is_big_endian();
    for (int k = 0; k < n; k++) {
        uint64_t at = start + (uint64_t)k;
        while (at >= dl->starts[s + 1]) s++;
        uint16_t t = dl->shards[s].v.tokens[at - dl->starts[s]];
        if (swap) t = (uint16_t)(t << 8 | t >> 8);
        dst[k] = t;
    }
}

qt_status qt_dataloader_open(qt_dataloader **out, const char *dir, const char *split, int B,
                             int T, int vocab_size, uint64_t seed, int shuffle) {
    return open_loader(out, dir, split, B, T, vocab_size, seed, shuffle, 0, 0.0f);
}

qt_status qt_dataloader_open_mlm(qt_dataloader **out, const char *dir, const char *split, int B,
                                 int T, int model_vocab, float mlm_prob, uint64_t seed,
                                 int shuffle) {
    if (model_vocab < 257 + QT_MLM_SPECIALS || model_vocab > 65536)
        return qt_error(QT_ERR_ARG, "masked-LM data: model vocabulary %d must hold the 256 bytes, "
                        "at least one merge and the %d special tokens, and fit 65536",
                        model_vocab, QT_MLM_SPECIALS);
    if (!(mlm_prob > 0.0f && mlm_prob < 1.0f))
        return qt_error(QT_ERR_ARG, "masked-LM data: data.mlm_prob = %g lies outside (0, 1)",
                        (double)mlm_prob);
    return open_loader(out, dir, split, B, T, model_vocab - QT_MLM_SPECIALS, seed, shuffle,
                       model_vocab, mlm_prob);
}

qt_status qt_dataloader_open_for(qt_dataloader **out, const qt_config *cfg, const char *split,
                                 int shuffle) {
    if (cfg->arch == QT_ARCH_BERT)
        return qt_dataloader_open_mlm(out, cfg->data_dir, split, cfg->batch_size, cfg->seq_len,
                                      cfg->vocab_size, cfg->mlm_prob, cfg->seed, shuffle);
    return qt_dataloader_open(out, cfg->data_dir, split, cfg->batch_size, cfg->seq_len,
                              cfg->vocab_size, cfg->seed, shuffle);
}

// Token `at` of the stream (binary search over the shards).
static int token_at(const qt_dataloader *dl, uint64_t at) {
    int tok;
    copy_tokens(dl, at, 1, &tok);
    return tok;
}

// The next sentence (or piece of at most `cap` tokens of one) at or after *p, below end:
// [*begin, *p) on return; 0 when none is left. Newline tokens between sentences are skipped.
static int next_sentence(const qt_dataloader *dl, uint64_t *p, uint64_t end, int cap,
                         uint64_t *begin) {
    while (*p < end && dl->boundary[token_at(dl, *p)]) (*p)++;
    if (*p >= end) return 0;
    *begin = *p;
    while (*p < end && *p - *begin < (uint64_t)cap && !dl->boundary[token_at(dl, *p)]) (*p)++;
    return 1;
}

// The boundary table from <dir>/tokenizer.bin: the tokens whose bytes hold a newline.
static qt_status load_boundaries(qt_dataloader *dl, const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    qt_tokenizer *tok = NULL;
    QT_TRY(qt_tokenizer_load(&tok, path));
    const int V = qt_tokenizer_vocab_size(tok);
    if (V != dl->tk.n_text) {
        qt_tokenizer_free(tok);
        return qt_error(QT_ERR_ARG, "masked-LM data: %s has %d tokens, but model.vocab_size = %d "
                        "leaves %d for text after the %d special tokens; set model.vocab_size = "
                        "%d", path, V, dl->tk.n_text + QT_MLM_SPECIALS, dl->tk.n_text,
                        QT_MLM_SPECIALS, V + QT_MLM_SPECIALS);
    }
    dl->boundary = calloc((size_t)V, 1);
    if (!dl->boundary) {
        qt_tokenizer_free(tok);
        return qt_error(QT_ERR_OOM, "masked-LM data: out of memory");
    }
    for (int t = 0; t < V; t++) {
        size_t n = 0;
        const uint8_t *bytes = qt_tokenizer_token_bytes(tok, t, &n);
        for (size_t i = 0; bytes && i < n; i++)
            if (bytes[i] == '\n') dl->boundary[t] = 1;
    }
    qt_tokenizer_free(tok);
    return QT_OK;
}

// The packed sequences: sentences in stream order, as many whole ones per sequence as fit
// [CLS] s [SEP] ... in T.
static qt_status layout_mlm(qt_dataloader *dl, const char *dir, const char *split) {
    const int T = dl->T, cap = T - 2;
    size_t n = 0, capacity = 1024;
    dl->seq_start = malloc(capacity * sizeof *dl->seq_start);
    if (!dl->seq_start) return qt_error(QT_ERR_OOM, "masked-LM data: out of memory");
    uint64_t p = 0, begin = 0, seq_begin = 0;
    int used = 1, sentences = 0; // [CLS]
    while (next_sentence(dl, &p, dl->n_tokens, cap, &begin)) {
        const int len = (int)(p - begin);
        if (sentences > 0 && used + len + 1 > T) {
            if (n + 2 > capacity) {
                uint64_t *grown = realloc(dl->seq_start, 2 * capacity * sizeof *grown);
                if (!grown) return qt_error(QT_ERR_OOM, "masked-LM data: out of memory");
                dl->seq_start = grown;
                capacity *= 2;
            }
            dl->seq_start[n++] = seq_begin;
            used = 1;
            sentences = 0;
        }
        if (sentences == 0) seq_begin = begin;
        used += len + 1;
        sentences++;
    }
    if (sentences > 0) {
        if (n + 2 > capacity) {
            uint64_t *grown = realloc(dl->seq_start, (capacity + 2) * sizeof *grown);
            if (!grown) return qt_error(QT_ERR_OOM, "masked-LM data: out of memory");
            dl->seq_start = grown;
        }
        dl->seq_start[n++] = seq_begin;
    }
    dl->seq_start[n] = dl->n_tokens; // the end of the last sequence (n + 1 entries allocated)
    dl->n_windows = n;
    if (n < (size_t)dl->B)
        return qt_error(QT_ERR_ARG, "masked-LM data: split '%s' in %s packs into %zu sequences of "
                        "%d tokens, fewer than one batch of %d; use a smaller batch size or "
                        "more data", split, dir, n, T, dl->B);
    return QT_OK;
}

// Sequence w into tokens (T), types (T); returns its length.
static int build_sequence(const qt_dataloader *dl, uint64_t w, int *tokens, int *types) {
    const int T = dl->T;
    uint64_t p = dl->seq_start[w], begin = 0;
    const uint64_t end = dl->seq_start[w + 1];
    int used = 0, type = 0;
    types[used] = 0;
    tokens[used++] = dl->tk.cls;
    while (used < T && next_sentence(dl, &p, end, T - 2, &begin)) {
        const int len = (int)(p - begin);
        copy_tokens(dl, begin, len, tokens + used);
        for (int k = 0; k < len + 1; k++) types[used + k] = type;
        used += len;
        tokens[used++] = dl->tk.sep;
        type = 1; // segment B starts after the first [SEP]
    }
    for (int t = used; t < T; t++) {
        tokens[t] = dl->tk.pad;
        types[t] = 0;
    }
    return used;
}

qt_status qt_dataloader_next(qt_dataloader *dl, int *inputs, int *targets) {
    if (!dl || !inputs || !targets)
        return qt_error(QT_ERR_ARG, "qt_dataloader_next: NULL argument");
    const int T = dl->T;
    if (dl->mlm) {
        for (int b = 0; b < dl->B; b++) {
            if (dl->shuffle && dl->perm_epoch != dl->pos.epoch) build_perm(dl, dl->pos.epoch);
            uint64_t w = dl->shuffle ? dl->perm[dl->pos.index] : dl->pos.index;
            int *in = inputs + (size_t)b * T;
            dl->lens[b] = build_sequence(dl, w, in, dl->types + (size_t)b * T);
            qt_mlm_mask(&dl->tk, dl->mlm_prob, dl->seed, qt_mlm_stream(dl->pos.epoch, w), in,
                        targets + (size_t)b * T, dl->lens[b], T);
            if (++dl->pos.index == dl->n_windows) {
                dl->pos.index = 0;
                dl->pos.epoch++;
            }
        }
        return QT_OK;
    }
    int *window = dl->window;
    for (int b = 0; b < dl->B; b++) {
        if (dl->shuffle && dl->perm_epoch != dl->pos.epoch) build_perm(dl, dl->pos.epoch);
        uint64_t w = dl->shuffle ? dl->perm[dl->pos.index] : dl->pos.index;
        copy_tokens(dl, w * (uint64_t)T, T + 1, window);
        memcpy(inputs + (size_t)b * T, window, (size_t)T * sizeof *window);
        memcpy(targets + (size_t)b * T, window + 1, (size_t)T * sizeof *window);
        if (++dl->pos.index == dl->n_windows) {
            dl->pos.index = 0;
            dl->pos.epoch++;
        }
    }
    return QT_OK;
}

qt_data_pos qt_dataloader_tell(const qt_dataloader *dl) { return dl->pos; }

qt_status qt_dataloader_seek(qt_dataloader *dl, qt_data_pos pos) {
    if (!dl) return qt_error(QT_ERR_ARG, "qt_dataloader_seek: NULL loader");
    if (pos.index >= dl->n_windows)
        return qt_error(QT_ERR_ARG,
                        "data position index %llu is beyond the %llu windows of this "
                        "split: the data changed since the position was saved; resume with "
                        "the same shards (data.dir) and train.seq_len",
                        (unsigned long long)pos.index, (unsigned long long)dl->n_windows);
    dl->pos = pos;
    if (dl->shuffle && dl->perm_epoch != pos.epoch) build_perm(dl, pos.epoch);
    return QT_OK;
}

void qt_dataloader_rewind(qt_dataloader *dl) {
    qt_data_pos zero = {0, 0};
    qt_dataloader_seek(dl, zero);
}

const int *qt_dataloader_lens(const qt_dataloader *dl) { return dl->mlm ? dl->lens : NULL; }
const int *qt_dataloader_types(const qt_dataloader *dl) { return dl->mlm ? dl->types : NULL; }

uint64_t qt_dataloader_num_tokens(const qt_dataloader *dl) { return dl->n_tokens; }
uint64_t qt_dataloader_num_windows(const qt_dataloader *dl) { return dl->n_windows; }
uint64_t qt_dataloader_batches_per_epoch(const qt_dataloader *dl) {
    return dl->n_windows / (uint64_t)dl->B;
}

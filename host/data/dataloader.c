// dataloader.c: batches of (inputs, targets) from llm.c-format shards; the window layout,
// epoch order and resume contract are in qtrain/data.h.
//
// Shards are memory-mapped (read-only), so a split larger than memory still loads and opening
// costs one pass over the tokens (the vocabulary check). The epoch's window order is a
// Fisher-Yates shuffle driven by Philox (base/philox.h) keyed by the seed, with a
// stream per epoch: a pure function of (seed, epoch), rebuilt on seek, so resuming reproduces
// the batches bit for bit. Draws are unbiased (rejection sampling on 32-bit words).
#include "qtrain/data.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/philox.h"

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
    free(dl);
}

qt_status qt_dataloader_open(qt_dataloader **out, const char *dir, const char *split, int B,
                             int T, int vocab_size, uint64_t seed, int shuffle) {
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
    if (dl->n_tokens < need) {
        st = qt_error(QT_ERR_ARG, "split '%s' in %s has %llu tokens, fewer than one batch needs "
                      "(B x (T + 1) = %d x %d = %llu); use a smaller batch size or sequence "
                      "length, or more data", split, dir, (unsigned long long)dl->n_tokens, B,
                      T + 1, (unsigned long long)need);
        goto fail;
    }
    dl->n_windows = (dl->n_tokens - (uint64_t)T - 1) / (uint64_t)T + 1;
    if (dl->n_windows > UINT32_MAX) {
        st = qt_error(QT_ERR_ARG, "split '%s' in %s has %llu windows of %d tokens, more than "
                      "2^32; use a longer sequence length", split, dir,
                      (unsigned long long)dl->n_windows, T);
        goto fail;
    }
    dl->window = malloc(((size_t)T + 1) * sizeof *dl->window);
    if (!dl->window) goto oom;
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

qt_status qt_dataloader_next(qt_dataloader *dl, int *inputs, int *targets) {
    if (!dl || !inputs || !targets)
        return qt_error(QT_ERR_ARG, "qt_dataloader_next: NULL argument");
    const int T = dl->T;
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

uint64_t qt_dataloader_num_tokens(const qt_dataloader *dl) { return dl->n_tokens; }
uint64_t qt_dataloader_num_windows(const qt_dataloader *dl) { return dl->n_windows; }
uint64_t qt_dataloader_batches_per_epoch(const qt_dataloader *dl) {
    return dl->n_windows / (uint64_t)dl->B;
}

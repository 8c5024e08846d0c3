// tokenizer.c: byte-level BPE (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
// with Subword Units"; byte-level as in GPT-2), trained, encoded, saved and loaded here.
// The pre-tokenization rule, tie-breaking and file format are documented in qtrain/tokenizer.h.
//
// Training, for speed: the text is reduced to its unique words with counts; every adjacent
// token pair has a count (sum over words of occurrences x word count) and a list of the words
// it occurs in. A merge of (a, b) revisits only the words on (a, b)'s list: each such word's
// pairs that touch an occurrence are subtracted, the word is rewritten, and the pairs around
// each new token are added (all other pairs are unchanged). The most frequent pair
// comes from a max-heap with lazy deletion: an entry whose stored count no longer matches is
// dropped (or re-pushed at its lower count) when it reaches the top, and a pair whose count
// grew gets a fresh entry, so the top valid entry is always the true maximum.
//
// Encoding: each word of the text is encoded once (results cached per call) by merging, while
// any adjacent pair has a merge, the pair whose merge came first. That reproduces applying the
// merges in training order, because a merge only creates pairs with later merges.
#include "qtrain/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/io/file.h"
#include "qtrain/data.h"

#define TOK_MAGIC "QTBPETOK"
#define TOK_VERSION 1
#define TOK_PRETOK_VERSION 1
#define TOK_HEADER_BYTES 24

struct qt_tokenizer {
    int vocab_size;         // V
    uint16_t *merges;       // (V - 256, 2): merge i joins (a, b) into token 256 + i
    uint32_t *tok_off;      // (V + 1,): token t's bytes are tok_bytes[tok_off[t]..tok_off[t+1])
    uint8_t *tok_bytes;     // (tok_off[V],)
    uint32_t *map_keys;     // (map_cap,): pair key (a << 16 | b), or MAP_EMPTY
    uint16_t *map_vals;     // (map_cap,): the merge index of that pair
    uint32_t map_cap;       // a power of two, at least twice the number of merges
};

#define MAP_EMPTY 0xFFFFFFFFu // never a real key: a, b < 65535 since a merge's inputs precede it

// ---- small helpers -------------------------------------------------------------------------

static uint64_t fnv1a64(const uint8_t *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}
#define FNV_BASIS 14695981039346656037ull

static uint32_t hash_u32(uint32_t key) {
    uint32_t h = key * 0x9E3779B1u;
    return h ^ (h >> 15);
}

// The capacity an array needs for one more element with n of cap used: cap while n < cap,
// else twice cap (`first` from empty) with *buf (elements of `elem` bytes) reallocated to it.
// 0 when out of memory (*buf unchanged).
static size_t grow(void **buf, size_t n, size_t cap, size_t first, size_t elem) {
    if (n < cap) return cap;
    size_t c = cap ? 2 * cap : first;
    void *p = realloc(*buf, c * elem);
    if (!p) return 0;
    *buf = p;
    return c;
}

// A fresh open-addressing table of `cap` slots (a power of two, linear probing) holding entries
// 0..n-1 as index + 1, entry e at hash(ctx, e); NULL when out of memory.
static uint32_t *rehash(uint32_t n, uint32_t cap, uint32_t (*hash)(const void *ctx, uint32_t e),
                        const void *ctx) {
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return NULL;
    for (uint32_t e = 0; e < n; e++) {
        uint32_t h = hash(ctx, e) & (cap - 1);
        while (slots[h]) h = (h + 1) & (cap - 1);
        slots[h] = e + 1;
    }
    return slots;
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 16;
    while (c < n) c *= 2;
    return c;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// ---- pre-tokenization ----------------------------------------------------------------------

enum { CL_LETTER, CL_DIGIT, CL_SPACE, CL_OTHER };

static int byte_class(uint8_t c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 0x80) return CL_LETTER;
    if (c >= '0' && c <= '9') return CL_DIGIT;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return CL_SPACE;
    return CL_OTHER;
}

// The end (exclusive) of the word starting at s[i], i < n. Scans stop one byte past the
// length cap, which gives the same result as finding the whole run and then capping, without
// a cost quadratic in the length of a run (text without spaces).
static size_t word_end(const uint8_t *s, size_t n, size_t i) {
    const size_t lim = n - i > QT_TOKENIZER_MAX_WORD ? i + QT_TOKENIZER_MAX_WORD + 1 : n;
    size_t j;
    int cls = byte_class(s[i]);
    if (s[i] == ' ' && i + 1 < n && byte_class(s[i + 1]) != CL_SPACE) {
        j = i + 1;
        cls = byte_class(s[j]);
        while (j < lim && byte_class(s[j]) == cls) j++;
    } else if (cls == CL_SPACE) {
        j = i;
        while (j < lim && byte_class(s[j]) == CL_SPACE) j++;
        // Leave a final space to lead the word that follows.
        if (j < n && j - i >= 2 && s[j - 1] == ' ') j--;
    } else {
        j = i;
        while (j < lim && byte_class(s[j]) == cls) j++;
    }
    if (j - i > QT_TOKENIZER_MAX_WORD) j = i + QT_TOKENIZER_MAX_WORD;
    return j;
}

void qt_tokenizer_split_words(const uint8_t *text, size_t len,
                              void (*fn)(const uint8_t *word, size_t word_len, void *user),
                              void *user) {
    for (size_t i = 0; i < len;) {
        size_t j = word_end(text, len, i);
        fn(text + i, j - i, user);
        i = j;
    }
}

// ---- a table of byte strings (unique words), keyed by their bytes --------------------------

typedef struct {
    const uint8_t *base; // the text the words point into
    size_t *off;         // (n,): word i is base[off[i] .. off[i] + len[i])
    uint32_t *len;       // (n,)
    int64_t *count;      // (n,): occurrences (training) ...
    size_t *value;       // (n,): ... or a payload (encoding: offset into the token cache)
    uint32_t n, cap;     // entries used / allocated
    uint32_t *slots;     // (slot_cap,): entry index + 1, 0 = empty
    uint32_t slot_cap;   // power of two, kept at most half full
} word_table;

static int wt_init(word_table *t, const uint8_t *base) {
    memset(t, 0, sizeof *t);
    t->base = base;
    t->slot_cap = 1024;
    t->slots = calloc(t->slot_cap, sizeof *t->slots);
    return t->slots ? 0 : -1;
}

static void wt_free(word_table *t) {
    free(t->off);
    free(t->len);
    free(t->count);
    free(t->value);
    free(t->slots);
}

static uint32_t wt_hash(const void *ctx, uint32_t e) {
    const word_table *t = ctx;
    return (uint32_t)fnv1a64(t->base + t->off[e], t->len[e], FNV_BASIS);
}

static int wt_grow_slots(word_table *t) {
    uint32_t cap = t->slot_cap * 2;
    uint32_t *slots = rehash(t->n, cap, wt_hash, t);
    if (!slots) return -1;
    free(t->slots);
    t->slots = slots;
    t->slot_cap = cap;
    return 0;
}

// Finds the word base[off..off+len); adds it (count 0) if absent. Returns its index, or -1 on
// out of memory; *added says whether it is new.
static int64_t wt_find_or_add(word_table *t, size_t off, uint32_t len, int *added) {
    const uint8_t *w = t->base + off;
    uint32_t h = (uint32_t)fnv1a64(w, len, FNV_BASIS) & (t->slot_cap - 1);
    while (t->slots[h]) {
        uint32_t e = t->slots[h] - 1;
        if (t->len[e] == len && memcmp(t->base + t->off[e], w, len) == 0) {
            *added = 0;
            return e;
        }
        h = (h + 1) & (t->slot_cap - 1);
    }
    // The four parallel arrays grow together (cap is updated once all four have).
    size_t cap = grow((void **)&t->off, t->n, t->cap, 1024, sizeof *t->off);
    if (!cap || !grow((void **)&t->len, t->n, t->cap, 1024, sizeof *t->len) ||
        !grow((void **)&t->count, t->n, t->cap, 1024, sizeof *t->count) ||
        !grow((void **)&t->value, t->n, t->cap, 1024, sizeof *t->value))
        return -1;
    t->cap = (uint32_t)cap;
    uint32_t e = t->n++;
    t->off[e] = off;
    t->len[e] = len;
    t->count[e] = 0;
    t->value[e] = 0;
    t->slots[h] = e + 1;
    *added = 1;
    if ((uint64_t)t->n * 2 > t->slot_cap && wt_grow_slots(t) != 0) return -1;
    return e;
}

// ---- building a tokenizer from its merges --------------------------------------------------

static int map_lookup(const qt_tokenizer *tok, uint32_t key) {
    uint32_t mask = tok->map_cap - 1;
    for (uint32_t h = hash_u32(key) & mask;; h = (h + 1) & mask) {
        if (tok->map_keys[h] == key) return tok->map_vals[h];
        if (tok->map_keys[h] == MAP_EMPTY) return -1;
    }
}

// Takes ownership of merges (V - 256, 2). Fails with QT_ERR_FORMAT for an invalid merge list
// (a reference to a later token, a repeated pair, a token longer than the longest word).
static qt_status tokenizer_from_merges(qt_tokenizer **out, uint16_t *merges, int vocab_size,
                                       const char *what) {
    *out = NULL;
    int n_merges = vocab_size - 256;
    qt_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        free(merges);
        return qt_error(QT_ERR_OOM, "out of memory building a tokenizer");
    }
    tok->vocab_size = vocab_size;
    tok->merges = merges;
    tok->tok_off = malloc((size_t)(vocab_size + 1) * sizeof *tok->tok_off);
    tok->map_cap = pow2_at_least(2 * (uint64_t)n_merges);
    tok->map_keys = malloc(tok->map_cap * sizeof *tok->map_keys);
    tok->map_vals = malloc(tok->map_cap * sizeof *tok->map_vals);
    if (!tok->tok_off || !tok->map_keys || !tok->map_vals) goto oom;
    memset(tok->map_keys, 0xFF, tok->map_cap * sizeof *tok->map_keys);

    // Token lengths, checked before any byte is copied.
    tok->tok_off[0] = 0;
    for (int t = 0; t < vocab_size; t++) {
        uint32_t len = 1;
        if (t >= 256) {
            int a = merges[2 * (t - 256)], b = merges[2 * (t - 256) + 1];
            if (a >= t || b >= t) {
                qt_tokenizer_free(tok);
                return qt_error(QT_ERR_FORMAT,
                                "%s: merge %d joins tokens (%d, %d), but only tokens below %d "
                                "exist at that point; the file is corrupt",
                                what, t - 256, a, b, t);
            }
            len = (tok->tok_off[a + 1] - tok->tok_off[a]) + (tok->tok_off[b + 1] - tok->tok_off[b]);
            if (len > QT_TOKENIZER_MAX_WORD) {
                qt_tokenizer_free(tok);
                return qt_error(QT_ERR_FORMAT,
                                "%s: token %d would be %u bytes, longer than the longest word "
                                "(%d); the file is corrupt", what, t, len, QT_TOKENIZER_MAX_WORD);
            }
        }
        tok->tok_off[t + 1] = tok->tok_off[t] + len;
    }
    tok->tok_bytes = malloc(tok->tok_off[vocab_size]);
    if (!tok->tok_bytes) goto oom;
    for (int t = 0; t < vocab_size; t++) {
        uint8_t *dst = tok->tok_bytes + tok->tok_off[t];
        if (t < 256) {
            dst[0] = (uint8_t)t;
            continue;
        }
        int a = merges[2 * (t - 256)], b = merges[2 * (t - 256) + 1];
        uint32_t la = tok->tok_off[a + 1] - tok->tok_off[a];
        memcpy(dst, tok->tok_bytes + tok->tok_off[a], la);
        memcpy(dst + la, tok->tok_bytes + tok->tok_off[b], tok->tok_off[b + 1] - tok->tok_off[b]);
    }
    uint32_t mask = tok->map_cap - 1;
    for (int m = 0; m < n_merges; m++) {
        uint32_t key = (uint32_t)merges[2 * m] << 16 | merges[2 * m + 1];
        uint32_t h = hash_u32(key) & mask;
        while (tok->map_keys[h] != MAP_EMPTY && tok->map_keys[h] != key) h = (h + 1) & mask;
        if (tok->map_keys[h] == key) {
            int first = tok->map_vals[h], a = merges[2 * m], b = merges[2 * m + 1];
            qt_tokenizer_free(tok);
            return qt_error(QT_ERR_FORMAT, "%s: merge %d repeats the pair (%d, %d) of merge %d; "
                            "the file is corrupt", what, m, a, b, first);
        }
        tok->map_keys[h] = key;
        tok->map_vals[h] = (uint16_t)m;
    }
    *out = tok;
    return QT_OK;
oom:
    qt_tokenizer_free(tok);
    return qt_error(QT_ERR_OOM, "out of memory building a tokenizer of %d tokens", vocab_size);
}

void qt_tokenizer_free(qt_tokenizer *tok) {
    if (!tok) return;
    free(tok->merges);
    free(tok->tok_off);
    free(tok->tok_bytes);
    free(tok->map_keys);
    free(tok->map_vals);
    free(tok);
}

int qt_tokenizer_vocab_size(const qt_tokenizer *tok) { return tok->vocab_size; }

const uint8_t *qt_tokenizer_token_bytes(const qt_tokenizer *tok, int token, size_t *len) {
    if (!tok || token < 0 || token >= tok->vocab_size) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok->tok_off[token + 1] - tok->tok_off[token];
    return tok->tok_bytes + tok->tok_off[token];
}

qt_status qt_tokenizer_merge(const qt_tokenizer *tok, int i, int *a, int *b) {
    if (!tok || i < 0 || i >= tok->vocab_size - 256)
        return qt_error(QT_ERR_ARG, "merge index %d out of range [0, %d)", i,
                        tok ? tok->vocab_size - 256 : 0);
    *a = tok->merges[2 * i];
    *b = tok->merges[2 * i + 1];
    return QT_OK;
}

// ---- training ------------------------------------------------------------------------------

typedef struct {
    uint32_t key;         // a << 16 | b
    int64_t count;        // sum over words of (occurrences in the word) x (word count)
    uint32_t *words;      // (n_words,): words that contain or once contained the pair
    uint32_t n_words, cap_words;
    uint32_t touched_at;  // merge number + 1 of the last merge that changed count
    int64_t count_before; // count before that merge
} pair_t;

typedef struct {
    int64_t count;
    uint32_t key;
    uint32_t pair; // index into pairs
} heap_entry;

typedef struct {
    pair_t *pairs;
    uint32_t n_pairs, cap_pairs;
    uint32_t *slots; // (slot_cap,): pair index + 1, 0 = empty
    uint32_t slot_cap;
    heap_entry *heap;
    size_t heap_n, heap_cap;
    uint32_t *touched; // pairs changed by the current merge
    size_t n_touched, cap_touched;
} bpe_state;

static void bpe_free(bpe_state *s) {
    for (uint32_t i = 0; i < s->n_pairs; i++) free(s->pairs[i].words);
    free(s->pairs);
    free(s->slots);
    free(s->heap);
    free(s->touched);
}

static uint32_t pair_hash(const void *ctx, uint32_t e) {
    return hash_u32(((const bpe_state *)ctx)->pairs[e].key);
}

// Index of pair key, added with count 0 if new; -1 on out of memory.
static int64_t pair_get(bpe_state *s, uint32_t key) {
    uint32_t mask = s->slot_cap - 1;
    uint32_t h = hash_u32(key) & mask;
    while (s->slots[h]) {
        if (s->pairs[s->slots[h] - 1].key == key) return s->slots[h] - 1;
        h = (h + 1) & mask;
    }
    size_t cap = grow((void **)&s->pairs, s->n_pairs, s->cap_pairs, 4096, sizeof *s->pairs);
    if (!cap) return -1;
    s->cap_pairs = (uint32_t)cap;
    uint32_t i = s->n_pairs++;
    memset(&s->pairs[i], 0, sizeof s->pairs[i]);
    s->pairs[i].key = key;
    s->slots[h] = i + 1;
    if ((uint64_t)s->n_pairs * 2 > s->slot_cap) {
        uint32_t *slots = rehash(s->n_pairs, s->slot_cap * 2, pair_hash, s);
        if (!slots) return -1;
        free(s->slots);
        s->slots = slots;
        s->slot_cap *= 2;
    }
    return i;
}

// Adds delta to pair key's count, noting it as touched by merge `stamp`; appends word w to
// its list when add_word (once per word: a word's appends come in one burst, see train()).
static int pair_add(bpe_state *s, uint32_t key, int64_t delta, uint32_t stamp, uint32_t w,
                    int add_word) {
    int64_t i = pair_get(s, key);
    if (i < 0) return -1;
    pair_t *p = &s->pairs[i];
    if (p->touched_at != stamp) {
        p->touched_at = stamp;
        p->count_before = p->count;
        size_t cap =
            grow((void **)&s->touched, s->n_touched, s->cap_touched, 4096, sizeof *s->touched);
        if (!cap) return -1;
        s->cap_touched = cap;
        s->touched[s->n_touched++] = (uint32_t)i;
    }
    p->count += delta;
    if (add_word && (p->n_words == 0 || p->words[p->n_words - 1] != w)) {
        size_t cap = grow((void **)&p->words, p->n_words, p->cap_words, 4, sizeof *p->words);
        if (!cap) return -1;
        p->cap_words = (uint32_t)cap;
        p->words[p->n_words++] = w;
    }
    return 0;
}

// Heap order: higher count first, then the smaller key (smaller a, then smaller b).
static int heap_before(const heap_entry *x, const heap_entry *y) {
    return x->count > y->count || (x->count == y->count && x->key < y->key);
}

static int heap_push(bpe_state *s, int64_t count, uint32_t key, uint32_t pair) {
    size_t cap = grow((void **)&s->heap, s->heap_n, s->heap_cap, 4096, sizeof *s->heap);
    if (!cap) return -1;
    s->heap_cap = cap;
    size_t i = s->heap_n++;
    heap_entry e = {count, key, pair};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(&e, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = e;
    return 0;
}

static heap_entry heap_pop(bpe_state *s) {
    heap_entry top = s->heap[0];
    heap_entry last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!heap_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

qt_status qt_tokenizer_train(qt_tokenizer **out, const uint8_t *text, size_t len, int vocab_size,
                             void (*progress)(int done, int total, void *user), void *user) {
    if (!out) return qt_error(QT_ERR_ARG, "qt_tokenizer_train: NULL output");
    *out = NULL;
    if (vocab_size <= 256 || vocab_size > QT_TOKENIZER_MAX_VOCAB)
        return qt_error(QT_ERR_ARG, "vocab size %d out of range; use 257 to %d", vocab_size,
                        QT_TOKENIZER_MAX_VOCAB);
    if (len > 0 && !text) return qt_error(QT_ERR_ARG, "qt_tokenizer_train: NULL text");

    const int n_merges = vocab_size - 256;
    qt_status st = QT_OK;
    word_table wt;
    bpe_state s;
    memset(&s, 0, sizeof s);
    uint16_t *sym = NULL;      // (total unique-word bytes,): each word's current tokens
    size_t *sym_off = NULL;    // (n_words,): word w's tokens start at sym[sym_off[w]]
    uint32_t *sym_len = NULL;  // (n_words,): and number sym_len[w]
    uint16_t *merges = NULL;   // (n_merges, 2)
    if (wt_init(&wt, text) != 0) return qt_error(QT_ERR_OOM, "out of memory training BPE");

    // 1. Unique words and their counts.
    size_t total_bytes = 0;
    for (size_t i = 0; i < len;) {
        size_t j = word_end(text, len, i);
        int added;
        int64_t e = wt_find_or_add(&wt, i, (uint32_t)(j - i), &added);
        if (e < 0) goto oom;
        if (added) total_bytes += j - i;
        wt.count[e]++;
        i = j;
    }
    const uint32_t n_words = wt.n;
    sym = malloc((total_bytes ? total_bytes : 1) * sizeof *sym);
    sym_off = malloc((n_words ? n_words : 1) * sizeof *sym_off);
    sym_len = malloc((n_words ? n_words : 1) * sizeof *sym_len);
    merges = malloc((size_t)n_merges * 2 * sizeof *merges);
    s.slot_cap = 1 << 16;
    s.slots = calloc(s.slot_cap, sizeof *s.slots);
    if (!sym || !sym_off || !sym_len || !merges || !s.slots) goto oom;
    size_t at = 0;
    for (uint32_t w = 0; w < n_words; w++) {
        sym_off[w] = at;
        sym_len[w] = wt.len[w];
        for (uint32_t k = 0; k < wt.len[w]; k++) sym[at + k] = text[wt.off[w] + k];
        at += wt.len[w];
    }

    // 2. Initial pair counts, word lists and heap.
    for (uint32_t w = 0; w < n_words; w++) {
        const uint16_t *x = sym + sym_off[w];
        for (uint32_t k = 0; k + 1 < sym_len[w]; k++)
            if (pair_add(&s, (uint32_t)x[k] << 16 | x[k + 1], wt.count[w], 0, w, 1) != 0)
                goto oom;
    }
    for (uint32_t i = 0; i < s.n_pairs; i++)
        if (heap_push(&s, s.pairs[i].count, s.pairs[i].key, i) != 0) goto oom;

    // 3. Merges.
    int report_every = n_merges / 100 > 0 ? n_merges / 100 : 1;
    for (int m = 0; m < n_merges; m++) {
        // The best pair: pop stale entries (count changed since pushed) until a current one.
        int64_t best = -1;
        while (s.heap_n > 0) {
            heap_entry e = heap_pop(&s);
            int64_t now = s.pairs[e.pair].count;
            if (now == e.count && now > 0) {
                best = e.pair;
                break;
            }
            if (now > 0 && now < e.count && heap_push(&s, now, e.key, e.pair) != 0) goto oom;
        }
        if (best < 0) {
            st = qt_error(QT_ERR_ARG,
                          "the training text (%zu bytes) has only enough distinct pairs for "
                          "%d tokens, fewer than vocab size %d; use a smaller vocab size or "
                          "more text", len, 256 + m, vocab_size);
            goto out;
        }
        const uint32_t key = s.pairs[best].key;
        const uint16_t a = (uint16_t)(key >> 16), b = (uint16_t)(key & 0xFFFF);
        const uint16_t z = (uint16_t)(256 + m);
        const uint32_t stamp = (uint32_t)m + 1;
        merges[2 * m] = a;
        merges[2 * m + 1] = b;
        // The list is not appended to during this merge (only pairs containing z are), but
        // pair_add may move s.pairs, so keep the list itself.
        uint32_t *list = s.pairs[best].words;
        uint32_t n_list = s.pairs[best].n_words;
        s.pairs[best].words = NULL;
        s.pairs[best].n_words = s.pairs[best].cap_words = 0;
        s.n_touched = 0;
        for (uint32_t li = 0; li < n_list; li++) {
            uint32_t w = list[li];
            uint16_t *x = sym + sym_off[w];
            uint32_t n = sym_len[w];
            // used[k]: position k is half of an occurrence of (a, b), matched left to right.
            uint8_t used[QT_TOKENIZER_MAX_WORD];
            int found = 0;
            for (uint32_t k = 0; k < n;) {
                if (k + 1 < n && x[k] == a && x[k + 1] == b) {
                    used[k] = used[k + 1] = 1;
                    found = 1;
                    k += 2;
                } else {
                    used[k++] = 0;
                }
            }
            if (!found) continue; // a stale entry: merged away earlier
            // Only pairs that touch an occurrence change: those go, the pairs around each new
            // z come in (every other pair is still adjacent in the rewritten word).
            int64_t c = wt.count[w];
            for (uint32_t k = 0; k + 1 < n; k++)
                if ((used[k] | used[k + 1]) &&
                    pair_add(&s, (uint32_t)x[k] << 16 | x[k + 1], -c, stamp, w, 0) != 0) {
                    free(list);
                    goto oom;
                }
            uint32_t r = 0;
            for (uint32_t k = 0; k < n;) {
                if (used[k]) {
                    x[r++] = z;
                    k += 2;
                } else {
                    x[r++] = x[k++];
                }
            }
            sym_len[w] = n = r;
            for (uint32_t k = 0; k + 1 < n; k++) {
                if (x[k] != z && x[k + 1] != z) continue;
                if (pair_add(&s, (uint32_t)x[k] << 16 | x[k + 1], c, stamp, w, 1) != 0) {
                    free(list);
                    goto oom;
                }
            }
        }
        free(list);
        // Fresh heap entries for pairs whose count grew; shrunk ones are fixed lazily.
        for (size_t t = 0; t < s.n_touched; t++) {
            pair_t *p = &s.pairs[s.touched[t]];
            if (p->count > p->count_before && heap_push(&s, p->count, p->key, s.touched[t]) != 0)
                goto oom;
        }
        if (progress && ((m + 1) % report_every == 0 || m + 1 == n_merges))
            progress(m + 1, n_merges, user);
    }
    st = tokenizer_from_merges(out, merges, vocab_size, "trained tokenizer");
    merges = NULL;
    goto out;
oom:
    st = qt_error(QT_ERR_OOM, "out of memory training BPE on %zu bytes of text", len);
out:
    free(merges);
    free(sym);
    free(sym_off);
    free(sym_len);
    bpe_free(&s);
    wt_free(&wt);
    return st;
}

// ---- encoding and decoding -----------------------------------------------------------------

typedef struct {
    uint16_t *data;
    size_t n, cap;
} u16_vec;

static int vec_reserve(u16_vec *v, size_t extra) {
    if (v->n + extra <= v->cap) return 0;
    size_t cap = v->cap ? v->cap : 1024;
    while (cap < v->n + extra) cap *= 2;
    uint16_t *d = realloc(v->data, cap * sizeof *d);
    if (!d) return -1;
    v->data = d;
    v->cap = cap;
    return 0;
}

// Encodes one word w (len <= QT_TOKENIZER_MAX_WORD) into x; returns the token count.
static uint32_t encode_word(const qt_tokenizer *tok, const uint8_t *w, uint32_t len,
                            uint16_t *x) {
    // rank[k]: merge index of the pair (x[k], x[k+1]), or INT32_MAX if none.
    int32_t rank[QT_TOKENIZER_MAX_WORD];
    uint32_t n = len;
    for (uint32_t k = 0; k < n; k++) x[k] = w[k];
    for (uint32_t k = 0; k + 1 < n; k++) {
        int r = map_lookup(tok, (uint32_t)x[k] << 16 | x[k + 1]);
        rank[k] = r < 0 ? INT32_MAX : r;
    }
    while (n >= 2) {
        int32_t best = INT32_MAX;
        for (uint32_t k = 0; k + 1 < n; k++)
            if (rank[k] < best) best = rank[k];
        if (best == INT32_MAX) break;
        const uint16_t z = (uint16_t)(256 + best);
        uint32_t r = 0;
        for (uint32_t k = 0; k < n;) {
            if (k + 1 < n && rank[k] == best) {
                x[r++] = z;
                k += 2;
            } else {
                x[r++] = x[k++];
            }
        }
        n = r;
        for (uint32_t k = 0; k + 1 < n; k++) {
            int rr = map_lookup(tok, (uint32_t)x[k] << 16 | x[k + 1]);
            rank[k] = rr < 0 ? INT32_MAX : rr;
        }
    }
    return n;
}

qt_status qt_tokenizer_encode(const qt_tokenizer *tok, const uint8_t *text, size_t len,
                              uint16_t **tokens, size_t *n_tokens) {
    if (!tok || !tokens || !n_tokens || (len > 0 && !text))
        return qt_error(QT_ERR_ARG, "qt_tokenizer_encode: NULL argument");
    *tokens = NULL;
    *n_tokens = 0;
    qt_status st = QT_OK;
    u16_vec out = {0}, cache = {0}; // cache: the tokens of each distinct word, back to back
    word_table wt;
    if (wt_init(&wt, text) != 0 || vec_reserve(&out, len / 3 + 16) != 0) goto oom;
    uint16_t buf[QT_TOKENIZER_MAX_WORD];
    for (size_t i = 0; i < len;) {
        size_t j = word_end(text, len, i);
        int added;
        int64_t e = wt_find_or_add(&wt, i, (uint32_t)(j - i), &added);
        if (e < 0) goto oom;
        if (added) {
            uint32_t n = encode_word(tok, text + i, (uint32_t)(j - i), buf);
            if (vec_reserve(&cache, n) != 0) goto oom;
            memcpy(cache.data + cache.n, buf, n * sizeof *buf);
            wt.value[e] = cache.n;
            wt.count[e] = n;
            cache.n += n;
        }
        size_t n = (size_t)wt.count[e];
        if (vec_reserve(&out, n) != 0) goto oom;
        memcpy(out.data + out.n, cache.data + wt.value[e], n * sizeof *out.data);
        out.n += n;
        i = j;
    }
    *tokens = out.data;
    *n_tokens = out.n;
    out.data = NULL;
    goto out;
oom:
    st = qt_error(QT_ERR_OOM, "out of memory encoding %zu bytes", len);
out:
    free(out.data);
    free(cache.data);
    wt_free(&wt);
    return st;
}

qt_status qt_tokenizer_decode(const qt_tokenizer *tok, const uint16_t *tokens, size_t n,
                              char **text, size_t *len) {
    if (!tok || !text || !len || (n > 0 && !tokens))
        return qt_error(QT_ERR_ARG, "qt_tokenizer_decode: NULL argument");
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] >= tok->vocab_size)
            return qt_error(QT_ERR_ARG, "token %d at position %zu is outside the vocabulary "
                            "(size %d)", tokens[i], i, tok->vocab_size);
        total += tok->tok_off[tokens[i] + 1] - tok->tok_off[tokens[i]];
    }
    char *s = malloc(total + 1);
    if (!s) return qt_error(QT_ERR_OOM, "out of memory decoding %zu tokens", n);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t l = tok->tok_off[tokens[i] + 1] - tok->tok_off[tokens[i]];
        memcpy(s + at, tok->tok_bytes + tok->tok_off[tokens[i]], l);
        at += l;
    }
    s[at] = '\0';
    *text = s;
    *len = at;
    return QT_OK;
}

// ---- save and load -------------------------------------------------------------------------

// The bytes of tokenizer.bin (header, merges, checksum), malloc'd into *out (*size bytes);
// NULL when out of memory.
static uint8_t *serialize(const qt_tokenizer *tok, size_t *size_out) {
    const uint32_t n_merges = (uint32_t)(tok->vocab_size - 256);
    size_t size = TOK_HEADER_BYTES + 4 * (size_t)n_merges + 8;
    uint8_t *buf = malloc(size);
    if (!buf) return NULL;
    memcpy(buf, TOK_MAGIC, 8);
    put_le32(buf + 8, TOK_VERSION);
    put_le32(buf + 12, TOK_PRETOK_VERSION);
    put_le32(buf + 16, (uint32_t)tok->vocab_size);
    put_le32(buf + 20, n_merges);
    uint8_t *p = buf + TOK_HEADER_BYTES;
    for (uint32_t i = 0; i < 2 * n_merges; i++) {
        p[2 * i] = (uint8_t)tok->merges[i];
        p[2 * i + 1] = (uint8_t)(tok->merges[i] >> 8);
    }
    uint64_t h = fnv1a64(buf, size - 8, FNV_BASIS);
    for (int i = 0; i < 8; i++) buf[size - 8 + i] = (uint8_t)(h >> (8 * i));
    *size_out = size;
    return buf;
}

qt_status qt_tokenizer_save(const qt_tokenizer *tok, const char *path) {
    if (!tok || !path) return qt_error(QT_ERR_ARG, "qt_tokenizer_save: NULL argument");
    size_t size = 0;
    uint8_t *buf = serialize(tok, &size);
    if (!buf) return qt_error(QT_ERR_OOM, "out of memory saving tokenizer %s", path);
    const void *bufs[1] = {buf};
    size_t lens[1] = {size};
    qt_status st = qt_data_write_atomic(path, bufs, lens, 1);
    free(buf);
    return st;
}

qt_status qt_tokenizer_load(qt_tokenizer **out, const char *path) {
    if (!out || !path) return qt_error(QT_ERR_ARG, "qt_tokenizer_load: NULL argument");
    *out = NULL;
    // The largest valid file: 65536 - 256 merges.
    size_t max_size = TOK_HEADER_BYTES + 4 * (size_t)(QT_TOKENIZER_MAX_VOCAB - 256) + 8;
    uint8_t *buf = NULL;
    size_t size = 0;
    qt_status st =
        qt_io_read_file(path, "tokenizer", "create it with qtrain prepare", max_size, &buf, &size);
    if (st != QT_OK) return st;
    if (size < 8 || memcmp(buf, TOK_MAGIC, 8) != 0) {
        st = qt_error(QT_ERR_FORMAT, "%s is not a qtrain tokenizer (wrong magic, expected \"%s\"); "
                      "create one with qtrain prepare", path, TOK_MAGIC);
        goto out;
    }
    if (size < TOK_HEADER_BYTES + 8) {
        st = qt_error(QT_ERR_FORMAT, "tokenizer %s is truncated: %zu bytes, shorter than the "
                      "header and checksum (%d); re-create it with qtrain prepare", path, size,
                      TOK_HEADER_BYTES + 8);
        goto out;
    }
    uint32_t version = get_le32(buf + 8), pretok = get_le32(buf + 12);
    uint32_t vocab = get_le32(buf + 16), n_merges = get_le32(buf + 20);
    if (version != TOK_VERSION || pretok != TOK_PRETOK_VERSION) {
        st = qt_error(QT_ERR_FORMAT, "tokenizer %s has version %u, pre-tokenizer %u; this "
                      "qtrain reads version %d, pre-tokenizer %d", path, version, pretok,
                      TOK_VERSION, TOK_PRETOK_VERSION);
        goto out;
    }
    if (vocab <= 256 || vocab > QT_TOKENIZER_MAX_VOCAB || n_merges != vocab - 256) {
        st = qt_error(QT_ERR_FORMAT, "tokenizer %s: vocab size %u with %u merges is invalid "
                      "(need 257..%d and vocab - 256 merges); the file is corrupt", path, vocab,
                      n_merges, QT_TOKENIZER_MAX_VOCAB);
        goto out;
    }
    size_t expected = TOK_HEADER_BYTES + 4 * (size_t)n_merges + 8;
    if (size != expected) {
        st = qt_error(QT_ERR_FORMAT, "tokenizer %s is %s: expected %zu bytes for %u merges, "
                      "found %zu; re-create it with qtrain prepare", path,
                      size < expected ? "truncated" : "padded", expected, n_merges, size);
        goto out;
    }
    uint64_t stored = 0;
    for (int i = 0; i < 8; i++) stored |= (uint64_t)buf[size - 8 + i] << (8 * i);
    uint64_t h = fnv1a64(buf, size - 8, FNV_BASIS);
    if (stored != h) {
        st = qt_error(QT_ERR_FORMAT, "tokenizer %s fails its checksum (stored %016llx, computed "
                      "%016llx): the file is corrupt; re-create it with qtrain prepare", path,
                      (unsigned long long)stored, (unsigned long long)h);
        goto out;
    }
    uint16_t *merges = malloc(2 * (size_t)n_merges * sizeof *merges);
    if (!merges) {
        st = qt_error(QT_ERR_OOM, "out of memory loading tokenizer %s", path);
        goto out;
    }
    const uint8_t *p = buf + TOK_HEADER_BYTES;
    for (size_t i = 0; i < 2 * (size_t)n_merges; i++)
        merges[i] = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    st = tokenizer_from_merges(out, merges, (int)vocab, path);
out:
    free(buf);
    return st;
}

// ---- identity ------------------------------------------------------------------------------

qt_tokenizer_id qt_tokenizer_identity(const qt_tokenizer *tok) {
    qt_tokenizer_id id = {0, 0};
    size_t size = 0;
    uint8_t *buf = serialize(tok, &size);
    if (!buf) return id; // out of memory: unknown, so a check is skipped rather than wrong
    for (int i = 0; i < 8; i++)
        id.checksum |= (uint64_t)buf[size - 8 + i] << (8 * i);
    id.vocab_size = tok->vocab_size;
    free(buf);
    return id;
}

void qt_tokenizer_id_format(qt_tokenizer_id id, char *buf, size_t cap) {
    if (id.vocab_size == 0)
        snprintf(buf, cap, "unknown");
    else
        snprintf(buf, cap, "fnv1a64:%016llx (%d tokens)", (unsigned long long)id.checksum,
                 id.vocab_size);
}

qt_status qt_tokenizer_id_check(qt_tokenizer_id trained, const char *ckpt, qt_tokenizer_id used,
                                const char *used_what, const char *fix, int allow, char *note,
                                size_t cap) {
    if (cap) note[0] = '\0';
    if (trained.vocab_size == 0 || used.vocab_size == 0) {
        snprintf(note, cap,
                 "qtrain: note: the tokenizer cannot be checked: none is recorded for %s",
                 trained.vocab_size == 0 ? ckpt : used_what);
        return QT_OK;
    }
    if (trained.checksum == used.checksum && trained.vocab_size == used.vocab_size) return QT_OK;
    char a[64], b[64];
    qt_tokenizer_id_format(trained, a, sizeof a);
    qt_tokenizer_id_format(used, b, sizeof b);
    if (allow) {
        snprintf(note, cap,
                 "qtrain: note: tokenizer mismatch allowed by --allow-tokenizer-mismatch: %s was "
                 "trained with %s; %s: %s",
                 ckpt, a, used_what, b);
        return QT_OK;
    }
    return qt_error(QT_ERR_ARG,
                    "tokenizer mismatch: %s was trained with %s; %s: %s; %s, or pass "
                    "--allow-tokenizer-mismatch to go on anyway",
                    ckpt, a, used_what, b, fix);
}

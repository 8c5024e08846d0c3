// test_tokenizer.c: byte-level BPE: pre-tokenization rules, training against a from-scratch
// reference (recount every pair at every merge), determinism, vocab size, encode/decode round
// trips on English and arbitrary bytes, save/load and the load errors.
#include "qtrain/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// English-like text: sentences of words drawn with Zipf-like frequencies, with punctuation,
// digits, capitals, double spaces and newlines. Malloc'd, *len bytes (also NUL-terminated).
static uint8_t *make_text(size_t target, uint64_t seed, size_t *len) {
    static const char *const words[] = {
        "the", "and", "of", "to", "that", "in", "he", "shall", "unto", "for", "I", "his",
        "a", "lord", "they", "be", "is", "him", "not", "them", "it", "with", "all", "thou",
        "thy", "was", "God", "which", "my", "me", "said", "but", "ye", "their", "have",
        "will", "thee", "from", "as", "are", "when", "this", "out", "were", "upon", "man",
        "by", "you", "Israel", "king", "son", "up", "there", "hath", "then", "people",
        "came", "had", "house", "into", "on", "her", "come", "one", "we", "children",
        "before", "your", "also", "day", "land", "men", "so", "against", "shalt", "if",
        "at", "let", "go", "hand", "us", "saying", "made", "went", "even", "do", "now",
        "behold", "saith", "therefore", "every", "these", "because", "or", "after", "our",
        "things", "father", "down", "sons", "hast", "David", "make", "Jerusalem", "over",
    };
    const size_t n_words = sizeof words / sizeof words[0];
    uint64_t s = seed;
    uint8_t *buf = malloc(target + 64);
    ck_assert_ptr_nonnull(buf);
    size_t at = 0;
    int in_sentence = 0;
    while (at < target) {
        uint64_t r = rng_next(&s);
        // Zipf-like: index = n * u^3 favours the first words.
        double u = (double)(r >> 11) * (1.0 / 9007199254740992.0);
        size_t w = (size_t)((double)n_words * u * u * u);
        const char *word = words[w];
        if (in_sentence) buf[at++] = ' ';
        if ((r & 63) == 0) buf[at++] = ' ';
        size_t l = strlen(word);
        memcpy(buf + at, word, l);
        if (!in_sentence && buf[at] >= 'a' && buf[at] <= 'z') buf[at] = (uint8_t)(buf[at] - 32);
        at += l;
        in_sentence = 1;
        switch ((r >> 8) % 16) {
        case 0: buf[at++] = ','; break;
        case 1: buf[at++] = ';'; break;
        case 2: at += (size_t)sprintf((char *)buf + at, " %d", (int)((r >> 16) % 1000)); break;
        case 3:
            buf[at++] = '.';
            buf[at++] = '\n';
            in_sentence = 0;
            break;
        default: break;
        }
    }
    buf[at] = '\0';
    *len = at;
    return buf;
}

static uint8_t *make_random_bytes(size_t n, uint64_t seed) {
    uint8_t *buf = malloc(n + 1);
    ck_assert_ptr_nonnull(buf);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(rng_next(&s) >> 56);
    return buf;
}

// ---- pre-tokenization ----------------------------------------------------------------------

typedef struct {
    char pieces[64][64];
    int n;
} piece_list;

static void collect(const uint8_t *w, size_t len, void *user) {
    piece_list *p = user;
    ck_assert_int_lt(p->n, 64);
    ck_assert_uint_lt(len, 64);
    memcpy(p->pieces[p->n], w, len);
    p->pieces[p->n][len] = '\0';
    p->n++;
}

START_TEST(test_split_words_rules) {
    const char *text = "Hello  world, said he:\n\n The 42nd...  ok\t\n";
    const char *want[] = {"Hello", " ", " world", ",", " said", " he", ":", "\n\n",
                          " The", " 42", "nd", "...", " ", " ok", "\t\n"};
    piece_list p = {.n = 0};
    qt_tokenizer_split_words((const uint8_t *)text, strlen(text), collect, &p);
    int n_want = (int)(sizeof want / sizeof want[0]);
    ck_assert_msg(p.n == n_want, "split of \"%s\": %d pieces, want %d", text, p.n, n_want);
    for (int i = 0; i < n_want; i++)
        ck_assert_msg(strcmp(p.pieces[i], want[i]) == 0, "piece %d: got \"%s\", want \"%s\"", i,
                      p.pieces[i], want[i]);

    // UTF-8 letters stay in one word with their leading space.
    const char *utf8 = "na\xc3\xafve caf\xc3\xa9!";
    p.n = 0;
    qt_tokenizer_split_words((const uint8_t *)utf8, strlen(utf8), collect, &p);
    ck_assert_int_eq(p.n, 3);
    ck_assert_str_eq(p.pieces[1], " caf\xc3\xa9");
}
END_TEST

typedef struct {
    size_t total, max_len;
} len_acc;

static void accumulate(const uint8_t *w, size_t len, void *user) {
    (void)w;
    len_acc *a = user;
    ck_assert_uint_gt(len, 0);
    a->total += len;
    if (len > a->max_len) a->max_len = len;
}

START_TEST(test_split_words_long_runs) {
    // A run of 1000 letters is cut into pieces of at most QT_TOKENIZER_MAX_WORD bytes.
    size_t n = 1000;
    uint8_t *text = malloc(n);
    memset(text, 'x', n);
    len_acc a = {0, 0};
    qt_tokenizer_split_words(text, n, accumulate, &a);
    ck_assert_uint_eq(a.total, n);
    ck_assert_uint_eq(a.max_len, QT_TOKENIZER_MAX_WORD);
    // 300 spaces then a letter: 256 spaces, 43 spaces, " x" (the last space leads the word).
    memset(text, ' ', 300);
    text[300] = 'x';
    piece_list *p = calloc(1, sizeof *p);
    len_acc b = {0, 0};
    qt_tokenizer_split_words(text, 301, accumulate, &b);
    ck_assert_uint_eq(b.total, 301);
    ck_assert_uint_eq(b.max_len, QT_TOKENIZER_MAX_WORD);
    qt_tokenizer_split_words(text + 256, 45, collect, p);
    ck_assert_int_eq(p->n, 2);
    ck_assert_uint_eq(strlen(p->pieces[0]), 43);
    ck_assert_str_eq(p->pieces[1], " x");
    free(p);
    free(text);
}
END_TEST

// ---- training against a from-scratch reference ---------------------------------------------

typedef struct {
    uint16_t *sym[4096]; // the reference's unique words, as token arrays
    int len[4096];
    int64_t count[4096];
    const uint8_t *raw[4096];
    int n;
} ref_words;

static void ref_add_word(const uint8_t *w, size_t len, void *user) {
    ref_words *r = user;
    for (int i = 0; i < r->n; i++)
        if ((size_t)r->len[i] == len && memcmp(r->raw[i], w, len) == 0) {
            r->count[i]++;
            return;
        }
    ck_assert_int_lt(r->n, 4096);
    r->raw[r->n] = w;
    r->len[r->n] = (int)len;
    r->count[r->n] = 1;
    r->sym[r->n] = malloc(len * sizeof(uint16_t));
    for (size_t k = 0; k < len; k++) r->sym[r->n][k] = w[k];
    r->n++;
}

// The textbook algorithm: recount every pair before each merge, take the highest count,
// ties to the smallest (a, b). Writes (n_merges, 2) merges; returns the merges learned.
static int reference_train(const uint8_t *text, size_t len, int n_merges, int *merges) {
    ref_words *r = calloc(1, sizeof *r);
    qt_tokenizer_split_words(text, len, ref_add_word, r);
    int V = 256 + n_merges;
    int64_t *pc = malloc((size_t)V * V * sizeof *pc);
    int m = 0;
    for (; m < n_merges; m++) {
        memset(pc, 0, (size_t)V * V * sizeof *pc);
        for (int w = 0; w < r->n; w++)
            for (int k = 0; k + 1 < r->len[w]; k++)
                pc[(size_t)r->sym[w][k] * V + r->sym[w][k + 1]] += r->count[w];
        int64_t best = 0;
        size_t best_i = 0;
        for (size_t i = 0; i < (size_t)V * V; i++)
            if (pc[i] > best) {
                best = pc[i];
                best_i = i;
            }
        if (best == 0) break;
        int a = (int)(best_i / V), b = (int)(best_i % V);
        merges[2 * m] = a;
        merges[2 * m + 1] = b;
        for (int w = 0; w < r->n; w++) {
            int o = 0;
            for (int k = 0; k < r->len[w];) {
                if (k + 1 < r->len[w] && r->sym[w][k] == a && r->sym[w][k + 1] == b) {
                    r->sym[w][o++] = (uint16_t)(256 + m);
                    k += 2;
                } else {
                    r->sym[w][o++] = r->sym[w][k++];
                }
            }
            r->len[w] = o;
        }
    }
    for (int w = 0; w < r->n; w++) free(r->sym[w]);
    free(r);
    free(pc);
    return m;
}

static void check_against_reference(const uint8_t *text, size_t len, int vocab, const char *what) {
    int n_merges = vocab - 256;
    int *want = malloc(2 * (size_t)n_merges * sizeof *want);
    int learned = reference_train(text, len, n_merges, want);
    ck_assert_msg(learned == n_merges, "%s: reference learned only %d merges", what, learned);
    qt_tokenizer *tok = NULL;
    ck_assert_msg(qt_tokenizer_train(&tok, text, len, vocab, NULL, NULL) == QT_OK, "%s: %s", what,
                  qt_last_error());
    for (int i = 0; i < n_merges; i++) {
        int a, b;
        ck_assert_int_eq(qt_tokenizer_merge(tok, i, &a, &b), QT_OK);
        ck_assert_msg(a == want[2 * i] && b == want[2 * i + 1],
                      "%s (vocab %d): merge %d is (%d, %d), reference (%d, %d)", what, vocab, i, a,
                      b, want[2 * i], want[2 * i + 1]);
    }
    qt_tokenizer_free(tok);
    free(want);
}

START_TEST(test_train_matches_reference) {
    size_t len;
    uint8_t *text = make_text(20000, 7, &len);
    check_against_reference(text, len, 256 + 300, "english-like text, seed 7");
    free(text);
    // Random bytes: many equal counts, so the tie-breaking rule decides most merges.
    uint8_t *bytes = make_random_bytes(6000, 11);
    check_against_reference(bytes, 6000, 256 + 120, "random bytes, seed 11");
    free(bytes);
    // Letters without spaces: words cut at QT_TOKENIZER_MAX_WORD bytes, long words.
    uint8_t *letters = make_random_bytes(5000, 13);
    for (int i = 0; i < 5000; i++) letters[i] = (uint8_t)('a' + letters[i] % 6);
    check_against_reference(letters, 5000, 256 + 150, "random letters a-f, seed 13");
    free(letters);
    // Runs of one byte: overlapping pairs (a, a).
    const char *runs = "aaaaaaa aaaa aaaaa bbbbbbbbbbb ab abab aaabbb\n";
    check_against_reference((const uint8_t *)runs, strlen(runs), 256 + 8, "runs");
}
END_TEST

START_TEST(test_train_deterministic_and_vocab_size) {
    size_t len;
    uint8_t *text = make_text(30000, 3, &len);
    const int vocab = 700;
    qt_tokenizer *t1 = NULL, *t2 = NULL;
    ck_assert_int_eq(qt_tokenizer_train(&t1, text, len, vocab, NULL, NULL), QT_OK);
    ck_assert_int_eq(qt_tokenizer_train(&t2, text, len, vocab, NULL, NULL), QT_OK);
    ck_assert_int_eq(qt_tokenizer_vocab_size(t1), vocab);
    for (int i = 0; i < vocab - 256; i++) {
        int a1, b1, a2, b2;
        qt_tokenizer_merge(t1, i, &a1, &b1);
        qt_tokenizer_merge(t2, i, &a2, &b2);
        ck_assert_msg(a1 == a2 && b1 == b2, "merge %d differs between two runs", i);
        // Token 256 + i is the bytes of a followed by the bytes of b.
        size_t la, lb, lz;
        const uint8_t *pa = qt_tokenizer_token_bytes(t1, a1, &la);
        const uint8_t *pb = qt_tokenizer_token_bytes(t1, b1, &lb);
        const uint8_t *pz = qt_tokenizer_token_bytes(t1, 256 + i, &lz);
        ck_assert_uint_eq(lz, la + lb);
        ck_assert(memcmp(pz, pa, la) == 0 && memcmp(pz + la, pb, lb) == 0);
    }
    ck_assert_ptr_null(qt_tokenizer_token_bytes(t1, vocab, NULL));
    ck_assert_ptr_null(qt_tokenizer_token_bytes(t1, -1, NULL));
    uint16_t *toks;
    size_t n;
    ck_assert_int_eq(qt_tokenizer_encode(t1, text, len, &toks, &n), QT_OK);
    int max_tok = 0;
    for (size_t i = 0; i < n; i++)
        if (toks[i] > max_tok) max_tok = toks[i];
    ck_assert_msg(max_tok < vocab, "token %d >= vocab %d", max_tok, vocab);
    ck_assert_msg(max_tok >= 600, "the last merges are never used (max token %d)", max_tok);
    // A real tokenizer compresses English-like text well.
    ck_assert_msg((double)len / (double)n > 2.5, "only %.2f bytes per token",
                  (double)len / (double)n);
    free(toks);
    qt_tokenizer_free(t1);
    qt_tokenizer_free(t2);
    free(text);
}
END_TEST

static void count_calls(int done, int total, void *user) {
    int *calls = user;
    ck_assert_int_le(done, total);
    ck_assert_int_eq(total, 300);
    calls[0]++;
    calls[1] = done;
}

START_TEST(test_train_progress_and_errors) {
    size_t len;
    uint8_t *text = make_text(10000, 5, &len);
    qt_tokenizer *tok = NULL;
    int calls[2] = {0, 0};
    ck_assert_int_eq(qt_tokenizer_train(&tok, text, len, 556, count_calls, calls), QT_OK);
    ck_assert_int_gt(calls[0], 1);
    ck_assert_int_eq(calls[1], 300);
    qt_tokenizer_free(tok);

    ck_assert_int_eq(qt_tokenizer_train(&tok, text, len, 256, NULL, NULL), QT_ERR_ARG);
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(qt_tokenizer_train(&tok, text, len, 65537, NULL, NULL), QT_ERR_ARG);
    // "abcabc" has 3 distinct pairs: (a,b), (b,c), (c,a): not enough for 10 merges.
    ck_assert_int_eq(qt_tokenizer_train(&tok, (const uint8_t *)"abcabc", 6, 266, NULL, NULL),
                     QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "vocab size") != NULL, "message: %s", qt_last_error());
    ck_assert_ptr_null(tok);
    free(text);
}
END_TEST

// ---- round trips ---------------------------------------------------------------------------

static void check_round_trip(const qt_tokenizer *tok, const uint8_t *text, size_t len,
                             const char *what) {
    uint16_t *toks = NULL;
    size_t n = 0;
    ck_assert_int_eq(qt_tokenizer_encode(tok, text, len, &toks, &n), QT_OK);
    ck_assert_ptr_nonnull(toks);
    char *dec = NULL;
    size_t dlen = 0;
    ck_assert_int_eq(qt_tokenizer_decode(tok, toks, n, &dec, &dlen), QT_OK);
    ck_assert_msg(dlen == len, "%s: decoded %zu bytes, want %zu", what, dlen, len);
    ck_assert_msg(memcmp(dec, text, len) == 0, "%s: decode(encode(x)) != x", what);
    ck_assert_int_eq(dec[dlen], '\0');
    // Token by token through qt_tokenizer_token_bytes (the streaming path) gives the same.
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const uint8_t *p = qt_tokenizer_token_bytes(tok, toks[i], &l);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(at + l <= len && memcmp(text + at, p, l) == 0, "%s: token %zu", what, i);
        at += l;
    }
    ck_assert_uint_eq(at, len);
    free(toks);
    free(dec);
}

START_TEST(test_round_trip) {
    size_t len;
    uint8_t *train = make_text(40000, 1, &len);
    qt_tokenizer *tok = NULL;
    ck_assert_int_eq(qt_tokenizer_train(&tok, train, len, 1024, NULL, NULL), QT_OK);
    check_round_trip(tok, train, len, "training text");
    size_t len2;
    uint8_t *other = make_text(20000, 99, &len2);
    check_round_trip(tok, other, len2, "unseen english-like text, seed 99");
    for (uint64_t seed = 1; seed <= 4; seed++) {
        size_t n = 1 + (size_t)seed * 997;
        uint8_t *bytes = make_random_bytes(n, seed);
        char what[64];
        snprintf(what, sizeof what, "random bytes, n %zu, seed %llu", n,
                 (unsigned long long)seed);
        check_round_trip(tok, bytes, n, what);
        free(bytes);
    }
    // Every byte value, invalid UTF-8, NULs, and a long run without spaces.
    uint8_t all[256 + 2000];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    for (int i = 0; i < 2000; i++) all[256 + i] = (uint8_t)(0x80 + i % 64);
    check_round_trip(tok, all, sizeof all, "all bytes + long non-ASCII run");
    const char *utf8 = "\xff\xfe caf\xc3\xa9 \xe2\x82\xac\xc3 \x80\x80 ok";
    check_round_trip(tok, (const uint8_t *)utf8, strlen(utf8), "invalid utf-8");
    check_round_trip(tok, (const uint8_t *)"", 0, "empty");

    uint16_t bad = 1024;
    char *dec;
    size_t dlen;
    ck_assert_int_eq(qt_tokenizer_decode(tok, &bad, 1, &dec, &dlen), QT_ERR_ARG);
    qt_tokenizer_free(tok);
    free(train);
    free(other);
}
END_TEST

// ---- save, load and load errors ------------------------------------------------------------

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const uint8_t *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static void expect_load_error(const char *path, const char *needle, const char *what) {
    qt_tokenizer *tok = (qt_tokenizer *)1;
    qt_status st = qt_tokenizer_load(&tok, path);
    ck_assert_msg(st == QT_ERR_FORMAT, "%s: status %d (%s), want QT_ERR_FORMAT", what, st,
                  qt_last_error());
    ck_assert_ptr_null(tok);
    ck_assert_msg(strstr(qt_last_error(), path) != NULL, "%s: message does not name the file: %s",
                  what, qt_last_error());
    ck_assert_msg(strstr(qt_last_error(), needle) != NULL, "%s: message lacks \"%s\": %s", what,
                  needle, qt_last_error());
}

START_TEST(test_save_load) {
    char *dir = qt_test_tmpdir("tokenizer");
    char path[4096], bad[4096];
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    snprintf(bad, sizeof bad, "%s/bad.bin", dir);
    size_t len;
    uint8_t *text = make_text(30000, 2, &len);
    qt_tokenizer *tok = NULL, *back = NULL;
    ck_assert_int_eq(qt_tokenizer_train(&tok, text, len, 600, NULL, NULL), QT_OK);
    ck_assert_int_eq(qt_tokenizer_save(tok, path), QT_OK);
    ck_assert_int_eq(qt_tokenizer_load(&back, path), QT_OK);
    ck_assert_int_eq(qt_tokenizer_vocab_size(back), 600);
    for (int i = 0; i < 600 - 256; i++) {
        int a1, b1, a2, b2;
        qt_tokenizer_merge(tok, i, &a1, &b1);
        qt_tokenizer_merge(back, i, &a2, &b2);
        ck_assert_msg(a1 == a2 && b1 == b2, "merge %d changed through save/load", i);
    }
    uint16_t *t1, *t2;
    size_t n1, n2;
    ck_assert_int_eq(qt_tokenizer_encode(tok, text, len, &t1, &n1), QT_OK);
    ck_assert_int_eq(qt_tokenizer_encode(back, text, len, &t2, &n2), QT_OK);
    ck_assert_uint_eq(n1, n2);
    ck_assert(memcmp(t1, t2, n1 * sizeof *t1) == 0);
    free(t1);
    free(t2);

    size_t flen;
    uint8_t *file = slurp(path, &flen);
    ck_assert_uint_eq(flen, 24 + 4 * (600 - 256) + 8);
    ck_assert(memcmp(file, "QTBPETOK", 8) == 0);

    // The identity is the checksum the file ends with, and the vocabulary size; it survives
    // save/load and differs for another tokenizer of the same size.
    qt_tokenizer_id id = qt_tokenizer_identity(tok);
    uint64_t tail = 0;
    for (int i = 0; i < 8; i++)
        tail |= (uint64_t)file[flen - 8 + i] << (8 * i);
    ck_assert_msg(id.checksum == tail && id.vocab_size == 600, "identity %016llx/%d, file %016llx",
                  (unsigned long long)id.checksum, id.vocab_size, (unsigned long long)tail);
    qt_tokenizer_id id_back = qt_tokenizer_identity(back);
    ck_assert(id_back.checksum == id.checksum && id_back.vocab_size == 600);
    size_t len2;
    uint8_t *text2 = make_text(30000, 3, &len2);
    qt_tokenizer *other = NULL;
    ck_assert_int_eq(qt_tokenizer_train(&other, text2, len2, 600, NULL, NULL), QT_OK);
    qt_tokenizer_id id_other = qt_tokenizer_identity(other);
    ck_assert(id_other.checksum != id.checksum);
    char shown[64], want[64];
    qt_tokenizer_id_format(id, shown, sizeof shown);
    snprintf(want, sizeof want, "fnv1a64:%016llx (600 tokens)", (unsigned long long)tail);
    ck_assert_str_eq(shown, want);
    // The check: a match passes silently; a mismatch names both identities, the fix and the
    // flag, unless allowed; an unknown side is a note, not an error.
    char note[512];
    ck_assert_int_eq(qt_tokenizer_id_check(id, "run/ckpt.bin", id_back, "the shards in d", "fix", 0,
                                           note, sizeof note),
                     QT_OK);
    ck_assert_str_eq(note, "");
    ck_assert_int_eq(qt_tokenizer_id_check(id, "run/ckpt.bin", id_other, "the shards in d",
                                           "use the run's data", 0, note, sizeof note),
                     QT_ERR_ARG);
    char other_s[64];
    qt_tokenizer_id_format(id_other, other_s, sizeof other_s);
    ck_assert_msg(strstr(qt_last_error(), shown) && strstr(qt_last_error(), other_s) &&
                      strstr(qt_last_error(), "run/ckpt.bin") &&
                      strstr(qt_last_error(), "use the run's data") &&
                      strstr(qt_last_error(), "--allow-tokenizer-mismatch"),
                  "%s", qt_last_error());
    ck_assert_int_eq(qt_tokenizer_id_check(id, "run/ckpt.bin", id_other, "the shards in d", "fix",
                                           1, note, sizeof note),
                     QT_OK);
    ck_assert_msg(strstr(note, "qtrain: note: ") == note && strstr(note, other_s), "%s", note);
    qt_tokenizer_id unknown = {0, 0};
    ck_assert_int_eq(qt_tokenizer_id_check(id, "run/ckpt.bin", unknown, "the shards in d", "fix", 0,
                                           note, sizeof note),
                     QT_OK);
    ck_assert_msg(strstr(note, "cannot be checked") && strstr(note, "the shards in d"), "%s", note);
    ck_assert_int_eq(qt_tokenizer_id_check(unknown, "run/ckpt.bin", id, "the shards in d", "fix", 0,
                                           note, sizeof note),
                     QT_OK);
    ck_assert_msg(strstr(note, "cannot be checked") && strstr(note, "run/ckpt.bin"), "%s", note);
    qt_tokenizer_free(other);
    free(text2);

    // Wrong magic.
    uint8_t *copy = malloc(flen);
    memcpy(copy, file, flen);
    copy[0] = 'X';
    spit(bad, copy, flen);
    expect_load_error(bad, "magic", "wrong magic");
    // Not a tokenizer at all (a few bytes of text).
    spit(bad, (const uint8_t *)"hello", 5);
    expect_load_error(bad, "magic", "5-byte text file");
    // Truncated: by one byte, and to the header only.
    spit(bad, file, flen - 1);
    expect_load_error(bad, "truncated", "truncated by 1 byte");
    spit(bad, file, 20);
    expect_load_error(bad, "truncated", "truncated to 20 bytes");
    // A flipped bit in a merge.
    memcpy(copy, file, flen);
    copy[24 + 4 * 100] ^= 0x01;
    spit(bad, copy, flen);
    expect_load_error(bad, "checksum", "flipped merge bit");
    // A flipped bit in the checksum itself.
    memcpy(copy, file, flen);
    copy[flen - 1] ^= 0x80;
    spit(bad, copy, flen);
    expect_load_error(bad, "checksum", "flipped checksum bit");
    // Missing file: an I/O error, not a format error.
    snprintf(bad, sizeof bad, "%s/missing.bin", dir);
    qt_tokenizer *missing = NULL;
    ck_assert_int_eq(qt_tokenizer_load(&missing, bad), QT_ERR_IO);
    ck_assert_ptr_null(missing);
    // Saving into a missing directory fails cleanly.
    snprintf(bad, sizeof bad, "%s/no/such/dir/tok.bin", dir);
    ck_assert_int_eq(qt_tokenizer_save(tok, bad), QT_ERR_IO);

    free(copy);
    free(file);
    qt_tokenizer_free(tok);
    qt_tokenizer_free(back);
    free(text);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_split_words_rules);
    tcase_add_test(tc, test_split_words_long_runs);
    tcase_add_test(tc, test_train_matches_reference);
    tcase_add_test(tc, test_train_deterministic_and_vocab_size);
    tcase_add_test(tc, test_train_progress_and_errors);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_save_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(tokenizer_suite()); }

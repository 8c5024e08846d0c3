// test_dataloader.c: the data loader (window layout, targets = inputs shifted by one, shard
// boundaries, shuffle is a permutation per epoch, tell/seek resumes the same batches, bad
// splits rejected) and qt_prepare end to end (shards decode back to the text, the entropy in
// the stats matches a recount, stale shards removed).
#include "qtrain/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qtrain/tokenizer.h"
#include "testutil.h"

// Writes shards <dir>/<split>_NNN.bin of the given sizes holding the stream tok(i) = i, so a
// token's value is its position in the split.
static void write_position_shards(const char *dir, const char *split, const size_t *sizes,
                                  int n_shards) {
    size_t at = 0;
    for (int s = 0; s < n_shards; s++) {
        uint16_t *t = malloc((sizes[s] ? sizes[s] : 1) * sizeof *t);
        for (size_t i = 0; i < sizes[s]; i++) t[i] = (uint16_t)(at + i);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s_%03d.bin", dir, split, s);
        ck_assert_msg(qt_shard_write(path, t, sizes[s]) == QT_OK, "%s", qt_last_error());
        at += sizes[s];
        free(t);
    }
}

// Checks one batch of the position stream: every row is a window at a multiple of T with
// targets = inputs shifted by one; writes the window indices to win (B,).
static void check_batch(const int *in, const int *tg, int B, int T, uint64_t *win,
                        const char *what) {
    for (int b = 0; b < B; b++) {
        int start = in[b * T];
        ck_assert_msg(start % T == 0, "%s: row %d starts at %d, not a multiple of T %d", what, b,
                      start, T);
        for (int t = 0; t < T; t++) {
            ck_assert_msg(in[b * T + t] == start + t, "%s: row %d input %d is %d, want %d", what,
                          b, t, in[b * T + t], start + t);
            ck_assert_msg(tg[b * T + t] == start + t + 1, "%s: row %d target %d is %d, want %d",
                          what, b, t, tg[b * T + t], start + t + 1);
        }
        win[b] = (uint64_t)start / (uint64_t)T;
    }
}

START_TEST(test_in_order_across_shards) {
    char *dir = qt_test_tmpdir("dl-order");
    // 300 tokens over shards of uneven sizes, one empty: windows cross shard boundaries.
    const size_t sizes[] = {37, 0, 100, 1, 162};
    write_position_shards(dir, "train", sizes, 5);
    const int B = 3, T = 8;
    qt_dataloader *dl = NULL;
    ck_assert_msg(qt_dataloader_open(&dl, dir, "train", B, T, 65536, 1, 0) == QT_OK, "%s",
                  qt_last_error());
    ck_assert_uint_eq(qt_dataloader_num_tokens(dl), 300);
    // Starts 0, 8, ..., <= 300 - 9 = 291: 37 windows.
    const uint64_t W = (300 - T - 1) / T + 1;
    ck_assert_uint_eq(qt_dataloader_num_windows(dl), W);
    ck_assert_uint_eq(qt_dataloader_batches_per_epoch(dl), W / B);
    int in[3 * 8], tg[3 * 8];
    uint64_t win[3], expect = 0;
    // Two epochs and a bit: windows in order, wrapping from the last to the first.
    for (int step = 0; step < 30; step++) {
        ck_assert_int_eq(qt_dataloader_next(dl, in, tg), QT_OK);
        check_batch(in, tg, B, T, win, "in order, B 3, T 8");
        for (int b = 0; b < B; b++) {
            ck_assert_msg(win[b] == expect, "step %d row %d: window %llu, want %llu", step, b,
                          (unsigned long long)win[b], (unsigned long long)expect);
            expect = (expect + 1) % W;
        }
    }
    qt_data_pos pos = qt_dataloader_tell(dl);
    ck_assert_uint_eq(pos.epoch, 90 / W);
    ck_assert_uint_eq(pos.index, 90 % W);
    qt_dataloader_free(dl);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

// Collects the window order of `epochs` epochs (W x epochs windows) with B = 1.
static uint64_t *collect_windows(qt_dataloader *dl, int T, uint64_t count) {
    uint64_t *w = malloc(count * sizeof *w);
    int *in = malloc((size_t)T * sizeof *in), *tg = malloc((size_t)T * sizeof *tg);
    for (uint64_t i = 0; i < count; i++) {
        ck_assert_int_eq(qt_dataloader_next(dl, in, tg), QT_OK);
        check_batch(in, tg, 1, T, &w[i], "collect");
    }
    free(in);
    free(tg);
    return w;
}

START_TEST(test_shuffle_is_permutation) {
    char *dir = qt_test_tmpdir("dl-shuffle");
    const int T = 16;
    const uint64_t W = 200;
    const size_t sizes[] = {1000, (size_t)(W * T + 1 - 1000)}; // exactly W windows
    write_position_shards(dir, "train", sizes, 2);
    qt_dataloader *dl = NULL, *other = NULL;
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "train", 1, T, 65536, 1234, 1), QT_OK);
    ck_assert_uint_eq(qt_dataloader_num_windows(dl), W);
    uint64_t *w = collect_windows(dl, T, 3 * W);
    for (int e = 0; e < 3; e++) {
        int seen[200] = {0};
        int in_order = 1;
        for (uint64_t i = 0; i < W; i++) {
            uint64_t x = w[e * W + i];
            ck_assert_msg(x < W && !seen[x], "seed 1234 epoch %d: window %llu repeated or out of "
                          "range", e, (unsigned long long)x);
            seen[x] = 1;
            in_order &= x == i;
        }
        ck_assert_msg(!in_order, "seed 1234 epoch %d is not shuffled", e);
    }
    ck_assert_msg(memcmp(w, w + W, W * sizeof *w) != 0, "epochs 0 and 1 have the same order");
    // Another seed gives another order; the same seed the same one.
    ck_assert_int_eq(qt_dataloader_open(&other, dir, "train", 1, T, 65536, 1235, 1), QT_OK);
    uint64_t *w2 = collect_windows(other, T, W);
    ck_assert_msg(memcmp(w, w2, W * sizeof *w) != 0, "seeds 1234 and 1235 give the same order");
    free(w2);
    qt_dataloader_free(other);
    ck_assert_int_eq(qt_dataloader_open(&other, dir, "train", 1, T, 65536, 1234, 1), QT_OK);
    w2 = collect_windows(other, T, 2 * W);
    ck_assert_msg(memcmp(w, w2, 2 * W * sizeof *w) == 0, "seed 1234 is not reproducible");
    free(w2);
    // Each position of the order is uniform: over many seeds, window 0 lands in the first half
    // about half the time (a biased shuffle, e.g. one swap per step, fails this).
    int first_half = 0;
    const int seeds = 200;
    for (int s = 0; s < seeds; s++) {
        qt_dataloader_free(other);
        ck_assert_int_eq(qt_dataloader_open(&other, dir, "train", 1, T, 65536, 5000 + s, 1),
                         QT_OK);
        w2 = collect_windows(other, T, W / 2);
        for (uint64_t i = 0; i < W / 2; i++) first_half += w2[i] == 0;
        free(w2);
    }
    // Binomial(200, 0.5): mean 100, sd ~7; allow 5 sd.
    ck_assert_msg(first_half > 65 && first_half < 135, "window 0 in the first half %d of %d "
                  "times", first_half, seeds);
    qt_dataloader_free(other);
    free(w);
    qt_dataloader_free(dl);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_tell_seek_resumes) {
    char *dir = qt_test_tmpdir("dl-seek");
    const size_t sizes[] = {2000, 1201}; // 3201 = 100 T + 1 tokens: 100 windows of T 32
    write_position_shards(dir, "train", sizes, 2);
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        const int B = 4, T = 32;
        qt_dataloader *a = NULL, *b = NULL;
        ck_assert_int_eq(qt_dataloader_open(&a, dir, "train", B, T, 65536, 42, shuffle), QT_OK);
        ck_assert_int_eq(qt_dataloader_open(&b, dir, "train", B, T, 65536, 42, shuffle), QT_OK);
        const uint64_t W = qt_dataloader_num_windows(a);
        int in_a[4 * 32], tg_a[4 * 32], in_b[4 * 32], tg_b[4 * 32];
        // Run `a` past an epoch boundary, saving a position mid-way.
        const int before = 19, after = 40; // 19*4 = 76 < W = 100 < (19+40)*4
        ck_assert_uint_eq(W, 100);
        for (int s = 0; s < before; s++) ck_assert_int_eq(qt_dataloader_next(a, in_a, tg_a), QT_OK);
        qt_data_pos pos = qt_dataloader_tell(a);
        int *want = malloc((size_t)after * 2 * B * T * sizeof *want);
        for (int s = 0; s < after; s++) {
            ck_assert_int_eq(qt_dataloader_next(a, in_a, tg_a), QT_OK);
            memcpy(want + (size_t)s * 2 * B * T, in_a, sizeof in_a);
            memcpy(want + (size_t)s * 2 * B * T + B * T, tg_a, sizeof tg_a);
        }
        // A fresh loader (another epoch's permutation cached) seeks and replays the same.
        for (int s = 0; s < 30; s++) ck_assert_int_eq(qt_dataloader_next(b, in_b, tg_b), QT_OK);
        ck_assert_int_eq(qt_dataloader_seek(b, pos), QT_OK);
        for (int s = 0; s < after; s++) {
            ck_assert_int_eq(qt_dataloader_next(b, in_b, tg_b), QT_OK);
            ck_assert_msg(memcmp(want + (size_t)s * 2 * B * T, in_b, sizeof in_b) == 0 &&
                          memcmp(want + (size_t)s * 2 * B * T + B * T, tg_b, sizeof tg_b) == 0,
                          "shuffle %d: batch %d after seek to (%llu, %llu) differs", shuffle, s,
                          (unsigned long long)pos.epoch, (unsigned long long)pos.index);
        }
        // Rewind gives the first batch of a fresh loader.
        qt_dataloader *c = NULL;
        ck_assert_int_eq(qt_dataloader_open(&c, dir, "train", B, T, 65536, 42, shuffle), QT_OK);
        ck_assert_int_eq(qt_dataloader_next(c, in_a, tg_a), QT_OK);
        qt_dataloader_rewind(b);
        ck_assert_uint_eq(qt_dataloader_tell(b).epoch, 0);
        ck_assert_uint_eq(qt_dataloader_tell(b).index, 0);
        ck_assert_int_eq(qt_dataloader_next(b, in_b, tg_b), QT_OK);
        ck_assert_msg(memcmp(in_a, in_b, sizeof in_a) == 0, "shuffle %d: rewind differs",
                      shuffle);
        // A position beyond the split is refused.
        qt_data_pos bad = {0, W};
        ck_assert_int_eq(qt_dataloader_seek(b, bad), QT_ERR_ARG);
        // ... naming the config keys that change the windows (there is no --seq-len flag).
        ck_assert_msg(strstr(qt_last_error(), "train.seq_len") &&
                          strstr(qt_last_error(), "data.dir") && !strstr(qt_last_error(), "--"),
                      "%s", qt_last_error());
        free(want);
        qt_dataloader_free(a);
        qt_dataloader_free(b);
        qt_dataloader_free(c);
    }
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_splits) {
    char *dir = qt_test_tmpdir("dl-bad");
    qt_dataloader *dl = (qt_dataloader *)1;
    // No shards.
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "train", 2, 8, 4096, 1, 0), QT_ERR_ARG);
    ck_assert_ptr_null(dl);
    ck_assert_msg(strstr(qt_last_error(), "train_*.bin") != NULL, "%s", qt_last_error());
    // Missing directory.
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    ck_assert_int_eq(qt_dataloader_open(&dl, missing, "train", 2, 8, 4096, 1, 0), QT_ERR_IO);

    // Too small: B * (T + 1) = 4 * 9 = 36 tokens needed, 35 present.
    const size_t small[] = {20, 15};
    write_position_shards(dir, "val", small, 2);
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "val", 4, 8, 4096, 1, 0), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "35 tokens") != NULL &&
                  strstr(qt_last_error(), "36") != NULL, "%s", qt_last_error());
    // 36 is enough.
    const size_t enough[] = {20, 16};
    write_position_shards(dir, "val", enough, 2);
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "val", 4, 8, 4096, 1, 1), QT_OK);
    ck_assert_uint_eq(qt_dataloader_batches_per_epoch(dl), 1);
    qt_dataloader_free(dl);

    // A token outside the vocabulary names the shard.
    const size_t sizes[] = {3000, 3000};
    write_position_shards(dir, "train", sizes, 2); // tokens up to 5999
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "train", 2, 8, 4096, 1, 0), QT_ERR_FORMAT);
    ck_assert_msg(strstr(qt_last_error(), "train_001.bin") != NULL &&
                  strstr(qt_last_error(), "4096") != NULL, "%s", qt_last_error());
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "train", 2, 8, 6000, 1, 0), QT_OK);
    qt_dataloader_free(dl);

    // A truncated shard is caught at open.
    char path[4096];
    snprintf(path, sizeof path, "%s/train_001.bin", dir);
    ck_assert_int_eq(truncate(path, 1024 + 2 * 3000 - 1), 0);
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "train", 2, 8, 6000, 1, 0), QT_ERR_FORMAT);
    ck_assert_msg(strstr(qt_last_error(), "train_001.bin") != NULL, "%s", qt_last_error());

    // A directory named like a shard is named as a directory.
    ck_assert_int_eq(truncate(path, 1024 + 2 * 3000), 0);
    snprintf(path, sizeof path, "%s/train_002.bin", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "train", 2, 8, 6000, 1, 0), QT_ERR_IO);
    ck_assert_msg(strstr(qt_last_error(), "train_002.bin is a directory") != NULL, "%s",
                  qt_last_error());

    // Bad arguments.
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "val", 0, 8, 4096, 1, 0), QT_ERR_ARG);
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "val", 2, 0, 4096, 1, 0), QT_ERR_ARG);
    ck_assert_int_eq(qt_dataloader_open(&dl, dir, "val", 2, 8, 0, 1, 0), QT_ERR_ARG);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

// ---- prepare -------------------------------------------------------------------------------

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

// All tokens of <dir>/<split>_000.bin, _001.bin, ... (n_shards of them), concatenated.
static uint16_t *read_split(const char *dir, const char *split, int n_shards, size_t *n) {
    uint16_t *all = NULL;
    *n = 0;
    for (int s = 0; s < n_shards; s++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s_%03d.bin", dir, split, s);
        uint16_t *t;
        size_t k;
        ck_assert_msg(qt_shard_read(path, &t, &k) == QT_OK, "%s", qt_last_error());
        all = realloc(all, (*n + k + 1) * sizeof *all);
        memcpy(all + *n, t, k * sizeof *t);
        *n += k;
        free(t);
    }
    return all;
}

START_TEST(test_prepare_end_to_end) {
    char *dir = qt_test_tmpdir("prepare");
    char text_path[2048], out[2048], path[4096];
    snprintf(text_path, sizeof text_path, "%s/text.txt", dir);
    snprintf(out, sizeof out, "%s/out/nested", dir);
    // Lines of English-like text from a small grammar.
    static const char *const subj[] = {"The king", "A man", "His son", "The people", "Moses"};
    static const char *const verb[] = {"went up to", "spake unto", "came into", "looked upon"};
    static const char *const obj[] = {"the city", "the house of the LORD", "Jerusalem",
                                      "the mountain", "his brethren", "the wilderness"};
    FILE *f = fopen(text_path, "w");
    uint64_t s = 77;
    for (int line = 0; line < 1500; line++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        fprintf(f, "%s %s %s, %d times.\n", subj[(s >> 33) % 5], verb[(s >> 40) % 4],
                obj[(s >> 50) % 6], (int)((s >> 20) % 50));
    }
    fclose(f);
    size_t len;
    uint8_t *text = slurp(text_path, &len);

    // A stale shard from an earlier run must disappear.
    snprintf(path, sizeof path, "mkdir -p '%s'", out);
    ck_assert_int_eq(system(path), 0);
    snprintf(path, sizeof path, "%s/train_999.bin", out);
    uint16_t one = 1;
    ck_assert_int_eq(qt_shard_write(path, &one, 1), QT_OK);

    qt_prepare_stats st;
    const int V = 400;
    ck_assert_msg(qt_prepare_ex(text_path, out, V, 0.1, 3000, 0, &st) == QT_OK, "%s",
                  qt_last_error());
    ck_assert_msg(access(path, F_OK) != 0, "stale shard %s was not removed", path);
    ck_assert_uint_eq(st.train_bytes + st.val_bytes, len);
    // The split is at a line boundary, near 90%.
    ck_assert_int_eq(text[st.train_bytes - 1], '\n');
    ck_assert(fabs((double)st.val_bytes / (double)len - 0.1) < 0.01);
    ck_assert_int_eq(st.train_shards, (int)((st.train_tokens + 2999) / 3000));
    ck_assert_int_gt(st.train_shards, 1);
    ck_assert_int_ge(st.val_shards, 1);

    // Shards decode back to the two halves of the text.
    qt_tokenizer *tok = NULL;
    snprintf(path, sizeof path, "%s/tokenizer.bin", out);
    ck_assert_int_eq(qt_tokenizer_load(&tok, path), QT_OK);
    ck_assert_int_eq(qt_tokenizer_vocab_size(tok), V);
    size_t n_train, n_val;
    uint16_t *train = read_split(out, "train", st.train_shards, &n_train);
    uint16_t *val = read_split(out, "val", st.val_shards, &n_val);
    ck_assert_uint_eq(n_train, st.train_tokens);
    ck_assert_uint_eq(n_val, st.val_tokens);
    char *dec;
    size_t dlen;
    ck_assert_int_eq(qt_tokenizer_decode(tok, train, n_train, &dec, &dlen), QT_OK);
    ck_assert(dlen == st.train_bytes && memcmp(dec, text, dlen) == 0);
    free(dec);
    ck_assert_int_eq(qt_tokenizer_decode(tok, val, n_val, &dec, &dlen), QT_OK);
    ck_assert(dlen == st.val_bytes && memcmp(dec, text + st.train_bytes, dlen) == 0);
    free(dec);

    // The entropy, recomputed: add-one smoothed unigram of train, averaged over val.
    double *count = calloc(V, sizeof *count);
    for (size_t i = 0; i < n_train; i++) count[train[i]] += 1.0;
    double h = 0.0;
    for (size_t i = 0; i < n_val; i++) h -= log((count[val[i]] + 1.0) / (double)(n_train + V));
    h /= (double)n_val;
    double err = fabs(h - st.val_unigram_entropy) / (1e-12 + 1e-9 * h);
    ck_assert_msg(err <= 1.0, "entropy %.12f, recount %.12f", st.val_unigram_entropy, h);
    ck_assert_msg(h > 0.5 && h < log((double)V), "entropy %.4f outside (0.5, log V)", h);
    free(count);

    // prepare.json holds the numbers.
    snprintf(path, sizeof path, "%s/prepare.json", out);
    size_t jlen;
    char *json = (char *)slurp(path, &jlen);
    char want[128];
    snprintf(want, sizeof want, "\"val_tokens\": %zu", n_val);
    ck_assert_msg(strstr(json, want) != NULL, "prepare.json lacks %s:\n%s", want, json);
    snprintf(want, sizeof want, "\"val_unigram_entropy_nats\": %.6f", st.val_unigram_entropy);
    ck_assert_msg(strstr(json, want) != NULL, "prepare.json lacks %s:\n%s", want, json);
    free(json);
    // ... and the identity of the tokenizer that made the shards, which reads back.
    qt_tokenizer_id recorded, made = qt_tokenizer_identity(tok);
    ck_assert_msg(qt_data_tokenizer_id(out, &recorded) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(recorded.checksum == made.checksum && recorded.vocab_size == V,
                  "prepare.json records %016llx/%d, the tokenizer is %016llx/%d",
                  (unsigned long long)recorded.checksum, recorded.vocab_size,
                  (unsigned long long)made.checksum, made.vocab_size);

    // The loader reads what prepare wrote, with the tokenizer's vocabulary.
    qt_dataloader *dl = NULL;
    ck_assert_msg(qt_dataloader_open(&dl, out, "train", 4, 32, V, 1, 1) == QT_OK, "%s",
                  qt_last_error());
    ck_assert_uint_eq(qt_dataloader_num_tokens(dl), n_train);
    qt_dataloader_free(dl);

    // Bad arguments.
    ck_assert_int_eq(qt_prepare(text_path, out, V, 0.0, 0), QT_ERR_ARG);
    ck_assert_int_eq(qt_prepare(text_path, out, V, 1.0, 0), QT_ERR_ARG);
    ck_assert_int_eq(qt_prepare(text_path, out, 256, 0.1, 0), QT_ERR_ARG);
    snprintf(path, sizeof path, "%s/missing.txt", dir);
    ck_assert_int_eq(qt_prepare(path, out, V, 0.1, 0), QT_ERR_IO);
    ck_assert_msg(strstr(qt_last_error(), "missing.txt") != NULL, "%s", qt_last_error());
    // A text without line breaks cannot be split.
    snprintf(path, sizeof path, "%s/oneline.txt", dir);
    f = fopen(path, "w");
    for (int i = 0; i < 500; i++) fputs("and the word ", f);
    fclose(f);
    ck_assert_int_eq(qt_prepare(path, out, 300, 0.1, 0), QT_ERR_ARG);

    // A failed prepare leaves nothing behind: not the --out directory it would have created
    // (nor its missing parents), and an existing one keeps its files.
    char fresh[2048], top[2048];
    snprintf(top, sizeof top, "%s/fresh", dir);
    snprintf(fresh, sizeof fresh, "%s/fresh/a/b", dir);
    ck_assert_int_eq(qt_prepare(text_path, fresh, 60000, 0.1, 0), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "60000") != NULL, "%s", qt_last_error());
    ck_assert_msg(access(top, F_OK) != 0, "a failed prepare left %s behind", top);
    ck_assert_int_eq(qt_prepare(text_path, out, 60000, 0.1, 0), QT_ERR_ARG);
    snprintf(path, sizeof path, "%s/tokenizer.bin", out);
    ck_assert_msg(access(path, F_OK) == 0, "a failed prepare removed %s", path);

    free(train);
    free(val);
    qt_tokenizer_free(tok);
    free(text);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

// prepare.json's tokenizer identity: read when present, unknown (vocab_size 0) when the file or
// the member is absent (shards of other tools, older qtrain), an error naming the file when
// the JSON or the member is malformed.
START_TEST(test_prepare_json_tokenizer_id) {
    qt_tokenizer_id id;
    const char good[] = "{\n  \"input\": \"a \\\"tokenizer\\\": {}\",\n  \"vocab_size\": 300,\n"
                        "  \"tokenizer\": {\"file\": \"tokenizer.bin\", \"fnv1a64\": "
                        "\"00ff00ff12345678\", \"vocab_size\": 300, \"extra\": [1, {\"a\": null}]},"
                        "\n  \"val_unigram_entropy_nats\": -1.5e-3\n}\n";
    ck_assert_msg(qt_data_parse_tokenizer_id(good, strlen(good), "p.json", &id) == QT_OK, "%s",
                  qt_last_error());
    ck_assert(id.checksum == 0x00ff00ff12345678ull && id.vocab_size == 300);
    const char older[] = "{\"input\": \"x\", \"vocab_size\": 300, \"train_shards\": 1}";
    ck_assert_int_eq(qt_data_parse_tokenizer_id(older, strlen(older), "p.json", &id), QT_OK);
    ck_assert_int_eq(id.vocab_size, 0);
    static const char *const malformed[] = {
        "",
        "{",
        "[]",
        "{\"tokenizer\": {\"fnv1a64\": \"00ff00ff12345678\", \"vocab_size\": 300}} x",
        "{\"a\": 01}",
        "{\"a\": \"\\x\"}",
        "{\"a\": tru}",
        "{\"a\": [1, 2,]}",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        ck_assert_msg(qt_data_parse_tokenizer_id(malformed[i], strlen(malformed[i]), "p.json",
                                                 &id) == QT_ERR_FORMAT,
                      "'%s' was accepted", malformed[i]);
        ck_assert_msg(strstr(qt_last_error(), "p.json is not valid JSON"), "%s", qt_last_error());
        ck_assert_int_eq(id.vocab_size, 0);
    }
    static const char *const bad_member[] = {
        "{\"tokenizer\": 3}",
        "{\"tokenizer\": {\"fnv1a64\": \"00ff00ff1234567\", \"vocab_size\": 300}}",
        "{\"tokenizer\": {\"fnv1a64\": \"00FF00FF12345678\", \"vocab_size\": 300}}",
        "{\"tokenizer\": {\"fnv1a64\": \"00ff00ff12345678\", \"vocab_size\": 256}}",
        "{\"tokenizer\": {\"fnv1a64\": \"00ff00ff12345678\", \"vocab_size\": 300.5}}",
        "{\"tokenizer\": {\"fnv1a64\": \"00ff00ff12345678\"}}",
        "{\"tokenizer\": {\"fnv1a64\": \"00ff00ff12345678\", \"vocab_size\": 300}, "
        "\"tokenizer\": {}}",
    };
    for (size_t i = 0; i < sizeof bad_member / sizeof bad_member[0]; i++) {
        ck_assert_msg(qt_data_parse_tokenizer_id(bad_member[i], strlen(bad_member[i]), "p.json",
                                                 &id) == QT_ERR_FORMAT,
                      "'%s' was accepted", bad_member[i]);
        ck_assert_msg(strstr(qt_last_error(), "\"tokenizer\" member is malformed"), "%s: %s",
                      bad_member[i], qt_last_error());
    }
    // Deep nesting is refused, not recursed into without bound.
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    char doc[512];
    snprintf(doc, sizeof doc, "{\"a\": %.*s}", 400, deep);
    ck_assert_int_eq(qt_data_parse_tokenizer_id(doc, strlen(doc), "p.json", &id), QT_ERR_FORMAT);
    // A directory without prepare.json: unknown, no error.
    char *dir = qt_test_tmpdir("pj");
    ck_assert_int_eq(qt_data_tokenizer_id(dir, &id), QT_OK);
    ck_assert_int_eq(id.vocab_size, 0);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *dataloader_suite(void) {
    Suite *s = suite_create("dataloader");
    TCase *tc = tcase_create("dataloader");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_in_order_across_shards);
    tcase_add_test(tc, test_shuffle_is_permutation);
    tcase_add_test(tc, test_tell_seek_resumes);
    tcase_add_test(tc, test_bad_splits);
    tcase_add_test(tc, test_prepare_end_to_end);
    tcase_add_test(tc, test_prepare_json_tokenizer_id);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(dataloader_suite()); }

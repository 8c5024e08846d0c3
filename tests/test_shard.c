// test_shard.c: llm.c-format token shards: write/read round trips, the exact on-disk layout,
// and the errors for truncated, padded, wrong-magic and wrong-version files; the atomic writer
// leaves no temporary file behind.
#include "qtrain/data.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static uint16_t *random_tokens(size_t n, uint64_t seed) {
    uint16_t *t = malloc((n ? n : 1) * sizeof *t);
    ck_assert_ptr_nonnull(t);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (uint16_t)(s >> 48);
    }
    if (n > 0) t[n - 1] = 65535; // the largest token survives
    return t;
}

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

static int32_t le32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

START_TEST(test_round_trip_and_layout) {
    char *dir = qt_test_tmpdir("shard");
    const size_t sizes[] = {0, 1, 7, 1000, 65537};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        char path[4096];
        snprintf(path, sizeof path, "%s/train_%03zu.bin", dir, k);
        uint16_t *tokens = random_tokens(n, 100 + k);
        ck_assert_msg(qt_shard_write(path, tokens, n) == QT_OK, "n %zu: %s", n, qt_last_error());

        // The llm.c layout, byte for byte.
        size_t flen;
        uint8_t *file = slurp(path, &flen);
        ck_assert_msg(flen == 1024 + 2 * n, "n %zu: file is %zu bytes", n, flen);
        ck_assert_int_eq(le32(file), 20240520);
        ck_assert_int_eq(le32(file + 4), 1);
        ck_assert_int_eq(le32(file + 8), (int32_t)n);
        for (int i = 3; i < 256; i++) ck_assert_int_eq(le32(file + 4 * i), 0);
        for (size_t i = 0; i < n; i++) {
            uint16_t t = (uint16_t)(file[1024 + 2 * i] | file[1024 + 2 * i + 1] << 8);
            ck_assert_msg(t == tokens[i], "n %zu: token %zu on disk is %u, want %u", n, i, t,
                          tokens[i]);
        }
        free(file);

        uint16_t *back = NULL;
        size_t nb = 12345;
        ck_assert_msg(qt_shard_read(path, &back, &nb) == QT_OK, "n %zu: %s", n, qt_last_error());
        ck_assert_ptr_nonnull(back);
        ck_assert_uint_eq(nb, n);
        ck_assert(n == 0 || memcmp(back, tokens, n * sizeof *tokens) == 0);
        free(back);
        free(tokens);
    }
    // The atomic writer leaves no temporary files.
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        ck_assert_msg(strstr(e->d_name, ".tmp") == NULL, "temporary file %s left", e->d_name);
    closedir(d);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

static void expect_read_error(const char *path, qt_status want, const char *const *needles,
                              const char *what) {
    uint16_t *tokens = (uint16_t *)1;
    size_t n = 99;
    qt_status st = qt_shard_read(path, &tokens, &n);
    ck_assert_msg(st == want, "%s: status %d (%s), want %d", what, st, qt_last_error(), want);
    ck_assert_ptr_null(tokens);
    ck_assert_uint_eq(n, 0);
    ck_assert_msg(strstr(qt_last_error(), path) != NULL, "%s: message does not name %s: %s", what,
                  path, qt_last_error());
    for (; needles && *needles; needles++)
        ck_assert_msg(strstr(qt_last_error(), *needles) != NULL, "%s: message lacks \"%s\": %s",
                      what, *needles, qt_last_error());
}

START_TEST(test_bad_files) {
    char *dir = qt_test_tmpdir("shard-bad");
    char good[4096], bad[4096];
    snprintf(good, sizeof good, "%s/good.bin", dir);
    snprintf(bad, sizeof bad, "%s/bad.bin", dir);
    const size_t n = 1000;
    uint16_t *tokens = random_tokens(n, 5);
    ck_assert_int_eq(qt_shard_write(good, tokens, n), QT_OK);
    size_t flen;
    uint8_t *file = slurp(good, &flen);
    uint8_t *copy = malloc(flen + 16);

    // Truncated by one byte: names the expected and actual sizes.
    spit(bad, file, flen - 1);
    const char *trunc[] = {"truncated", "3024", "3023", NULL};
    expect_read_error(bad, QT_ERR_FORMAT, trunc, "truncated by 1 byte");
    // Truncated by a whole token.
    spit(bad, file, flen - 2);
    const char *trunc2[] = {"truncated", "3024", "3022", NULL};
    expect_read_error(bad, QT_ERR_FORMAT, trunc2, "truncated by 2 bytes");
    // Shorter than the header.
    spit(bad, file, 100);
    const char *hdr[] = {"truncated", "100", NULL};
    expect_read_error(bad, QT_ERR_FORMAT, hdr, "truncated inside the header");
    // Padded.
    memcpy(copy, file, flen);
    memset(copy + flen, 0, 16);
    spit(bad, copy, flen + 16);
    const char *pad[] = {"padded", "3024", "3040", NULL};
    expect_read_error(bad, QT_ERR_FORMAT, pad, "padded by 16 bytes");
    // Wrong magic.
    memcpy(copy, file, flen);
    copy[0] ^= 0x5A;
    spit(bad, copy, flen);
    const char *magic[] = {"magic", "20240520", NULL};
    expect_read_error(bad, QT_ERR_FORMAT, magic, "wrong magic");
    // A text file.
    spit(bad, (const uint8_t *)"hello world\n", 12);
    expect_read_error(bad, QT_ERR_FORMAT, magic, "text file");
    // Version 2 (llm.c's uint32 tokens) is refused rather than misread.
    memcpy(copy, file, flen);
    copy[4] = 2;
    spit(bad, copy, flen);
    const char *version[] = {"version 2", NULL};
    expect_read_error(bad, QT_ERR_FORMAT, version, "version 2");
    // Negative count.
    memcpy(copy, file, flen);
    copy[11] = 0x80;
    spit(bad, copy, flen);
    expect_read_error(bad, QT_ERR_FORMAT, NULL, "negative count");
    // A directory named like a shard: the message says what it is.
    snprintf(bad, sizeof bad, "%s/train_000.bin", dir);
    ck_assert_int_eq(mkdir(bad, 0755), 0);
    const char *is_dir[] = {"is a directory", NULL};
    expect_read_error(bad, QT_ERR_IO, is_dir, "a directory");
    // Missing file.
    snprintf(bad, sizeof bad, "%s/missing.bin", dir);
    expect_read_error(bad, QT_ERR_IO, NULL, "missing file");
    // Writing into a missing directory.
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.bin", dir);
    ck_assert_int_eq(qt_shard_write(bad, tokens, n), QT_ERR_IO);

    free(copy);
    free(file);
    free(tokens);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_write_replaces_atomically) {
    char *dir = qt_test_tmpdir("shard-atomic");
    char path[4096];
    snprintf(path, sizeof path, "%s/val_000.bin", dir);
    uint16_t *a = random_tokens(500, 1), *b = random_tokens(20, 2);
    ck_assert_int_eq(qt_shard_write(path, a, 500), QT_OK);
    ck_assert_int_eq(qt_shard_write(path, b, 20), QT_OK);
    uint16_t *back;
    size_t n;
    ck_assert_int_eq(qt_shard_read(path, &back, &n), QT_OK);
    ck_assert_uint_eq(n, 20);
    ck_assert(memcmp(back, b, 20 * sizeof *b) == 0);
    free(back);
    // qt_data_write_atomic with several buffers concatenates them.
    const char *parts[3] = {"ab", "", "cde"};
    const void *bufs[3] = {parts[0], parts[1], parts[2]};
    size_t lens[3] = {2, 0, 3};
    snprintf(path, sizeof path, "%s/x.txt", dir);
    ck_assert_int_eq(qt_data_write_atomic(path, bufs, lens, 3), QT_OK);
    size_t flen;
    uint8_t *file = slurp(path, &flen);
    ck_assert_uint_eq(flen, 5);
    ck_assert(memcmp(file, "abcde", 5) == 0);
    free(file);
    free(a);
    free(b);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *shard_suite(void) {
    Suite *s = suite_create("shard");
    TCase *tc = tcase_create("shard");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_round_trip_and_layout);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_write_replaces_atomically);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(shard_suite()); }

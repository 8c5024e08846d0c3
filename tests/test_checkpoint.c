// test_checkpoint.c: the checkpoint container: round trips of every dtype, the documented
// layout and checksum (recomputed here from the text of checkpoint.h), corruption detection
// (magic, flipped bytes, truncation), atomic writes that fail cleanly, and qt_ckpt_get checks;
// and the file primitives under them (host/io/file.h).
#include "qtrain/checkpoint.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/io/file.h"
#include "qtrain/data.h"
#include "qtrain/trainer.h"
#include "testutil.h"

// ---------------------------------------------------------------------------------------
// Helpers

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return buf;
}

static void write_bytes(const char *path, const unsigned char *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

// Names in dir other than "." and "..", joined by spaces, into buf; returns their count.
static int list_dir(const char *dir, char *buf, size_t cap) {
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    int n = 0;
    buf[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, "%s%s", n ? " " : "", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static uint64_t get_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint32_t get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// qtsum64 written from its definition in checkpoint.h, one word at a time (no streaming), as
// an independent check of both the implementation and the documentation.
static uint64_t ref_qtsum64(const unsigned char *p, size_t n) {
    const uint64_t P = 0x9E3779B97F4A7C15ull, F = 0x100000001B3ull, O = 0xCBF29CE484222325ull;
    uint64_t h[4] = {O, O + 1, O + 2, O + 3};
    size_t m = n / 8;
    for (size_t i = 0; i < m; i++) {
        uint64_t x = h[i % 4] ^ get_le64(p + 8 * i);
        x = (x << 31) | (x >> 33);
        h[i % 4] = x * P;
    }
    uint64_t r = O;
    for (int j = 0; j < 4; j++) r = (r ^ h[j]) * F;
    r = (r ^ (uint64_t)n) * F;
    for (size_t i = m * 8; i < n; i++) r = (r ^ p[i]) * F;
    return r;
}

// A set of tensors of every dtype and odd sizes. Owns its buffers.
#define N_T 9
typedef struct {
    qt_ckpt_entry e[N_T];
    void *buf[N_T];
    char names[N_T][32];
} tensor_set;

static void make_set(tensor_set *s, uint64_t seed, int64_t big) {
    static const qt_ckpt_dtype dt[N_T] = {QT_CKPT_F32, QT_CKPT_F32, QT_CKPT_I32,
                                          QT_CKPT_U8,  QT_CKPT_U64, QT_CKPT_F64,
                                          QT_CKPT_U8,  QT_CKPT_F32, QT_CKPT_I32};
    static const int nd[N_T] = {2, 0, 1, 3, 1, 4, 1, 1, 2};
    static const int64_t shp[N_T][4] = {{33, 31},     {0}, {1027}, {3, 5, 7}, {1},
                                        {2, 3, 1, 5}, {0}, {0},    {1, 1}};
    memset(s, 0, sizeof *s);
    for (int i = 0; i < N_T; i++) {
        qt_ckpt_entry *e = &s->e[i];
        snprintf(s->names[i], sizeof s->names[i], "layers.%d.%s", i, qt_ckpt_dtype_name(dt[i]));
        e->name = s->names[i];
        e->dtype = dt[i];
        e->ndim = nd[i];
        for (int d = 0; d < 4; d++) e->shape[d] = d < nd[i] ? shp[i][d] : 0;
        if (i == 7) e->shape[0] = big; // one large tensor: several 8 MiB write chunks
        size_t bytes = (size_t)qt_ckpt_entry_numel(e) * qt_ckpt_dtype_size(e->dtype);
        s->buf[i] = malloc(bytes + 1);
        ck_assert_ptr_nonnull(s->buf[i]);
        unsigned char *b = s->buf[i];
        uint64_t x = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i;
        for (size_t k = 0; k < bytes; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[k] = (unsigned char)(x >> 24);
        }
        e->data = bytes ? s->buf[i] : NULL;
    }
    // Garbage past ndim must not matter.
    s->e[1].shape[2] = -77;
}

static void free_set(tensor_set *s) {
    for (int i = 0; i < N_T; i++) free(s->buf[i]);
}

static void expect_read_error(const char *path, qt_status want, const char *needle,
                              const char *needle2, const char *what) {
    qt_ckpt *ck = (qt_ckpt *)1;
    qt_status st = qt_ckpt_read(path, &ck);
    ck_assert_msg(st == want, "%s: status %d (%s), want %d", what, st, qt_last_error(), want);
    ck_assert_msg(ck == NULL, "%s: *out not NULL on failure", what);
    ck_assert_msg(strstr(qt_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what,
                  qt_last_error(), needle);
    ck_assert_msg(!needle2 || strstr(qt_last_error(), needle2) != NULL,
                  "%s: message '%s' lacks '%s'", what, qt_last_error(), needle2);
}

// ---------------------------------------------------------------------------------------

START_TEST(test_round_trip) {
    char *dir = qt_test_tmpdir("ckpt");
    char *path = join(dir, "model.ckpt");
    tensor_set s;
    make_set(&s, 1, 3 * 1000 * 1000 + 7); // 12 MB
    ck_assert_msg(qt_ckpt_write(path, s.e, N_T) == QT_OK, "%s", qt_last_error());

    qt_ckpt *ck = NULL;
    ck_assert_msg(qt_ckpt_read(path, &ck) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_ckpt_count(ck), N_T);
    for (int i = 0; i < N_T; i++) {
        const qt_ckpt_entry *want = &s.e[i];
        const qt_ckpt_entry *got = qt_ckpt_entry_at(ck, i);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got->name, want->name);
        ck_assert_ptr_eq(qt_ckpt_find(ck, want->name), got);
        ck_assert_int_eq(got->dtype, want->dtype);
        ck_assert_int_eq(got->ndim, want->ndim);
        for (int d = 0; d < 4; d++) {
            int64_t w = d < want->ndim ? want->shape[d] : 0;
            ck_assert_msg(got->shape[d] == w, "tensor %s dim %d: %lld, want %lld", want->name, d,
                          (long long)got->shape[d], (long long)w);
        }
        size_t numel = (size_t)qt_ckpt_entry_numel(want);
        size_t bytes = numel * qt_ckpt_dtype_size(want->dtype);
        ck_assert_msg(((uintptr_t)got->data % 64) == 0, "tensor %s data not 64-byte aligned",
                      want->name);
        ck_assert_msg(bytes == 0 || memcmp(got->data, want->data, bytes) == 0,
                      "tensor %s (%zu bytes) differs in the mapping", want->name, bytes);
        unsigned char *dst = malloc(bytes + 1);
        ck_assert_ptr_nonnull(dst);
        memset(dst, 0xA5, bytes + 1);
        ck_assert_msg(qt_ckpt_get(ck, want->name, want->dtype, numel, dst) == QT_OK, "%s",
                      qt_last_error());
        ck_assert_msg(bytes == 0 || memcmp(dst, want->data, bytes) == 0, "qt_ckpt_get %s differs",
                      want->name);
        ck_assert_msg(dst[bytes] == 0xA5, "qt_ckpt_get %s wrote past %zu bytes", want->name, bytes);
        free(dst);
    }
    ck_assert_ptr_null(qt_ckpt_entry_at(ck, N_T));
    ck_assert_ptr_null(qt_ckpt_entry_at(ck, -1));
    ck_assert_ptr_null(qt_ckpt_find(ck, "absent"));
    qt_ckpt_free(ck);

    // Overwriting replaces the file whole, and leaves no temporary file.
    free_set(&s);
    make_set(&s, 2, 5);
    ck_assert_msg(qt_ckpt_write(path, s.e, 3) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_ckpt_read(path, &ck) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_ckpt_count(ck), 3);
    ck_assert(memcmp(qt_ckpt_entry_at(ck, 0)->data, s.e[0].data, 33 * 31 * 4) == 0);
    qt_ckpt_free(ck);
    char names[512];
    ck_assert_msg(list_dir(dir, names, sizeof names) == 1, "directory holds: %s", names);

    // An empty checkpoint is valid.
    ck_assert_msg(qt_ckpt_write(path, NULL, 0) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_ckpt_read(path, &ck) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_ckpt_count(ck), 0);
    qt_ckpt_free(ck);

    free_set(&s);
    qt_test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_documented_layout) {
    char *dir = qt_test_tmpdir("ckpt");
    char *path = join(dir, "m.ckpt");
    tensor_set s;
    make_set(&s, 3, 1001);
    ck_assert_msg(qt_ckpt_write(path, s.e, N_T) == QT_OK, "%s", qt_last_error());
    size_t n;
    unsigned char *f = read_all(path, &n);
    ck_assert(memcmp(f, "QTCKPT\r\n", 8) == 0);
    ck_assert_uint_eq(get_le32(f + 8), 1);
    ck_assert_uint_eq(get_le32(f + 12), N_T);
    uint64_t index_bytes = get_le64(f + 16), data_offset = get_le64(f + 24);
    uint64_t data_bytes = get_le64(f + 32);
    ck_assert_uint_eq(data_offset % 64, 0);
    ck_assert_uint_ge(data_offset, 64 + index_bytes);
    ck_assert_uint_eq(data_bytes % 64, 0);
    ck_assert_uint_eq(n, data_offset + data_bytes + 8);
    const unsigned char *r = f + 64;
    for (int i = 0; i < N_T; i++) {
        uint32_t name_len = get_le32(r);
        ck_assert_uint_eq(name_len, strlen(s.e[i].name));
        ck_assert_uint_eq(get_le32(r + 4), (uint32_t)s.e[i].dtype);
        ck_assert_uint_eq(get_le32(r + 8), (uint32_t)s.e[i].ndim);
        uint64_t off = get_le64(r + 48), nbytes = get_le64(r + 56);
        ck_assert_uint_eq(off % 64, 0);
        ck_assert_uint_eq(nbytes, (uint64_t)qt_ckpt_entry_numel(&s.e[i]) *
                                      qt_ckpt_dtype_size(s.e[i].dtype));
        ck_assert(nbytes == 0 || memcmp(f + off, s.e[i].data, nbytes) == 0);
        ck_assert(memcmp(r + 64, s.e[i].name, name_len) == 0 && r[64 + name_len] == 0);
        r += 64 + (name_len + 1 + 7) / 8 * 8;
    }
    ck_assert_uint_eq((uint64_t)(r - f), 64 + index_bytes);
    uint64_t stored = get_le64(f + n - 8), ref = ref_qtsum64(f, n - 8);
    ck_assert_msg(stored == ref, "stored checksum %016llx, documented qtsum64 gives %016llx",
                  (unsigned long long)stored, (unsigned long long)ref);
    // The reference's tail-byte path, on lengths that are not multiples of 8 or 32.
    ck_assert(ref_qtsum64(f, 13) != ref_qtsum64(f, 12));
    // qt_ckpt_checksum is the same function, at every length (tails of 0..31 bytes).
    for (size_t len = 0; len < 300 && len <= n; len++)
        ck_assert_msg(qt_ckpt_checksum(f, len) == ref_qtsum64(f, len),
                      "qt_ckpt_checksum differs from the documented qtsum64 at %zu bytes", len);
    ck_assert(qt_ckpt_checksum(f, n - 8) == stored);
    free(f);
    free_set(&s);
    qt_test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_bad_magic) {
    char *dir = qt_test_tmpdir("ckpt");
    char *path = join(dir, "m.ckpt");
    tensor_set s;
    make_set(&s, 4, 10);
    ck_assert_int_eq(qt_ckpt_write(path, s.e, N_T), QT_OK);
    size_t n;
    unsigned char *f = read_all(path, &n);
    f[0] = 'X';
    write_bytes(path, f, n);
    expect_read_error(path, QT_ERR_FORMAT, "is not a qtrain checkpoint (magic", path,
                      "first byte changed");

    const char *text = "model.n_layer = 4\nmodel.d_model = 256\n";
    write_bytes(path, (const unsigned char *)text, strlen(text));
    expect_read_error(path, QT_ERR_FORMAT, "is not a qtrain checkpoint", "model.n", "a config");
    write_bytes(path, f, 0);
    expect_read_error(path, QT_ERR_FORMAT, "is not a qtrain checkpoint", NULL, "an empty file");

    // A newer format version is named.
    free(f);
    ck_assert_int_eq(qt_ckpt_write(path, s.e, N_T), QT_OK);
    f = read_all(path, &n);
    f[8] = 2;
    write_bytes(path, f, n);
    expect_read_error(path, QT_ERR_FORMAT, "version 2", NULL, "version 2");

    char *missing = join(dir, "none.ckpt");
    expect_read_error(missing, QT_ERR_IO, "none.ckpt", NULL, "missing file");
    free(missing);
    free(f);
    free_set(&s);
    qt_test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_flipped_bytes) {
    char *dir = qt_test_tmpdir("ckpt");
    char *path = join(dir, "m.ckpt");
    tensor_set s;
    make_set(&s, 5, 100);
    ck_assert_int_eq(qt_ckpt_write(path, s.e, N_T), QT_OK);
    size_t n;
    unsigned char *good = read_all(path, &n);
    uint64_t data_offset = get_le64(good + 24);
    // Positions: tensor data (first, middle, last data byte), an index name byte, a shape
    // byte, alignment padding, and the checksum itself.
    size_t pos[] = {(size_t)data_offset,
                    (size_t)data_offset + 1000,
                    n - 9,
                    64 + 64,
                    64 + 16,
                    (size_t)data_offset - 1,
                    n - 1};
    unsigned char *f = malloc(n);
    ck_assert_ptr_nonnull(f);
    for (size_t k = 0; k < sizeof pos / sizeof pos[0]; k++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(f, good, n);
            f[pos[k]] ^= (unsigned char)(1u << bit);
            write_bytes(path, f, n);
            char what[96];
            snprintf(what, sizeof what, "byte %zu of %zu, bit %d flipped", pos[k], n, bit);
            expect_read_error(path, QT_ERR_FORMAT, "checksum mismatch: the file is corrupt", path,
                              what);
        }
    }
    // Unchanged bytes read back fine (the loop above did not break the good copy).
    write_bytes(path, good, n);
    qt_ckpt *ck = NULL;
    ck_assert_msg(qt_ckpt_read(path, &ck) == QT_OK, "%s", qt_last_error());
    qt_ckpt_free(ck);
    free(f);
    free(good);
    free_set(&s);
    qt_test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_truncated) {
    char *dir = qt_test_tmpdir("ckpt");
    char *path = join(dir, "m.ckpt");
    tensor_set s;
    make_set(&s, 6, 1000);
    ck_assert_int_eq(qt_ckpt_write(path, s.e, N_T), QT_OK);
    size_t n;
    unsigned char *f = read_all(path, &n);
    char expected[64], actual[64];
    snprintf(expected, sizeof expected, "expected %zu bytes", n);
    snprintf(actual, sizeof actual, "the file has %zu", n - 1);
    ck_assert(truncate(path, (off_t)(n - 1)) == 0);
    expect_read_error(path, QT_ERR_FORMAT, expected, actual, "1 byte short");
    ck_assert(truncate(path, (off_t)(n / 2)) == 0);
    expect_read_error(path, QT_ERR_FORMAT, "truncated", expected, "half");
    ck_assert(truncate(path, 40) == 0);
    expect_read_error(path, QT_ERR_FORMAT, "truncated", NULL, "inside the header");
    ck_assert(truncate(path, 5) == 0);
    expect_read_error(path, QT_ERR_FORMAT, "truncated", NULL, "inside the magic");

    unsigned char *longer = malloc(n + 1);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, f, n);
    longer[n] = 0;
    write_bytes(path, longer, n + 1);
    expect_read_error(path, QT_ERR_FORMAT, "too long", expected, "1 byte appended");
    free(longer);
    free(f);
    free_set(&s);
    qt_test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_failed_writes_leave_nothing) {
    char *dir = qt_test_tmpdir("ckpt");
    char *path = join(dir, "m.ckpt");
    tensor_set s;
    make_set(&s, 7, 100 * 1000); // ~400 KB
    ck_assert_int_eq(qt_ckpt_write(path, s.e, 2), QT_OK);
    size_t n_before;
    unsigned char *before = read_all(path, &n_before);
    char names[1024];

    // 1. A directory that does not exist.
    char *missing = join(dir, "no/such/dir/m.ckpt");
    ck_assert_int_eq(qt_ckpt_write(missing, s.e, N_T), QT_ERR_IO);
    ck_assert_msg(strstr(qt_last_error(), "no/such/dir"), "message: %s", qt_last_error());
    free(missing);

    // 2. The disk "fills up" mid-write (a file size limit below the checkpoint's size): the
    //    write fails, the temporary file is removed, the old checkpoint is untouched.
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    struct rlimit small = old;
    small.rlim_cur = 64 * 1024;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); // EFBIG instead of the signal
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    qt_status st = qt_ckpt_write(path, s.e, N_T);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    ck_assert_msg(st == QT_ERR_IO, "write under a 64 KiB size limit gave %d: %s", st,
                  qt_last_error());
    ck_assert_msg(strstr(qt_last_error(), path), "message lacks the path: %s", qt_last_error());

    // 3. The final rename fails (the path is a non-empty directory).
    char *as_dir = join(dir, "taken");
    ck_assert_int_eq(mkdir(as_dir, 0755), 0);
    char *inside = join(as_dir, "keep");
    write_bytes(inside, (const unsigned char *)"x", 1);
    ck_assert_int_eq(qt_ckpt_write(as_dir, s.e, N_T), QT_ERR_IO);
    ck_assert_msg(strstr(qt_last_error(), "rename"), "message: %s", qt_last_error());

    // 4. Bad entries are refused before anything is created.
    qt_ckpt_entry bad[2] = {s.e[0], s.e[2]};
    bad[1].name = bad[0].name;
    ck_assert_int_eq(qt_ckpt_write(path, bad, 2), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), bad[0].name), "duplicate: %s", qt_last_error());
    bad[1] = s.e[2];
    bad[1].dtype = (qt_ckpt_dtype)9;
    ck_assert_int_eq(qt_ckpt_write(path, bad, 2), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), s.e[2].name), "dtype: %s", qt_last_error());
    bad[1] = s.e[2];
    bad[1].ndim = 5;
    ck_assert_int_eq(qt_ckpt_write(path, bad, 2), QT_ERR_ARG);
    bad[1] = s.e[2];
    bad[1].shape[0] = -1;
    ck_assert_int_eq(qt_ckpt_write(path, bad, 2), QT_ERR_ARG);
    bad[1] = s.e[2];
    bad[1].data = NULL;
    ck_assert_int_eq(qt_ckpt_write(path, bad, 2), QT_ERR_ARG);
    bad[1] = s.e[2];
    bad[1].name = "";
    ck_assert_int_eq(qt_ckpt_write(path, bad, 2), QT_ERR_ARG);

    // Nothing but the old checkpoint and the directory of case 3 remains, and the old
    // checkpoint is byte for byte what it was.
    int n_files = list_dir(dir, names, sizeof names);
    ck_assert_msg(n_files == 2, "directory holds: %s", names);
    ck_assert_msg(list_dir(as_dir, names, sizeof names) == 1, "%s holds: %s", as_dir, names);
    size_t n_after;
    unsigned char *after = read_all(path, &n_after);
    ck_assert_msg(n_after == n_before && memcmp(before, after, n_before) == 0,
                  "a failed write changed the existing checkpoint");
    qt_ckpt *ck = NULL;
    ck_assert_msg(qt_ckpt_read(path, &ck) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_ckpt_count(ck), 2);
    qt_ckpt_free(ck);

    free(after);
    free(before);
    free(inside);
    free(as_dir);
    free_set(&s);
    qt_test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_get_checks) {
    char *dir = qt_test_tmpdir("ckpt");
    char *path = join(dir, "m.ckpt");
    tensor_set s;
    make_set(&s, 8, 10);
    ck_assert_int_eq(qt_ckpt_write(path, s.e, N_T), QT_OK);
    qt_ckpt *ck = NULL;
    ck_assert_msg(qt_ckpt_read(path, &ck) == QT_OK, "%s", qt_last_error());
    float dst[33 * 31 + 1];
    const char *name = s.e[0].name; // f32 (33, 31)

    ck_assert_int_eq(qt_ckpt_get(ck, name, QT_CKPT_I32, 33 * 31, dst), QT_ERR_FORMAT);
    ck_assert_msg(strstr(qt_last_error(), name) && strstr(qt_last_error(), "f32 [33, 31]") &&
                      strstr(qt_last_error(), "i32"),
                  "wrong dtype: %s", qt_last_error());
    ck_assert_int_eq(qt_ckpt_get(ck, name, QT_CKPT_F32, 33 * 31 + 1, dst), QT_ERR_FORMAT);
    ck_assert_msg(strstr(qt_last_error(), name) && strstr(qt_last_error(), "[33, 31]") &&
                      strstr(qt_last_error(), "1024 elements"),
                  "wrong size: %s", qt_last_error());
    ck_assert_int_eq(qt_ckpt_get(ck, "layers.99.f32", QT_CKPT_F32, 1, dst), QT_ERR_FORMAT);
    ck_assert_msg(strstr(qt_last_error(), "no tensor 'layers.99.f32'"), "missing: %s",
                  qt_last_error());
    // A scalar has one element; an empty tensor zero.
    ck_assert_int_eq(qt_ckpt_get(ck, s.e[1].name, QT_CKPT_F32, 1, dst), QT_OK);
    ck_assert(memcmp(dst, s.e[1].data, 4) == 0);
    ck_assert_int_eq(qt_ckpt_get(ck, s.e[6].name, QT_CKPT_U8, 0, NULL), QT_OK);
    qt_ckpt_free(ck);
    free_set(&s);
    qt_test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

// host/io/file.h: whole reads (with their limit), maps of empty and non-empty files, refusal of
// directories, mkdir -p over existing parents and onto a file, and the atomic writer.
START_TEST(test_io_files) {
    char *dir = qt_test_tmpdir("io");
    char *file = join(dir, "a.bin");
    const char text[] = "0123456789";
    const void *bufs[2] = {text, text + 4};
    size_t lens[2] = {4, 6};
    ck_assert_msg(qt_data_write_atomic(file, bufs, lens, 2) == QT_OK, "%s", qt_last_error());

    uint8_t *data = NULL;
    size_t len = 0;
    ck_assert_msg(qt_io_read_file(file, "test file", NULL, 10, &data, &len) == QT_OK, "%s",
                  qt_last_error());
    ck_assert_uint_eq(len, 10);
    ck_assert_int_eq(memcmp(data, text, 10), 0);
    ck_assert_int_eq(data[10], 0); // NUL after the content
    free(data);
    ck_assert_int_eq(qt_io_read_file(file, "test file", NULL, 9, &data, &len), QT_ERR_FORMAT);
    ck_assert_ptr_null(data);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "more than the largest valid file (9)"));
    ck_assert_int_eq(qt_io_read_file(dir, "test file", NULL, 100, &data, &len), QT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "is a directory, not a file"));
    char *missing = join(dir, "missing.bin");
    ck_assert_int_eq(qt_io_read_file(missing, "tokenizer", "create it", 100, &data, &len),
                     QT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "cannot open tokenizer"));
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "; create it"));

    void *map = NULL;
    ck_assert_int_eq(qt_io_map_file(file, "test file", NULL, &map, &len), QT_OK);
    ck_assert(map != NULL && len == 10 && memcmp(map, text, 10) == 0);
    munmap(map, len);
    char *empty = join(dir, "empty.bin");
    ck_assert_int_eq(qt_data_write_atomic(empty, bufs, lens, 0), QT_OK);
    ck_assert_int_eq(qt_io_map_file(empty, "test file", NULL, &map, &len), QT_OK);
    ck_assert(map == NULL && len == 0);

    char *nested = join(dir, "x/y/z");
    ck_assert_msg(qt_io_make_dirs(nested, 0755, "test dir") == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_io_make_dirs(nested, 0755, "test dir"), QT_OK); // exists: fine
    struct stat sb;
    ck_assert(stat(nested, &sb) == 0 && S_ISDIR(sb.st_mode));
    char *under_file = join(file, "sub");
    ck_assert_int_eq(qt_io_make_dirs(under_file, 0755, "test dir"), QT_ERR_IO);
    ck_assert_int_eq(qt_io_make_dirs(file, 0755, "test dir"), QT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "is not a directory"));
    ck_assert_int_eq(qt_io_sync_parent_dir(file), 0);

    // mkdir -p that says what it created, and its undo: only the directories it made, and
    // only while empty.
    char *fresh = join(dir, "f/g/h"), *top = join(dir, "f"), *made = NULL;
    ck_assert_msg(qt_io_check_dir_creatable(fresh, "test dir") == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(qt_io_make_dirs_created(fresh, 0755, "test dir", &made), QT_OK);
    ck_assert_str_eq(made, top);
    char *made2 = (char *)1;
    ck_assert_int_eq(qt_io_make_dirs_created(fresh, 0755, "test dir", &made2), QT_OK);
    ck_assert_ptr_null(made2); // it existed
    qt_io_remove_created_dirs(fresh, made);
    ck_assert_msg(access(top, F_OK) != 0, "%s was not removed", top);
    ck_assert(stat(dir, &sb) == 0); // above `created`: kept
    free(made);
    ck_assert_int_eq(qt_io_make_dirs_created(fresh, 0755, "test dir", &made), QT_OK);
    char *keep = join(dir, "f/g/keep.txt");
    write_bytes(keep, (const unsigned char *)"x", 1);
    qt_io_remove_created_dirs(fresh, made);
    ck_assert_msg(access(keep, F_OK) == 0 && access(fresh, F_OK) != 0,
                  "the undo removed a directory holding a file, or kept an empty one");
    free(made);
    ck_assert_int_eq(qt_io_make_dirs_created(under_file, 0755, "test dir", &made), QT_ERR_IO);
    ck_assert_ptr_null(made);
    // Early refusals: under a file, or under a directory without write permission.
    ck_assert_int_eq(qt_io_check_dir_creatable(under_file, "test dir"), QT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "is not a directory"));
    char *ro = join(dir, "ro"), *ro_sub = join(dir, "ro/x/y");
    ck_assert_int_eq(mkdir(ro, 0555), 0);
    if (access(ro, W_OK) != 0) { // root writes anywhere: the check is then moot
        ck_assert_int_eq(qt_io_check_dir_creatable(ro_sub, "test dir"), QT_ERR_IO);
        ck_assert_ptr_nonnull(strstr(qt_last_error(), "is not writable"));
    }
    ck_assert_int_eq(chmod(ro, 0755), 0);
    QT_TEST_FREE_ALL(fresh, top, keep, ro, ro_sub);
    QT_TEST_FREE_ALL(file, missing, empty, nested, under_file);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

// The config stored in a training checkpoint reads back as the config that was written, through
// the config module's parser: a '#' inside a quoted data.dir is data, not a comment, and a line
// of any length is read whole (a data.dir of quotes and backslashes doubles when escaped).
START_TEST(test_stored_config_round_trip) {
    char *dir = qt_test_tmpdir("ckpt");
    char *path = join(dir, "ckpt.bin");
    char long_dir[511];
    for (size_t i = 0; i + 1 < sizeof long_dir; i++)
        long_dir[i] = "\"\\"[i % 2];
    long_dir[sizeof long_dir - 1] = '\0';
    const char *dirs[] = {"/data/run#1", "data # with spaces ", "\"quoted\"", long_dir};
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
        qt_config want, got;
        qt_config_defaults(&want);
        want.n_layer = 3;
        memset(want.data_dir, 0, sizeof want.data_dir);
        snprintf(want.data_dir, sizeof want.data_dir, "%s", dirs[d]);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(qt_config_write(&want, f), QT_OK);
        fclose(f);
        uint64_t meta[4] = {1, 0, 0, 0};
        qt_ckpt_entry e[2] = {{"qtrain.meta", QT_CKPT_U64, 1, {4}, meta},
                              {"qtrain.config", QT_CKPT_U8, 1, {(int64_t)len}, text}};
        ck_assert_msg(qt_ckpt_write(path, e, 2) == QT_OK, "%s", qt_last_error());
        free(text);
        ck_assert_msg(qt_train_state_read_config(path, &got) == QT_OK,
                      "data.dir '%.40s...' (%zu bytes): %s", dirs[d], strlen(dirs[d]),
                      qt_last_error());
        ck_assert_msg(memcmp(&got, &want, sizeof got) == 0,
                      "data.dir '%.40s...': the stored config read back differently ('%.40s...')",
                      dirs[d], got.data_dir);
    }
    qt_test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

// The pid of a process that has exited (and been reaped): no live process has it.
static pid_t dead_pid(void) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) _exit(0);
    ck_assert(waitpid(pid, NULL, 0) == pid);
    return pid;
}

// Temporary files of atomic writes (`<name>.tmp.<pid>`) whose writer died are removed; those of
// live processes (this one, a running child) and those still locked are kept, as is anything
// not named like one or not a regular file.
START_TEST(test_stale_temps_removed) {
    char *dir = qt_test_tmpdir("stale");
    pid_t dead = dead_pid(), dead2 = dead_pid();
    pid_t child = fork();
    ck_assert(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    char name[256];
    snprintf(name, sizeof name, "ckpt.bin.tmp.%d", (int)dead);
    char *stale = join(dir, name);
    snprintf(name, sizeof name, "train_000.bin.tmp.%d", (int)dead);
    char *stale2 = join(dir, name);
    snprintf(name, sizeof name, "ckpt.bin.tmp.%d", (int)getpid());
    char *mine = join(dir, name);
    snprintf(name, sizeof name, "ckpt.bin.tmp.%d", (int)child);
    char *live = join(dir, name);
    snprintf(name, sizeof name, "locked.bin.tmp.%d", (int)dead2);
    char *locked = join(dir, name);
    snprintf(name, sizeof name, "dir.tmp.%d", (int)dead);
    char *subdir = join(dir, name);
    char *other = join(dir, "notes.tmp.12ab"), *plain = join(dir, "ckpt.bin");
    char *empty_pid = join(dir, "x.tmp."), *zero = join(dir, "x.tmp.0");
    const char *files[] = {stale, stale2, mine, live, locked, other, plain, empty_pid, zero};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        write_bytes(files[i], (const unsigned char *)"0123456789", 10);
    ck_assert_int_eq(mkdir(subdir, 0755), 0);
    // A writer that is alive, whatever its pid says: it holds the file's lock.
    int fd = open(locked, O_RDONLY);
    ck_assert(fd >= 0 && flock(fd, LOCK_EX) == 0);

    int removed = -1;
    uint64_t bytes = 0;
    ck_assert_msg(qt_io_remove_stale_temps(dir, &removed, &bytes) == QT_OK, "%s", qt_last_error());
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(fd);
    ck_assert_int_eq(removed, 2);
    ck_assert_uint_eq(bytes, 20);
    ck_assert_msg(access(stale, F_OK) != 0 && access(stale2, F_OK) != 0,
                  "a dead writer's temporary file was kept");
    const char *kept[] = {mine, live, locked, other, plain, empty_pid, zero, subdir};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        ck_assert_msg(access(kept[i], F_OK) == 0, "%s was removed", kept[i]);
    // A missing directory is not an error: nothing to clean.
    char *missing = join(dir, "missing");
    ck_assert_int_eq(qt_io_remove_stale_temps(missing, &removed, &bytes), QT_OK);
    ck_assert_int_eq(removed, 0);
    QT_TEST_FREE_ALL(stale, stale2, mine, live, locked, subdir, other, plain, empty_pid, zero,
                     missing);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *checkpoint_suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_io_files);
    tcase_add_test(tc, test_documented_layout);
    tcase_add_test(tc, test_bad_magic);
    tcase_add_test(tc, test_flipped_bytes);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_failed_writes_leave_nothing);
    tcase_add_test(tc, test_get_checks);
    tcase_add_test(tc, test_stored_config_round_trip);
    tcase_add_test(tc, test_stale_temps_removed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return qt_test_run_suite(checkpoint_suite());
}

// checkpoint.c: the checkpoint container of include/qtrain/checkpoint.h (format, checksum and
// atomicity are documented there).
//
// Writing streams each tensor from the caller's memory in 8 MiB chunks (hash the chunk, then
// write it, so the hash reads it from cache) without staging copies; reading maps the file and
// hands out pointers into the mapping, so a 1.5 GB checkpoint costs no anonymous memory beyond
// the caller's own arrays.
#include "qtrain/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "host/io/file.h"

#define CKPT_VERSION 1u
#define CKPT_HEADER_BYTES 64u
#define CKPT_ALIGN 64u
#define CKPT_RECORD_BYTES 64u // fixed part of an index record, before the name
#define CKPT_MAX_NAME 4095u
#define CKPT_CHUNK (8u << 20) // bytes per write(): large, yet small enough to stay in cache

static const unsigned char ckpt_magic[8] = {'Q', 'T', 'C', 'K', 'P', 'T', '\r', '\n'};

struct qt_ckpt {
    char *path; // for messages
    void *map;  // the whole file, read-only
    size_t map_bytes;
    int n;
    qt_ckpt_entry *entries; // (n), names and data point into map
};

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static uint64_t align_up(uint64_t x) {
    return (x + CKPT_ALIGN - 1) / CKPT_ALIGN * CKPT_ALIGN;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

size_t qt_ckpt_dtype_size(qt_ckpt_dtype dtype) {
    switch (dtype) {
    case QT_CKPT_F32: return 4;
    case QT_CKPT_I32: return 4;
    case QT_CKPT_U8: return 1;
    case QT_CKPT_U64: return 8;
    case QT_CKPT_F64: return 8;
    case QT_CKPT_I8: return 1;
    }
    return 0;
}

const char *qt_ckpt_dtype_name(qt_ckpt_dtype dtype) {
    switch (dtype) {
    case QT_CKPT_F32: return "f32";
    case QT_CKPT_I32: return "i32";
    case QT_CKPT_U8: return "u8";
    case QT_CKPT_U64: return "u64";
    case QT_CKPT_F64: return "f64";
    case QT_CKPT_I8: return "i8";
    }
    return "?";
}

int64_t qt_ckpt_entry_numel(const qt_ckpt_entry *e) {
    int64_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
    return n;
}

// numel and bytes of a shape, or -1 when a dim is negative or the product overflows.
static int64_t shape_bytes(const int64_t *shape, int ndim, size_t elem, int64_t *numel) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return -1;
        if (shape[d] != 0 && n > INT64_MAX / shape[d]) return -1;
        n *= shape[d];
    }
    if (n > INT64_MAX / (int64_t)elem) return -1;
    if (numel) *numel = n;
    return n * (int64_t)elem;
}

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t cap) {
    size_t used = 0;
    used += (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && used < cap; d++) {
        used +=
            (size_t)snprintf(buf + used, cap - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    }
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

// ---------------------------------------------------------------------------------------
// qtsum64 (definition in checkpoint.h), streaming

#define SUM_P 0x9E3779B97F4A7C15ull
#define SUM_F 0x100000001B3ull
#define SUM_O 0xCBF29CE484222325ull

typedef struct {
    uint64_t lane[4];
    unsigned char pending[32]; // bytes not yet forming a whole 4-word block
    size_t n_pending;
    uint64_t total; // bytes fed so far
} qtsum;

static void sum_init(qtsum *s) {
    for (int j = 0; j < 4; j++) s->lane[j] = SUM_O + (uint64_t)j;
    s->n_pending = 0;
    s->total = 0;
}

static inline uint64_t sum_step(uint64_t h, uint64_t w) {
    h ^= w;
    h = (h << 31) | (h >> 33);
    return h * SUM_P;
}

// Words are read little-endian; the host is little-endian (checked by the callers), so memcpy.
static inline uint64_t load_word(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static void sum_blocks(qtsum *s, const unsigned char *p, size_t n_blocks) {
    uint64_t h0 = s->lane[0], h1 = s->lane[1], h2 = s->lane[2], h3 = s->lane[3];
    for (size_t b = 0; b < n_blocks; b++, p += 32) {
        h0 = sum_step(h0, load_word(p));
        h1 = sum_step(h1, load_word(p + 8));
        h2 = sum_step(h2, load_word(p + 16));
        h3 = sum_step(h3, load_word(p + 24));
    }
    s->lane[0] = h0;
    s->lane[1] = h1;
    s->lane[2] = h2;
    s->lane[3] = h3;
}

static void sum_feed(qtsum *s, const void *data, size_t n) {
    const unsigned char *p = data;
    s->total += n;
    if (s->n_pending > 0) {
        size_t take = 32 - s->n_pending < n ? 32 - s->n_pending : n;
        memcpy(s->pending + s->n_pending, p, take);
        s->n_pending += take;
        p += take;
        n -= take;
        if (s->n_pending < 32) return;
        sum_blocks(s, s->pending, 1);
        s->n_pending = 0;
    }
    sum_blocks(s, p, n / 32);
    p += n / 32 * 32;
    n %= 32;
    memcpy(s->pending, p, n);
    s->n_pending = n;
}

static uint64_t sum_final(const qtsum *s) {
    uint64_t lane[4] = {s->lane[0], s->lane[1], s->lane[2], s->lane[3]};
    size_t words = s->n_pending / 8;
    for (size_t i = 0; i < words; i++) lane[i] = sum_step(lane[i], load_word(s->pending + 8 * i));
    uint64_t h = SUM_O;
    for (int j = 0; j < 4; j++) h = (h ^ lane[j]) * SUM_F;
    h = (h ^ s->total) * SUM_F;
    for (size_t i = words * 8; i < s->n_pending; i++) h = (h ^ s->pending[i]) * SUM_F;
    return h;
}

uint64_t qt_ckpt_checksum(const void *data, size_t n) {
    qtsum s;
    sum_init(&s);
    sum_feed(&s, data, n);
    return sum_final(&s);
}

// ---------------------------------------------------------------------------------------
// Writing

// Hashes then writes (hash first: the chunk is then hot in cache for write()).
static qt_status write_hashed(qt_io_atomic *a, qtsum *sum, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        size_t c = n < CKPT_CHUNK ? n : CKPT_CHUNK;
        sum_feed(sum, p, c);
        QT_TRY(qt_io_atomic_write(a, p, c));
        p += c;
        n -= c;
    }
    return QT_OK;
}

static qt_status check_entries(const qt_ckpt_entry *entries, int n, uint64_t *bytes) {
    if (n < 0 || (n > 0 && !entries)) {
        return qt_error(QT_ERR_ARG,
                        "qt_ckpt_write: %d entries at %p; pass n_entries >= 0 and an "
                        "array",
                        n, (const void *)entries);
    }
    for (int i = 0; i < n; i++) {
        const qt_ckpt_entry *e = &entries[i];
        if (!e->name || e->name[0] == '\0' || strlen(e->name) > CKPT_MAX_NAME) {
            return qt_error(QT_ERR_ARG,
                            "qt_ckpt_write: entry %d has %s name; give each tensor a "
                            "name of 1 to %u bytes",
                            i, e->name ? (e->name[0] ? "a too long" : "an empty") : "no",
                            CKPT_MAX_NAME);
        }
        size_t elem = qt_ckpt_dtype_size(e->dtype);
        if (elem == 0) {
            return qt_error(QT_ERR_ARG,
                            "qt_ckpt_write: tensor '%s' has dtype %d; use a "
                            "qt_ckpt_dtype",
                            e->name, (int)e->dtype);
        }
        if (e->ndim < 0 || e->ndim > 4) {
            return qt_error(QT_ERR_ARG, "qt_ckpt_write: tensor '%s' has ndim %d; use 0..4", e->name,
                            e->ndim);
        }
        int64_t b = shape_bytes(e->shape, e->ndim, elem, NULL);
        if (b < 0) {
            char s[160];
            shape_text(e->shape, e->ndim, s, sizeof s);
            return qt_error(QT_ERR_ARG,
                            "qt_ckpt_write: tensor '%s' has shape %s (a negative dim "
                            "or too many elements)",
                            e->name, s);
        }
        if (b > 0 && !e->data) {
            return qt_error(QT_ERR_ARG, "qt_ckpt_write: tensor '%s' has %lld bytes but no data",
                            e->name, (long long)b);
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(entries[j].name, e->name) == 0) {
                return qt_error(QT_ERR_ARG,
                                "qt_ckpt_write: tensor name '%s' appears twice "
                                "(entries %d and %d); names must be unique",
                                e->name, j, i);
            }
        }
        bytes[i] = (uint64_t)b;
    }
    return QT_OK;
}

static uint64_t record_bytes(const char *name) {
    return CKPT_RECORD_BYTES + (strlen(name) + 1 + 7) / 8 * 8;
}

qt_status qt_ckpt_write(const char *path, const qt_ckpt_entry *entries, int n_entries) {
    if (!path || !*path) return qt_error(QT_ERR_ARG, "qt_ckpt_write: no path; name a file");
    if (!host_is_little_endian()) {
        return qt_error(QT_ERR_UNSUPPORTED, "qt_ckpt_write: checkpoints are little-endian and "
                                            "this host is not; write on a little-endian machine");
    }
    qt_status st = QT_OK;
    uint64_t *bytes = NULL;
    unsigned char *head = NULL;

    bytes = calloc(n_entries > 0 ? (size_t)n_entries : 1, sizeof *bytes);
    if (!bytes)
        return qt_error(QT_ERR_OOM, "qt_ckpt_write: out of memory for %d entries", n_entries);
    st = check_entries(entries, n_entries, bytes);
    if (st != QT_OK) goto out;

    // Layout: header, index, then each tensor at a 64-aligned offset.
    uint64_t index_bytes = 0;
    for (int i = 0; i < n_entries; i++) index_bytes += record_bytes(entries[i].name);
    uint64_t data_offset = align_up(CKPT_HEADER_BYTES + index_bytes);
    uint64_t cursor = data_offset;
    head = calloc(1, (size_t)data_offset);
    if (!head) {
        st = qt_error(QT_ERR_OOM, "qt_ckpt_write: out of memory for a %llu-byte index",
                      (unsigned long long)data_offset);
        goto out;
    }
    unsigned char *r = head + CKPT_HEADER_BYTES;
    for (int i = 0; i < n_entries; i++) {
        const qt_ckpt_entry *e = &entries[i];
        size_t name_len = strlen(e->name);
        put_u32(r, (uint32_t)name_len);
        put_u32(r + 4, (uint32_t)e->dtype);
        put_u32(r + 8, (uint32_t)e->ndim);
        for (int d = 0; d < e->ndim; d++) put_u64(r + 16 + 8 * d, (uint64_t)e->shape[d]);
        put_u64(r + 48, cursor);
        put_u64(r + 56, bytes[i]);
        memcpy(r + CKPT_RECORD_BYTES, e->name, name_len); // NUL and padding: calloc's zeros
        r += record_bytes(e->name);
        cursor = align_up(cursor + bytes[i]);
    }
    uint64_t data_bytes = cursor - data_offset;
    memcpy(head, ckpt_magic, 8);
    put_u32(head + 8, CKPT_VERSION);
    put_u32(head + 12, (uint32_t)n_entries);
    put_u64(head + 16, index_bytes);
    put_u64(head + 24, data_offset);
    put_u64(head + 32, data_bytes);

    // Streamed through an atomic write: a failed write removes its temporary file itself.
    qt_io_atomic a;
    st = qt_io_atomic_begin(&a, path, "checkpoint");
    if (st != QT_OK) goto out;
    static const unsigned char zeros[CKPT_ALIGN];
    qtsum sum;
    sum_init(&sum);
    st = write_hashed(&a, &sum, head, (size_t)data_offset);
    uint64_t written = data_offset;
    for (int i = 0; st == QT_OK && i < n_entries; i++) {
        if (bytes[i] > 0) st = write_hashed(&a, &sum, entries[i].data, (size_t)bytes[i]);
        written += bytes[i];
        size_t pad = (size_t)(align_up(written) - written);
        if (st == QT_OK && pad > 0) st = write_hashed(&a, &sum, zeros, pad);
        written += pad;
    }
    unsigned char trailer[8];
    put_u64(trailer, sum_final(&sum));
    if (st == QT_OK) st = qt_io_atomic_write(&a, trailer, 8);
    if (st == QT_OK) st = qt_io_atomic_commit(&a);

out:
    free(head);
    free(bytes);
    return st;
}

// ---------------------------------------------------------------------------------------
// Reading

static void magic_text(const unsigned char *m, size_t n, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used + 5 < cap; i++) {
        if (m[i] >= 0x20 && m[i] < 0x7f && m[i] != '\\') {
            buf[used++] = (char)m[i];
        } else {
            used += (size_t)snprintf(buf + used, cap - used, "\\x%02x", m[i]);
        }
    }
    buf[used < cap ? used : cap - 1] = '\0';
}

static qt_status parse_index(qt_ckpt *ck, uint32_t n, uint64_t index_bytes, uint64_t data_offset,
                             uint64_t data_bytes) {
    const unsigned char *base = ck->map;
    const unsigned char *r = base + CKPT_HEADER_BYTES;
    const unsigned char *index_end = r + index_bytes;
    ck->entries = calloc(n > 0 ? n : 1, sizeof *ck->entries);
    if (!ck->entries) return qt_error(QT_ERR_OOM, "reading %s: out of memory", ck->path);
    for (uint32_t i = 0; i < n; i++) {
        if ((size_t)(index_end - r) < CKPT_RECORD_BYTES) {
            return qt_error(QT_ERR_FORMAT,
                            "%s: index entry %u runs past the index; the file "
                            "is corrupt",
                            ck->path, i);
        }
        uint32_t name_len = get_u32(r);
        uint32_t dtype = get_u32(r + 4);
        uint32_t ndim = get_u32(r + 8);
        uint64_t offset = get_u64(r + 48), nbytes = get_u64(r + 56);
        uint64_t rec = CKPT_RECORD_BYTES + ((uint64_t)name_len + 1 + 7) / 8 * 8;
        if (name_len == 0 || name_len > CKPT_MAX_NAME || rec > (uint64_t)(index_end - r) ||
            r[CKPT_RECORD_BYTES + name_len] != '\0' ||
            memchr(r + CKPT_RECORD_BYTES, '\0', name_len) != NULL) {
            return qt_error(QT_ERR_FORMAT,
                            "%s: index entry %u has a bad name; the file is "
                            "corrupt",
                            ck->path, i);
        }
        qt_ckpt_entry *e = &ck->entries[i];
        e->name = (const char *)(r + CKPT_RECORD_BYTES);
        if (qt_ckpt_dtype_size((qt_ckpt_dtype)dtype) == 0 || ndim > 4) {
            return qt_error(QT_ERR_FORMAT,
                            "%s: tensor '%s' has dtype %u, ndim %u; the file is "
                            "corrupt or from a newer qtrain",
                            ck->path, e->name, dtype, ndim);
        }
        e->dtype = (qt_ckpt_dtype)dtype;
        e->ndim = (int)ndim;
        for (int d = 0; d < 4; d++)
            e->shape[d] = d < e->ndim ? (int64_t)get_u64(r + 16 + 8 * d) : 0;
        int64_t want = shape_bytes(e->shape, e->ndim, qt_ckpt_dtype_size(e->dtype), NULL);
        uint64_t data_end = data_offset + data_bytes;
        if (want < 0 || (uint64_t)want != nbytes || offset % CKPT_ALIGN != 0 ||
            offset < data_offset || offset > data_end || nbytes > data_end - offset) {
            return qt_error(QT_ERR_FORMAT,
                            "%s: tensor '%s' has an inconsistent shape, size or "
                            "offset; the file is corrupt",
                            ck->path, e->name);
        }
        e->data = base + offset;
        r += rec;
    }
    if (r != index_end) {
        return qt_error(QT_ERR_FORMAT,
                        "%s: the index holds %llu bytes more than its %u entries; "
                        "the file is corrupt",
                        ck->path, (unsigned long long)(index_end - r), n);
    }
    ck->n = (int)n;
    return QT_OK;
}

qt_status qt_ckpt_read(const char *path, qt_ckpt **out) {
    if (!out) return qt_error(QT_ERR_ARG, "qt_ckpt_read: NULL output pointer");
    *out = NULL;
    if (!path) return qt_error(QT_ERR_ARG, "qt_ckpt_read: no path");
    if (!host_is_little_endian()) {
        return qt_error(QT_ERR_UNSUPPORTED, "qt_ckpt_read: checkpoints are little-endian and "
                                            "this host is not");
    }
    qt_status st = QT_OK;
    qt_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck) return qt_error(QT_ERR_OOM, "qt_ckpt_read: out of memory");
    ck->path = strdup(path);
    if (!ck->path) {
        free(ck);
        return qt_error(QT_ERR_OOM, "qt_ckpt_read: out of memory");
    }
    void *map = NULL;
    size_t map_bytes = 0;
    st = qt_io_map_file(path, "checkpoint", "check the path", &map, &map_bytes);
    if (st != QT_OK) goto out;
    ck->map = map;
    ck->map_bytes = map_bytes;
    uint64_t size = map_bytes;
    // The header, as far as the file holds one (an empty file maps to nothing).
    static const unsigned char nothing[1];
    const unsigned char *head = map ? (const unsigned char *)map : nothing;
    size_t got = size < CKPT_HEADER_BYTES ? (size_t)size : CKPT_HEADER_BYTES;
    size_t magic_n = got < 8 ? got : 8;
    if (memcmp(head, ckpt_magic, magic_n) != 0 || got == 0) {
        char m[64];
        magic_text(head, magic_n, m, sizeof m);
        st = qt_error(QT_ERR_FORMAT,
                      "%s is not a qtrain checkpoint (magic \"%s\", expected "
                      "\"QTCKPT\\r\\n\"); name a file written by qtrain",
                      path, m);
        goto out;
    }
    if (got < CKPT_HEADER_BYTES) {
        st = qt_error(QT_ERR_FORMAT,
                      "checkpoint %s is truncated: %llu bytes, less than the "
                      "%u-byte header; the write was interrupted, use an older "
                      "checkpoint",
                      path, (unsigned long long)size, CKPT_HEADER_BYTES);
        goto out;
    }
    uint32_t version = get_u32(head + 8);
    if (version != CKPT_VERSION) {
        st = qt_error(QT_ERR_FORMAT,
                      "checkpoint %s has format version %u; this qtrain reads "
                      "version %u",
                      path, version, CKPT_VERSION);
        goto out;
    }
    uint32_t n = get_u32(head + 12);
    uint64_t index_bytes = get_u64(head + 16), data_offset = get_u64(head + 24);
    uint64_t data_bytes = get_u64(head + 32);
    // Bounds that keep the sums below from overflowing, then consistency.
    const uint64_t limit = (uint64_t)1 << 60;
    if (index_bytes > limit || data_offset > limit || data_bytes > limit ||
        data_offset % CKPT_ALIGN != 0 || data_bytes % CKPT_ALIGN != 0 ||
        data_offset < CKPT_HEADER_BYTES + index_bytes ||
        (uint64_t)n * CKPT_RECORD_BYTES > index_bytes) {
        st = qt_error(QT_ERR_FORMAT,
                      "checkpoint %s has an inconsistent header (%u entries, "
                      "index %llu bytes, data at %llu, %llu bytes); the file is "
                      "corrupt",
                      path, n, (unsigned long long)index_bytes, (unsigned long long)data_offset,
                      (unsigned long long)data_bytes);
        goto out;
    }
    uint64_t expected = data_offset + data_bytes + 8;
    if (size != expected) {
        st = qt_error(QT_ERR_FORMAT,
                      "checkpoint %s is %s: expected %llu bytes, the file has %llu; "
                      "%s",
                      path, size < expected ? "truncated" : "too long",
                      (unsigned long long)expected, (unsigned long long)size,
                      size < expected ? "the write was interrupted or the copy is incomplete"
                                      : "something appended to it; the file is corrupt");
        goto out;
    }
    posix_madvise(ck->map, ck->map_bytes, POSIX_MADV_SEQUENTIAL);

    qtsum sum;
    sum_init(&sum);
    sum_feed(&sum, ck->map, (size_t)size - 8);
    uint64_t want = get_u64((const unsigned char *)ck->map + size - 8);
    uint64_t have = sum_final(&sum);
    if (want != have) {
        st = qt_error(QT_ERR_FORMAT,
                      "checkpoint %s: checksum mismatch: the file is corrupt "
                      "(stored %016llx, computed %016llx); use another checkpoint",
                      path, (unsigned long long)want, (unsigned long long)have);
        goto out;
    }
    st = parse_index(ck, n, index_bytes, data_offset, data_bytes);
    if (st != QT_OK) goto out;
    posix_madvise(ck->map, ck->map_bytes, POSIX_MADV_NORMAL);

out:
    if (st != QT_OK) {
        qt_ckpt_free(ck);
        return st;
    }
    *out = ck;
    return QT_OK;
}

void qt_ckpt_free(qt_ckpt *ck) {
    if (!ck) return;
    if (ck->map) munmap(ck->map, ck->map_bytes);
    free(ck->entries);
    free(ck->path);
    free(ck);
}

int qt_ckpt_count(const qt_ckpt *ck) {
    return ck ? ck->n : 0;
}

const qt_ckpt_entry *qt_ckpt_entry_at(const qt_ckpt *ck, int i) {
    if (!ck || i < 0 || i >= ck->n) return NULL;
    return &ck->entries[i];
}

const qt_ckpt_entry *qt_ckpt_find(const qt_ckpt *ck, const char *name) {
    if (!ck || !name) return NULL;
    for (int i = 0; i < ck->n; i++) {
        if (strcmp(ck->entries[i].name, name) == 0) return &ck->entries[i];
    }
    return NULL;
}

qt_status qt_ckpt_get(const qt_ckpt *ck, const char *name, qt_ckpt_dtype dtype, size_t numel,
                      void *dst) {
    if (!ck || !name) return qt_error(QT_ERR_ARG, "qt_ckpt_get: NULL checkpoint or name");
    const qt_ckpt_entry *e = qt_ckpt_find(ck, name);
    if (!e) {
        return qt_error(QT_ERR_FORMAT,
                        "checkpoint %s has no tensor '%s'; was it written for "
                        "another model config?",
                        ck->path, name);
    }
    int64_t have = qt_ckpt_entry_numel(e);
    if (e->dtype != dtype || (uint64_t)have != (uint64_t)numel) {
        char s[160];
        shape_text(e->shape, e->ndim, s, sizeof s);
        return qt_error(QT_ERR_FORMAT,
                        "checkpoint %s: tensor '%s' is %s %s (%lld elements), but "
                        "%s with %zu elements was asked for; the checkpoint was "
                        "written for another model config",
                        ck->path, name, qt_ckpt_dtype_name(e->dtype), s, (long long)have,
                        qt_ckpt_dtype_name(dtype), numel);
    }
    size_t bytes = numel * qt_ckpt_dtype_size(dtype);
    if (bytes > 0) {
        if (!dst) return qt_error(QT_ERR_ARG, "qt_ckpt_get: tensor '%s': NULL destination", name);
        memcpy(dst, e->data, bytes);
    }
    return QT_OK;
}

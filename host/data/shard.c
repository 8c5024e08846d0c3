// shard.c: llm.c-format token shards (see qtrain/data.h), written atomically
// (qt_data_write_atomic, host/io/file.c) and read whole.
#include "qtrain/data.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "host/io/file.h"

static uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int host_is_big_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 0;
}

static void swap16_inplace(uint16_t *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (uint16_t)(x[i] << 8 | x[i] >> 8);
}

qt_status qt_shard_write(const char *path, const uint16_t *tokens, size_t n) {
    if (!path || (n > 0 && !tokens))
        return qt_error(QT_ERR_ARG, "qt_shard_write: NULL path or tokens");
    if (n > QT_SHARD_MAX_TOKENS)
        return qt_error(QT_ERR_ARG,
                        "shard %s: %zu tokens exceed the format's limit of %zu per shard; "
                        "write several shards", path, n, QT_SHARD_MAX_TOKENS);
    uint8_t header[QT_SHARD_HEADER_BYTES];
    memset(header, 0, sizeof header);
    store_le32(header + 0, (uint32_t)QT_SHARD_MAGIC);
    store_le32(header + 4, QT_SHARD_VERSION);
    store_le32(header + 8, (uint32_t)n);

    const void *body = tokens;
    uint16_t *swapped = NULL;
    if (host_is_big_endian() && n > 0) {
        swapped = malloc(n * sizeof *swapped);
        if (!swapped) return qt_error(QT_ERR_OOM, "out of memory writing shard %s", path);
        memcpy(swapped, tokens, n * sizeof *swapped);
        swap16_inplace(swapped, n);
        body = swapped;
    }
    const void *bufs[2] = {header, body};
    size_t lens[2] = {sizeof header, n * sizeof(uint16_t)};
    qt_status st = qt_data_write_atomic(path, bufs, lens, 2);
    free(swapped);
    return st;
}

qt_status qt_shard_check_header(const char *path, const uint8_t *header, uint64_t file_size,
                                size_t *n) {
    if (file_size >= 4) {
        uint32_t magic = load_le32(header);
        if (magic != (uint32_t)QT_SHARD_MAGIC)
            return qt_error(QT_ERR_FORMAT,
                            "%s is not a token shard: magic %u, expected %d (llm.c format); "
                            "re-create it with qtrain prepare", path, magic, QT_SHARD_MAGIC);
    }
    if (file_size < QT_SHARD_HEADER_BYTES)
        return qt_error(QT_ERR_FORMAT,
                        "shard %s is truncated: %llu bytes, shorter than the %d-byte header; "
                        "re-create it with qtrain prepare", path, (unsigned long long)file_size,
                        QT_SHARD_HEADER_BYTES);
    uint32_t version = load_le32(header + 4);
    if (version != QT_SHARD_VERSION)
        return qt_error(QT_ERR_FORMAT,
                        "shard %s has version %u; only version %d (uint16 tokens) is supported",
                        path, version, QT_SHARD_VERSION);
    int32_t count = (int32_t)load_le32(header + 8);
    if (count < 0)
        return qt_error(QT_ERR_FORMAT, "shard %s has a negative token count %d in its header",
                        path, (int)count);
    uint64_t expected = (uint64_t)QT_SHARD_HEADER_BYTES + 2 * (uint64_t)count;
    if (file_size != expected)
        return qt_error(QT_ERR_FORMAT,
                        "shard %s is %s: expected %llu bytes (%d-byte header + 2 x %d tokens), "
                        "found %llu; re-create it with qtrain prepare",
                        path, file_size < expected ? "truncated" : "padded",
                        (unsigned long long)expected, QT_SHARD_HEADER_BYTES, (int)count,
                        (unsigned long long)file_size);
    *n = (size_t)count;
    return QT_OK;
}

qt_status qt_shard_map(const char *path, qt_shard_view *v) {
    memset(v, 0, sizeof *v);
    QT_TRY(qt_io_map_file(path, "shard", NULL, &v->map, &v->map_bytes));
    static const uint8_t empty[1];
    const uint8_t *bytes = v->map ? v->map : empty;
    qt_status st = qt_shard_check_header(path, bytes, (uint64_t)v->map_bytes, &v->n);
    if (st != QT_OK) {
        qt_shard_unmap(v);
        return st;
    }
    v->tokens = v->n > 0 ? (const uint16_t *)(bytes + QT_SHARD_HEADER_BYTES) : NULL;
    return QT_OK;
}

void qt_shard_unmap(qt_shard_view *v) {
    if (v->map) munmap(v->map, v->map_bytes);
    memset(v, 0, sizeof *v);
}

qt_status qt_shard_read(const char *path, uint16_t **tokens, size_t *n) {
    if (!path || !tokens || !n) return qt_error(QT_ERR_ARG, "qt_shard_read: NULL argument");
    *tokens = NULL;
    *n = 0;
    qt_shard_view v;
    QT_TRY(qt_shard_map(path, &v));
    uint16_t *buf = malloc(v.n > 0 ? v.n * sizeof *buf : 1);
    if (!buf) {
        qt_shard_unmap(&v);
        return qt_error(QT_ERR_OOM, "out of memory reading %zu tokens of shard %s", v.n, path);
    }
    if (v.n > 0) memcpy(buf, v.tokens, v.n * sizeof *buf);
    if (host_is_big_endian()) swap16_inplace(buf, v.n);
    *tokens = buf;
    *n = v.n;
    qt_shard_unmap(&v);
    return QT_OK;
}

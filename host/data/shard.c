// shard.c: llm.c-format token shards (see qtrain/data.h) and the atomic file writer shared by
// the tokenizer, the shards and prepare.json.
//
// Atomic write: the bytes go to `<path>.tmp.<pid>` in the same directory, which is fsync'd,
// closed and renamed over path; then the directory is fsync'd so the rename itself is durable.
// A crash leaves either the old file or the new one, never a half-written shard.
#include "qtrain/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

// Writes all of buf to fd, retrying short writes and EINTR.
static int write_all(int fd, const void *buf, size_t len) {
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

// fsync of the directory holding path, so a rename into it survives a crash. Some file systems
// refuse fsync on a directory (EINVAL); the data itself is already synced, so that is ignored.
static qt_status fsync_parent_dir(const char *path) {
    size_t len = strlen(path);
    char *dir = malloc(len + 2);
    if (!dir) return qt_error(QT_ERR_OOM, "out of memory syncing the directory of %s", path);
    memcpy(dir, path, len + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    qt_status st = QT_OK;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
            st = qt_error(QT_ERR_IO, "fsync of directory %s failed: %s", dir, strerror(errno));
        close(fd);
    }
    free(dir);
    return st;
}

qt_status qt_data_write_atomic(const char *path, const void *const *bufs, const size_t *lens,
                               int nbufs) {
    if (!path || (nbufs > 0 && (!bufs || !lens)) || nbufs < 0)
        return qt_error(QT_ERR_ARG, "qt_data_write_atomic: NULL path or buffers");
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) return qt_error(QT_ERR_OOM, "out of memory writing %s", path);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());

    qt_status st = QT_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        st = qt_error(QT_ERR_IO, "cannot create %s: %s; check that the directory exists and is "
                      "writable", tmp, strerror(errno));
        goto out;
    }
    for (int i = 0; i < nbufs; i++) {
        if (lens[i] > 0 && write_all(fd, bufs[i], lens[i]) != 0) {
            st = qt_error(QT_ERR_IO, "write to %s failed: %s", tmp, strerror(errno));
            break;
        }
    }
    if (st == QT_OK && fsync(fd) != 0)
        st = qt_error(QT_ERR_IO, "fsync of %s failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == QT_OK)
        st = qt_error(QT_ERR_IO, "close of %s failed: %s", tmp, strerror(errno));
    if (st != QT_OK) {
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        st = qt_error(QT_ERR_IO, "rename %s -> %s failed: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    st = fsync_parent_dir(path);
out:
    free(tmp);
    return st;
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

qt_status qt_shard_read(const char *path, uint16_t **tokens, size_t *n) {
    if (!path || !tokens || !n) return qt_error(QT_ERR_ARG, "qt_shard_read: NULL argument");
    *tokens = NULL;
    *n = 0;
    qt_status st = QT_OK;
    uint16_t *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qt_error(QT_ERR_IO, "cannot open shard %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = qt_error(QT_ERR_IO, "cannot stat shard %s: %s", path, strerror(errno));
        goto out;
    }
    uint8_t header[QT_SHARD_HEADER_BYTES];
    size_t want = sb.st_size < QT_SHARD_HEADER_BYTES ? (size_t)sb.st_size : sizeof header;
    if (fread(header, 1, want, f) != want) {
        st = qt_error(QT_ERR_IO, "cannot read the header of shard %s", path);
        goto out;
    }
    size_t count;
    st = qt_shard_check_header(path, header, (uint64_t)sb.st_size, &count);
    if (st != QT_OK) goto out;
    buf = malloc(count > 0 ? count * sizeof *buf : 1);
    if (!buf) {
        st = qt_error(QT_ERR_OOM, "out of memory reading %zu tokens of shard %s", count, path);
        goto out;
    }
    if (count > 0 && fread(buf, sizeof *buf, count, f) != count) {
        st = qt_error(QT_ERR_IO, "cannot read the %zu tokens of shard %s", count, path);
        goto out;
    }
    if (host_is_big_endian()) swap16_inplace(buf, count);
    *tokens = buf;
    *n = count;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return st;
}

// fuzz_util.h: what the libFuzzer harnesses of tests/fuzz share. The readers under test take
// paths (they map or read whole files), so each input is written to a file first: in a private
// scratch directory, on tmpfs (/dev/shm) where there is one so that an execution costs no disk
// I/O, removed at exit. Also the properties' failure report: fz_fail names the property and
// aborts, which libFuzzer records as a crash with its input.
#ifndef QTRAIN_FUZZ_UTIL_H
#define QTRAIN_FUZZ_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "base/status.h"

static char fz_root[512];

// Reports a broken property and aborts (libFuzzer keeps the input as a crash artifact).
static inline void fz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz property failed: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (last qtrain error: %s)\n", qt_last_error());
    va_end(ap);
    abort();
}

// Removes dir's files and its subdirectories' files (the harnesses go one level deep).
static inline void fz_clear(const char *dir, int remove_dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            fz_clear(path, 1);
        else
            unlink(path);
    }
    closedir(d);
    if (remove_dir) rmdir(dir);
}

static inline void fz_cleanup(void) {
    if (fz_root[0]) fz_clear(fz_root, 1);
}

// The scratch directory, created on first use.
static inline const char *fz_dir(void) {
    if (fz_root[0]) return fz_root;
    struct stat sb;
    const char *base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : NULL;
    if (!base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(fz_root, sizeof fz_root, "%s/qtrain-fuzz-%ld", base, (long)getpid());
    if (mkdir(fz_root, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz: cannot create %s: %s\n", fz_root, strerror(errno));
        abort();
    }
    atexit(fz_cleanup);
    return fz_root;
}

// fz_dir()/name into buf[cap].
static inline void fz_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", fz_dir(), name);
}

// Writes data[0, n) to path (plain stdio: no fsync, this is scratch).
static inline void fz_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

// The whole file at path, malloc'd (NULL when it cannot be read).
static inline uint8_t *fz_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf && size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = size > 0 ? (size_t)size : 0;
    return buf;
}

static inline uint64_t fz_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline void fz_put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

#endif

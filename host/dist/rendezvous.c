// rendezvous.c: rank 0 hands a small blob (the NCCL unique id) to every other rank when no
// MPI is there to broadcast it: through a file every rank sees, or over TCP from rank 0 at
// MASTER_ADDR:MASTER_PORT (what torchrun-style launchers export). Only this bootstrap is ours;
// the collectives themselves are NCCL's. See dist_internal.h for the contracts.
//
// Both ways carry a tag (the job's id and the world size): a file left by an earlier job, or
// a connection from another job's rank, carries another tag and is never taken for this one.
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dist_internal.h"

// The tag line both sides compare: fixed size on the wire.
#define TAG_BYTES 160

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void make_tag(char *out, const char *tag, int size) {
    memset(out, 0, TAG_BYTES);
    snprintf(out, TAG_BYTES, "qtrain-rdzv %s %d\n", tag && *tag ? tag : "-", size);
}

qt_status qt_rdzv_file(const char *path, const char *tag, int rank, int size, void *blob,
                       size_t len, double timeout_s) {
    char t[TAG_BYTES];
    make_tag(t, tag, size);
    if (rank == 0) {
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (!f)
            return qt_error(QT_ERR_IO,
                            "rank 0: cannot write the rendezvous file %s: %s; "
                            "QT_RDZV_FILE must name a path on a filesystem every rank sees",
                            tmp, strerror(errno));
        int ok = fwrite(t, 1, TAG_BYTES, f) == TAG_BYTES && fwrite(blob, 1, len, f) == len;
        ok = fclose(f) == 0 && ok;
        // Renamed over the path: a reader sees the old file or the whole new one.
        if (!ok || rename(tmp, path) != 0) {
            remove(tmp);
            return qt_error(QT_ERR_IO, "rank 0: cannot write the rendezvous file %s: %s", path,
                            strerror(errno));
        }
        return QT_OK;
    }
    unsigned char *buf = malloc(TAG_BYTES + len);
    if (!buf) return qt_error(QT_ERR_OOM, "cannot allocate %zu bytes", len);
    double t0 = now_s();
    for (;;) {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t got = fread(buf, 1, TAG_BYTES + len, f);
            fclose(f);
            if (got == TAG_BYTES + len && memcmp(buf, t, TAG_BYTES) == 0) {
                memcpy(blob, buf + TAG_BYTES, len);
                free(buf);
                return QT_OK;
            }
        }
        if (now_s() - t0 > timeout_s) {
            free(buf);
            return qt_error(QT_ERR_COMM,
                            "rank %d: nothing from rank 0 in %s after %.0f s (want "
                            "the tag '%.*s'): rank 0 has not started, the file is not on a "
                            "filesystem every rank sees, or QT_RDZV_TAG differs between ranks",
                            rank, path, timeout_s, (int)strcspn(t, "\n"), t);
        }
        nap_ms(100);
    }
}

// Writes or reads exactly n bytes; 0 on success.
static int full_io(int fd, void *p, size_t n, int writing) {
    unsigned char *b = p;
    while (n) {
        ssize_t k = writing ? write(fd, b, n) : read(fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static qt_status tcp_serve(const char *t, int port, int size, const void *blob, size_t len,
                           double timeout_s) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(NULL, ps, &hints, &res);
    if (rc != 0)
        return qt_error(QT_ERR_COMM, "rank 0: getaddrinfo for port %d: %s", port, gai_strerror(rc));
    int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, size) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        freeaddrinfo(res);
        return qt_error(QT_ERR_COMM,
                        "rank 0: cannot listen on port %d for the rendezvous: %s; "
                        "MASTER_PORT (or QT_RDZV_PORT) must be a free port on rank 0's machine "
                        "(torchrun's own store takes MASTER_PORT: set QT_RDZV_PORT)",
                        port, strerror(e));
    }
    freeaddrinfo(res);
    double t0 = now_s();
    int served = 0;
    qt_status st = QT_OK;
    while (served < size - 1) {
        double left = timeout_s - (now_s() - t0);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (left <= 0 || poll(&pfd, 1, (int)(left * 1000) + 1) <= 0) {
            if (left > 0 && errno == EINTR) continue;
            st = qt_error(QT_ERR_COMM,
                          "rank 0: only %d of %d ranks connected to port %d within "
                          "%.0f s; the others have not started or cannot reach this machine",
                          served + 1, size, port, timeout_s);
            break;
        }
        int c = accept(fd, NULL, NULL);
        if (c < 0) continue;
        char got[TAG_BYTES];
        // A peer from another job (another tag) is turned away and not counted.
        if (full_io(c, got, TAG_BYTES, 0) == 0 && memcmp(got, t, TAG_BYTES) == 0 &&
            full_io(c, (void *)blob, len, 1) == 0)
            served++;
        close(c);
    }
    close(fd);
    return st;
}

static qt_status tcp_fetch(const char *t, const char *addr, int port, int rank, void *blob,
                           size_t len, double timeout_s) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    double t0 = now_s();
    const char *why = "no attempt";
    for (;;) {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int rc = getaddrinfo(addr, ps, &hints, &res);
        if (rc == 0) {
            for (struct addrinfo *a = res; a; a = a->ai_next) {
                int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
                if (fd < 0) continue;
                if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
                    full_io(fd, (void *)t, TAG_BYTES, 1) == 0 && full_io(fd, blob, len, 0) == 0) {
                    close(fd);
                    freeaddrinfo(res);
                    return QT_OK;
                }
                why = strerror(errno);
                close(fd);
            }
            freeaddrinfo(res);
        } else {
            why = gai_strerror(rc);
        }
        if (now_s() - t0 > timeout_s)
            return qt_error(QT_ERR_COMM,
                            "rank %d: no rendezvous with rank 0 at %s:%d within "
                            "%.0f s (%s): rank 0 has not started, or MASTER_ADDR/MASTER_PORT "
                            "do not reach it",
                            rank, addr, port, timeout_s, why);
        nap_ms(100);
    }
}

qt_status qt_rdzv_tcp(const char *addr, int port, const char *tag, int rank, int size, void *blob,
                      size_t len, double timeout_s) {
    if (port < 1 || port > 65535)
        return qt_error(QT_ERR_ARG, "rendezvous port %d is not in [1, 65535]", port);
    char t[TAG_BYTES];
    make_tag(t, tag, size);
    if (rank == 0) return tcp_serve(t, port, size, blob, len, timeout_s);
    if (!addr || !*addr)
        return qt_error(QT_ERR_ARG,
                        "rank %d: MASTER_ADDR is not set: the TCP rendezvous needs "
                        "rank 0's address",
                        rank);
    return tcp_fetch(t, addr, port, rank, blob, len, timeout_s);
}

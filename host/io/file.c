// file.c: the shared file primitives of file.h (whole writes, directory syncs, atomic writes,
// whole reads, read-only maps, mkdir -p), each checked, with errors naming the file; and
// qt_data_write_atomic (qtrain/data.h) on them, the writer of the tokenizer, the shards and
// prepare.json (the checkpoint writer streams through qt_io_atomic itself).
#include "host/io/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "qtrain/data.h"

int qt_io_write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int qt_io_sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = strdup(".");
    } else if (slash == path) {
        dir = strdup("/");
    } else {
        dir = strndup(path, (size_t)(slash - path));
    }
    if (!dir) return -1;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc != 0 && (errno == EINVAL || errno == ENOTSUP || errno == EROFS)) rc = 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

// Opens `path` read-only and checks that it is a regular file; *size gets its size.
static qt_status open_regular(const char *path, const char *what, const char *hint, int *fd,
                              size_t *size) {
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return qt_error(QT_ERR_IO, "cannot open %s %s: %s%s%s", what, path, strerror(errno),
                        hint ? "; " : "", hint ? hint : "");
    struct stat sb;
    qt_status st = QT_OK;
    if (fstat(*fd, &sb) != 0)
        st = qt_error(QT_ERR_IO, "cannot stat %s %s: %s", what, path, strerror(errno));
    else if (S_ISDIR(sb.st_mode))
        st = qt_error(QT_ERR_IO, "%s %s is a directory, not a file; rename it or name a file",
                      what, path);
    else if (!S_ISREG(sb.st_mode))
        st = qt_error(QT_ERR_IO, "%s %s is a device, pipe or socket; name a file", what, path);
    else if ((uint64_t)sb.st_size > SIZE_MAX - 1)
        st = qt_error(QT_ERR_UNSUPPORTED, "%s %s is too large to read here", what, path);
    if (st != QT_OK) {
        close(*fd);
        *fd = -1;
        return st;
    }
    *size = (size_t)sb.st_size;
    return QT_OK;
}

qt_status qt_io_read_file(const char *path, const char *what, const char *hint, size_t max_bytes,
                          uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd;
    size_t size;
    QT_TRY(open_regular(path, what, hint, &fd, &size));
    qt_status st = QT_OK;
    uint8_t *buf = NULL;
    if (size > max_bytes) {
        st = qt_error(QT_ERR_FORMAT, "%s %s is %zu bytes, more than the largest valid file (%zu)",
                      what, path, size, max_bytes);
        goto out;
    }
    buf = malloc(size + 1);
    if (!buf) {
        st = qt_error(QT_ERR_OOM, "out of memory reading %zu bytes of %s %s", size, what, path);
        goto out;
    }
    for (size_t got = 0; got < size;) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            st = qt_error(QT_ERR_IO, "cannot read %s %s: %s", what, path,
                          r < 0 ? strerror(errno) : "it shrank while being read");
            goto out;
        }
        got += (size_t)r;
    }
    buf[size] = 0;
    *data = buf;
    *len = size;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return st;
}

qt_status qt_io_map_file(const char *path, const char *what, const char *hint, void **map,
                         size_t *len) {
    *map = NULL;
    *len = 0;
    int fd;
    size_t size;
    QT_TRY(open_regular(path, what, hint, &fd, &size));
    qt_status st = QT_OK;
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            st = qt_error(QT_ERR_IO, "cannot map %s %s (%zu bytes): %s", what, path, size,
                          strerror(errno));
        else
            *map = p;
    }
    close(fd);
    if (st == QT_OK) *len = size;
    return st;
}

qt_status qt_io_make_dirs_created(const char *path, unsigned mode, const char *what,
                                  char **created) {
    if (created) *created = NULL;
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return qt_error(QT_ERR_OOM, "out of memory creating %s %s", what, path);
    memcpy(p, path, n + 1);
    qt_status st = QT_OK;
    for (size_t i = 1; i <= n && st == QT_OK; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, (mode_t)mode) == 0) {
            if (created && !*created && !(*created = strdup(p)))
                st = qt_error(QT_ERR_OOM, "out of memory creating %s %s", what, path);
        } else if (errno != EEXIST) {
            st = qt_error(QT_ERR_IO, "cannot create %s %s: %s", what, p, strerror(errno));
        }
        p[i] = c;
    }
    free(p);
    struct stat sb;
    if (st == QT_OK && (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        st = qt_error(QT_ERR_IO, "%s %s exists and is not a directory; choose another", what, path);
    if (st != QT_OK && created && *created) {
        qt_io_remove_created_dirs(path, *created);
        free(*created);
        *created = NULL;
    }
    return st;
}

qt_status qt_io_make_dirs(const char *path, unsigned mode, const char *what) {
    return qt_io_make_dirs_created(path, mode, what, NULL);
}

void qt_io_remove_created_dirs(const char *path, const char *created) {
    if (!created) return;
    size_t top = strlen(created);
    char *p = strdup(path);
    if (!p) return;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    // From the deepest directory up to `created`, each only while empty (rmdir refuses others).
    while (n >= top && rmdir(p) == 0) {
        char *slash = strrchr(p, '/');
        if (!slash || (size_t)(slash - p) < top) break;
        *slash = '\0';
        n = (size_t)(slash - p);
    }
    free(p);
}

qt_status qt_io_check_dir_creatable(const char *path, const char *what) {
    char *p = strdup(path);
    if (!p) return qt_error(QT_ERR_OOM, "out of memory checking %s %s", what, path);
    qt_status st = QT_OK;
    for (;;) {
        struct stat sb;
        if (stat(*p ? p : ".", &sb) == 0) {
            const char *at = *p ? p : ".";
            if (!S_ISDIR(sb.st_mode))
                st = qt_error(QT_ERR_IO,
                              "cannot create %s %s: %s is not a directory; choose "
                              "another path",
                              what, path, at);
            else if (access(at, W_OK | X_OK) != 0)
                st = qt_error(QT_ERR_IO,
                              "cannot create %s %s: %s is not writable (%s); choose "
                              "another path",
                              what, path, at, strerror(errno));
            break;
        }
        if (errno != ENOENT && errno != ENOTDIR) {
            st = qt_error(QT_ERR_IO, "cannot create %s %s: %s: %s", what, path, p, strerror(errno));
            break;
        }
        // Up one level: drop trailing slashes, then the last component.
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/')
            p[--n] = '\0';
        char *slash = strrchr(p, '/');
        if (!slash)
            p[0] = '\0';
        else if (slash == p)
            p[1] = '\0';
        else
            *slash = '\0';
    }
    free(p);
    return st;
}

qt_status qt_io_atomic_begin(qt_io_atomic *a, const char *path, const char *what) {
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->path = path;
    a->what = what;
    size_t n = strlen(path) + 32;
    a->tmp = malloc(n);
    if (!a->tmp) return qt_error(QT_ERR_OOM, "out of memory writing %s %s", what, path);
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (a->fd < 0) {
        qt_status st = qt_error(QT_ERR_IO,
                                "cannot create %s %s: %s; check that the directory exists and "
                                "is writable",
                                what, a->tmp, strerror(errno));
        free(a->tmp);
        a->tmp = NULL;
        return st;
    }
    // Held until the file is closed (or its process dies): qt_io_remove_stale_temps never
    // removes a temporary file whose writer is alive. A file system without flock writes
    // anyway; the writer's pid then protects the file alone.
    while (flock(a->fd, LOCK_EX) != 0 && errno == EINTR) {
    }
    return QT_OK;
}

void qt_io_atomic_abort(qt_io_atomic *a) {
    if (a->fd >= 0) close(a->fd);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    a->fd = -1;
    a->tmp = NULL;
}

// The error of system call `call` on the temporary file (errno), which is then removed.
static qt_status atomic_failed(qt_io_atomic *a, const char *call) {
    int err = errno;
    qt_status st = qt_error(QT_ERR_IO,
                            "writing %s %s failed (%s of %s: %s); %s was left as it was; check "
                            "free disk space and the file size limit",
                            a->what, a->path, call, a->tmp, strerror(err), a->path);
    qt_io_atomic_abort(a);
    return st;
}

qt_status qt_io_atomic_write(qt_io_atomic *a, const void *buf, size_t n) {
    if (qt_io_write_all(a->fd, buf, n) != 0) return atomic_failed(a, "write");
    return QT_OK;
}

qt_status qt_io_atomic_commit(qt_io_atomic *a) {
    if (fsync(a->fd) != 0) return atomic_failed(a, "fsync");
    int rc = close(a->fd);
    a->fd = -1;
    if (rc != 0) return atomic_failed(a, "close");
    if (rename(a->tmp, a->path) != 0) return atomic_failed(a, "rename");
    free(a->tmp);
    a->tmp = NULL; // renamed: nothing to remove any more
    if (qt_io_sync_parent_dir(a->path) != 0)
        return qt_error(QT_ERR_IO,
                        "%s %s was written, but syncing its directory failed: %s; it may not "
                        "survive a crash",
                        a->what, a->path, strerror(errno));
    return QT_OK;
}

qt_status qt_data_write_atomic(const char *path, const void *const *bufs, const size_t *lens,
                               int nbufs) {
    if (!path || (nbufs > 0 && (!bufs || !lens)) || nbufs < 0)
        return qt_error(QT_ERR_ARG, "qt_data_write_atomic: NULL path or buffers");
    qt_io_atomic a;
    QT_TRY(qt_io_atomic_begin(&a, path, "file"));
    for (int i = 0; i < nbufs; i++)
        if (lens[i] > 0) QT_TRY(qt_io_atomic_write(&a, bufs[i], lens[i]));
    return qt_io_atomic_commit(&a);
}

// The pid of a temporary file of qt_io_atomic, `<name>.tmp.<pid>` (non-empty name, decimal pid
// > 0 that fits pid_t), or 0 when `name` is not one.
static pid_t temp_file_pid(const char *name) {
    const char *tag = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp."))
        tag = p;
    if (!tag || tag == name) return 0;
    const char *digits = tag + 5;
    size_t n = strlen(digits);
    if (n == 0 || n > 10 || strspn(digits, "0123456789") != n) return 0;
    long long pid = strtoll(digits, NULL, 10);
    return pid > 0 && pid <= INT_MAX ? (pid_t)pid : 0;
}

static int pid_alive(pid_t pid) { return pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH; }

qt_status qt_io_remove_stale_temps(const char *dir, int *removed, uint64_t *bytes) {
    *removed = 0;
    *bytes = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return QT_OK;
        return qt_error(QT_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    }
    size_t dlen = strlen(dir);
    qt_status st = QT_OK;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        pid_t pid = temp_file_pid(e->d_name);
        if (pid == 0 || pid_alive(pid)) continue;
        size_t len = dlen + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) {
            st = qt_error(QT_ERR_OOM, "out of memory cleaning %s", dir);
            break;
        }
        snprintf(path, len, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat sb;
        // Only regular files whose lock is free: a live writer (in another pid namespace, say)
        // holds it. The pid is checked again under the lock, against its reuse meanwhile.
        if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
            (flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) && !pid_alive(pid) &&
            unlink(path) == 0) {
            (*removed)++;
            *bytes += (uint64_t)sb.st_size;
        }
        if (fd >= 0) close(fd);
        free(path);
    }
    closedir(d);
    return st;
}

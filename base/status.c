// base/status.c: the per-thread last-error message behind qt_error()/qt_last_error().
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local char last_error[1024];

qt_status qt_error(qt_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *qt_last_error(void) { return last_error; }

const char *qt_status_name(qt_status status) {
    switch (status) {
    case QT_OK: return "ok";
    case QT_ERR_ARG: return "invalid argument";
    case QT_ERR_IO: return "io error";
    case QT_ERR_FORMAT: return "bad file format";
    case QT_ERR_OOM: return "out of memory";
    case QT_ERR_UNSUPPORTED: return "unsupported";
    case QT_ERR_CUDA: return "cuda error";
    case QT_ERR_INTERNAL: return "internal error";
    case QT_ERR_COMM:
        return "communication error";
    }
    return "unknown status";
}

void qt_assert_fail(const char *cond, const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "qtrain: internal error at %s:%d: assertion '%s' failed: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

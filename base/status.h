// base/status.h: error values and the last-error message (the bottom layer: base/).
//
// Library code never exits: every fallible function returns a qt_status and records one
// human-readable message (problem, value, fix) that qt_last_error() returns until the next
// error on the same thread. Only the command line's main() prints it and exits.
#ifndef QTRAIN_BASE_STATUS_H
#define QTRAIN_BASE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    QT_OK = 0,
    QT_ERR_ARG,         // a bad argument, config value or command-line flag
    QT_ERR_IO,          // open/read/write/rename failed
    QT_ERR_FORMAT,      // a file exists but is not what it claims (magic, size, checksum)
    QT_ERR_OOM,         // an allocation failed
    QT_ERR_UNSUPPORTED, // the backend or build lacks the requested op
    QT_ERR_CUDA,        // a CUDA, cuBLAS or cuRAND call failed
    QT_ERR_INTERNAL,    // a broken invariant: a bug in qtrain
    QT_ERR_COMM,        // a collective (MPI, NCCL) failed or timed out, or a peer rank was lost
} qt_status;

// Records a printf-style message for the calling thread and returns `status`, so that
// `return qt_error(QT_ERR_ARG, "...")` both reports and propagates.
qt_status qt_error(qt_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// The message of the calling thread's last qt_error(), or "" if none.
const char *qt_last_error(void);

// A short name for a status ("io error").
const char *qt_status_name(qt_status status);

#define QT_TRY(expr)                                                                          \
    do {                                                                                      \
        qt_status qt_try_status_ = (expr);                                                    \
        if (qt_try_status_ != QT_OK) return qt_try_status_;                                   \
    } while (0)

// Programmer errors (violated preconditions inside qtrain): print op, file:line, abort.
#define QT_ASSERT(cond, ...)                                                                  \
    do {                                                                                      \
        if (!(cond)) qt_assert_fail(#cond, __FILE__, __LINE__, __VA_ARGS__);                  \
    } while (0)
void qt_assert_fail(const char *cond, const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#define QT_CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

#ifdef __cplusplus
}
#endif
#endif

// expect_error.h: asserting the CPU ops' error contract in the Check suites (the "Errors"
// paragraph of kernels/<family>.h): a refused call returns QT_ERR_ARG, qt_last_error() names
// the op, and no output was written.
//
// Outputs are guarded: every byte set to QT_TEST_GUARD (0xA5: a float of ~-2.9e-16, an int8
// of -91, nothing a kernel writes by chance) before the refused calls, and compared byte for
// byte afterwards (a NaN poison cannot be compared with ==).
#ifndef QTRAIN_TESTS_EXPECT_ERROR_H
#define QTRAIN_TESTS_EXPECT_ERROR_H

#include <check.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

#define QT_TEST_GUARD 0xA5

// `bytes` (>= 1) bytes, each QT_TEST_GUARD; free() them.
static inline void *qt_test_guarded(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    ck_assert_msg(p != NULL, "out of memory for %zu guarded bytes", bytes);
    memset(p, QT_TEST_GUARD, bytes);
    return p;
}

// 1 when each of the `bytes` bytes at p is still QT_TEST_GUARD.
static inline int qt_test_untouched(const void *p, size_t bytes) {
    const unsigned char *b = p;
    for (size_t i = 0; i < bytes; i++)
        if (b[i] != QT_TEST_GUARD) return 0;
    return 1;
}

// Asserts that `call` returns QT_ERR_ARG with a message naming `op` (a substring), and that
// `untouched` (an expression, typically qt_test_untouched of every output) holds afterwards.
#define QT_EXPECT_REFUSED(call, op, untouched)                                                \
    do {                                                                                      \
        const qt_status qt_expect_st_ = (call);                                               \
        ck_assert_msg(qt_expect_st_ == QT_ERR_ARG, "%s returned %s, want QT_ERR_ARG", #call,  \
                      qt_status_name(qt_expect_st_));                                         \
        ck_assert_msg(strstr(qt_last_error(), (op)) != NULL,                                  \
                      "%s: the message \"%s\" does not name %s", #call, qt_last_error(),      \
                      (op));                                                                  \
        ck_assert_msg((untouched), "%s was refused but wrote an output", #call);              \
    } while (0)

// Asserts that `call` returns QT_OK, naming the call and the message otherwise.
#define QT_EXPECT_OK(call)                                                                    \
    do {                                                                                      \
        const qt_status qt_expect_st_ = (call);                                               \
        ck_assert_msg(qt_expect_st_ == QT_OK, "%s returned %s: %s", #call,                    \
                      qt_status_name(qt_expect_st_), qt_last_error());                        \
    } while (0)

#endif

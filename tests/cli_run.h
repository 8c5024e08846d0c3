// cli_run.h: running the qtrain binary from a test (test_cli*.c): the binary is
// $QT_BINARY_DIR/qtrain (ctest sets it), run in a working directory with its stdout and stderr
// in DIR/stdout.txt and DIR/stderr.txt. Check assertions fail the test on a system error.
#ifndef QTRAIN_TESTS_CLI_RUN_H
#define QTRAIN_TESTS_CLI_RUN_H

#include <stddef.h>
#include <sys/types.h>

// Runs `PREFIX qtrain ARGS` (PREFIX: shell words before it, e.g. "ulimit -v 100000;" or
// "FOO=1", or "") in dir and waits; stderr also into err (err_len bytes, NUL-terminated).
// Returns the exit code.
int qt_cli_run(const char *dir, const char *prefix, const char *args, char *err, size_t err_len);
// Starts `qtrain ARGS` in dir without waiting; returns its pid.
pid_t qt_cli_spawn(const char *dir, const char *args);
// Waits (up to 60 s, polling every 5 ms) until the file at path holds needle; 1 if it did.
int qt_cli_wait_for_text(const char *path, const char *needle);

#endif

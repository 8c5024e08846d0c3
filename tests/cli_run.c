// cli_run.c: see cli_run.h.
#define _POSIX_C_SOURCE 200809L
#include "cli_run.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *binary_dir(void) {
    const char *bin = getenv("QT_BINARY_DIR");
    ck_assert_msg(bin != NULL, "QT_BINARY_DIR is not set (run through ctest)");
    return bin;
}

int qt_cli_run(const char *dir, const char *prefix, const char *args, char *err, size_t err_len) {
    char cmd[8192], errpath[1024];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s/qtrain' %s >'%s/stdout.txt' 2>'%s'", dir,
             prefix, binary_dir(), args, dir, errpath);
    int status = system(cmd);
    ck_assert(status != -1 && WIFEXITED(status));
    FILE *f = fopen(errpath, "r");
    ck_assert(f != NULL);
    size_t n = fread(err, 1, err_len - 1, f);
    err[n] = '\0';
    fclose(f);
    return WEXITSTATUS(status);
}

pid_t qt_cli_spawn(const char *dir, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && exec '%s/qtrain' %s >'%s/stdout.txt' 2>'%s/stderr.txt'",
             dir, binary_dir(), args, dir, dir);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int qt_cli_wait_for_text(const char *path, const char *needle) {
    static char buf[1 << 16];
    for (int i = 0; i < 12000; i++) {
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = '\0';
            fclose(f);
            if (strstr(buf, needle)) return 1;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

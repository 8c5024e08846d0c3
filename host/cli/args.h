// args.h: long-flag parsing shared by the subcommands: `--name value` or `--name=value`,
// numbers through strtol/strtod with the end and range checked, errors naming the flag.
#ifndef QTRAIN_CLI_ARGS_H
#define QTRAIN_CLI_ARGS_H

#include "base/status.h"

// If argv[*i] is flag `name` (with "--"), sets *value (from "=value" or the next argument,
// advancing *i) and returns 1; returns 0 if it is another flag. A missing value sets
// *value = NULL and returns 1 (the caller reports it with qt_args_need_value).
int qt_args_flag(int argc, char **argv, int *i, const char *name, const char **value);
// Returns 1 if argv[*i] is exactly the boolean flag `name` (no value).
int qt_args_switch(char **argv, int i, const char *name);

qt_status qt_args_need_value(const char *name, const char *value);
qt_status qt_args_int(const char *name, const char *value, long lo, long hi, int *out);
qt_status qt_args_double(const char *name, const char *value, double lo, double hi, double *out);
qt_status qt_args_unknown(const char *command, const char *arg);

// A subcommand's flags, declared as a table and parsed by qt_args_parse.
typedef enum {
    QT_ARG_STRING, // out: const char **, the value
    QT_ARG_INT,    // out: int *, through qt_args_int in [lo, hi]
    QT_ARG_DOUBLE, // out: double *, through qt_args_double in [lo, hi]
    QT_ARG_SWITCH, // out: int *, set to 1; the flag takes no value
    QT_ARG_LIST,   // out: qt_args_list *, each value appended (the flag repeats)
} qt_arg_kind;

typedef struct {
    const char **items; // (cap) the values, in order
    int n, cap;
} qt_args_list;

typedef struct {
    const char *name; // without the leading "--"
    qt_arg_kind kind;
    void *out;
    double lo, hi; // QT_ARG_INT, QT_ARG_DOUBLE: the allowed range
} qt_arg;

// Parses argv[1 .. argc) of subcommand `command` against flags[n], in order, stopping at the
// first error (which names the flag, or the unknown argument). --help prints usage on stdout
// and sets *help = 1 (the caller then exits 0); the flags after it are not read.
qt_status qt_args_parse(int argc, char **argv, const char *command, const char *usage,
                        const qt_arg *flags, int n, int *help);
#define QT_ARGS_COUNT(flags) ((int)(sizeof(flags) / sizeof((flags)[0])))

// Prints `qtrain: error: <last error>` on stderr; returns the exit code 1.
int qt_cli_fail(void);

#endif

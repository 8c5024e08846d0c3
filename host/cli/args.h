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

// Prints `qtrain: error: <last error>` on stderr; returns the exit code 1.
int qt_cli_fail(void);

#endif

// args.c: see args.h.
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qt_args_flag(int argc, char **argv, int *i, const char *name, const char **value) {
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0) return 0;
    size_t n = strlen(name);
    if (strncmp(arg + 2, name, n) != 0) return 0;
    if (arg[2 + n] == '=') {
        *value = arg + 3 + n;
        return 1;
    }
    if (arg[2 + n] != '\0') return 0;
    if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        *value = NULL;
    }
    return 1;
}

int qt_args_switch(char **argv, int i, const char *name) {
    return strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, name) == 0;
}

qt_status qt_args_need_value(const char *name, const char *value) {
    if (value) return QT_OK;
    return qt_error(QT_ERR_ARG, "--%s needs a value", name);
}

qt_status qt_args_int(const char *name, const char *value, long lo, long hi, int *out) {
    QT_TRY(qt_args_need_value(name, value));
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (end == value || *end != '\0' || errno == ERANGE)
        return qt_error(QT_ERR_ARG, "--%s %s is not an integer", name, value);
    if (v < lo || v > hi)
        return qt_error(QT_ERR_ARG, "--%s %ld is out of range; use a value in [%ld, %ld]", name, v,
                        lo, hi);
    *out = (int)v;
    return QT_OK;
}

qt_status qt_args_double(const char *name, const char *value, double lo, double hi, double *out) {
    QT_TRY(qt_args_need_value(name, value));
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    if (end == value || *end != '\0' || errno == ERANGE || !isfinite(v))
        return qt_error(QT_ERR_ARG, "--%s %s is not a number", name, value);
    if (v < lo || v > hi)
        return qt_error(QT_ERR_ARG, "--%s %g is out of range; use a value in [%g, %g]", name, v, lo,
                        hi);
    *out = v;
    return QT_OK;
}

// Applies flag f to argv[*i] (its value from "=value" or the next argument).
static qt_status apply_flag(int argc, char **argv, int *i, const qt_arg *f) {
    if (f->kind == QT_ARG_SWITCH) {
        *(int *)f->out = 1;
        return QT_OK;
    }
    const char *v = NULL;
    qt_args_flag(argc, argv, i, f->name, &v);
    switch (f->kind) {
    case QT_ARG_INT: return qt_args_int(f->name, v, (long)f->lo, (long)f->hi, f->out);
    case QT_ARG_DOUBLE: return qt_args_double(f->name, v, f->lo, f->hi, f->out);
    case QT_ARG_STRING:
        QT_TRY(qt_args_need_value(f->name, v));
        *(const char **)f->out = v;
        return QT_OK;
    case QT_ARG_LIST: {
        QT_TRY(qt_args_need_value(f->name, v));
        qt_args_list *l = f->out;
        if (l->n == l->cap)
            return qt_error(QT_ERR_ARG, "too many --%s flags (at most %d)", f->name, l->cap);
        l->items[l->n++] = v;
        return QT_OK;
    }
    case QT_ARG_SWITCH: break;
    }
    return qt_error(QT_ERR_INTERNAL, "--%s: unknown flag kind %d", f->name, (int)f->kind);
}

qt_status qt_args_parse(int argc, char **argv, const char *command, const char *usage,
                        const qt_arg *flags, int n, int *help) {
    *help = 0;
    for (int i = 1; i < argc; i++) {
        if (qt_args_switch(argv, i, "help")) {
            fputs(usage, stdout);
            *help = 1;
            return QT_OK;
        }
        const qt_arg *f = NULL;
        for (int k = 0; k < n && !f; k++) {
            const char *v;
            int j = i;
            if (flags[k].kind == QT_ARG_SWITCH ? qt_args_switch(argv, i, flags[k].name)
                                               : qt_args_flag(argc, argv, &j, flags[k].name, &v))
                f = &flags[k];
        }
        if (!f) return qt_args_unknown(command, argv[i]);
        QT_TRY(apply_flag(argc, argv, &i, f));
    }
    return QT_OK;
}

qt_status qt_args_unknown(const char *command, const char *arg) {
    return qt_error(QT_ERR_ARG, "unknown argument '%s' for 'qtrain %s'; see 'qtrain %s --help'",
                    arg, command, command);
}

int qt_cli_fail(void) {
    fprintf(stderr, "qtrain: error: %s\n", qt_last_error());
    return 1;
}

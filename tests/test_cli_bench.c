// test_cli_bench.c: `qtrain bench` (host/cli/cmd_bench.c, bench/): on tiny shapes (--quick,
// one repetition), every op family of the task (the list below, not the registry's) prints at
// least one measured line in the table and in --json, every number finite and positive, every
// JSON line valid JSON; bad arguments (an unknown family, --reps 0, an unknown device or flag)
// are one `qtrain: error:` line naming the problem, and the unknown family's error lists the
// valid ones. No timing is asserted (the suite never asserts speed).
// With the argument --cuda (CTest test_cli_bench_gpu, label gpu), the same checks on
// `--device cuda`, where every family but attention (no CUDA kernel: one "skipped" line) is
// measured; exit 77 (skipped) when the build has no CUDA or the machine no device.
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

static const char *const families[] = {
    "activation",  "adamw",     "attention", "crossentropy", "dqt",       "dropout",
    "elementwise", "embedding", "gate",      "int8_gemm",    "layernorm", "linear",
    "quant",       "rmsnorm",   "rope",      "softmax_clip", "sumsq",     "swiglu"};
#define N_FAMILIES ((int)(sizeof families / sizeof families[0]))

static char *workdir;

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    ck_assert(buf != NULL);
    for (size_t r; (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert(buf != NULL);
        }
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

// Runs `qtrain ARGS`; *out and *err receive stdout and stderr (malloc'd); returns the exit code.
static int run_qtrain(const char *args, char **out, char **err) {
    const char *bin = getenv("QT_BINARY_DIR");
    ck_assert_msg(bin != NULL, "QT_BINARY_DIR is not set (run through ctest)");
    char cmd[4096], outp[1024], errp[1024];
    snprintf(outp, sizeof outp, "%s/stdout.txt", workdir);
    snprintf(errp, sizeof errp, "%s/stderr.txt", workdir);
    snprintf(cmd, sizeof cmd, "'%s/qtrain' %s >'%s' 2>'%s'", bin, args, outp, errp);
    int status = system(cmd);
    ck_assert(status != -1 && WIFEXITED(status));
    *out = slurp(outp);
    *err = slurp(errp);
    return WEXITSTATUS(status);
}

// ---- a JSON validator (RFC 8259 grammar; enough to say "valid or not")

static const char *json_value(const char *p);

static const char *json_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *json_string(const char *p) {
    if (*p++ != '"') return NULL;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *json_number(const char *p) {
    if (*p == '-') p++;
    if (*p == '0') {
        p++;
    } else if (isdigit((unsigned char)*p)) {
        while (isdigit((unsigned char)*p))
            p++;
    } else {
        return NULL;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return p;
}

static const char *json_members(const char *p, char close, int keyed) {
    p = json_ws(p);
    if (*p == close) return p + 1;
    for (;;) {
        if (keyed) {
            p = json_string(json_ws(p));
            if (!p) return NULL;
            p = json_ws(p);
            if (*p++ != ':') return NULL;
        }
        p = json_value(p);
        if (!p) return NULL;
        p = json_ws(p);
        if (*p == close) return p + 1;
        if (*p++ != ',') return NULL;
    }
}

static const char *json_value(const char *p) {
    p = json_ws(p);
    if (*p == '{') return json_members(p + 1, '}', 1);
    if (*p == '[') return json_members(p + 1, ']', 0);
    if (*p == '"') return json_string(p);
    if (strncmp(p, "true", 4) == 0) return p + 4;
    if (strncmp(p, "false", 5) == 0) return p + 5;
    if (strncmp(p, "null", 4) == 0) return p + 4;
    return json_number(p);
}

// 1 if line (NUL-terminated) is exactly one JSON object.
static int json_object_line(const char *line) {
    const char *p = json_ws(line);
    if (*p != '{') return 0;
    p = json_value(p);
    return p && *json_ws(p) == '\0';
}

// The number of "key" in a valid one-level JSON object line, or NAN when absent.
static double json_num(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return NAN;
    char *end = NULL;
    double v = strtod(p + strlen(pat), &end);
    return end == p + strlen(pat) ? NAN : v;
}

// Copies the string value of "key" into buf ("" when absent).
static void json_str(const char *line, const char *key, char *buf, size_t len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    buf[0] = '\0';
    if (!p) return;
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), p);
}

static int family_index(const char *name) {
    for (int i = 0; i < N_FAMILIES; i++)
        if (strcmp(families[i], name) == 0) return i;
    return -1;
}

static int pos_finite(double v) { return isfinite(v) && v > 0; }

// --json: every line valid; the machine line first; each measured line's numbers finite and
// positive, its "bench" the family and op; counts measured lines per family into rows[].
static void check_json(char *out, const char *device, int reps, int rows[N_FAMILIES],
                       int skipped[N_FAMILIES]) {
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
        ck_assert_msg(json_object_line(line), "not a JSON object: %s", line);
        if (n == 0) {
            char m[16];
            json_str(line, "machine", m, sizeof m);
            ck_assert_msg(strcmp(m, device) == 0, "first line is not the %s machine: %s", device,
                          line);
            ck_assert_msg(pos_finite(json_num(line, "peak_gflops")) &&
                              pos_finite(json_num(line, "copy_gbps")),
                          "machine line: %s", line);
            continue;
        }
        char fam[64], op[64], bench[160], dev[16];
        json_str(line, "family", fam, sizeof fam);
        json_str(line, "device", dev, sizeof dev);
        const int f = family_index(fam);
        ck_assert_msg(f >= 0, "unknown family in %s", line);
        ck_assert_msg(strcmp(dev, device) == 0, "device is not %s: %s", device, line);
        if (strstr(line, "\"skipped\":")) {
            skipped[f]++;
            continue;
        }
        json_str(line, "op", op, sizeof op);
        json_str(line, "bench", bench, sizeof bench);
        char want[160];
        snprintf(want, sizeof want, "%s_%s", fam, op);
        ck_assert_msg(op[0] && strcmp(bench, want) == 0, "bench is not family_op: %s", line);
        static const char *const keys[] = {"ms_min", "ms_median", "ms_max", "bytes",
                                           "flops",  "gbps",      "gflops", "roofline_pct"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            ck_assert_msg(pos_finite(json_num(line, keys[k])), "%s is not finite and > 0: %s",
                          keys[k], line);
        const double iqr = json_num(line, "iqr_pct");
        ck_assert_msg(isfinite(iqr) && iqr >= 0, "iqr_pct: %s", line);
        ck_assert_msg(json_num(line, "reps") == reps, "reps is not %d: %s", reps, line);
        ck_assert_msg(json_num(line, "ms_min") <= json_num(line, "ms_median") &&
                          json_num(line, "ms_median") <= json_num(line, "ms_max"),
                      "min <= median <= max fails: %s", line);
        rows[f]++;
    }
    ck_assert_msg(n > 1, "no output lines");
}

// The table: a line per case "family op model shape... ms ms_min iqr GB/s GFLOP/s roof% bound
// [vs ref]"; the six numbers before the bound must be finite and positive (iqr: >= 0). Counts
// measured lines per family into rows[].
static void check_table(char *out, int rows[N_FAMILIES]) {
    int header = 0;
    char *save_line = NULL;
    for (char *line = strtok_r(out, "\n", &save_line); line;
         line = strtok_r(NULL, "\n", &save_line)) {
        if (strncmp(line, "roofline: peak ", 15) == 0) header = 1;
        char *tok[64], *save = NULL, copy[1024];
        snprintf(copy, sizeof copy, "%s", line);
        int nt = 0;
        for (char *t = strtok_r(copy, " ", &save); t && nt < 64; t = strtok_r(NULL, " ", &save))
            tok[nt++] = t;
        const int f = nt > 0 ? family_index(tok[0]) : -1;
        if (f < 0 || strstr(line, " skipped: ")) continue;
        int b = -1;
        for (int i = 4; i < nt && b < 0; i++)
            if (strcmp(tok[i], "memory") == 0 || strcmp(tok[i], "compute") == 0) b = i;
        ck_assert_msg(b >= 10, "no bound column after six numbers: %s", line);
        for (int i = b - 6; i < b; i++) {
            char *end = NULL;
            const double v = strtod(tok[i], &end);
            const int iqr = i == b - 4;
            ck_assert_msg(end != tok[i] && strcmp(end, iqr ? "%" : "") == 0,
                          "column '%s' is not a number: %s", tok[i], line);
            ck_assert_msg(isfinite(v) && (iqr ? v >= 0 : v > 0),
                          "column '%s' is not finite and positive: %s", tok[i], line);
        }
        rows[f]++;
    }
    ck_assert_msg(header, "the table has no roofline header");
}

// Asserts a failed run printed exactly one line on stderr, `qtrain: error: ...` containing
// `needle`, and nothing on stdout.
static void expect_error(const char *args, const char *needle) {
    char *out, *err;
    const int rc = run_qtrain(args, &out, &err);
    ck_assert_msg(rc != 0, "qtrain %s: exit 0, expected failure", args);
    const size_t len = strlen(err);
    ck_assert_msg(strncmp(err, "qtrain: error: ", 15) == 0 && len > 0 && err[len - 1] == '\n' &&
                      strchr(err, '\n') == err + len - 1,
                  "qtrain %s: stderr is not one error line: '%s'", args, err);
    ck_assert_msg(strstr(err, needle) != NULL, "qtrain %s: '%s' lacks '%s'", args, err, needle);
    ck_assert_msg(out[0] == '\0', "qtrain %s: printed '%s' before failing", args, out);
    free(out);
    free(err);
}

static void setup(void) { workdir = qt_test_tmpdir("cli_bench"); }

static void teardown(void) {
    qt_test_rmtree(workdir);
    free(workdir);
}

START_TEST(test_table_every_family) {
    char *out, *err;
    const int rc = run_qtrain("bench --quick --reps 1", &out, &err);
    ck_assert_msg(rc == 0, "qtrain bench --quick failed (%d): %s", rc, err);
    int rows[N_FAMILIES] = {0};
    check_table(out, rows);
    for (int f = 0; f < N_FAMILIES; f++)
        ck_assert_msg(rows[f] > 0, "family %s printed no measured line", families[f]);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_json_every_family) {
    char *out, *err;
    const int rc = run_qtrain("bench --quick --reps 2 --json", &out, &err);
    ck_assert_msg(rc == 0, "qtrain bench --quick --json failed (%d): %s", rc, err);
    int rows[N_FAMILIES] = {0}, skipped[N_FAMILIES] = {0};
    check_json(out, "cpu", 2, rows, skipped);
    for (int f = 0; f < N_FAMILIES; f++)
        ck_assert_msg(rows[f] > 0, "family %s printed no measured JSON line", families[f]);
    free(out);
    free(err);
}
END_TEST

// Families named on the command line run alone, in the order given.
START_TEST(test_selected_families) {
    char *out, *err;
    const int rc = run_qtrain("bench sumsq layernorm --quick --reps 1 --json", &out, &err);
    ck_assert_msg(rc == 0, "%s", err);
    const char *s = strstr(out, "\"family\":\"sumsq\""),
               *l = strstr(out, "\"family\":\"layernorm\"");
    ck_assert_msg(s && l && s < l, "sumsq then layernorm expected: %s", out);
    int rows[N_FAMILIES] = {0}, skipped[N_FAMILIES] = {0};
    check_json(out, "cpu", 1, rows, skipped);
    for (int f = 0; f < N_FAMILIES; f++) {
        const int picked =
            strcmp(families[f], "sumsq") == 0 || strcmp(families[f], "layernorm") == 0;
        ck_assert_msg(picked ? rows[f] > 0 : rows[f] == 0, "family %s: %d lines", families[f],
                      rows[f]);
    }
    free(out);
    free(err);
}
END_TEST

START_TEST(test_bad_arguments) {
    // An unknown family is named, with every valid one.
    char *out, *err;
    const int rc = run_qtrain("bench layernorm softmax --quick", &out, &err);
    ck_assert_msg(rc != 0 && strstr(err, "qtrain: error: ") == err && strstr(err, "'softmax'"),
                  "unknown family: rc %d, '%s'", rc, err);
    for (int f = 0; f < N_FAMILIES; f++)
        ck_assert_msg(strstr(err, families[f]) != NULL, "the error does not list %s: %s",
                      families[f], err);
    free(out);
    free(err);
    expect_error("bench nosuch", "unknown benchmark family 'nosuch'");
    expect_error("bench --reps 0", "--reps 0");
    expect_error("bench --reps x", "--reps x");
    expect_error("bench --device tpu", "--device tpu");
    expect_error("bench --device", "--device needs a value");
    expect_error("bench --frobnicate", "--frobnicate");
    // cuda: refused, saying why (this build has no CUDA, or the machine no device); never a
    // made-up number. Where a device exists, test_cli_bench_gpu runs it.
    const int cu = run_qtrain("bench --device cuda --quick --reps 1", &out, &err);
    if (cu != 0) {
        ck_assert_msg(
            strstr(err, "qtrain: error: --device cuda: ") == err &&
                (strstr(err, "built without the CUDA toolkit") || strstr(err, "no CUDA device")),
            "--device cuda: '%s'", err);
        ck_assert_msg(out[0] == '\0', "--device cuda printed '%s' before failing", out);
    }
    free(out);
    free(err);
}
END_TEST

START_TEST(test_help_lists_families) {
    char *out, *err;
    ck_assert(run_qtrain("bench --help", &out, &err) == 0);
    for (int f = 0; f < N_FAMILIES; f++)
        ck_assert_msg(strstr(out, families[f]) != NULL, "--help lacks %s", families[f]);
    free(out);
    free(err);
}
END_TEST

// --cuda: the families on the device (exit 77 when this build or machine has none).
START_TEST(test_cuda_every_family) {
    char *out, *err;
    const int rc = run_qtrain("bench --device cuda --quick --reps 2 --json", &out, &err);
    ck_assert_msg(rc == 0, "qtrain bench --device cuda failed (%d): %s", rc, err);
    int rows[N_FAMILIES] = {0}, skipped[N_FAMILIES] = {0};
    check_json(out, "cuda", 2, rows, skipped);
    for (int f = 0; f < N_FAMILIES; f++) {
        if (strcmp(families[f], "attention") == 0)
            ck_assert_msg(rows[f] == 0 && skipped[f] == 1,
                          "attention on cuda: %d rows, %d "
                          "skipped lines",
                          rows[f], skipped[f]);
        else
            ck_assert_msg(rows[f] > 0, "family %s printed no measured CUDA line", families[f]);
    }
    free(out);
    free(err);
}
END_TEST

// 1 when `qtrain bench --device cuda` is refused for want of CUDA (printing why), else 0. Runs
// outside the Check runner (so no ck_assert): a probe failing otherwise returns 0 and lets the
// test case report it.
static int cuda_unavailable(void) {
    const char *bin = getenv("QT_BINARY_DIR");
    if (!bin) return 0;
    char cmd[2048], err[1024] = "";
    snprintf(cmd, sizeof cmd,
             "'%s/qtrain' bench --device cuda --quick --reps 1 sumsq 2>&1 "
             ">/dev/null",
             bin);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    const size_t n = fread(err, 1, sizeof err - 1, p);
    err[n] = '\0';
    const int status = pclose(p);
    const int none = status != 0 && (strstr(err, "built without the CUDA toolkit") ||
                                     strstr(err, "no CUDA device"));
    if (none) printf("skipped: %s", err);
    return none;
}

int main(int argc, char **argv) {
    const int cuda = argc > 1 && strcmp(argv[1], "--cuda") == 0;
    if (cuda && cuda_unavailable()) return 77;
    Suite *s = suite_create("cli_bench");
    TCase *tc = tcase_create("cli_bench");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    if (cuda) {
        tcase_add_test(tc, test_cuda_every_family);
    } else {
        tcase_add_test(tc, test_table_every_family);
        tcase_add_test(tc, test_json_every_family);
        tcase_add_test(tc, test_selected_families);
        tcase_add_test(tc, test_bad_arguments);
        tcase_add_test(tc, test_help_lists_families);
    }
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

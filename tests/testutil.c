// testutil.c: see testutil.h.
#include "testutil.h"

#include "qtrain/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void qt_test_fill_uniform_f64(double *x, size_t n, double lo, double hi, uint64_t seed) {
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(&state) >> 11) * (1.0 / 9007199254740992.0);
        x[i] = lo + (hi - lo) * u;
    }
}

void qt_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(&state) >> 11) * (1.0 / 9007199254740992.0);
        x[i] = (float)(lo + (hi - lo) * u);
    }
}

void qt_test_free_all(void **p, size_t n) {
    for (size_t i = 0; i < n; i++) free(p[i]);
}

double *qt_test_dalloc(size_t n) {
    double *p = malloc((n ? n : 1) * sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

float *qt_test_falloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

double *qt_test_drand(size_t n, double lo, double hi, uint64_t seed) {
    double *p = qt_test_dalloc(n);
    qt_test_fill_uniform_f64(p, n, lo, hi, seed);
    return p;
}

float *qt_test_to_float(double *d, size_t n) {
    float *f = qt_test_falloc(n);
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)d[i];
        d[i] = f[i];
    }
    return f;
}

void qt_test_poison(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

double qt_test_max_err_f64(const double *got, const double *want, size_t n, double atol,
                           double rtol) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
    }
    return worst;
}

double qt_test_max_err(const float *got, const float *want, size_t n, double atol, double rtol) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - (double)want[i]) / (atol + rtol * fabs(want[i]));
        if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
    }
    return worst;
}

double *qt_test_dcopy(const double *a, size_t n) {
    double *p = qt_test_dalloc(n);
    memcpy(p, a, n * sizeof(double));
    return p;
}

double qt_test_ddot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

double qt_test_rel_err_f64(const double *an, const double *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(an[i] - ref[i]);
        if (!(d <= num)) num = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return num / (den > 1e-30 ? den : 1e-30);
}

double qt_test_float_vs_double(const float *f, const double *d, size_t n, double rtol) {
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(d[i]));
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)f[i] - d[i]) / (rtol * (mx + fabs(d[i])) + 1e-300);
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

void qt_test_fd_grad(double (*loss)(void *ctx), void *ctx, double *x, size_t n, double h,
                     double *g) {
    for (size_t i = 0; i < n; i++) {
        double save = x[i];
        x[i] = save + h;
        double lp = loss(ctx);
        x[i] = save - h;
        double lm = loss(ctx);
        x[i] = save;
        g[i] = (lp - lm) / (2 * h);
    }
}

void qt_test_check_grad(double (*loss)(void *ctx), void *ctx, double *x, size_t n,
                        const double *an, const double *start, double h, double tol,
                        const char *what) {
    double *fd = qt_test_dalloc(n), *d = qt_test_dalloc(n);
    qt_test_fd_grad(loss, ctx, x, n, h, fd);
    for (size_t i = 0; i < n; i++) d[i] = an[i] - (start ? start[i] : 0.0);
    double err = qt_test_rel_err_f64(d, fd, n);
    ck_assert_msg(err <= tol, "%s: err %g", what, err);
    free(fd);
    free(d);
}

void qt_test_fd_add(qt_test_fd_problem *p, const char *name, double *x, size_t n) {
    ck_assert_int_lt(p->count, QT_TEST_FD_MAX_TENSORS);
    p->x[p->count] = x;
    p->n[p->count] = n;
    p->name[p->count] = name;
    p->count++;
}

void qt_test_fd_check(const qt_test_fd_problem *p, double *const *an, double h, double tol,
                      const char *what) {
    for (int k = 0; k < p->count; k++) {
        if (!an[k]) continue;
        char msg[256];
        snprintf(msg, sizeof msg, "%s: d%s vs finite differences", what, p->name[k]);
        qt_test_check_grad(p->loss, p->ctx, p->x[k], p->n[k], an[k], NULL, h, tol, msg);
    }
}

qt_test_acc qt_test_acc_new(size_t n, uint64_t seed) {
    qt_test_acc a = {qt_test_drand(n, -1.0, 1.0, seed), qt_test_dalloc(n), n};
    memcpy(a.start, a.g, n * sizeof(double));
    return a;
}

double *qt_test_acc_delta(qt_test_acc *a) {
    for (size_t i = 0; i < a->n; i++) a->g[i] -= a->start[i];
    return a->g;
}

void qt_test_acc_free(qt_test_acc *a) {
    free(a->g);
    free(a->start);
}

char *qt_test_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t len = strlen(base) + strlen(tag) + 32;
    char *path = malloc(len);
    ck_assert_ptr_nonnull(path);
    snprintf(path, len, "%s/qtrain-%s-XXXXXX", base, tag);
    ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp(%s) failed", path);
    return path;
}

void qt_test_rmtree(const char *path) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

int qt_test_run_suite(Suite *suite) {
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

// Writes train/val shards of a learnable sequence: each token mostly determined by the
// previous one, with a little noise.
void qt_test_write_synthetic_shards(const char *dir) {
    size_t n = 20000;
    uint16_t *tok = malloc(n * sizeof(uint16_t));
    uint64_t state = 12345;
    tok[0] = 1;
    for (size_t i = 1; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        int noise = (state >> 60) == 0; // 1 in 16
        tok[i] = noise ? (uint16_t)((state >> 40) % 64) : (uint16_t)((tok[i - 1] * 5 + 3) % 64);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/train_000.bin", dir);
    ck_assert_msg(qt_shard_write(path, tok, 16000) == QT_OK, "%s", qt_last_error());
    snprintf(path, sizeof path, "%s/val_000.bin", dir);
    ck_assert_msg(qt_shard_write(path, tok + 16000, 4000) == QT_OK, "%s", qt_last_error());
    free(tok);
}

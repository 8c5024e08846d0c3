// test_ops_llama.c: the LLaMA-family ops of include/qtrain/ops.h (RMSNorm, RoPE, SwiGLU) and
// the embedding without positions (wpe == NULL).
//
// Gradient checks run in double against central finite differences (step 1e-6) of a scalar
// loss L = sum wout * output. Error norm, per gradient tensor:
//     err = max_i |analytic_i - fd_i| / max(max_i |fd_i|, 1e-30),  pass when err <= 1e-6
// (NaN fails). Accumulating backwards start from random gradients that the test subtracts
// afterwards, so a backward that overwrites instead of adding fails.
// Float against double: the same (float-representable) inputs, float outputs poisoned with
// NaN, odd sizes; per element |float - double| <= rtol (max |double| + |double|), rtol 1e-5.
// RoPE properties: t = 0 is the identity and v is untouched (bit for bit), the backward undoes
// the forward (float 1e-6, double 1e-13 of the largest element), and the rotation equals the
// textbook formula with pow() angles (1e-12 in double).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/ops.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6
#define FV_RTOL 1e-5

// ---- helpers --------------------------------------------------------------------------------

static void free_all(void **p, size_t n) {
    for (size_t i = 0; i < n; i++) free(p[i]);
}
#define FREE_ALL(...)                                                                         \
    do {                                                                                      \
        void *ptrs_[] = {__VA_ARGS__};                                                        \
        free_all(ptrs_, sizeof ptrs_ / sizeof ptrs_[0]);                                      \
    } while (0)

// ---- RMSNorm --------------------------------------------------------------------------------

typedef struct {
    int N, C;
    double *x, *w;
    const double *wout;
    double *out, *rstd;
} rms_ctx;

static double rms_loss(void *v) {
    rms_ctx *c = v;
    qt_cpu_rmsnorm_fwd_f64(c->out, c->rstd, c->x, c->w, c->N, c->C);
    return qt_test_ddot(c->out, c->wout, (size_t)c->N * c->C);
}

static void check_rmsnorm_fd(int N, int C, uint64_t seed) {
    const size_t n = (size_t)N * C;
    double *wout = qt_test_drand(n, -1, 1, seed);
    rms_ctx c = {N, C, qt_test_drand(n, -2, 2, seed + 1), qt_test_drand(C, 0.5, 1.5, seed + 2),
                 wout, qt_test_dalloc(n), qt_test_dalloc(N)};
    rms_loss(&c);
    // rstd and out as defined: 1 / sqrt(mean(x^2) + eps), out = x rstd w
    for (int r = 0; r < N; r++) {
        double ms = 0;
        for (int j = 0; j < C; j++) ms += c.x[r * C + j] * c.x[r * C + j] / C;
        const double rs = 1.0 / sqrt(ms + (double)QT_RMSNORM_EPS);
        ck_assert_msg(fabs(c.rstd[r] - rs) <= 1e-12 * rs,
                      "rmsnorm_fwd_f64 N %d C %d row %d: rstd %.17g want %.17g", N, C, r,
                      c.rstd[r], rs);
        for (int j = 0; j < C; j++)
            ck_assert_msg(fabs(c.out[r * C + j] - c.x[r * C + j] * rs * c.w[j]) <= 1e-12,
                          "rmsnorm_fwd_f64 N %d C %d (%d, %d): out %g", N, C, r, j,
                          c.out[r * C + j]);
    }
    double *dx0 = qt_test_drand(n, -1, 1, seed + 3), *dw0 = qt_test_drand(C, -1, 1, seed + 4);
    double *dx = qt_test_dcopy(dx0, n), *dw = qt_test_dcopy(dw0, C);
    qt_cpu_rmsnorm_bwd_f64(dx, dw, wout, c.x, c.rstd, c.w, N, C);
    char what[96];
    snprintf(what, sizeof what, "rmsnorm_bwd_f64 dx N %d C %d seed %llu", N, C,
             (unsigned long long)seed);
    qt_test_check_grad(rms_loss, &c, c.x, n, dx, dx0, FD_H, FD_TOL, what);
    snprintf(what, sizeof what, "rmsnorm_bwd_f64 dw N %d C %d seed %llu", N, C,
             (unsigned long long)seed);
    qt_test_check_grad(rms_loss, &c, c.w, C, dw, dw0, FD_H, FD_TOL, what);
    // each gradient alone: the same values, the NULL one untouched
    double *dx2 = qt_test_dcopy(dx0, n), *dw2 = qt_test_dcopy(dw0, C);
    rms_loss(&c);
    qt_cpu_rmsnorm_bwd_f64(dx2, NULL, wout, c.x, c.rstd, c.w, N, C);
    qt_cpu_rmsnorm_bwd_f64(NULL, dw2, wout, c.x, c.rstd, c.w, N, C);
    for (size_t i = 0; i < n; i++) ck_assert_msg(dx2[i] == dx[i], "rmsnorm_bwd dx alone [%zu]", i);
    for (int i = 0; i < C; i++) ck_assert_msg(dw2[i] == dw[i], "rmsnorm_bwd dw alone [%d]", i);
    FREE_ALL(wout, c.x, c.w, c.out, c.rstd, dx0, dw0, dx, dw, dx2, dw2);
}

START_TEST(test_rmsnorm_fd) {
    check_rmsnorm_fd(4, 9, 20);
    check_rmsnorm_fd(1, 3, 21); // (C = 1 has an eps-sized dx that finite differences can't
                                // resolve to 1e-6: its float path is checked below)
    check_rmsnorm_fd(3, 70, 22); // more than one dw column block
}
END_TEST

static void check_rmsnorm_float(int N, int C, uint64_t seed) {
    const size_t n = (size_t)N * C;
    double *xd = qt_test_drand(n, -3, 5, seed), *wd = qt_test_drand(C, 0.5, 1.5, seed + 1);
    double *god = qt_test_drand(n, -1, 1, seed + 2), *dxd = qt_test_drand(n, -1, 1, seed + 3);
    double *dwd = qt_test_drand(C, -1, 1, seed + 4), *od = qt_test_dalloc(n),
           *rd = qt_test_dalloc(N);
    float *xf = qt_test_to_float(xd, n), *wf = qt_test_to_float(wd, C);
    float *gof = qt_test_to_float(god, n), *dxf = qt_test_to_float(dxd, n);
    float *dwf = qt_test_to_float(dwd, C), *of = qt_test_falloc(n), *rf = qt_test_falloc(N);
    qt_test_poison(of, n);
    qt_test_poison(rf, N);
    qt_cpu_rmsnorm_fwd(of, rf, xf, wf, N, C);
    qt_cpu_rmsnorm_fwd_f64(od, rd, xd, wd, N, C);
    double e1 = qt_test_float_vs_double(of, od, n, FV_RTOL),
           e2 = qt_test_float_vs_double(rf, rd, N, FV_RTOL);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0, "rmsnorm_fwd float/double N %d C %d: out %g rstd %g",
                  N, C, e1, e2);
    qt_cpu_rmsnorm_bwd(dxf, dwf, gof, xf, rf, wf, N, C);
    qt_cpu_rmsnorm_bwd_f64(dxd, dwd, god, xd, rd, wd, N, C);
    e1 = qt_test_float_vs_double(dxf, dxd, n, FV_RTOL);
    e2 = qt_test_float_vs_double(dwf, dwd, C, FV_RTOL);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0, "rmsnorm_bwd float/double N %d C %d: dx %g dw %g", N,
                  C, e1, e2);
    // deterministic: a second run from the same start gives the same bits
    double *dxd2 = qt_test_drand(n, -1, 1, seed + 3), *dwd2 = qt_test_drand(C, -1, 1, seed + 4);
    float *dxf2 = qt_test_to_float(dxd2, n), *dwf2 = qt_test_to_float(dwd2, C);
    qt_cpu_rmsnorm_bwd(dxf2, dwf2, gof, xf, rf, wf, N, C);
    ck_assert_msg(memcmp(dxf2, dxf, n * sizeof(float)) == 0 &&
                      memcmp(dwf2, dwf, C * sizeof(float)) == 0,
                  "rmsnorm_bwd N %d C %d not deterministic", N, C);
    FREE_ALL(xd, wd, god, dxd, dwd, od, rd, xf, wf, gof, dxf, dwf, of, rf, dxd2, dwd2, dxf2, dwf2);
}

START_TEST(test_rmsnorm_float_vs_double) {
    check_rmsnorm_float(1, 1, 30);
    check_rmsnorm_float(31, 33, 31);
    check_rmsnorm_float(1027, 129, 32); // parallel rows and column blocks
}
END_TEST

// ---- RoPE -----------------------------------------------------------------------------------

typedef struct {
    int B, T, C, H;
    float theta;
    double *x;
    const double *wout;
    double *y;
} rope_ctx;

static double rope_loss(void *v) {
    rope_ctx *c = v;
    const size_t n = (size_t)c->B * c->T * 3 * c->C;
    memcpy(c->y, c->x, n * sizeof(double));
    qt_cpu_rope_fwd_f64(c->y, c->B, c->T, c->C, c->H, c->theta);
    return qt_test_ddot(c->y, c->wout, n);
}

static void check_rope_fd(int B, int T, int C, int H, float theta, uint64_t seed) {
    const size_t n = (size_t)B * T * 3 * C;
    double *wout = qt_test_drand(n, -1, 1, seed);
    rope_ctx c = {B, T, C, H, theta, qt_test_drand(n, -2, 2, seed + 1), wout, qt_test_dalloc(n)};
    double *g = qt_test_dcopy(wout, n);
    qt_cpu_rope_bwd_f64(g, B, T, C, H, theta); // in place: dL/dy -> dL/dx
    char what[96];
    snprintf(what, sizeof what, "rope_bwd_f64 B %d T %d C %d H %d theta %g", B, T, C, H,
             (double)theta);
    qt_test_check_grad(rope_loss, &c, c.x, n, g, NULL, FD_H, FD_TOL, what);
    FREE_ALL(wout, c.x, c.y, g);
}

START_TEST(test_rope_fd) {
    check_rope_fd(2, 5, 6, 1, 10000.0f, 40); // D = 6: three pairs
    check_rope_fd(1, 7, 12, 3, 100.0f, 41);  // D = 4
    check_rope_fd(3, 3, 2, 1, 10000.0f, 42); // D = 2: a single pair
}
END_TEST

// The textbook rotation, independently: angle t * pow(theta, -2i / D).
static void rope_direct(double *qkv, int B, int T, int C, int H, double theta) {
    const int D = C / H, half = D / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int part = 0; part < 2; part++)
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < half; i++) {
                        double *p = qkv + ((size_t)b * T + t) * 3 * C + (size_t)part * C +
                                    (size_t)h * D + i;
                        const double a = t * pow(theta, -2.0 * i / D);
                        const double x1 = p[0], x2 = p[half];
                        p[0] = x1 * cos(a) - x2 * sin(a);
                        p[half] = x1 * sin(a) + x2 * cos(a);
                    }
}

static void check_rope_props(int B, int T, int C, int H, float theta, uint64_t seed) {
    const size_t n = (size_t)B * T * 3 * C;
    double *xd = qt_test_drand(n, -2, 2, seed);
    float *xf = qt_test_to_float(xd, n);
    double *yd = qt_test_dcopy(xd, n), *want = qt_test_dcopy(xd, n);
    float *yf = qt_test_falloc(n);
    memcpy(yf, xf, n * sizeof(float));
    qt_cpu_rope_fwd_f64(yd, B, T, C, H, theta);
    qt_cpu_rope_fwd(yf, B, T, C, H, theta);
    rope_direct(want, B, T, C, H, theta);
    double ed = qt_test_max_err_f64(yd, want, n, 1e-12, 0.0);
    ck_assert_msg(ed <= 1.0, "rope_fwd_f64 vs pow() formula B %d T %d C %d H %d: err %g", B, T,
                  C, H, ed);
    double ef = qt_test_float_vs_double(yf, yd, n, FV_RTOL);
    ck_assert_msg(ef <= 1.0, "rope_fwd float/double B %d T %d C %d H %d: %g", B, T, C, H, ef);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const size_t row = ((size_t)b * T + t) * 3 * C;
            // v third: untouched, bit for bit
            ck_assert_msg(memcmp(yf + row + 2 * (size_t)C, xf + row + 2 * (size_t)C,
                                 C * sizeof(float)) == 0 &&
                              memcmp(yd + row + 2 * (size_t)C, xd + row + 2 * (size_t)C,
                                     C * sizeof(double)) == 0,
                          "rope_fwd touched v at (b %d, t %d), C %d H %d", b, t, C, H);
            // t = 0: the identity (cos 0 = 1, sin 0 = 0 exactly)
            if (t == 0)
                ck_assert_msg(memcmp(yf + row, xf + row, 3 * C * sizeof(float)) == 0 &&
                                  memcmp(yd + row, xd + row, 3 * C * sizeof(double)) == 0,
                              "rope_fwd is not the identity at t = 0 (b %d), C %d H %d", b, C, H);
        }
    // the backward undoes the forward
    qt_cpu_rope_bwd_f64(yd, B, T, C, H, theta);
    qt_cpu_rope_bwd(yf, B, T, C, H, theta);
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(xd[i]));
    double erd = qt_test_max_err_f64(yd, xd, n, 1e-13 * mx, 0.0);
    double erf = qt_test_max_err(yf, xf, n, 1e-6 * mx, 0.0);
    ck_assert_msg(erd <= 1.0 && erf <= 1.0,
                  "rope_bwd(rope_fwd(x)) != x B %d T %d C %d H %d: double %g float %g", B, T, C,
                  H, erd, erf);
    FREE_ALL(xd, xf, yd, want, yf);
}

START_TEST(test_rope_properties) {
    check_rope_props(1, 1, 2, 1, 10000.0f, 50);
    check_rope_props(3, 7, 6, 3, 10000.0f, 51);
    check_rope_props(2, 33, 30, 5, 500000.0f, 52); // D = 6, LLaMA-3's theta
    check_rope_props(2, 5, 260, 2, 10000.0f, 53);  // D = 130: more pairs than the cos/sin table
    check_rope_props(4, 129, 64, 2, 10000.0f, 54); // parallel over t
}
END_TEST

// Float and double backward on the same gradient (the forward is covered above).
START_TEST(test_rope_bwd_float_vs_double) {
    const int B = 3, T = 65, C = 40, H = 4;
    const size_t n = (size_t)B * T * 3 * C;
    double *gd = qt_test_drand(n, -1, 1, 60);
    float *gf = qt_test_to_float(gd, n);
    qt_cpu_rope_bwd_f64(gd, B, T, C, H, 10000.0f);
    qt_cpu_rope_bwd(gf, B, T, C, H, 10000.0f);
    double e = qt_test_float_vs_double(gf, gd, n, FV_RTOL);
    ck_assert_msg(e <= 1.0, "rope_bwd float/double B %d T %d C %d H %d: %g", B, T, C, H, e);
    FREE_ALL(gd, gf);
}
END_TEST

// ---- SwiGLU ---------------------------------------------------------------------------------

typedef struct {
    int N, F;
    double *x;
    const double *wout;
    double *out;
} swiglu_ctx;

static double swiglu_loss(void *v) {
    swiglu_ctx *c = v;
    qt_cpu_swiglu_fwd_f64(c->out, c->x, c->N, c->F);
    return qt_test_ddot(c->out, c->wout, (size_t)c->N * c->F);
}

START_TEST(test_swiglu_fd) {
    const int shapes[][2] = {{3, 7}, {1, 1}, {5, 33}};
    for (int s = 0; s < 3; s++) {
        const int N = shapes[s][0], F = shapes[s][1];
        const size_t nx = (size_t)N * 2 * F, no = (size_t)N * F;
        const uint64_t seed = 70 + 10 * (uint64_t)s;
        double *wout = qt_test_drand(no, -1, 1, seed);
        swiglu_ctx c = {N, F, qt_test_drand(nx, -4, 4, seed + 1), wout, qt_test_dalloc(no)};
        swiglu_loss(&c);
        for (size_t i = 0; i < no; i++) { // the definition
            const double a = c.x[(i / F) * 2 * F + i % F], b = c.x[(i / F) * 2 * F + F + i % F];
            const double want = a / (1.0 + exp(-a)) * b;
            ck_assert_msg(fabs(c.out[i] - want) <= 1e-14 * (1.0 + fabs(want)),
                          "swiglu_fwd_f64 N %d F %d [%zu]: %g want %g", N, F, i, c.out[i], want);
        }
        double *dx0 = qt_test_drand(nx, -1, 1, seed + 2), *dx = qt_test_dcopy(dx0, nx);
        qt_cpu_swiglu_bwd_f64(dx, wout, c.x, N, F);
        char what[64];
        snprintf(what, sizeof what, "swiglu_bwd_f64 dx N %d F %d", N, F);
        qt_test_check_grad(swiglu_loss, &c, c.x, nx, dx, dx0, FD_H, FD_TOL, what);
        FREE_ALL(wout, c.x, c.out, dx0, dx);
    }
}
END_TEST

static void check_swiglu_float(int N, int F, double lo, double hi, uint64_t seed) {
    const size_t nx = (size_t)N * 2 * F, no = (size_t)N * F;
    double *xd = qt_test_drand(nx, lo, hi, seed), *god = qt_test_drand(no, -1, 1, seed + 1);
    double *dxd = qt_test_drand(nx, -1, 1, seed + 2), *od = qt_test_dalloc(no);
    float *xf = qt_test_to_float(xd, nx), *gof = qt_test_to_float(god, no);
    float *dxf = qt_test_to_float(dxd, nx), *of = qt_test_falloc(no);
    qt_test_poison(of, no);
    qt_cpu_swiglu_fwd(of, xf, N, F);
    qt_cpu_swiglu_fwd_f64(od, xd, N, F);
    double e1 = qt_test_float_vs_double(of, od, no, FV_RTOL);
    qt_cpu_swiglu_bwd(dxf, gof, xf, N, F);
    qt_cpu_swiglu_bwd_f64(dxd, god, xd, N, F);
    double e2 = qt_test_float_vs_double(dxf, dxd, nx, FV_RTOL);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0,
                  "swiglu float/double N %d F %d x in [%g, %g): out %g dx %g", N, F, lo, hi, e1,
                  e2);
    FREE_ALL(xd, god, dxd, od, xf, gof, dxf, of);
}

START_TEST(test_swiglu_float_vs_double) {
    check_swiglu_float(1, 1, -3, 3, 80);
    check_swiglu_float(31, 33, -6, 6, 81);
    check_swiglu_float(257, 129, -4, 4, 82);     // parallel rows
    check_swiglu_float(9, 17, -200, 200, 83);    // exp's argument capped: finite, no NaN
}
END_TEST

// ---- embedding without positions ------------------------------------------------------------

START_TEST(test_embedding_no_positions) {
    const int B = 3, T = 5, C = 67, V = 11; // C: a partial channel block in the backward
    const size_t nt = (size_t)B * T, no = nt * C;
    int tokens[3 * 5];
    for (size_t i = 0; i < nt; i++) tokens[i] = (int)((i * 7 + 3) % V);
    tokens[4] = tokens[1]; // a repeated token
    float *wte = qt_test_falloc((size_t)V * C), *out = qt_test_falloc(no);
    qt_test_fill_uniform(wte, (size_t)V * C, -1, 1, 90);
    qt_test_poison(out, no);
    qt_cpu_embedding_fwd(out, tokens, wte, NULL, B, T, C);
    for (size_t n = 0; n < nt; n++)
        ck_assert_msg(memcmp(out + n * C, wte + (size_t)tokens[n] * C, C * sizeof(float)) == 0,
                      "embedding_fwd wpe NULL B %d T %d C %d: row %zu is not wte[%d]", B, T, C,
                      n, tokens[n]);
    // backward without dwpe: dwte += the dout rows of each token, summed
    float *dout = qt_test_falloc(no), *dwte = qt_test_falloc((size_t)V * C);
    double *want = qt_test_dalloc((size_t)V * C);
    qt_test_fill_uniform(dout, no, -1, 1, 91);
    qt_test_fill_uniform(dwte, (size_t)V * C, -1, 1, 92);
    for (size_t i = 0; i < (size_t)V * C; i++) want[i] = dwte[i];
    for (size_t n = 0; n < nt; n++)
        for (int c = 0; c < C; c++) want[(size_t)tokens[n] * C + c] += dout[n * C + c];
    qt_cpu_embedding_bwd(dwte, NULL, dout, tokens, B, T, C);
    double *got = qt_test_dalloc((size_t)V * C);
    for (size_t i = 0; i < (size_t)V * C; i++) got[i] = dwte[i];
    double e = qt_test_max_err_f64(got, want, (size_t)V * C, 1e-6, 1e-6);
    ck_assert_msg(e <= 1.0, "embedding_bwd dwpe NULL B %d T %d C %d: err %g", B, T, C, e);
    FREE_ALL(wte, out, dout, dwte, want, got);
}
END_TEST

static Suite *llama_suite(void) {
    Suite *s = suite_create("ops_llama");
    TCase *tc = tcase_create("llama");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rmsnorm_fd);
    tcase_add_test(tc, test_rmsnorm_float_vs_double);
    tcase_add_test(tc, test_rope_fd);
    tcase_add_test(tc, test_rope_properties);
    tcase_add_test(tc, test_rope_bwd_float_vs_double);
    tcase_add_test(tc, test_swiglu_fd);
    tcase_add_test(tc, test_swiglu_float_vs_double);
    tcase_add_test(tc, test_embedding_no_positions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(llama_suite()); }

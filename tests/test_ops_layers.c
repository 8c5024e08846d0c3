// test_ops_layers.c: linear, LayerNorm, GELU, ReLU, embedding, residual add, dropout,
// cross-entropy, AdamW and sumsq (include/qtrain/ops.h).
//
// Gradient checks run in double against central finite differences (step 1e-6) of a scalar
// loss L = sum wout * output. Error norm, per gradient tensor:
//     err = max_i |analytic_i - fd_i| / max(max_i |fd_i|, 1e-30),  pass when err <= 1e-6
// (NaN fails). Backward outputs start from random values that the test subtracts afterwards,
// so a backward that overwrites instead of adding fails.
// Float against double: the same (float-representable) inputs, float outputs poisoned with
// NaN, odd sizes; per element |float - double| <= rtol (max |double| + |double|), rtol 1e-5.
// Float-only ops (embedding, add, dropout, AdamW, sumsq) are compared with direct loops.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/common/philox.h"
#include "kernels/cpu/vmath_impl.h"
#include "qtrain/ops.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6

// ---- helpers --------------------------------------------------------------------------------

// ---- linear ---------------------------------------------------------------------------------

typedef struct {
    int N, IC, OC;
    double *x, *w, *b;
    const double *wout;
    double *out;
} lin_ctx;

static double lin_loss(void *v) {
    lin_ctx *c = v;
    qt_cpu_linear_fwd_f64(c->out, c->x, c->w, c->b, c->N, c->IC, c->OC);
    return qt_test_ddot(c->out, c->wout, (size_t)c->N * c->OC);
}

START_TEST(test_linear_fd) {
    const int N = 5, IC = 7, OC = 6;
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        lin_ctx c = {N, IC, OC, qt_test_drand((size_t)N * IC, -1, 1, 1), NULL, NULL, NULL,
                     qt_test_dalloc((size_t)N * OC)};
        c.w = qt_test_drand((size_t)OC * IC, -1, 1, 2);
        if (with_bias) c.b = qt_test_drand(OC, -1, 1, 3);
        double *wout = qt_test_drand((size_t)N * OC, -1, 1, 4);
        c.wout = wout;
        double *dx0 = qt_test_drand((size_t)N * IC, -1, 1, 5),
               *dw0 = qt_test_drand((size_t)OC * IC, -1, 1, 6);
        double *db0 = qt_test_drand(OC, -1, 1, 7);
        double *dx = qt_test_dcopy(dx0, (size_t)N * IC), *dw = qt_test_dcopy(dw0, (size_t)OC * IC),
               *db = qt_test_dcopy(db0, OC);
        qt_cpu_linear_bwd_f64(dx, dw, with_bias ? db : NULL, wout, c.x, c.w, N, IC, OC);
        qt_test_check_grad(lin_loss, &c, c.x, (size_t)N * IC, dx, dx0, FD_H, FD_TOL,
                           "linear_bwd_f64 dx");
        qt_test_check_grad(lin_loss, &c, c.w, (size_t)OC * IC, dw, dw0, FD_H, FD_TOL,
                           "linear_bwd_f64 dw");
        if (with_bias)
            qt_test_check_grad(lin_loss, &c, c.b, OC, db, db0, FD_H, FD_TOL, "linear_bwd_f64 db");
        else
            for (int i = 0; i < OC; i++) ck_assert(db[i] == db0[i]);
        // dx = NULL: only dw, db
        double *dw2 = qt_test_dcopy(dw0, (size_t)OC * IC);
        qt_cpu_linear_bwd_f64(NULL, dw2, NULL, wout, c.x, c.w, N, IC, OC);
        for (int i = 0; i < OC * IC; i++) ck_assert(dw2[i] == dw[i]);
        free(c.x);
        free(c.w);
        free(c.b);
        free(c.out);
        free(wout);
        free(dx0);
        free(dw0);
        free(db0);
        free(dx);
        free(dw);
        free(db);
        free(dw2);
    }
}
END_TEST

static void check_linear_float(int N, int IC, int OC, uint64_t seed) {
    size_t nx = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    double *xd = qt_test_drand(nx, -1, 1, seed), *wd = qt_test_drand(nw, -1, 1, seed + 1);
    double *bd = qt_test_drand(OC, -1, 1, seed + 2), *god = qt_test_drand(no, -1, 1, seed + 3);
    double *dxd = qt_test_drand(nx, -1, 1, seed + 4), *dwd = qt_test_drand(nw, -1, 1, seed + 5);
    double *dbd = qt_test_drand(OC, -1, 1, seed + 6), *od = qt_test_dalloc(no);
    float *xf = qt_test_to_float(xd, nx), *wf = qt_test_to_float(wd, nw),
          *bf = qt_test_to_float(bd, OC);
    float *gof = qt_test_to_float(god, no), *dxf = qt_test_to_float(dxd, nx),
          *dwf = qt_test_to_float(dwd, nw);
    float *dbf = qt_test_to_float(dbd, OC), *of = qt_test_falloc(no);
    qt_test_poison(of, no);
    qt_cpu_linear_fwd(of, xf, wf, bf, N, IC, OC);
    qt_cpu_linear_fwd_f64(od, xd, wd, bd, N, IC, OC);
    double e = qt_test_float_vs_double(of, od, no, 1e-5);
    ck_assert_msg(e <= 1.0, "linear_fwd float/double N %d IC %d OC %d: %g", N, IC, OC, e);
    qt_cpu_linear_bwd(dxf, dwf, dbf, gof, xf, wf, N, IC, OC);
    qt_cpu_linear_bwd_f64(dxd, dwd, dbd, god, xd, wd, N, IC, OC);
    double e1 = qt_test_float_vs_double(dxf, dxd, nx, 1e-5),
           e2 = qt_test_float_vs_double(dwf, dwd, nw, 1e-5);
    double e3 = qt_test_float_vs_double(dbf, dbd, OC, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0 && e3 <= 1.0,
                  "linear_bwd float/double N %d IC %d OC %d: dx %g dw %g db %g", N, IC, OC, e1, e2,
                  e3);
    free(xd);
    free(wd);
    free(bd);
    free(god);
    free(dxd);
    free(dwd);
    free(dbd);
    free(od);
    free(xf);
    free(wf);
    free(bf);
    free(gof);
    free(dxf);
    free(dwf);
    free(dbf);
    free(of);
}

START_TEST(test_linear_float_vs_double) {
    check_linear_float(1, 1, 1, 10);
    check_linear_float(31, 33, 65, 11);
    check_linear_float(257, 31, 129, 12); // parallel bias and column-sum paths
}
END_TEST

// ---- LayerNorm ------------------------------------------------------------------------------

typedef struct {
    int N, C;
    double *x, *w, *b;
    const double *wout;
    double *out, *mean, *rstd;
} ln_ctx;

static double ln_loss(void *v) {
    ln_ctx *c = v;
    qt_cpu_layernorm_fwd_f64(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C);
    return qt_test_ddot(c->out, c->wout, (size_t)c->N * c->C);
}

START_TEST(test_layernorm_fd) {
    const int N = 4, C = 9;
    size_t n = (size_t)N * C;
    double *wout = qt_test_drand(n, -1, 1, 23);
    ln_ctx c = {N,
                C,
                qt_test_drand(n, -2, 2, 20),
                qt_test_drand(C, 0.5, 1.5, 21),
                qt_test_drand(C, -1, 1, 22),
                wout,
                qt_test_dalloc(n),
                qt_test_dalloc(N),
                qt_test_dalloc(N)};
    ln_loss(&c);
    // mean and rstd as defined: biased variance, eps 1e-5f
    for (int r = 0; r < N; r++) {
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += c.x[r * C + j] / C;
        for (int j = 0; j < C; j++) v += (c.x[r * C + j] - m) * (c.x[r * C + j] - m) / C;
        ck_assert_msg(fabs(c.mean[r] - m) <= 1e-14 &&
                          fabs(c.rstd[r] - 1.0 / sqrt(v + (double)QT_LAYERNORM_EPS)) <= 1e-12,
                      "layernorm_fwd_f64 row %d: mean %g rstd %g", r, c.mean[r], c.rstd[r]);
    }
    double *dx0 = qt_test_drand(n, -1, 1, 24), *dw0 = qt_test_drand(C, -1, 1, 25),
           *db0 = qt_test_drand(C, -1, 1, 26);
    double *dx = qt_test_dcopy(dx0, n), *dw = qt_test_dcopy(dw0, C), *db = qt_test_dcopy(db0, C);
    qt_cpu_layernorm_bwd_f64(dx, dw, db, wout, c.x, c.mean, c.rstd, c.w, N, C);
    qt_test_check_grad(ln_loss, &c, c.x, n, dx, dx0, FD_H, FD_TOL, "layernorm_bwd_f64 dx");
    qt_test_check_grad(ln_loss, &c, c.w, C, dw, dw0, FD_H, FD_TOL, "layernorm_bwd_f64 dw");
    qt_test_check_grad(ln_loss, &c, c.b, C, db, db0, FD_H, FD_TOL, "layernorm_bwd_f64 db");
    free(wout);
    free(c.x);
    free(c.w);
    free(c.b);
    free(c.out);
    free(c.mean);
    free(c.rstd);
    free(dx0);
    free(dw0);
    free(db0);
    free(dx);
    free(dw);
    free(db);
}
END_TEST

static void check_layernorm_float(int N, int C, uint64_t seed) {
    size_t n = (size_t)N * C;
    double *xd = qt_test_drand(n, -3, 5, seed), *wd = qt_test_drand(C, 0.5, 1.5, seed + 1);
    double *bd = qt_test_drand(C, -1, 1, seed + 2), *god = qt_test_drand(n, -1, 1, seed + 3);
    double *dxd = qt_test_drand(n, -1, 1, seed + 4), *dwd = qt_test_drand(C, -1, 1, seed + 5);
    double *dbd = qt_test_drand(C, -1, 1, seed + 6), *od = qt_test_dalloc(n),
           *md = qt_test_dalloc(N), *rd = qt_test_dalloc(N);
    float *xf = qt_test_to_float(xd, n), *wf = qt_test_to_float(wd, C),
          *bf = qt_test_to_float(bd, C);
    float *gof = qt_test_to_float(god, n), *dxf = qt_test_to_float(dxd, n),
          *dwf = qt_test_to_float(dwd, C);
    float *dbf = qt_test_to_float(dbd, C), *of = qt_test_falloc(n), *mf = qt_test_falloc(N),
          *rf = qt_test_falloc(N);
    qt_test_poison(of, n);
    qt_test_poison(mf, N);
    qt_test_poison(rf, N);
    qt_cpu_layernorm_fwd(of, mf, rf, xf, wf, bf, N, C);
    qt_cpu_layernorm_fwd_f64(od, md, rd, xd, wd, bd, N, C);
    double e1 = qt_test_float_vs_double(of, od, n, 1e-5),
           e2 = qt_test_float_vs_double(mf, md, N, 1e-5),
           e3 = qt_test_float_vs_double(rf, rd, N, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0 && e3 <= 1.0,
                  "layernorm_fwd float/double N %d C %d: out %g mean %g rstd %g", N, C, e1, e2, e3);
    qt_cpu_layernorm_bwd(dxf, dwf, dbf, gof, xf, mf, rf, wf, N, C);
    qt_cpu_layernorm_bwd_f64(dxd, dwd, dbd, god, xd, md, rd, wd, N, C);
    e1 = qt_test_float_vs_double(dxf, dxd, n, 1e-5);
    e2 = qt_test_float_vs_double(dwf, dwd, C, 1e-5);
    e3 = qt_test_float_vs_double(dbf, dbd, C, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0 && e3 <= 1.0,
                  "layernorm_bwd float/double N %d C %d: dx %g dw %g db %g", N, C, e1, e2, e3);
    free(xd);
    free(wd);
    free(bd);
    free(god);
    free(dxd);
    free(dwd);
    free(dbd);
    free(od);
    free(md);
    free(rd);
    free(xf);
    free(wf);
    free(bf);
    free(gof);
    free(dxf);
    free(dwf);
    free(dbf);
    free(of);
    free(mf);
    free(rf);
}

START_TEST(test_layernorm_float_vs_double) {
    check_layernorm_float(1, 1, 30);
    check_layernorm_float(31, 33, 31);
    check_layernorm_float(1027, 129, 32);
}
END_TEST

// ---- GELU, ReLU -----------------------------------------------------------------------------

typedef struct {
    int gelu;
    size_t n;
    double *x;
    const double *wout;
    double *out;
} act_ctx;

static double act_loss(void *v) {
    act_ctx *c = v;
    if (c->gelu) qt_cpu_gelu_fwd_f64(c->out, c->x, c->n);
    else qt_cpu_relu_fwd_f64(c->out, c->x, c->n);
    return qt_test_ddot(c->out, c->wout, c->n);
}

static double gelu_ref(double x) {
    const double k = 0.7978845608028654; // sqrt(2 / pi)
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

START_TEST(test_activation_fd) {
    const size_t n = 41;
    for (int gelu = 0; gelu < 2; gelu++) {
        double *wout = qt_test_drand(n, -1, 1, 41);
        act_ctx c = {gelu, n, qt_test_drand(n, -6, 6, 40), wout, qt_test_dalloc(n)};
        c.x[0] = -30.0; // far tails
        c.x[1] = 30.0;
        act_loss(&c);
        if (gelu)
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(fabs(c.out[i] - gelu_ref(c.x[i])) <= 1e-14 * (1 + fabs(c.x[i])),
                              "gelu_fwd_f64(%g) = %.17g, tanh form %.17g", c.x[i], c.out[i],
                              gelu_ref(c.x[i]));
        double *d0 = qt_test_drand(n, -1, 1, 42), *d = qt_test_dcopy(d0, n);
        if (gelu) qt_cpu_gelu_bwd_f64(d, wout, c.x, n);
        else qt_cpu_relu_bwd_f64(d, wout, c.x, n);
        qt_test_check_grad(act_loss, &c, c.x, n, d, d0, FD_H, FD_TOL,
                           gelu ? "gelu_bwd_f64" : "relu_bwd_f64");
        // dx aliasing dout is the in-place form: dx = dout f'(x)
        double *inpl = qt_test_dcopy(wout, n), *z = qt_test_dalloc(n);
        for (size_t i = 0; i < n; i++) z[i] = 0.0;
        if (gelu) {
            qt_cpu_gelu_bwd_f64(inpl, inpl, c.x, n);
            qt_cpu_gelu_bwd_f64(z, wout, c.x, n);
        } else {
            qt_cpu_relu_bwd_f64(inpl, inpl, c.x, n);
            qt_cpu_relu_bwd_f64(z, wout, c.x, n);
        }
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(inpl[i] == z[i], "%s_bwd in place differs at %zu", gelu ? "gelu" : "relu",
                          i);
        free(wout);
        free(c.x);
        free(c.out);
        free(d0);
        free(d);
        free(inpl);
        free(z);
    }
}
END_TEST

START_TEST(test_activation_float_vs_double) {
    const size_t sizes[3] = {1, 33, 100003};
    for (int gelu = 0; gelu < 2; gelu++) {
        for (int s = 0; s < 3; s++) {
            size_t n = sizes[s];
            double *xd = qt_test_drand(n, -8, 8, 50 + s), *gd = qt_test_drand(n, -1, 1, 60 + s);
            double *dd = qt_test_drand(n, -1, 1, 70 + s), *od = qt_test_dalloc(n);
            float *xf = qt_test_to_float(xd, n), *gf = qt_test_to_float(gd, n),
                  *df = qt_test_to_float(dd, n);
            float *of = qt_test_falloc(n);
            qt_test_poison(of, n);
            if (gelu) {
                qt_cpu_gelu_fwd(of, xf, n);
                qt_cpu_gelu_fwd_f64(od, xd, n);
                qt_cpu_gelu_bwd(df, gf, xf, n);
                qt_cpu_gelu_bwd_f64(dd, gd, xd, n);
            } else {
                qt_cpu_relu_fwd(of, xf, n);
                qt_cpu_relu_fwd_f64(od, xd, n);
                qt_cpu_relu_bwd(df, gf, xf, n);
                qt_cpu_relu_bwd_f64(dd, gd, xd, n);
            }
            // element-wise ops: relative to each element (1e-5) plus a tiny absolute floor
            double e1 = 0.0, e2 = 0.0;
            for (size_t i = 0; i < n; i++) {
                double a = fabs(of[i] - od[i]) / (1e-5 * fabs(od[i]) + 1e-12);
                double b = fabs(df[i] - dd[i]) / (1e-5 * fabs(dd[i]) + 1e-7);
                if (!(a <= e1)) e1 = isnan(a) ? INFINITY : a;
                if (!(b <= e2)) e2 = isnan(b) ? INFINITY : b;
            }
            ck_assert_msg(e1 <= 1.0 && e2 <= 1.0, "%s float/double n %zu: fwd %g bwd %g",
                          gelu ? "gelu" : "relu", n, e1, e2);
            // out may alias x
            float *inpl = qt_test_falloc(n);
            memcpy(inpl, xf, n * sizeof(float));
            if (gelu) qt_cpu_gelu_fwd(inpl, inpl, n);
            else qt_cpu_relu_fwd(inpl, inpl, n);
            ck_assert(memcmp(inpl, of, n * sizeof(float)) == 0);
            free(xd);
            free(gd);
            free(dd);
            free(od);
            free(xf);
            free(gf);
            free(df);
            free(of);
            free(inpl);
        }
    }
    // the float GELU stays finite and exact-limit in the far tails
    float x[4] = {-1e6f, -100.0f, 100.0f, 1e6f}, o[4], d[4] = {0, 0, 0, 0}, one[4] = {1, 1, 1, 1};
    qt_cpu_gelu_fwd(o, x, 4);
    qt_cpu_gelu_bwd(d, one, x, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(isfinite(o[i]) && isfinite(d[i]), "gelu(%g) = %g, gelu' = %g", x[i], o[i],
                      d[i]);
        ck_assert_msg(fabsf(o[i] - (x[i] > 0 ? x[i] : 0.0f)) <= 1e-6f * fabsf(x[i]) &&
                          fabsf(d[i] - (x[i] > 0 ? 1.0f : 0.0f)) <= 1e-6f,
                      "gelu tail at %g: %g, %g", x[i], o[i], d[i]);
    }
}
END_TEST

// ---- embedding, add -------------------------------------------------------------------------

START_TEST(test_embedding) {
    const int B = 3, T = 5, C = 67, V = 11, maxT = 7;
    int tokens[15];
    for (int i = 0; i < B * T; i++) tokens[i] = (i * 7 + 3) % V; // repeats on purpose
    tokens[4] = tokens[9] = 2;
    float *wte = qt_test_falloc((size_t)V * C), *wpe = qt_test_falloc((size_t)maxT * C);
    float *out = qt_test_falloc((size_t)B * T * C), *dout = qt_test_falloc((size_t)B * T * C);
    qt_test_fill_uniform(wte, (size_t)V * C, -1, 1, 80);
    qt_test_fill_uniform(wpe, (size_t)maxT * C, -1, 1, 81);
    qt_test_fill_uniform(dout, (size_t)B * T * C, -1, 1, 82);
    qt_test_poison(out, (size_t)B * T * C);
    qt_cpu_embedding_fwd(out, tokens, wte, wpe, B, T, C);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                float want = wte[tokens[b * T + t] * C + c] + wpe[t * C + c];
                ck_assert_msg(out[(b * T + t) * C + c] == want, "embedding_fwd (%d, %d, %d)", b, t,
                              c);
            }
    float *dwte = qt_test_falloc((size_t)V * C), *dwpe = qt_test_falloc((size_t)maxT * C);
    double *wd = qt_test_dalloc((size_t)V * C), *pd = qt_test_dalloc((size_t)maxT * C);
    qt_test_fill_uniform(dwte, (size_t)V * C, -1, 1, 83);
    qt_test_fill_uniform(dwpe, (size_t)maxT * C, -1, 1, 84);
    for (int i = 0; i < V * C; i++) wd[i] = dwte[i];
    for (int i = 0; i < maxT * C; i++) pd[i] = dwpe[i];
    for (int n = 0; n < B * T; n++)
        for (int c = 0; c < C; c++) {
            wd[tokens[n] * C + c] += dout[n * C + c];
            pd[(n % T) * C + c] += dout[n * C + c];
        }
    qt_cpu_embedding_bwd(dwte, dwpe, dout, tokens, B, T, C);
    double e1 = qt_test_float_vs_double(dwte, wd, (size_t)V * C, 1e-6),
           e2 = qt_test_float_vs_double(dwpe, pd, (size_t)maxT * C, 1e-6);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0, "embedding_bwd vs direct loop: dwte %g dwpe %g", e1, e2);
    qt_cpu_embedding_bwd(dwte, NULL, dout, tokens, B, T, C); // dwpe optional
    free(wte);
    free(wpe);
    free(out);
    free(dout);
    free(dwte);
    free(dwpe);
    free(wd);
    free(pd);
}
END_TEST

START_TEST(test_add) {
    const size_t n = 70001;
    float *a = qt_test_falloc(n), *b = qt_test_falloc(n), *o = qt_test_falloc(n);
    qt_test_fill_uniform(a, n, -1, 1, 90);
    qt_test_fill_uniform(b, n, -1, 1, 91);
    qt_test_poison(o, n);
    qt_cpu_add(o, a, b, n);
    for (size_t i = 0; i < n; i++) ck_assert(o[i] == a[i] + b[i]);
    qt_cpu_add(a, a, b, n); // out aliases a
    ck_assert(memcmp(a, o, n * sizeof(float)) == 0);
    free(a);
    free(b);
    free(o);
}
END_TEST

// ---- dropout --------------------------------------------------------------------------------

START_TEST(test_dropout) {
    const size_t n = 100003;
    const float prob = 0.3f;
    float *x = qt_test_falloc(n), *o1 = qt_test_falloc(n), *o2 = qt_test_falloc(n),
          *dx = qt_test_falloc(n), *dout = qt_test_falloc(n);
    qt_test_fill_uniform(x, n, 0.5f, 1.5f, 100); // nonzero, so a zero output means dropped
    qt_test_fill_uniform(dout, n, 0.5f, 1.5f, 101);
    qt_test_poison(o1, n);
    qt_cpu_dropout_fwd(o1, x, n, prob, 7, 42);
    qt_cpu_dropout_fwd(o2, x, n, prob, 7, 42);
    ck_assert_msg(memcmp(o1, o2, n * sizeof(float)) == 0, "dropout mask not reproducible");
    size_t kept = 0;
    const float s = 1.0f / (1.0f - prob);
    for (size_t i = 0; i < n; i++) {
        int keep = qt_philox_uniform(7, 42, i) >= prob;
        ck_assert_msg(o1[i] == (keep ? x[i] * s : 0.0f), "dropout_fwd element %zu", i);
        kept += keep;
    }
    // keep rate: binomial(n, 0.7), 5 standard deviations
    double mean = n * (1.0 - prob), sd = sqrt(n * prob * (1.0 - prob));
    ck_assert_msg(fabs(kept - mean) <= 5 * sd, "dropout kept %zu of %zu (expected %g +- %g)", kept,
                  n, mean, 5 * sd);
    // another stream gives another mask
    qt_cpu_dropout_fwd(o2, x, n, prob, 7, 43);
    ck_assert(memcmp(o1, o2, n * sizeof(float)) != 0);
    // the backward uses the same mask, and adds
    qt_test_fill_uniform(dx, n, -1, 1, 102);
    memcpy(o2, dx, n * sizeof(float));
    qt_cpu_dropout_bwd(dx, dout, n, prob, 7, 42);
    for (size_t i = 0; i < n; i++) {
        float want = o2[i] + (o1[i] != 0.0f ? dout[i] * s : 0.0f);
        ck_assert_msg(dx[i] == want, "dropout_bwd element %zu: %g, want %g", i, dx[i], want);
    }
    // in place: dx aliasing dout gets dout keep / (1 - p)
    memcpy(o2, dout, n * sizeof(float));
    qt_cpu_dropout_bwd(o2, o2, n, prob, 7, 42);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(o2[i] == (o1[i] != 0.0f ? dout[i] * s : 0.0f), "dropout_bwd in place %zu",
                      i);
    // prob 0 is the identity (copy, and in place), its backward a plain add
    qt_test_poison(o2, n);
    qt_cpu_dropout_fwd(o2, x, n, 0.0f, 7, 42);
    ck_assert(memcmp(o2, x, n * sizeof(float)) == 0);
    qt_cpu_dropout_fwd(o2, o2, n, 0.0f, 7, 42);
    ck_assert(memcmp(o2, x, n * sizeof(float)) == 0);
    memset(dx, 0, n * sizeof(float));
    qt_cpu_dropout_bwd(dx, dout, n, 0.0f, 7, 42);
    ck_assert(memcmp(dx, dout, n * sizeof(float)) == 0);
    // odd sizes: the tail after the last full group of four, and out aliasing x
    for (size_t m = 1; m <= 7; m++) {
        float a[7], b[7];
        memcpy(a, x, m * sizeof(float));
        qt_cpu_dropout_fwd(b, x, m, prob, 9, 1);
        qt_cpu_dropout_fwd(a, a, m, prob, 9, 1);
        for (size_t i = 0; i < m; i++) {
            float want = qt_philox_uniform(9, 1, i) >= prob ? x[i] * s : 0.0f;
            ck_assert_msg(a[i] == want && b[i] == want, "dropout n %zu element %zu", m, i);
        }
    }
    free(x);
    free(o1);
    free(o2);
    free(dx);
    free(dout);
}
END_TEST

// ---- cross-entropy --------------------------------------------------------------------------

typedef struct {
    int N, V;
    double *logits;
    const int *targets;
    const double *dloss;
    double *losses, *probs;
} ce_ctx;

static double ce_loss(void *v) {
    ce_ctx *c = v;
    qt_cpu_crossentropy_fwd_f64(c->losses, c->probs, c->logits, c->targets, c->N, c->V);
    return qt_test_ddot(c->losses, c->dloss, c->N);
}

START_TEST(test_crossentropy_fd) {
    const int N = 5, V = 7;
    const int targets[5] = {3, -1, 0, 6, 2}; // row 1 ignored
    double *dloss = qt_test_drand(N, 0.2, 1.5, 111);
    ce_ctx c = {N, V, qt_test_drand((size_t)N * V, -3, 3, 110), targets, dloss, qt_test_dalloc(N),
                qt_test_dalloc((size_t)N * V)};
    ce_loss(&c);
    for (int n = 0; n < N; n++) {
        double m = -INFINITY, s = 0.0;
        for (int j = 0; j < V; j++) m = fmax(m, c.logits[n * V + j]);
        for (int j = 0; j < V; j++) s += exp(c.logits[n * V + j] - m);
        double want = targets[n] < 0 ? 0.0 : m + log(s) - c.logits[n * V + targets[n]];
        ck_assert_msg(fabs(c.losses[n] - want) <= 1e-14, "crossentropy_fwd_f64 row %d: %g vs %g",
                      n, c.losses[n], want);
        for (int j = 0; j < V; j++)
            ck_assert_msg(fabs(c.probs[n * V + j] - exp(c.logits[n * V + j] - m) / s) <= 1e-15,
                          "crossentropy probs row %d col %d", n, j);
    }
    double *d0 = qt_test_drand((size_t)N * V, -1, 1, 112), *d = qt_test_dcopy(d0, (size_t)N * V);
    qt_cpu_crossentropy_bwd_f64(d, dloss, c.probs, targets, N, V);
    for (int j = 0; j < V; j++) ck_assert(d[V + j] == d0[V + j]); // ignored row untouched
    qt_test_check_grad(ce_loss, &c, c.logits, (size_t)N * V, d, d0, FD_H, FD_TOL,
                       "crossentropy_bwd_f64 dlogits");
    // in place: dlogits aliasing probs is overwritten; the ignored row becomes 0
    double *inpl = qt_test_dcopy(c.probs, (size_t)N * V), *z = qt_test_dalloc((size_t)N * V);
    for (int i = 0; i < N * V; i++) z[i] = 0.0;
    qt_cpu_crossentropy_bwd_f64(inpl, dloss, inpl, targets, N, V);
    qt_cpu_crossentropy_bwd_f64(z, dloss, c.probs, targets, N, V);
    for (int i = 0; i < N * V; i++)
        ck_assert_msg(inpl[i] == z[i], "crossentropy_bwd in place differs at %d", i);
    free(dloss);
    free(c.logits);
    free(c.losses);
    free(c.probs);
    free(d0);
    free(d);
    free(inpl);
    free(z);
}
END_TEST

static void check_ce_float(int N, int V, uint64_t seed) {
    size_t n = (size_t)N * V;
    int *targets = malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) targets[i] = i % 5 == 4 ? -1 : (int)((i * 2654435761u) % V);
    double *zd = qt_test_drand(n, -8, 8, seed), *dld = qt_test_drand(N, 0, 1, seed + 1);
    double *dd = qt_test_drand(n, -1, 1, seed + 2), *ld = qt_test_dalloc(N),
           *pd = qt_test_dalloc(n);
    float *zf = qt_test_to_float(zd, n), *dlf = qt_test_to_float(dld, N),
          *df = qt_test_to_float(dd, n);
    float *lf = qt_test_falloc(N), *pf = qt_test_falloc(n);
    qt_test_poison(lf, N);
    qt_test_poison(pf, n);
    qt_cpu_crossentropy_fwd(lf, pf, zf, targets, N, V);
    qt_cpu_crossentropy_fwd_f64(ld, pd, zd, targets, N, V);
    double e1 = qt_test_float_vs_double(lf, ld, N, 1e-5),
           e2 = qt_test_float_vs_double(pf, pd, n, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0,
                  "crossentropy_fwd float/double N %d V %d: losses %g probs %g", N, V, e1, e2);
    qt_cpu_crossentropy_bwd(df, dlf, pf, targets, N, V);
    qt_cpu_crossentropy_bwd_f64(dd, dld, pd, targets, N, V);
    double e3 = qt_test_float_vs_double(df, dd, n, 1e-5);
    ck_assert_msg(e3 <= 1.0, "crossentropy_bwd float/double N %d V %d: %g", N, V, e3);
    // probs may alias logits
    float *inpl = qt_test_falloc(n), *l2 = qt_test_falloc(N);
    memcpy(inpl, zf, n * sizeof(float));
    qt_cpu_crossentropy_fwd(l2, inpl, inpl, targets, N, V);
    ck_assert(memcmp(inpl, pf, n * sizeof(float)) == 0 && memcmp(l2, lf, N * sizeof(float)) == 0);
    free(targets);
    free(zd);
    free(dld);
    free(dd);
    free(ld);
    free(pd);
    free(zf);
    free(dlf);
    free(df);
    free(lf);
    free(pf);
    free(inpl);
    free(l2);
}

START_TEST(test_crossentropy_float_vs_double) {
    check_ce_float(1, 1, 120);
    check_ce_float(31, 33, 121);
    check_ce_float(67, 4097, 122);
}
END_TEST

// ---- AdamW, sumsq -----------------------------------------------------------------------------

START_TEST(test_adamw) {
    const size_t n = 37;
    float p[37], g[37], m[37], v[37];
    qt_test_fill_uniform(p, n, -1, 1, 130);
    qt_test_fill_uniform(g, n, -2, 2, 131);
    qt_test_fill_uniform(m, n, -0.1f, 0.1f, 132);
    qt_test_fill_uniform(v, n, 0.0f, 0.01f, 133);
    qt_adamw_params prm = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                           .weight_decay = 0.1f, .step = 3, .grad_scale = 0.5f};
    double pw[37], mw[37], vw[37], mscale[37], vscale[37];
    for (size_t i = 0; i < n; i++) { // the hand computation, in double
        double b1 = prm.beta1, b2 = prm.beta2, gi = (double)g[i] * prm.grad_scale;
        mw[i] = b1 * m[i] + (1 - b1) * gi;
        vw[i] = b2 * v[i] + (1 - b2) * gi * gi;
        mscale[i] = fabs(b1 * m[i]) + fabs((1 - b1) * gi); // float rounding scales with these
        vscale[i] = fabs(b2 * v[i]) + fabs((1 - b2) * gi * gi);
        double mh = mw[i] / (1 - pow(b1, 3)), vh = vw[i] / (1 - pow(b2, 3));
        pw[i] = p[i] - (double)prm.lr * (mh / (sqrt(vh) + prm.eps) + prm.weight_decay * p[i]);
    }
    qt_cpu_adamw_step(p, g, m, v, n, &prm);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(fabs(m[i] - mw[i]) <= 1e-6 * mscale[i] &&
                          fabs(v[i] - vw[i]) <= 1e-6 * vscale[i],
                      "adamw moments at %zu: m %g (%g) v %g (%g)", i, m[i], mw[i], v[i], vw[i]);
        ck_assert_msg(fabs(p[i] - pw[i]) <= 1e-7 + 1e-6 * fabs(pw[i]),
                      "adamw param at %zu: %.9g, want %.9g", i, p[i], pw[i]);
    }
    // step 1 from zero moments moves each parameter by about lr sign(g) (plus decay)
    float p1[4] = {1, 1, 1, 1}, g1[4] = {0.3f, -2.0f, 5.0f, -1e-3f}, m1[4] = {0}, v1[4] = {0};
    qt_adamw_params one = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-12f,
                           .weight_decay = 0.0f, .step = 1, .grad_scale = 1.0f};
    qt_cpu_adamw_step(p1, g1, m1, v1, 4, &one);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fabsf(p1[i] - (1.0f - 0.01f * (g1[i] > 0 ? 1.0f : -1.0f))) <= 1e-6f,
                      "adamw step 1 at %d: %g", i, p1[i]);
    // a large array (parallel path) equals the same update done in small pieces
    const size_t big = 100003;
    float *pa = qt_test_falloc(big), *ga = qt_test_falloc(big), *ma = qt_test_falloc(big),
          *va = qt_test_falloc(big);
    float *pb = qt_test_falloc(big), *mb = qt_test_falloc(big), *vb = qt_test_falloc(big);
    qt_test_fill_uniform(pa, big, -1, 1, 134);
    qt_test_fill_uniform(ga, big, -1, 1, 135);
    qt_test_fill_uniform(ma, big, -0.1f, 0.1f, 136);
    qt_test_fill_uniform(va, big, 0, 0.01f, 137);
    memcpy(pb, pa, big * sizeof(float));
    memcpy(mb, ma, big * sizeof(float));
    memcpy(vb, va, big * sizeof(float));
    qt_cpu_adamw_step(pa, ga, ma, va, big, &prm);
    for (size_t i = 0; i < big; i += 1000) {
        size_t len = big - i < 1000 ? big - i : 1000;
        qt_cpu_adamw_step(pb + i, ga + i, mb + i, vb + i, len, &prm);
    }
    ck_assert(memcmp(pa, pb, big * sizeof(float)) == 0);
    ck_assert(memcmp(ma, mb, big * sizeof(float)) == 0);
    ck_assert(memcmp(va, vb, big * sizeof(float)) == 0);
    free(pa);
    free(ga);
    free(ma);
    free(va);
    free(pb);
    free(mb);
    free(vb);
}
END_TEST

// vsqrtf, AdamW's vectorizable sqrt: within 1 ulp of the correctly rounded sqrt over the
// normal floats (sampled), sqrt(0) = 0, exact squares exact enough to round back.
START_TEST(test_vsqrtf) {
    double worst = 0.0;
    float at = 0.0f;
    for (uint32_t b = 0x00800000u; b < 0x7f800000u; b += 997) {
        float v;
        memcpy(&v, &b, sizeof v);
        double want = sqrt((double)v);
        float fw = (float)want;
        double ulp = (double)nextafterf(fw, INFINITY) - (double)fw;
        double e = fabs((double)vsqrtf(v) - want) / ulp;
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            at = v;
        }
    }
    ck_assert_msg(worst <= 1.0, "vsqrtf: %g ulp at %g", worst, at);
    ck_assert(vsqrtf(0.0f) == 0.0f);
    for (int k = 1; k < 1000; k++)
        ck_assert_msg(fabsf(vsqrtf((float)(k * k)) - (float)k) <= 1e-6f * k, "vsqrtf(%d^2)", k);
}
END_TEST

START_TEST(test_sumsq) {
    const size_t sizes[4] = {0, 1, 33, 3000017};
    for (int s = 0; s < 4; s++) {
        size_t n = sizes[s];
        float *x = qt_test_falloc(n);
        qt_test_fill_uniform(x, n, -2, 2, 140 + s);
        long double want = 0.0L;
        for (size_t i = 0; i < n; i++) want += (long double)x[i] * x[i];
        double got = qt_cpu_sumsq(x, n);
        ck_assert_msg(fabs(got - (double)want) <= 1e-13 * (double)want,
                      "sumsq n %zu: %.17g, want %.17Lg", n, got, want);
        ck_assert_msg(got == qt_cpu_sumsq(x, n), "sumsq n %zu not deterministic", n);
        free(x);
    }
}
END_TEST

static Suite *layers_suite(void) {
    Suite *s = suite_create("ops_layers");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_linear_fd);
    tcase_add_test(tc, test_linear_float_vs_double);
    tcase_add_test(tc, test_layernorm_fd);
    tcase_add_test(tc, test_layernorm_float_vs_double);
    tcase_add_test(tc, test_activation_fd);
    tcase_add_test(tc, test_activation_float_vs_double);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_add);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_crossentropy_fd);
    tcase_add_test(tc, test_crossentropy_float_vs_double);
    tcase_add_test(tc, test_adamw);
    tcase_add_test(tc, test_vsqrtf);
    tcase_add_test(tc, test_sumsq);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(layers_suite()); }

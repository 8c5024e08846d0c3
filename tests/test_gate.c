// test_gate.c: the attention gate's CPU reference (kernels/gate.h: qt_cpu_gate_*,
// qt_cpu_gate_mul_*) against finite differences and float against double.
//
// Gradient checks run in double against central finite differences (step 1e-6) of a scalar
// loss L = sum wout * output. Error norm, per gradient tensor:
//     err = max_i |analytic_i - fd_i| / max(max_i |fd_i|, 1e-30),  pass when err <= 1e-6
// (NaN fails). Backward outputs start from random values, which the test subtracts after the
// call: a backward that overwrites instead of adding fails.
// Float against double: outputs poisoned with NaN, odd sizes, per-element
// |float - double| <= 1e-5 (max |double| + |double|).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention_layer_ref.h"
#include "kernels/gate.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6

// ---- helpers --------------------------------------------------------------------------------

static const char *gate_name(qt_gate_kind k) {
    return k == QT_GATE_NONE     ? "none"
           : k == QT_GATE_LINEAR ? "linear"
           : k == QT_GATE_MLP    ? "mlp"
                                 : "all_heads";
}

// ---- gate -----------------------------------------------------------------------------------

typedef struct {
    const qt_gate_shape *g;
    int N, C;
    double *x, *w[4];
    const double *wout;
    double *gate, *hidden;
} gate_ctx;

static double gate_loss(void *v) {
    gate_ctx *c = v;
    QT_EXPECT_OK(qt_cpu_gate_fwd_f64(c->g, c->gate, c->hidden, c->x, c->w[0], c->w[1], c->w[2],
                                     c->w[3], c->N, c->C));
    return qt_test_ddot(c->gate, c->wout, (size_t)c->N * c->g->n_heads);
}

static void check_gate_fd(qt_gate_kind kind, int H) {
    const int N = 5, C = 12;
    qt_gate_shape g = {kind, H, 3};
    size_t sz[4];
    qt_gate_param_sizes(&g, C, sz);
    gate_ctx c = {&g, N, C, qt_test_drand((size_t)N * C, -1.5, 1.5, 101), {NULL}, NULL, NULL, NULL};
    for (int k = 0; k < 4; k++) c.w[k] = sz[k] ? qt_test_drand(sz[k], -0.8, 0.8, 110 + k) : NULL;
    c.wout = qt_test_drand((size_t)N * H, -1.0, 1.0, 120);
    c.gate = qt_test_dalloc((size_t)N * H);
    c.hidden = kind == QT_GATE_MLP ? qt_test_dalloc((size_t)N * H * 3) : NULL;
    gate_loss(&c);
    qt_test_acc dx = qt_test_acc_new((size_t)N * C, 130), dw[4];
    for (int k = 0; k < 4; k++) dw[k] = qt_test_acc_new(sz[k], 131 + k);
    QT_EXPECT_OK(qt_cpu_gate_bwd_f64(&g, dx.g, dw[0].g, dw[1].g, sz[2] ? dw[2].g : NULL,
                                     sz[3] ? dw[3].g : NULL, c.wout, c.gate, c.hidden, c.x, c.w[0],
                                     c.w[2], N, C));
    qt_test_fd_problem p = {.loss = gate_loss, .ctx = &c};
    double *an[5] = {qt_test_acc_delta(&dx)};
    qt_test_fd_add(&p, "x", c.x, (size_t)N * C);
    const char *names[4] = {"w1", "b1", "w2", "b2"};
    for (int k = 0; k < 4; k++) {
        if (!sz[k]) continue;
        an[p.count] = qt_test_acc_delta(&dw[k]);
        qt_test_fd_add(&p, names[k], c.w[k], sz[k]);
    }
    char what[96];
    snprintf(what, sizeof what, "gate_bwd_f64 %s N %d C %d H %d", gate_name(kind), N, C, H);
    qt_test_fd_check(&p, an, FD_H, FD_TOL, what);
    if (kind == QT_GATE_MLP) { // the ReLU must be active somewhere and idle somewhere
        int pos = 0, neg = 0;
        for (int i = 0; i < N * H * 3; i++) {
            if (c.hidden[i] > 0)
                pos++;
            else
                neg++;
        }
        ck_assert_msg(pos > 0 && neg > 0, "mlp gate case: %d positive, %d negative hidden", pos,
                      neg);
    }
    free(c.x);
    for (int k = 0; k < 4; k++) {
        free(c.w[k]);
        qt_test_acc_free(&dw[k]);
    }
    free((void *)c.wout);
    free(c.gate);
    free(c.hidden);
    qt_test_acc_free(&dx);
}

START_TEST(test_gate_fd) {
    check_gate_fd(QT_GATE_LINEAR, 3);
    check_gate_fd(QT_GATE_MLP, 3);
    check_gate_fd(QT_GATE_ALL_HEADS, 3);
    // Qwen's elementwise gate (Qiu et al. 2025): the all-heads gate with one value per channel,
    // Linear(C -> C), as the model runs attn.gate = elementwise
    check_gate_fd(QT_GATE_ALL_HEADS, 12);
}
END_TEST

// gate = sigmoid(b1) when the weights are zero: the bias sets the initial gate value
START_TEST(test_gate_bias_sets_init) {
    const int N = 3, C = 8, H = 2;
    const double pi = 0.25, logit = log(pi / (1 - pi));
    for (int kind = QT_GATE_LINEAR; kind <= QT_GATE_ALL_HEADS; kind++) {
        qt_gate_shape g = {(qt_gate_kind)kind, H, 2};
        size_t sz[4];
        qt_gate_param_sizes(&g, C, sz);
        double *w[4], *x = qt_test_drand((size_t)N * C, -1, 1, 140), gate[6], hidden[12];
        for (int k = 0; k < 4; k++) {
            w[k] = qt_test_dalloc(sz[k]);
            for (size_t i = 0; i < sz[k]; i++) w[k][i] = 0.0;
        }
        double *bias = kind == QT_GATE_MLP ? w[3] : w[1];
        for (int h = 0; h < H; h++) bias[h] = logit;
        QT_EXPECT_OK(qt_cpu_gate_fwd_f64(&g, gate, hidden, x, w[0], w[1], w[2], w[3], N, C));
        for (int i = 0; i < N * H; i++)
            ck_assert_msg(fabs(gate[i] - pi) <= 1e-15, "gate %s init: %g != %g",
                          gate_name(g.kind), gate[i], pi);
        for (int k = 0; k < 4; k++) free(w[k]);
        free(x);
    }
}
END_TEST

typedef struct {
    int N, C, H;
    double *gate, *ctxv;
    const double *wout;
    double *out;
} gmul_ctx;

static double gmul_loss(void *v) {
    gmul_ctx *c = v;
    QT_EXPECT_OK(qt_cpu_gate_mul_fwd_f64(c->out, c->gate, c->ctxv, c->N, c->C, c->H));
    return qt_test_ddot(c->out, c->wout, (size_t)c->N * c->C);
}

START_TEST(test_gate_mul_fd) {
    const int N = 4, C = 9, H = 3;
    gmul_ctx c = {N,
                  C,
                  H,
                  qt_test_drand((size_t)N * H, 0.0, 1.0, 150),
                  qt_test_drand((size_t)N * C, -1, 1, 151),
                  qt_test_drand((size_t)N * C, -1, 1, 152),
                  qt_test_dalloc((size_t)N * C)};
    qt_test_acc dctx = qt_test_acc_new((size_t)N * C, 153),
                dgate = qt_test_acc_new((size_t)N * H, 154);
    QT_EXPECT_OK(qt_cpu_gate_mul_bwd_f64(dctx.g, dgate.g, c.wout, c.gate, c.ctxv, N, C, H));
    qt_test_fd_problem p = {.loss = gmul_loss, .ctx = &c};
    qt_test_fd_add(&p, "gate", c.gate, (size_t)N * H);
    qt_test_fd_add(&p, "ctx", c.ctxv, (size_t)N * C);
    double *an[2] = {qt_test_acc_delta(&dgate), qt_test_acc_delta(&dctx)};
    qt_test_fd_check(&p, an, FD_H, FD_TOL, "gate_mul_bwd_f64 N 4 C 9 H 3");
    // one gate per channel (H = C: the elementwise gate's multiply)
    gmul_ctx e = {N, C, C, qt_test_drand((size_t)N * C, 0.0, 1.0, 155), c.ctxv, c.wout, c.out};
    qt_test_acc dce = qt_test_acc_new((size_t)N * C, 156),
                dge = qt_test_acc_new((size_t)N * C, 157);
    QT_EXPECT_OK(qt_cpu_gate_mul_bwd_f64(dce.g, dge.g, c.wout, e.gate, c.ctxv, N, C, C));
    qt_test_fd_problem pe = {.loss = gmul_loss, .ctx = &e};
    qt_test_fd_add(&pe, "gate", e.gate, (size_t)N * C);
    qt_test_fd_add(&pe, "ctx", c.ctxv, (size_t)N * C);
    double *ane[2] = {qt_test_acc_delta(&dge), qt_test_acc_delta(&dce)};
    qt_test_fd_check(&pe, ane, FD_H, FD_TOL, "gate_mul_bwd_f64 N 4 C 9 H 9 (per channel)");
    free(e.gate);
    qt_test_acc_free(&dce);
    qt_test_acc_free(&dge);
    // out may alias ctx
    double *inplace = qt_test_dalloc((size_t)N * C);
    memcpy(inplace, c.ctxv, (size_t)N * C * sizeof(double));
    QT_EXPECT_OK(qt_cpu_gate_mul_fwd_f64(c.out, c.gate, c.ctxv, N, C, H));
    QT_EXPECT_OK(qt_cpu_gate_mul_fwd_f64(inplace, c.gate, inplace, N, C, H));
    for (int i = 0; i < N * C; i++)
        ck_assert_msg(inplace[i] == c.out[i], "gate_mul_fwd in place differs at %d", i);
    free(inplace);
    free(c.gate);
    free(c.ctxv);
    free((void *)c.wout);
    free(c.out);
    qt_test_acc_free(&dctx);
    qt_test_acc_free(&dgate);
}
END_TEST

static void check_gate_float(qt_gate_kind kind, int N, int C, int H, int nh, uint64_t seed) {
    qt_gate_shape g = {kind, H, nh};
    size_t sz[4];
    qt_gate_param_sizes(&g, C, sz);
    size_t nx = (size_t)N * C, ng = (size_t)N * H, nhid = (size_t)N * H * nh;
    double *xd = qt_test_drand(nx, -2, 2, seed), *wd[4], *dgd = qt_test_drand(ng, -1, 1, seed + 9);
    float *xf = qt_test_to_float(xd, nx), *wf[4], *dgf = qt_test_to_float(dgd, ng);
    for (int k = 0; k < 4; k++) {
        wd[k] = qt_test_drand(sz[k], -0.7, 0.7, seed + 1 + k);
        wf[k] = qt_test_to_float(wd[k], sz[k]);
    }
    double *gd = qt_test_dalloc(ng), *hd = qt_test_dalloc(nhid);
    float *gf = qt_test_falloc(ng), *hf = qt_test_falloc(nhid);
    qt_test_poison(gf, ng);
    qt_test_poison(hf, nhid);
    QT_EXPECT_OK(qt_cpu_gate_fwd_f64(&g, gd, kind == QT_GATE_MLP ? hd : NULL, xd, wd[0], wd[1],
                                     wd[2], wd[3], N, C));
    QT_EXPECT_OK(qt_cpu_gate_fwd(&g, gf, kind == QT_GATE_MLP ? hf : NULL, xf, wf[0], wf[1], wf[2],
                                 wf[3], N, C));
    double e = qt_test_float_vs_double(gf, gd, ng, 1e-5);
    ck_assert_msg(e <= 1.0, "gate_fwd float/double %s N %d C %d H %d: %g", gate_name(kind), N, C,
                  H, e);
    if (kind == QT_GATE_MLP) {
        e = qt_test_float_vs_double(hf, hd, nhid, 1e-5);
        ck_assert_msg(e <= 1.0, "gate_fwd hidden float/double N %d C %d H %d: %g", N, C, H, e);
    }
    // backward, from each precision's own saved activations, onto equal random starts
    double *dxd = qt_test_drand(nx, -1, 1, seed + 20), *dwd[4];
    float *dxf = qt_test_to_float(dxd, nx), *dwf[4];
    for (int k = 0; k < 4; k++) {
        dwd[k] = qt_test_drand(sz[k], -1, 1, seed + 21 + k);
        dwf[k] = qt_test_to_float(dwd[k], sz[k]);
    }
    QT_EXPECT_OK(qt_cpu_gate_bwd_f64(&g, dxd, dwd[0], dwd[1], sz[2] ? dwd[2] : NULL,
                                     sz[3] ? dwd[3] : NULL, dgd, gd, hd, xd, wd[0], wd[2], N, C));
    QT_EXPECT_OK(qt_cpu_gate_bwd(&g, dxf, dwf[0], dwf[1], sz[2] ? dwf[2] : NULL,
                                 sz[3] ? dwf[3] : NULL, dgf, gf, hf, xf, wf[0], wf[2], N, C));
    e = qt_test_float_vs_double(dxf, dxd, nx, 1e-5);
    ck_assert_msg(e <= 1.0, "gate_bwd dx float/double %s N %d C %d: %g", gate_name(kind), N, C,
                  e);
    for (int k = 0; k < 4; k++) {
        if (!sz[k]) continue;
        e = qt_test_float_vs_double(dwf[k], dwd[k], sz[k], 1e-5);
        ck_assert_msg(e <= 1.0, "gate_bwd param %d float/double %s N %d C %d: %g", k,
                      gate_name(kind), N, C, e);
    }
    free(xd);
    free(xf);
    free(dgd);
    free(dgf);
    free(gd);
    free(hd);
    free(gf);
    free(hf);
    free(dxd);
    free(dxf);
    for (int k = 0; k < 4; k++) {
        free(wd[k]);
        free(wf[k]);
        free(dwd[k]);
        free(dwf[k]);
    }
}

START_TEST(test_gate_float_vs_double) {
    for (int kind = QT_GATE_LINEAR; kind <= QT_GATE_ALL_HEADS; kind++) {
        check_gate_float((qt_gate_kind)kind, 1, 4, 1, 1, 160);
        check_gate_float((qt_gate_kind)kind, 31, 33, 3, 5, 161);
        check_gate_float((qt_gate_kind)kind, 1027, 64, 4, 16, 162); // parallel path
    }
    check_gate_float(QT_GATE_ALL_HEADS, 257, 48, 48, 1, 163); // elementwise: one per channel
    // gate_mul
    const int N = 33, C = 93, H = 3;
    double *gd = qt_test_drand((size_t)N * H, 0, 1, 170),
           *cd = qt_test_drand((size_t)N * C, -2, 2, 171);
    double *dod = qt_test_drand((size_t)N * C, -1, 1, 172), *od = qt_test_dalloc((size_t)N * C);
    double *dcd = qt_test_drand((size_t)N * C, -1, 1, 173),
           *dgd = qt_test_drand((size_t)N * H, -1, 1, 174);
    float *gf = qt_test_to_float(gd, (size_t)N * H), *cf = qt_test_to_float(cd, (size_t)N * C);
    float *dof = qt_test_to_float(dod, (size_t)N * C), *of = qt_test_falloc((size_t)N * C);
    float *dcf = qt_test_to_float(dcd, (size_t)N * C), *dgf = qt_test_to_float(dgd, (size_t)N * H);
    qt_test_poison(of, (size_t)N * C);
    QT_EXPECT_OK(qt_cpu_gate_mul_fwd(of, gf, cf, N, C, H));
    QT_EXPECT_OK(qt_cpu_gate_mul_fwd_f64(od, gd, cd, N, C, H));
    ck_assert_msg(qt_test_float_vs_double(of, od, (size_t)N * C, 1e-6) <= 1.0,
                  "gate_mul_fwd float/double");
    QT_EXPECT_OK(qt_cpu_gate_mul_bwd(dcf, dgf, dof, gf, cf, N, C, H));
    QT_EXPECT_OK(qt_cpu_gate_mul_bwd_f64(dcd, dgd, dod, gd, cd, N, C, H));
    ck_assert_msg(qt_test_float_vs_double(dcf, dcd, (size_t)N * C, 1e-5) <= 1.0,
                  "gate_mul_bwd dctx float/double");
    ck_assert_msg(qt_test_float_vs_double(dgf, dgd, (size_t)N * H, 1e-5) <= 1.0,
                  "gate_mul_bwd dgate float/double");
    free(gd);
    free(cd);
    free(dod);
    free(od);
    free(dcd);
    free(dgd);
    free(gf);
    free(cf);
    free(dof);
    free(of);
    free(dcf);
    free(dgf);
}
END_TEST

// The error contract (kernels/gate.h): a bad gate shape (kind, heads not dividing C, an MLP
// without hidden units), N < 0 or a NULL required tensor is refused, naming the op, before
// gate, hidden (forward), the gradients (backward) or out (gate_mul) is written.
START_TEST(test_gate_bad_args) {
    enum { N = 3, C = 8, H = 2, NH = 3 };
    const qt_gate_shape mlp = {QT_GATE_MLP, H, NH};
    float x[N * C], w1[H * NH * (C / H)], b1[H * NH], w2[H * NH], b2[H], ctx[N * C];
    qt_test_fill_uniform(x, N * C, -1.0f, 1.0f, 97);
    qt_test_fill_uniform(w1, sizeof w1 / sizeof w1[0], -1.0f, 1.0f, 98);
    qt_test_fill_uniform(b1, H * NH, -1.0f, 1.0f, 99);
    qt_test_fill_uniform(w2, H * NH, -1.0f, 1.0f, 100);
    qt_test_fill_uniform(b2, H, -1.0f, 1.0f, 101);
    qt_test_fill_uniform(ctx, N * C, -1.0f, 1.0f, 102);
    const size_t ng = (size_t)N * H * 4, nhid = (size_t)N * H * NH * 4;
    float *gate = qt_test_guarded(ng), *hidden = qt_test_guarded(nhid);
#define FWD(g, n, c, hid) qt_cpu_gate_fwd(g, gate, hid, x, w1, b1, w2, b2, n, c)
#define UNTOUCHED (qt_test_untouched(gate, ng) && qt_test_untouched(hidden, nhid))
    qt_gate_shape bad = mlp;
    bad.kind = QT_GATE_NONE; // not a gate function
    QT_EXPECT_REFUSED(FWD(&bad, N, C, hidden), "gate_fwd", UNTOUCHED);
    bad = mlp;
    bad.n_heads = 3; // does not divide C
    QT_EXPECT_REFUSED(FWD(&bad, N, C, hidden), "gate_fwd", UNTOUCHED);
    bad = mlp;
    bad.n_hid = 0;
    QT_EXPECT_REFUSED(FWD(&bad, N, C, hidden), "gate_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(FWD(NULL, N, C, hidden), "gate_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(FWD(&mlp, -1, C, hidden), "gate_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(FWD(&mlp, N, C, NULL), "gate_fwd", UNTOUCHED); // the MLP saves hidden
#undef UNTOUCHED
#undef FWD
    // the backward, from a valid forward
    float *gv = qt_test_falloc((size_t)N * H), *hv = qt_test_falloc((size_t)N * H * NH);
    float dgate[N * H];
    qt_test_fill_uniform(dgate, N * H, -1.0f, 1.0f, 103);
    QT_EXPECT_OK(qt_cpu_gate_fwd(&mlp, gv, hv, x, w1, b1, w2, b2, N, C));
    float *dx = qt_test_guarded(sizeof x), *dw1 = qt_test_guarded(sizeof w1);
#define UNTOUCHED (qt_test_untouched(dx, sizeof x) && qt_test_untouched(dw1, sizeof w1))
    QT_EXPECT_REFUSED(
        qt_cpu_gate_bwd(&mlp, dx, dw1, NULL, NULL, NULL, dgate, gv, NULL, x, w1, w2, N, C),
        "gate_bwd", UNTOUCHED); // the MLP's backward needs hidden
    bad = mlp;
    bad.kind = (qt_gate_kind)9;
    QT_EXPECT_REFUSED(
        qt_cpu_gate_bwd(&bad, dx, dw1, NULL, NULL, NULL, dgate, gv, hv, x, w1, w2, N, C),
        "gate_bwd", UNTOUCHED);
#undef UNTOUCHED
    // gate_mul
    float *out = qt_test_guarded(sizeof ctx), *dctx = qt_test_guarded(sizeof ctx);
    QT_EXPECT_REFUSED(qt_cpu_gate_mul_fwd(out, gv, ctx, N, C, 3), "gate_mul_fwd",
                      qt_test_untouched(out, sizeof ctx));
    QT_EXPECT_REFUSED(qt_cpu_gate_mul_fwd(out, NULL, ctx, N, C, H), "gate_mul_fwd",
                      qt_test_untouched(out, sizeof ctx));
    QT_EXPECT_REFUSED(qt_cpu_gate_mul_bwd(dctx, NULL, ctx, gv, NULL, N, C, H), "gate_mul_bwd",
                      qt_test_untouched(dctx, sizeof ctx));
    QT_EXPECT_REFUSED(qt_cpu_gate_mul_bwd(dctx, NULL, ctx, gv, ctx, N, C, 0), "gate_mul_bwd",
                      qt_test_untouched(dctx, sizeof ctx));
    // the double twin names itself
    double xd[N * C] = {0}, gd[N * H] = {0};
    double *od = qt_test_guarded(sizeof xd);
    QT_EXPECT_REFUSED(qt_cpu_gate_mul_fwd_f64(od, gd, xd, -2, C, H), "gate_mul_fwd_f64",
                      qt_test_untouched(od, sizeof xd));
    QT_EXPECT_OK(qt_cpu_gate_fwd(&mlp, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, C));
    QT_TEST_FREE_ALL(gate, hidden, gv, hv, dx, dw1, out, dctx, od);
}
END_TEST

static Suite *gate_suite(void) {
    Suite *s = suite_create("gate");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gate_fd);
    tcase_add_test(tc, test_gate_bias_sets_init);
    tcase_add_test(tc, test_gate_mul_fd);
    tcase_add_test(tc, test_gate_float_vs_double);
    tcase_add_test(tc, test_gate_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(gate_suite()); }

// test_attention.c: the attention core's CPU reference (kernels/attention.h:
// qt_cpu_attention_*) and the whole attention layer composed from the families
// (tests/attention_layer_ref.c).
//
// Gradient checks run in double against central finite differences (step 1e-6) of a scalar
// loss L = sum wout * output. Error norm, per gradient tensor:
//     err = max_i |analytic_i - fd_i| / max(max_i |fd_i|, 1e-30),  pass when err <= 1e-6
// (NaN fails). Backward outputs start from random values, which the test subtracts after the
// call: a backward that overwrites instead of adding fails.
// The attention layer exists in float only; it is checked against a double reference that
// this file composes from the `_f64` ops, and that reference is itself checked against
// finite differences. Float against double: outputs poisoned with NaN, odd sizes, per-element
// |float - double| <= 1e-5 (max |double| + |double|) unless stated.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention.h"
#include "kernels/gate.h"
#include "kernels/linear.h"
#include "attention_layer_ref.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6
#define FD_MAX_TENSORS 8

// ---- helpers --------------------------------------------------------------------------------

// A differentiable function of several double tensors, for finite differences.
typedef struct {
    double *x[FD_MAX_TENSORS]; // inputs (perturbed in place)
    size_t n[FD_MAX_TENSORS];
    const char *name[FD_MAX_TENSORS];
    int count;
    double (*loss)(void *ctx);
    void *ctx;
} fd_problem;

static void fd_add(fd_problem *p, const char *name, double *x, size_t n) {
    ck_assert_int_lt(p->count, FD_MAX_TENSORS);
    p->x[p->count] = x;
    p->n[p->count] = n;
    p->name[p->count] = name;
    p->count++;
}

// Checks analytic gradients an[k] (one per registered tensor, NULL to skip) against central
// differences; `what` names the case in a failure.
static void fd_check(fd_problem *p, double *const *an, const char *what) {
    for (int k = 0; k < p->count; k++) {
        if (!an[k]) continue;
        double *fd = qt_test_dalloc(p->n[k]);
        qt_test_fd_grad(p->loss, p->ctx, p->x[k], p->n[k], FD_H, fd);
        double err = qt_test_rel_err_f64(an[k], fd, p->n[k]);
        ck_assert_msg(err <= FD_TOL, "%s: d%s vs finite differences: err %g", what, p->name[k],
                      err);
        free(fd);
    }
}

// A gradient buffer with a random start, remembered so the test can subtract it.
typedef struct {
    double *g, *start;
    size_t n;
} acc_buf;
static acc_buf acc_new(size_t n, uint64_t seed) {
    acc_buf a = {qt_test_drand(n, -1.0, 1.0, seed), qt_test_dalloc(n), n};
    memcpy(a.start, a.g, n * sizeof(double));
    return a;
}
static double *acc_delta(acc_buf *a) {
    for (size_t i = 0; i < a->n; i++) a->g[i] -= a->start[i];
    return a->g;
}
static void acc_free(acc_buf *a) {
    free(a->g);
    free(a->start);
}

static const char *gate_name(qt_gate_kind k) {
    return k == QT_GATE_NONE     ? "none"
           : k == QT_GATE_LINEAR ? "linear"
           : k == QT_GATE_MLP    ? "mlp"
                                 : "all_heads";
}
static const char *sm_name(qt_softmax_kind k) {
    return k == QT_SOFTMAX_VANILLA ? "vanilla" : k == QT_SOFTMAX_CLIPPED ? "clipped" : "ncs";
}
static qt_softmax_params sm_params(qt_softmax_kind kind, int D) {
    qt_softmax_params p = {.kind = kind, .scale = (float)(1.0 / sqrt((double)D)), .gamma = 0.0f,
                           .zeta = 1.0f, .eta = 1.0f, .beta = 1.0f};
    if (kind == QT_SOFTMAX_CLIPPED) {
        p.gamma = -0.1f;
        p.zeta = 1.1f;
    } else if (kind == QT_SOFTMAX_NCS) {
        p.eta = 1.03f;
        p.beta = 1.0f;
    }
    return p;
}

// Gate parameter sizes: w1, b1, w2, b2.
static void gate_sizes(const qt_gate_shape *g, int C, size_t sz[4]) {
    size_t H = (size_t)g->n_heads, D = (size_t)C / H, nh = (size_t)g->n_hid;
    sz[0] = sz[1] = sz[2] = sz[3] = 0;
    if (g->kind == QT_GATE_LINEAR) {
        sz[0] = H * D;
        sz[1] = H;
    } else if (g->kind == QT_GATE_MLP) {
        sz[0] = H * nh * D;
        sz[1] = H * nh;
        sz[2] = H * nh;
        sz[3] = H;
    } else if (g->kind == QT_GATE_ALL_HEADS) {
        sz[0] = H * (size_t)C;
        sz[1] = H;
    }
}

// ---- attention core -------------------------------------------------------------------------

// lens for batch b: mode 0 causal (t + 1), mode 1 bidirectional padded to `len`, mode 2
// bidirectional full.
static void make_lens(int *lens, int B, int T, const int *mode, const int *padlen) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            lens[b * T + t] = mode[b] == 0 ? t + 1 : mode[b] == 1 ? padlen[b] : T;
}

typedef struct {
    const qt_softmax_params *prm;
    const int *lens;
    int B, T, C, H;
    double *qkv;
    const double *wout;
    double *ctx, *probs, *p;
} att_ctx;

static double att_loss(void *v) {
    att_ctx *c = v;
    QT_EXPECT_OK(qt_cpu_attention_fwd_f64(c->prm, c->ctx, c->probs, c->p, c->qkv, c->lens, c->B,
                                          c->T, c->C, c->H));
    return qt_test_ddot(c->ctx, c->wout, (size_t)c->B * c->T * c->C);
}

static void check_attention_fd(qt_softmax_kind kind, int B, int T, int C, int H, const int *mode,
                               const int *padlen, uint64_t seed) {
    qt_softmax_params prm = sm_params(kind, C / H);
    int *lens = malloc((size_t)B * T * sizeof(int));
    make_lens(lens, B, T, mode, padlen);
    size_t nq = (size_t)B * T * 3 * C, nc = (size_t)B * T * C, np = (size_t)B * H * T * T;
    att_ctx c = {&prm,
                 lens,
                 B,
                 T,
                 C,
                 H,
                 qt_test_drand(nq, -2, 2, seed),
                 qt_test_drand(nc, -1, 1, seed + 1),
                 qt_test_dalloc(nc),
                 qt_test_dalloc(np),
                 qt_test_dalloc(np)};
    att_loss(&c);
    acc_buf dqkv = acc_new(nq, seed + 2);
    double *scratch = qt_test_dalloc(np);
    QT_EXPECT_OK(qt_cpu_attention_bwd_f64(&prm, dqkv.g, scratch, c.wout, c.qkv, c.probs, c.p, lens,
                                          B, T, C, H));
    // masked entries of p and probs are exactly 0
    for (int bh = 0; bh < B * H; bh++)
        for (int t = 0; t < T; t++)
            for (int j = lens[(bh / H) * T + t]; j < T; j++) {
                size_t i = ((size_t)bh * T + t) * T + j;
                ck_assert_msg(c.p[i] == 0.0 && c.probs[i] == 0.0,
                              "attention_fwd_f64 %s: masked (%d, %d, %d) not 0", sm_name(kind), bh,
                              t, j);
            }
    fd_problem p = {.loss = att_loss, .ctx = &c};
    fd_add(&p, "qkv", c.qkv, nq);
    double *an[1] = {acc_delta(&dqkv)};
    char what[128];
    snprintf(what, sizeof what, "attention_bwd_f64 %s B %d T %d C %d H %d seed %llu",
             sm_name(kind), B, T, C, H, (unsigned long long)seed);
    fd_check(&p, an, what);
    free(lens);
    free(c.qkv);
    free((void *)c.wout);
    free(c.ctx);
    free(c.probs);
    free(c.p);
    free(scratch);
    acc_free(&dqkv);
}

START_TEST(test_attention_fd) {
    const int mode[2] = {0, 1}, pad[2] = {0, 3}; // batch 0 causal, batch 1 padded to 3 keys
    const int full[1] = {2}, none[1] = {0};
    for (int k = 0; k < 3; k++) {
        check_attention_fd((qt_softmax_kind)k, 2, 5, 8, 2, mode, pad, 200 + k);
        check_attention_fd((qt_softmax_kind)k, 1, 4, 6, 3, full, none, 210 + k);
    }
    // T > the row block (32): blocks with different key counts, causal and padded
    const int mode2[2] = {0, 1}, pad2[2] = {0, 35};
    check_attention_fd(QT_SOFTMAX_NCS, 2, 37, 4, 2, mode2, pad2, 220);
}
END_TEST

static void check_attention_float(qt_softmax_kind kind, int B, int T, int C, int H,
                                  const int *mode, const int *padlen, uint64_t seed) {
    qt_softmax_params prm = sm_params(kind, C / H);
    int *lens = malloc((size_t)B * T * sizeof(int));
    make_lens(lens, B, T, mode, padlen);
    size_t nq = (size_t)B * T * 3 * C, nc = (size_t)B * T * C, np = (size_t)B * H * T * T;
    double *qd = qt_test_drand(nq, -2, 2, seed), *dcd = qt_test_drand(nc, -1, 1, seed + 1);
    float *qf = qt_test_to_float(qd, nq), *dcf = qt_test_to_float(dcd, nc);
    double *cd = qt_test_dalloc(nc), *prd = qt_test_dalloc(np), *pd = qt_test_dalloc(np),
           *sd = qt_test_dalloc(np);
    float *cf = qt_test_falloc(nc), *prf = qt_test_falloc(np), *pf = qt_test_falloc(np),
          *sf = qt_test_falloc(np);
    qt_test_poison(cf, nc);
    qt_test_poison(prf, np);
    qt_test_poison(pf, np);
    qt_test_poison(sf, np);
    QT_EXPECT_OK(qt_cpu_attention_fwd(&prm, cf, prf, pf, qf, lens, B, T, C, H));
    QT_EXPECT_OK(qt_cpu_attention_fwd_f64(&prm, cd, prd, pd, qd, lens, B, T, C, H));
    double e1 = qt_test_float_vs_double(cf, cd, nc, 1e-5),
           e2 = qt_test_float_vs_double(prf, prd, np, 1e-5);
    double e3 = qt_test_float_vs_double(pf, pd, np, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0 && e3 <= 1.0,
                  "attention_fwd float/double %s B %d T %d C %d H %d: ctx %g probs %g p %g",
                  sm_name(kind), B, T, C, H, e1, e2, e3);
    double *dqd = qt_test_drand(nq, -1, 1, seed + 2);
    float *dqf = qt_test_to_float(dqd, nq);
    QT_EXPECT_OK(qt_cpu_attention_bwd(&prm, dqf, sf, dcf, qf, prf, pf, lens, B, T, C, H));
    QT_EXPECT_OK(qt_cpu_attention_bwd_f64(&prm, dqd, sd, dcd, qd, prd, pd, lens, B, T, C, H));
    double e = qt_test_float_vs_double(dqf, dqd, nq, 1e-5);
    ck_assert_msg(e <= 1.0, "attention_bwd float/double %s B %d T %d C %d H %d: %g",
                  sm_name(kind), B, T, C, H, e);
    free(lens);
    free(qd);
    free(dcd);
    free(qf);
    free(dcf);
    free(cd);
    free(prd);
    free(pd);
    free(sd);
    free(cf);
    free(prf);
    free(pf);
    free(sf);
    free(dqd);
    free(dqf);
}

START_TEST(test_attention_float_vs_double) {
    const int one[1] = {0}, onep[1] = {0};
    const int mode[3] = {0, 1, 2}, pad[3] = {0, 20, 0};
    for (int k = 0; k < 3; k++) {
        check_attention_float((qt_softmax_kind)k, 1, 1, 4, 1, one, onep, 230);
        check_attention_float((qt_softmax_kind)k, 3, 33, 12, 3, mode, pad, 231);
        check_attention_float((qt_softmax_kind)k, 3, 67, 20, 2, mode, pad, 232);
    }
}
END_TEST

// Shapes whose GEMMs the core cuts into pieces (more than 2^18 multiply-adds: T = 130, D = 80
// cuts columns of C, T = 520, D = 16 rows, each with A or B transposed or not): the forward
// against a direct double loop, the backward against a directional central difference (two
// forwards), and float against double.
static void naive_attention(const qt_softmax_params *prm, double *ctx, const double *qkv,
                            const int *lens, int B, int T, int C, int H) {
    const int D = C / H;
    double *row = qt_test_dalloc((size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const int n = lens[b * T + t];
                const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * D;
                double m = -INFINITY, sum = 0.0;
                for (int j = 0; j < n; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * D;
                    double s = 0.0;
                    for (int d = 0; d < D; d++) s += q[d] * k[d];
                    row[j] = prm->scale * s;
                    m = fmax(m, row[j]);
                }
                for (int j = 0; j < n; j++) sum += row[j] = exp(row[j] - m);
                double a = 1.0, c = 0.0; // NCS
                if (n > 1) {
                    a = (n * (double)prm->eta - prm->beta) / (n - 1);
                    c = ((double)prm->beta - prm->eta) / (n - 1);
                }
                for (int j = 0; j < n; j++) row[j] = fmin(fmax(a * row[j] / sum + c, 0.0), 1.0);
                double *o = ctx + ((size_t)b * T + t) * C + h * D;
                for (int d = 0; d < D; d++) {
                    double s = 0.0;
                    for (int j = 0; j < n; j++)
                        s += row[j] * qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * D + d];
                    o[d] = s;
                }
            }
    free(row);
}

// Batch 0 causal (mode0 0) or full-length bidirectional (mode0 2), batch 1 padded to padlen.
static void check_split_case(int B, int T, int C, int H, int mode0, int padlen, uint64_t seed) {
    const int mode[2] = {mode0, 1}, pad[2] = {0, padlen};
    qt_softmax_params prm = sm_params(QT_SOFTMAX_NCS, C / H);
    prm.eta = 1.2f; // clip at both ends on real rows
    prm.beta = 0.9f;
    int *lens = malloc((size_t)B * T * sizeof(int));
    make_lens(lens, B, T, mode, pad);
    size_t nq = (size_t)B * T * 3 * C, nc = (size_t)B * T * C, np = (size_t)B * H * T * T;
    att_ctx c = {&prm,
                 lens,
                 B,
                 T,
                 C,
                 H,
                 qt_test_drand(nq, -1.5, 1.5, seed),
                 qt_test_drand(nc, -1, 1, seed + 1),
                 qt_test_dalloc(nc),
                 qt_test_dalloc(np),
                 qt_test_dalloc(np)};
    double *want = qt_test_dalloc(nc);
    att_loss(&c);
    naive_attention(&prm, want, c.qkv, lens, B, T, C, H);
    double err = qt_test_rel_err_f64(c.ctx, want, nc);
    ck_assert_msg(err <= 1e-12, "attention_fwd_f64 B %d T %d C %d H %d vs direct loops: %g", B, T,
                  C, H, err);
    // backward: <dqkv, u> against (L(qkv + h u) - L(qkv - h u)) / 2h
    double *dqkv = qt_test_dalloc(nq), *scr = qt_test_dalloc(np),
           *u = qt_test_drand(nq, -1, 1, seed + 2);
    for (size_t i = 0; i < nq; i++) dqkv[i] = 0.0;
    QT_EXPECT_OK(
        qt_cpu_attention_bwd_f64(&prm, dqkv, scr, c.wout, c.qkv, c.probs, c.p, lens, B, T, C, H));
    double an = qt_test_ddot(dqkv, u, nq);
    double *x0 = qt_test_dalloc(nq);
    memcpy(x0, c.qkv, nq * sizeof(double));
    for (size_t i = 0; i < nq; i++) c.qkv[i] = x0[i] + FD_H * u[i];
    double lp = att_loss(&c);
    for (size_t i = 0; i < nq; i++) c.qkv[i] = x0[i] - FD_H * u[i];
    double lm = att_loss(&c);
    memcpy(c.qkv, x0, nq * sizeof(double));
    double fd = (lp - lm) / (2 * FD_H);
    ck_assert_msg(fabs(an - fd) <= FD_TOL * fabs(fd) && fabs(fd) > 1e-3,
                  "attention_bwd_f64 B %d T %d C %d H %d: directional %.12g, fd %.12g", B, T, C, H,
                  an, fd);
    free(lens);
    free(c.qkv);
    free((void *)c.wout);
    free(c.ctx);
    free(c.probs);
    free(c.p);
    free(want);
    free(dqkv);
    free(scr);
    free(u);
    free(x0);
    check_attention_float(QT_SOFTMAX_NCS, B, T, C, H, mode, pad, seed + 3);
}

START_TEST(test_attention_split_gemms) {
    check_split_case(2, 130, 160, 2, 0, 97, 240);
    check_split_case(2, 520, 32, 2, 2, 300, 250);
}
END_TEST

// ---- the whole attention layer ------------------------------------------------------------

typedef struct {
    int B, T, C, H;
    qt_softmax_params sm;
    qt_gate_shape gate;
    const int *lens;
    // parameters: qkv_w, qkv_b, proj_w, proj_b, gate w1, b1, w2, b2
    double *w[8];
    size_t wn[8];
    double *x;          // (B, T, C)
    const double *wout; // (B, T, C)
    // reference activations
    double *qkv, *p, *probs, *ctx, *gatev, *hidden, *gated, *out;
} layer_ref;

// The reference forward: the layer written out from the `_f64` ops.
static void ref_fwd(layer_ref *r) {
    int N = r->B * r->T, C = r->C;
    QT_EXPECT_OK(qt_cpu_linear_fwd_f64(r->qkv, r->x, r->w[0], r->w[1], N, C, 3 * C));
    QT_EXPECT_OK(qt_cpu_attention_fwd_f64(&r->sm, r->ctx, r->probs, r->p, r->qkv, r->lens, r->B,
                                          r->T, C, r->H));
    const double *in = r->ctx;
    if (r->gate.kind != QT_GATE_NONE) {
        QT_EXPECT_OK(qt_cpu_gate_fwd_f64(&r->gate, r->gatev, r->hidden, r->x, r->w[4], r->w[5],
                                         r->w[6], r->w[7], N, C));
        QT_EXPECT_OK(qt_cpu_gate_mul_fwd_f64(r->gated, r->gatev, r->ctx, N, C, r->H));
        in = r->gated;
    }
    QT_EXPECT_OK(qt_cpu_linear_fwd_f64(r->out, in, r->w[2], r->w[3], N, C, C));
}

static double ref_loss(void *v) {
    layer_ref *r = v;
    ref_fwd(r);
    return qt_test_ddot(r->out, r->wout, (size_t)r->B * r->T * r->C);
}

// The reference backward: dx (N, C) and dw[8] (zeroed by the caller) from dout = wout.
static void ref_bwd(layer_ref *r, double *dx, double **dw) {
    int N = r->B * r->T, C = r->C, H = r->H;
    size_t nc = (size_t)N * C;
    double *din = calloc(nc, sizeof(double)), *dctx = calloc(nc, sizeof(double));
    double *dqkv = calloc(3 * nc, sizeof(double));
    double *scr = qt_test_dalloc((size_t)r->B * H * r->T * r->T);
    int gated = r->gate.kind != QT_GATE_NONE;
    QT_EXPECT_OK(qt_cpu_linear_bwd_f64(din, dw[2], dw[3], r->wout, gated ? r->gated : r->ctx,
                                       r->w[2], N, C, C));
    if (gated) {
        double *dg = calloc((size_t)N * H, sizeof(double));
        QT_EXPECT_OK(qt_cpu_gate_mul_bwd_f64(dctx, dg, din, r->gatev, r->ctx, N, C, H));
        QT_EXPECT_OK(qt_cpu_gate_bwd_f64(&r->gate, dx, dw[4], dw[5], r->wn[6] ? dw[6] : NULL,
                                         r->wn[7] ? dw[7] : NULL, dg, r->gatev, r->hidden, r->x,
                                         r->w[4], r->w[6], N, C));
        free(dg);
    } else {
        memcpy(dctx, din, nc * sizeof(double));
    }
    QT_EXPECT_OK(qt_cpu_attention_bwd_f64(&r->sm, dqkv, scr, dctx, r->qkv, r->probs, r->p, r->lens,
                                          r->B, r->T, C, H));
    QT_EXPECT_OK(qt_cpu_linear_bwd_f64(dx, dw[0], dw[1], dqkv, r->x, r->w[0], N, C, 3 * C));
    free(din);
    free(dctx);
    free(dqkv);
    free(scr);
}

static void check_layer(qt_gate_kind gk, qt_softmax_kind sk, int B, int T, int C, int H,
                        int do_fd, uint64_t seed) {
    layer_ref r = {.B = B, .T = T, .C = C, .H = H, .sm = sm_params(sk, C / H),
                   .gate = {gk, H, 3}};
    qt_attention_layer_shape shape = {B, T, C, H, r.sm, r.gate};
    size_t acts[7];
    qt_attention_layer_act_sizes(&shape, acts);
    size_t gsz[4];
    gate_sizes(&r.gate, C, gsz);
    const size_t N = (size_t)B * T, nc = N * C;
    ck_assert_uint_eq(acts[0], 3 * nc);
    ck_assert_uint_eq(acts[1], (size_t)B * H * T * T);
    ck_assert_uint_eq(acts[2], (size_t)B * H * T * T);
    ck_assert_uint_eq(acts[3], nc);
    ck_assert_uint_eq(acts[4], gk == QT_GATE_NONE ? 0 : N * H);
    ck_assert_uint_eq(acts[5], gk == QT_GATE_MLP ? N * H * 3 : 0);
    ck_assert_uint_eq(acts[6], gk == QT_GATE_NONE ? 0 : nc);
    int *lens = malloc(N * sizeof(int));
    for (int b = 0; b < B; b++) // batch 0 causal, then padded bidirectional rows
        for (int t = 0; t < T; t++) lens[b * T + t] = b == 0 ? t + 1 : T - (b % T);
    r.lens = lens;
    size_t wn[8] = {3 * (size_t)C * C, 3 * (size_t)C, (size_t)C * C, (size_t)C,
                    gsz[0],            gsz[1],        gsz[2],        gsz[3]};
    float *wf[8];
    for (int k = 0; k < 8; k++) {
        r.wn[k] = wn[k];
        r.w[k] = wn[k] ? qt_test_drand(wn[k], -0.6, 0.6, seed + k) : NULL;
        wf[k] = wn[k] ? qt_test_to_float(r.w[k], wn[k]) : NULL;
    }
    r.x = qt_test_drand(nc, -1.5, 1.5, seed + 10);
    float *xf = qt_test_to_float(r.x, nc);
    double *wout = qt_test_drand(nc, -1, 1, seed + 11);
    float *doutf = qt_test_to_float(wout, nc);
    r.wout = wout;
    r.qkv = qt_test_dalloc(acts[0]);
    r.p = qt_test_dalloc(acts[1]);
    r.probs = qt_test_dalloc(acts[2]);
    r.ctx = qt_test_dalloc(acts[3]);
    r.gatev = qt_test_dalloc(acts[4]);
    r.hidden = qt_test_dalloc(acts[5]);
    r.gated = qt_test_dalloc(acts[6]);
    r.out = qt_test_dalloc(nc);
    ref_fwd(&r);
    double *dx = calloc(nc, sizeof(double)), *dw[8];
    for (int k = 0; k < 8; k++) dw[k] = calloc(wn[k] ? wn[k] : 1, sizeof(double));
    ref_bwd(&r, dx, dw);
    char what[128];
    snprintf(what, sizeof what, "attention layer (double reference) gate %s softmax %s B %d T %d",
             gate_name(gk), sm_name(sk), B, T);
    if (do_fd) {
        fd_problem p = {.loss = ref_loss, .ctx = &r};
        double *an[FD_MAX_TENSORS];
        const char *names[8] = {"qkv_w", "qkv_b", "proj_w", "proj_b",
                                "gate_w1", "gate_b1", "gate_w2", "gate_b2"};
        an[0] = dx;
        fd_add(&p, "x", r.x, nc);
        for (int k = 0; k < 7; k++) { // FD_MAX_TENSORS = 8: gate_b2 is checked below instead
            if (!wn[k]) continue;
            an[p.count] = dw[k];
            fd_add(&p, names[k], r.w[k], wn[k]);
        }
        fd_check(&p, an, what);
        if (wn[7]) {
            fd_problem q = {.loss = ref_loss, .ctx = &r};
            fd_add(&q, "gate_b2", r.w[7], wn[7]);
            double *an2[1] = {dw[7]};
            fd_check(&q, an2, what);
        }
        ref_fwd(&r); // restore the activations of the unperturbed point
    }

    // the float layer against the reference
    qt_attention_layer_params wp = {wf[0], wf[1], wf[2], wf[3], wf[4], wf[5], wf[6], wf[7]};
    qt_attention_layer_acts a;
    float *af[7];
    for (int k = 0; k < 7; k++) {
        af[k] = acts[k] ? qt_test_falloc(acts[k]) : NULL;
        if (af[k]) qt_test_poison(af[k], acts[k]);
    }
    a.qkv = af[0];
    a.p = af[1];
    a.probs = af[2];
    a.ctx = af[3];
    a.gate = af[4];
    a.hidden = af[5];
    a.gated = af[6];
    float *outf = qt_test_falloc(nc);
    qt_test_poison(outf, nc);
    QT_EXPECT_OK(qt_cpu_attention_layer_fwd(&shape, &wp, &a, outf, xf, lens));
    double e = qt_test_float_vs_double(outf, r.out, nc, 1e-5);
    ck_assert_msg(e <= 1.0, "%s: float forward vs double: %g", what, e);
    // backward onto random starts (accumulate), scratch poisoned
    double *dxs = qt_test_drand(nc, -1, 1, seed + 20);
    float *dxf = qt_test_to_float(dxs, nc);
    float *gf[8];
    double *gs[8];
    for (int k = 0; k < 8; k++) {
        gs[k] = wn[k] ? qt_test_drand(wn[k], -1, 1, seed + 21 + k) : NULL;
        gf[k] = wn[k] ? qt_test_to_float(gs[k], wn[k]) : NULL;
    }
    qt_attention_layer_grads gr = {gf[0], gf[1], gf[2], gf[3], gf[4], gf[5], gf[6], gf[7]};
    size_t nscr = (size_t)B * H * T * T + 4 * nc;
    float *scr = qt_test_falloc(nscr);
    qt_test_poison(scr, nscr);
    QT_EXPECT_OK(qt_cpu_attention_layer_bwd(&shape, &wp, &a, &gr, dxf, scr, doutf, xf, lens));
    for (size_t i = 0; i < nc; i++) dxs[i] += dx[i];
    e = qt_test_float_vs_double(dxf, dxs, nc, 1e-5);
    ck_assert_msg(e <= 1.0, "%s: float dx vs double: %g", what, e);
    for (int k = 0; k < 8; k++) {
        if (!wn[k]) continue;
        for (size_t i = 0; i < wn[k]; i++) gs[k][i] += dw[k][i];
        e = qt_test_float_vs_double(gf[k], gs[k], wn[k], 1e-5);
        ck_assert_msg(e <= 1.0, "%s: float grad %d vs double: %g", what, k, e);
    }
    free(lens);
    for (int k = 0; k < 8; k++) {
        free(r.w[k]);
        free(wf[k]);
        free(dw[k]);
        free(gs[k]);
        free(gf[k]);
    }
    for (int k = 0; k < 7; k++) free(af[k]);
    free(r.x);
    free(xf);
    free(wout);
    free(doutf);
    free(r.qkv);
    free(r.p);
    free(r.probs);
    free(r.ctx);
    free(r.gatev);
    free(r.hidden);
    free(r.gated);
    free(r.out);
    free(dx);
    free(outf);
    free(dxs);
    free(dxf);
    free(scr);
}

START_TEST(test_attention_layer) {
    for (int g = QT_GATE_NONE; g <= QT_GATE_ALL_HEADS; g++)
        for (int s = 0; s < 3; s++) {
            check_layer((qt_gate_kind)g, (qt_softmax_kind)s, 2, 5, 8, 2, 1, 300 + 10 * g + s);
            check_layer((qt_gate_kind)g, (qt_softmax_kind)s, 3, 33, 12, 3, 0, 400 + 10 * g + s);
        }
}
END_TEST

// The error contract (kernels/attention.h): bad softmax params, a shape whose C is not a
// multiple of H, a length outside [1, T] or a NULL tensor is refused, naming the op, before
// ctx, probs, p (forward) or dqkv, scratch (backward) is written.
START_TEST(test_attention_bad_args) {
    enum { B = 1, T = 3, C = 4, H = 2 };
    const size_t n_ctx = (size_t)B * T * C, n_tt = (size_t)B * H * T * T, n_qkv = 3 * n_ctx;
    float *qkv = qt_test_falloc(n_qkv), *dctx = qt_test_falloc(n_ctx);
    qt_test_fill_uniform(qkv, n_qkv, -1.0f, 1.0f, 71);
    qt_test_fill_uniform(dctx, n_ctx, -1.0f, 1.0f, 72);
    float *ctx = qt_test_guarded(n_ctx * 4), *probs = qt_test_guarded(n_tt * 4),
          *p = qt_test_guarded(n_tt * 4);
    int lens[B * T] = {1, 2, 3};
    const qt_softmax_params ok = sm_params(QT_SOFTMAX_CLIPPED, C / H);
    qt_softmax_params bad = ok;
#define FWD(prm, lens_, h) qt_cpu_attention_fwd(prm, ctx, probs, p, qkv, lens_, B, T, C, h)
#define UNTOUCHED                                                                                  \
    (qt_test_untouched(ctx, n_ctx * 4) && qt_test_untouched(probs, n_tt * 4) &&                    \
     qt_test_untouched(p, n_tt * 4))
    QT_EXPECT_REFUSED(FWD(&ok, lens, 3), "attention_fwd", UNTOUCHED); // C % H != 0
    QT_EXPECT_REFUSED(FWD(NULL, lens, H), "attention_fwd", UNTOUCHED);
    bad.kind = (qt_softmax_kind)7;
    QT_EXPECT_REFUSED(FWD(&bad, lens, H), "attention_fwd", UNTOUCHED);
    bad = ok;
    bad.gamma = 0.1f; // clipped needs gamma <= 0
    QT_EXPECT_REFUSED(FWD(&bad, lens, H), "attention_fwd", UNTOUCHED);
    bad = sm_params(QT_SOFTMAX_NCS, C / H);
    bad.beta = 2.0f * bad.eta; // NCS needs beta < 2 eta
    QT_EXPECT_REFUSED(FWD(&bad, lens, H), "attention_fwd", UNTOUCHED);
    bad = ok;
    bad.scale = NAN;
    QT_EXPECT_REFUSED(FWD(&bad, lens, H), "attention_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(FWD(&ok, NULL, H), "attention_fwd", UNTOUCHED);
    lens[2] = T + 1;
    QT_EXPECT_REFUSED(FWD(&ok, lens, H), "attention_fwd", UNTOUCHED);
    ck_assert_msg(strstr(qt_last_error(), "lens[2] = 4"), "%s", qt_last_error());
    lens[2] = 0;
    QT_EXPECT_REFUSED(FWD(&ok, lens, H), "attention_fwd", UNTOUCHED);
    lens[2] = T;
    QT_EXPECT_REFUSED(qt_cpu_attention_fwd(&ok, ctx, probs, p, NULL, lens, B, T, C, H),
                      "attention_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_attention_fwd(&ok, ctx, probs, p, qkv, lens, -1, T, C, H),
                      "attention_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_attention_fwd(&ok, ctx, probs, p, qkv, lens, B, 0, C, H),
                      "attention_fwd", UNTOUCHED);
#undef UNTOUCHED
    // the backward, from a valid forward
    float *pr = qt_test_falloc(n_tt), *pp = qt_test_falloc(n_tt), *cx = qt_test_falloc(n_ctx);
    QT_EXPECT_OK(qt_cpu_attention_fwd(&ok, cx, pr, pp, qkv, lens, B, T, C, H));
    float *dqkv = qt_test_guarded(n_qkv * 4), *scratch = qt_test_guarded(n_tt * 4);
#define UNTOUCHED (qt_test_untouched(dqkv, n_qkv * 4) && qt_test_untouched(scratch, n_tt * 4))
    lens[1] = -1;
    QT_EXPECT_REFUSED(qt_cpu_attention_bwd(&ok, dqkv, scratch, dctx, qkv, pr, pp, lens, B, T, C, H),
                      "attention_bwd", UNTOUCHED);
    lens[1] = 2;
    QT_EXPECT_REFUSED(qt_cpu_attention_bwd(&ok, dqkv, scratch, NULL, qkv, pr, pp, lens, B, T, C, H),
                      "attention_bwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_attention_bwd(&ok, dqkv, scratch, dctx, qkv, pr, pp, lens, B, T, 5, H),
                      "attention_bwd", UNTOUCHED);
#undef UNTOUCHED
#undef FWD
    // the double twin names itself
    double *qd = qt_test_dalloc(n_qkv), *cd = qt_test_guarded(n_ctx * 8),
           *prd = qt_test_guarded(n_tt * 8), *pd = qt_test_guarded(n_tt * 8);
    for (size_t i = 0; i < n_qkv; i++)
        qd[i] = qkv[i];
    lens[0] = 0;
    QT_EXPECT_REFUSED(qt_cpu_attention_fwd_f64(&ok, cd, prd, pd, qd, lens, B, T, C, H),
                      "attention_fwd_f64",
                      qt_test_untouched(cd, n_ctx * 8) && qt_test_untouched(prd, n_tt * 8) &&
                          qt_test_untouched(pd, n_tt * 8));
    QT_EXPECT_OK(qt_cpu_attention_fwd(&ok, NULL, NULL, NULL, NULL, NULL, 0, T, C, H));
    QT_TEST_FREE_ALL(qkv, dctx, ctx, probs, p, pr, pp, cx, dqkv, scratch, qd, cd, prd, pd);
}
END_TEST

static Suite *attention_suite(void) {
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_attention_fd);
    tcase_add_test(tc, test_attention_float_vs_double);
    tcase_add_test(tc, test_attention_split_gemms);
    tcase_add_test(tc, test_attention_layer);
    tcase_add_test(tc, test_attention_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(attention_suite()); }

// test_attention.c: the attention core's CPU references (kernels/attention.h:
// qt_cpu_attention_* and the fused qt_cpu_attention_flash_*) and the whole attention layer
// composed from the families (tests/attention_layer_ref.c).
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
#include "kernels/softmax_clip.h"
#include "base/softmax_clip_math.h"
#include "attention_layer_ref.h"
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
    qt_test_acc dqkv = qt_test_acc_new(nq, seed + 2);
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
    qt_test_fd_problem p = {.loss = att_loss, .ctx = &c};
    qt_test_fd_add(&p, "qkv", c.qkv, nq);
    double *an[1] = {qt_test_acc_delta(&dqkv)};
    char what[128];
    snprintf(what, sizeof what, "attention_bwd_f64 %s B %d T %d C %d H %d seed %llu",
             sm_name(kind), B, T, C, H, (unsigned long long)seed);
    qt_test_fd_check(&p, an, FD_H, FD_TOL, what);
    free(lens);
    free(c.qkv);
    free((void *)c.wout);
    free(c.ctx);
    free(c.probs);
    free(c.p);
    free(scratch);
    qt_test_acc_free(&dqkv);
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
    qt_gate_param_sizes(&r.gate, C, gsz);
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
        qt_test_fd_problem p = {.loss = ref_loss, .ctx = &r};
        double *an[QT_TEST_FD_MAX_TENSORS];
        const char *names[8] = {"qkv_w", "qkv_b", "proj_w", "proj_b",
                                "gate_w1", "gate_b1", "gate_w2", "gate_b2"};
        an[0] = dx;
        qt_test_fd_add(&p, "x", r.x, nc);
        for (int k = 0; k < 7; k++) { // QT_TEST_FD_MAX_TENSORS = 8: gate_b2 is checked below instead
            if (!wn[k]) continue;
            an[p.count] = dw[k];
            qt_test_fd_add(&p, names[k], r.w[k], wn[k]);
        }
        qt_test_fd_check(&p, an, FD_H, FD_TOL, what);
        if (wn[7]) {
            qt_test_fd_problem q = {.loss = ref_loss, .ctx = &r};
            qt_test_fd_add(&q, "gate_b2", r.w[7], wn[7]);
            double *an2[1] = {dw[7]};
            qt_test_fd_check(&q, an2, FD_H, FD_TOL, what);
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

// ---- the fused (flash) attention ----------------------------------------------------------
//
// qt_cpu_attention_flash_{fwd,bwd}[_f64] (kernels/attention.h, FLASH_CLIP.md) against the
// composed references in double: the materialized core (qt_cpu_attention_{fwd,bwd}_f64) for
// the plain softmax variants, scores + qt_cpu_softmax_clip_sink_{fwd,bwd}_f64 + P V for the
// sink variants, then the gate family (gate_mul, with H = C for a per-channel gate). Inputs
// are rounded to float first, so the float op and the double references see the same values.
// Tolerances, per tensor (all outputs poisoned with NaN first; gradients accumulated onto a
// random start that is subtracted, so an op that overwrites fails):
//   double flash vs double reference: max |x - ref| / max |ref| <= 1e-11 (the two compute P
//     as exp(S - L) and as exp(s - m) / l, which differ by a few ulps);
//   float flash vs double reference: qt_test_float_vs_double <= 1 at rtol 5e-6: float rounding
//     of sums over up to 257 keys and 128 channels; the largest measured over these cases is
//     0.23 of the bound (A at T = 257, D = 128), gradients 0.03, dsink 0.05
//     (QT_FLASH_VERBOSE=1 prints every case's errors).

static const char *sink_name(qt_sink_kind k) {
    return k == QT_SINK_NONE ? "none" : k == QT_SINK_ZERO ? "off_by_one" : "learned";
}
static const char *agate_name(qt_attn_gate g) {
    return g == QT_ATTN_GATE_NONE ? "none" : g == QT_ATTN_GATE_HEAD ? "head" : "channel";
}

// The variants of the flash cases: clipped gamma -0.1, zeta 1.1 and NCS eta 1.2, beta 0.5 (the
// FLASH_CLIP.md settings that clip random rows at both ends).
static qt_softmax_params flash_sm(qt_softmax_kind kind, int D) {
    qt_softmax_params p = sm_params(kind, D);
    if (kind == QT_SOFTMAX_NCS) {
        p.eta = 1.2f;
        p.beta = 0.5f;
    }
    return p;
}

typedef struct {
    qt_attn_params ap;
    int B, T, C, H;
    int *lens;    // (B, T): batch 0 causal, batch b >= 1 bidirectional padded
    double *qkv;  // (B, T, 3C)
    double *gate; // (N, G): G = H per head, C per channel (NULL ungated)
    double *sink; // (H) learned logits (NULL otherwise)
    double *dout; // (B, T, C)
    float *qkvf, *gatef, *sinkf, *doutf;
    size_t nq, nc, ng, nl;
    char what[200];
} fcase;

static size_t fcase_gate_cols(const fcase *f) {
    return f->ap.gate == QT_ATTN_GATE_HEAD      ? (size_t)f->H
           : f->ap.gate == QT_ATTN_GATE_CHANNEL ? (size_t)f->C
                                                : 0;
}

// A case: q of head h scaled by 1, 5, 0.3, ... (soft and peaked rows), gates in (0.05, 0.95),
// sink logits in [-1, 1]; batch b >= 1 pads to max(1, T - b T / 3) keys.
static fcase fcase_new(qt_softmax_kind sk, qt_sink_kind sink, qt_attn_gate gm, int B, int T, int D,
                       int H, int br, int bc, uint64_t seed) {
    fcase f = {.ap = {.sm = flash_sm(sk, D), .sink = sink, .gate = gm, .br = br, .bc = bc},
               .B = B,
               .T = T,
               .C = D * H,
               .H = H};
    const int C = f.C;
    f.lens = malloc((size_t)B * T * sizeof(int));
    for (int b = 0; b < B; b++) {
        const int pad = T - b * T / 3 > 0 ? T - b * T / 3 : 1;
        for (int t = 0; t < T; t++)
            f.lens[b * T + t] = b == 0 ? t + 1 : pad;
    }
    f.nq = (size_t)B * T * 3 * C;
    f.nc = (size_t)B * T * C;
    f.qkv = qt_test_drand(f.nq, -1, 1, seed);
    const double head_scale[3] = {1.0, 5.0, 0.3};
    for (size_t n = 0; n < (size_t)B * T; n++)
        for (int c = 0; c < C; c++)
            f.qkv[n * 3 * C + c] *= head_scale[(c / D) % 3];
    f.qkvf = qt_test_to_float(f.qkv, f.nq);
    f.dout = qt_test_drand(f.nc, -1, 1, seed + 1);
    f.doutf = qt_test_to_float(f.dout, f.nc);
    f.ng = (size_t)B * T * fcase_gate_cols(&f);
    if (f.ng) {
        f.gate = qt_test_drand(f.ng, 0.05, 0.95, seed + 2);
        f.gatef = qt_test_to_float(f.gate, f.ng);
    }
    f.nl = sink == QT_SINK_LEARNED ? (size_t)H : 0;
    if (f.nl) {
        f.sink = qt_test_drand(f.nl, -1, 1, seed + 3);
        f.sinkf = qt_test_to_float(f.sink, f.nl);
    }
    snprintf(f.what, sizeof f.what,
             "flash softmax %s sink %s gate %s B %d T %d D %d H %d tiles %dx%d seed %llu",
             sm_name(sk), sink_name(sink), agate_name(gm), B, T, D, H, br, bc,
             (unsigned long long)seed);
    return f;
}

static void fcase_free(fcase *f) {
    QT_TEST_FREE_ALL(f->lens, f->qkv, f->gate, f->sink, f->dout, f->qkvf, f->gatef, f->sinkf,
                     f->doutf);
}

// Raw scores (B, H, T, T) = q k^T per head (every column; the softmax masks), and the per-row
// lengths (B, H, T) of the softmax_clip family.
static void ref_scores(const fcase *f, double *scores, int *rlens) {
    const int B = f->B, T = f->T, C = f->C, H = f->H, D = C / H;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const double *q = f->qkv + ((size_t)b * T + t) * 3 * C + h * D;
                rlens[((size_t)b * H + h) * T + t] = f->lens[b * T + t];
                for (int j = 0; j < T; j++) {
                    const double *k = f->qkv + ((size_t)b * T + j) * 3 * C + C + h * D;
                    double s = 0.0;
                    for (int d = 0; d < D; d++)
                        s += q[d] * k[d];
                    scores[(((size_t)b * H + h) * T + t) * T + j] = s;
                }
            }
}

// The reference forward in double: A (B, T, C), O (B, T, C), and the probs, p (B, H, T, T) its
// backward reads.
static void ref_flash_fwd(const fcase *f, double *A, double *O, double *probs, double *p) {
    const int B = f->B, T = f->T, C = f->C, H = f->H, D = C / H, N = B * T;
    if (f->ap.sink == QT_SINK_NONE) {
        QT_EXPECT_OK(qt_cpu_attention_fwd_f64(&f->ap.sm, A, probs, p, f->qkv, f->lens, B, T, C, H));
    } else {
        double *scores = qt_test_dalloc((size_t)B * H * T * T);
        int *rlens = malloc((size_t)B * H * T * sizeof(int));
        ref_scores(f, scores, rlens);
        QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd_f64(&f->ap.sm, f->ap.sink, probs, p, scores,
                                                      rlens, f->sink, B * H * T, T, H, T));
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int t = 0; t < T; t++) {
                    double *o = A + ((size_t)b * T + t) * C + h * D;
                    const double *pr = probs + (((size_t)b * H + h) * T + t) * T;
                    for (int d = 0; d < D; d++)
                        o[d] = 0.0;
                    for (int j = 0; j < T; j++) {
                        const double *v = f->qkv + ((size_t)b * T + j) * 3 * C + 2 * C + h * D;
                        for (int d = 0; d < D; d++)
                            o[d] += pr[j] * v[d];
                    }
                }
        free(scores);
        free(rlens);
    }
    if (f->ap.gate == QT_ATTN_GATE_NONE)
        memcpy(O, A, f->nc * sizeof(double));
    else
        QT_EXPECT_OK(qt_cpu_gate_mul_fwd_f64(O, f->gate, A, N, C, (int)fcase_gate_cols(f)));
}

// The reference backward from dout: dqkv, dgate, dsink += (each zeroed by the caller).
static void ref_flash_bwd(const fcase *f, const double *A, const double *probs, const double *p,
                          double *dqkv, double *dgate, double *dsink) {
    const int B = f->B, T = f->T, C = f->C, H = f->H, D = C / H, N = B * T;
    double *dA = calloc(f->nc, sizeof(double));
    if (f->ap.gate == QT_ATTN_GATE_NONE)
        memcpy(dA, f->dout, f->nc * sizeof(double));
    else
        QT_EXPECT_OK(
            qt_cpu_gate_mul_bwd_f64(dA, dgate, f->dout, f->gate, A, N, C, (int)fcase_gate_cols(f)));
    const size_t tt = (size_t)B * H * T * T;
    if (f->ap.sink == QT_SINK_NONE) {
        double *scr = qt_test_dalloc(tt);
        QT_EXPECT_OK(qt_cpu_attention_bwd_f64(&f->ap.sm, dqkv, scr, dA, f->qkv, probs, p, f->lens,
                                              B, T, C, H));
        free(scr);
        free(dA);
        return;
    }
    double *dprobs = qt_test_dalloc(tt), *dscores = calloc(tt, sizeof(double));
    int *rlens = malloc((size_t)B * H * T * sizeof(int));
    for (int r = 0; r < B * H * T; r++)
        rlens[r] = f->lens[(r / (H * T)) * T + r % T];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const double *da = dA + ((size_t)b * T + t) * C + h * D;
                const size_t row = (((size_t)b * H + h) * T + t) * T;
                for (int j = 0; j < T; j++) {
                    const size_t vj = ((size_t)b * T + j) * 3 * C + 2 * C + h * D;
                    double s = 0.0;
                    for (int d = 0; d < D; d++) {
                        s += da[d] * f->qkv[vj + d];
                        dqkv[vj + d] += probs[row + j] * da[d]; // dV += P^T dA
                    }
                    dprobs[row + j] = s;
                }
            }
    QT_EXPECT_OK(qt_cpu_softmax_clip_sink_bwd_f64(&f->ap.sm, f->ap.sink, dscores, dsink, dprobs, p,
                                                  rlens, B * H * T, T, H, T));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const size_t qt = ((size_t)b * T + t) * 3 * C + h * D;
                const size_t row = (((size_t)b * H + h) * T + t) * T;
                for (int j = 0; j < T; j++) {
                    const size_t kj = ((size_t)b * T + j) * 3 * C + C + h * D;
                    const double ds = dscores[row + j];
                    for (int d = 0; d < D; d++) {
                        dqkv[qt + d] += ds * f->qkv[kj + d];
                        dqkv[kj + d] += ds * f->qkv[qt + d];
                    }
                }
            }
    QT_TEST_FREE_ALL(dA, dprobs, dscores, rlens);
}

// The flash op's outputs and gradients for one case, in double or float (as double arrays).
typedef struct {
    double *O, *A, *lse, *R;      // forward
    double *dqkv, *dgate, *dsink; // gradients (the accumulated start removed)
    int64_t *nzero;               // (B, H) attended probabilities exactly 0
} fresult;

static void fresult_free(fresult *r) {
    QT_TEST_FREE_ALL(r->O, r->A, r->lse, r->R, r->dqkv, r->dgate, r->dsink, r->nzero);
}

// Runs the double flash op; R_fake (NULL: the forward's R) replaces R in the backward.
static fresult run_flash_f64(const fcase *f, const double *R_fake) {
    const int B = f->B, T = f->T, C = f->C, H = f->H;
    fresult r = {0};
    const size_t nl = (size_t)B * H * T;
    r.O = qt_test_dalloc(f->nc);
    r.A = qt_test_dalloc(f->nc);
    r.lse = qt_test_dalloc(nl);
    r.R = qt_test_dalloc(f->nc);
    r.nzero = malloc((size_t)B * H * sizeof(int64_t));
    memset(r.nzero, 0xA5, (size_t)B * H * sizeof(int64_t));
    for (size_t i = 0; i < f->nc; i++)
        r.O[i] = r.A[i] = r.R[i] = NAN;
    for (size_t i = 0; i < nl; i++)
        r.lse[i] = NAN;
    const size_t wsb = qt_cpu_attention_flash_ws_bytes_f64(&f->ap, B, T, C, H, 2);
    double *ws = qt_test_dalloc(wsb / sizeof(double));
    for (size_t i = 0; i < wsb / sizeof(double); i++)
        ws[i] = NAN;
    const int gated = f->ap.gate != QT_ATTN_GATE_NONE;
    double *R = f->ap.sm.kind == QT_SOFTMAX_VANILLA ? NULL : r.R;
    QT_EXPECT_OK(qt_cpu_attention_flash_fwd_f64(&f->ap, gated ? r.O : NULL, r.A, r.lse, R, r.nzero,
                                                f->qkv, f->gate, f->sink, f->lens, B, T, C, H, ws,
                                                wsb));
    if (!gated) memcpy(r.O, r.A, f->nc * sizeof(double));
    qt_test_acc dq = qt_test_acc_new(f->nq, 901), dg = qt_test_acc_new(f->ng ? f->ng : 1, 902),
            ds = qt_test_acc_new(f->nl ? f->nl : 1, 903);
    for (size_t i = 0; i < wsb / sizeof(double); i++)
        ws[i] = NAN;
    QT_EXPECT_OK(qt_cpu_attention_flash_bwd_f64(
        &f->ap, dq.g, f->ng ? dg.g : NULL, f->nl ? ds.g : NULL, f->dout, f->qkv, r.A, r.lse,
        R_fake ? R_fake : R, f->gate, f->sink, f->lens, B, T, C, H, ws, wsb));
    r.dqkv = qt_test_dcopy(qt_test_acc_delta(&dq), f->nq);
    r.dgate = qt_test_dcopy(qt_test_acc_delta(&dg), f->ng ? f->ng : 1);
    r.dsink = qt_test_dcopy(qt_test_acc_delta(&ds), f->nl ? f->nl : 1);
    qt_test_acc_free(&dq);
    qt_test_acc_free(&dg);
    qt_test_acc_free(&ds);
    free(ws);
    return r;
}

// Runs the float flash op (threads: the workspace's) and widens the results.
static fresult run_flash_f32(const fcase *f, int threads) {
    const int B = f->B, T = f->T, C = f->C, H = f->H;
    const size_t nl = (size_t)B * H * T;
    float *O = qt_test_falloc(f->nc), *A = qt_test_falloc(f->nc), *lse = qt_test_falloc(nl),
          *R = qt_test_falloc(f->nc);
    qt_test_poison(O, f->nc);
    qt_test_poison(A, f->nc);
    qt_test_poison(lse, nl);
    qt_test_poison(R, f->nc);
    int64_t *nz = malloc((size_t)B * H * sizeof(int64_t));
    memset(nz, 0xA5, (size_t)B * H * sizeof(int64_t));
    const size_t wsb = qt_cpu_attention_flash_ws_bytes(&f->ap, B, T, C, H, threads);
    float *ws = qt_test_falloc(wsb / sizeof(float));
    qt_test_poison(ws, wsb / sizeof(float));
    const int gated = f->ap.gate != QT_ATTN_GATE_NONE;
    float *Ruse = f->ap.sm.kind == QT_SOFTMAX_VANILLA ? NULL : R;
    QT_EXPECT_OK(qt_cpu_attention_flash_fwd(&f->ap, gated ? O : NULL, A, lse, Ruse, nz, f->qkvf,
                                            f->gatef, f->sinkf, f->lens, B, T, C, H, ws, wsb));
    if (!gated) memcpy(O, A, f->nc * sizeof(float));
    // gradients onto random starts
    double *sq = qt_test_drand(f->nq, -1, 1, 911), *sg = qt_test_drand(f->ng + 1, -1, 1, 912),
           *ss = qt_test_drand(f->nl + 1, -1, 1, 913);
    float *dq = qt_test_to_float(sq, f->nq), *dg = qt_test_to_float(sg, f->ng + 1),
          *dsk = qt_test_to_float(ss, f->nl + 1);
    qt_test_poison(ws, wsb / sizeof(float));
    QT_EXPECT_OK(qt_cpu_attention_flash_bwd(&f->ap, dq, f->ng ? dg : NULL, f->nl ? dsk : NULL,
                                            f->doutf, f->qkvf, A, lse, Ruse, f->gatef, f->sinkf,
                                            f->lens, B, T, C, H, ws, wsb));
    fresult r = {qt_test_dalloc(f->nc),     qt_test_dalloc(f->nc),
                 qt_test_dalloc(nl),        qt_test_dalloc(f->nc),
                 qt_test_dalloc(f->nq),     qt_test_dalloc(f->ng + 1),
                 qt_test_dalloc(f->nl + 1), nz};
    for (size_t i = 0; i < f->nc; i++) {
        r.O[i] = O[i];
        r.A[i] = A[i];
        r.R[i] = R[i];
    }
    for (size_t i = 0; i < nl; i++)
        r.lse[i] = lse[i];
    // the start subtracted in double: exact, as both are floats of similar magnitude
    for (size_t i = 0; i < f->nq; i++)
        r.dqkv[i] = (double)dq[i] - sq[i];
    for (size_t i = 0; i < f->ng + 1; i++)
        r.dgate[i] = (double)dg[i] - sg[i];
    for (size_t i = 0; i < f->nl + 1; i++)
        r.dsink[i] = (double)dsk[i] - ss[i];
    QT_TEST_FREE_ALL(O, A, lse, R, ws, sq, sg, ss, dq, dg, dsk);
    return r;
}

// max |x - ref| / max |ref| (NaN: +inf).
static double rel_max(const double *x, const double *ref, size_t n) {
    return qt_test_rel_err_f64(x, ref, n);
}

// The float result against the double reference, as qt_test_float_vs_double.
static double f_vs_d(const double *x, const double *ref, size_t n, double rtol) {
    double mx = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        const double e = fabs(x[i] - ref[i]) / (rtol * (mx + fabs(ref[i])) + 1e-300);
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

// The case against the references: double flash tightly, float flash within float rounding.
static void check_flash_case(fcase *f) {
    const int B = f->B, T = f->T, H = f->H;
    const size_t tt = (size_t)B * H * T * T;
    double *A = qt_test_dalloc(f->nc), *O = qt_test_dalloc(f->nc), *probs = qt_test_dalloc(tt),
           *p = qt_test_dalloc(tt);
    double *dq = calloc(f->nq, sizeof(double)), *dg = calloc(f->ng + 1, sizeof(double)),
           *dsk = calloc(f->nl + 1, sizeof(double));
    ref_flash_fwd(f, A, O, probs, p);
    ref_flash_bwd(f, A, probs, p, dq, dg, dsk);

    fresult r = run_flash_f64(f, NULL);
    double e[5] = {rel_max(r.O, O, f->nc), rel_max(r.A, A, f->nc), rel_max(r.dqkv, dq, f->nq),
                   f->ng ? rel_max(r.dgate, dg, f->ng) : 0.0,
                   f->nl ? rel_max(r.dsink, dsk, f->nl) : 0.0};
    ck_assert_msg(e[0] <= 1e-11 && e[1] <= 1e-11 && e[2] <= 1e-11 && e[3] <= 1e-11 && e[4] <= 1e-11,
                  "%s (double): O %g A %g dqkv %g dgate %g dsink %g", f->what, e[0], e[1], e[2],
                  e[3], e[4]);
    fresult s = run_flash_f32(f, 2);
    double g[5] = {f_vs_d(s.O, O, f->nc, 5e-6), f_vs_d(s.A, A, f->nc, 5e-6),
                   f_vs_d(s.dqkv, dq, f->nq, 5e-6), f->ng ? f_vs_d(s.dgate, dg, f->ng, 5e-6) : 0.0,
                   f->nl ? f_vs_d(s.dsink, dsk, f->nl, 5e-6) : 0.0};
    ck_assert_msg(g[0] <= 1 && g[1] <= 1 && g[2] <= 1 && g[3] <= 1 && g[4] <= 1,
                  "%s (float): O %g A %g dqkv %g dgate %g dsink %g (x bound)", f->what, g[0], g[1],
                  g[2], g[3], g[4]);
    if (getenv("QT_FLASH_VERBOSE"))
        fprintf(stderr, "%s\n  f64 %.2e %.2e %.2e %.2e %.2e  f32 %.3f %.3f %.3f %.3f %.3f\n",
                f->what, e[0], e[1], e[2], e[3], e[4], g[0], g[1], g[2], g[3], g[4]);
    // the zero counts: the reference's exact zeros among attended probabilities, per (b, h)
    for (int bh = 0; bh < B * H; bh++) {
        int64_t want = 0;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < f->lens[(bh / H) * T + t]; j++)
                want += probs[((size_t)bh * T + t) * T + j] == 0.0;
        ck_assert_msg(r.nzero[bh] == want && llabs((long long)(s.nzero[bh] - want)) <= 2,
                      "%s: (b, h) %d: %lld zeros (double), %lld (float), want %lld", f->what, bh,
                      (long long)r.nzero[bh], (long long)s.nzero[bh], (long long)want);
    }
    // the saved state agrees between float and double
    ck_assert_msg(f_vs_d(s.lse, r.lse, (size_t)B * H * T, 5e-6) <= 1, "%s: lse float vs double",
                  f->what);
    if (f->ap.sm.kind != QT_SOFTMAX_VANILLA)
        ck_assert_msg(f_vs_d(s.R, r.R, f->nc, 5e-6) <= 1, "%s: R float vs double", f->what);
    fresult_free(&r);
    fresult_free(&s);
    QT_TEST_FREE_ALL(A, O, probs, p, dq, dg, dsk);
}

// Every softmax variant x every sink x every gate mode, on two shapes: T = 65 with D = 64 and
// the default tiles (a partial second block), T = 33 with an odd D and odd tiles (7 x 5).
START_TEST(test_attention_flash_variants) {
    for (int sk = 0; sk < 3; sk++)
        for (int sn = 0; sn < 3; sn++)
            for (int gm = 0; gm < 3; gm++) {
                const uint64_t seed = 1000 + 100 * (uint64_t)sk + 10 * (uint64_t)sn + (uint64_t)gm;
                fcase f = fcase_new((qt_softmax_kind)sk, (qt_sink_kind)sn, (qt_attn_gate)gm, 2, 65,
                                    64, 2, 0, 0, seed);
                check_flash_case(&f);
                fcase_free(&f);
                fcase g = fcase_new((qt_softmax_kind)sk, (qt_sink_kind)sn, (qt_attn_gate)gm, 3, 33,
                                    13, 3, 7, 5, seed + 5);
                check_flash_case(&g);
                fcase_free(&g);
            }
}
END_TEST

// The odd shapes: T = 1, 7, 65, 130, 257 x D = 64, 128 and an odd 37; each pair runs two of
// the 27 (softmax, sink, gate) combinations, rotating, so each combination meets several
// shapes. Default tiles, and for T = 130 odd ones (48 x 40).
START_TEST(test_attention_flash_shapes) {
    const int Ts[5] = {1, 7, 65, 130, 257}, Ds[3] = {64, 128, 37};
    int k = 0;
    for (int ti = 0; ti < 5; ti++)
        for (int di = 0; di < 3; di++)
            for (int rep = 0; rep < 2; rep++, k++) {
                const int combo = (k * 11 + 3) % 27;
                const int br = Ts[ti] == 130 ? 48 : 0, bc = Ts[ti] == 130 ? 40 : 0;
                fcase f = fcase_new((qt_softmax_kind)(combo / 9), (qt_sink_kind)(combo / 3 % 3),
                                    (qt_attn_gate)(combo % 3), 2, Ts[ti], Ds[di], 2, br, bc,
                                    2000 + (uint64_t)k);
                check_flash_case(&f);
                fcase_free(&f);
            }
}
END_TEST

// NCS with beta > eta: c_t = (beta - eta) / (N_t - 1) > 0, so no attended key is clipped at 0
// (even one whose P underflows contributes c_t v_j), peaked rows saturate at 1 (Z > 1), and
// causal row 0 (N = 1: a = 1, c = 0, P = 1) sits exactly on the boundary Z = 1 (inclusive).
// The flash op matches the reference there. FlashAttention-2's shortcut D = rowsum(dO * O)
// does not: fed through the op as R' = A / a_t (then a_t dA . R' = dA . A = rowsum(dO * O),
// ungated), its dQ is off by more than 10% of max |dQ| (FLASH_CLIP.md measured 0.4-3.8) where
// the correct D gives 1e-11: the comparison this suite makes catches the shortcut.
START_TEST(test_attention_flash_ncs_boundaries) {
    fcase f = fcase_new(QT_SOFTMAX_NCS, QT_SINK_NONE, QT_ATTN_GATE_NONE, 2, 130, 64, 2, 0, 0, 3000);
    f.ap.sm.eta = 1.03f; // the reference code's eta, with beta above it
    f.ap.sm.beta = 1.5f;
    const int B = f.B, T = f.T, C = f.C, H = f.H, D = C / H;
    for (size_t n = 0; n < (size_t)B * T; n++) // head 1 peaked: scores of std ~7
        for (int d = 0; d < D; d++)
            f.qkv[n * 3 * C + D + d] *= 4.0;
    free(f.qkvf);
    f.qkvf = qt_test_to_float(f.qkv, f.nq);
    const size_t tt = (size_t)B * H * T * T;
    double *A = qt_test_dalloc(f.nc), *O = qt_test_dalloc(f.nc), *probs = qt_test_dalloc(tt),
           *p = qt_test_dalloc(tt), *dq = calloc(f.nq, sizeof(double));
    ref_flash_fwd(&f, A, O, probs, p);
    ref_flash_bwd(&f, A, probs, p, dq, NULL, NULL);
    // the case is what it claims: attended probabilities all >= c > 0, some saturated at 1,
    // N = 1 rows exactly at 1
    size_t saturated = 0, at_zero = 0, boundary = 0;
    for (int bh = 0; bh < B * H; bh++)
        for (int t = 0; t < T; t++) {
            const int n = f.lens[(bh / H) * T + t];
            for (int j = 0; j < n; j++) {
                const size_t i = ((size_t)bh * T + t) * T + j;
                double a, c;
                qt_softmax_clip_coeffs(QT_SOFTMAX_KIND_NCS, 0, 1, f.ap.sm.eta, f.ap.sm.beta, n, &a,
                                       &c);
                const double z = a * p[i] + c;
                saturated += z > 1.0;
                at_zero += probs[i] == 0.0;
                boundary += z == 1.0;
            }
        }
    ck_assert_msg(saturated >= 20 && at_zero == 0 && boundary >= (size_t)B * H / 2,
                  "%s: %zu saturated, %zu zero, %zu at Z = 1", f.what, saturated, at_zero,
                  boundary);
    fresult r = run_flash_f64(&f, NULL);
    double *dqq = qt_test_dalloc((size_t)B * T * C), *dqr = qt_test_dalloc((size_t)B * T * C);
    for (size_t n = 0; n < (size_t)B * T; n++)
        for (int c = 0; c < C; c++) {
            dqq[n * C + c] = r.dqkv[n * 3 * C + c];
            dqr[n * C + c] = dq[n * 3 * C + c];
        }
    const double good = rel_max(dqq, dqr, (size_t)B * T * C);
    ck_assert_msg(good <= 1e-11 && rel_max(r.O, O, f.nc) <= 1e-11,
                  "%s: dQ %g, O %g vs the reference", f.what, good, rel_max(r.O, O, f.nc));
    // the shortcut, through R' = A / a_t
    double *Rs = qt_test_dalloc(f.nc);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            double a, c;
            qt_softmax_clip_coeffs(QT_SOFTMAX_KIND_NCS, 0, 1, f.ap.sm.eta, f.ap.sm.beta,
                                   f.lens[b * T + t], &a, &c);
            for (int h = 0; h < H; h++)
                for (int d = 0; d < D; d++) {
                    const size_t i = ((size_t)b * T + t) * C + (size_t)h * D + d;
                    Rs[i] = r.A[i] / a;
                }
        }
    fresult w = run_flash_f64(&f, Rs);
    for (size_t n = 0; n < (size_t)B * T; n++)
        for (int c = 0; c < C; c++)
            dqq[n * C + c] = w.dqkv[n * 3 * C + c];
    const double bad = rel_max(dqq, dqr, (size_t)B * T * C);
    ck_assert_msg(bad > 0.1, "%s: the FA2 shortcut's dQ is only %g off", f.what, bad);
    // and the float op, with its own R, passes the suite's float bound
    fresult s = run_flash_f32(&f, 2);
    ck_assert_msg(f_vs_d(s.dqkv, dq, f.nq, 5e-6) <= 1 && f_vs_d(s.O, O, f.nc, 5e-6) <= 1,
                  "%s (float): dqkv %g O %g", f.what, f_vs_d(s.dqkv, dq, f.nq, 5e-6),
                  f_vs_d(s.O, O, f.nc, 5e-6));
    if (getenv("QT_FLASH_VERBOSE"))
        fprintf(stderr, "ncs beta > eta: %zu saturated, %zu at Z = 1; dQ good %g, shortcut %g\n",
                saturated, boundary, good, bad);
    fresult_free(&r);
    fresult_free(&w);
    fresult_free(&s);
    QT_TEST_FREE_ALL(A, O, probs, p, dq, dqq, dqr, Rs);
    fcase_free(&f);
}
END_TEST

// Finite differences in double of L = sum wout O through the flash op, with respect to qkv,
// the gate values and the sink logits, for every softmax x sink x gate, on small odd shapes
// with odd tiles (4 x 3: partial tiles in both directions; causal and padded rows).
typedef struct {
    fcase *f;
    double *O, *A, *lse, *R, *ws;
    size_t wsb;
} flash_fd_ctx;

static double flash_loss(void *v) {
    flash_fd_ctx *c = v;
    const fcase *f = c->f;
    const int gated = f->ap.gate != QT_ATTN_GATE_NONE;
    QT_EXPECT_OK(qt_cpu_attention_flash_fwd_f64(&f->ap, gated ? c->O : NULL, c->A, c->lse, c->R,
                                                NULL, f->qkv, f->gate, f->sink, f->lens, f->B, f->T,
                                                f->C, f->H, c->ws, c->wsb));
    return qt_test_ddot(gated ? c->O : c->A, f->dout, f->nc);
}

START_TEST(test_attention_flash_fd) {
    for (int combo = 0; combo < 27; combo++) {
        fcase f = fcase_new((qt_softmax_kind)(combo / 9), (qt_sink_kind)(combo / 3 % 3),
                            (qt_attn_gate)(combo % 3), 2, 9, 3, 2, 4, 3, 4000 + (uint64_t)combo);
        // one thread's workspace: no parallel region per loss (hundreds of tiny calls)
        const size_t wsb = qt_cpu_attention_flash_ws_bytes_f64(&f.ap, f.B, f.T, f.C, f.H, 1);
        flash_fd_ctx c = {&f,
                          qt_test_dalloc(f.nc),
                          qt_test_dalloc(f.nc),
                          qt_test_dalloc((size_t)f.B * f.H * f.T),
                          qt_test_dalloc(f.nc),
                          qt_test_dalloc(wsb / sizeof(double)),
                          wsb};
        flash_loss(&c);
        fresult r = run_flash_f64(&f, NULL);
        qt_test_fd_problem p = {.loss = flash_loss, .ctx = &c};
        double *an[3];
        qt_test_fd_add(&p, "qkv", f.qkv, f.nq);
        an[0] = r.dqkv;
        if (f.ng) {
            an[p.count] = r.dgate;
            qt_test_fd_add(&p, "gate", f.gate, f.ng);
        }
        if (f.nl) {
            an[p.count] = r.dsink;
            qt_test_fd_add(&p, "sink", f.sink, f.nl);
        }
        qt_test_fd_check(&p, an, FD_H, FD_TOL, f.what);
        fresult_free(&r);
        QT_TEST_FREE_ALL(c.O, c.A, c.lse, c.R, c.ws);
        fcase_free(&f);
    }
}
END_TEST

// A task's results do not depend on the thread count (one thread per (b, h), each writing its
// own rows; dsink summed in a fixed order): 1 and 2 threads give the same bits.
START_TEST(test_attention_flash_threads) {
    fcase f =
        fcase_new(QT_SOFTMAX_CLIPPED, QT_SINK_LEARNED, QT_ATTN_GATE_HEAD, 3, 70, 16, 3, 0, 0, 5000);
    fresult a = run_flash_f32(&f, 1), b = run_flash_f32(&f, 2);
    ck_assert_msg(memcmp(a.O, b.O, f.nc * sizeof(double)) == 0 &&
                      memcmp(a.dqkv, b.dqkv, f.nq * sizeof(double)) == 0 &&
                      memcmp(a.dgate, b.dgate, f.ng * sizeof(double)) == 0 &&
                      memcmp(a.dsink, b.dsink, f.nl * sizeof(double)) == 0,
                  "%s: 1 and 2 threads differ", f.what);
    fresult_free(&a);
    fresult_free(&b);
    fcase_free(&f);
}
END_TEST

// The error contract: bad params, shapes, lengths, missing tensors (per mode) and a short
// workspace are refused, naming the op, before any output is written.
START_TEST(test_attention_flash_bad_args) {
    enum { B = 1, T = 3, C = 4, H = 2 };
    const size_t nc = (size_t)B * T * C, nq = 3 * nc, nl = (size_t)B * H * T;
    float *qkv = qt_test_falloc(nq), *dout = qt_test_falloc(nc), *gate = qt_test_falloc(nc),
          *sink = qt_test_falloc(H);
    qt_test_fill_uniform(qkv, nq, -1.0f, 1.0f, 81);
    qt_test_fill_uniform(dout, nc, -1.0f, 1.0f, 82);
    qt_test_fill_uniform(gate, nc, 0.1f, 0.9f, 83);
    qt_test_fill_uniform(sink, H, -1.0f, 1.0f, 84);
    int lens[B * T] = {1, 2, 3};
    const qt_attn_params ok = {.sm = sm_params(QT_SOFTMAX_CLIPPED, C / H),
                               .sink = QT_SINK_LEARNED,
                               .gate = QT_ATTN_GATE_CHANNEL};
    const size_t wsb = qt_cpu_attention_flash_ws_bytes(&ok, B, T, C, H, 1);
    float *ws = qt_test_falloc(wsb / sizeof(float));
    float *out = qt_test_guarded(nc * 4), *ctx = qt_test_guarded(nc * 4),
          *lse = qt_test_guarded(nl * 4), *R = qt_test_guarded(nc * 4);
#define FWD(ap, lens_, ws_, wsb_)                                                                  \
    qt_cpu_attention_flash_fwd(ap, out, ctx, lse, R, NULL, qkv, gate, sink, lens_, B, T, C, H,     \
                               ws_, wsb_)
#define UNTOUCHED                                                                                  \
    (qt_test_untouched(out, nc * 4) && qt_test_untouched(ctx, nc * 4) &&                           \
     qt_test_untouched(lse, nl * 4) && qt_test_untouched(R, nc * 4))
    qt_attn_params bad = ok;
    QT_EXPECT_REFUSED(FWD(NULL, lens, ws, wsb), "attention_flash_fwd", UNTOUCHED);
    bad.sm.gamma = 0.5f;
    QT_EXPECT_REFUSED(FWD(&bad, lens, ws, wsb), "attention_flash_fwd", UNTOUCHED);
    bad = ok;
    bad.sink = (qt_sink_kind)3;
    QT_EXPECT_REFUSED(FWD(&bad, lens, ws, wsb), "attention_flash_fwd", UNTOUCHED);
    bad = ok;
    bad.gate = (qt_attn_gate)-1;
    QT_EXPECT_REFUSED(FWD(&bad, lens, ws, wsb), "attention_flash_fwd", UNTOUCHED);
    bad = ok;
    bad.bc = -2;
    QT_EXPECT_REFUSED(FWD(&bad, lens, ws, wsb), "attention_flash_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(FWD(&ok, lens, ws, wsb - 1), "attention_flash_fwd", UNTOUCHED);
    ck_assert_msg(strstr(qt_last_error(), "workspace"), "%s", qt_last_error());
    QT_EXPECT_REFUSED(FWD(&ok, lens, NULL, wsb), "attention_flash_fwd", UNTOUCHED);
    lens[2] = 4;
    QT_EXPECT_REFUSED(FWD(&ok, lens, ws, wsb), "attention_flash_fwd", UNTOUCHED);
    lens[2] = 3;
    QT_EXPECT_REFUSED(qt_cpu_attention_flash_fwd(&ok, out, ctx, lse, R, NULL, qkv, gate, NULL, lens,
                                                 B, T, C, H, ws, wsb),
                      "attention_flash_fwd", UNTOUCHED); // learned sink without logits
    QT_EXPECT_REFUSED(qt_cpu_attention_flash_fwd(&ok, NULL, ctx, lse, R, NULL, qkv, gate, sink,
                                                 lens, B, T, C, H, ws, wsb),
                      "attention_flash_fwd", UNTOUCHED); // gated without out
    QT_EXPECT_REFUSED(qt_cpu_attention_flash_fwd(&ok, out, ctx, lse, R, NULL, qkv, gate, sink, lens,
                                                 B, T, C, 3, ws, wsb),
                      "attention_flash_fwd", UNTOUCHED); // C % H
#undef UNTOUCHED
#undef FWD
    // the backward: R is required for the clipped variants
    float *A = qt_test_falloc(nc), *L = qt_test_falloc(nl), *Rr = qt_test_falloc(nc),
          *O = qt_test_falloc(nc);
    QT_EXPECT_OK(qt_cpu_attention_flash_fwd(&ok, O, A, L, Rr, NULL, qkv, gate, sink, lens, B, T, C,
                                            H, ws, wsb));
    float *dqkv = qt_test_guarded(nq * 4), *dg = qt_test_guarded(nc * 4),
          *ds = qt_test_guarded(H * 4);
#define UNTOUCHED                                                                                  \
    (qt_test_untouched(dqkv, nq * 4) && qt_test_untouched(dg, nc * 4) &&                           \
     qt_test_untouched(ds, H * 4))
    QT_EXPECT_REFUSED(qt_cpu_attention_flash_bwd(&ok, dqkv, dg, ds, dout, qkv, A, L, NULL, gate,
                                                 sink, lens, B, T, C, H, ws, wsb),
                      "attention_flash_bwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_attention_flash_bwd(&ok, dqkv, dg, ds, dout, qkv, A, L, Rr, NULL, sink,
                                                 lens, B, T, C, H, ws, wsb),
                      "attention_flash_bwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_attention_flash_bwd(&ok, dqkv, dg, ds, dout, qkv, A, L, Rr, gate, sink,
                                                 lens, B, T, C, H, ws, 8),
                      "attention_flash_bwd", UNTOUCHED);
#undef UNTOUCHED
    // the double twin names itself; B = 0 does nothing
    double *qd = qt_test_dalloc(nq);
    for (size_t i = 0; i < nq; i++)
        qd[i] = qkv[i];
    qt_attn_params van = {.sm = sm_params(QT_SOFTMAX_VANILLA, C / H)};
    double *cd = qt_test_guarded(nc * 8), *ld = qt_test_guarded(nl * 8);
    QT_EXPECT_REFUSED(qt_cpu_attention_flash_fwd_f64(&van, NULL, cd, ld, NULL, NULL, qd, NULL, NULL,
                                                     lens, B, T, C, H, ws, 16),
                      "attention_flash_fwd_f64",
                      qt_test_untouched(cd, nc * 8) && qt_test_untouched(ld, nl * 8));
    QT_EXPECT_OK(qt_cpu_attention_flash_fwd(&ok, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                            NULL, 0, T, C, H, NULL, 0));
    QT_TEST_FREE_ALL(qkv, dout, gate, sink, ws, out, ctx, lse, R, A, L, Rr, O, dqkv, dg, ds, qd, cd,
                     ld);
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
    TCase *fl = tcase_create("flash");
    tcase_set_timeout(fl, 300);
    tcase_add_test(fl, test_attention_flash_variants);
    tcase_add_test(fl, test_attention_flash_shapes);
    tcase_add_test(fl, test_attention_flash_ncs_boundaries);
    tcase_add_test(fl, test_attention_flash_fd);
    tcase_add_test(fl, test_attention_flash_threads);
    tcase_add_test(fl, test_attention_flash_bad_args);
    suite_add_tcase(s, fl);
    return s;
}

int main(void) { return qt_test_run_suite(attention_suite()); }

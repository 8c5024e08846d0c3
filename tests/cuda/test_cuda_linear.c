// test_cuda_gemm.c: qt_cuda_gemm (kernels/cuda/gemm.cu) against a naive double-precision GEMM
// on the same dtype-rounded inputs, for every transpose combination, odd M/N/K, padded leading
// dimensions, the two-level batch in each of its layouts (one strided call, one call per outer
// index, one per inner index, inner == 1, outer == 1), beta 0 (C poisoned with NaN: it must
// not be read) and beta 1, in fp32, fp16 and bf16; qt_cuda_gemm_bias (the bias epilogue)
// against qt_cpu_linear_fwd with the same tolerance; the activation epilogues
// (qt_cuda_gemm_act_fwd: GELU keeping pre, GELU, ReLU; qt_cuda_gemm_dgelu) against
// qt_cpu_linear_act_fwd / _dx and what they refuse; a kept pointer table
// (qt_cuda_gemm_table_write once, qt_cuda_gemm_tabled twice) on attention's layout, right
// again after the buffers' contents change.
//
// Tolerance per element: |got - ref| <= U_out |ref| + 1e-5 S, where S = |alpha| sum_k |a b| +
// |beta c| is the scale of the terms summed (the fp32 accumulation error of any order is far
// below 1e-5 S for K <= 65) and U_out the unit roundoff of the output's single rounding to dt
// (0 for fp32, 2^-11 fp16, 2^-8 bf16). Every element of the C buffer outside the C_i matrices
// (padding, gaps between batch entries) and the guard band after it must be unchanged.
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/linear.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};

// How a matrix's batch entries are placed (R rows, W columns, the row-major storage):
//   DENSE:       entries one after the other, ld = W + pad, inner stride R ld, outer stride
//                inner R ld + gap;
//   INTERLEAVED: the entries of one outer index side by side in each row (heads in a (T, C)
//                activation), ld = inner W + pad, inner stride W, outer stride R ld.
enum { DENSE = 0, INTERLEAVED = 1 };

typedef struct {
    int M, N, K, batch, inner;
    int layout_a, layout_b, layout_c;
    int pad, gap; // extra row elements; extra elements between outer groups (DENSE)
} gemm_case;

static const gemm_case CASES[] = {
    {1, 1, 1, 1, 1, DENSE, DENSE, DENSE, 0, 0},                   // scalar
    {7, 33, 31, 1, 1, DENSE, DENSE, DENSE, 3, 0},                 // odd sizes, padded ld
    {33, 17, 65, 6, 3, INTERLEAVED, DENSE, INTERLEAVED, 1, 5},    // per-outer calls
    {5, 9, 3, 4, 1, DENSE, INTERLEAVED, DENSE, 2, 7},             // inner == 1
    {13, 7, 11, 3, 3, INTERLEAVED, INTERLEAVED, INTERLEAVED, 0, 0}, // outer == 1
    {3, 5, 7, 8, 2, DENSE, DENSE, DENSE, 1, 0},                   // one strided call
    {9, 4, 6, 10, 2, INTERLEAVED, DENSE, INTERLEAVED, 0, 3},      // outer > inner: per inner
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

typedef struct {
    int rows, cols, ld;
    int64_t outer, inner_stride;
    size_t total; // elements the buffer needs
} placement;

static placement place(int layout, int R, int W, int batch, int inner, int pad, int gap) {
    placement p;
    int outer_n = batch / inner;
    p.rows = R;
    p.cols = W;
    if (layout == DENSE) {
        p.ld = W + pad;
        p.inner_stride = (int64_t)R * p.ld;
        p.outer = inner * p.inner_stride + gap;
    } else {
        p.ld = inner * W + pad;
        p.inner_stride = W;
        p.outer = (int64_t)R * p.ld;
    }
    int64_t last = (int64_t)(outer_n - 1) * p.outer + (int64_t)(inner - 1) * p.inner_stride;
    p.total = (size_t)(last + (int64_t)(R - 1) * p.ld + W);
    return p;
}

static int64_t entry_base(const placement *p, int i, int inner) {
    return (int64_t)(i / inner) * p->outer + (int64_t)(i % inner) * p->inner_stride;
}

static double unit_roundoff(qt_dtype dt) {
    return dt == QT_DTYPE_F16 ? ldexp(1.0, -11) : dt == QT_DTYPE_BF16 ? ldexp(1.0, -8) : 0.0;
}

static int same_value(float a, float b) { return (isnan(a) && isnan(b)) || a == b; }

static void run_case(const gemm_case *gc, int trans_a, int trans_b, int beta_one, qt_dtype dt,
                     void *handle) {
    const int M = gc->M, N = gc->N, K = gc->K, batch = gc->batch, inner = gc->inner;
    const float alpha = beta_one ? 0.5f : 1.0f, beta = beta_one ? 1.0f : 0.0f;
    placement pa = place(gc->layout_a, trans_a ? K : M, trans_a ? M : K, batch, inner, gc->pad,
                         gc->gap);
    placement pb = place(gc->layout_b, trans_b ? N : K, trans_b ? K : N, batch, inner, gc->pad,
                         gc->gap);
    placement pc = place(gc->layout_c, M, N, batch, inner, gc->pad, gc->gap);
    const uint64_t seed = 1000u * (uint64_t)(gc - CASES) + 100u * (uint64_t)dt +
                          10u * (uint64_t)(2 * trans_a + trans_b) + (uint64_t)beta_one;
    char what[160];
    snprintf(what, sizeof what,
             "gemm %s M %d N %d K %d batch %d inner %d trans %d%d beta %g (case %d, seed %llu)",
             qt_dtype_name(dt), M, N, K, batch, inner, trans_a, trans_b, (double)beta,
             (int)(gc - CASES), (unsigned long long)seed);

    float *a = malloc(pa.total * sizeof *a), *b = malloc(pb.total * sizeof *b);
    float *c0 = malloc(pc.total * sizeof *c0), *got = malloc(pc.total * sizeof *got);
    qt_test_fill_uniform(a, pa.total, -1.0f, 1.0f, seed);
    qt_test_fill_uniform(b, pb.total, -1.0f, 1.0f, seed + 1);
    qt_test_fill_uniform(c0, pc.total, -1.0f, 1.0f, seed + 2);
    for (size_t i = 0; i < pa.total; i++) a[i] = qt_ct_round(dt, a[i]);
    for (size_t i = 0; i < pb.total; i++) b[i] = qt_ct_round(dt, b[i]);
    for (size_t i = 0; i < pc.total; i++) c0[i] = beta_one ? qt_ct_round(dt, c0[i]) : NAN;
    void *da = qt_ct_upload(dt, a, pa.total), *db = qt_ct_upload(dt, b, pb.total);
    // beta 0: C is all NaN (qt_ct_alloc's poison), which the GEMM must not read
    void *dc = beta_one ? qt_ct_upload(dt, c0, pc.total) : qt_ct_alloc(dt, pc.total);

    qt_gemm_desc d = {
        .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K, .alpha = alpha,
        .beta = beta, .lda = pa.ld, .ldb = pb.ld, .ldc = pc.ld, .batch = batch, .inner = inner,
        .a_outer = pa.outer, .a_inner = pa.inner_stride, .b_outer = pb.outer,
        .b_inner = pb.inner_stride, .c_outer = pc.outer, .c_inner = pc.inner_stride,
    };
    qt_status st = qt_cuda_gemm(NULL, dt, &d, da, db, dc, handle);
    ck_assert_msg(st == QT_OK, "%s: %s", what, qt_last_error());
    qt_ct_download(dt, got, dc, pc.total);

    // Which C elements belong to some C_i; the rest must be untouched.
    unsigned char *inside = calloc(pc.total, 1);
    const double u = unit_roundoff(dt);
    double worst = 0.0;
    char worst_at[96] = "";
    for (int i = 0; i < batch; i++) {
        const int64_t ab = entry_base(&pa, i, inner), bb = entry_base(&pb, i, inner),
                      cb = entry_base(&pc, i, inner);
        for (int r = 0; r < M; r++)
            for (int col = 0; col < N; col++) {
                double sum = 0.0, scale = 0.0;
                for (int k = 0; k < K; k++) {
                    double x = a[ab + (trans_a ? (int64_t)k * pa.ld + r : (int64_t)r * pa.ld + k)];
                    double y = b[bb + (trans_b ? (int64_t)col * pb.ld + k : (int64_t)k * pb.ld + col)];
                    sum += x * y;
                    scale += fabs(x * y);
                }
                const size_t ci = (size_t)(cb + (int64_t)r * pc.ld + col);
                double ref = alpha * sum, s = fabs(alpha) * scale;
                if (beta_one) {
                    ref += beta * c0[ci];
                    s += fabs(beta * c0[ci]);
                }
                inside[ci] = 1;
                const double tol = u * fabs(ref) + 1e-5 * s + 1e-30;
                const double e = fabs(got[ci] - ref) / tol;
                if (!(e <= worst)) { // NaN lands here and is kept
                    worst = e;
                    snprintf(worst_at, sizeof worst_at, "entry %d (%d, %d): got %.9g want %.9g",
                             i, r, col, (double)got[ci], ref);
                }
            }
    }
    ck_assert_msg(worst <= 1.0, "%s: error %.3g x tolerance at %s", what, worst, worst_at);
    for (size_t i = 0; i < pc.total; i++)
        if (!inside[i])
            ck_assert_msg(same_value(got[i], c0[i]),
                          "%s: element %zu outside every C_i changed: %g -> %g", what, i,
                          (double)c0[i], (double)got[i]);
    ck_assert_msg(qt_ct_guard_ok(dt, dc, pc.total), "%s: wrote past the end of C", what);
    ck_assert_msg(qt_ct_guard_ok(dt, da, pa.total) && qt_ct_guard_ok(dt, db, pb.total),
                  "%s: wrote past A or B", what);
    free(inside);
    qt_ct_free(da);
    qt_ct_free(db);
    qt_ct_free(dc);
    free(a);
    free(b);
    free(c0);
    free(got);
}

// _i: case index; every transpose, beta and dtype of it.
START_TEST(test_gemm_matches_reference) {
    void *handle = NULL;
    ck_assert_msg(qt_cuda_gemm_create(&handle, 0) == QT_OK, "%s", qt_last_error());
    for (int d = 0; d < 3; d++)
        for (int t = 0; t < 4; t++)
            for (int beta_one = 0; beta_one < 2; beta_one++)
                run_case(&CASES[_i], t >> 1, t & 1, beta_one, DTYPES[d], handle);
    qt_cuda_gemm_destroy(handle);
}
END_TEST

// Bad descriptors are refused with QT_ERR_ARG and a message naming qt_cuda_gemm.
START_TEST(test_gemm_rejects_bad_arguments) {
    void *handle = NULL;
    ck_assert_int_eq(qt_cuda_gemm_create(&handle, 0), QT_OK);
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    const qt_gemm_desc good = {.M = 4, .N = 4, .K = 4, .alpha = 1, .lda = 4, .ldb = 4, .ldc = 4,
                               .batch = 1, .inner = 1};
    qt_gemm_desc d;
    d = good;
    ck_assert_int_eq(qt_cuda_gemm(NULL, QT_DTYPE_F32, &d, buf, buf, buf, handle), QT_OK);
    struct {
        const char *what;
        qt_gemm_desc d;
    } bad[5];
    bad[0].what = "batch not a multiple of inner";
    bad[0].d = good;
    bad[0].d.batch = 5;
    bad[0].d.inner = 2;
    bad[1].what = "ldc below N";
    bad[1].d = good;
    bad[1].d.ldc = 3;
    bad[2].what = "lda below K";
    bad[2].d = good;
    bad[2].d.lda = 2;
    bad[3].what = "ldb below K when B is transposed";
    bad[3].d = good;
    bad[3].d.trans_b = 1;
    bad[3].d.N = 2;
    bad[3].d.ldb = 3;
    bad[3].d.ldc = 2;
    bad[3].d.K = 4;
    bad[4].what = "K of 0";
    bad[4].d = good;
    bad[4].d.K = 0;
    for (int i = 0; i < 5; i++) {
        qt_status st = qt_cuda_gemm(NULL, QT_DTYPE_F32, &bad[i].d, buf, buf, buf, handle);
        ck_assert_msg(st == QT_ERR_ARG, "%s: status %d", bad[i].what, (int)st);
        ck_assert_msg(strstr(qt_last_error(), "qt_cuda_gemm") != NULL, "%s: message '%s'",
                      bad[i].what, qt_last_error());
    }
    ck_assert_int_eq(qt_cuda_gemm(NULL, (qt_dtype)7, &d, buf, buf, buf, handle), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_gemm(NULL, QT_DTYPE_F32, &d, NULL, buf, buf, handle), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_gemm(NULL, QT_DTYPE_F32, NULL, buf, buf, buf, handle), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_gemm(NULL, QT_DTYPE_F32, &d, buf, buf, buf, NULL), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_gemm_create(NULL, 0), QT_ERR_ARG);
    qt_ct_free(buf);
    qt_cuda_gemm_destroy(handle);
    qt_cuda_gemm_destroy(NULL); // allowed, like free(NULL)
}
END_TEST

// ---- qt_cuda_gemm_bias: a linear layer's forward with the bias in the GEMM's epilogue --------

// out (N, OC) = x (N, IC) w^T + b against qt_cpu_linear_fwd on the dt-rounded inputs; out
// poisoned, its guard band checked. Tolerance: the output's one rounding (U_out |ref|) plus
// 1e-5 of the summed terms' scale, as the cases above.
static void check_gemm_bias(qt_dtype dt, int N, int IC, int OC, uint64_t seed, void *handle) {
    float *x = qt_ct_rand_rounded(dt, (size_t)N * IC, -1.0f, 1.0f, seed);
    float *w = qt_ct_rand_rounded(dt, (size_t)OC * IC, -1.0f, 1.0f, seed + 1);
    float *b = qt_ct_rand_rounded(dt, (size_t)OC, -2.0f, 2.0f, seed + 2);
    float *want = malloc((size_t)N * OC * sizeof *want);
    ck_assert_int_eq(qt_cpu_linear_fwd(want, x, w, b, N, IC, OC), QT_OK);
    void *dx = qt_ct_upload(dt, x, (size_t)N * IC), *dw = qt_ct_upload(dt, w, (size_t)OC * IC);
    void *db = qt_ct_upload(dt, b, (size_t)OC), *dout = qt_ct_alloc(dt, (size_t)N * OC);
    const qt_gemm_desc d = qt_gemm_desc_single(0, 1, N, OC, IC, 0.0f, IC, IC, OC);
    ck_assert_msg(qt_cuda_gemm_bias(NULL, dt, &d, dx, dw, dout, db, handle) == QT_OK, "%s",
                  qt_last_error());
    float *got = qt_ct_download_new(dt, dout, (size_t)N * OC);
    const double u = dt == QT_DTYPE_F32 ? 0.0 : dt == QT_DTYPE_F16 ? 0x1p-11 : 0x1p-8;
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) {
            double scale = fabs(b[o]);
            for (int k = 0; k < IC; k++)
                scale += fabs((double)x[(size_t)r * IC + k] * w[(size_t)o * IC + k]);
            const float ref = want[(size_t)r * OC + o], g = got[(size_t)r * OC + o];
            ck_assert_msg(fabs(g - ref) <= u * fabs(ref) + 1e-5 * scale,
                          "gemm_bias %s N %d IC %d OC %d seed %llu: out[%d][%d] = %.9g, want "
                          "%.9g", qt_dtype_name(dt), N, IC, OC, (unsigned long long)seed, r, o,
                          (double)g, (double)ref);
        }
    ck_assert_msg(qt_ct_guard_ok(dt, dout, (size_t)N * OC), "gemm_bias %s: wrote past out",
                  qt_dtype_name(dt));
    qt_ct_free(dx);
    qt_ct_free(dw);
    qt_ct_free(db);
    qt_ct_free(dout);
    free(x);
    free(w);
    free(b);
    free(want);
    free(got);
}

START_TEST(test_gemm_bias_matches_linear_fwd) {
    void *handle = NULL;
    ck_assert_msg(qt_cuda_gemm_create(&handle, 0) == QT_OK, "%s", qt_last_error());
    static const int SHAPES[][3] = {{1, 5, 3}, {33, 17, 31}, {67, 64, 9}};
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < 3; i++)
            check_gemm_bias(DTYPES[d], SHAPES[i][0], SHAPES[i][1], SHAPES[i][2],
                            7000 + 10 * (uint64_t)i + (uint64_t)d, handle);
    // a batch, or no bias, is refused naming the problem
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    qt_gemm_desc two = qt_gemm_desc_single(0, 1, 2, 2, 2, 0.0f, 2, 2, 2);
    two.batch = 2;
    two.inner = 1;
    ck_assert_int_eq(qt_cuda_gemm_bias(NULL, QT_DTYPE_F32, &two, buf, buf, buf, buf, handle),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "batch"));
    const qt_gemm_desc one = qt_gemm_desc_single(0, 1, 2, 2, 2, 0.0f, 2, 2, 2);
    ck_assert_int_eq(qt_cuda_gemm_bias(NULL, QT_DTYPE_F32, &one, buf, buf, buf, NULL, handle),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "bias"));
    qt_ct_free(buf);
    qt_cuda_gemm_destroy(handle);
}
END_TEST

// ---- the activation epilogues: qt_cuda_gemm_act_fwd, qt_cuda_gemm_dgelu --------------------
// Against qt_cpu_linear_act_fwd / _dx on the dt-rounded inputs, fp16 and bf16, odd rows and
// inner sizes (the output width a multiple of 8, as the epilogue needs), with and without a
// bias, every output poisoned first and its guard band checked. Tolerances: the GEMM's above
// (U_out |ref| + 1e-5 S) carried through the activation (|gelu'| <= 1.13, |relu'| <= 1), plus
// 2^-11 of the activation's argument scale for cuBLASLt's own GELU on a GPU (CUTLASS's
// epilogue evaluates tanh with tanh.approx.f32, relative error about 2^-11; the emulator
// evaluates activation.cu's formula, the CPU's up to float rounding).
#define GELU_SLOPE 1.13

// S (r, o) = sum_k |x_rk w_ok| (+ |b_o|): the scale of the terms of out (r, o).
static double term_scale(const float *x, const float *w, const float *b, int r, int o, int IC) {
    double s = b ? fabs(b[o]) : 0.0;
    for (int k = 0; k < IC; k++) s += fabs((double)x[(size_t)r * IC + k] * w[(size_t)o * IC + k]);
    return s;
}

static void check_gemm_act_fwd(qt_dtype dt, qt_linear_act act, int keep_pre, int with_bias,
                               int N, int IC, int OC, uint64_t seed, void *handle) {
    const char *an = act == QT_LINEAR_ACT_GELU ? "gelu" : "relu";
    float *x = qt_ct_rand_rounded(dt, (size_t)N * IC, -1.0f, 1.0f, seed);
    float *w = qt_ct_rand_rounded(dt, (size_t)OC * IC, -1.0f, 1.0f, seed + 1);
    float *b = with_bias ? qt_ct_rand_rounded(dt, (size_t)OC, -2.0f, 2.0f, seed + 2) : NULL;
    float *want = malloc((size_t)N * OC * sizeof *want), *want_pre = NULL;
    want_pre = malloc((size_t)N * OC * sizeof *want_pre);
    ck_assert_int_eq(qt_cpu_linear_act_fwd(act, want, want_pre, x, w, b, N, IC, OC), QT_OK);
    void *dx = qt_ct_upload(dt, x, (size_t)N * IC), *dw = qt_ct_upload(dt, w, (size_t)OC * IC);
    void *db = b ? qt_ct_upload(dt, b, (size_t)OC) : NULL;
    void *dout = qt_ct_alloc(dt, (size_t)N * OC), *dpre = keep_pre ? qt_ct_alloc(dt, (size_t)N * OC) : NULL;
    const qt_gemm_desc d = qt_gemm_desc_single(0, 1, N, OC, IC, 0.0f, IC, IC, OC);
    ck_assert_msg(qt_cuda_gemm_act_supported(dt, &d, dx, dw, dout, db, dpre), "%s %s N %d OC %d: "
                  "declined", qt_dtype_name(dt), an, N, OC);
    ck_assert_msg(qt_cuda_gemm_act_fwd(NULL, dt, &d, dx, dw, dout, db, act, dpre, handle) == QT_OK,
                  "%s", qt_last_error());
    float *got = qt_ct_download_new(dt, dout, (size_t)N * OC);
    float *got_pre = keep_pre ? qt_ct_download_new(dt, dpre, (size_t)N * OC) : NULL;
    const double u = dt == QT_DTYPE_F16 ? 0x1p-11 : 0x1p-8;
    const double slope = act == QT_LINEAR_ACT_GELU ? GELU_SLOPE : 1.0;
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) {
            const size_t i = (size_t)r * OC + o;
            const double s = term_scale(x, w, b, r, o, IC), pre = fabs(want_pre[i]);
            const double tol = u * fabs(want[i]) + slope * 1e-5 * s +
                               (act == QT_LINEAR_ACT_GELU ? 0x1p-11 * pre : 0.0) + 1e-30;
            ck_assert_msg(fabs(got[i] - want[i]) <= tol,
                          "gemm_act_fwd %s %s bias %d N %d IC %d OC %d: out[%d][%d] = %.9g, "
                          "want %.9g (pre %.9g)", qt_dtype_name(dt), an, with_bias, N, IC, OC,
                          r, o, (double)got[i], (double)want[i], (double)want_pre[i]);
            if (got_pre)
                ck_assert_msg(fabs(got_pre[i] - want_pre[i]) <= u * pre + 1e-5 * s + 1e-30,
                              "gemm_act_fwd %s %s: pre[%d][%d] = %.9g, want %.9g",
                              qt_dtype_name(dt), an, r, o, (double)got_pre[i],
                              (double)want_pre[i]);
        }
    ck_assert_msg(qt_ct_guard_ok(dt, dout, (size_t)N * OC) &&
                      (!dpre || qt_ct_guard_ok(dt, dpre, (size_t)N * OC)),
                  "gemm_act_fwd %s %s: wrote past out or pre", qt_dtype_name(dt), an);
    qt_ct_free(dx);
    qt_ct_free(dw);
    if (db) qt_ct_free(db);
    qt_ct_free(dout);
    if (dpre) qt_ct_free(dpre);
    free(x);
    free(w);
    free(b);
    free(want);
    free(want_pre);
    free(got);
    free(got_pre);
}

// dx (N, IC) = gelu'(pre) * (dout (N, OC) w (OC, IC)), pre (N, IC).
static void check_gemm_dgelu(qt_dtype dt, int N, int IC, int OC, uint64_t seed, void *handle) {
    float *g = qt_ct_rand_rounded(dt, (size_t)N * OC, -1.0f, 1.0f, seed);
    float *w = qt_ct_rand_rounded(dt, (size_t)OC * IC, -1.0f, 1.0f, seed + 1);
    float *pre = qt_ct_rand_rounded(dt, (size_t)N * IC, -4.0f, 4.0f, seed + 2);
    float *want = malloc((size_t)N * IC * sizeof *want), *acc = malloc((size_t)N * IC * sizeof *acc);
    ck_assert_int_eq(qt_cpu_linear_act_dx(QT_LINEAR_ACT_GELU, want, g, w, pre, N, IC, OC), QT_OK);
    const qt_gemm_desc d = qt_gemm_desc_single(0, 0, N, IC, OC, 0.0f, OC, IC, IC);
    ck_assert_int_eq(qt_cpu_gemm(&d, g, w, acc), QT_OK); // the GEMM alone
    void *dg = qt_ct_upload(dt, g, (size_t)N * OC), *dw = qt_ct_upload(dt, w, (size_t)OC * IC);
    void *dpre = qt_ct_upload(dt, pre, (size_t)N * IC), *ddx = qt_ct_alloc(dt, (size_t)N * IC);
    ck_assert_msg(qt_cuda_gemm_dgelu(NULL, dt, &d, dg, dw, ddx, dpre, handle) == QT_OK, "%s",
                  qt_last_error());
    float *got = qt_ct_download_new(dt, ddx, (size_t)N * IC);
    const double u = dt == QT_DTYPE_F16 ? 0x1p-11 : 0x1p-8;
    int nonzero = 0;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < IC; c++) {
            const size_t i = (size_t)r * IC + c;
            double s = 0.0;
            for (int k = 0; k < OC; k++)
                s += fabs((double)g[(size_t)r * OC + k] * w[(size_t)k * IC + c]);
            const double tol = u * fabs(want[i]) + GELU_SLOPE * (1e-5 * s + 0x1p-11 * fabs(acc[i])) +
                               1e-30;
            ck_assert_msg(fabs(got[i] - want[i]) <= tol,
                          "gemm_dgelu %s N %d IC %d OC %d: dx[%d][%d] = %.9g, want %.9g (pre "
                          "%.9g, GEMM %.9g)", qt_dtype_name(dt), N, IC, OC, r, c, (double)got[i],
                          (double)want[i], (double)pre[i], (double)acc[i]);
            nonzero += want[i] != acc[i];
        }
    ck_assert_msg(nonzero > 0, "gemm_dgelu: the factor gelu'(pre) never mattered");
    ck_assert_msg(qt_ct_guard_ok(dt, ddx, (size_t)N * IC), "gemm_dgelu %s: wrote past dx",
                  qt_dtype_name(dt));
    qt_ct_free(dg);
    qt_ct_free(dw);
    qt_ct_free(dpre);
    qt_ct_free(ddx);
    free(g);
    free(w);
    free(pre);
    free(want);
    free(acc);
    free(got);
}

START_TEST(test_gemm_act_matches_cpu) {
    void *handle = NULL;
    ck_assert_msg(qt_cuda_gemm_create(&handle, 0) == QT_OK, "%s", qt_last_error());
    static const int SHAPES[][3] = {{1, 5, 8}, {33, 17, 24}, {67, 64, 40}};
    for (int di = 1; di < 3; di++)
        for (int i = 0; i < 3; i++) {
            const uint64_t seed = 7300 + 10 * (uint64_t)i + (uint64_t)di;
            const int N = SHAPES[i][0], IC = SHAPES[i][1], OC = SHAPES[i][2];
            for (int bias = 0; bias < 2; bias++) {
                check_gemm_act_fwd(DTYPES[di], QT_LINEAR_ACT_GELU, 1, bias, N, IC, OC, seed, handle);
                check_gemm_act_fwd(DTYPES[di], QT_LINEAR_ACT_GELU, 0, bias, N, IC, OC, seed, handle);
                check_gemm_act_fwd(DTYPES[di], QT_LINEAR_ACT_RELU, 0, bias, N, IC, OC, seed, handle);
            }
            // the backward: its output width is the forward's input width (a multiple of 8)
            check_gemm_dgelu(DTYPES[di], N, OC, IC, seed + 5, handle);
        }
    qt_cuda_gemm_destroy(handle);
}
END_TEST

static void expect_refused(qt_status st, const char *what, const char *says) {
    ck_assert_msg(st == QT_ERR_ARG, "%s: status %d", what, (int)st);
    ck_assert_msg(strstr(qt_last_error(), says) != NULL, "%s: message '%s' does not say '%s'",
                  what, qt_last_error(), says);
}

// What the epilogues decline is refused naming the problem, and qt_cuda_gemm_act_supported
// says so first (the backend then composes).
START_TEST(test_gemm_act_refusals) {
    void *handle = NULL;
    ck_assert_msg(qt_cuda_gemm_create(&handle, 0) == QT_OK, "%s", qt_last_error());
    const qt_dtype h = QT_DTYPE_F16;
    void *a = qt_ct_alloc(h, 256), *b = qt_ct_alloc(h, 256), *c = qt_ct_alloc(h, 256);
    void *p = qt_ct_alloc(h, 256), *f = qt_ct_alloc(QT_DTYPE_F32, 256);
    const qt_gemm_desc ok = qt_gemm_desc_single(0, 1, 3, 8, 4, 0.0f, 4, 4, 8);
    ck_assert(qt_cuda_gemm_act_supported(h, &ok, a, b, c, NULL, p));
    ck_assert_int_eq(qt_cuda_gemm_act_fwd(NULL, h, &ok, a, b, c, NULL, QT_LINEAR_ACT_GELU, p,
                                          handle), QT_OK);
    const qt_gemm_desc odd = qt_gemm_desc_single(0, 1, 3, 6, 4, 0.0f, 4, 4, 6);
    qt_gemm_desc accum = ok;
    accum.beta = 1.0f;
    expect_refused(qt_cuda_gemm_act_fwd(NULL, QT_DTYPE_F32, &ok, f, f, f, NULL,
                                        QT_LINEAR_ACT_GELU, NULL, handle), "fp32", "fp16/bf16");
    expect_refused(qt_cuda_gemm_act_fwd(NULL, h, &odd, a, b, c, NULL, QT_LINEAR_ACT_RELU, NULL,
                                        handle), "ldc 6", "multiple of 8");
    expect_refused(qt_cuda_gemm_dgelu(NULL, h, &accum, a, b, c, p, handle), "beta 1", "beta 0");
    expect_refused(qt_cuda_gemm_act_fwd(NULL, h, &ok, a, b, c, NULL, QT_LINEAR_ACT_RELU, p,
                                        handle), "ReLU with pre", "ReLU keeps no pre");
    expect_refused(qt_cuda_gemm_dgelu(NULL, h, &ok, a, b, c, NULL, handle), "DGELU without pre",
                   "pre (GELU's input) is NULL");
    expect_refused(qt_cuda_gemm_act_fwd(NULL, h, &ok, a, b, c, NULL, (qt_linear_act)9, NULL,
                                        handle), "unknown activation", "neither GELU");
    expect_refused(qt_cuda_gemm_act_fwd(NULL, h, &ok, a, b, p, NULL, QT_LINEAR_ACT_GELU,
                                        (char *)p + 16, handle), "pre overlapping C",
                   "overlaps");
    ck_assert(!qt_cuda_gemm_act_supported(QT_DTYPE_F32, &ok, f, f, f, NULL, NULL));
    ck_assert(!qt_cuda_gemm_act_supported(h, &odd, a, b, c, NULL, NULL));
    ck_assert(!qt_cuda_gemm_act_supported(h, &accum, a, b, c, NULL, p));
    ck_assert(!qt_cuda_gemm_act_supported(h, &ok, a, b, (char *)c + 2, NULL, NULL));
    qt_ct_free(a);
    qt_ct_free(b);
    qt_ct_free(c);
    qt_ct_free(p);
    qt_ct_free(f);
    qt_cuda_gemm_destroy(handle);
}
END_TEST

// ---- kept pointer tables: written once, reused while the buffers' contents change ----------

// scores (b, h) (T, T) = Q_bh K_bh^T over qkv (B, T, 3C), fp32, as the model's attention
// addresses it; want computed in double.
static void attention_scores_ref(float *want, const float *qkv, int B, int T, int C, int H) {
    const int D = C / H;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++) {
                    double acc = 0.0;
                    for (int k = 0; k < D; k++)
                        acc += (double)qkv[((size_t)b * T + i) * 3 * C + h * D + k] *
                               qkv[((size_t)b * T + j) * 3 * C + C + h * D + k];
                    want[(((size_t)b * H + h) * T + i) * T + j] = (float)acc;
                }
}

START_TEST(test_gemm_kept_table) {
    enum { Bb = 3, Tt = 5, Cc = 8, Hh = 2, Dd = 4 };
    void *handle = NULL;
    ck_assert_int_eq(qt_cuda_gemm_create(&handle, 0), QT_OK);
    const size_t nq = (size_t)Bb * Tt * 3 * Cc, ns = (size_t)Bb * Hh * Tt * Tt;
    const qt_gemm_desc d = {.trans_a = 0, .trans_b = 1, .M = Tt, .N = Tt, .K = Dd, .alpha = 1.0f,
                            .beta = 0.0f, .lda = 3 * Cc, .ldb = 3 * Cc, .ldc = Tt,
                            .batch = Bb * Hh, .inner = Hh, .a_outer = Tt * 3 * Cc,
                            .a_inner = Dd, .b_outer = Tt * 3 * Cc, .b_inner = Dd,
                            .c_outer = Hh * Tt * Tt, .c_inner = Tt * Tt};
    const size_t n = qt_cuda_gemm_table_entries(&d);
    ck_assert_msg(n == 3 * Bb * Hh, "%zu table entries, want %d", n, 3 * Bb * Hh);
    float *qkv = NULL, *scores = NULL;
    void **table = NULL;
    ck_assert(cudaMalloc((void **)&qkv, nq * sizeof(float)) == cudaSuccess);
    ck_assert(cudaMalloc((void **)&scores, ns * sizeof(float)) == cudaSuccess);
    ck_assert(cudaMalloc((void **)&table, n * sizeof(void *)) == cudaSuccess);
    ck_assert(cudaMemset(table, 0xFF, n * sizeof(void *)) == cudaSuccess); // poisoned
    float *want = malloc(ns * sizeof *want), *got = malloc(ns * sizeof *got);
    for (int pass = 0; pass < 2; pass++) {
        // new contents of the same buffers; the table is written in the first pass only
        float *host = qt_ct_rand_rounded(QT_DTYPE_F32, nq, -1.0f, 1.0f, 9100 + (uint64_t)pass);
        ck_assert(cudaMemcpy(qkv, host, nq * sizeof(float), cudaMemcpyHostToDevice) ==
                  cudaSuccess);
        ck_assert(cudaMemset(scores, 0xFF, ns * sizeof(float)) == cudaSuccess);
        if (pass == 0)
            ck_assert_msg(qt_cuda_gemm_table_write(NULL, QT_DTYPE_F32, &d, qkv, qkv + Cc, scores,
                                                   table) == QT_OK, "%s", qt_last_error());
        ck_assert_msg(qt_cuda_gemm_tabled(NULL, QT_DTYPE_F32, &d, qkv, qkv + Cc, scores, table,
                                          handle) == QT_OK, "%s", qt_last_error());
        attention_scores_ref(want, host, Bb, Tt, Cc, Hh);
        ck_assert(cudaMemcpy(got, scores, ns * sizeof(float), cudaMemcpyDeviceToHost) ==
                  cudaSuccess);
        for (size_t i = 0; i < ns; i++)
            ck_assert_msg(fabsf(got[i] - want[i]) <= 1e-5f, "pass %d: scores[%zu] = %g, want %g",
                          pass, i, (double)got[i], (double)want[i]);
        free(host);
    }
    // On a GPU, cuBLASLt must have taken the pointer-array call (the cost model counts one
    // call; a declined shape would silently run min(B, H) strided calls).
    ck_assert_msg(qt_cuda_gemm_declined(handle) == 0,
                  "cuBLASLt declined the pointer-array call for %d shape(s): attention's GEMMs "
                  "run as per-head strided calls", qt_cuda_gemm_declined(handle));
    // A GEMM that needs no table, or no table given, is refused naming the problem.
    const qt_gemm_desc one = qt_gemm_desc_single(0, 1, 2, 2, 2, 0.0f, 2, 2, 2);
    ck_assert_int_eq(qt_cuda_gemm_table_entries(&one), 0);
    ck_assert_int_eq(qt_cuda_gemm_table_write(NULL, QT_DTYPE_F32, &one, qkv, qkv, scores, table),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "no pointer table"));
    ck_assert_int_eq(qt_cuda_gemm_tabled(NULL, QT_DTYPE_F32, &d, qkv, qkv + Cc, scores, NULL,
                                         handle),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "table"));
    free(want);
    free(got);
    cudaFree(qkv);
    cudaFree(scores);
    cudaFree(table);
    qt_cuda_gemm_destroy(handle);
}
END_TEST

int main(void) {
    qt_ct_require_device();
    Suite *s = suite_create("cuda_gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gemm_matches_reference, 0, NCASES);
    tcase_add_test(tc, test_gemm_rejects_bad_arguments);
    tcase_add_test(tc, test_gemm_bias_matches_linear_fwd);
    tcase_add_test(tc, test_gemm_act_matches_cpu);
    tcase_add_test(tc, test_gemm_act_refusals);
    tcase_add_test(tc, test_gemm_kept_table);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

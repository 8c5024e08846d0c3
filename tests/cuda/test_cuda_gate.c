// test_cuda_gate.c: qt_cuda_gate_{fwd,bwd} and qt_cuda_gate_mul_{fwd,bwd}
// (kernels/cuda/gate.cu) against the CPU reference ops (kernels/cpu/gate.c).
//
// Inputs are random and rounded to the dtype; the gate's reference is the CPU's double twin
// (qt_cpu_gate_{fwd,bwd}_f64) on exactly those values, so the tolerance measures the kernel's
// fp32 error alone. Every linear/mlp/all_heads case uses odd shapes (D = 4, 12, 32, 65, 11;
// C = 130 > 4 warps' strides; N = 1, 5, 33, 37, 70, not multiples of the 8 thread rows or the
// 4-warp block). Outputs poisoned (NaN), guard bands checked, gradients accumulate onto random
// start values. Tolerances, err <= atol + rtol |ref| (NaN fails):
//   gate, hidden, dgate (fp32 whatever dt): atol 1e-6, rtol 1e-5 (dot products of up to 130
//                                    terms of magnitude <= 0.5: a few fp32 ulps of their sum);
//   gradients in dt: qt_ct_tolerance(dt): fp32 1e-6 + 1e-5 |ref| (sums over up to 70 tokens
//                    on top of the start), fp16/bf16 one rounding of the fp32 result to dt.
// (Measured: the largest fp32 error is under 0.3 of its tolerance, fp16/bf16 under 0.1.)
// gate_mul's forward is one fp32 product rounded to dt, so it must match the CPU's by bits.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_testutil.h"
#include "kernels/gate.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
static const qt_gate_kind KINDS[3] = {QT_GATE_LINEAR, QT_GATE_MLP, QT_GATE_ALL_HEADS};
// (N, C, H, n_hid)
static const int GATE_SHAPES[][4] = {
    {1, 8, 2, 3}, {37, 48, 4, 5}, {33, 96, 3, 7}, {5, 130, 2, 4}, {70, 66, 6, 1}};
#define N_GATE_SHAPES ((int)(sizeof GATE_SHAPES / sizeof GATE_SHAPES[0]))

static const char *kind_name(qt_gate_kind k) {
    return k == QT_GATE_LINEAR ? "linear" : k == QT_GATE_MLP ? "mlp" : "all_heads";
}

// A host tensor: random, rounded to dt, with its double copy and a device copy.
typedef struct {
    size_t n;
    float *h;  // (n) rounded to dt
    double *d; // (n) the same values
    void *dev; // dt on the device, guard band after it
} tensor;

static tensor tensor_rand(qt_dtype dt, size_t n, float lo, float hi, uint64_t seed) {
    tensor t = {n, malloc((n + 1) * sizeof(float)), malloc((n + 1) * sizeof(double)), NULL};
    qt_test_fill_uniform(t.h, n, lo, hi, seed);
    for (size_t i = 0; i < n; i++) {
        t.h[i] = qt_ct_round(dt, t.h[i]);
        t.d[i] = t.h[i];
    }
    t.dev = qt_ct_upload(dt, t.h, n);
    return t;
}

static void tensor_free(tensor *t) {
    free(t->h);
    free(t->d);
    qt_ct_free(t->dev);
}

// max error of dev (n of dt) against the double reference, in units of atol + rtol |ref|.
static double dev_err(qt_dtype dt, const void *dev, const double *ref, size_t n, double atol,
                      double rtol) {
    float *got = malloc((n + 1) * sizeof(float)), *want = malloc((n + 1) * sizeof(float));
    qt_ct_download(dt, got, dev, n);
    for (size_t i = 0; i < n; i++) want[i] = (float)ref[i];
    double e = qt_test_max_err(got, want, n, atol, rtol);
    free(got);
    free(want);
    return e;
}

static double *download_f64(const float *dev, size_t n) {
    float *f = malloc((n + 1) * sizeof(float));
    double *d = malloc((n + 1) * sizeof(double));
    qt_ct_download(QT_DTYPE_F32, f, dev, n);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

// Which gradients a backward call asks for (NULL pointers skip the others).
enum { G_DX = 1, G_DW1 = 2, G_DB1 = 4, G_DW2 = 8, G_DB2 = 16, G_ALL = 31 };

static void check_gate_case(qt_dtype dt, qt_gate_kind kind, const int shape[4], unsigned want,
                            uint64_t seed) {
    const int N = shape[0], C = shape[1], H = shape[2], nh = shape[3], D = C / H;
    const int mlp = kind == QT_GATE_MLP;
    const qt_gate_shape g = {.kind = kind, .n_heads = H, .n_hid = mlp ? nh : 0};
    const size_t n_w1 = mlp ? (size_t)H * nh * D : kind == QT_GATE_ALL_HEADS ? (size_t)H * C
                                                                                : (size_t)H * D;
    const size_t n_b1 = mlp ? (size_t)H * nh : (size_t)H, n_hid = (size_t)N * H * nh;
    const size_t nx = (size_t)N * C, ng = (size_t)N * H;
    char tag[160];
    snprintf(tag, sizeof tag, "gate %s %s (N %d, C %d, H %d, n_hid %d) grads %#x seed %llu",
             qt_dtype_name(dt), kind_name(kind), N, C, H, nh, want, (unsigned long long)seed);

    tensor x = tensor_rand(dt, nx, -1.0f, 1.0f, seed);
    tensor w1 = tensor_rand(dt, n_w1, -0.5f, 0.5f, seed + 1);
    tensor b1 = tensor_rand(dt, n_b1, -0.5f, 0.5f, seed + 2);
    tensor w2 = tensor_rand(dt, (size_t)H * nh, -1.0f, 1.0f, seed + 3);
    tensor b2 = tensor_rand(dt, (size_t)H, -1.0f, 1.0f, seed + 4);
    float *d_gate = qt_ct_alloc(QT_DTYPE_F32, ng);
    float *d_hid = mlp ? qt_ct_alloc(QT_DTYPE_F32, n_hid) : NULL;

    // forward
    double *ref_gate = malloc(ng * sizeof(double)), *ref_hid = malloc((n_hid + 1) * 8);
    qt_cpu_gate_fwd_f64(&g, ref_gate, mlp ? ref_hid : NULL, x.d, w1.d, b1.d, mlp ? w2.d : NULL,
                        mlp ? b2.d : NULL, N, C);
    qt_status s = qt_cuda_gate_fwd(NULL, dt, &g, d_gate, d_hid, x.dev, w1.dev, b1.dev,
                                   mlp ? w2.dev : NULL, mlp ? b2.dev : NULL, N, C);
    ck_assert_msg(s == QT_OK, "%s: fwd returned %d: %s", tag, (int)s, qt_last_error());
    double e = dev_err(QT_DTYPE_F32, d_gate, ref_gate, ng, 1e-6, 1e-5);
    ck_assert_msg(e <= 1.0, "%s: gate error %g x tolerance", tag, e);
    ck_assert_msg(qt_ct_guard_ok(QT_DTYPE_F32, d_gate, ng), "%s: fwd wrote past gate", tag);
    if (mlp) {
        e = dev_err(QT_DTYPE_F32, d_hid, ref_hid, n_hid, 1e-6, 1e-5);
        ck_assert_msg(e <= 1.0, "%s: hidden error %g x tolerance", tag, e);
        ck_assert_msg(qt_ct_guard_ok(QT_DTYPE_F32, d_hid, n_hid), "%s: fwd wrote past hidden",
                      tag);
    }

    // backward on the kernel's gate and hidden, onto random start values
    double *gate_d = download_f64(d_gate, ng), *hid_d = mlp ? download_f64(d_hid, n_hid) : NULL;
    tensor dgate = tensor_rand(QT_DTYPE_F32, ng, -1.0f, 1.0f, seed + 5);
    tensor dx = tensor_rand(dt, nx, -1.0f, 1.0f, seed + 6);
    tensor dw1 = tensor_rand(dt, n_w1, -1.0f, 1.0f, seed + 7);
    tensor db1 = tensor_rand(dt, n_b1, -1.0f, 1.0f, seed + 8);
    tensor dw2 = tensor_rand(dt, (size_t)H * nh, -1.0f, 1.0f, seed + 9);
    tensor db2 = tensor_rand(dt, (size_t)H, -1.0f, 1.0f, seed + 10);
    const int has_w2 = mlp && (want & G_DW2), has_b2 = mlp && (want & G_DB2);
    qt_cpu_gate_bwd_f64(&g, want & G_DX ? dx.d : NULL, want & G_DW1 ? dw1.d : NULL,
                        want & G_DB1 ? db1.d : NULL, has_w2 ? dw2.d : NULL,
                        has_b2 ? db2.d : NULL, dgate.d, gate_d, hid_d, x.d, w1.d,
                        mlp ? w2.d : NULL, N, C);
    s = qt_cuda_gate_bwd(NULL, dt, &g, want & G_DX ? dx.dev : NULL,
                         want & G_DW1 ? dw1.dev : NULL, want & G_DB1 ? db1.dev : NULL,
                         has_w2 ? dw2.dev : NULL, has_b2 ? db2.dev : NULL, dgate.dev, d_gate,
                         d_hid, x.dev, w1.dev, mlp ? w2.dev : NULL, N, C);
    ck_assert_msg(s == QT_OK, "%s: bwd returned %d: %s", tag, (int)s, qt_last_error());
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    // A skipped gradient keeps its start values, which the double copy still holds.
    const struct {
        const char *name;
        tensor *t;
    } grads[5] = {{"dx", &dx}, {"dw1", &dw1}, {"db1", &db1}, {"dw2", &dw2}, {"db2", &db2}};
    for (int k = 0; k < 5; k++) {
        e = dev_err(dt, grads[k].t->dev, grads[k].t->d, grads[k].t->n, atol, rtol);
        ck_assert_msg(e <= 1.0, "%s: %s error %g x tolerance", tag, grads[k].name, e);
        ck_assert_msg(qt_ct_guard_ok(dt, grads[k].t->dev, grads[k].t->n),
                      "%s: bwd wrote past the end of %s", tag, grads[k].name);
    }

    tensor *all[] = {&x, &w1, &b1, &w2, &b2, &dgate, &dx, &dw1, &db1, &dw2, &db2};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) tensor_free(all[k]);
    qt_ct_free(d_gate);
    qt_ct_free(d_hid);
    free(ref_gate);
    free(ref_hid);
    free(gate_d);
    free(hid_d);
}

START_TEST(test_gate_vs_cpu) {
    // _i: dtype
    for (int k = 0; k < 3; k++)
        for (int sh = 0; sh < N_GATE_SHAPES; sh++)
            check_gate_case(DTYPES[_i], KINDS[k], GATE_SHAPES[sh], G_ALL,
                            2000u + 100u * (uint64_t)k + (uint64_t)sh);
    // Qwen's elementwise gate (attn.gate = elementwise): all heads with one gate per channel
    const int per_channel[4] = {19, 24, 24, 1};
    check_gate_case(DTYPES[_i], QT_GATE_ALL_HEADS, per_channel, G_ALL, 2999u);
}
END_TEST

// NULL gradients are skipped (not written, not dereferenced); the others stay right.
START_TEST(test_gate_bwd_subsets) {
    const unsigned subsets[] = {G_DX, G_DW1, G_DB1 | G_DB2, G_DW2, G_DB2, G_DW1 | G_DW2};
    for (size_t i = 0; i < sizeof subsets / sizeof subsets[0]; i++)
        for (int k = 0; k < 3; k++)
            check_gate_case(QT_DTYPE_F32, KINDS[k], GATE_SHAPES[1], subsets[i], 3000u + i);
}
END_TEST

// Two backward runs from the same start give the same bits (fixed reduction order).
START_TEST(test_gate_bwd_deterministic) {
    const int N = 70, C = 66, H = 6, nh = 3, D = C / H;
    const qt_gate_shape g = {.kind = QT_GATE_MLP, .n_heads = H, .n_hid = nh};
    const size_t n_w1 = (size_t)H * nh * D;
    tensor x = tensor_rand(QT_DTYPE_F32, (size_t)N * C, -1, 1, 1);
    tensor w1 = tensor_rand(QT_DTYPE_F32, n_w1, -0.5f, 0.5f, 2);
    tensor b1 = tensor_rand(QT_DTYPE_F32, (size_t)H * nh, -0.5f, 0.5f, 3);
    tensor w2 = tensor_rand(QT_DTYPE_F32, (size_t)H * nh, -1, 1, 4);
    tensor b2 = tensor_rand(QT_DTYPE_F32, (size_t)H, -1, 1, 5);
    tensor dgate = tensor_rand(QT_DTYPE_F32, (size_t)N * H, -1, 1, 6);
    float *d_gate = qt_ct_alloc(QT_DTYPE_F32, (size_t)N * H);
    float *d_hid = qt_ct_alloc(QT_DTYPE_F32, (size_t)N * H * nh);
    ck_assert_int_eq(qt_cuda_gate_fwd(NULL, QT_DTYPE_F32, &g, d_gate, d_hid, x.dev, w1.dev,
                                      b1.dev, w2.dev, b2.dev, N, C),
                     QT_OK);
    float *runs[2];
    for (int r = 0; r < 2; r++) {
        tensor dw1 = tensor_rand(QT_DTYPE_F32, n_w1, -1, 1, 7);
        ck_assert_int_eq(qt_cuda_gate_bwd(NULL, QT_DTYPE_F32, &g, NULL, dw1.dev, NULL, NULL, NULL,
                                          dgate.dev, d_gate, d_hid, x.dev, w1.dev, w2.dev, N, C),
                         QT_OK);
        runs[r] = malloc(n_w1 * sizeof(float));
        qt_ct_download(QT_DTYPE_F32, runs[r], dw1.dev, n_w1);
        tensor_free(&dw1);
    }
    ck_assert_msg(memcmp(runs[0], runs[1], n_w1 * sizeof(float)) == 0,
                  "gate_bwd: two runs differ in dw1 bits");
    free(runs[0]);
    free(runs[1]);
    tensor *all[] = {&x, &w1, &b1, &w2, &b2, &dgate};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) tensor_free(all[k]);
    qt_ct_free(d_gate);
    qt_ct_free(d_hid);
}
END_TEST

// ---- gate_mul ------------------------------------------------------------------------------

// the last: one gate per channel (H = C, the elementwise gate)
static const int MUL_SHAPES[][3] = {{1, 1, 1},    {7, 33, 3}, {37, 96, 4},
                                    {5, 1027, 1}, {9, 130, 2}, {11, 40, 40}};
#define N_MUL_SHAPES ((int)(sizeof MUL_SHAPES / sizeof MUL_SHAPES[0]))

START_TEST(test_gate_mul_vs_cpu) {
    const qt_dtype dt = DTYPES[_i];
    for (int sh = 0; sh < N_MUL_SHAPES; sh++) {
        const int N = MUL_SHAPES[sh][0], C = MUL_SHAPES[sh][1], H = MUL_SHAPES[sh][2];
        const size_t nx = (size_t)N * C, ng = (size_t)N * H;
        const uint64_t seed = 4000u + (uint64_t)sh;
        char tag[128];
        snprintf(tag, sizeof tag, "gate_mul %s (N %d, C %d, H %d) seed %llu", qt_dtype_name(dt),
                 N, C, H, (unsigned long long)seed);
        tensor gate = tensor_rand(QT_DTYPE_F32, ng, 0.0f, 1.0f, seed);
        tensor ctx = tensor_rand(dt, nx, -2.0f, 2.0f, seed + 1);
        tensor dout = tensor_rand(dt, nx, -1.0f, 1.0f, seed + 2);
        tensor dctx = tensor_rand(dt, nx, -1.0f, 1.0f, seed + 3);
        tensor dgate = tensor_rand(QT_DTYPE_F32, ng, -1.0f, 1.0f, seed + 4);
        float *ref = malloc(nx * sizeof(float)), *got = malloc(nx * sizeof(float));

        // forward: one product in fp32, rounded once: bits
        qt_cpu_gate_mul_fwd(ref, gate.h, ctx.h, N, C, H);
        for (size_t i = 0; i < nx; i++) ref[i] = qt_ct_round(dt, ref[i]);
        void *d_out = qt_ct_alloc(dt, nx);
        ck_assert_int_eq(qt_cuda_gate_mul_fwd(NULL, dt, d_out, gate.dev, ctx.dev, N, C, H), QT_OK);
        qt_ct_download(dt, got, d_out, nx);
        ck_assert_msg(memcmp(got, ref, nx * sizeof(float)) == 0, "%s: fwd differs from CPU", tag);
        ck_assert_msg(qt_ct_guard_ok(dt, d_out, nx), "%s: fwd wrote past out", tag);

        // backward, accumulating, double reference
        qt_cpu_gate_mul_bwd_f64(dctx.d, dgate.d, dout.d, gate.d, ctx.d, N, C, H);
        ck_assert_int_eq(qt_cuda_gate_mul_bwd(NULL, dt, dctx.dev, dgate.dev, dout.dev, gate.dev,
                                              ctx.dev, N, C, H),
                         QT_OK);
        double atol, rtol;
        qt_ct_tolerance(dt, &atol, &rtol);
        double e = dev_err(dt, dctx.dev, dctx.d, nx, atol, rtol);
        ck_assert_msg(e <= 1.0, "%s: dctx error %g x tolerance", tag, e);
        // dgate is fp32 whatever dt: a D-term dot on top of the start
        e = dev_err(QT_DTYPE_F32, dgate.dev, dgate.d, ng, 1e-6, 1e-5);
        ck_assert_msg(e <= 1.0, "%s: dgate error %g x tolerance", tag, e);
        ck_assert_msg(qt_ct_guard_ok(dt, dctx.dev, nx) &&
                          qt_ct_guard_ok(QT_DTYPE_F32, dgate.dev, ng),
                      "%s: bwd wrote past dctx or dgate", tag);

        // forward in place (out == ctx)
        ck_assert_int_eq(qt_cuda_gate_mul_fwd(NULL, dt, ctx.dev, gate.dev, ctx.dev, N, C, H),
                         QT_OK);
        qt_ct_download(dt, got, ctx.dev, nx);
        ck_assert_msg(memcmp(got, ref, nx * sizeof(float)) == 0, "%s: in-place fwd differs", tag);

        tensor *all[] = {&gate, &ctx, &dout, &dctx, &dgate};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) tensor_free(all[k]);
        qt_ct_free(d_out);
        free(ref);
        free(got);
    }
}
END_TEST

START_TEST(test_bad_args) {
    float v = 0.0f;
    qt_gate_shape g = {.kind = QT_GATE_NONE, .n_heads = 2, .n_hid = 0};
    ck_assert_int_eq(qt_cuda_gate_fwd(NULL, QT_DTYPE_F32, &g, &v, &v, &v, &v, &v, &v, &v, 1, 4),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "gate_fwd"));
    g.kind = (qt_gate_kind)9;
    ck_assert_int_eq(qt_cuda_gate_fwd(NULL, QT_DTYPE_F32, &g, &v, &v, &v, &v, &v, &v, &v, 1, 4),
                     QT_ERR_ARG);
    g.kind = QT_GATE_LINEAR;
    ck_assert_int_eq(qt_cuda_gate_fwd(NULL, QT_DTYPE_F32, &g, &v, &v, &v, &v, &v, &v, &v, 1, 5),
                     QT_ERR_ARG); // C not a multiple of H
    g.kind = QT_GATE_MLP;
    ck_assert_int_eq(qt_cuda_gate_bwd(NULL, QT_DTYPE_F32, &g, &v, &v, &v, &v, &v, &v, &v, &v, &v,
                                      &v, &v, 1, 4),
                     QT_ERR_ARG); // n_hid 0
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "gate_bwd"));
    g.n_hid = 2;
    ck_assert_int_eq(qt_cuda_gate_fwd(NULL, QT_DTYPE_F32, &g, &v, NULL, &v, &v, &v, &v, &v, 1, 4),
                     QT_ERR_ARG); // mlp without hidden
    ck_assert_int_eq(qt_cuda_gate_fwd(NULL, QT_DTYPE_F32, NULL, &v, &v, &v, &v, &v, &v, &v, 1, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_gate_mul_fwd(NULL, QT_DTYPE_F32, &v, &v, &v, 1, 6, 4), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "gate_mul_fwd"));
    ck_assert_int_eq(qt_cuda_gate_mul_bwd(NULL, (qt_dtype)4, &v, &v, &v, &v, &v, 1, 4, 4),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "gate_mul_bwd"));
    ck_assert_int_eq(qt_cuda_gate_mul_bwd(NULL, QT_DTYPE_F32, &v, &v, NULL, &v, &v, 1, 4, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_gate_mul_fwd(NULL, QT_DTYPE_F32, &v, &v, NULL, 1, 4, 4),
                     QT_ERR_ARG);
    g.kind = QT_GATE_LINEAR;
    ck_assert_int_eq(qt_cuda_gate_bwd(NULL, QT_DTYPE_F32, &g, &v, &v, &v, NULL, NULL, NULL, &v,
                                      NULL, &v, &v, NULL, 1, 4),
                     QT_ERR_ARG); // no dgate
    // more blocks than one launch takes: refused before anything is read
    g.n_heads = 8;
    ck_assert_int_eq(qt_cuda_gate_fwd(NULL, QT_DTYPE_F32, &g, &v, NULL, &v, &v, &v, NULL, NULL,
                                      2147483647, 8),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "split"));
    // nothing to do
    ck_assert_int_eq(qt_cuda_gate_mul_fwd(NULL, QT_DTYPE_F32, NULL, NULL, NULL, 0, 4, 4), QT_OK);
    ck_assert_int_eq(qt_cuda_gate_mul_bwd(NULL, QT_DTYPE_F32, NULL, NULL, NULL, NULL, NULL, 3, 4,
                                          4),
                     QT_OK);
}
END_TEST

static Suite *gate_suite(void) {
    Suite *s = suite_create("cuda_gate");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gate_vs_cpu, 0, 3);
    tcase_add_test(tc, test_gate_bwd_subsets);
    tcase_add_test(tc, test_gate_bwd_deterministic);
    tcase_add_loop_test(tc, test_gate_mul_vs_cpu, 0, 3);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(gate_suite());
}

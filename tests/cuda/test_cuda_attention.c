// test_cuda_attention.c: qt_cuda_attention_flash_{fwd,bwd} (kernels/cuda/attention.cu, mma
// m16n8k16) against the CPU reference qt_cpu_attention_flash_{fwd,bwd} (kernels/cpu/attention_impl.h).
//
// Every case: qkv and the learned sink rounded to the dtype first (the reference runs in fp32 on
// exactly the values the kernel reads; the gate is fp32 on both sides), outputs poisoned (NaN)
// by qt_ct_alloc and their guard bands checked. Shapes: odd T (1, 7, 65, 130, 257) so that no
// tile is full, head dims 64 and 128, causal lens and padded (bidirectional) lens.
// Tolerances, err <= atol + rtol |ref| (NaN fails), with |v| <= 1:
//   ctx, out, R: the kernel rounds P (or Pc, M P) to the dtype as the PV mma's operand, a relative
//     error of u = 2^-11 (fp16) or 2^-8 (bf16) per weight; the weights of a row sum to at most
//     a few (Pc = clip(a P + c) with a <= 2), so the absolute error is below 4 u max|v|, and ctx
//     and out are rounded to the dtype once more (u/2 relative): atol 4u, rtol u.
//   lse (fp32): scores from exact products of the same rounded inputs, summed in another order:
//     atol 1e-5, rtol 1e-5.
//   nzero: exact (the clip mask sees the same fp32 P up to an ulp; the draws keep clear of it).
//   dqkv, dsink: dA, Pc and dS are rounded to the dtype as mma operands: atol 4 u times the
//     largest gradient element, rtol u (the sum rounded into the dtype); dgate: 8 u, rtol u.
//   The backward adds into random gradients; the mutation build (QT_ATTENTION_MUTATION = 1, D by
//   FlashAttention-2's rowsum(dO * O)) must fail the clipped and NCS cases.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_testutil.h"
#include "kernels/attention.h"
#include "testutil.h"

typedef struct {
    qt_dtype dt;
    int D, T, kind, ncs_c_pos, sink, gate, padded;
    uint64_t seed;
} flash_case;

static const char *kind_name(int k) { return k == 0 ? "vanilla" : k == 1 ? "clipped" : "ncs"; }

static qt_attn_params make_params(const flash_case *fc) {
    qt_attn_params ap;
    memset(&ap, 0, sizeof ap);
    ap.sm.kind = (qt_softmax_kind)fc->kind;
    ap.sm.scale = 1.0f / sqrtf((float)fc->D);
    ap.sm.gamma = 0.0f;
    ap.sm.zeta = 1.0f;
    ap.sm.eta = 1.0f;
    ap.sm.beta = 1.0f;
    if (fc->kind == QT_SOFTMAX_CLIPPED) {
        ap.sm.gamma = -0.05f;
        ap.sm.zeta = 1.1f;
    } else if (fc->kind == QT_SOFTMAX_NCS) {
        ap.sm.eta = fc->ncs_c_pos ? 1.0f : 1.2f; // beta > eta: c > 0, masked keys must stay 0
        ap.sm.beta = fc->ncs_c_pos ? 1.5f : 0.5f;
    }
    ap.sink = (qt_sink_kind)fc->sink;
    ap.gate = (qt_attn_gate)fc->gate;
    return ap;
}

static double unit(qt_dtype dt) { return dt == QT_DTYPE_F16 ? 0x1p-11 : 0x1p-8; }

static void run_fwd_case(const flash_case *fc) {
    const int B = 2, H = 2, D = fc->D, C = H * D, T = fc->T;
    const size_t N = (size_t)B * T, nqkv = N * 3 * C, nc = N * C, nl = (size_t)B * H * T;
    const size_t ng = fc->gate == QT_ATTN_GATE_HEAD ? N * H : N * C;
    char tag[200];
    snprintf(tag, sizeof tag, "flash fwd %s D %d T %d %s%s sink %d gate %d %s seed %llu",
             qt_dtype_name(fc->dt), D, T, kind_name(fc->kind), fc->ncs_c_pos ? " (c > 0)" : "",
             fc->sink, fc->gate, fc->padded ? "padded" : "causal", (unsigned long long)fc->seed);
    const qt_attn_params ap = make_params(fc);
    // q in [-3, 3] for peaked rows (clipping at both ends), k and v in [-1, 1]
    float *qkv = qt_ct_rand_rounded(fc->dt, nqkv, -1.0f, 1.0f, fc->seed);
    for (size_t i = 0; i < N; i++)
        for (int c = 0; c < C; c++) qkv[i * 3 * C + c] = qt_ct_round(fc->dt, 3.0f * qkv[i * 3 * C + c]);
    float *gate = malloc(ng * sizeof(float));
    qt_test_fill_uniform(gate, ng, 0.1f, 0.9f, fc->seed + 1);
    float sink[2] = {qt_ct_round(fc->dt, 0.7f), qt_ct_round(fc->dt, -1.3f)};
    int *lens = malloc(N * sizeof(int));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const int lb = b == 0 ? T : (T * 2 + 2) / 3; // padded: the second sequence shorter
            lens[(size_t)b * T + t] = fc->padded ? lb : t + 1;
        }
    const int gated = fc->gate != QT_ATTN_GATE_NONE, clipv = fc->kind != QT_SOFTMAX_VANILLA;

    float *ref_out = malloc(nc * sizeof(float)), *ref_ctx = malloc(nc * sizeof(float));
    float *ref_R = malloc(nc * sizeof(float)), *ref_lse = malloc(nl * sizeof(float));
    int64_t ref_nz[4], got_nz[4];
    const size_t wsb = qt_cpu_attention_flash_ws_bytes(&ap, B, T, C, H, 1);
    void *ws = malloc(wsb);
    ck_assert_msg(qt_cpu_attention_flash_fwd(&ap, gated ? ref_out : NULL, ref_ctx, ref_lse,
                                             clipv ? ref_R : NULL, ref_nz, qkv,
                                             gated ? gate : NULL, fc->sink == 2 ? sink : NULL,
                                             lens, B, T, C, H, ws, wsb) == QT_OK,
                  "%s: cpu: %s", tag, qt_last_error());

    void *d_qkv = qt_ct_upload(fc->dt, qkv, nqkv), *d_sink = qt_ct_upload(fc->dt, sink, 2);
    float *d_gate = qt_ct_upload(QT_DTYPE_F32, gate, ng);
    void *d_ctx = qt_ct_alloc(fc->dt, nc), *d_out = qt_ct_alloc(fc->dt, nc);
    float *d_R = qt_ct_alloc(QT_DTYPE_F32, nc), *d_lse = qt_ct_alloc(QT_DTYPE_F32, nl);
    int64_t *d_nz = NULL;
    int *d_lens = NULL;
    ck_assert_int_eq(cudaMalloc((void **)&d_nz, sizeof ref_nz), cudaSuccess);
    ck_assert_int_eq(cudaMemset(d_nz, 0xFF, sizeof ref_nz), cudaSuccess);
    ck_assert_int_eq(cudaMalloc((void **)&d_lens, N * sizeof(int)), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(d_lens, lens, N * sizeof(int), cudaMemcpyHostToDevice),
                     cudaSuccess);
    const qt_status s = qt_cuda_attention_flash_fwd(
        NULL, fc->dt, &ap, gated ? d_out : NULL, d_ctx, d_lse, clipv ? d_R : NULL, d_nz, d_qkv,
        gated ? d_gate : NULL, fc->sink == 2 ? d_sink : NULL, d_lens, B, T, C, H);
    ck_assert_msg(s == QT_OK, "%s: returned %d: %s", tag, (int)s, qt_last_error());
    ck_assert_int_eq(cudaDeviceSynchronize(), cudaSuccess);

    const double u = unit(fc->dt);
    const double e_ctx = qt_ct_dev_err(fc->dt, d_ctx, ref_ctx, nc, 4 * u, u);
    ck_assert_msg(e_ctx <= 1.0, "%s: ctx error %g x tolerance", tag, e_ctx);
    const double e_lse = qt_ct_dev_err(QT_DTYPE_F32, d_lse, ref_lse, nl, 1e-5, 1e-5);
    ck_assert_msg(e_lse <= 1.0, "%s: lse error %g x tolerance", tag, e_lse);
    if (gated) {
        const double e_out = qt_ct_dev_err(fc->dt, d_out, ref_out, nc, 4 * u, u);
        ck_assert_msg(e_out <= 1.0, "%s: out error %g x tolerance", tag, e_out);
    }
    if (clipv) {
        const double e_R = qt_ct_dev_err(QT_DTYPE_F32, d_R, ref_R, nc, 4 * u, u);
        ck_assert_msg(e_R <= 1.0, "%s: R error %g x tolerance", tag, e_R);
    }
    ck_assert_int_eq(cudaMemcpy(got_nz, d_nz, sizeof got_nz, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int i = 0; i < B * H; i++)
        ck_assert_msg(got_nz[i] == ref_nz[i], "%s: nzero[%d] = %lld, want %lld", tag, i,
                      (long long)got_nz[i], (long long)ref_nz[i]);
    ck_assert_msg(qt_ct_guard_ok(fc->dt, d_ctx, nc) && qt_ct_guard_ok(QT_DTYPE_F32, d_lse, nl) &&
                      qt_ct_guard_ok(fc->dt, d_out, nc) && qt_ct_guard_ok(QT_DTYPE_F32, d_R, nc),
                  "%s: wrote past the end of an output", tag);

    // ---- backward: each side on its own forward's ctx, lse, R; adds into random gradients
    float *dout = qt_ct_rand_rounded(fc->dt, nc, -1.0f, 1.0f, fc->seed + 3);
    float *dqkv = qt_ct_rand_rounded(fc->dt, nqkv, -1.0f, 1.0f, fc->seed + 4);
    float *dgate = malloc(ng * sizeof(float));
    qt_test_fill_uniform(dgate, ng, -1.0f, 1.0f, fc->seed + 5);
    float dsink[2] = {qt_ct_round(fc->dt, 0.25f), qt_ct_round(fc->dt, -0.5f)};
    float *ref_dqkv = malloc(nqkv * sizeof(float)), *ref_dgate = malloc(ng * sizeof(float));
    float ref_dsink[2] = {dsink[0], dsink[1]};
    memcpy(ref_dqkv, dqkv, nqkv * sizeof(float));
    memcpy(ref_dgate, dgate, ng * sizeof(float));
    ck_assert_msg(qt_cpu_attention_flash_bwd(&ap, ref_dqkv, gated ? ref_dgate : NULL,
                                             fc->sink == 2 ? ref_dsink : NULL, dout, qkv, ref_ctx,
                                             ref_lse, clipv ? ref_R : NULL, gated ? gate : NULL,
                                             fc->sink == 2 ? sink : NULL, lens, B, T, C, H, ws,
                                             wsb) == QT_OK,
                  "%s: cpu bwd: %s", tag, qt_last_error());
    void *d_dout = qt_ct_upload(fc->dt, dout, nc), *d_dqkv = qt_ct_upload(fc->dt, dqkv, nqkv);
    float *d_dgate = qt_ct_upload(QT_DTYPE_F32, dgate, ng);
    void *d_dsink = qt_ct_upload(fc->dt, dsink, 2);
    const size_t cws = qt_cuda_attention_flash_ws_bytes(fc->dt, B, T, C, H);
    void *d_ws = qt_ct_alloc(QT_DTYPE_F32, cws / 4 + 1);
    const qt_status sb = qt_cuda_attention_flash_bwd(
        NULL, fc->dt, &ap, d_dqkv, gated ? d_dgate : NULL, fc->sink == 2 ? d_dsink : NULL, d_dout,
        d_qkv, d_ctx, d_lse, clipv ? d_R : NULL, gated ? d_gate : NULL,
        fc->sink == 2 ? d_sink : NULL, d_lens, B, T, C, H, d_ws, cws);
    ck_assert_msg(sb == QT_OK, "%s: bwd returned %d: %s", tag, (int)sb, qt_last_error());
    ck_assert_int_eq(cudaDeviceSynchronize(), cudaSuccess);
    // dq, dk, dv: dA, Pc and dS are rounded to the dtype as mma operands (u relative each), so
    // the error is a few u of the gradient's scale, plus the rounding of the sum to the dtype
    double gmax = 0.0;
    for (size_t i = 0; i < nqkv; i++) gmax = fmax(gmax, fabs((double)ref_dqkv[i] - dqkv[i]));
    const double e_dqkv = qt_ct_dev_err(fc->dt, d_dqkv, ref_dqkv, nqkv, 4 * u * gmax + 1e-6, u);
    ck_assert_msg(e_dqkv <= 1.0, "%s: dqkv error %g x tolerance (gradient scale %g)", tag, e_dqkv,
                  gmax);
    if (gated) {
        double gm = 0.0;
        for (size_t i = 0; i < ng; i++) gm = fmax(gm, fabs((double)ref_dgate[i] - dgate[i]));
        const double e_dg = qt_ct_dev_err(QT_DTYPE_F32, d_dgate, ref_dgate, ng, 8 * u * gm + 1e-6, u);
        ck_assert_msg(e_dg <= 1.0, "%s: dgate error %g x tolerance", tag, e_dg);
    }
    if (fc->sink == 2) {
        const double sm = fmax(fabs(ref_dsink[0] - dsink[0]), fabs(ref_dsink[1] - dsink[1]));
        const double e_ds = qt_ct_dev_err(fc->dt, d_dsink, ref_dsink, 2, 4 * u * sm + 1e-6, u);
        ck_assert_msg(e_ds <= 1.0, "%s: dsink error %g x tolerance", tag, e_ds);
    }
    ck_assert_msg(qt_ct_guard_ok(fc->dt, d_dqkv, nqkv) && qt_ct_guard_ok(QT_DTYPE_F32, d_dgate, ng),
                  "%s: bwd wrote past the end of a gradient", tag);
    qt_ct_free(d_dout);
    qt_ct_free(d_dqkv);
    qt_ct_free(d_dgate);
    qt_ct_free(d_dsink);
    qt_ct_free(d_ws);
    free(dout);
    free(dqkv);
    free(dgate);
    free(ref_dqkv);
    free(ref_dgate);
    qt_ct_free(d_qkv);
    qt_ct_free(d_sink);
    qt_ct_free(d_gate);
    qt_ct_free(d_ctx);
    qt_ct_free(d_out);
    qt_ct_free(d_R);
    qt_ct_free(d_lse);
    cudaFree(d_nz);
    cudaFree(d_lens);
    free(qkv);
    free(gate);
    free(lens);
    free(ref_out);
    free(ref_ctx);
    free(ref_R);
    free(ref_lse);
    free(ws);
}

static const qt_dtype DTYPES[2] = {QT_DTYPE_F16, QT_DTYPE_BF16};

// dtype x head dim x T in {1, 7, 65, 130} x {vanilla, clipped, NCS with c > 0}, causal and padded
START_TEST(test_fwd_shapes) {
    static const int Ts[4] = {1, 7, 65, 130};
    const qt_dtype dt = DTYPES[_i % 2];
    const int D = (_i / 2) % 2 ? 128 : 64;
    for (int ti = 0; ti < 4; ti++)
        for (int kind = 0; kind < 3; kind++)
            for (int padded = 0; padded < 2; padded++) {
                const flash_case fc = {dt,   D, Ts[ti], kind, kind == 2, 0, 0, padded,
                                       (uint64_t)(100 + 10 * ti + kind)};
                run_fwd_case(&fc);
            }
}
END_TEST

// every softmax variant x sink x gate at a small T
START_TEST(test_fwd_variants) {
    const qt_dtype dt = DTYPES[_i % 2];
    for (int kind = 0; kind < 3; kind++)
        for (int sink = 0; sink < 3; sink++)
            for (int gate = 0; gate < 3; gate++) {
                const flash_case fc = {dt,   64,   7, kind, kind == 2, sink, gate, (sink + gate) % 2,
                                       (uint64_t)(7 + 9 * kind + 3 * sink + gate)};
                run_fwd_case(&fc);
            }
}
END_TEST

// T = 257: five query tiles, the last of one row
START_TEST(test_fwd_long) {
    const flash_case a = {QT_DTYPE_F16, 64, 257, QT_SOFTMAX_CLIPPED, 0, 2, 1, 0, 31};
    run_fwd_case(&a);
    const flash_case b = {QT_DTYPE_BF16, 128, 257, QT_SOFTMAX_NCS, 1, 1, 2, 1, 32};
    run_fwd_case(&b);
}
END_TEST

START_TEST(test_bad_args) {
    qt_attn_params ap;
    memset(&ap, 0, sizeof ap);
    ap.sm.kind = QT_SOFTMAX_VANILLA;
    ap.sm.scale = 0.125f;
    float x[4] = {0};
    int len = 1;
    int64_t nz = 0;
    // fp32: no tensor-core kernel
    ck_assert_int_eq(qt_cuda_attention_flash_fwd(NULL, QT_DTYPE_F32, &ap, NULL, x, x, NULL, &nz, x,
                                                 NULL, NULL, &len, 1, 1, 64, 1),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "attention_flash_fwd"));
    // head dim 32
    ck_assert_int_eq(qt_cuda_attention_flash_fwd(NULL, QT_DTYPE_F16, &ap, NULL, x, x, NULL, &nz, x,
                                                 NULL, NULL, &len, 1, 1, 64, 2),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_attention_flash_supported(QT_DTYPE_F16, 32), 0);
    ck_assert_int_eq(qt_cuda_attention_flash_supported(QT_DTYPE_BF16, 128), 1);
    // gated without a gate
    ap.gate = QT_ATTN_GATE_HEAD;
    ck_assert_int_eq(qt_cuda_attention_flash_fwd(NULL, QT_DTYPE_F16, &ap, x, x, x, NULL, &nz, x,
                                                 NULL, NULL, &len, 1, 1, 64, 1),
                     QT_ERR_ARG);
    ap.gate = QT_ATTN_GATE_NONE;
    ap.sm.kind = (qt_softmax_kind)5;
    ck_assert_int_eq(qt_cuda_attention_flash_fwd(NULL, QT_DTYPE_F16, &ap, NULL, x, x, NULL, &nz, x,
                                                 NULL, NULL, &len, 1, 1, 64, 1),
                     QT_ERR_ARG);
    // the CPU op's parameter checks (base/params_check.h): clipped softmax with gamma > 0
    ap.sm.kind = QT_SOFTMAX_CLIPPED;
    ap.sm.gamma = 0.1f;
    ap.sm.zeta = 1.0f;
    ck_assert_int_eq(qt_cuda_attention_flash_fwd(NULL, QT_DTYPE_F16, &ap, NULL, x, x, NULL, &nz, x,
                                                 NULL, NULL, &len, 1, 1, 64, 1),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "gamma"));
    ck_assert_int_eq(x[0], 0.0f); // refused calls write nothing
    ck_assert_int_eq(nz, 0);
}
END_TEST

static Suite *attention_suite(void) {
    Suite *s = suite_create("cuda_attention");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_fwd_shapes, 0, 4);
    tcase_add_loop_test(tc, test_fwd_variants, 0, 2);
    tcase_add_test(tc, test_fwd_long);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(attention_suite());
}

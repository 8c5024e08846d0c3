// test_cuda_embedding.c: kernels/cuda/embedding.cu against the CPU reference
// (qt_cpu_embedding_{fwd,bwd,bwd_sorted}) on random tokens with many repeats, odd shapes, in fp32, fp16
// and bf16, with outputs poisoned (NaN), gradients pre-filled and guard bands checked; with and
// without position embeddings (wpe / dwpe NULL: token embeddings only, as in LLaMA).
// Inputs are rounded to the dtype first, so the reference sees exactly what the kernel reads.
// Tolerances (err <= atol + rtol |ref|): the forward is one fp32 add and one rounding, compared
// with qt_ct_tolerance (fp32 1e-6 + 1e-5 relative; fp16 1e-3 + 4e-3; bf16 1e-2 + 3e-2); the
// backward sums up to B T rows of size ~1 per element, so its atol is scaled by sqrt(B T).
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/embedding.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
// (B, T, C, V): one token; odd channel counts around the block widths (128, 256) and the warp;
// a small vocabulary (many repeats, several in one 256-token scan step and across steps);
// more tokens than one scan step (B T > 256) with every token identical (V = 1).
static const int SHAPES[][4] = {{1, 1, 1, 1},    {2, 33, 31, 7},  {3, 5, 1027, 11},
                                {1, 64, 33, 50}, {4, 17, 257, 3}, {3, 100, 45, 1},
                                {2, 150, 129, 40}};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

// N tokens in [0, V), deterministic from seed.
static int *rand_tokens(int N, int V, uint64_t seed) {
    float *u = malloc((size_t)N * sizeof *u);
    qt_test_fill_uniform(u, N, 0.0f, 1.0f, seed);
    int *tok = malloc((size_t)N * sizeof *tok);
    for (int i = 0; i < N; i++) {
        tok[i] = (int)(u[i] * (float)V);
        if (tok[i] >= V) tok[i] = V - 1;
    }
    free(u);
    return tok;
}

// Device copy of N ints (in a 4-byte-element buffer from qt_ct_alloc, guard band included).
static void *upload_tokens(const int *tok, int N) {
    void *d = qt_ct_alloc(QT_DTYPE_F32, (size_t)N);
    ck_assert_int_eq(cudaMemcpy(d, tok, (size_t)N * sizeof *tok, cudaMemcpyHostToDevice),
                     cudaSuccess);
    return d;
}

START_TEST(test_embedding_fwd) {
    for (int d = 0; d < 3; d++) {
        const qt_dtype dt = DTYPES[d];
        double atol, rtol;
        qt_ct_tolerance(dt, &atol, &rtol);
        for (int s = 0; s < NSHAPES; s++) {
            const int B = SHAPES[s][0], T = SHAPES[s][1], C = SHAPES[s][2], V = SHAPES[s][3];
            const int N = B * T;
            const uint64_t seed = 100 + 10 * (uint64_t)s + (uint64_t)d;
            int *tok = rand_tokens(N, V, seed);
            float *wte = qt_ct_rand_rounded(dt, (size_t)V * C, -1.0f, 1.0f, seed + 1);
            float *wpe = qt_ct_rand_rounded(dt, (size_t)T * C, -1.0f, 1.0f, seed + 2);
            float *out = malloc((size_t)N * C * sizeof *out);
            qt_cpu_embedding_fwd(out, tok, wte, wpe, B, T, C);
            void *d_tok = upload_tokens(tok, N), *d_wte = qt_ct_upload(dt, wte, (size_t)V * C);
            void *d_wpe = qt_ct_upload(dt, wpe, (size_t)T * C);
            void *d_out = qt_ct_alloc(dt, (size_t)N * C);
            qt_status st = qt_cuda_embedding_fwd(NULL, dt, d_out, d_tok, d_wte, d_wpe, B, T, C);
            ck_assert_msg(st == QT_OK, "embedding_fwd %s B=%d T=%d C=%d: %s", qt_dtype_name(dt),
                          B, T, C, qt_last_error());
            const double e = qt_ct_dev_err(dt, d_out, out, (size_t)N * C, atol, rtol);
            ck_assert_msg(e <= 1.0, "embedding_fwd %s B=%d T=%d C=%d V=%d seed=%llu: err %g",
                          qt_dtype_name(dt), B, T, C, V, (unsigned long long)seed, e);
            ck_assert_msg(qt_ct_guard_ok(dt, d_out, (size_t)N * C),
                          "embedding_fwd %s B=%d T=%d C=%d: guard band overwritten",
                          qt_dtype_name(dt), B, T, C);
            qt_ct_free(d_tok);
            qt_ct_free(d_wte);
            qt_ct_free(d_wpe);
            qt_ct_free(d_out);
            free(tok);
            free(wte);
            free(wpe);
            free(out);
        }
    }
}
END_TEST

// wpe == NULL (models whose positions come from RoPE): out is wte[token] exactly, in every
// dtype (a copy, no arithmetic), for the CPU op too.
START_TEST(test_embedding_fwd_no_positions) {
    for (int d = 0; d < 3; d++) {
        const qt_dtype dt = DTYPES[d];
        for (int s = 0; s < NSHAPES; s++) {
            const int B = SHAPES[s][0], T = SHAPES[s][1], C = SHAPES[s][2], V = SHAPES[s][3];
            const int N = B * T;
            const size_t nc = (size_t)N * C;
            const uint64_t seed = 500 + 10 * (uint64_t)s + (uint64_t)d;
            int *tok = rand_tokens(N, V, seed);
            float *wte = qt_ct_rand_rounded(dt, (size_t)V * C, -1.0f, 1.0f, seed + 1);
            float *out = malloc(nc * sizeof *out), *got = malloc(nc * sizeof *got);
            qt_test_poison(out, nc);
            qt_cpu_embedding_fwd(out, tok, wte, NULL, B, T, C);
            void *d_tok = upload_tokens(tok, N), *d_wte = qt_ct_upload(dt, wte, (size_t)V * C);
            void *d_out = qt_ct_alloc(dt, nc);
            qt_status st = qt_cuda_embedding_fwd(NULL, dt, d_out, d_tok, d_wte, NULL, B, T, C);
            ck_assert_msg(st == QT_OK, "embedding_fwd wpe NULL %s B=%d T=%d C=%d: %s",
                          qt_dtype_name(dt), B, T, C, qt_last_error());
            qt_ct_download(dt, got, d_out, nc);
            for (size_t i = 0; i < nc; i++) {
                const float want = wte[(size_t)tok[i / C] * C + i % C];
                ck_assert_msg(got[i] == want && out[i] == want,
                              "embedding_fwd wpe NULL %s B=%d T=%d C=%d seed=%llu [%zu]: cuda %g "
                              "cpu %g want %g",
                              qt_dtype_name(dt), B, T, C, (unsigned long long)seed, i,
                              (double)got[i], (double)out[i], (double)want);
            }
            ck_assert_msg(qt_ct_guard_ok(dt, d_out, nc),
                          "embedding_fwd wpe NULL %s B=%d T=%d C=%d: guard band overwritten",
                          qt_dtype_name(dt), B, T, C);
            qt_ct_free(d_tok);
            qt_ct_free(d_wte);
            qt_ct_free(d_out);
            free(tok);
            free(wte);
            free(out);
            free(got);
        }
    }
}
END_TEST

static void check_embedding_bwd(qt_dtype dt, int B, int T, int C, int V, int with_wpe,
                                uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    const int N = B * T;
    int *tok = rand_tokens(N, V, seed);
    float *dout = qt_ct_rand_rounded(dt, (size_t)N * C, -1.0f, 1.0f, seed + 1);
    // pre-filled gradients: the backward must add to them
    float *dwte = qt_ct_rand_rounded(dt, (size_t)V * C, -1.0f, 1.0f, seed + 2);
    float *dwpe = qt_ct_rand_rounded(dt, (size_t)T * C, -1.0f, 1.0f, seed + 3);
    void *d_tok = upload_tokens(tok, N), *d_dout = qt_ct_upload(dt, dout, (size_t)N * C);
    void *d_dwte = qt_ct_upload(dt, dwte, (size_t)V * C);
    void *d_dwpe = qt_ct_upload(dt, dwpe, (size_t)T * C);
    qt_cpu_embedding_bwd(dwte, with_wpe ? dwpe : NULL, dout, tok, B, T, C);
    qt_status st = qt_cuda_embedding_bwd(NULL, dt, d_dwte, with_wpe ? d_dwpe : NULL, d_dout,
                                         d_tok, B, T, C);
    ck_assert_msg(st == QT_OK, "embedding_bwd %s B=%d T=%d C=%d: %s", qt_dtype_name(dt), B, T,
                  C, qt_last_error());
    const double catol = atol * sqrt((double)N);
    const double ew = qt_ct_dev_err(dt, d_dwte, dwte, (size_t)V * C, catol, rtol);
    // dwpe: untouched when not passed
    const double ep = qt_ct_dev_err(dt, d_dwpe, dwpe, (size_t)T * C, catol, rtol);
    ck_assert_msg(ew <= 1.0 && ep <= 1.0,
                  "embedding_bwd %s B=%d T=%d C=%d V=%d wpe=%d seed=%llu: err dwte %g dwpe %g",
                  qt_dtype_name(dt), B, T, C, V, with_wpe, (unsigned long long)seed, ew, ep);
    ck_assert_msg(qt_ct_guard_ok(dt, d_dwte, (size_t)V * C) &&
                      qt_ct_guard_ok(dt, d_dwpe, (size_t)T * C),
                  "embedding_bwd %s B=%d T=%d C=%d: guard band overwritten", qt_dtype_name(dt),
                  B, T, C);
    qt_ct_free(d_tok);
    qt_ct_free(d_dout);
    qt_ct_free(d_dwte);
    qt_ct_free(d_dwpe);
    free(tok);
    free(dout);
    free(dwte);
    free(dwpe);
}

START_TEST(test_embedding_bwd) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSHAPES; s++)
            check_embedding_bwd(DTYPES[d], SHAPES[s][0], SHAPES[s][1], SHAPES[s][2],
                                SHAPES[s][3], 1, 200 + 10 * (uint64_t)s + (uint64_t)d);
    check_embedding_bwd(QT_DTYPE_F32, 2, 33, 31, 7, 0, 290); // dwpe NULL
}
END_TEST

// The sorted backward (the model's) against qt_cpu_embedding_bwd_sorted on the same buckets,
// and bit for bit against the scan kernel (qt_cuda_embedding_bwd), which sums each token's rows
// in the same order: pre-filled gradients, poisoned-free guard bands, every shape and dtype.
static void check_embedding_bwd_sorted(qt_dtype dt, int B, int T, int C, int V, uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    const int N = B * T;
    int *tok = rand_tokens(N, V, seed);
    int *order = malloc((size_t)N * sizeof *order), *start = malloc((size_t)(N + 1) * sizeof *start);
    int *token = malloc((size_t)N * sizeof *token), U = -1;
    int *scratch = malloc((size_t)N * 2 * sizeof *scratch);
    ck_assert_int_eq(qt_embedding_buckets(order, start, token, &U, tok, N, scratch), QT_OK);
    free(scratch);
    float *dout = qt_ct_rand_rounded(dt, (size_t)N * C, -1.0f, 1.0f, seed + 1);
    float *dwte = qt_ct_rand_rounded(dt, (size_t)V * C, -1.0f, 1.0f, seed + 2);
    float *dwpe = qt_ct_rand_rounded(dt, (size_t)T * C, -1.0f, 1.0f, seed + 3);
    void *d_tok = upload_tokens(tok, N), *d_order = upload_tokens(order, N);
    void *d_start = upload_tokens(start, U + 1), *d_token = upload_tokens(token, U);
    void *d_dout = qt_ct_upload(dt, dout, (size_t)N * C);
    void *d_dwte = qt_ct_upload(dt, dwte, (size_t)V * C), *d_scan = qt_ct_upload(dt, dwte, (size_t)V * C);
    void *d_dwpe = qt_ct_upload(dt, dwpe, (size_t)T * C);
    ck_assert_int_eq(qt_cpu_embedding_bwd_sorted(dwte, dwpe, dout, order, start, token, U, B, T, C),
                     QT_OK);
    qt_status st = qt_cuda_embedding_bwd_sorted(NULL, dt, d_dwte, d_dwpe, d_dout, d_order,
                                                d_start, d_token, U, B, T, C);
    ck_assert_msg(st == QT_OK, "embedding_bwd_sorted %s B=%d T=%d C=%d: %s", qt_dtype_name(dt), B,
                  T, C, qt_last_error());
    ck_assert_int_eq(qt_cuda_embedding_bwd(NULL, dt, d_scan, NULL, d_dout, d_tok, B, T, C), QT_OK);
    const double catol = atol * sqrt((double)N);
    const double ew = qt_ct_dev_err(dt, d_dwte, dwte, (size_t)V * C, catol, rtol);
    const double ep = qt_ct_dev_err(dt, d_dwpe, dwpe, (size_t)T * C, catol, rtol);
    ck_assert_msg(ew <= 1.0 && ep <= 1.0,
                  "embedding_bwd_sorted %s B=%d T=%d C=%d V=%d seed=%llu: err dwte %g dwpe %g",
                  qt_dtype_name(dt), B, T, C, V, (unsigned long long)seed, ew, ep);
    float *a = qt_ct_download_new(dt, d_dwte, (size_t)V * C);
    float *b = qt_ct_download_new(dt, d_scan, (size_t)V * C);
    ck_assert_msg(!memcmp(a, b, (size_t)V * C * sizeof *a),
                  "embedding_bwd_sorted %s B=%d T=%d C=%d V=%d: differs from the scan kernel",
                  qt_dtype_name(dt), B, T, C, V);
    ck_assert_msg(qt_ct_guard_ok(dt, d_dwte, (size_t)V * C) &&
                      qt_ct_guard_ok(dt, d_dwpe, (size_t)T * C),
                  "embedding_bwd_sorted %s B=%d T=%d C=%d: guard band overwritten",
                  qt_dtype_name(dt), B, T, C);
    void *bufs[] = {d_tok, d_order, d_start, d_token, d_dout, d_dwte, d_scan, d_dwpe};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qt_ct_free(bufs[i]);
    void *hb[] = {tok, order, start, token, dout, dwte, dwpe, a, b};
    for (size_t i = 0; i < sizeof hb / sizeof hb[0]; i++) free(hb[i]);
}

START_TEST(test_embedding_bwd_sorted) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSHAPES; s++)
            check_embedding_bwd_sorted(DTYPES[d], SHAPES[s][0], SHAPES[s][1], SHAPES[s][2],
                                       SHAPES[s][3], 700 + 10 * (uint64_t)s + (uint64_t)d);
    // bad bucket counts are refused before anything runs
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    ck_assert_int_eq(qt_cuda_embedding_bwd_sorted(NULL, QT_DTYPE_F32, buf, NULL, buf, buf, buf,
                                                  buf, 0, 2, 3, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_embedding_bwd_sorted(NULL, QT_DTYPE_F32, buf, NULL, buf, buf, buf,
                                                  buf, 7, 2, 3, 4),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "buckets"));
    ck_assert_int_eq(qt_cuda_embedding_bwd_sorted(NULL, QT_DTYPE_F32, buf, NULL, buf, NULL, buf,
                                                  buf, 3, 2, 3, 4),
                     QT_ERR_ARG); // dwte without its order
    qt_ct_free(buf);
}
END_TEST

// The backward is deterministic: the same inputs give the same bits, run after run.
START_TEST(test_embedding_bwd_deterministic) {
    const int B = 2, T = 150, C = 129, V = 5, N = B * T;
    int *tok = rand_tokens(N, V, 300);
    float *dout = qt_ct_rand_rounded(QT_DTYPE_F32, (size_t)N * C, -1.0f, 1.0f, 301);
    float *zero = calloc((size_t)V * C, sizeof *zero);
    float *first = malloc((size_t)V * C * sizeof *first);
    void *d_tok = upload_tokens(tok, N);
    void *d_dout = qt_ct_upload(QT_DTYPE_F32, dout, (size_t)N * C);
    for (int run = 0; run < 2; run++) {
        void *d_dwte = qt_ct_upload(QT_DTYPE_F32, zero, (size_t)V * C);
        ck_assert_int_eq(
            qt_cuda_embedding_bwd(NULL, QT_DTYPE_F32, d_dwte, NULL, d_dout, d_tok, B, T, C),
            QT_OK);
        float *got = malloc((size_t)V * C * sizeof *got);
        qt_ct_download(QT_DTYPE_F32, got, d_dwte, (size_t)V * C);
        if (run == 0)
            memcpy(first, got, (size_t)V * C * sizeof *got);
        else
            ck_assert_msg(memcmp(first, got, (size_t)V * C * sizeof *got) == 0,
                          "embedding_bwd fp32 B=%d T=%d C=%d V=%d: two runs differ", B, T, C, V);
        free(got);
        qt_ct_free(d_dwte);
    }
    qt_ct_free(d_tok);
    qt_ct_free(d_dout);
    free(tok);
    free(dout);
    free(zero);
    free(first);
}
END_TEST

// A negative token (never valid) gives a NaN row forward and no gradient backward, never an
// out-of-bounds access; the other rows are unaffected.
START_TEST(test_embedding_negative_token) {
    const int B = 1, T = 4, C = 33, V = 3, N = B * T;
    int tok[4] = {2, -1, 0, 2};
    float *wte = qt_ct_rand_rounded(QT_DTYPE_F32, (size_t)V * C, -1.0f, 1.0f, 400);
    float *wpe = qt_ct_rand_rounded(QT_DTYPE_F32, (size_t)T * C, -1.0f, 1.0f, 401);
    float *dout = qt_ct_rand_rounded(QT_DTYPE_F32, (size_t)N * C, -1.0f, 1.0f, 402);
    float *dwte = calloc((size_t)V * C, sizeof *dwte);
    void *d_tok = upload_tokens(tok, N);
    void *d_wte = qt_ct_upload(QT_DTYPE_F32, wte, (size_t)V * C);
    void *d_wpe = qt_ct_upload(QT_DTYPE_F32, wpe, (size_t)T * C);
    void *d_out = qt_ct_alloc(QT_DTYPE_F32, (size_t)N * C);
    void *d_dout = qt_ct_upload(QT_DTYPE_F32, dout, (size_t)N * C);
    void *d_dwte = qt_ct_upload(QT_DTYPE_F32, dwte, (size_t)V * C);
    ck_assert_int_eq(qt_cuda_embedding_fwd(NULL, QT_DTYPE_F32, d_out, d_tok, d_wte, d_wpe, B, T, C),
                     QT_OK);
    ck_assert_int_eq(
        qt_cuda_embedding_bwd(NULL, QT_DTYPE_F32, d_dwte, NULL, d_dout, d_tok, B, T, C), QT_OK);
    float *out = malloc((size_t)N * C * sizeof *out);
    qt_ct_download(QT_DTYPE_F32, out, d_out, (size_t)N * C);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float v = out[(size_t)n * C + c];
            if (tok[n] < 0)
                ck_assert_msg(isnan(v), "embedding_fwd: row %d (token -1) channel %d = %g, want "
                                        "NaN", n, c, (double)v);
            else
                ck_assert_msg(v == wte[(size_t)tok[n] * C + c] + wpe[(size_t)n * C + c],
                              "embedding_fwd: row %d channel %d wrong", n, c);
        }
    // reference without the negative row (the CPU op asserts on it)
    for (int n = 0; n < N; n++)
        if (tok[n] >= 0)
            for (int c = 0; c < C; c++) dwte[(size_t)tok[n] * C + c] += dout[(size_t)n * C + c];
    const double e = qt_ct_dev_err(QT_DTYPE_F32, d_dwte, dwte, (size_t)V * C, 1e-6, 1e-5);
    ck_assert_msg(e <= 1.0, "embedding_bwd with a negative token: err %g", e);
    void *bufs[] = {d_tok, d_wte, d_wpe, d_out, d_dout, d_dwte};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qt_ct_free(bufs[i]);
    free(wte);
    free(wpe);
    free(dout);
    free(dwte);
    free(out);
}
END_TEST

START_TEST(test_embedding_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    ck_assert_int_eq(qt_cuda_embedding_fwd(NULL, QT_DTYPE_F32, buf, buf, buf, buf, 2, 0, 4),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "embedding_fwd"));
    ck_assert_int_eq(qt_cuda_embedding_fwd(NULL, (qt_dtype)5, buf, buf, buf, buf, 1, 1, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_embedding_fwd(NULL, QT_DTYPE_F16, buf, NULL, buf, buf, 1, 1, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_embedding_fwd(NULL, QT_DTYPE_F32, (char *)buf + 2, buf, buf, buf,
                                           1, 1, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_embedding_fwd(NULL, QT_DTYPE_F32, buf, buf, buf, buf, 70000, 70000,
                                           4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_embedding_bwd(NULL, QT_DTYPE_BF16, buf, NULL, buf, buf, 1, 1, -3),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "embedding_bwd"));
    ck_assert_int_eq(qt_cuda_embedding_bwd(NULL, QT_DTYPE_BF16, (char *)buf + 1, NULL, buf, buf,
                                           1, 1, 3),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_embedding_bwd(NULL, QT_DTYPE_BF16, buf, NULL, buf, NULL, 1, 1, 3),
                     QT_ERR_ARG);
    // B == 0 and nothing wanted are no-ops
    ck_assert_int_eq(qt_cuda_embedding_fwd(NULL, QT_DTYPE_F32, buf, buf, buf, buf, 0, 3, 4), QT_OK);
    ck_assert_int_eq(qt_cuda_embedding_bwd(NULL, QT_DTYPE_F32, NULL, NULL, buf, buf, 2, 3, 4),
                     QT_OK);
    qt_ct_free(buf);
}
END_TEST

static Suite *embedding_suite(void) {
    Suite *s = suite_create("cuda_embedding");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_embedding_fwd);
    tcase_add_test(tc, test_embedding_fwd_no_positions);
    tcase_add_test(tc, test_embedding_bwd);
    tcase_add_test(tc, test_embedding_bwd_deterministic);
    tcase_add_test(tc, test_embedding_bwd_sorted);
    tcase_add_test(tc, test_embedding_negative_token);
    tcase_add_test(tc, test_embedding_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(embedding_suite());
}

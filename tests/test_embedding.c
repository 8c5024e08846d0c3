// test_embedding.c: the embedding family's CPU reference (kernels/embedding.h): token plus
// position rows, the gradient scattered back, and the embedding without positions
// (wpe == NULL); compared with direct loops.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/embedding.h"
#include "expect_error.h"
#include "testutil.h"

// ---- embedding ------------------------------------------------------------------------------

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
    QT_EXPECT_OK(qt_cpu_embedding_fwd(out, tokens, wte, wpe, B, T, C));
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
    QT_EXPECT_OK(qt_cpu_embedding_bwd(dwte, dwpe, dout, tokens, B, T, C));
    double e1 = qt_test_float_vs_double(dwte, wd, (size_t)V * C, 1e-6),
           e2 = qt_test_float_vs_double(dwpe, pd, (size_t)maxT * C, 1e-6);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0, "embedding_bwd vs direct loop: dwte %g dwpe %g", e1, e2);
    QT_EXPECT_OK(qt_cpu_embedding_bwd(dwte, NULL, dout, tokens, B, T, C)); // dwpe optional
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

// ---- the sorted backward and its buckets ----------------------------------------------------

// qt_embedding_buckets is a stable sort by token (every position once, tokens ascending,
// positions ascending within a bucket, each bucket one distinct token), and the sorted
// backward adds what the direct loop adds (in double), positions summed per bucket.
START_TEST(test_embedding_buckets_and_sorted_bwd) {
    const int B = 4, T = 37, C = 70, V = 23, N = B * T, maxT = 40;
    int tokens[4 * 37], order[4 * 37], start[4 * 37 + 1], token[4 * 37], U = -1;
    int scratch[2 * 4 * 37];
    uint64_t x = 99;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int)((x >> 33) % (uint64_t)V);
    }
    tokens[7] = V + 5; // a token no other position holds
    QT_EXPECT_OK(qt_embedding_buckets(order, start, token, &U, tokens, N, scratch));
    ck_assert_int_ge(U, 2);
    ck_assert_int_le(U, V + 1);
    ck_assert_int_eq(start[0], 0);
    ck_assert_int_eq(start[U], N);
    int seen[4 * 37] = {0};
    for (int u = 0; u < U; u++) {
        ck_assert_msg(start[u] < start[u + 1], "bucket %d is empty", u);
        if (u) ck_assert_msg(token[u - 1] < token[u], "buckets %d, %d not ascending", u - 1, u);
        for (int k = start[u]; k < start[u + 1]; k++) {
            ck_assert_msg(tokens[order[k]] == token[u], "position %d in bucket of token %d",
                          order[k], token[u]);
            if (k > start[u]) ck_assert_msg(order[k - 1] < order[k], "bucket %d unsorted", u);
            seen[order[k]]++;
        }
    }
    for (int n = 0; n < N; n++) ck_assert_msg(seen[n] == 1, "position %d seen %d times", n, seen[n]);
    const int V2 = V + 6;
    float *dout = qt_test_falloc((size_t)N * C), *dwte = qt_test_falloc((size_t)V2 * C);
    float *dwpe = qt_test_falloc((size_t)maxT * C);
    double *wd = qt_test_dalloc((size_t)V2 * C), *pd = qt_test_dalloc((size_t)maxT * C);
    qt_test_fill_uniform(dout, (size_t)N * C, -1, 1, 90);
    qt_test_fill_uniform(dwte, (size_t)V2 * C, -1, 1, 91);
    qt_test_fill_uniform(dwpe, (size_t)maxT * C, -1, 1, 92);
    for (int i = 0; i < V2 * C; i++) wd[i] = dwte[i];
    for (int i = 0; i < maxT * C; i++) pd[i] = dwpe[i];
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            wd[tokens[n] * C + c] += dout[n * C + c];
            pd[(n % T) * C + c] += dout[n * C + c];
        }
    QT_EXPECT_OK(qt_cpu_embedding_bwd_sorted(dwte, dwpe, dout, order, start, token, U, B, T, C));
    double e1 = qt_test_float_vs_double(dwte, wd, (size_t)V2 * C, 1e-6),
           e2 = qt_test_float_vs_double(dwpe, pd, (size_t)maxT * C, 1e-6);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0, "embedding_bwd_sorted vs direct loop: dwte %g dwpe %g",
                  e1, e2);
    // refusals, nothing written: a negative token, buckets not covering the batch
    tokens[3] = -2;
    QT_EXPECT_REFUSED(qt_embedding_buckets(order, start, token, &U, tokens, N, scratch),
                      "embedding_buckets", 1);
    float *guard = qt_test_guarded((size_t)V2 * C * 4);
    start[U] = N - 1;
    QT_EXPECT_REFUSED(qt_cpu_embedding_bwd_sorted(guard, NULL, dout, order, start, token, U, B, T,
                                                  C),
                      "embedding_bwd_sorted", qt_test_untouched(guard, (size_t)V2 * C * 4));
    QT_EXPECT_REFUSED(qt_cpu_embedding_bwd_sorted(guard, NULL, dout, order, start, token, 0, B, T,
                                                  C),
                      "embedding_bwd_sorted", qt_test_untouched(guard, (size_t)V2 * C * 4));
    QT_TEST_FREE_ALL(dout, dwte, dwpe, wd, pd, guard);
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
    QT_EXPECT_OK(qt_cpu_embedding_fwd(out, tokens, wte, NULL, B, T, C));
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
    QT_EXPECT_OK(qt_cpu_embedding_bwd(dwte, NULL, dout, tokens, B, T, C));
    double *got = qt_test_dalloc((size_t)V * C);
    for (size_t i = 0; i < (size_t)V * C; i++) got[i] = dwte[i];
    double e = qt_test_max_err_f64(got, want, (size_t)V * C, 1e-6, 1e-6);
    ck_assert_msg(e <= 1.0, "embedding_bwd dwpe NULL B %d T %d C %d: err %g", B, T, C, e);
    QT_TEST_FREE_ALL(wte, out, dout, dwte, want, got);
}
END_TEST

// The error contract (kernels/embedding.h): a bad shape, a NULL required tensor or a negative
// token is refused, naming the op, before out (forward) or dwte, dwpe (backward) is written.
START_TEST(test_embedding_bad_args) {
    enum { B = 2, T = 3, C = 5, V = 7 };
    const size_t nout = (size_t)B * T * C;
    int tokens[B * T] = {0, 1, 2, 3, 4, 6};
    float *wte = qt_test_falloc((size_t)V * C), *wpe = qt_test_falloc((size_t)T * C);
    float *dout = qt_test_falloc(nout);
    qt_test_fill_uniform(wte, (size_t)V * C, -1.0f, 1.0f, 94);
    qt_test_fill_uniform(wpe, (size_t)T * C, -1.0f, 1.0f, 95);
    qt_test_fill_uniform(dout, nout, -1.0f, 1.0f, 96);
    float *out = qt_test_guarded(nout * 4), *dwte = qt_test_guarded((size_t)V * C * 4),
          *dwpe = qt_test_guarded((size_t)T * C * 4);
#define UNTOUCHED_BWD                                                                              \
    (qt_test_untouched(dwte, (size_t)V * C * 4) && qt_test_untouched(dwpe, (size_t)T * C * 4))
    tokens[4] = -3;
    QT_EXPECT_REFUSED(qt_cpu_embedding_fwd(out, tokens, wte, wpe, B, T, C), "embedding_fwd",
                      qt_test_untouched(out, nout * 4));
    ck_assert_msg(strstr(qt_last_error(), "tokens[4] = -3"), "%s", qt_last_error());
    QT_EXPECT_REFUSED(qt_cpu_embedding_bwd(dwte, dwpe, dout, tokens, B, T, C), "embedding_bwd",
                      UNTOUCHED_BWD);
    tokens[4] = 4;
    QT_EXPECT_REFUSED(qt_cpu_embedding_fwd(out, tokens, NULL, wpe, B, T, C), "embedding_fwd",
                      qt_test_untouched(out, nout * 4));
    QT_EXPECT_REFUSED(qt_cpu_embedding_fwd(out, NULL, wte, wpe, B, T, C), "embedding_fwd",
                      qt_test_untouched(out, nout * 4));
    QT_EXPECT_REFUSED(qt_cpu_embedding_fwd(out, tokens, wte, wpe, B, 0, C), "embedding_fwd",
                      qt_test_untouched(out, nout * 4));
    QT_EXPECT_REFUSED(qt_cpu_embedding_bwd(dwte, dwpe, NULL, tokens, B, T, C), "embedding_bwd",
                      UNTOUCHED_BWD);
    QT_EXPECT_REFUSED(qt_cpu_embedding_bwd(dwte, dwpe, dout, tokens, -1, T, C), "embedding_bwd",
                      UNTOUCHED_BWD);
#undef UNTOUCHED_BWD
    QT_EXPECT_OK(qt_cpu_embedding_fwd(NULL, NULL, NULL, NULL, 0, T, C));
    QT_TEST_FREE_ALL(wte, wpe, dout, out, dwte, dwpe);
}
END_TEST

static Suite *embedding_suite(void) {
    Suite *s = suite_create("embedding");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_embedding_no_positions);
    tcase_add_test(tc, test_embedding_bad_args);
    tcase_add_test(tc, test_embedding_buckets_and_sorted_bwd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(embedding_suite()); }

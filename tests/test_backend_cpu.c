// test_backend_cpu.c: the CPU backend's table (host/backend_cpu.c, contract in
// include/qtrain/backend.h) as the runtime sees it:
//   - an op refused by its kernels/cpu reference comes back through the table as the op's own
//     QT_ERR_ARG, its message naming the op, with the outputs unwritten (the error contract of
//     kernels/<family>.h), instead of aborting the process.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "expect_error.h"
#include "qtrain/backend.h"
#include "testutil.h"

static qt_backend cpu_backend(void) {
    qt_backend be;
    ck_assert_msg(qt_backend_cpu_init(&be, 2) == QT_OK, "cpu init: %s", qt_last_error());
    return be;
}

// ---- errors through the table ---------------------------------------------------------------

START_TEST(test_errors_pass_through_the_table) {
    qt_backend be = cpu_backend();
    enum { N = 3, C = 4, V = 5, T = 3 };
    float x[N * C], w[C], b[C];
    qt_test_fill_uniform(x, N * C, -1.0f, 1.0f, 1);
    qt_test_fill_uniform(w, C, 0.5f, 1.5f, 2);
    qt_test_fill_uniform(b, C, -1.0f, 1.0f, 3);
    float *out = qt_test_guarded(sizeof x), *mean = qt_test_guarded(N * 4),
          *rstd = qt_test_guarded(N * 4);
    QT_EXPECT_REFUSED(be.ops->layernorm_fwd(be.ctx, out, mean, rstd, x, w, b, -1, C),
                      "layernorm_fwd",
                      qt_test_untouched(out, sizeof x) && qt_test_untouched(mean, N * 4) &&
                          qt_test_untouched(rstd, N * 4));
    ck_assert_msg(strstr(qt_last_error(), "N = -1"), "%s", qt_last_error());
    // a target outside the vocabulary, a softmax row attending no key, a bad RoPE head dim
    int targets[N] = {0, V, 1};
    float logits[N * V] = {0};
    float *losses = qt_test_guarded(N * 4), *probs = qt_test_guarded(N * V * 4);
    QT_EXPECT_REFUSED(be.ops->crossentropy_fwd(be.ctx, losses, probs, logits, targets, N, V),
                      "crossentropy_fwd",
                      qt_test_untouched(losses, N * 4) && qt_test_untouched(probs, N * V * 4));
    const qt_softmax_params sm = {.kind = QT_SOFTMAX_VANILLA, .scale = 1.0f};
    int lens[N] = {1, 0, 2};
    float *p = qt_test_guarded(N * T * 4), *pr = qt_test_guarded(N * T * 4);
    QT_EXPECT_REFUSED(be.ops->softmax_clip_fwd(be.ctx, &sm, pr, p, x, lens, N, T),
                      "softmax_clip_fwd",
                      qt_test_untouched(pr, N * T * 4) && qt_test_untouched(p, N * T * 4));
    float *qkv = qt_test_guarded(3 * sizeof x);
    QT_EXPECT_REFUSED(be.ops->rope_fwd(be.ctx, qkv, 1, N, C, 4, 10000.0f), "rope_fwd",
                      qt_test_untouched(qkv, 3 * sizeof x));
    // and a valid call through the same table succeeds
    QT_EXPECT_OK(be.ops->layernorm_fwd(be.ctx, out, mean, rstd, x, w, b, N, C));
    QT_TEST_FREE_ALL(out, mean, rstd, losses, probs, p, pr, qkv);
    qt_backend_free(&be);
}
END_TEST

int main(void) {
    Suite *s = suite_create("backend_cpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_errors_pass_through_the_table);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

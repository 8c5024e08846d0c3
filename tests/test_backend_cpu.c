// test_backend_cpu.c: the CPU backend's table (host/backends/backend_cpu.c, contract in
// include/qtrain/backend.h) as the runtime sees it:
//   - an op refused by its kernels/cpu reference comes back through the table as the op's own
//     QT_ERR_ARG, its message naming the op, with the outputs unwritten (the error contract of
//     kernels/<family>.h), instead of aborting the process;
//   - a training step allocates nothing in the backend once the first step has run: the
//     quantized ops that need temporary buffers (quant_fake, linear_s8_fwd, linear_s8_dx) take
//     them from the backend's workspace, whose size is set in step 1 and never changes after,
//     and the allocator, counted by a malloc interposer in this executable, is not called from
//     inside those ops from step 2 on.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect_error.h"
#include "qtrain/backend.h"
#include "qtrain/config.h"
#include "qtrain/model.h"
#include "qtrain/optimizer.h"
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
    float *losses = qt_test_guarded(N * 4), *stats = qt_test_guarded(N * 2 * 4);
    QT_EXPECT_REFUSED(be.ops->crossentropy_fwd(be.ctx, losses, stats, logits, targets, N, V),
                      "crossentropy_fwd",
                      qt_test_untouched(losses, N * 4) && qt_test_untouched(stats, N * 2 * 4));
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
    QT_TEST_FREE_ALL(out, mean, rstd, losses, stats, p, pr, qkv);
    qt_backend_free(&be);
}
END_TEST

// ---- no allocation after the first step ------------------------------------------------------

// The allocator, interposed: the executable's definitions take precedence over glibc's for
// every shared library too (libqtrain, libgomp, OpenBLAS), and forward to glibc's own entry
// points. g_allocs counts the calls. Not under a sanitizer, which interposes them itself.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define QT_COUNT_ALLOCS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static _Atomic unsigned long g_allocs;
void *malloc(size_t n) {
    g_allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t k, size_t n) {
    g_allocs++;
    return __libc_calloc(k, n);
}
void *realloc(void *p, size_t n) {
    g_allocs++;
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n) {
    g_allocs++;
    return __libc_memalign(align, n);
}
int posix_memalign(void **p, size_t align, size_t n) {
    g_allocs++;
    *p = __libc_memalign(align, n);
    return *p ? 0 : 12; // ENOMEM
}
#else
#define QT_COUNT_ALLOCS 0
static unsigned long g_allocs;
#endif

// The quantized ops of the CPU table, wrapped to count the allocations made inside them.
static const qt_backend_ops *g_inner;
static unsigned long g_op_allocs, g_op_calls;

static qt_status counted_quant_fake(void *ctx, qt_dtype dt, const qt_quant_params *p, void *out,
                                    const void *x, size_t rows, size_t cols) {
    const unsigned long a0 = g_allocs;
    const qt_status st = g_inner->quant_fake(ctx, dt, p, out, x, rows, cols);
    g_op_allocs += g_allocs - a0;
    g_op_calls++;
    return st;
}
static qt_status counted_s8_fwd(void *ctx, void *out, const void *x, const void *w, const void *b,
                                int N, int IC, int OC, const qt_quant_params *aq,
                                const qt_quant_params *wq) {
    const unsigned long a0 = g_allocs;
    const qt_status st = g_inner->linear_s8_fwd(ctx, out, x, w, b, N, IC, OC, aq, wq);
    g_op_allocs += g_allocs - a0;
    g_op_calls++;
    return st;
}
static qt_status counted_s8_dx(void *ctx, void *dx, const void *g, const void *w, int N, int IC,
                               int OC, const qt_quant_params *gq, const qt_quant_params *wq) {
    const unsigned long a0 = g_allocs;
    const qt_status st = g_inner->linear_s8_dx(ctx, dx, g, w, N, IC, OC, gq, wq);
    g_op_allocs += g_allocs - a0;
    g_op_calls++;
    return st;
}

// A small OPT-style model in qat: INT8 GEMM forwards (weights per tensor, inputs per token),
// SwitchBack's dX on the INT8 GEMM (8-bit gradients per token), 8-bit Adam moments.
static void qat_int8_config(qt_config *cfg) {
    qt_config_defaults(cfg);
    const char *sets[] = {
        "model.n_layer=2",
        "model.d_model=48",
        "model.n_head=4",
        "model.d_ff=96",
        "model.max_seq_len=24",
        "model.vocab_size=301",
        "train.batch_size=3",
        "train.seq_len=24",
        "quant.mode=qat",
        "quant.int8_gemm=1",
        "quant.w_granularity=tensor",
        "quant.g_bits=8",
        "quant.backward=dx",
        "quant.m_bits=8",
        "quant.v_bits=8",
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        ck_assert_msg(qt_config_set(cfg, sets[i], "test") == QT_OK, "%s: %s", sets[i],
                      qt_last_error());
}

START_TEST(test_no_allocation_after_first_step) {
    enum { STEPS = 5 };
    qt_config cfg;
    qat_int8_config(&cfg);
    const int B = cfg.batch_size, T = cfg.seq_len;
    qt_backend be = cpu_backend();
    size_t ws0, grows0;
    QT_EXPECT_OK(qt_backend_cpu_workspace(&be, &ws0, &grows0));
    ck_assert_msg(ws0 == 0 && grows0 == 0, "a fresh backend's workspace: %zu bytes", ws0);
    // the same backend, its quantized ops counted
    static qt_backend_ops counted;
    g_inner = be.ops;
    counted = *be.ops;
    counted.quant_fake = counted_quant_fake;
    counted.linear_s8_fwd = counted_s8_fwd;
    counted.linear_s8_dx = counted_s8_dx;
    qt_backend cbe = be;
    cbe.ops = &counted;
    qt_model m;
    qt_optimizer opt;
    ck_assert_msg(qt_model_init(&m, &cfg, &cbe, B, T) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_optimizer_init(&opt, &m) == QT_OK, "%s", qt_last_error());
    m.training = 1;
    int *in = malloc((size_t)B * T * sizeof(int)), *tg = malloc((size_t)B * T * sizeof(int));
    for (int i = 0; i < B * T; i++) {
        in[i] = (i * 13 + 5) % cfg.vocab_size;
        tg[i] = (i * 7 + 2) % cfg.vocab_size;
    }
    size_t ws1 = 0, grows1 = 0;
    unsigned long op_allocs1 = 0, op_calls1 = 0;
    for (int step = 1; step <= STEPS; step++) {
        // the statuses are asserted after the window: Check's assertions allocate themselves
        const unsigned long a0 = g_allocs;
        float loss = NAN;
        double norm;
        qt_status st = qt_model_zero_grad(&m);
        if (st == QT_OK) st = qt_model_forward(&m, in, tg, B, T, &loss);
        if (st == QT_OK) st = qt_model_backward(&m, 1.0f);
        if (st == QT_OK) st = qt_optimizer_step(&opt, &m, 1e-3f, 1.0f, &norm, NULL);
        const unsigned long step_allocs = g_allocs - a0;
        ck_assert_msg(st == QT_OK, "step %d: %s", step, qt_last_error());
        ck_assert_msg(isfinite(loss), "step %d: loss %g", step, (double)loss);
        size_t ws, grows;
        QT_EXPECT_OK(qt_backend_cpu_workspace(&be, &ws, &grows));
        printf("step %d: loss %.6f, workspace %zu bytes (grown %zu times), %lu allocations in the "
               "step, %lu so far inside %lu quantized ops\n",
               step, (double)loss, ws, grows, step_allocs, g_op_allocs, g_op_calls);
        if (step == 1) {
            ws1 = ws;
            grows1 = grows;
            op_allocs1 = g_op_allocs;
            op_calls1 = g_op_calls;
            ck_assert_msg(ws1 > 0 && op_calls1 > 0, "the quantized ops did not run (%lu calls)",
                          op_calls1);
            g_op_allocs = 0;
            g_op_calls = 0;
            continue;
        }
        ck_assert_msg(ws == ws1 && grows == grows1,
                      "step %d: the workspace changed from %zu bytes (%zu growths) after step 1 "
                      "to %zu (%zu)",
                      step, ws1, grows1, ws, grows);
        ck_assert_msg(g_op_calls == (unsigned long)(step - 1) * op_calls1,
                      "step %d: %lu quantized op calls, %lu per step in step 1", step, g_op_calls,
                      op_calls1);
    }
    if (QT_COUNT_ALLOCS) {
        // step 1 grew the workspace: the counter sees allocations; later steps make none there
        ck_assert_msg(op_allocs1 >= grows1,
                      "step 1: %lu allocations counted in the ops, %zu "
                      "workspace growths",
                      op_allocs1, grows1);
        ck_assert_msg(g_op_allocs == 0, "steps 2-%d allocated %lu times inside the quantized ops",
                      STEPS, g_op_allocs);
    }
    free(in);
    free(tg);
    qt_optimizer_free(&opt, &m);
    qt_model_free(&m);
    qt_backend_free(&be);
}
END_TEST

int main(void) {
    Suite *s = suite_create("backend_cpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_errors_pass_through_the_table);
    tcase_add_test(tc, test_no_allocation_after_first_step);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

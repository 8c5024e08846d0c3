// test_cuda_adamw.c: kernels/cuda/adamw.cu against the CPU reference (qt_cpu_adamw_step,
// kernels/adamw.h) on odd sizes, in fp32, fp16 and bf16, with guard bands checked.
// Tolerances: AdamW over several steps in fp32 within 1e-6 relative. The moments round exactly
// as on the CPU (the kernel's _rn operations are never contracted into an fma, nor is the ISO C
// reference, nor the emulated build, compiled with -ffp-contract=off), so m and v get no
// absolute term (they are in fact bit-identical). The weights get 1e-6 of the update's size
// (about lr = 1e-2) absolute for values near zero: the CPU's vsqrtf is within 1 ulp of sqrt,
// so the update may differ in its last bit or two. With master weights the master follows the
// same bounds and the parameter must equal the master rounded to the dtype, bit for bit.
// The multi-tensor step (qt_cuda_adamw_multi) under the same bounds, against the host's
// decision from qt_cpu_sumsq and qt_cpu_adamw_step per tensor: clipped, unclipped and skipped.
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/adamw.h"
#include "kernels/sumsq.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
static const size_t SIZES[] = {1, 31, 33, 257, 1027};
#define NSIZES ((int)(sizeof SIZES / sizeof SIZES[0]))
#define NSTEPS 4
#define ADAM_RTOL 1e-6
#define ADAM_ATOL 1e-8  // weights: 1e-6 lr

static qt_adamw_params adam_params(int step) {
    qt_adamw_params p = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                         .weight_decay = 0.1f, .step = step, .grad_scale = 0.5f};
    return p;
}

// ---- AdamW ----------------------------------------------------------------------------------

// use_master: master weights (fp32) updated and param written as their rounding to dt;
// otherwise dt is fp32 and param is updated in place.
static void check_adamw(qt_dtype dt, size_t n, int use_master, uint64_t seed) {
    float *w = qt_ct_rand_rounded(QT_DTYPE_F32, n, -1.0f, 1.0f, seed); // fp32 weights (reference)
    float *m = qt_ct_rand_rounded(QT_DTYPE_F32, n, -0.1f, 0.1f, seed + 1);
    float *v = qt_ct_rand_rounded(QT_DTYPE_F32, n, 0.0f, 0.01f, seed + 2);
    float *p0 = malloc(n * sizeof *p0);
    for (size_t i = 0; i < n; i++) p0[i] = qt_ct_round(dt, w[i]);
    void *d_param = qt_ct_upload(dt, use_master ? p0 : w, n);
    void *d_master = use_master ? qt_ct_upload(QT_DTYPE_F32, w, n) : NULL;
    void *d_m = qt_ct_upload(QT_DTYPE_F32, m, n), *d_v = qt_ct_upload(QT_DTYPE_F32, v, n);
    for (int step = 1; step <= NSTEPS; step++) {
        const qt_adamw_params prm = adam_params(step);
        // gradients as dt holds them; a few zeros (v may then decay towards 0)
        float *g = qt_ct_rand_rounded(dt, n, -2.0f, 2.0f, seed + 10 * (uint64_t)step);
        if (n > 3) g[n / 2] = 0.0f;
        void *d_g = qt_ct_upload(dt, g, n);
        qt_status st = qt_cuda_adamw_step(NULL, dt, d_param, d_master, d_g, d_m, d_v, n, &prm);
        ck_assert_msg(st == QT_OK, "adamw %s n=%zu master=%d step %d: %s", qt_dtype_name(dt), n,
                      use_master, step, qt_last_error());
        qt_cpu_adamw_step(w, g, m, v, n, &prm);
        const double em = qt_ct_dev_err(QT_DTYPE_F32, d_m, m, n, 0.0, ADAM_RTOL);
        const double ev = qt_ct_dev_err(QT_DTYPE_F32, d_v, v, n, 0.0, ADAM_RTOL);
        const double ew = qt_ct_dev_err(QT_DTYPE_F32, use_master ? d_master : d_param, w, n,
                                        ADAM_ATOL, ADAM_RTOL);
        ck_assert_msg(em <= 1.0 && ev <= 1.0 && ew <= 1.0,
                      "adamw %s n=%zu master=%d seed=%llu step %d: err m %g v %g weights %g",
                      qt_dtype_name(dt), n, use_master, (unsigned long long)seed, step, em, ev,
                      ew);
        if (use_master) { // param == master rounded to dt, bit for bit
            float *pm = qt_ct_download_new(QT_DTYPE_F32, d_master, n);
            float *pp = qt_ct_download_new(dt, d_param, n);
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(pp[i] == qt_ct_round(dt, pm[i]),
                              "adamw %s n=%zu step %d: param[%zu] = %a, master %a rounds to %a",
                              qt_dtype_name(dt), n, step, i, (double)pp[i], (double)pm[i],
                              (double)qt_ct_round(dt, pm[i]));
            free(pm);
            free(pp);
        }
        qt_ct_free(d_g);
        free(g);
    }
    ck_assert_msg(qt_ct_guard_ok(dt, d_param, n) && qt_ct_guard_ok(QT_DTYPE_F32, d_m, n) &&
                      qt_ct_guard_ok(QT_DTYPE_F32, d_v, n) &&
                      (!d_master || qt_ct_guard_ok(QT_DTYPE_F32, d_master, n)),
                  "adamw %s n=%zu master=%d: guard band overwritten", qt_dtype_name(dt), n,
                  use_master);
    qt_ct_free(d_param);
    qt_ct_free(d_master);
    qt_ct_free(d_m);
    qt_ct_free(d_v);
    free(w);
    free(m);
    free(v);
    free(p0);
}

START_TEST(test_adamw_fp32_in_place) {
    for (int s = 0; s < NSIZES; s++) check_adamw(QT_DTYPE_F32, SIZES[s], 0, 100 + (uint64_t)s);
}
END_TEST

START_TEST(test_adamw_master) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSIZES; s++)
            check_adamw(DTYPES[d], SIZES[s], 1, 200 + 10 * (uint64_t)s + (uint64_t)d);
}
END_TEST

START_TEST(test_adamw_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    float *f = buf;
    qt_adamw_params prm = adam_params(1);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F16, buf, NULL, buf, f, f, 8, &prm),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "master"));
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "adamw_step"));
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_BF16, buf, NULL, buf, f, f, 0, &prm),
                     QT_ERR_ARG); // rejected even when empty
    prm.step = 0;
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, 8, &prm),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "step"));
    prm.step = 1;
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, 8, NULL),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, (qt_dtype)4, buf, f, buf, f, f, 8, &prm),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, NULL, f, f, 8, &prm),
                     QT_ERR_ARG);
    float *misaligned = (float *)((char *)f + 2);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, buf, f, misaligned, 8, &prm),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, 0, &prm),
                     QT_OK);
    qt_ct_free(buf);
}
END_TEST

// ---- multi-tensor AdamW ---------------------------------------------------------------------
// qt_cuda_adamw_multi after qt_cuda_sumsq_device against the host's own decision (as
// qt_optimizer_update makes it) and qt_cpu_adamw_step per span. Four tensors whose parameter
// and gradient offsets differ, with gaps between them that no span covers (they must keep their
// values; their gradients still count in the norm), one tensor longer than a chunk.

#define MULTI_SPANS 4
static const qt_adamw_span MULTI_LAYOUT[MULTI_SPANS] = {
    {.param = 0, .grad = 3, .n = 1, .weight_decay = 0.1f},
    {.param = 5, .grad = 40, .n = 33, .weight_decay = 0.0f},
    {.param = 40, .grad = 80, .n = 1027, .weight_decay = 0.1f},
    {.param = 1100, .grad = 1200, .n = QT_ADAMW_CHUNK + 7, .weight_decay = 0.1f},
};
// Weights: 65K elements reach updates of up to ~10 lr, and a weight that nearly cancels its
// update keeps the absolute error of that update's last bit (the CPU's vsqrtf): 1e-5 lr.
#define MULTI_ATOL 1e-7
#define MULTI_P (1100 + QT_ADAMW_CHUNK + 7 + 5) // parameter arena (elements)
#define MULTI_G (1200 + QT_ADAMW_CHUNK + 7 + 3) // gradient arena

// kind 0: no clipping, loss scale 1; 1: loss scale 1024 and a clip below the norm; 2: an inf
// gradient in a gap under loss scale 1024: the step must change nothing.
static void check_adamw_multi(qt_dtype dt, int use_master, int kind, uint64_t seed) {
    const size_t P = MULTI_P, G = MULTI_G;
    float *w = qt_ct_rand_rounded(QT_DTYPE_F32, P, -1.0f, 1.0f, seed);
    float *m = qt_ct_rand_rounded(QT_DTYPE_F32, G, -0.1f, 0.1f, seed + 1);
    float *v = qt_ct_rand_rounded(QT_DTYPE_F32, G, 0.001f, 0.01f, seed + 2);
    const float loss_scale = kind == 0 ? 1.0f : 1024.0f;
    float *g = qt_ct_rand_rounded(dt, G, -2.0f * loss_scale, 2.0f * loss_scale, seed + 3);
    if (kind == 2) g[1] = INFINITY; // a gap: no span updates it, the norm sees it
    float *p0 = malloc(P * sizeof *p0);
    for (size_t i = 0; i < P; i++) p0[i] = qt_ct_round(dt, w[i]);
    if (use_master) memcpy(w, p0, P * sizeof *w); // masters start as the rounded params
    void *d_param = qt_ct_upload(dt, p0, P);
    void *d_master = use_master ? qt_ct_upload(QT_DTYPE_F32, w, P) : NULL;
    void *d_m = qt_ct_upload(QT_DTYPE_F32, m, G), *d_v = qt_ct_upload(QT_DTYPE_F32, v, G);
    void *d_g = qt_ct_upload(dt, g, G);
    // the chunk table, uploaded as bytes
    const size_t nc = qt_cuda_adamw_chunks(NULL, MULTI_LAYOUT, MULTI_SPANS);
    ck_assert_msg(nc == 5, "%zu chunks, want 5 (the long tensor makes 2)", nc);
    qt_adamw_chunk chunks[5];
    ck_assert_int_eq(qt_cuda_adamw_chunks(chunks, MULTI_LAYOUT, MULTI_SPANS), nc);
    size_t elems = 0;
    for (size_t i = 0; i < nc; i++) elems += chunks[i].n;
    void *d_chunks = NULL;
    double *d_partials = NULL;
    ck_assert(cudaMalloc(&d_chunks, sizeof chunks) == cudaSuccess);
    ck_assert(cudaMemcpy(d_chunks, chunks, sizeof chunks, cudaMemcpyHostToDevice) == cudaSuccess);
    const size_t ns = qt_cuda_sumsq_scratch_size();
    ck_assert(cudaMalloc((void **)&d_partials, ns * sizeof(double)) == cudaSuccess);

    qt_adamw_multi_params prm = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                                 .step = 3, .loss_scale = loss_scale,
                                 .grad_clip = kind == 0 ? 0.0f : 1.0f};
    ck_assert_msg(qt_cuda_sumsq_device(NULL, dt, d_g, G, d_partials) == QT_OK, "%s",
                  qt_last_error());
    qt_status st = qt_cuda_adamw_multi(NULL, dt, d_param, d_master, d_g, d_m, d_v, d_chunks, nc,
                                       elems, &prm, d_partials + ns - 1);
    ck_assert_msg(st == QT_OK, "adamw_multi %s: %s", qt_dtype_name(dt), qt_last_error());

    // the host's decision, as qt_optimizer_update takes it
    double sumsq = 0.0, dev_sumsq = 0.0;
    ck_assert_int_eq(qt_cpu_sumsq(&sumsq, g, G), QT_OK);
    ck_assert(cudaMemcpy(&dev_sumsq, d_partials + ns - 1, sizeof dev_sumsq,
                         cudaMemcpyDeviceToHost) == cudaSuccess);
    if (kind == 2)
        ck_assert_msg(isinf(dev_sumsq), "sumsq with an inf gradient: %g", dev_sumsq);
    else
        ck_assert_msg(fabs(dev_sumsq - sumsq) <= 1e-12 * sumsq, "sumsq %.17g, want %.17g",
                      dev_sumsq, sumsq);
    const double norm = sqrt(sumsq) / loss_scale;
    if (isfinite(norm)) {
        float scale = 1.0f / loss_scale;
        if (prm.grad_clip > 0 && norm > prm.grad_clip)
            scale = (float)(prm.grad_clip / (norm + 1e-6)) / loss_scale;
        if (kind == 1) ck_assert_msg(norm > prm.grad_clip, "the clip must act: norm %g", norm);
        for (int s = 0; s < MULTI_SPANS; s++) {
            const qt_adamw_span *sp = &MULTI_LAYOUT[s];
            const qt_adamw_params one = {.lr = prm.lr, .beta1 = prm.beta1, .beta2 = prm.beta2,
                                         .eps = prm.eps, .weight_decay = sp->weight_decay,
                                         .step = prm.step, .grad_scale = scale};
            qt_cpu_adamw_step(w + sp->param, g + sp->grad, m + sp->grad, v + sp->grad, sp->n,
                              &one);
        }
    }
    const double em = qt_ct_dev_err(QT_DTYPE_F32, d_m, m, G, 0.0, ADAM_RTOL);
    const double ev = qt_ct_dev_err(QT_DTYPE_F32, d_v, v, G, 0.0, ADAM_RTOL);
    const double ew = use_master
                          ? qt_ct_dev_err(QT_DTYPE_F32, d_master, w, P, MULTI_ATOL, ADAM_RTOL)
                          : qt_ct_dev_err(dt, d_param, w, P, MULTI_ATOL, ADAM_RTOL);
    ck_assert_msg(em <= 1.0 && ev <= 1.0 && ew <= 1.0,
                  "adamw_multi %s master=%d kind %d seed=%llu: err m %g v %g weights %g",
                  qt_dtype_name(dt), use_master, kind, (unsigned long long)seed, em, ev, ew);
    float *pp = qt_ct_download_new(dt, d_param, P);
    float *pm = use_master ? qt_ct_download_new(QT_DTYPE_F32, d_master, P) : NULL;
    for (size_t i = 0; i < P; i++) { // param == master rounded (gaps: their initial values)
        const float want = use_master ? qt_ct_round(dt, pm[i]) : pp[i];
        ck_assert_msg(pp[i] == want, "adamw_multi %s kind %d: param[%zu] = %a, master %a",
                      qt_dtype_name(dt), kind, i, (double)pp[i], (double)want);
        if (kind == 2) ck_assert_msg(pp[i] == p0[i], "skipped step changed param[%zu]", i);
    }
    ck_assert_msg(qt_ct_guard_ok(dt, d_param, P) && qt_ct_guard_ok(QT_DTYPE_F32, d_m, G) &&
                      qt_ct_guard_ok(QT_DTYPE_F32, d_v, G) &&
                      (!d_master || qt_ct_guard_ok(QT_DTYPE_F32, d_master, P)),
                  "adamw_multi %s master=%d kind %d: guard band overwritten", qt_dtype_name(dt),
                  use_master, kind);
    free(pp);
    free(pm);
    cudaFree(d_chunks);
    cudaFree(d_partials);
    qt_ct_free(d_param);
    qt_ct_free(d_master);
    qt_ct_free(d_m);
    qt_ct_free(d_v);
    qt_ct_free(d_g);
    free(w);
    free(m);
    free(v);
    free(g);
    free(p0);
}

START_TEST(test_adamw_multi) {
    for (int kind = 0; kind < 3; kind++) {
        check_adamw_multi(QT_DTYPE_F32, 0, kind, 300 + (uint64_t)kind);
        for (int d = 0; d < 3; d++)
            check_adamw_multi(DTYPES[d], 1, kind, 310 + 10 * (uint64_t)kind + (uint64_t)d);
    }
}
END_TEST

START_TEST(test_adamw_multi_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    float *f = buf;
    const qt_adamw_chunk *ck = buf;
    const double *sq = buf;
    qt_adamw_multi_params prm = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                                 .step = 1, .loss_scale = 1.0f, .grad_clip = 0.0f};
    ck_assert_int_eq(qt_cuda_adamw_multi(NULL, QT_DTYPE_F16, buf, NULL, buf, f, f, ck, 1, 8, &prm,
                                         sq),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "master"));
    ck_assert_int_eq(qt_cuda_adamw_multi(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, ck, 2, 1, &prm,
                                         sq),
                     QT_ERR_ARG); // 1 element cannot fill 2 chunks
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "chunks"));
    prm.loss_scale = NAN;
    ck_assert_int_eq(qt_cuda_adamw_multi(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, ck, 1, 8, &prm,
                                         sq),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "loss_scale"));
    prm.loss_scale = 1.0f;
    prm.step = 0;
    ck_assert_int_eq(qt_cuda_adamw_multi(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, ck, 1, 8, &prm,
                                         sq),
                     QT_ERR_ARG);
    prm.step = 1;
    ck_assert_int_eq(qt_cuda_adamw_multi(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, ck, 1, 8, &prm,
                                         NULL),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "sumsq"));
    ck_assert_int_eq(qt_cuda_adamw_multi(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, ck, 0, 0, &prm,
                                         NULL),
                     QT_OK); // nothing to do
    qt_ct_free(buf);
}
END_TEST

static Suite *cuda_adamw_suite(void) {
    Suite *s = suite_create("cuda_adamw");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_adamw_fp32_in_place);
    tcase_add_test(tc, test_adamw_master);
    tcase_add_test(tc, test_adamw_bad_args);
    tcase_add_test(tc, test_adamw_multi);
    tcase_add_test(tc, test_adamw_multi_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(cuda_adamw_suite());
}

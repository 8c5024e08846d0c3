// bench/bench_softmax_clip.c: the softmax_clip family (kernels/softmax_clip.h) on the benchmark
// harness (bench/harness.h): the attention softmax variants vanilla, clipped (gamma -0.03,
// zeta 1) and NCS (eta 1.03, beta 1), forward and backward, over causal score rows (B H T
// rows of T columns, row t attending t + 1 keys), each variant also as a ratio to vanilla in
// the same run. CPU on the default model and one OPT-125m sequence; CUDA on the default model
// and OPT-125m's whole micro-batch.
#include <math.h>

#include "bench/harness.h"
#include "kernels/softmax_clip.h"

typedef struct {
    int rows, cols;
    qt_dtype dt;
    qt_cuda_stream s;
    qt_softmax_params prm;
    void *scores, *probs, *dprobs, *dscores; // (rows, cols)
    float *p;                                // (rows, cols) fp32
    int *lens;                               // (rows)
} sm_args;

static qt_status cpu_fwd(void *arg) {
    sm_args *a = arg;
    qt_cpu_softmax_clip_fwd(&a->prm, a->probs, a->p, a->scores, a->lens, a->rows, a->cols);
    return QT_OK;
}

static qt_status cpu_bwd(void *arg) {
    sm_args *a = arg;
    qt_cpu_softmax_clip_bwd(&a->prm, a->dscores, a->dprobs, a->p, a->lens, a->rows, a->cols);
    return QT_OK;
}

static int *causal_lens(qt_bench *b, const qt_bench_model *m) {
    const int rows = m->B * m->H * m->T;
    int *lens = qt_bench_host_zeros(b, (size_t)rows * sizeof(int));
    for (int r = 0; lens && r < rows; r++)
        lens[r] = r % m->T + 1;
    return lens;
}

static qt_status cases(qt_bench *b, const qt_bench_model *m, sm_args *a, qt_bench_fn fwd,
                       qt_bench_fn bwd) {
    const double n = (double)a->rows * a->cols, rows = a->rows, E = (double)qt_dtype_size(a->dt);
    const double att = (double)m->B * m->H * m->T * (m->T + 1) / 2; // attended elements
    qt_bench_shape(b, "rows=B*H*T=%d cols=%d causal", a->rows, a->cols);
    // fwd: reads scores (rows cols), lens (rows int); writes probs (rows cols) and fp32 p.
    //      Per attended element: scale, max, x - max, exp, sum, normalize (6); clipped and NCS
    //      add the stretch and the two bounds (3).
    const double fwd_bytes = E * 2 * n + 4 * n + 4 * rows;
    // bwd: reads dprobs, dscores (+=) (2 rows cols), fp32 p, lens; writes dscores. Per
    //      attended element: the row's dot product (2), (dprobs - dot) p (2), scale, add (6);
    //      clipped and NCS add the clip mask and the stretch (2).
    const double bwd_bytes = E * 3 * n + 4 * n + 4 * rows;
    static const struct {
        const char *fwd, *bwd;
        qt_softmax_params prm;
    } variants[] = {
        {"fwd", "bwd", {.kind = QT_SOFTMAX_VANILLA, .zeta = 1, .eta = 1, .beta = 1}},
        {"fwd_clipped",
         "bwd_clipped",
         {.kind = QT_SOFTMAX_CLIPPED, .gamma = -0.03f, .zeta = 1.0f, .eta = 1, .beta = 1}},
        {"fwd_ncs", "bwd_ncs", {.kind = QT_SOFTMAX_NCS, .zeta = 1, .eta = 1.03f, .beta = 1.0f}},
    };
    qt_bench_result vf = {0}, vb = {0};
    for (int v = 0; v < 3; v++) {
        a->prm = variants[v].prm;
        a->prm.scale = (float)(1.0 / sqrt((double)m->C / m->H));
        qt_bench_ref(b, v ? "vanilla" : NULL, vf.ms_median);
        QT_TRY(qt_bench_run(b, variants[v].fwd, fwd_bytes, att * (6 + (v ? 3 : 0)), fwd, a,
                            v ? NULL : &vf));
        qt_bench_ref(b, v ? "vanilla" : NULL, vb.ms_median);
        QT_TRY(qt_bench_run(b, variants[v].bwd, bwd_bytes, att * (6 + (v ? 2 : 0)), bwd, a,
                            v ? NULL : &vb));
    }
    return QT_OK;
}

static qt_status softmax_clip_cpu(qt_bench *b, const qt_bench_model *m) {
    sm_args a = {.rows = m->B * m->H * m->T, .cols = m->T, .dt = QT_DTYPE_F32};
    const size_t n = (size_t)a.rows * a.cols;
    a.scores = qt_bench_host_f32(b, n);
    a.dprobs = qt_bench_host_f32(b, n);
    a.probs = qt_bench_host_zeros(b, n * sizeof(float));
    a.dscores = qt_bench_host_zeros(b, n * sizeof(float));
    a.p = qt_bench_host_zeros(b, n * sizeof(float));
    a.lens = causal_lens(b, m);
    QT_TRY(qt_bench_ok(b));
    return cases(b, m, &a, cpu_fwd, cpu_bwd);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_fwd(void *arg) {
    sm_args *a = arg;
    return qt_cuda_softmax_clip_fwd(a->s, a->dt, &a->prm, a->probs, a->p, a->scores, a->lens,
                                    a->rows, a->cols);
}

static qt_status cuda_bwd(void *arg) {
    sm_args *a = arg;
    return qt_cuda_softmax_clip_bwd(a->s, a->dt, &a->prm, a->dscores, a->dprobs, a->p, a->lens,
                                    a->rows, a->cols);
}

static qt_status softmax_clip_cuda(qt_bench *b, const qt_bench_model *m) {
    sm_args a = {
        .rows = m->B * m->H * m->T, .cols = m->T, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t n = (size_t)a.rows * a.cols, E = qt_dtype_size(a.dt);
    a.scores = qt_bench_dev_rand(b, a.dt, n);
    a.dprobs = qt_bench_dev_rand(b, a.dt, n);
    a.probs = qt_bench_dev_zeros(b, n * E);
    a.dscores = qt_bench_dev_zeros(b, n * E);
    a.p = qt_bench_dev_zeros(b, n * sizeof(float));
    a.lens = qt_bench_dev_copy(b, causal_lens(b, m), (size_t)a.rows * sizeof(int));
    QT_TRY(qt_bench_ok(b));
    return cases(b, m, &a, cuda_fwd, cuda_bwd);
}
#endif

const qt_bench_family qt_bench_family_softmax_clip = {
    .name = "softmax_clip",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .cuda_models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = softmax_clip_cpu,
    .cuda = QT_BENCH_CUDA(softmax_clip_cuda),
};

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

enum { FWD, BWD };

static qt_status cpu_call(void *p, int op) {
    const sm_args *a = p;
    if (op == FWD)
        return qt_cpu_softmax_clip_fwd(&a->prm, a->probs, a->p, a->scores, a->lens, a->rows,
                                       a->cols);
    return qt_cpu_softmax_clip_bwd(&a->prm, a->dscores, a->dprobs, a->p, a->lens, a->rows, a->cols);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    sm_args a = {
        .rows = m->B * m->H * m->T, .cols = m->T, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t n = (size_t)a.rows * a.cols;
    a.scores = qt_bench_buf(b, QT_BENCH_RAND, n);
    a.dprobs = qt_bench_buf(b, QT_BENCH_RAND, n);
    a.probs = qt_bench_buf(b, QT_BENCH_ZEROS, n);
    a.dscores = qt_bench_buf(b, QT_BENCH_ZEROS, n);
    a.p = qt_bench_buf(b, QT_BENCH_F32_ZEROS, n);
    a.lens = qt_bench_buf_causal_lens(b, (size_t)a.rows, m->T);
    QT_TRY(qt_bench_ok(b));
    const double nd = (double)n, rows = a.rows, E = (double)qt_dtype_size(a.dt);
    const double att = (double)m->B * m->H * m->T * (m->T + 1) / 2; // attended elements
    qt_bench_shape(b, "rows=B*H*T=%d cols=%d causal", a.rows, a.cols);
    const qt_bench_case cases[] = {
        // fwd: reads scores (rows cols), lens (rows int); writes probs (rows cols) and fp32 p.
        //      Per attended element: scale, max, x - max, exp, sum, normalize (6); clipped and
        //      NCS add the stretch and the two bounds (3).
        {"fwd", FWD, E * 2 * nd + 4 * nd + 4 * rows, att * 6},
        // bwd: reads dprobs, dscores (+=) (2 rows cols), fp32 p, lens; writes dscores. Per
        //      attended element: the row's dot product (2), (dprobs - dot) p (2), scale, add
        //      (6); clipped and NCS add the clip mask and the stretch (2).
        {"bwd", BWD, E * 3 * nd + 4 * nd + 4 * rows, att * 6}};
    const double clip_flops[2] = {att * 3, att * 2};
    return qt_bench_softmax_variants(b, call, &a, &a.prm, (float)(1.0 / sqrt((double)m->C / m->H)),
                                     cases, clip_flops);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const sm_args *a = p;
    if (op == FWD)
        return qt_cuda_softmax_clip_fwd(a->s, a->dt, &a->prm, a->probs, a->p, a->scores, a->lens,
                                        a->rows, a->cols);
    return qt_cuda_softmax_clip_bwd(a->s, a->dt, &a->prm, a->dscores, a->dprobs, a->p, a->lens,
                                    a->rows, a->cols);
}
#endif

const qt_bench_family qt_bench_family_softmax_clip = {
    .name = "softmax_clip",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

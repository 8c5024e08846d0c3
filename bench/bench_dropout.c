// bench/bench_dropout.c: the dropout family (kernels/dropout.h) on the benchmark harness
// (bench/harness.h): inverted dropout with Philox masks (p = 0.1), forward and backward, on the
// residual stream (n = N C) of the default model and OPT-125m, CPU and CUDA.
#include "bench/harness.h"
#include "kernels/dropout.h"

typedef struct {
    size_t n;
    qt_dtype dt;
    qt_cuda_stream s;
    void *x, *out, *dout, *dx; // (n)
} drop_args;

#define PROB 0.1f
#define SEED 1234u
#define STREAM 5u

static qt_status cpu_fwd(void *p) {
    drop_args *a = p;
    qt_cpu_dropout_fwd(a->out, a->x, a->n, PROB, SEED, STREAM);
    return QT_OK;
}

static qt_status cpu_bwd(void *p) {
    drop_args *a = p;
    qt_cpu_dropout_bwd(a->dx, a->dout, a->n, PROB, SEED, STREAM);
    return QT_OK;
}

static qt_status cases(qt_bench *b, const qt_bench_model *m, drop_args *a, qt_bench_fn fwd,
                       qt_bench_fn bwd) {
    const double n = (double)a->n, E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "n=N*C=%d*%d p=0.1", m->B * m->T, m->C);
    // fwd: reads x, writes out (2 n). 2 flops per element: the compare with the uniform draw
    //      and the scaling (the Philox draw is integer work and not counted).
    QT_TRY(qt_bench_run(b, "fwd", E * 2 * n, 2 * n, fwd, a, NULL));
    // bwd: reads dout, dx (+=), writes dx (3 n). 3 flops: compare, scale, add.
    return qt_bench_run(b, "bwd", E * 3 * n, 3 * n, bwd, a, NULL);
}

static qt_status dropout_cpu(qt_bench *b, const qt_bench_model *m) {
    drop_args a = {.n = (size_t)m->B * m->T * m->C, .dt = QT_DTYPE_F32};
    a.x = qt_bench_host_f32(b, a.n);
    a.dout = qt_bench_host_f32(b, a.n);
    a.out = qt_bench_host_zeros(b, a.n * sizeof(float));
    a.dx = qt_bench_host_zeros(b, a.n * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    return cases(b, m, &a, cpu_fwd, cpu_bwd);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_fwd(void *p) {
    drop_args *a = p;
    return qt_cuda_dropout_fwd(a->s, a->dt, a->out, a->x, a->n, PROB, SEED, STREAM);
}

static qt_status cuda_bwd(void *p) {
    drop_args *a = p;
    return qt_cuda_dropout_bwd(a->s, a->dt, a->dx, a->dout, a->n, PROB, SEED, STREAM);
}

static qt_status dropout_cuda(qt_bench *b, const qt_bench_model *m) {
    drop_args a = {
        .n = (size_t)m->B * m->T * m->C, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    a.x = qt_bench_dev_rand(b, a.dt, a.n);
    a.dout = qt_bench_dev_rand(b, a.dt, a.n);
    a.out = qt_bench_dev_zeros(b, a.n * qt_dtype_size(a.dt));
    a.dx = qt_bench_dev_zeros(b, a.n * qt_dtype_size(a.dt));
    QT_TRY(qt_bench_ok(b));
    return cases(b, m, &a, cuda_fwd, cuda_bwd);
}
#endif

const qt_bench_family qt_bench_family_dropout = {
    .name = "dropout",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = dropout_cpu,
    .cuda = QT_BENCH_CUDA(dropout_cuda),
};

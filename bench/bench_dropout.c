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

enum { FWD, BWD };

static qt_status cpu_call(void *p, int op) {
    const drop_args *a = p;
    if (op == FWD) return qt_cpu_dropout_fwd(a->out, a->x, a->n, PROB, SEED, STREAM);
    return qt_cpu_dropout_bwd(a->dx, a->dout, a->n, PROB, SEED, STREAM);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    drop_args a = {
        .n = (size_t)m->B * m->T * m->C, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    a.x = qt_bench_buf(b, QT_BENCH_RAND, a.n);
    a.dout = qt_bench_buf(b, QT_BENCH_RAND, a.n);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, a.n);
    a.dx = qt_bench_buf(b, QT_BENCH_ZEROS, a.n);
    QT_TRY(qt_bench_ok(b));
    const double n = (double)a.n, E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "n=N*C=%d*%d p=0.1", m->B * m->T, m->C);
    const qt_bench_case cases[] = {
        // fwd: reads x, writes out (2 n). 2 flops per element: the compare with the uniform
        //      draw and the scaling (the Philox draw is integer work and not counted).
        {"fwd", FWD, E * 2 * n, 2 * n},
        // bwd: reads dout, dx (+=), writes dx (3 n). 3 flops: compare, scale, add.
        {"bwd", BWD, E * 3 * n, 3 * n}};
    return qt_bench_run_cases(b, call, &a, cases, 2);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const drop_args *a = p;
    if (op == FWD) return qt_cuda_dropout_fwd(a->s, a->dt, a->out, a->x, a->n, PROB, SEED, STREAM);
    return qt_cuda_dropout_bwd(a->s, a->dt, a->dx, a->dout, a->n, PROB, SEED, STREAM);
}
#endif

const qt_bench_family qt_bench_family_dropout = {
    .name = "dropout",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

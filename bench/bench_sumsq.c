// bench/bench_sumsq.c: the sumsq family (kernels/sumsq.h) on the benchmark harness
// (bench/harness.h): the sum of squares behind the global gradient norm, over the default
// model's gradients (4,240,896) and one OPT-125m block's (7,087,872), CPU and CUDA (whose call
// returns the sum to the host, so it waits for the stream).
#include "bench/harness.h"
#include "kernels/sumsq.h"

typedef struct {
    size_t n;
    qt_dtype dt;
    qt_cuda_stream s;
    void *x;          // (n)
    double *partials; // CUDA: qt_cuda_sumsq_scratch_size() doubles
    double out;
} sumsq_args;

// The parameters of the whole model when at most 16M, else of one block (as bench_adamw.c).
static size_t count(const qt_bench_model *m, const char **what) {
    const size_t C = (size_t)m->C, F = (size_t)m->F;
    const size_t block = 4 * C * C + 4 * C + 2 * C * F + F + C + 4 * C;
    const size_t all = (size_t)m->V * C + (size_t)m->T * C + (size_t)m->L * block + 2 * C;
    *what = all <= ((size_t)16 << 20) ? "all gradients" : "one block";
    return all <= ((size_t)16 << 20) ? all : block;
}

static qt_status cpu_call(void *p, int op) {
    sumsq_args *a = p;
    (void)op;
    return qt_cpu_sumsq(&a->out, a->x, a->n);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    const char *what;
    sumsq_args a = {.n = count(m, &what), .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    a.x = qt_bench_buf(b, QT_BENCH_RAND, a.n);
#ifdef QT_HAVE_CUDA
    if (qt_bench_device_of(b) == QT_BENCH_CUDA)
        a.partials = qt_bench_buf(b, QT_BENCH_BYTES, qt_cuda_sumsq_scratch_size() * sizeof(double));
#endif
    QT_TRY(qt_bench_ok(b));
    const double n = (double)a.n;
    qt_bench_shape(b, "n=%zu (%s)", a.n, what);
    // Reads x (n E); 2 flops per element (square, add; accumulated in double).
    const qt_bench_case c = {"sumsq", 0, (double)qt_dtype_size(a.dt) * n, 2 * n};
    return qt_bench_run_case(b, call, &a, &c, NULL);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    sumsq_args *a = p;
    (void)op;
    return qt_cuda_sumsq(a->s, a->dt, &a->out, a->x, a->n, a->partials);
}
#endif

const qt_bench_family qt_bench_family_sumsq = {
    .name = "sumsq",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

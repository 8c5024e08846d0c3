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

static qt_status cpu_run(void *p) {
    sumsq_args *a = p;
    return qt_cpu_sumsq(&a->out, a->x, a->n);
}

static qt_status cases(qt_bench *b, sumsq_args *a, const char *what, qt_bench_fn run) {
    const double n = (double)a->n;
    qt_bench_shape(b, "n=%zu (%s)", a->n, what);
    // Reads x (n E); 2 flops per element (square, add; accumulated in double).
    return qt_bench_run(b, "sumsq", (double)qt_dtype_size(a->dt) * n, 2 * n, run, a, NULL);
}

static qt_status sumsq_cpu(qt_bench *b, const qt_bench_model *m) {
    const char *what;
    sumsq_args a = {.n = count(m, &what), .dt = QT_DTYPE_F32};
    a.x = qt_bench_host_f32(b, a.n);
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, what, cpu_run);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_run(void *p) {
    sumsq_args *a = p;
    return qt_cuda_sumsq(a->s, a->dt, &a->out, a->x, a->n, a->partials);
}

static qt_status sumsq_cuda(qt_bench *b, const qt_bench_model *m) {
    const char *what;
    sumsq_args a = {.n = count(m, &what), .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    a.x = qt_bench_dev_rand(b, a.dt, a.n);
    a.partials = qt_bench_dev_zeros(b, qt_cuda_sumsq_scratch_size() * sizeof(double));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, what, cuda_run);
}
#endif

const qt_bench_family qt_bench_family_sumsq = {
    .name = "sumsq",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = sumsq_cpu,
    .cuda = QT_BENCH_CUDA(sumsq_cuda),
};

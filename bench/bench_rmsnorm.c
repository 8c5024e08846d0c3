// bench/bench_rmsnorm.c: the rmsnorm family (kernels/rmsnorm.h) on the benchmark harness
// (bench/harness.h): forward and backward on the (N = B T, C) of llama-tiny and llama-130m,
// CPU and CUDA.
#include "bench/harness.h"
#include "kernels/rmsnorm.h"

typedef struct {
    int N, C;
    qt_dtype dt;
    qt_cuda_stream s;
    void *x, *out, *dout, *dx; // (N, C)
    void *w, *dw;              // (C)
    float *rstd;               // (N) fp32
} rms_args;

enum { FWD, BWD };

static qt_status cpu_call(void *p, int op) {
    const rms_args *a = p;
    if (op == FWD) return qt_cpu_rmsnorm_fwd(a->out, a->rstd, a->x, a->w, a->N, a->C);
    return qt_cpu_rmsnorm_bwd(a->dx, a->dw, a->dout, a->x, a->rstd, a->w, a->N, a->C);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    rms_args a = {.N = m->B * m->T, .C = m->C, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nc = (size_t)a.N * a.C;
    a.x = qt_bench_buf(b, QT_BENCH_RAND, nc);
    a.dout = qt_bench_buf(b, QT_BENCH_RAND, nc);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, nc);
    a.dx = qt_bench_buf(b, QT_BENCH_ZEROS, nc);
    a.w = qt_bench_buf(b, QT_BENCH_RAND, (size_t)a.C);
    a.dw = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)a.C);
    a.rstd = qt_bench_buf(b, QT_BENCH_F32_ZEROS, (size_t)a.N);
    QT_TRY(qt_bench_ok(b));
    const double n = (double)a.N * a.C, C = a.C, N = a.N, E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "N=%d C=%d", a.N, a.C);
    const qt_bench_case cases[] = {
        // fwd: reads x (N C), w (C); writes out (N C), fp32 rstd (N). 4 flops per element: the
        //      square and its sum, x rstd w (2).
        {"fwd", FWD, E * (2 * n + C) + 4 * N, 4 * n},
        // bwd: reads dout, x, dx (+=) (3 N C), w, dw (+=) (2 C), fp32 rstd (N); writes dx
        //      (N C), dw (C). 9 flops per element: g = dout w and the row sum of g x (3), dx +=
        //      rstd (g - x rstd^2 mean(g x)) (4), dw += dout x rstd (2).
        {"bwd", BWD, E * (4 * n + 3 * C) + 4 * N, 9 * n}};
    return qt_bench_run_cases(b, call, &a, cases, 2);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const rms_args *a = p;
    if (op == FWD) return qt_cuda_rmsnorm_fwd(a->s, a->dt, a->out, a->rstd, a->x, a->w, a->N, a->C);
    return qt_cuda_rmsnorm_bwd(a->s, a->dt, a->dx, a->dw, a->dout, a->x, a->rstd, a->w, a->N, a->C);
}
#endif

const qt_bench_family qt_bench_family_rmsnorm = {
    .name = "rmsnorm",
    .models = {&qt_bench_model_llama_tiny, &qt_bench_model_llama130m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

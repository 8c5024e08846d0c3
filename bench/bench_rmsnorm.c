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

static qt_status cpu_fwd(void *p) {
    rms_args *a = p;
    qt_cpu_rmsnorm_fwd(a->out, a->rstd, a->x, a->w, a->N, a->C);
    return QT_OK;
}

static qt_status cpu_bwd(void *p) {
    rms_args *a = p;
    qt_cpu_rmsnorm_bwd(a->dx, a->dw, a->dout, a->x, a->rstd, a->w, a->N, a->C);
    return QT_OK;
}

static qt_status cases(qt_bench *b, rms_args *a, qt_bench_fn fwd, qt_bench_fn bwd) {
    const double n = (double)a->N * a->C, C = a->C, N = a->N, E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "N=%d C=%d", a->N, a->C);
    // fwd: reads x (N C), w (C); writes out (N C), fp32 rstd (N). 4 flops per element: the
    //      square and its sum, x rstd w (2).
    QT_TRY(qt_bench_run(b, "fwd", E * (2 * n + C) + 4 * N, 4 * n, fwd, a, NULL));
    // bwd: reads dout, x, dx (+=) (3 N C), w, dw (+=) (2 C), fp32 rstd (N); writes dx (N C),
    //      dw (C). 9 flops per element: g = dout w and the row sum of g x (3), dx += rstd (g -
    //      x rstd^2 mean(g x)) (4), dw += dout x rstd (2).
    return qt_bench_run(b, "bwd", E * (4 * n + 3 * C) + 4 * N, 9 * n, bwd, a, NULL);
}

static qt_status rmsnorm_cpu(qt_bench *b, const qt_bench_model *m) {
    rms_args a = {.N = m->B * m->T, .C = m->C, .dt = QT_DTYPE_F32};
    const size_t nc = (size_t)a.N * a.C;
    a.x = qt_bench_host_f32(b, nc);
    a.dout = qt_bench_host_f32(b, nc);
    a.out = qt_bench_host_zeros(b, nc * sizeof(float));
    a.dx = qt_bench_host_zeros(b, nc * sizeof(float));
    a.w = qt_bench_host_f32(b, (size_t)a.C);
    a.dw = qt_bench_host_zeros(b, (size_t)a.C * sizeof(float));
    a.rstd = qt_bench_host_zeros(b, (size_t)a.N * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cpu_fwd, cpu_bwd);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_fwd(void *p) {
    rms_args *a = p;
    return qt_cuda_rmsnorm_fwd(a->s, a->dt, a->out, a->rstd, a->x, a->w, a->N, a->C);
}

static qt_status cuda_bwd(void *p) {
    rms_args *a = p;
    return qt_cuda_rmsnorm_bwd(a->s, a->dt, a->dx, a->dw, a->dout, a->x, a->rstd, a->w, a->N, a->C);
}

static qt_status rmsnorm_cuda(qt_bench *b, const qt_bench_model *m) {
    rms_args a = {.N = m->B * m->T, .C = m->C, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nc = (size_t)a.N * a.C, E = qt_dtype_size(a.dt);
    a.x = qt_bench_dev_rand(b, a.dt, nc);
    a.dout = qt_bench_dev_rand(b, a.dt, nc);
    a.out = qt_bench_dev_zeros(b, nc * E);
    a.dx = qt_bench_dev_zeros(b, nc * E);
    a.w = qt_bench_dev_rand(b, a.dt, (size_t)a.C);
    a.dw = qt_bench_dev_zeros(b, (size_t)a.C * E);
    a.rstd = qt_bench_dev_zeros(b, (size_t)a.N * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cuda_fwd, cuda_bwd);
}
#endif

const qt_bench_family qt_bench_family_rmsnorm = {
    .name = "rmsnorm",
    .models = {&qt_bench_model_llama_tiny, &qt_bench_model_llama130m},
    .cpu = rmsnorm_cpu,
    .cuda = QT_BENCH_CUDA(rmsnorm_cuda),
};

// bench/bench_swiglu.c: the swiglu family (kernels/swiglu.h) on the benchmark harness
// (bench/harness.h): SwiGLU silu(a) * b over the MLP's (N, 2F) of llama-tiny and llama-130m,
// forward and backward, CPU and CUDA.
#include "bench/harness.h"
#include "kernels/swiglu.h"

typedef struct {
    int N, F;
    qt_dtype dt;
    qt_cuda_stream s;
    void *x, *dx;     // (N, 2F): [a | b]
    void *out, *dout; // (N, F)
} swiglu_args;

static qt_status cpu_fwd(void *p) {
    swiglu_args *a = p;
    qt_cpu_swiglu_fwd(a->out, a->x, a->N, a->F);
    return QT_OK;
}

static qt_status cpu_bwd(void *p) {
    swiglu_args *a = p;
    qt_cpu_swiglu_bwd(a->dx, a->dout, a->x, a->N, a->F);
    return QT_OK;
}

static qt_status cases(qt_bench *b, swiglu_args *a, qt_bench_fn fwd, qt_bench_fn bwd) {
    const double nf = (double)a->N * a->F, E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "N=%d F=%d", a->N, a->F);
    // fwd: reads x (2 N F), writes out (N F). Per output: the sigmoid (exp, add, divide), a
    //      times it, times b: 5.
    QT_TRY(qt_bench_run(b, "fwd", E * 3 * nf, 5 * nf, fwd, a, NULL));
    // bwd: reads dout (N F), x and dx (+=) (4 N F); writes dx (2 N F). Per output: the sigmoid
    //      (3), silu (1), silu' = s (1 + a (1 - s)) (4), the two gradients (dout b silu',
    //      dout silu: 3) and their adds (2): 13.
    return qt_bench_run(b, "bwd", E * 7 * nf, 13 * nf, bwd, a, NULL);
}

static qt_status swiglu_cpu(qt_bench *b, const qt_bench_model *m) {
    swiglu_args a = {.N = m->B * m->T, .F = m->F, .dt = QT_DTYPE_F32};
    const size_t nf = (size_t)a.N * a.F;
    a.x = qt_bench_host_f32(b, 2 * nf);
    a.dx = qt_bench_host_zeros(b, 2 * nf * sizeof(float));
    a.out = qt_bench_host_zeros(b, nf * sizeof(float));
    a.dout = qt_bench_host_f32(b, nf);
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cpu_fwd, cpu_bwd);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_fwd(void *p) {
    swiglu_args *a = p;
    return qt_cuda_swiglu_fwd(a->s, a->dt, a->out, a->x, a->N, a->F);
}

static qt_status cuda_bwd(void *p) {
    swiglu_args *a = p;
    return qt_cuda_swiglu_bwd(a->s, a->dt, a->dx, a->dout, a->x, a->N, a->F);
}

static qt_status swiglu_cuda(qt_bench *b, const qt_bench_model *m) {
    swiglu_args a = {.N = m->B * m->T, .F = m->F, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nf = (size_t)a.N * a.F, E = qt_dtype_size(a.dt);
    a.x = qt_bench_dev_rand(b, a.dt, 2 * nf);
    a.dx = qt_bench_dev_zeros(b, 2 * nf * E);
    a.out = qt_bench_dev_zeros(b, nf * E);
    a.dout = qt_bench_dev_rand(b, a.dt, nf);
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cuda_fwd, cuda_bwd);
}
#endif

const qt_bench_family qt_bench_family_swiglu = {
    .name = "swiglu",
    .models = {&qt_bench_model_llama_tiny, &qt_bench_model_llama130m},
    .cpu = swiglu_cpu,
    .cuda = QT_BENCH_CUDA(swiglu_cuda),
};

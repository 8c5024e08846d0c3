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

enum { FWD, BWD };

static qt_status cpu_call(void *p, int op) {
    const swiglu_args *a = p;
    if (op == FWD) return qt_cpu_swiglu_fwd(a->out, a->x, a->N, a->F);
    return qt_cpu_swiglu_bwd(a->dx, a->dout, a->x, a->N, a->F);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    swiglu_args a = {.N = m->B * m->T, .F = m->F, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nf = (size_t)a.N * a.F;
    a.x = qt_bench_buf(b, QT_BENCH_RAND, 2 * nf);
    a.dx = qt_bench_buf(b, QT_BENCH_ZEROS, 2 * nf);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, nf);
    a.dout = qt_bench_buf(b, QT_BENCH_RAND, nf);
    QT_TRY(qt_bench_ok(b));
    const double E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "N=%d F=%d", a.N, a.F);
    const qt_bench_case cases[] = {
        // fwd: reads x (2 N F), writes out (N F). Per output: the sigmoid (exp, add, divide), a
        //      times it, times b: 5.
        {"fwd", FWD, E * 3 * (double)nf, 5 * (double)nf},
        // bwd: reads dout (N F), x and dx (+=) (4 N F); writes dx (2 N F). Per output: the
        //      sigmoid (3), silu (1), silu' = s (1 + a (1 - s)) (4), the two gradients (dout b
        //      silu', dout silu: 3) and their adds (2): 13.
        {"bwd", BWD, E * 7 * (double)nf, 13 * (double)nf}};
    return qt_bench_run_cases(b, call, &a, cases, 2);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const swiglu_args *a = p;
    if (op == FWD) return qt_cuda_swiglu_fwd(a->s, a->dt, a->out, a->x, a->N, a->F);
    return qt_cuda_swiglu_bwd(a->s, a->dt, a->dx, a->dout, a->x, a->N, a->F);
}
#endif

const qt_bench_family qt_bench_family_swiglu = {
    .name = "swiglu",
    .models = {&qt_bench_model_llama_tiny, &qt_bench_model_llama130m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

// bench/bench_activation.c: the activation family (kernels/activation.h) on the benchmark
// harness (bench/harness.h): GELU and ReLU, forward and backward, on the MLP hidden layer
// (n = N F elements) of the default model and OPT-125m, CPU and CUDA.
#include "bench/harness.h"
#include "kernels/activation.h"

typedef struct {
    size_t n;
    qt_dtype dt;
    qt_cuda_stream s;
    void *x, *out, *dout, *dx; // (n)
} act_args;

enum { GELU_FWD, GELU_BWD, RELU_FWD, RELU_BWD };

static qt_status cpu_call(void *p, int op) {
    const act_args *a = p;
    if (op == GELU_FWD) return qt_cpu_gelu_fwd(a->out, a->x, a->n);
    if (op == GELU_BWD) return qt_cpu_gelu_bwd(a->dx, a->dout, a->x, a->n);
    if (op == RELU_FWD) return qt_cpu_relu_fwd(a->out, a->x, a->n);
    return qt_cpu_relu_bwd(a->dx, a->dout, a->x, a->n);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    act_args a = {
        .n = (size_t)m->B * m->T * m->F, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    a.x = qt_bench_buf(b, QT_BENCH_RAND, a.n);
    a.dout = qt_bench_buf(b, QT_BENCH_RAND, a.n);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, a.n);
    a.dx = qt_bench_buf(b, QT_BENCH_ZEROS, a.n);
    QT_TRY(qt_bench_ok(b));
    const double n = (double)a.n, E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "n=N*F=%d*%d", m->B * m->T, m->F);
    // fwd: reads x, writes out (2 n). bwd: reads dout, x, dx (+=), writes dx (4 n).
    // GELU (tanh form, evaluated as x / (1 + exp(-2u))): 9 flops forward, 20 backward (the
    // derivative's 18 terms, the product with dout and the add). ReLU: 1 compare forward; a
    // compare and an add backward.
    const qt_bench_case cases[] = {{"gelu_fwd", GELU_FWD, E * 2 * n, 9 * n},
                                   {"gelu_bwd", GELU_BWD, E * 4 * n, 20 * n},
                                   {"relu_fwd", RELU_FWD, E * 2 * n, n},
                                   {"relu_bwd", RELU_BWD, E * 4 * n, 2 * n}};
    return qt_bench_run_cases(b, call, &a, cases, 4);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const act_args *a = p;
    if (op == GELU_FWD) return qt_cuda_gelu_fwd(a->s, a->dt, a->out, a->x, a->n);
    if (op == GELU_BWD) return qt_cuda_gelu_bwd(a->s, a->dt, a->dx, a->dout, a->x, a->n);
    if (op == RELU_FWD) return qt_cuda_relu_fwd(a->s, a->dt, a->out, a->x, a->n);
    return qt_cuda_relu_bwd(a->s, a->dt, a->dx, a->dout, a->x, a->n);
}
#endif

const qt_bench_family qt_bench_family_activation = {
    .name = "activation",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

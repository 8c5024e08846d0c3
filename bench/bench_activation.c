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

static qt_status cpu_gelu_fwd(void *p) {
    act_args *a = p;
    qt_cpu_gelu_fwd(a->out, a->x, a->n);
    return QT_OK;
}
static qt_status cpu_gelu_bwd(void *p) {
    act_args *a = p;
    qt_cpu_gelu_bwd(a->dx, a->dout, a->x, a->n);
    return QT_OK;
}
static qt_status cpu_relu_fwd(void *p) {
    act_args *a = p;
    qt_cpu_relu_fwd(a->out, a->x, a->n);
    return QT_OK;
}
static qt_status cpu_relu_bwd(void *p) {
    act_args *a = p;
    qt_cpu_relu_bwd(a->dx, a->dout, a->x, a->n);
    return QT_OK;
}

// fns: gelu fwd, gelu bwd, relu fwd, relu bwd.
static qt_status cases(qt_bench *b, const qt_bench_model *m, act_args *a,
                       const qt_bench_fn fns[4]) {
    const double n = (double)a->n, E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "n=N*F=%d*%d", m->B * m->T, m->F);
    // fwd: reads x, writes out (2 n). bwd: reads dout, x, dx (+=), writes dx (4 n).
    // GELU (tanh form, evaluated as x / (1 + exp(-2u))): 9 flops forward, 20 backward (the
    // derivative's 18 terms, the product with dout and the add). ReLU: 1 compare forward; a
    // compare and an add backward.
    QT_TRY(qt_bench_run(b, "gelu_fwd", E * 2 * n, 9 * n, fns[0], a, NULL));
    QT_TRY(qt_bench_run(b, "gelu_bwd", E * 4 * n, 20 * n, fns[1], a, NULL));
    QT_TRY(qt_bench_run(b, "relu_fwd", E * 2 * n, n, fns[2], a, NULL));
    QT_TRY(qt_bench_run(b, "relu_bwd", E * 4 * n, 2 * n, fns[3], a, NULL));
    return QT_OK;
}

static qt_status activation_cpu(qt_bench *b, const qt_bench_model *m) {
    act_args a = {.n = (size_t)m->B * m->T * m->F, .dt = QT_DTYPE_F32};
    a.x = qt_bench_host_f32(b, a.n);
    a.dout = qt_bench_host_f32(b, a.n);
    a.out = qt_bench_host_zeros(b, a.n * sizeof(float));
    a.dx = qt_bench_host_zeros(b, a.n * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    static const qt_bench_fn fns[4] = {cpu_gelu_fwd, cpu_gelu_bwd, cpu_relu_fwd, cpu_relu_bwd};
    return cases(b, m, &a, fns);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_gelu_fwd(void *p) {
    act_args *a = p;
    return qt_cuda_gelu_fwd(a->s, a->dt, a->out, a->x, a->n);
}
static qt_status cuda_gelu_bwd(void *p) {
    act_args *a = p;
    return qt_cuda_gelu_bwd(a->s, a->dt, a->dx, a->dout, a->x, a->n);
}
static qt_status cuda_relu_fwd(void *p) {
    act_args *a = p;
    return qt_cuda_relu_fwd(a->s, a->dt, a->out, a->x, a->n);
}
static qt_status cuda_relu_bwd(void *p) {
    act_args *a = p;
    return qt_cuda_relu_bwd(a->s, a->dt, a->dx, a->dout, a->x, a->n);
}

static qt_status activation_cuda(qt_bench *b, const qt_bench_model *m) {
    act_args a = {
        .n = (size_t)m->B * m->T * m->F, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    a.x = qt_bench_dev_rand(b, a.dt, a.n);
    a.dout = qt_bench_dev_rand(b, a.dt, a.n);
    a.out = qt_bench_dev_zeros(b, a.n * qt_dtype_size(a.dt));
    a.dx = qt_bench_dev_zeros(b, a.n * qt_dtype_size(a.dt));
    QT_TRY(qt_bench_ok(b));
    static const qt_bench_fn fns[4] = {cuda_gelu_fwd, cuda_gelu_bwd, cuda_relu_fwd, cuda_relu_bwd};
    return cases(b, m, &a, fns);
}
#endif

const qt_bench_family qt_bench_family_activation = {
    .name = "activation",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = activation_cpu,
    .cuda = QT_BENCH_CUDA(activation_cuda),
};

// bench/bench_elementwise.c: the elementwise family (kernels/elementwise.h) on the benchmark
// harness (bench/harness.h): the residual add on (N, C), the bias add and its gradient on the
// MLP hidden layer (N, F), and on CUDA the fp32 -> fp16 cast of (N, C), for the default model
// and OPT-125m, CPU and CUDA.
#include "bench/harness.h"
#include "kernels/elementwise.h"

typedef struct {
    int N, C, F;
    qt_dtype dt;
    qt_cuda_stream s;
    void *a, *b, *out; // (N, C)
    void *h, *dh;      // (N, F)
    void *bias, *db;   // (F)
    float *f32;        // (N, C) fp32 (CUDA: the cast's source)
} ew_args;

static qt_status cpu_add(void *p) {
    ew_args *a = p;
    qt_cpu_add(a->out, a->a, a->b, (size_t)a->N * a->C);
    return QT_OK;
}

static qt_status cpu_bias_add(void *p) {
    ew_args *a = p;
    qt_cpu_bias_add(a->h, a->bias, a->N, a->F);
    return QT_OK;
}

static qt_status cpu_bias_grad(void *p) {
    ew_args *a = p;
    qt_cpu_bias_grad(a->db, a->dh, a->N, a->F);
    return QT_OK;
}

// fns: add, bias_add, bias_grad, cast (NULL on the CPU: no CPU twin).
static qt_status cases(qt_bench *b, ew_args *a, const qt_bench_fn fns[4]) {
    const double nc = (double)a->N * a->C, nf = (double)a->N * a->F, F = a->F;
    const double E = (double)qt_dtype_size(a->dt);
    // add: reads a, b, writes out (3 N C); one add per element.
    qt_bench_shape(b, "N=%d C=%d", a->N, a->C);
    QT_TRY(qt_bench_run(b, "add", E * 3 * nc, nc, fns[0], a, NULL));
    if (fns[3]) {
        // cast fp32 -> fp16: reads 4 bytes, writes 2 per element; one conversion each.
        QT_TRY(qt_bench_run(b, "cast_f32_f16", 6 * nc, nc, fns[3], a, NULL));
    }
    qt_bench_shape(b, "N=%d F=%d", a->N, a->F);
    // bias_add: reads out (+=, N F), bias (F); writes out (N F). One add per element.
    QT_TRY(qt_bench_run(b, "bias_add", E * (2 * nf + F), nf, fns[1], a, NULL));
    // bias_grad: reads dout (N F), db (+=, F); writes db (F). One add per element.
    return qt_bench_run(b, "bias_grad", E * (nf + 2 * F), nf, fns[2], a, NULL);
}

static qt_status elementwise_cpu(qt_bench *b, const qt_bench_model *m) {
    ew_args a = {.N = m->B * m->T, .C = m->C, .F = m->F, .dt = QT_DTYPE_F32};
    const size_t nc = (size_t)a.N * a.C, nf = (size_t)a.N * a.F;
    a.a = qt_bench_host_f32(b, nc);
    a.b = qt_bench_host_f32(b, nc);
    a.out = qt_bench_host_zeros(b, nc * sizeof(float));
    a.h = qt_bench_host_f32(b, nf);
    a.dh = qt_bench_host_f32(b, nf);
    a.bias = qt_bench_host_f32(b, (size_t)a.F);
    a.db = qt_bench_host_zeros(b, (size_t)a.F * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    static const qt_bench_fn fns[4] = {cpu_add, cpu_bias_add, cpu_bias_grad, NULL};
    return cases(b, &a, fns);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_add(void *p) {
    ew_args *a = p;
    return qt_cuda_add(a->s, a->dt, a->out, a->a, a->b, (size_t)a->N * a->C);
}

static qt_status cuda_bias_add(void *p) {
    ew_args *a = p;
    return qt_cuda_bias_add(a->s, a->dt, a->h, a->bias, a->N, a->F);
}

static qt_status cuda_bias_grad(void *p) {
    ew_args *a = p;
    return qt_cuda_bias_grad(a->s, a->dt, a->db, a->dh, a->N, a->F);
}

static qt_status cuda_cast(void *p) {
    ew_args *a = p;
    return qt_cuda_cast(a->s, QT_DTYPE_F16, a->out, QT_DTYPE_F32, a->f32, (size_t)a->N * a->C);
}

static qt_status elementwise_cuda(qt_bench *b, const qt_bench_model *m) {
    ew_args a = {
        .N = m->B * m->T, .C = m->C, .F = m->F, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nc = (size_t)a.N * a.C, nf = (size_t)a.N * a.F, E = qt_dtype_size(a.dt);
    a.a = qt_bench_dev_rand(b, a.dt, nc);
    a.b = qt_bench_dev_rand(b, a.dt, nc);
    a.out = qt_bench_dev_zeros(b, nc * (E > 2 ? E : 2));
    a.h = qt_bench_dev_rand(b, a.dt, nf);
    a.dh = qt_bench_dev_rand(b, a.dt, nf);
    a.bias = qt_bench_dev_rand(b, a.dt, (size_t)a.F);
    a.db = qt_bench_dev_zeros(b, (size_t)a.F * E);
    a.f32 = qt_bench_dev_rand(b, QT_DTYPE_F32, nc);
    QT_TRY(qt_bench_ok(b));
    static const qt_bench_fn fns[4] = {cuda_add, cuda_bias_add, cuda_bias_grad, cuda_cast};
    return cases(b, &a, fns);
}
#endif

const qt_bench_family qt_bench_family_elementwise = {
    .name = "elementwise",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = elementwise_cpu,
    .cuda = QT_BENCH_CUDA(elementwise_cuda),
};

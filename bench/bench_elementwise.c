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
    void *scratch;     // CUDA: the split column sums' scratch (kernels/elementwise.h)
} ew_args;

enum { ADD, BIAS_ADD, BIAS_GRAD, CAST };

static qt_status cpu_call(void *p, int op) {
    const ew_args *a = p;
    if (op == ADD) return qt_cpu_add(a->out, a->a, a->b, (size_t)a->N * a->C);
    if (op == BIAS_ADD) return qt_cpu_bias_add(a->h, a->bias, a->N, a->F);
    return qt_cpu_bias_grad(a->db, a->dh, a->N, a->F);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    const int cuda = qt_bench_device_of(b) == QT_BENCH_CUDA;
    ew_args a = {
        .N = m->B * m->T, .C = m->C, .F = m->F, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nc = (size_t)a.N * a.C, nf = (size_t)a.N * a.F;
    a.a = qt_bench_buf(b, QT_BENCH_RAND, nc);
    a.b = qt_bench_buf(b, QT_BENCH_RAND, nc);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, nc); // also holds the cast's fp16
    a.h = qt_bench_buf(b, QT_BENCH_RAND, nf);
    a.dh = qt_bench_buf(b, QT_BENCH_RAND, nf);
    a.bias = qt_bench_buf(b, QT_BENCH_RAND, (size_t)a.F);
    a.db = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)a.F);
#ifdef QT_HAVE_CUDA
    // zeroed: the ready state of its counters (qt_cuda_colsum_scratch_init's)
    if (qt_bench_device_of(b) == QT_BENCH_CUDA)
        a.scratch = qt_bench_buf(b, QT_BENCH_F32_ZEROS, qt_cuda_colsum_scratch_bytes() / 4);
#endif
    a.f32 = cuda ? qt_bench_buf(b, QT_BENCH_F32, nc) : NULL;
    QT_TRY(qt_bench_ok(b));
    const double E = (double)qt_dtype_size(a.dt), F = a.F;
    const qt_bench_case nc_cases[] = {
        // add: reads a, b, writes out (3 N C); one add per element.
        {"add", ADD, E * 3 * (double)nc, (double)nc},
        // cast fp32 -> fp16 (CUDA only): reads 4 bytes, writes 2 per element; one conversion
        // each.
        {"cast_f32_f16", CAST, 6 * (double)nc, (double)nc}};
    qt_bench_shape(b, "N=%d C=%d", a.N, a.C);
    QT_TRY(qt_bench_run_cases(b, call, &a, nc_cases, cuda ? 2 : 1));
    const qt_bench_case nf_cases[] = {
        // bias_add: reads out (+=, N F), bias (F); writes out (N F). One add per element.
        {"bias_add", BIAS_ADD, E * (2 * (double)nf + F), (double)nf},
        // bias_grad: reads dout (N F), db (+=, F); writes db (F). One add per element.
        {"bias_grad", BIAS_GRAD, E * ((double)nf + 2 * F), (double)nf}};
    qt_bench_shape(b, "N=%d F=%d", a.N, a.F);
    return qt_bench_run_cases(b, call, &a, nf_cases, 2);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const ew_args *a = p;
    const size_t nc = (size_t)a->N * a->C;
    if (op == ADD) return qt_cuda_add(a->s, a->dt, a->out, a->a, a->b, nc);
    if (op == BIAS_ADD) return qt_cuda_bias_add(a->s, a->dt, a->h, a->bias, a->N, a->F);
    if (op == BIAS_GRAD) return qt_cuda_bias_grad(a->s, a->dt, a->db, a->dh, a->N, a->F, a->scratch);
    return qt_cuda_cast(a->s, QT_DTYPE_F16, a->out, QT_DTYPE_F32, a->f32, nc);
}
#endif

const qt_bench_family qt_bench_family_elementwise = {
    .name = "elementwise",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

// bench/bench_adamw.c: the adamw family (kernels/adamw.h) on the benchmark harness
// (bench/harness.h): one AdamW step over the default model's parameters and over one OPT-125m
// block's, CPU (fp32 parameters) and CUDA (fp32 master weights, moments, fp16 parameters and
// gradients, as the CUDA backend trains).
#include "bench/harness.h"
#include "kernels/adamw.h"

typedef struct {
    size_t n;
    qt_dtype dt;
    qt_cuda_stream s;
    qt_adamw_params prm;
    void *param, *grad;    // (n) fp32 on the CPU, dt on CUDA
    float *master, *m, *v; // (n) fp32 (master: CUDA only)
} adamw_args;

// Parameters of one OPT-style block: qkv and out_proj weights and biases (4 C^2 + 4 C), fc1 and
// fc2 weights and biases (2 C F + F + C), two LayerNorms (4 C).
static size_t block_params(const qt_bench_model *m) {
    const size_t C = (size_t)m->C, F = (size_t)m->F;
    return 4 * C * C + 4 * C + 2 * C * F + F + C + 4 * C;
}

// The whole model (token and position embeddings, L blocks, the final LayerNorm: 4,240,896 for
// the default model) when it has at most 16M parameters, else one block (OPT-125m: 7,087,872;
// its 125M would take a second a step).
static size_t count(const qt_bench_model *m, const char **what) {
    const size_t all = (size_t)m->V * m->C + (size_t)m->T * m->C + (size_t)m->L * block_params(m) +
                       2 * (size_t)m->C;
    *what = all <= ((size_t)16 << 20) ? "all parameters" : "one block";
    return all <= ((size_t)16 << 20) ? all : block_params(m);
}

static qt_status cpu_call(void *p, int op) {
    const adamw_args *a = p;
    (void)op;
    return qt_cpu_adamw_step(a->param, a->grad, a->m, a->v, a->n, &a->prm);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    const int cuda = qt_bench_device_of(b) == QT_BENCH_CUDA;
    const char *what;
    adamw_args a = {.n = count(m, &what),
                    .dt = qt_bench_dtype(b),
                    .s = qt_bench_stream(b),
                    .prm = {.lr = 1e-4f,
                            .beta1 = 0.9f,
                            .beta2 = 0.95f,
                            .eps = 1e-8f,
                            .weight_decay = 0.1f,
                            .step = 10,
                            .grad_scale = 1.0f}};
    a.param = qt_bench_buf(b, cuda ? QT_BENCH_ZEROS : QT_BENCH_RAND, a.n); // CUDA: from master
    a.grad = qt_bench_buf(b, QT_BENCH_RAND, a.n);
    a.master = cuda ? qt_bench_buf(b, QT_BENCH_F32, a.n) : NULL;
    a.m = qt_bench_buf(b, QT_BENCH_F32_ZEROS, a.n);
    a.v = qt_bench_buf(b, QT_BENCH_F32_ZEROS, a.n);
    QT_TRY(qt_bench_ok(b));
    const double n = (double)a.n, E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "n=%zu (%s)", a.n, what);
    // CPU: reads param, grad, m, v; writes param, m, v (7 n fp32).
    // CUDA: reads master, m, v (fp32), grad (E); writes master, m, v (fp32), param (E).
    // 18 flops per element: g = grad gs (1), m (3), v (4), the bias corrections (2),
    // sqrt, + eps, the divide (3), + wd w (2), w - lr step (2), as kernels/cpu/adamw.c.
    const qt_bench_case c = {"step", 0, a.master ? 24 * n + 2 * E * n : 28 * n, 18 * n};
    return qt_bench_run_case(b, call, &a, &c, NULL);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const adamw_args *a = p;
    (void)op;
    return qt_cuda_adamw_step(a->s, a->dt, a->param, a->master, a->grad, a->m, a->v, a->n, &a->prm);
}
#endif

const qt_bench_family qt_bench_family_adamw = {
    .name = "adamw",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

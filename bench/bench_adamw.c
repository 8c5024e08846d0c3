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

static qt_status cpu_step(void *p) {
    adamw_args *a = p;
    qt_cpu_adamw_step(a->param, a->grad, a->m, a->v, a->n, &a->prm);
    return QT_OK;
}

static qt_status cases(qt_bench *b, adamw_args *a, const char *what, qt_bench_fn step) {
    const double n = (double)a->n, E = (double)qt_dtype_size(a->dt);
    a->prm = (qt_adamw_params){.lr = 1e-4f,
                               .beta1 = 0.9f,
                               .beta2 = 0.95f,
                               .eps = 1e-8f,
                               .weight_decay = 0.1f,
                               .step = 10,
                               .grad_scale = 1.0f};
    qt_bench_shape(b, "n=%zu (%s)", a->n, what);
    // CPU: reads param, grad, m, v; writes param, m, v (7 n fp32).
    // CUDA: reads master, m, v (fp32), grad (E); writes master, m, v (fp32), param (E).
    // 18 flops per element: g = grad gs (1), m (3), v (4), the bias corrections (2),
    // sqrt, + eps, the divide (3), + wd w (2), w - lr step (2), as kernels/cpu/adamw.c.
    const double bytes = a->master ? 24 * n + 2 * E * n : 28 * n;
    return qt_bench_run(b, "step", bytes, 18 * n, step, a, NULL);
}

static qt_status adamw_cpu(qt_bench *b, const qt_bench_model *m) {
    const char *what;
    adamw_args a = {.n = count(m, &what), .dt = QT_DTYPE_F32};
    a.param = qt_bench_host_f32(b, a.n);
    a.grad = qt_bench_host_f32(b, a.n);
    a.m = qt_bench_host_zeros(b, a.n * sizeof(float));
    a.v = qt_bench_host_zeros(b, a.n * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, what, cpu_step);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_step(void *p) {
    adamw_args *a = p;
    return qt_cuda_adamw_step(a->s, a->dt, a->param, a->master, a->grad, a->m, a->v, a->n, &a->prm);
}

static qt_status adamw_cuda(qt_bench *b, const qt_bench_model *m) {
    const char *what;
    adamw_args a = {.n = count(m, &what), .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    a.param = qt_bench_dev_zeros(b, a.n * qt_dtype_size(a.dt));
    a.grad = qt_bench_dev_rand(b, a.dt, a.n);
    a.master = qt_bench_dev_rand(b, QT_DTYPE_F32, a.n);
    a.m = qt_bench_dev_zeros(b, a.n * sizeof(float));
    a.v = qt_bench_dev_zeros(b, a.n * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, what, cuda_step);
}
#endif

const qt_bench_family qt_bench_family_adamw = {
    .name = "adamw",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = adamw_cpu,
    .cuda = QT_BENCH_CUDA(adamw_cuda),
};

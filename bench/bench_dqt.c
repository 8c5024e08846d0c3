// bench/bench_dqt.c: the dqt family (kernels/dqt.h) on the benchmark harness (bench/harness.h):
// one DQT step (AdamW on ternary int8 codes, stochastic rounding) and the dequantization, on
// the block linears of llama-tiny (all four layers: 790,528 weights, as llama-tiny-dqt trains)
// and of one llama-130m block (7,077,888), CPU and CUDA (with and without the stats the scale
// rules need, which the CUDA step reduces on the device and copies back).
#include "bench/harness.h"
#include "kernels/dqt.h"

typedef struct {
    size_t n;
    qt_dtype dt;
    qt_cuda_stream s;
    qt_dqt_params dp;
    qt_dqt_stats stats;
    int8_t *codes; // (n)
    void *grad;    // (n) fp32 on the CPU, dt on CUDA
    float *m, *v;  // (n) fp32
    void *out;     // (n) the dequantized weights, fp32 / dt
    void *scratch; // CUDA: qt_cuda_dqt_scratch_bytes(n)
} dqt_args;

// The LLaMA block's linears: qkv, out_proj (4 C^2) and SwiGLU's fc1 (2F, C), fc2 (C, F): all L
// blocks when that is at most 16M weights, else one block.
static size_t count(const qt_bench_model *m, const char **what) {
    const size_t block = 4 * (size_t)m->C * m->C + 3 * (size_t)m->C * m->F;
    *what = (size_t)m->L * block <= ((size_t)16 << 20) ? "all block linears" : "one block";
    return (size_t)m->L * block <= ((size_t)16 << 20) ? (size_t)m->L * block : block;
}

static void init_params(dqt_args *a) {
    a->dp = (qt_dqt_params){.adam = {.lr = 1e-3f,
                                     .beta1 = 0.9f,
                                     .beta2 = 0.95f,
                                     .eps = 1e-6f,
                                     .weight_decay = 0.01f,
                                     .step = 10,
                                     .grad_scale = 1.0f},
                            .scale_in = 0.02f,
                            .scale_out = 0.02f,
                            .qmin = -1,
                            .qmax = 1,
                            .seed = 1234,
                            .stream = 7};
}

static qt_status cpu_step(void *p) {
    dqt_args *a = p;
    qt_cpu_dqt_step(&a->dp, a->codes, a->grad, a->m, a->v, a->n, NULL);
    return QT_OK;
}

static qt_status cpu_dequant(void *p) {
    dqt_args *a = p;
    qt_cpu_dqt_dequant(a->out, a->codes, a->dp.scale_in, a->n);
    return QT_OK;
}

// step_stats may be NULL (the CPU step computes the stats in any case).
static qt_status cases(qt_bench *b, dqt_args *a, const char *what, qt_bench_fn step,
                       qt_bench_fn step_stats, qt_bench_fn dequant) {
    const double n = (double)a->n, E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "n=%zu (%s), ternary", a->n, what);
    // step: reads codes (1 byte), grad (E), fp32 m, v; writes codes, m, v. 28 flops per
    //       element: AdamW's 18 (w = c s_in instead of a load), t = c ratio - upd / s_out (3),
    //       the stochastic rounding (floor, fraction, compare, add, clamp: 5), |w'| summed (2);
    //       the Philox draw is integer work and not counted.
    QT_TRY(qt_bench_run(b, "step", (18 + E) * n, 28 * n, step, a, NULL));
    if (step_stats)
        QT_TRY(qt_bench_run(b, "step_stats", (18 + E) * n, 28 * n, step_stats, a, NULL));
    // dequant: reads codes (1 byte), writes out (E). One multiply per element.
    return qt_bench_run(b, "dequant", (1 + E) * n, n, dequant, a, NULL);
}

static qt_status dqt_cpu(qt_bench *b, const qt_bench_model *m) {
    const char *what;
    dqt_args a = {.n = count(m, &what), .dt = QT_DTYPE_F32};
    init_params(&a);
    a.codes = qt_bench_host_zeros(b, a.n);
    a.grad = qt_bench_host_f32(b, a.n);
    a.m = qt_bench_host_zeros(b, a.n * sizeof(float));
    a.v = qt_bench_host_zeros(b, a.n * sizeof(float));
    a.out = qt_bench_host_zeros(b, a.n * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, what, cpu_step, NULL, cpu_dequant);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_step(void *p) {
    dqt_args *a = p;
    return qt_cuda_dqt_step(a->s, a->dt, &a->dp, a->codes, a->grad, a->m, a->v, a->n, NULL, NULL);
}

static qt_status cuda_step_stats(void *p) {
    dqt_args *a = p;
    return qt_cuda_dqt_step(a->s, a->dt, &a->dp, a->codes, a->grad, a->m, a->v, a->n, &a->stats,
                            a->scratch);
}

static qt_status cuda_dequant(void *p) {
    dqt_args *a = p;
    return qt_cuda_dqt_dequant(a->s, a->dt, a->out, a->codes, a->dp.scale_in, a->n);
}

static qt_status dqt_cuda(qt_bench *b, const qt_bench_model *m) {
    const char *what;
    dqt_args a = {.n = count(m, &what), .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    init_params(&a);
    a.codes = qt_bench_dev_zeros(b, a.n);
    a.grad = qt_bench_dev_rand(b, a.dt, a.n);
    a.m = qt_bench_dev_zeros(b, a.n * sizeof(float));
    a.v = qt_bench_dev_zeros(b, a.n * sizeof(float));
    a.out = qt_bench_dev_zeros(b, a.n * qt_dtype_size(a.dt));
    a.scratch = qt_bench_dev_zeros(b, qt_cuda_dqt_scratch_bytes(a.n));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, what, cuda_step, cuda_step_stats, cuda_dequant);
}
#endif

const qt_bench_family qt_bench_family_dqt = {
    .name = "dqt",
    .models = {&qt_bench_model_llama_tiny, &qt_bench_model_llama130m},
    .cpu = dqt_cpu,
    .cuda = QT_BENCH_CUDA(dqt_cuda),
};

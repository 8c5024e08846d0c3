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

enum { STEP, STEP_STATS, DEQUANT };

// The CPU step computes the stats in any case: no STEP_STATS.
static qt_status cpu_call(void *p, int op) {
    dqt_args *a = p;
    if (op == STEP) return qt_cpu_dqt_step(&a->dp, a->codes, a->grad, a->m, a->v, a->n, NULL);
    return qt_cpu_dqt_dequant(a->out, a->codes, a->dp.scale_in, a->n);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    const int cuda = qt_bench_device_of(b) == QT_BENCH_CUDA;
    const char *what;
    dqt_args a = {.n = count(m, &what), .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    init_params(&a);
    a.codes = qt_bench_buf(b, QT_BENCH_BYTES, a.n);
    a.grad = qt_bench_buf(b, QT_BENCH_RAND, a.n);
    a.m = qt_bench_buf(b, QT_BENCH_F32_ZEROS, a.n);
    a.v = qt_bench_buf(b, QT_BENCH_F32_ZEROS, a.n);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, a.n);
#ifdef QT_HAVE_CUDA
    if (cuda) a.scratch = qt_bench_buf(b, QT_BENCH_BYTES, qt_cuda_dqt_scratch_bytes(a.n));
#endif
    QT_TRY(qt_bench_ok(b));
    const double n = (double)a.n, E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "n=%zu (%s), ternary", a.n, what);
    const qt_bench_case cases[] = {
        // step: reads codes (1 byte), grad (E), fp32 m, v; writes codes, m, v. 28 flops per
        //       element: AdamW's 18 (w = c s_in instead of a load), t = c ratio - upd / s_out
        //       (3), the stochastic rounding (floor, fraction, compare, add, clamp: 5), |w'|
        //       summed (2); the Philox draw is integer work and not counted.
        {"step", STEP, (18 + E) * n, 28 * n},
        // step_stats (CUDA only): the step with the stats reduced on the device and copied back.
        {"step_stats", STEP_STATS, (18 + E) * n, 28 * n},
        // dequant: reads codes (1 byte), writes out (E). One multiply per element.
        {"dequant", DEQUANT, (1 + E) * n, n}};
    QT_TRY(qt_bench_run_case(b, call, &a, &cases[0], NULL));
    if (cuda) QT_TRY(qt_bench_run_case(b, call, &a, &cases[1], NULL));
    return qt_bench_run_case(b, call, &a, &cases[2], NULL);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    dqt_args *a = p;
    if (op == STEP)
        return qt_cuda_dqt_step(a->s, a->dt, &a->dp, a->codes, a->grad, a->m, a->v, a->n, NULL,
                                NULL);
    if (op == STEP_STATS)
        return qt_cuda_dqt_step(a->s, a->dt, &a->dp, a->codes, a->grad, a->m, a->v, a->n, &a->stats,
                                a->scratch);
    return qt_cuda_dqt_dequant(a->s, a->dt, a->out, a->codes, a->dp.scale_in, a->n);
}
#endif

const qt_bench_family qt_bench_family_dqt = {
    .name = "dqt",
    .models = {&qt_bench_model_llama_tiny, &qt_bench_model_llama130m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

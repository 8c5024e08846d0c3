// bench/bench_crossentropy.c: the crossentropy family (kernels/crossentropy.h) on the benchmark
// harness (bench/harness.h): the classifier's loss (forward: losses and the row statistics) and
// its gradient recomputed from the logits (backward), on the default model's logits (N = 1024,
// V = 4096) and OPT-125m's (V = 50272: one 512-token sequence on the CPU, the whole micro-batch
// on CUDA), CPU and CUDA; and both in one call (fwd_bwd, the training step's), the gradient
// over its own copy of the logits. dlogits is a separate buffer (the model aliases it with the
// logits).
#include "bench/harness.h"
#include "kernels/crossentropy.h"

typedef struct {
    int N, V;
    qt_dtype dt;
    qt_cuda_stream s;
    void *logits, *dlogits;         // (N, V)
    void *work;                     // (N, V): fwd_bwd's logits, then their gradient
    float *losses, *dlosses;        // (N) fp32
    float *stats;                   // (N, 2) fp32
    int *targets;                   // (N)
} ce_args;

enum { FWD, BWD, FWD_BWD };

static qt_status cpu_call(void *p, int op) {
    const ce_args *a = p;
    if (op == FWD)
        return qt_cpu_crossentropy_fwd(a->losses, a->stats, a->logits, a->targets, a->N, a->V);
    if (op == FWD_BWD)
        return qt_cpu_crossentropy_fwd_bwd(a->losses, a->stats, a->work, a->dlosses, a->targets,
                                           a->N, a->V);
    return qt_cpu_crossentropy_bwd(a->dlogits, a->dlosses, a->logits, a->stats, a->targets, a->N,
                                   a->V);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    ce_args a = {.N = m->B * m->T, .V = m->V, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nv = (size_t)a.N * a.V;
    a.logits = qt_bench_buf(b, QT_BENCH_RAND, nv);
    a.dlogits = qt_bench_buf(b, QT_BENCH_ZEROS, nv);
    a.work = qt_bench_buf(b, QT_BENCH_RAND, nv);
    a.losses = qt_bench_buf(b, QT_BENCH_F32_ZEROS, (size_t)a.N);
    a.dlosses = qt_bench_buf(b, QT_BENCH_F32, (size_t)a.N);
    a.stats = qt_bench_buf(b, QT_BENCH_F32_ZEROS, 2 * (size_t)a.N);
    a.targets = qt_bench_buf_i32(b, (size_t)a.N, 0, a.V - 1);
    QT_TRY(qt_bench_ok(b));
    const double E = (double)qt_dtype_size(a.dt), N = a.N;
    qt_bench_shape(b, "N=%d V=%d", a.N, a.V);
    const qt_bench_case cases[] = {
        // fwd: reads logits (N V), targets (N int); writes fp32 losses and stats (3 N).
        //      4 flops per logit: the max, x - max, exp, the sum.
        {"fwd", FWD, E * (double)nv + 16 * N, 4 * (double)nv},
        // bwd: reads logits, dlogits (+=) (2 N V), fp32 dlosses, stats and targets (4 N);
        //      writes dlogits (N V). 5 flops per logit: x - max, exp, the two products, the add.
        {"bwd", BWD, E * 3 * (double)nv + 16 * N, 5 * (double)nv},
        // fwd_bwd: reads the logits once and writes their gradient over them (2 N V), fp32
        //          dlosses and targets (8 N), writes losses and stats (12 N); both flop counts.
        {"fwd_bwd", FWD_BWD, E * 2 * (double)nv + 20 * N, 9 * (double)nv}};
    return qt_bench_run_cases(b, call, &a, cases, 3);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const ce_args *a = p;
    if (op == FWD)
        return qt_cuda_crossentropy_fwd(a->s, a->dt, a->losses, a->stats, a->logits, a->targets,
                                        a->N, a->V);
    if (op == FWD_BWD)
        return qt_cuda_crossentropy_fwd_bwd(a->s, a->dt, a->losses, a->stats, a->work,
                                            a->dlosses, a->targets, a->N, a->V);
    return qt_cuda_crossentropy_bwd(a->s, a->dt, a->dlogits, a->dlosses, a->logits, a->stats,
                                    a->targets, a->N, a->V);
}
#endif

const qt_bench_family qt_bench_family_crossentropy = {
    .name = "crossentropy",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

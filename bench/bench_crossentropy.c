// bench/bench_crossentropy.c: the crossentropy family (kernels/crossentropy.h) on the benchmark
// harness (bench/harness.h): the softmax over the vocabulary fused with the loss, forward and
// backward, on the default model's logits (N = 1024, V = 4096) and OPT-125m's (V = 50272: one
// 512-token sequence on the CPU, the whole micro-batch on CUDA), CPU and CUDA. probs and
// dlogits are separate buffers (the backends may alias them with logits).
#include "bench/harness.h"
#include "kernels/crossentropy.h"

typedef struct {
    int N, V;
    qt_dtype dt;
    qt_cuda_stream s;
    void *logits, *probs, *dlogits; // (N, V)
    float *losses, *dlosses;        // (N) fp32
    int *targets;                   // (N)
} ce_args;

enum { FWD, BWD };

static qt_status cpu_call(void *p, int op) {
    const ce_args *a = p;
    if (op == FWD)
        return qt_cpu_crossentropy_fwd(a->losses, a->probs, a->logits, a->targets, a->N, a->V);
    return qt_cpu_crossentropy_bwd(a->dlogits, a->dlosses, a->probs, a->targets, a->N, a->V);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    ce_args a = {.N = m->B * m->T, .V = m->V, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nv = (size_t)a.N * a.V;
    a.logits = qt_bench_buf(b, QT_BENCH_RAND, nv);
    a.probs = qt_bench_buf(b, QT_BENCH_ZEROS, nv);
    a.dlogits = qt_bench_buf(b, QT_BENCH_ZEROS, nv);
    a.losses = qt_bench_buf(b, QT_BENCH_F32_ZEROS, (size_t)a.N);
    a.dlosses = qt_bench_buf(b, QT_BENCH_F32, (size_t)a.N);
    a.targets = qt_bench_buf_i32(b, (size_t)a.N, 0, a.V - 1);
    QT_TRY(qt_bench_ok(b));
    const double E = (double)qt_dtype_size(a.dt), N = a.N;
    qt_bench_shape(b, "N=%d V=%d", a.N, a.V);
    const qt_bench_case cases[] = {
        // fwd: reads logits (N V), targets (N int); writes probs (N V), fp32 losses (N).
        //      5 flops per logit: the max, x - max, exp, the sum, the normalizing product.
        {"fwd", FWD, E * 2 * (double)nv + 8 * N, 5 * (double)nv},
        // bwd: reads probs, dlogits (+=) (2 N V), fp32 dlosses and targets (2 N); writes
        //      dlogits (N V). 2 flops per logit: dloss (p - onehot) and the add.
        {"bwd", BWD, E * 3 * (double)nv + 8 * N, 2 * (double)nv}};
    return qt_bench_run_cases(b, call, &a, cases, 2);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const ce_args *a = p;
    if (op == FWD)
        return qt_cuda_crossentropy_fwd(a->s, a->dt, a->losses, a->probs, a->logits, a->targets,
                                        a->N, a->V);
    return qt_cuda_crossentropy_bwd(a->s, a->dt, a->dlogits, a->dlosses, a->probs, a->targets, a->N,
                                    a->V);
}
#endif

const qt_bench_family qt_bench_family_crossentropy = {
    .name = "crossentropy",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

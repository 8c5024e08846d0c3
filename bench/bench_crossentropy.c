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

static qt_status cpu_fwd(void *p) {
    ce_args *a = p;
    qt_cpu_crossentropy_fwd(a->losses, a->probs, a->logits, a->targets, a->N, a->V);
    return QT_OK;
}

static qt_status cpu_bwd(void *p) {
    ce_args *a = p;
    qt_cpu_crossentropy_bwd(a->dlogits, a->dlosses, a->probs, a->targets, a->N, a->V);
    return QT_OK;
}

static qt_status cases(qt_bench *b, ce_args *a, qt_bench_fn fwd, qt_bench_fn bwd) {
    const double nv = (double)a->N * a->V, N = a->N, E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "N=%d V=%d", a->N, a->V);
    // fwd: reads logits (N V), targets (N int); writes probs (N V), fp32 losses (N).
    //      5 flops per logit: the max, x - max, exp, the sum, the normalizing product.
    QT_TRY(qt_bench_run(b, "fwd", E * 2 * nv + 8 * N, 5 * nv, fwd, a, NULL));
    // bwd: reads probs, dlogits (+=) (2 N V), fp32 dlosses and targets (2 N); writes dlogits
    //      (N V). 2 flops per logit: dloss (p - onehot) and the add.
    return qt_bench_run(b, "bwd", E * 3 * nv + 8 * N, 2 * nv, bwd, a, NULL);
}

static qt_status crossentropy_cpu(qt_bench *b, const qt_bench_model *m) {
    ce_args a = {.N = m->B * m->T, .V = m->V, .dt = QT_DTYPE_F32};
    const size_t nv = (size_t)a.N * a.V;
    a.logits = qt_bench_host_f32(b, nv);
    a.probs = qt_bench_host_zeros(b, nv * sizeof(float));
    a.dlogits = qt_bench_host_zeros(b, nv * sizeof(float));
    a.losses = qt_bench_host_zeros(b, (size_t)a.N * sizeof(float));
    a.dlosses = qt_bench_host_f32(b, (size_t)a.N);
    a.targets = qt_bench_host_i32(b, (size_t)a.N, 0, a.V - 1);
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cpu_fwd, cpu_bwd);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_fwd(void *p) {
    ce_args *a = p;
    return qt_cuda_crossentropy_fwd(a->s, a->dt, a->losses, a->probs, a->logits, a->targets, a->N,
                                    a->V);
}

static qt_status cuda_bwd(void *p) {
    ce_args *a = p;
    return qt_cuda_crossentropy_bwd(a->s, a->dt, a->dlogits, a->dlosses, a->probs, a->targets, a->N,
                                    a->V);
}

static qt_status crossentropy_cuda(qt_bench *b, const qt_bench_model *m) {
    ce_args a = {.N = m->B * m->T, .V = m->V, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nv = (size_t)a.N * a.V, E = qt_dtype_size(a.dt);
    a.logits = qt_bench_dev_rand(b, a.dt, nv);
    a.probs = qt_bench_dev_zeros(b, nv * E);
    a.dlogits = qt_bench_dev_zeros(b, nv * E);
    a.losses = qt_bench_dev_zeros(b, (size_t)a.N * sizeof(float));
    a.dlosses = qt_bench_dev_rand(b, QT_DTYPE_F32, (size_t)a.N);
    a.targets = qt_bench_dev_copy(b, qt_bench_host_i32(b, (size_t)a.N, 0, a.V - 1),
                                  (size_t)a.N * sizeof(int));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cuda_fwd, cuda_bwd);
}
#endif

const qt_bench_family qt_bench_family_crossentropy = {
    .name = "crossentropy",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .cuda_models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = crossentropy_cpu,
    .cuda = QT_BENCH_CUDA(crossentropy_cuda),
};

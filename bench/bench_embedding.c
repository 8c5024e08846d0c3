// bench/bench_embedding.c: the embedding family (kernels/embedding.h) on the benchmark harness
// (bench/harness.h): token plus learned position embeddings, forward (gather) and backward
// (scatter-add into dwte, dwpe), on the default model and OPT-125m (tokens uniform over the
// vocabulary), CPU and CUDA.
#include "bench/harness.h"
#include "kernels/embedding.h"

typedef struct {
    int B, T, C, V;
    qt_dtype dt;
    qt_cuda_stream s;
    int *tokens;      // (B, T) in [0, V)
    void *wte, *dwte; // (V, C)
    void *wpe, *dwpe; // (T, C)
    void *out, *dout; // (B, T, C)
} emb_args;

static qt_status cpu_fwd(void *p) {
    emb_args *a = p;
    qt_cpu_embedding_fwd(a->out, a->tokens, a->wte, a->wpe, a->B, a->T, a->C);
    return QT_OK;
}

static qt_status cpu_bwd(void *p) {
    emb_args *a = p;
    qt_cpu_embedding_bwd(a->dwte, a->dwpe, a->dout, a->tokens, a->B, a->T, a->C);
    return QT_OK;
}

static qt_status cases(qt_bench *b, emb_args *a, qt_bench_fn fwd, qt_bench_fn bwd) {
    const double btc = (double)a->B * a->T * a->C, tc = (double)a->T * a->C, bt = a->B * a->T;
    const double E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "B=%d T=%d C=%d V=%d", a->B, a->T, a->C, a->V);
    // fwd: reads tokens (B T int), the gathered wte rows (B T C), wpe (T C); writes out
    //      (B T C). One add per element.
    QT_TRY(qt_bench_run(b, "fwd", E * (2 * btc + tc) + 4 * bt, btc, fwd, a, NULL));
    // bwd: reads dout (B T C), tokens, the dwte rows (+=, B T C) and dwpe (+=, T C); writes
    //      those rows and dwpe. Two adds per element (into dwte and into dwpe).
    return qt_bench_run(b, "bwd", E * (3 * btc + 2 * tc) + 4 * bt, 2 * btc, bwd, a, NULL);
}

static qt_status embedding_cpu(qt_bench *b, const qt_bench_model *m) {
    emb_args a = {.B = m->B, .T = m->T, .C = m->C, .V = m->V, .dt = QT_DTYPE_F32};
    const size_t btc = (size_t)a.B * a.T * a.C, vc = (size_t)a.V * a.C, tc = (size_t)a.T * a.C;
    a.tokens = qt_bench_host_i32(b, (size_t)a.B * a.T, 0, a.V - 1);
    a.wte = qt_bench_host_f32(b, vc);
    a.dwte = qt_bench_host_zeros(b, vc * sizeof(float));
    a.wpe = qt_bench_host_f32(b, tc);
    a.dwpe = qt_bench_host_zeros(b, tc * sizeof(float));
    a.out = qt_bench_host_zeros(b, btc * sizeof(float));
    a.dout = qt_bench_host_f32(b, btc);
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cpu_fwd, cpu_bwd);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_fwd(void *p) {
    emb_args *a = p;
    return qt_cuda_embedding_fwd(a->s, a->dt, a->out, a->tokens, a->wte, a->wpe, a->B, a->T, a->C);
}

static qt_status cuda_bwd(void *p) {
    emb_args *a = p;
    return qt_cuda_embedding_bwd(a->s, a->dt, a->dwte, a->dwpe, a->dout, a->tokens, a->B, a->T,
                                 a->C);
}

static qt_status embedding_cuda(qt_bench *b, const qt_bench_model *m) {
    emb_args a = {.B = m->B,
                  .T = m->T,
                  .C = m->C,
                  .V = m->V,
                  .dt = qt_bench_dtype(b),
                  .s = qt_bench_stream(b)};
    const size_t btc = (size_t)a.B * a.T * a.C, vc = (size_t)a.V * a.C, tc = (size_t)a.T * a.C;
    const size_t E = qt_dtype_size(a.dt);
    a.tokens = qt_bench_dev_copy(b, qt_bench_host_i32(b, (size_t)a.B * a.T, 0, a.V - 1),
                                 (size_t)a.B * a.T * sizeof(int));
    a.wte = qt_bench_dev_rand(b, a.dt, vc);
    a.dwte = qt_bench_dev_zeros(b, vc * E);
    a.wpe = qt_bench_dev_rand(b, a.dt, tc);
    a.dwpe = qt_bench_dev_zeros(b, tc * E);
    a.out = qt_bench_dev_zeros(b, btc * E);
    a.dout = qt_bench_dev_rand(b, a.dt, btc);
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cuda_fwd, cuda_bwd);
}
#endif

const qt_bench_family qt_bench_family_embedding = {
    .name = "embedding",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = embedding_cpu,
    .cuda = QT_BENCH_CUDA(embedding_cuda),
};

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

enum { FWD, BWD };

static qt_status cpu_call(void *p, int op) {
    const emb_args *a = p;
    if (op == FWD) return qt_cpu_embedding_fwd(a->out, a->tokens, a->wte, a->wpe, a->B, a->T, a->C);
    return qt_cpu_embedding_bwd(a->dwte, a->dwpe, a->dout, a->tokens, a->B, a->T, a->C);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    emb_args a = {.B = m->B,
                  .T = m->T,
                  .C = m->C,
                  .V = m->V,
                  .dt = qt_bench_dtype(b),
                  .s = qt_bench_stream(b)};
    const size_t vc = (size_t)a.V * a.C, tc = (size_t)a.T * a.C;
    a.tokens = qt_bench_buf_i32(b, (size_t)a.B * a.T, 0, a.V - 1);
    a.wte = qt_bench_buf(b, QT_BENCH_RAND, vc);
    a.dwte = qt_bench_buf(b, QT_BENCH_ZEROS, vc);
    a.wpe = qt_bench_buf(b, QT_BENCH_RAND, tc);
    a.dwpe = qt_bench_buf(b, QT_BENCH_ZEROS, tc);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)a.B * tc);
    a.dout = qt_bench_buf(b, QT_BENCH_RAND, (size_t)a.B * tc);
    QT_TRY(qt_bench_ok(b));
    const double btc = (double)a.B * a.T * a.C, bt = a.B * a.T, E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "B=%d T=%d C=%d V=%d", a.B, a.T, a.C, a.V);
    const qt_bench_case cases[] = {
        // fwd: reads tokens (B T int), the gathered wte rows (B T C), wpe (T C); writes out
        //      (B T C). One add per element.
        {"fwd", FWD, E * (2 * btc + (double)tc) + 4 * bt, btc},
        // bwd: reads dout (B T C), tokens, the dwte rows (+=, B T C) and dwpe (+=, T C); writes
        //      those rows and dwpe. Two adds per element (into dwte and into dwpe).
        {"bwd", BWD, E * (3 * btc + 2 * (double)tc) + 4 * bt, 2 * btc}};
    return qt_bench_run_cases(b, call, &a, cases, 2);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const emb_args *a = p;
    if (op == FWD)
        return qt_cuda_embedding_fwd(a->s, a->dt, a->out, a->tokens, a->wte, a->wpe, a->B, a->T,
                                     a->C);
    return qt_cuda_embedding_bwd(a->s, a->dt, a->dwte, a->dwpe, a->dout, a->tokens, a->B, a->T,
                                 a->C);
}
#endif

const qt_bench_family qt_bench_family_embedding = {
    .name = "embedding",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

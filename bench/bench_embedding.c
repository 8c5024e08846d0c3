// bench/bench_embedding.c: the embedding family (kernels/embedding.h) on the benchmark harness
// (bench/harness.h): token plus learned position embeddings, forward (gather) and backward
// (scatter-add into dwte, dwpe) both plain and from the batch's token buckets (the sorted
// backward the model runs; bucket_bwd's line carries its ratio to the plain one), on the
// default model and OPT-125m (tokens uniform over the vocabulary), CPU and CUDA.
#include "bench/harness.h"
#include "kernels/embedding.h"

typedef struct {
    int B, T, C, V;
    qt_dtype dt;
    qt_cuda_stream s;
    int *tokens;      // (B, T) in [0, V)
    int *order, *start, *token, n_buckets; // the tokens' buckets (qt_embedding_buckets)
    void *wte, *dwte; // (V, C)
    void *wpe, *dwpe; // (T, C)
    void *out, *dout; // (B, T, C)
} emb_args;

enum { FWD, BWD, BWD_SORTED };

static qt_status cpu_call(void *p, int op) {
    const emb_args *a = p;
    if (op == FWD) return qt_cpu_embedding_fwd(a->out, a->tokens, a->wte, a->wpe, a->B, a->T, a->C);
    if (op == BWD_SORTED)
        return qt_cpu_embedding_bwd_sorted(a->dwte, a->dwpe, a->dout, a->order, a->start,
                                           a->token, a->n_buckets, a->B, a->T, a->C);
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
    const size_t bt_n = (size_t)a.B * a.T;
    int *host_tok = qt_bench_host_i32(b, bt_n, 0, a.V - 1);
    int *ix = qt_bench_host_zeros(b, (5 * bt_n + 1) * sizeof(int)); // order, start, token, scratch
    if (host_tok && ix)
        QT_TRY(qt_embedding_buckets(ix, ix + bt_n, ix + 2 * bt_n + 1, &a.n_buckets, host_tok,
                                    (int)bt_n, ix + 3 * bt_n + 1));
    a.tokens = qt_bench_buf_from_host(b, host_tok, bt_n * sizeof(int));
    a.order = qt_bench_buf_from_host(b, ix, bt_n * sizeof(int));
    a.start = qt_bench_buf_from_host(b, ix + bt_n, (bt_n + 1) * sizeof(int));
    a.token = qt_bench_buf_from_host(b, ix + 2 * bt_n + 1, bt_n * sizeof(int));
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
        {"bwd", BWD, E * (3 * btc + 2 * (double)tc) + 4 * bt, 2 * btc},
        // bucket_bwd: reads dout (B T C), order and the bucket table (4 (B T + 2 U + 1)), the
        //      U dwte rows (+=, U C) and dwpe (+=, T C); writes them. Two adds per element.
        {"bucket_bwd", BWD_SORTED,
         E * (btc + 2.0 * a.n_buckets * a.C + 2 * (double)tc) + 4 * (bt + 2.0 * a.n_buckets + 1),
         2 * btc}};
    qt_bench_result plain;
    QT_TRY(qt_bench_run_case(b, call, &a, &cases[0], NULL));
    QT_TRY(qt_bench_run_case(b, call, &a, &cases[1], &plain));
    qt_bench_ref(b, "plain", plain.ms_median);
    return qt_bench_run_case(b, call, &a, &cases[2], NULL);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const emb_args *a = p;
    if (op == FWD)
        return qt_cuda_embedding_fwd(a->s, a->dt, a->out, a->tokens, a->wte, a->wpe, a->B, a->T,
                                     a->C);
    if (op == BWD_SORTED)
        return qt_cuda_embedding_bwd_sorted(a->s, a->dt, a->dwte, a->dwpe, a->dout, a->order,
                                            a->start, a->token, a->n_buckets, a->B, a->T, a->C);
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

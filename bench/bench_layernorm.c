// bench/bench_layernorm.c: the layernorm family (kernels/layernorm.h) on the benchmark harness
// (bench/harness.h): forward and backward on the CPU reference and the CUDA kernels, and the
// residual ops (dropout 0.1, add and LayerNorm fused), on the default model's and OPT-125m's
// (N = B T, C).
#include "bench/harness.h"
#include "kernels/elementwise.h"
#include "kernels/layernorm.h"

typedef struct {
    int N, C;
    qt_dtype dt;                       // of the void * tensors (CUDA; fp32 on the CPU)
    qt_cuda_stream s;                  //
    void *out, *x, *dout, *dx, *resid; // (N, C); resid: the residual ops' sum, or dbranch
    void *w, *bias, *dw, *db;          // (C)
    float *mean, *rstd;                // (N) fp32
    void *scratch;                     // CUDA: the split column sums' scratch
} ln_args;

enum { FWD, BWD, RESID_FWD, RESID_BWD };

// The residual ops' dropout: OPT-125m's.
#define PROB 0.1f

static qt_status cpu_call(void *p, int op) {
    const ln_args *a = p;
    if (op == FWD)
        return qt_cpu_layernorm_fwd(a->out, a->mean, a->rstd, a->x, a->w, a->bias, a->N, a->C);
    if (op == RESID_FWD) // resid = x + drop(dout): dout stands in for the branch
        return qt_cpu_layernorm_residual_fwd(a->resid, a->out, a->mean, a->rstd, a->x, a->dout,
                                             a->w, a->bias, a->N, a->C, PROB, 1, 2);
    if (op == RESID_BWD)
        return qt_cpu_layernorm_residual_bwd(a->dx, a->resid, a->dw, a->db, a->dout, a->x,
                                             a->mean, a->rstd, a->w, a->N, a->C, PROB, 1, 2);
    return qt_cpu_layernorm_bwd(a->dx, a->dw, a->db, a->dout, a->x, a->mean, a->rstd, a->w, a->N,
                                a->C);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    ln_args a = {.N = m->B * m->T, .C = m->C, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nc = (size_t)a.N * a.C;
    a.x = qt_bench_buf(b, QT_BENCH_RAND, nc);
    a.dout = qt_bench_buf(b, QT_BENCH_RAND, nc);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, nc);
    a.dx = qt_bench_buf(b, QT_BENCH_ZEROS, nc);
    a.resid = qt_bench_buf(b, QT_BENCH_ZEROS, nc);
    a.w = qt_bench_buf(b, QT_BENCH_RAND, (size_t)a.C);
    a.bias = qt_bench_buf(b, QT_BENCH_RAND, (size_t)a.C);
    a.dw = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)a.C);
    a.db = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)a.C);
#ifdef QT_HAVE_CUDA
    // zeroed: the ready state of its counters (qt_cuda_colsum_scratch_init's)
    if (qt_bench_device_of(b) == QT_BENCH_CUDA)
        a.scratch = qt_bench_buf(b, QT_BENCH_F32_ZEROS, qt_cuda_colsum_scratch_bytes() / 4);
#endif
    a.mean = qt_bench_buf(b, QT_BENCH_F32_ZEROS, (size_t)a.N);
    a.rstd = qt_bench_buf(b, QT_BENCH_F32_ZEROS, (size_t)a.N);
    QT_TRY(qt_bench_ok(b));
    const double n = (double)a.N * a.C, C = a.C, N = a.N, E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "N=%d C=%d", a.N, a.C);
    const qt_bench_case cases[] = {
        // fwd: reads x (N C), w, b (2 C); writes out (N C), fp32 mean and rstd (2 N).
        //      8 flops per element: the sum, x - mean and its square summed (3), then
        //      (x - mean) rstd w + b (4). It runs first: bwd reads its mean, rstd.
        {"fwd", FWD, E * (2 * n + 2 * C) + 4 * 2 * N, 8 * n},
        // bwd: reads dout, x (2 N C), dx (+=, N C), w (C), fp32 mean, rstd (2 N), dw, db (+=,
        //      2 C); writes dx (N C), dw, db (2 C). 16 flops per element: g = dout w, xh =
        //      (x - mean) rstd, the two row sums (6), dx += rstd (g - mg - xh mgx) (6), dw, db
        //      sums (4: xh recomputed, dout xh, two adds).
        {"bwd", BWD, E * (4 * n + 5 * C) + 4 * 2 * N, 16 * n},
        // residual_fwd: fwd plus reading the branch and writing resid (2 N C more); 3 more
        //      flops per element (the dropout's compare and scale, the add).
        {"residual_fwd", RESID_FWD, E * (4 * n + 2 * C) + 4 * 2 * N, 11 * n},
        // residual_bwd: bwd plus writing dbranch (N C); 2 more flops (compare, scale).
        {"residual_bwd", RESID_BWD, E * (5 * n + 5 * C) + 4 * 2 * N, 18 * n}};
    return qt_bench_run_cases(b, call, &a, cases, 4);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const ln_args *a = p;
    if (op == FWD)
        return qt_cuda_layernorm_fwd(a->s, a->dt, a->out, a->mean, a->rstd, a->x, a->w, a->bias,
                                     a->N, a->C);
    if (op == BWD)
        return qt_cuda_layernorm_bwd(a->s, a->dt, a->dx, a->dw, a->db, a->dout, a->x, a->mean,
                                     a->rstd, a->w, a->N, a->C, a->scratch);
    if (op == RESID_FWD)
        return qt_cuda_layernorm_residual_fwd(a->s, a->dt, a->resid, a->out, a->mean, a->rstd,
                                              a->x, a->dout, a->w, a->bias, a->N, a->C, PROB, 1,
                                              2);
    return qt_cuda_layernorm_residual_bwd(a->s, a->dt, a->dx, a->resid, a->dw, a->db, a->dout,
                                          a->x, a->mean, a->rstd, a->w, a->N, a->C, PROB, 1, 2,
                                          a->scratch);
}
#endif

const qt_bench_family qt_bench_family_layernorm = {
    .name = "layernorm",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

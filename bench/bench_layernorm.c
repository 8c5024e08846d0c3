// bench/bench_layernorm.c: the layernorm family (kernels/layernorm.h) on the benchmark harness
// (bench/harness.h): forward and backward on the CPU reference and the CUDA kernels, plus the
// CUDA-only residual add fused with the LayerNorm, on the default model's and OPT-125m's
// (N = B T, C).
#include "bench/harness.h"
#include "kernels/layernorm.h"

typedef struct {
    int N, C;
    qt_dtype dt;                       // of the void * tensors (CUDA; fp32 on the CPU)
    qt_cuda_stream s;                  //
    void *out, *x, *dout, *dx, *resid; // (N, C)
    void *w, *bias, *dw, *db;          // (C)
    float *mean, *rstd;                // (N) fp32
} ln_args;

static qt_status cpu_fwd(void *p) {
    ln_args *a = p;
    qt_cpu_layernorm_fwd(a->out, a->mean, a->rstd, a->x, a->w, a->bias, a->N, a->C);
    return QT_OK;
}

static qt_status cpu_bwd(void *p) {
    ln_args *a = p;
    qt_cpu_layernorm_bwd(a->dx, a->dw, a->db, a->dout, a->x, a->mean, a->rstd, a->w, a->N, a->C);
    return QT_OK;
}

// The cases of one shape; add_fwd may be NULL (the CPU has no fused add + LayerNorm).
static qt_status cases(qt_bench *b, ln_args *a, qt_bench_fn fwd, qt_bench_fn bwd,
                       qt_bench_fn add_fwd) {
    const double n = (double)a->N * a->C, C = a->C, N = a->N, E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "N=%d C=%d", a->N, a->C);
    // fwd: reads x (N C), w, b (2 C); writes out (N C), fp32 mean and rstd (2 N).
    //      8 flops per element: the sum, x - mean and its square summed (3), then
    //      (x - mean) rstd w + b (4).
    QT_TRY(qt_bench_run(b, "fwd", E * (2 * n + 2 * C) + 4 * 2 * N, 8 * n, fwd, a, NULL));
    // bwd: reads dout, x (2 N C), dx (+=, N C), w (C), fp32 mean, rstd (2 N), dw, db (+=, 2 C);
    //      writes dx (N C), dw, db (2 C). 16 flops per element: g = dout w, xh = (x - mean)
    //      rstd, the two row sums (6), dx += rstd (g - mg - xh mgx) (6), dw, db sums (4: xh
    //      recomputed, dout xh, two adds).
    QT_TRY(qt_bench_run(b, "bwd", E * (4 * n + 5 * C) + 4 * 2 * N, 16 * n, bwd, a, NULL));
    if (add_fwd) {
        // add_fwd: reads a, b (2 N C), w, bias (2 C); writes resid, out (2 N C), fp32 mean and
        //          rstd (2 N). 9 flops per element: the add, then the LayerNorm's 8.
        QT_TRY(
            qt_bench_run(b, "add_fwd", E * (4 * n + 2 * C) + 4 * 2 * N, 9 * n, add_fwd, a, NULL));
    }
    return QT_OK;
}

static qt_status layernorm_cpu(qt_bench *b, const qt_bench_model *m) {
    ln_args a = {.N = m->B * m->T, .C = m->C, .dt = QT_DTYPE_F32};
    const size_t nc = (size_t)a.N * a.C;
    a.x = qt_bench_host_f32(b, nc);
    a.dout = qt_bench_host_f32(b, nc);
    a.out = qt_bench_host_zeros(b, nc * sizeof(float));
    a.dx = qt_bench_host_zeros(b, nc * sizeof(float));
    a.w = qt_bench_host_f32(b, (size_t)a.C);
    a.bias = qt_bench_host_f32(b, (size_t)a.C);
    a.dw = qt_bench_host_zeros(b, (size_t)a.C * sizeof(float));
    a.db = qt_bench_host_zeros(b, (size_t)a.C * sizeof(float));
    a.mean = qt_bench_host_zeros(b, (size_t)a.N * sizeof(float));
    a.rstd = qt_bench_host_zeros(b, (size_t)a.N * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cpu_fwd, cpu_bwd, NULL); // fwd runs first: bwd reads its mean, rstd
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_fwd(void *p) {
    ln_args *a = p;
    return qt_cuda_layernorm_fwd(a->s, a->dt, a->out, a->mean, a->rstd, a->x, a->w, a->bias, a->N,
                                 a->C);
}

static qt_status cuda_bwd(void *p) {
    ln_args *a = p;
    return qt_cuda_layernorm_bwd(a->s, a->dt, a->dx, a->dw, a->db, a->dout, a->x, a->mean, a->rstd,
                                 a->w, a->N, a->C);
}

static qt_status cuda_add_fwd(void *p) {
    ln_args *a = p;
    return qt_cuda_add_layernorm_fwd(a->s, a->dt, a->resid, a->out, a->mean, a->rstd, a->x, a->dout,
                                     a->w, a->bias, a->N, a->C);
}

static qt_status layernorm_cuda(qt_bench *b, const qt_bench_model *m) {
    ln_args a = {.N = m->B * m->T, .C = m->C, .dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    const size_t nc = (size_t)a.N * a.C, E = qt_dtype_size(a.dt);
    a.x = qt_bench_dev_rand(b, a.dt, nc);
    a.dout = qt_bench_dev_rand(b, a.dt, nc);
    a.out = qt_bench_dev_zeros(b, nc * E);
    a.dx = qt_bench_dev_zeros(b, nc * E);
    a.resid = qt_bench_dev_zeros(b, nc * E);
    a.w = qt_bench_dev_rand(b, a.dt, (size_t)a.C);
    a.bias = qt_bench_dev_rand(b, a.dt, (size_t)a.C);
    a.dw = qt_bench_dev_zeros(b, (size_t)a.C * E);
    a.db = qt_bench_dev_zeros(b, (size_t)a.C * E);
    a.mean = qt_bench_dev_zeros(b, (size_t)a.N * sizeof(float));
    a.rstd = qt_bench_dev_zeros(b, (size_t)a.N * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cuda_fwd, cuda_bwd, cuda_add_fwd);
}
#endif

const qt_bench_family qt_bench_family_layernorm = {
    .name = "layernorm",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = layernorm_cpu,
    .cuda = QT_BENCH_CUDA(layernorm_cuda),
};

// bench/bench_attention.c: the attention family (kernels/attention.h) on the benchmark harness
// (bench/harness.h): the fused attention core (scores, softmax variant, context) forward and
// backward, causal, with the vanilla, clipped and NCS softmax (each variant also as a ratio to
// vanilla in the same run), on the default model and one OPT-125m sequence. CPU only: the CUDA
// backend composes attention from the linear family's batched GEMM and softmax_clip, whose
// benchmarks time those parts.
#include <math.h>

#include "bench/harness.h"
#include "kernels/attention.h"

typedef struct {
    int B, T, C, H;
    qt_softmax_params prm;
    float *qkv, *dqkv;          // (B, T, 3C)
    float *ctx, *dctx;          // (B, T, C)
    float *probs, *p, *scratch; // (B, H, T, T)
    int *lens;                  // (B, T): t + 1, causal
} attn_args;

static qt_status cpu_fwd(void *arg) {
    attn_args *a = arg;
    qt_cpu_attention_fwd(&a->prm, a->ctx, a->probs, a->p, a->qkv, a->lens, a->B, a->T, a->C, a->H);
    return QT_OK;
}

static qt_status cpu_bwd(void *arg) {
    attn_args *a = arg;
    qt_cpu_attention_bwd(&a->prm, a->dqkv, a->scratch, a->dctx, a->qkv, a->probs, a->p, a->lens,
                         a->B, a->T, a->C, a->H);
    return QT_OK;
}

static qt_status attention_cpu(qt_bench *b, const qt_bench_model *m) {
    attn_args a = {.B = m->B, .T = m->T, .C = m->C, .H = m->H};
    const size_t btc = (size_t)a.B * a.T * a.C, tt = (size_t)a.B * a.H * a.T * a.T;
    a.qkv = qt_bench_host_f32(b, 3 * btc);
    a.dqkv = qt_bench_host_zeros(b, 3 * btc * sizeof(float));
    a.ctx = qt_bench_host_zeros(b, btc * sizeof(float));
    a.dctx = qt_bench_host_f32(b, btc);
    a.probs = qt_bench_host_zeros(b, tt * sizeof(float));
    a.p = qt_bench_host_zeros(b, tt * sizeof(float));
    a.scratch = qt_bench_host_zeros(b, tt * sizeof(float));
    a.lens = qt_bench_host_zeros(b, (size_t)a.B * a.T * sizeof(int));
    QT_TRY(qt_bench_ok(b));
    for (int i = 0; i < a.B * a.T; i++)
        a.lens[i] = i % a.T + 1;

    const double D = (double)a.C / a.H, btcd = (double)btc, ttd = (double)tt;
    const double pairs = (double)a.B * a.H * a.T * (a.T + 1) / 2; // attended (query, key) pairs
    qt_bench_shape(b, "B=%d T=%d C=%d H=%d causal", a.B, a.T, a.C, a.H);
    // fwd: reads qkv (3 B T C), lens (B T int); writes ctx (B T C), probs and p (2 B H T T, the
    //      masked half as zeros). Per attended pair: q.k (2 D), softmax (5: scale, max, exp,
    //      sum, normalize), p v (2 D); clipped and NCS add the clip's stretch and two bounds (3).
    const double fwd_bytes = 4 * (4 * btcd + 2 * ttd + (double)a.B * a.T);
    // bwd: reads dctx (B T C), qkv (3 B T C), probs, p (2 B H T T), dqkv (+=, 3 B T C), lens;
    //      writes dqkv (3 B T C), scratch (B H T T). Per attended pair: dP = dctx v^T, dV +=
    //      P^T dctx, dQ += dS k, dK += dS^T q (8 D), the softmax backward (5: the row's dot
    //      product, the difference, two products, the add); clipped and NCS add the clip's mask
    //      and stretch (2).
    const double bwd_bytes = 4 * (10 * btcd + 3 * ttd + (double)a.B * a.T);
    static const struct {
        const char *fwd, *bwd;
        qt_softmax_params prm;
    } variants[] = {
        {"fwd", "bwd", {.kind = QT_SOFTMAX_VANILLA, .zeta = 1, .eta = 1, .beta = 1}},
        {"fwd_clipped",
         "bwd_clipped",
         {.kind = QT_SOFTMAX_CLIPPED, .gamma = -0.03f, .zeta = 1.0f, .eta = 1, .beta = 1}},
        {"fwd_ncs", "bwd_ncs", {.kind = QT_SOFTMAX_NCS, .zeta = 1, .eta = 1.03f, .beta = 1.0f}},
    };
    qt_bench_result vf = {0}, vb = {0};
    for (int v = 0; v < 3; v++) {
        a.prm = variants[v].prm;
        a.prm.scale = (float)(1.0 / sqrt(D));
        const double fwd_flops = pairs * (4 * D + 5 + (v ? 3 : 0));
        const double bwd_flops = pairs * (8 * D + 5 + (v ? 2 : 0));
        qt_bench_ref(b, v ? "vanilla" : NULL, vf.ms_median);
        QT_TRY(qt_bench_run(b, variants[v].fwd, fwd_bytes, fwd_flops, cpu_fwd, &a, v ? NULL : &vf));
        qt_bench_ref(b, v ? "vanilla" : NULL, vb.ms_median);
        QT_TRY(qt_bench_run(b, variants[v].bwd, bwd_bytes, bwd_flops, cpu_bwd, &a, v ? NULL : &vb));
    }
    return QT_OK;
}

const qt_bench_family qt_bench_family_attention = {
    .name = "attention",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .cpu = attention_cpu,
    .cuda = NULL,
    .cuda_none = "no CUDA kernel (kernels/attention.h: the CUDA backend composes attention from "
                 "the linear family's batched GEMM and softmax_clip; see those lines)",
};

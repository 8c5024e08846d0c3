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

enum { FWD, BWD };

static qt_status cpu_call(void *arg, int op) {
    const attn_args *a = arg;
    if (op == FWD)
        return qt_cpu_attention_fwd(&a->prm, a->ctx, a->probs, a->p, a->qkv, a->lens, a->B, a->T,
                                    a->C, a->H);
    return qt_cpu_attention_bwd(&a->prm, a->dqkv, a->scratch, a->dctx, a->qkv, a->probs, a->p,
                                a->lens, a->B, a->T, a->C, a->H);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    attn_args a = {.B = m->B, .T = m->T, .C = m->C, .H = m->H};
    const size_t btc = (size_t)a.B * a.T * a.C, tt = (size_t)a.B * a.H * a.T * a.T;
    a.qkv = qt_bench_buf(b, QT_BENCH_F32, 3 * btc);
    a.dqkv = qt_bench_buf(b, QT_BENCH_F32_ZEROS, 3 * btc);
    a.ctx = qt_bench_buf(b, QT_BENCH_F32_ZEROS, btc);
    a.dctx = qt_bench_buf(b, QT_BENCH_F32, btc);
    a.probs = qt_bench_buf(b, QT_BENCH_F32_ZEROS, tt);
    a.p = qt_bench_buf(b, QT_BENCH_F32_ZEROS, tt);
    a.scratch = qt_bench_buf(b, QT_BENCH_F32_ZEROS, tt);
    a.lens = qt_bench_buf_causal_lens(b, (size_t)a.B * a.T, a.T);
    QT_TRY(qt_bench_ok(b));
    const double D = (double)a.C / a.H, btcd = (double)btc, ttd = (double)tt;
    const double pairs = (double)a.B * a.H * a.T * (a.T + 1) / 2; // attended (query, key) pairs
    qt_bench_shape(b, "B=%d T=%d C=%d H=%d causal", a.B, a.T, a.C, a.H);
    const qt_bench_case cases[] = {
        // fwd: reads qkv (3 B T C), lens (B T int); writes ctx (B T C), probs and p (2 B H T T,
        //      the masked half as zeros). Per attended pair: q.k (2 D), softmax (5: scale, max,
        //      exp, sum, normalize), p v (2 D); clipped and NCS add the clip's stretch and two
        //      bounds (3).
        {"fwd", FWD, 4 * (4 * btcd + 2 * ttd + (double)a.B * a.T), pairs * (4 * D + 5)},
        // bwd: reads dctx (B T C), qkv (3 B T C), probs, p (2 B H T T), dqkv (+=, 3 B T C),
        //      lens; writes dqkv (3 B T C), scratch (B H T T). Per attended pair: dP = dctx v^T,
        //      dV += P^T dctx, dQ += dS k, dK += dS^T q (8 D), the softmax backward (5: the
        //      row's dot product, the difference, two products, the add); clipped and NCS add
        //      the clip's mask and stretch (2).
        {"bwd", BWD, 4 * (10 * btcd + 3 * ttd + (double)a.B * a.T), pairs * (8 * D + 5)}};
    const double clip_flops[2] = {pairs * 3, pairs * 2};
    return qt_bench_softmax_variants(b, call, &a, &a.prm, (float)(1.0 / sqrt(D)), cases,
                                     clip_flops);
}

const qt_bench_family qt_bench_family_attention = {
    .name = "attention",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .run = run,
    .cpu = cpu_call,
    .cuda = NULL,
    .cuda_none = "no CUDA kernel (kernels/attention.h: the CUDA backend composes attention from "
                 "the linear family's batched GEMM and softmax_clip; see those lines)",
};

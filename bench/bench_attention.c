// bench/bench_attention.c: the attention family (kernels/attention.h) on the benchmark harness
// (bench/harness.h): the composed core (qt_cpu_attention_{fwd,bwd}: the (B, H, T, T)
// probabilities written and kept for the backward, the path the model composes when it cannot
// fuse) against the fused, tiled op (qt_cpu_attention_flash_{fwd,bwd}, FLASH_CLIP.md: no
// T x T buffer), forward and backward, causal, with the vanilla, clipped and NCS softmax, on the
// default model (T = 128), one OPT-125m sequence (T = 512) and one at T = 2048. Each flash line
// is printed with its ratio to the composed line of the same variant measured just before it
// ("vs composed"); the composed clipped and NCS lines with their ratio to vanilla.
// The shape column ends with the bytes the path allocates beyond its inputs and outputs:
// composed, probs + p (saved) + the backward's scratch, 3 B H T^2 floats; flash, lse (B H T)
// + R (B T C, clipped and NCS) + the workspace for the threads in use.
// CPU only: the CUDA backend composes attention from the linear family's batched GEMM and
// softmax_clip (the fused CUDA kernel is issue 9's item 2).
#include <math.h>
#include <omp.h>

#include "bench/harness.h"
#include "kernels/attention.h"

typedef struct {
    int B, T, C, H;
    qt_softmax_params prm;
    qt_attn_params ap;
    float *qkv, *dqkv;          // (B, T, 3C)
    float *ctx, *dctx;          // (B, T, C)
    float *probs, *p, *scratch; // (B, H, T, T)
    float *lse;                 // (B, H, T)
    float *R;                   // (B, T, C)
    void *ws;                   // the flash op's workspace
    size_t ws_bytes;
    int *lens; // (B, T): t + 1, causal
} attn_args;

enum { FWD, BWD, FLASH_FWD, FLASH_BWD };

static qt_status cpu_call(void *arg, int op) {
    const attn_args *a = arg;
    const int clip = a->prm.kind != QT_SOFTMAX_VANILLA;
    switch (op) {
    case FWD:
        return qt_cpu_attention_fwd(&a->prm, a->ctx, a->probs, a->p, a->qkv, a->lens, a->B, a->T,
                                    a->C, a->H);
    case BWD:
        return qt_cpu_attention_bwd(&a->prm, a->dqkv, a->scratch, a->dctx, a->qkv, a->probs, a->p,
                                    a->lens, a->B, a->T, a->C, a->H);
    case FLASH_FWD:
        return qt_cpu_attention_flash_fwd(&a->ap, NULL, a->ctx, a->lse, clip ? a->R : NULL, NULL,
                                          a->qkv, NULL, NULL, a->lens, a->B, a->T, a->C, a->H,
                                          a->ws, a->ws_bytes);
    default:
        return qt_cpu_attention_flash_bwd(&a->ap, a->dqkv, NULL, NULL, a->dctx, a->qkv, a->ctx,
                                          a->lse, clip ? a->R : NULL, NULL, NULL, a->lens, a->B,
                                          a->T, a->C, a->H, a->ws, a->ws_bytes);
    }
}

// One OPT-125m sequence at T = 2048 (the long-context case, batch 1 on the CPU).
static const qt_bench_model opt125m_2k = {"opt-125m", 1, 2048, 768, 12, 3072, 50272, 12, NULL};

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    attn_args a = {.B = m->B, .T = m->T, .C = m->C, .H = m->H};
    const size_t btc = (size_t)a.B * a.T * a.C, tt = (size_t)a.B * a.H * a.T * a.T;
    const size_t bht = (size_t)a.B * a.H * a.T;
    a.ws_bytes = qt_cpu_attention_flash_ws_bytes(&a.ap, a.B, a.T, a.C, a.H, omp_get_max_threads());
    a.qkv = qt_bench_buf(b, QT_BENCH_F32, 3 * btc);
    a.dqkv = qt_bench_buf(b, QT_BENCH_F32_ZEROS, 3 * btc);
    a.ctx = qt_bench_buf(b, QT_BENCH_F32_ZEROS, btc);
    a.dctx = qt_bench_buf(b, QT_BENCH_F32, btc);
    a.probs = qt_bench_buf(b, QT_BENCH_F32_ZEROS, tt);
    a.p = qt_bench_buf(b, QT_BENCH_F32_ZEROS, tt);
    a.scratch = qt_bench_buf(b, QT_BENCH_F32_ZEROS, tt);
    a.lse = qt_bench_buf(b, QT_BENCH_F32_ZEROS, bht);
    a.R = qt_bench_buf(b, QT_BENCH_F32_ZEROS, btc);
    a.ws = qt_bench_buf(b, QT_BENCH_BYTES, a.ws_bytes);
    a.lens = qt_bench_buf_causal_lens(b, (size_t)a.B * a.T, a.T);
    QT_TRY(qt_bench_ok(b));
    const double D = (double)a.C / a.H, btcd = (double)btc, ttd = (double)tt, bhtd = (double)bht;
    const double pairs = (double)a.B * a.H * a.T * (a.T + 1) / 2; // attended (query, key) pairs
    const double mib = 1024.0 * 1024.0;
    const double composed_mib = 3 * ttd * 4 / mib;
    // Counts per call (bytes: compulsory traffic; flops: per attended pair):
    // composed fwd: reads qkv (3 B T C), lens; writes ctx (B T C), probs and p (2 B H T T, the
    //      masked half as zeros). q.k (2 D), softmax (5: scale, max, exp, sum, normalize), p v
    //      (2 D); clipped and NCS add the clip's stretch and two bounds (3).
    // composed bwd: reads dctx (B T C), qkv (3 B T C), probs, p (2 B H T T), dqkv (+=); writes
    //      dqkv, scratch (B H T T). dP, dV, dQ, dK (8 D), the softmax backward (5); clipped and
    //      NCS add the clip's mask and stretch (2).
    // flash fwd: reads qkv, lens; writes ctx, lse (B H T), and R (B T C) when clipped. Vanilla,
    //      one pass: q.k (2 D), the online softmax (5), p v (2 D). Clipped and NCS, two passes:
    //      q.k twice (4 D), max, exp, sum (3), exp, stretch, bounds, mask (5), [Pc; M P] v (4 D).
    // flash bwd: reads dctx, qkv, ctx, lse, R (clipped), dqkv (+=); writes dqkv. q.k (2 D), P
    //      and the clip (4: exp, stretch, two bounds), dV, dPc, dK, dQ (8 D), dS (3); the
    //      clipped variants' mask and stretch (2).
    const qt_bench_case base[4] = {
        {"fwd", FWD, 4 * (4 * btcd + 2 * ttd + (double)a.B * a.T), pairs * (4 * D + 5)},
        {"bwd", BWD, 4 * (10 * btcd + 3 * ttd + (double)a.B * a.T), pairs * (8 * D + 5)},
        {"flash_fwd", FLASH_FWD, 4 * (4 * btcd + bhtd + (double)a.B * a.T), pairs * (4 * D + 5)},
        {"flash_bwd", FLASH_BWD, 4 * (11 * btcd + bhtd + (double)a.B * a.T),
         pairs * (10 * D + 7)}};
    static const struct {
        const char *suffix;
        qt_softmax_params prm;
    } variants[] = {
        {"", {.kind = QT_SOFTMAX_VANILLA, .zeta = 1, .eta = 1, .beta = 1}},
        {"_clipped",
         {.kind = QT_SOFTMAX_CLIPPED, .gamma = -0.03f, .zeta = 1.0f, .eta = 1, .beta = 1}},
        {"_ncs", {.kind = QT_SOFTMAX_NCS, .zeta = 1, .eta = 1.03f, .beta = 1.0f}},
    };
    qt_bench_result vanilla[2] = {{0}};
    for (int v = 0; v < 3; v++) {
        a.prm = variants[v].prm;
        a.prm.scale = (float)(1.0 / sqrt(D));
        a.ap = (qt_attn_params){.sm = a.prm};
        const double flash_mib =
            (bhtd * 4 + (v ? btcd * 4 : 0) + (double)a.ws_bytes) / mib;
        for (int i = 0; i < 2; i++) {
            char name[32];
            qt_bench_result composed;
            // the composed core: ratio to vanilla's
            qt_bench_shape(b, "B=%d T=%d C=%d H=%d alloc %.3g MiB", a.B, a.T, a.C, a.H,
                           composed_mib);
            snprintf(name, sizeof name, "%s%s", base[i].name, variants[v].suffix);
            qt_bench_case c = {name, base[i].op, base[i].bytes,
                               base[i].flops + (v ? pairs * (i ? 2 : 3) : 0)};
            qt_bench_ref(b, v ? "vanilla" : NULL, vanilla[i].ms_median);
            QT_TRY(qt_bench_run_case(b, call, &a, &c, &composed));
            if (!v) vanilla[i] = composed;
            // the fused op: ratio to the composed line just above
            qt_bench_shape(b, "B=%d T=%d C=%d H=%d alloc %.3g MiB", a.B, a.T, a.C, a.H,
                           flash_mib);
            snprintf(name, sizeof name, "%s%s", base[2 + i].name, variants[v].suffix);
            const double clip_fwd = pairs * (4 * D + 3); // the second pass and [Pc; M P]
            c = (qt_bench_case){name, base[2 + i].op,
                                base[2 + i].bytes + (v ? 4 * btcd : 0),
                                base[2 + i].flops + (v ? (i ? pairs * 2 : clip_fwd) : 0)};
            qt_bench_ref(b, "composed", composed.ms_median);
            QT_TRY(qt_bench_run_case(b, call, &a, &c, NULL));
        }
    }
    return QT_OK;
}

const qt_bench_family qt_bench_family_attention = {
    .name = "attention",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1, &opt125m_2k},
    .run = run,
    .cpu = cpu_call,
    .cuda = NULL,
    .cuda_none = "no CUDA kernel (kernels/attention.h: the CUDA backend composes attention from "
                 "the linear family's batched GEMM and softmax_clip; see those lines)",
};

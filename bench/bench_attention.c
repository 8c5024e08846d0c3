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
// On CUDA (fp16, the CUDA backend's training precision) the fused kernels of
// kernels/cuda/attention.cu alone, forward and backward, for vanilla and each variant (clipped,
// NCS, off-by-one softmax, a learned sink, the per-head gate), each line with its ratio to
// vanilla's same case; the harness prints each line's share of the cuBLASLt fp16 peak it
// measured in the same run. (The CUDA backend's composed path is the linear family's batched
// GEMMs and softmax_clip: their own benchmarks.) Shapes: the default model, OPT-125m's
// micro-batch (B 16, T 512) and B 8 at T 2048 (issue 9's long-context case).
#include <math.h>
#include <omp.h>

#include "bench/harness.h"
#include "kernels/attention.h"

typedef struct {
    int B, T, C, H;
    qt_dtype dt;                // of the void * tensors: fp32 on the CPU, fp16 on CUDA
    qt_cuda_stream s;           // CUDA's stream (NULL on the CPU)
    qt_softmax_params prm;      // the CPU's composed core
    qt_attn_params ap;          // the fused op
    void *qkv, *dqkv;           // (B, T, 3C)
    void *ctx, *dctx;           // (B, T, C)
    void *out, *sink, *dsink;   // CUDA: the gated output (B, T, C), the sink logits (H)
    float *gate, *dgate;        // CUDA: the per-head gate (B T, H)
    float *probs, *p, *scratch; // (B, H, T, T): the CPU's composed core
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

#ifdef QT_HAVE_CUDA
// The fused CUDA kernels on a's arguments (a->ap: the variant).
static qt_status cuda_call(void *arg, int op) {
    const attn_args *a = arg;
    const int clip = a->ap.sm.kind != QT_SOFTMAX_VANILLA, gated = a->ap.gate != QT_ATTN_GATE_NONE;
    const int learned = a->ap.sink == QT_SINK_LEARNED;
    if (op == FLASH_FWD)
        return qt_cuda_attention_flash_fwd(a->s, a->dt, &a->ap, gated ? a->out : NULL, a->ctx,
                                           a->lse, clip ? a->R : NULL, NULL, a->qkv,
                                           gated ? a->gate : NULL, learned ? a->sink : NULL,
                                           a->lens, a->B, a->T, a->C, a->H);
    return qt_cuda_attention_flash_bwd(a->s, a->dt, &a->ap, a->dqkv, gated ? a->dgate : NULL,
                                       learned ? a->dsink : NULL, a->dctx, a->qkv, a->ctx, a->lse,
                                       clip ? a->R : NULL, gated ? a->gate : NULL,
                                       learned ? a->sink : NULL, a->lens, a->B, a->T, a->C, a->H,
                                       a->ws, a->ws_bytes);
}
#endif

// CUDA: the fused forward and backward of each variant, with its ratio to vanilla's. Counts per
// call (E = 2, fp16 storage; lse, R, gate fp32):
// flash_fwd: reads qkv (3 B T C E), lens; writes ctx (B T C E), lse (B H T, 4), R (B T C, 4)
//      when clipped, the gated output (B T C E) when gated; flops as the CPU's flash lines (the
//      gate's product: 1 per output element).
// flash_bwd: reads dout, qkv, ctx (5 B T C E), lse, R (clipped), the gate (gated), dqkv (+=,
//      3 B T C E); writes dqkv, dgate (gated); flops as the CPU's flash lines.
static qt_status run_cuda(qt_bench *b, const qt_bench_model *m, qt_bench_call call,
                          attn_args *a) {
    const double D = (double)a->C / a->H;
    if (!qt_cuda_attention_flash_supported(a->dt, a->C / a->H)) {
        qt_bench_shape(b, "B=%d T=%d C=%d H=%d", a->B, a->T, a->C, a->H);
        qt_bench_skip(b, "flash", "head dim not 64 or 128: the CUDA backend composes attention");
        return QT_OK;
    }
    const size_t btc = (size_t)a->B * a->T * a->C, bht = (size_t)a->B * a->H * a->T;
    const size_t nh = (size_t)a->B * a->T * a->H;
    a->ws_bytes = qt_cuda_attention_flash_ws_bytes(a->dt, a->B, a->T, a->C, a->H);
    a->qkv = qt_bench_buf(b, QT_BENCH_RAND, 3 * btc);
    a->dqkv = qt_bench_buf(b, QT_BENCH_ZEROS, 3 * btc);
    a->ctx = qt_bench_buf(b, QT_BENCH_ZEROS, btc);
    a->out = qt_bench_buf(b, QT_BENCH_ZEROS, btc);
    a->dctx = qt_bench_buf(b, QT_BENCH_RAND, btc);
    a->lse = qt_bench_buf(b, QT_BENCH_F32_ZEROS, bht);
    a->R = qt_bench_buf(b, QT_BENCH_F32_ZEROS, btc);
    a->gate = qt_bench_buf(b, QT_BENCH_F32, nh);
    a->dgate = qt_bench_buf(b, QT_BENCH_F32_ZEROS, nh);
    a->sink = qt_bench_buf(b, QT_BENCH_RAND, (size_t)a->H);
    a->dsink = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)a->H);
    a->ws = qt_bench_buf(b, QT_BENCH_BYTES, a->ws_bytes ? a->ws_bytes : 1);
    a->lens = qt_bench_buf_causal_lens(b, (size_t)a->B * a->T, a->T);
    QT_TRY(qt_bench_ok(b));
    const double E = (double)qt_dtype_size(a->dt), btcd = (double)btc, bhtd = (double)bht;
    const double pairs = (double)a->B * a->H * a->T * (a->T + 1) / 2;
    const float scale = (float)(1.0 / sqrt(D));
    static const struct {
        const char *suffix;
        qt_softmax_params sm;
        qt_sink_kind sink;
        qt_attn_gate gate;
    } variants[] = {
        {"", {.kind = QT_SOFTMAX_VANILLA, .zeta = 1, .eta = 1, .beta = 1}, QT_SINK_NONE,
         QT_ATTN_GATE_NONE},
        {"_clipped", {.kind = QT_SOFTMAX_CLIPPED, .gamma = -0.03f, .zeta = 1, .eta = 1, .beta = 1},
         QT_SINK_NONE, QT_ATTN_GATE_NONE},
        {"_ncs", {.kind = QT_SOFTMAX_NCS, .zeta = 1, .eta = 1.03f, .beta = 1}, QT_SINK_NONE,
         QT_ATTN_GATE_NONE},
        {"_off_by_one", {.kind = QT_SOFTMAX_VANILLA, .zeta = 1, .eta = 1, .beta = 1},
         QT_SINK_ZERO, QT_ATTN_GATE_NONE},
        {"_sink", {.kind = QT_SOFTMAX_VANILLA, .zeta = 1, .eta = 1, .beta = 1}, QT_SINK_LEARNED,
         QT_ATTN_GATE_NONE},
        {"_gate_head", {.kind = QT_SOFTMAX_VANILLA, .zeta = 1, .eta = 1, .beta = 1},
         QT_SINK_NONE, QT_ATTN_GATE_HEAD},
    };
    qt_bench_result vanilla[2] = {{0}};
    qt_bench_shape(b, "B=%d T=%d C=%d H=%d fp16", a->B, a->T, a->C, a->H);
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        a->ap = (qt_attn_params){.sm = variants[v].sm, .sink = variants[v].sink,
                                 .gate = variants[v].gate};
        a->ap.sm.scale = scale;
        const int clip = variants[v].sm.kind != QT_SOFTMAX_VANILLA;
        const int gated = variants[v].gate != QT_ATTN_GATE_NONE;
        const double n_gate = (double)nh;
        const double fwd_bytes = E * 4 * btcd + 4 * bhtd + (clip ? 4 * btcd : 0) +
                                 (gated ? E * btcd + 4 * n_gate : 0);
        const double bwd_bytes = E * 11 * btcd + 4 * bhtd + (clip ? 4 * btcd : 0) +
                                 (gated ? 8 * n_gate : 0);
        const double fwd_flops = pairs * (clip ? 8 * D + 8 : 4 * D + 5) + (gated ? btcd : 0);
        const double bwd_flops = pairs * (clip ? 10 * D + 9 : 10 * D + 7) + (gated ? 2 * btcd : 0);
        for (int i = 0; i < 2; i++) {
            char name[40];
            snprintf(name, sizeof name, "%s%s", i ? "flash_bwd" : "flash_fwd", variants[v].suffix);
            const qt_bench_case c = {name, i ? FLASH_BWD : FLASH_FWD, i ? bwd_bytes : fwd_bytes,
                                     i ? bwd_flops : fwd_flops};
            qt_bench_ref(b, v ? "vanilla" : NULL, vanilla[i].ms_median);
            qt_bench_result r;
            QT_TRY(qt_bench_run_case(b, call, a, &c, &r));
            if (!v) vanilla[i] = r;
        }
    }
    (void)m;
    return QT_OK;
}

// One OPT-125m sequence at T = 2048 (the long-context case, batch 1 on the CPU, 8 on a
// GPU).
static const qt_bench_model opt125m_2k_cuda = {"opt-125m", 8, 2048, 768, 12, 3072, 50272, 12,
                                               NULL};
static const qt_bench_model opt125m_2k = {"opt-125m", 1, 2048, 768, 12, 3072, 50272, 12,
                                          &opt125m_2k_cuda};

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    attn_args a = {.B = m->B, .T = m->T, .C = m->C, .H = m->H, .dt = qt_bench_dtype(b),
                   .s = qt_bench_stream(b)};
    if (qt_bench_device_of(b) == QT_BENCH_CUDA) return run_cuda(b, m, call, &a);
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
    qt_bench_result vanilla[2] = {{0}};
    for (int v = 0; v < QT_BENCH_SOFTMAX_VARIANTS; v++) {
        const char *suffix = qt_bench_softmax_variant(v, &a.prm);
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
            snprintf(name, sizeof name, "%s%s", base[i].name, suffix);
            qt_bench_case c = {name, base[i].op, base[i].bytes,
                               base[i].flops + (v ? pairs * (i ? 2 : 3) : 0)};
            qt_bench_ref(b, v ? "vanilla" : NULL, vanilla[i].ms_median);
            QT_TRY(qt_bench_run_case(b, call, &a, &c, &composed));
            if (!v) vanilla[i] = composed;
            // the fused op: ratio to the composed line just above
            qt_bench_shape(b, "B=%d T=%d C=%d H=%d alloc %.3g MiB", a.B, a.T, a.C, a.H,
                           flash_mib);
            snprintf(name, sizeof name, "%s%s", base[2 + i].name, suffix);
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
    .cuda = QT_BENCH_CUDA(cuda_call),
};

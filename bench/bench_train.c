// bench_train.c: CPU training throughput: tokens/s, achieved GFLOP/s, and the share of the
// step time spent in float GEMMs (the linear layers, incl. the LM head) and in the fused
// attention op (kernels/attention.h's flash op: its tiles' GEMMs, the softmax variant and the
// gate multiply; the gate function itself is outside), for the default
// config (configs/default.conf = the built-in defaults) and the reference config of the
// CPU-engine issue (4 layers, d_model 256, 4 heads, d_ff 1024, T 128, vocabulary 4096 tied,
// batch 8, AdamW, 2 threads), each with vanilla, clipped, NCS and gated attention.
// Variants are reported as ratios to vanilla measured in the same run.
//
// usage: bench_train [--steps N] [--warmup N] [--threads N] [--config FILE]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qtrain/model.h"
#include "qtrain/optimizer.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// A backend that forwards to the CPU backend and times its GEMM entries.
static qt_backend_ops timed_ops;
static const qt_backend_ops *inner_ops;
static double gemm_seconds, attn_seconds;

static qt_status timed_gemm(void *ctx, const qt_gemm_desc *d, const void *A, const void *B,
                            void *C) {
    double t0 = now_seconds();
    qt_status st = inner_ops->gemm(ctx, d, A, B, C);
    gemm_seconds += now_seconds() - t0;
    return st;
}
static qt_status timed_linear_fwd(void *ctx, void *out, const void *x, const void *w,
                                  const void *b, int N, int IC, int OC) {
    double t0 = now_seconds();
    qt_status st = inner_ops->linear_fwd(ctx, out, x, w, b, N, IC, OC);
    gemm_seconds += now_seconds() - t0;
    return st;
}
static qt_status timed_linear_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout,
                                  const void *x, const void *w, int N, int IC, int OC) {
    double t0 = now_seconds();
    qt_status st = inner_ops->linear_bwd(ctx, dx, dw, db, dout, x, w, N, IC, OC);
    gemm_seconds += now_seconds() - t0;
    return st;
}

static qt_status timed_attention_fwd(void *ctx, const qt_attn_params *ap, void *out, void *ctxv,
                                     float *lse, float *R, int64_t *nzero, const void *qkv,
                                     const float *gate, const void *sink, const int *lens, int B,
                                     int T, int C, int H) {
    double t0 = now_seconds();
    qt_status st = inner_ops->attention_flash_fwd(ctx, ap, out, ctxv, lse, R, nzero, qkv, gate,
                                                  sink, lens, B, T, C, H);
    attn_seconds += now_seconds() - t0;
    return st;
}
static qt_status timed_attention_bwd(void *ctx, const qt_attn_params *ap, void *dqkv, float *dgate,
                                     void *dsink, const void *dout, const void *qkv,
                                     const void *ctxv, const float *lse, const float *R,
                                     const float *gate, const void *sink, const int *lens, int B,
                                     int T, int C, int H) {
    double t0 = now_seconds();
    qt_status st = inner_ops->attention_flash_bwd(ctx, ap, dqkv, dgate, dsink, dout, qkv, ctxv, lse,
                                                  R, gate, sink, lens, B, T, C, H);
    attn_seconds += now_seconds() - t0;
    return st;
}

typedef struct {
    double tokens_per_s, gflops, gemm_share, attn_share, loss;
} result;

static int bench_config(const qt_config *cfg, int steps, int warmup, result *r) {
    qt_backend be;
    if (qt_backend_cpu_init(&be, cfg->threads) != QT_OK) return 1;
    inner_ops = be.ops;
    timed_ops = *be.ops;
    timed_ops.gemm = timed_gemm;
    timed_ops.linear_fwd = timed_linear_fwd;
    timed_ops.linear_bwd = timed_linear_bwd;
    if (inner_ops->attention_flash_fwd) {
        timed_ops.attention_flash_fwd = timed_attention_fwd;
        timed_ops.attention_flash_bwd = timed_attention_bwd;
    }
    be.ops = &timed_ops;
    qt_model m;
    qt_optimizer opt;
    int B = cfg->batch_size, T = cfg->seq_len;
    if (qt_model_init(&m, cfg, &be, B, T) != QT_OK || qt_optimizer_init(&opt, &m) != QT_OK) {
        fprintf(stderr, "bench_train: %s\n", qt_last_error());
        return 1;
    }
    m.training = 1;
    int *in = malloc((size_t)B * T * sizeof(int)), *tg = malloc((size_t)B * T * sizeof(int));
    uint64_t s = 42;
    for (int i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        in[i] = (int)((s >> 33) % (uint64_t)cfg->vocab_size);
        tg[i] = (int)((s >> 13) % (uint64_t)cfg->vocab_size);
    }
    double t0 = 0;
    float loss = 0;
    for (int step = 0; step < warmup + steps; step++) {
        if (step == warmup) {
            t0 = now_seconds();
            gemm_seconds = 0;
            attn_seconds = 0;
        }
        double norm;
        m.dropout_stream = (uint64_t)step;
        if (qt_model_zero_grad(&m) != QT_OK || qt_model_forward_train(&m, in, tg, B, T, &loss, 1.0f) != QT_OK ||
            qt_model_backward(&m, 1.0f) != QT_OK ||
            qt_optimizer_step(&opt, &m, 1e-4f, 1.0f, &norm, NULL) != QT_OK) {
            fprintf(stderr, "bench_train: %s\n", qt_last_error());
            return 1;
        }
    }
    double dt = now_seconds() - t0;
    r->tokens_per_s = (double)steps * B * T / dt;
    r->gflops = r->tokens_per_s * qt_model_flops_per_token(cfg, T) * 1e-9;
    r->gemm_share = gemm_seconds / dt;
    r->attn_share = attn_seconds / dt;
    r->loss = loss;
    free(in);
    free(tg);
    qt_optimizer_free(&opt, &m);
    qt_model_free(&m);
    qt_backend_free(&be);
    return 0;
}

static int set(qt_config *cfg, const char *kv) {
    if (qt_config_set(cfg, kv, "bench") != QT_OK) {
        fprintf(stderr, "bench_train: %s\n", qt_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int steps = 10, warmup = 2, threads = 2;
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[++i];
        else {
            fprintf(stderr, "usage: bench_train [--steps N] [--warmup N] [--threads N] "
                            "[--config FILE]\n");
            return 1;
        }
    }
    if (steps < 1 || warmup < 0 || threads < 1) {
        fprintf(stderr, "bench_train: --steps >= 1, --warmup >= 0, --threads >= 1\n");
        return 1;
    }
    const char *variants[][3] = {
        {"vanilla", NULL, NULL},
        {"clipped", "attn.softmax=clipped", "attn.alpha=12"},
        {"ncs", "attn.softmax=ncs", NULL},
        {"gated_linear", "attn.gate=linear", NULL},
        {"gated_mlp", "attn.gate=mlp", NULL},
    };
    const char *configs[2] = {"default", "reference"};
    for (int c = 0; c < 2; c++) {
        qt_config base;
        qt_config_defaults(&base);
        if (c == 0 && config_path) {
            if (qt_config_load(&base, config_path) != QT_OK) {
                fprintf(stderr, "bench_train: %s\n", qt_last_error());
                return 1;
            }
            configs[0] = config_path;
        }
        if (c == 1) {
            const char *ref[] = {"model.n_layer=4", "model.d_model=256", "model.n_head=4",
                                 "model.d_ff=1024", "model.max_seq_len=128",
                                 "model.vocab_size=4096", "model.tie_embeddings=1",
                                 "model.dropout=0", "train.batch_size=8", "train.seq_len=128"};
            for (size_t k = 0; k < sizeof ref / sizeof ref[0]; k++)
                if (set(&base, ref[k])) return 1;
        }
        base.threads = threads;
        printf("== %s config: L %d, d_model %d, heads %d, d_ff %d, T %d, V %d, batch %d, "
               "%d threads, %d timed steps\n",
               configs[c], base.n_layer, base.d_model, base.n_head, base.d_ff, base.seq_len,
               base.vocab_size, base.batch_size, threads, steps);
        printf("%-14s %10s %9s %11s %11s %11s\n", "attention", "tokens/s", "GFLOP/s",
               "GEMM share", "attn share", "vs vanilla");
        double vanilla = 0;
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
            qt_config cfg = base;
            for (int k = 1; k < 3; k++)
                if (variants[v][k] && set(&cfg, variants[v][k])) return 1;
            result r;
            if (bench_config(&cfg, steps, warmup, &r)) return 1;
            if (v == 0) vanilla = r.tokens_per_s;
            printf("%-14s %10.0f %9.1f %10.1f%% %10.1f%% %10.3fx\n", variants[v][0],
                   r.tokens_per_s, r.gflops, 100.0 * r.gemm_share, 100.0 * r.attn_share,
                   r.tokens_per_s / vanilla);
            fflush(stdout);
        }
    }
    return 0;
}

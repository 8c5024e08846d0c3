// bench_quant_train.c: CPU training throughput of the quantized-training modes against plain
// fp32 training of the same model, as ratios measured in one run.
//
// Model: configs/llama-tiny.conf's shape (4 layers, d_model 128, 4 heads, SwiGLU d_ff 344,
// RMSNorm, RoPE, untied head, vocabulary 4096), batch 8 x 128 tokens, AdamW, on the CPU
// backend. Modes: none; qat W8A8 through the INT8 GEMM; qat W8A8 fake-quantized (float GEMM);
// qat with W, A, G, m and v all 8-bit; bitnet; dqt ternary (fixed scale and absmean scale).
//
// usage: bench_quant_train [--steps N] [--warmup N] [--threads N]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/int8_gemm.h"
#include "qtrain/model.h"
#include "qtrain/optimizer.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int set(qt_config *cfg, const char *kv) {
    if (qt_config_set(cfg, kv, "bench") != QT_OK) {
        fprintf(stderr, "bench_quant_train: %s\n", qt_last_error());
        return 1;
    }
    return 0;
}

// Seconds per optimizer step over `steps` timed steps after `warmup` untimed ones.
static int run(const qt_config *cfg, qt_backend *be, int steps, int warmup, double *sec) {
    int B = cfg->batch_size, T = cfg->seq_len, N = B * T;
    qt_model m;
    qt_optimizer opt;
    if (qt_model_init(&m, cfg, be, B, T) != QT_OK || qt_optimizer_init(&opt, &m) != QT_OK) {
        fprintf(stderr, "bench_quant_train: %s\n", qt_last_error());
        return 1;
    }
    m.training = 1;
    int *tok = malloc((size_t)(N + 1) * sizeof(int));
    uint64_t s = 99;
    for (int i = 0; i <= N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int)((s >> 33) % (uint64_t)cfg->vocab_size);
    }
    double t0 = 0.0;
    for (int it = 0; it < warmup + steps; it++) {
        if (it == warmup) t0 = now_seconds();
        float loss;
        m.dropout_stream = (uint64_t)it;
        if (qt_model_zero_grad(&m) != QT_OK || qt_model_forward(&m, tok, tok + 1, B, T, &loss) ||
            qt_model_backward(&m, 1.0f) != QT_OK ||
            qt_optimizer_step(&opt, &m, 1e-3f, 1.0f, NULL, NULL) != QT_OK) {
            fprintf(stderr, "bench_quant_train: %s\n", qt_last_error());
            return 1;
        }
    }
    *sec = (now_seconds() - t0) / steps;
    free(tok);
    qt_optimizer_free(&opt, &m);
    qt_model_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    int steps = 5, warmup = 1, threads = 2;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--steps") == 0) steps = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--warmup") == 0) warmup = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_quant_train [--steps N] [--warmup N] [--threads N]\n");
            return 2;
        }
    }
    if (steps < 1 || warmup < 0 || threads < 1) {
        fprintf(stderr, "bench_quant_train: --steps >= 1, --warmup >= 0, --threads >= 1\n");
        return 2;
    }
    qt_backend be;
    if (qt_backend_cpu_init(&be, threads) != QT_OK) {
        fprintf(stderr, "bench_quant_train: %s\n", qt_last_error());
        return 1;
    }
    const char *base[] = {"model.arch=llama", "model.norm=rmsnorm", "model.pos=rope",
                          "model.activation=swiglu", "model.bias=0", "model.tie_embeddings=0",
                          "model.n_layer=4", "model.d_model=128", "model.n_head=4",
                          "model.d_ff=344", "model.max_seq_len=128", "train.batch_size=8",
                          "train.seq_len=128"};
    const char *modes[][7] = {
        {"none", NULL},
        {"qat_w8a8_int8", "quant.mode=qat", "quant.int8_gemm=1", NULL},
        {"qat_w8a8_fake", "quant.mode=qat", "quant.int8_gemm=0", NULL},
        {"qat_wagmv8", "quant.mode=qat", "quant.g_bits=8", "quant.m_bits=8", "quant.v_bits=8",
         NULL},
        {"bitnet", "quant.mode=bitnet", NULL},
        {"dqt_ternary", "quant.mode=dqt", NULL},
        {"dqt_absmean", "quant.mode=dqt", "quant.dqt_scale=absmean", NULL},
    };
    printf("bench_quant_train: llama-tiny shape, B 8 x T 128, %d threads, %d timed steps after "
           "%d warmup, INT8 GEMM path %s\n",
           threads, steps, warmup, qt_cpu_gemm_s8_path());
    printf("%-14s %10s %12s %10s\n", "mode", "ms/step", "tokens/s", "vs none");
    double base_sec = 0.0;
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        qt_config cfg;
        qt_config_defaults(&cfg);
        for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
            if (set(&cfg, base[i])) return 1;
        for (int i = 1; modes[k][i]; i++)
            if (set(&cfg, modes[k][i])) return 1;
        double sec;
        if (run(&cfg, &be, steps, warmup, &sec)) return 1;
        if (k == 0) base_sec = sec;
        printf("%-14s %10.1f %12.0f %9.3fx\n", modes[k][0], sec * 1e3,
               (double)cfg.batch_size * cfg.seq_len / sec, base_sec / sec);
    }
    qt_backend_free(&be);
    return 0;
}

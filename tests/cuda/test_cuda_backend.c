// test_cuda_backend.c: the CUDA backend (host/backends/backend_cuda.c) trains like the CPU backend.
//
// The same model (include/qtrain/model.h: 2 layers, d_model 32, T 16, batch 2) with the same
// config, seed and batch runs on the CPU backend (fp32, the reference) and on the CUDA backend
// (the emulator in the emu build, a GPU in the gpu build):
//   1. fp32 mode, one training step for several attention variants (plain, clipped + MLP gate +
//      dropout, NCS + linear gate + ReLU + no bias, all-heads gate untied): the loss and every
//      gradient tensor within 1e-4 relative (per tensor: max abs error / max abs reference).
//      The CPU backend runs its fused attention core, the CUDA backend composes attention from
//      strided-batched GEMMs and the softmax kernel, so the two schedules are independent.
//   2. fp16 and bf16 mode (fp32 master weights, constant loss scale 1024): 20 AdamW steps whose
//      losses stay within 2% of the CPU backend's, step by step; no step is skipped. The CUDA
//      model trains through qt_model_forward_train (crossentropy_fwd_bwd), the CPU's through
//      qt_model_forward + qt_model_backward.
//      Two identical fp16 runs (dropout on) give bit-identical losses and weights.
//   3. fp16 loss scaling: an inf injected into a gradient makes qt_optimizer_step skip the step
//      with the parameters, master weights and moments unchanged bit for bit, and the loss
//      scaler halves its scale.
//   4. Quantized training (qat with every quantizer and the INT8 forward, bitnet, dqt in fp32
//      and fp16): 8 steps whose losses stay within 1% (fp32) / 2% (fp16) of the CPU backend's;
//      the DQT codes of both backends mostly agree (same Philox bits; a code differs only
//      where the two backends' updated values straddle a rounding point).
//   6. The masked-LM encoder (model.arch = bert: bidirectional attention with padding, post-LN
//      and pre-LN, token types, the MLM head) in the fp32 step of 1, and 20 fp16 steps as 2.
//   5. The table is complete (qt_backend_check), the fp32 <-> dt conversions of to_device_f32
//      and to_host_f32 round to nearest even, bad init arguments are refused.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "qtrain/config.h"
#include "qtrain/loss_scaler.h"
#include "qtrain/model.h"
#include "qtrain/optimizer.h"
#include "testutil.h"

enum { B = 2, T = 16 };
#define GRAD_RTOL 1e-4
#define LOSS_RTOL_TRAIN 0.02
#define LOSS_SCALE 1024.0f
#define TRAIN_STEPS 20

typedef struct {
    const char *name;
    const char *sets[8];
} variant;

static const variant VARIANTS[] = {
    {"vanilla", {NULL}},
    {"clipped_gate_mlp_dropout",
     {"attn.softmax=clipped", "attn.gamma=-0.03", "attn.zeta=1.05", "attn.gate=mlp",
      "model.dropout=0.1", NULL}},
    {"ncs_gate_linear_relu_nobias",
     {"attn.softmax=ncs", "attn.eta=1.2", "attn.beta=0.6", "attn.gate=linear",
      "model.activation=relu", "model.bias=0", NULL}},
    {"gate_all_heads_untied", {"attn.gate=all_heads", "model.tie_embeddings=0", NULL}},
    {"llama",
     {"model.arch=llama", "model.norm=rmsnorm", "model.pos=rope", "model.activation=swiglu",
      "model.bias=0", "model.tie_embeddings=0", NULL}},
#define BERT "model.arch=bert", "model.loss=mlm", "model.vocab_size=261"
    {"bert_post_vanilla", {BERT, "model.norm_position=post", NULL}},
    {"bert_post_clipped_gate_mlp",
     {BERT, "model.norm_position=post", "attn.softmax=clipped", "attn.gamma=-0.03",
      "attn.gate=mlp", NULL}},
    {"bert_pre_ncs_gate_linear",
     {BERT, "attn.softmax=ncs", "attn.eta=1.2", "attn.beta=0.6", "attn.gate=linear", NULL}},
};
#define N_VARIANTS ((int)(sizeof VARIANTS / sizeof VARIANTS[0]))

static void small_config(qt_config *cfg, const variant *v) {
    qt_config_defaults(cfg);
    const char *base[] = {"model.n_layer=2",    "model.d_model=32",     "model.n_head=2",
                          "model.d_ff=64",      "model.max_seq_len=16", "model.vocab_size=257",
                          "model.init_std=0.1", "train.seed=11",        "train.seq_len=16",
                          "train.lr=0.003"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        ck_assert_msg(qt_config_set(cfg, base[i], "test") == QT_OK, "%s: %s", base[i],
                      qt_last_error());
    for (int i = 0; v && v->sets[i]; i++)
        ck_assert_msg(qt_config_set(cfg, v->sets[i], "test") == QT_OK, "%s: %s", v->sets[i],
                      qt_last_error());
}

// A deterministic batch: pseudo-random tokens, targets the next token; batch `k` differs.
static void make_batch(int *in, int *tg, int k) {
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(k + 1);
    for (int i = 0; i < B * T; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        in[i] = (int)(x % 257);
    }
    for (int i = 0; i < B * T; i++) tg[i] = (i % T == T - 1) ? (int)((x >> 8) % 257) : in[i + 1];
    tg[5] = -1; // an ignored target
}

// The encoder's batch: sequences of 16 and 9 real tokens (the rest padding), types 0 then 1.
static const int enc_lens[B] = {T, 9};

// An encoder's targets: none on padding (the MLM loss never sees it). No-op for a decoder.
static void encoder_targets(const qt_config *cfg, int *tg) {
    if (cfg->arch != QT_ARCH_BERT) return;
    for (int b = 0; b < B; b++)
        for (int t = enc_lens[b]; t < T; t++) tg[b * T + t] = -1;
}

static void model_on(qt_model *m, qt_backend *be, const qt_config *cfg) {
    ck_assert_msg(qt_model_init(m, cfg, be, B, T) == QT_OK, "%s on %s: %s", "qt_model_init",
                  be->name, qt_last_error());
    if (cfg->arch == QT_ARCH_BERT) {
        int types[B * T];
        for (int i = 0; i < B * T; i++) types[i] = i % T >= 5 && i % T < enc_lens[i / T];
        ck_assert_msg(qt_model_set_encoder_batch(m, enc_lens, types, B, T) == QT_OK, "%s",
                      qt_last_error());
    }
    m->training = 1; // dropout (when configured) with a fixed stream: the same mask on both
    m->dropout_stream = 5;
}

static float *host_f32(qt_backend *be, const void *dev, size_t n) {
    float *h = malloc(n * sizeof *h);
    ck_assert_msg(be->ops->to_host_f32(be->ctx, h, dev, n) == QT_OK, "%s", qt_last_error());
    return h;
}

// CPU reference threads. One under TSan: libgomp's barriers are invisible to it, so OpenMP
// regions in libqtrain would read as races; the threads under test there are the emulator's.
#if defined(__SANITIZE_THREAD__)
#define CPU_THREADS 1
#else
#define CPU_THREADS 2
#endif

static void init_cuda(qt_backend *be, qt_dtype dt) {
    qt_status st = qt_backend_cuda_init(be, 0, dt);
    ck_assert_msg(st == QT_OK, "qt_backend_cuda_init(%s): %s", qt_dtype_name(dt),
                  qt_last_error());
}

// ---- 1. one fp32 step: loss and every gradient -------------------------------------------

START_TEST(test_fp32_step_matches_cpu) {
    const variant *v = &VARIANTS[_i];
    qt_config cfg;
    small_config(&cfg, v);
    qt_backend cpu, gpu;
    ck_assert_int_eq(qt_backend_cpu_init(&cpu, CPU_THREADS), QT_OK);
    init_cuda(&gpu, QT_DTYPE_F32);
    qt_model mc, mg;
    model_on(&mc, &cpu, &cfg);
    model_on(&mg, &gpu, &cfg);
    ck_assert_int_eq(mc.n_params, mg.n_params);

    // The same initial parameters (both made from the seed on the host).
    float *pg = host_f32(&gpu, mg.params, mg.n_params);
    ck_assert_msg(memcmp(pg, mc.params, mc.n_params * sizeof(float)) == 0,
                  "%s: initial parameters differ", v->name);
    free(pg);

    int in[B * T], tg[B * T];
    make_batch(in, tg, 0);
    encoder_targets(&cfg, tg);
    float lc = 0, lg = 0;
    ck_assert_int_eq(qt_model_zero_grad(&mc), QT_OK);
    ck_assert_int_eq(qt_model_zero_grad(&mg), QT_OK);
    ck_assert_msg(qt_model_forward(&mc, in, tg, B, T, &lc) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_model_forward(&mg, in, tg, B, T, &lg) == QT_OK, "%s: cuda forward: %s",
                  v->name, qt_last_error());
    ck_assert_msg(fabsf(lg - lc) <= GRAD_RTOL * fabsf(lc), "%s: loss %.9g (cuda) vs %.9g (cpu)",
                  v->name, (double)lg, (double)lc);
    ck_assert_msg(qt_model_backward(&mc, 1.0f) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_model_backward(&mg, 1.0f) == QT_OK, "%s: cuda backward: %s", v->name,
                  qt_last_error());

    const float *gc = mc.grads; // fp32 host memory on the CPU backend
    float *gg = host_f32(&gpu, mg.grads, mg.n_params);
    for (int ti = 0; ti < mc.n_tensors; ti++) {
        const qt_tensor_info *t = &mc.tensors[ti];
        double max_ref = 0.0, max_err = 0.0;
        size_t worst = 0;
        for (size_t i = 0; i < t->numel; i++) {
            double ref = gc[t->offset + i], got = gg[t->offset + i];
            if (fabs(ref) > max_ref) max_ref = fabs(ref);
            if (!(fabs(got - ref) <= max_err)) {
                max_err = fabs(got - ref);
                worst = i;
            }
        }
        ck_assert_msg(max_err <= GRAD_RTOL * max_ref,
                      "%s: gradient %s: max error %.3g vs max |ref| %.3g (relative %.3g > %g) "
                      "at [%zu]: cuda %.9g cpu %.9g",
                      v->name, t->name, max_err, max_ref, max_err / max_ref, GRAD_RTOL, worst,
                      (double)gg[t->offset + worst], (double)gc[t->offset + worst]);
    }
    free(gg);
    qt_model_free(&mc);
    qt_model_free(&mg);
    qt_backend_free(&cpu);
    qt_backend_free(&gpu);
}
END_TEST

// ---- 2. 20 mixed-precision steps: losses within 2% of fp32 ---------------------------------

// The same model trained side by side on the CPU (fp32) and on CUDA in `dt`.
typedef struct {
    qt_backend cpu, gpu;
    qt_model mc, mg;
    qt_optimizer oc, og;
} side_by_side;

static void side_by_side_init(side_by_side *p, const qt_config *cfg, qt_dtype dt,
                              const char *name) {
    ck_assert_int_eq(qt_backend_cpu_init(&p->cpu, CPU_THREADS), QT_OK);
    init_cuda(&p->gpu, dt);
    ck_assert_int_eq(p->gpu.dtype, dt);
    model_on(&p->mc, &p->cpu, cfg);
    model_on(&p->mg, &p->gpu, cfg);
    ck_assert_msg(qt_optimizer_init(&p->oc, &p->mc) == QT_OK, "%s", qt_last_error());
    ck_assert_msg(qt_optimizer_init(&p->og, &p->mg) == QT_OK, "%s: %s", name, qt_last_error());
}

static void side_by_side_free(side_by_side *p) {
    qt_optimizer_free(&p->oc, &p->mc);
    qt_optimizer_free(&p->og, &p->mg);
    qt_model_free(&p->mc);
    qt_model_free(&p->mg);
    qt_backend_free(&p->cpu);
    qt_backend_free(&p->gpu);
}

// `steps` AdamW steps alternating two batches (make_batch(batch0), make_batch(batch0 + 1)) at
// loss scale `scale`: every step's CUDA loss within loss_rtol of the CPU's, no step skipped.
// *first and *last get the CPU's first and last losses.
static void side_by_side_train(side_by_side *p, const qt_config *cfg, const char *name,
                               int steps, int batch0, float scale, double loss_rtol,
                               float *first, float *last) {
    int in[2][B * T], tg[2][B * T];
    make_batch(in[0], tg[0], batch0);
    make_batch(in[1], tg[1], batch0 + 1);
    encoder_targets(cfg, tg[0]);
    encoder_targets(cfg, tg[1]);
    for (int step = 0; step < steps; step++) {
        const int k = step % 2;
        float lc = 0, lg = 0;
        double nc = 0, ng = 0;
        int sc = 0, sg = 0;
        qt_model *ms[2] = {&p->mc, &p->mg};
        for (int j = 0; j < 2; j++) {
            ck_assert_int_eq(qt_model_zero_grad(ms[j]), QT_OK);
            ms[j]->dropout_stream = (uint64_t)step;
        }
        ck_assert_msg(qt_model_forward(&p->mc, in[k], tg[k], B, T, &lc) == QT_OK, "%s",
                      qt_last_error());
        // the CUDA model trains as the trainer does: the classifier's backward inside the
        // forward's op (crossentropy_fwd_bwd), against the CPU's forward + backward
        ck_assert_msg(qt_model_forward_train(&p->mg, in[k], tg[k], B, T, &lg, scale) == QT_OK,
                      "%s step %d: %s", name, step, qt_last_error());
        ck_assert_msg(fabsf(lg - lc) <= loss_rtol * fabsf(lc),
                      "%s step %d: loss %.6g (cuda) vs %.6g (cpu fp32): off by %.3f%% > %g%%",
                      name, step, (double)lg, (double)lc, 100.0 * fabs(lg - lc) / fabs(lc),
                      100.0 * loss_rtol);
        if (step == 0) *first = lc;
        *last = lc;
        ck_assert_int_eq(qt_model_backward(&p->mc, scale), QT_OK);
        ck_assert_msg(qt_model_backward(&p->mg, scale) == QT_OK, "%s: %s", name, qt_last_error());
        ck_assert_msg(qt_optimizer_step(&p->oc, &p->mc, cfg->lr, scale, &nc, &sc) == QT_OK, "%s",
                      qt_last_error());
        ck_assert_msg(qt_optimizer_step(&p->og, &p->mg, cfg->lr, scale, &ng, &sg) == QT_OK,
                      "%s step %d: %s", name, step, qt_last_error());
        ck_assert_msg(!sc && !sg, "%s step %d: a step was skipped (cpu %d, cuda %d; norms %g %g)",
                      name, step, sc, sg, nc, ng);
    }
}

static void train_steps_match(qt_dtype dt, const variant *v) {
    qt_config cfg;
    small_config(&cfg, v);
    side_by_side p;
    side_by_side_init(&p, &cfg, dt, qt_dtype_name(dt));
    ck_assert_msg(p.og.master != NULL, "%s: no fp32 master weights", qt_dtype_name(dt));
    float first = 0, last = 0;
    side_by_side_train(&p, &cfg, qt_dtype_name(dt), TRAIN_STEPS, 1, LOSS_SCALE, LOSS_RTOL_TRAIN,
                       &first, &last);
    // The comparison means something only if the model trained.
    ck_assert_msg(last < first - 0.5f, "%s: the loss went from %g to %g only", qt_dtype_name(dt),
                  (double)first, (double)last);
    side_by_side_free(&p);
}

START_TEST(test_fp16_training_tracks_cpu) { train_steps_match(QT_DTYPE_F16, NULL); }
END_TEST

START_TEST(test_bf16_training_tracks_cpu) { train_steps_match(QT_DTYPE_BF16, NULL); }
END_TEST

// Head dim 64 (d_model 128, 2 heads): the fused attention kernels (kernels/cuda/attention.cu)
// run the model's attention, here with clipped softmax and the linear gate (the CPU side runs
// its own fused op). lr 0.001: at the default the loss reaches ~0.01 by step 17, where 2% of it
// is below fp16's noise.
static const variant FUSED_D64 = {"fused_d64_clipped_gate_linear",
                                  {"model.d_model=128", "train.lr=0.001", "attn.softmax=clipped", "attn.gamma=-0.03",
                                   "attn.gate=linear", NULL}};
START_TEST(test_fused_attention_fp16_training_tracks_cpu) {
    train_steps_match(QT_DTYPE_F16, &FUSED_D64);
}
END_TEST

// The post-LN encoder with clipped softmax and the MLP gate, in fp16.
START_TEST(test_encoder_fp16_training_tracks_cpu) {
    train_steps_match(QT_DTYPE_F16, &VARIANTS[N_VARIANTS - 2]);
}
END_TEST

// ---- 2b. determinism: two identical fp16 runs give identical losses and weights ----------

#define DETERMINISM_STEPS 6

// DETERMINISM_STEPS fp16 steps of the dropout variant (its masks, the GEMMs' pointer tables,
// the multi-tensor AdamW with the norm on the device) from a fresh backend: the losses, and the
// parameters at the end as bytes (malloc'd, *bytes long).
static void fp16_run(float losses[DETERMINISM_STEPS], unsigned char **params, size_t *bytes) {
    qt_config cfg;
    small_config(&cfg, &VARIANTS[1]);
    qt_backend gpu;
    init_cuda(&gpu, QT_DTYPE_F16);
    qt_model m;
    model_on(&m, &gpu, &cfg);
    qt_optimizer opt;
    ck_assert_msg(qt_optimizer_init(&opt, &m) == QT_OK, "%s", qt_last_error());
    int in[2][B * T], tg[2][B * T];
    make_batch(in[0], tg[0], 5);
    make_batch(in[1], tg[1], 6);
    for (int step = 0; step < DETERMINISM_STEPS; step++) {
        double norm = 0;
        int skipped = 0;
        ck_assert_int_eq(qt_model_zero_grad(&m), QT_OK);
        m.dropout_stream = (uint64_t)step;
        ck_assert_msg(qt_model_forward(&m, in[step % 2], tg[step % 2], B, T, &losses[step]) ==
                          QT_OK, "%s", qt_last_error());
        ck_assert_int_eq(qt_model_backward(&m, LOSS_SCALE), QT_OK);
        ck_assert_msg(qt_optimizer_step(&opt, &m, cfg.lr, LOSS_SCALE, &norm, &skipped) == QT_OK,
                      "%s", qt_last_error());
        ck_assert_msg(!skipped, "step %d skipped (norm %g)", step, norm);
    }
    *bytes = m.n_float_params * m.es;
    *params = malloc(*bytes);
    ck_assert_int_eq(gpu.ops->to_host(gpu.ctx, *params, m.params, *bytes), QT_OK);
    qt_optimizer_free(&opt, &m);
    qt_model_free(&m);
    qt_backend_free(&gpu);
}

START_TEST(test_fp16_runs_are_identical) {
    float la[DETERMINISM_STEPS], lb[DETERMINISM_STEPS];
    unsigned char *pa = NULL, *pb = NULL;
    size_t na = 0, nb = 0;
    fp16_run(la, &pa, &na);
    fp16_run(lb, &pb, &nb);
    for (int i = 0; i < DETERMINISM_STEPS; i++)
        ck_assert_msg(memcmp(&la[i], &lb[i], sizeof la[i]) == 0,
                      "step %d: loss %.9g in one run, %.9g in the other", i, (double)la[i],
                      (double)lb[i]);
    ck_assert(na == nb && na > 0);
    ck_assert_msg(memcmp(pa, pb, na) == 0, "two identical runs ended with different weights");
    free(pa);
    free(pb);
}
END_TEST

// ---- 3. loss scaling: an inf gradient skips the step and halves the scale -----------------

START_TEST(test_fp16_overflow_skips_step) {
    qt_config cfg;
    small_config(&cfg, NULL);
    qt_backend gpu;
    init_cuda(&gpu, QT_DTYPE_F16);
    qt_model m;
    model_on(&m, &gpu, &cfg);
    qt_optimizer opt;
    ck_assert_msg(qt_optimizer_init(&opt, &m) == QT_OK, "%s", qt_last_error());
    qt_loss_scaler ls;
    qt_loss_scaler_init(&ls, &cfg, QT_DTYPE_F16);
    ck_assert_msg(ls.enabled && ls.scale > 1.0f, "fp16 loss scaling is off");
    const float scale0 = ls.scale;

    int in[B * T], tg[B * T];
    make_batch(in, tg, 3);
    float loss = 0;
    ck_assert_int_eq(qt_model_zero_grad(&m), QT_OK);
    ck_assert_int_eq(qt_model_forward(&m, in, tg, B, T, &loss), QT_OK);
    ck_assert_int_eq(qt_model_backward(&m, ls.scale), QT_OK);
    // An inf in the middle of the fc1 weight gradient of layer 1.
    int ti = qt_model_find_tensor(&m, "decoder.layers.1.fc1.weight");
    ck_assert_int_ge(ti, 0);
    const float inf = INFINITY;
    ck_assert_int_eq(gpu.ops->to_device_f32(gpu.ctx,
                                            QT_AT(m.grads, m.es, m.tensors[ti].offset + 7), &inf,
                                            1),
                     QT_OK);

    const size_t n = m.n_params, pbytes = n * m.es, fbytes = n * sizeof(float);
    unsigned char *before = malloc(pbytes + 3 * fbytes), *after = malloc(pbytes + 3 * fbytes);
    void *bufs[4] = {m.params, opt.master, opt.m, opt.v};
    size_t sizes[4] = {pbytes, fbytes, fbytes, fbytes};
    for (int pass = 0; pass < 2; pass++) {
        unsigned char *dst = pass ? after : before;
        if (pass) {
            double norm = 0;
            int skipped = 0;
            ck_assert_msg(qt_optimizer_step(&opt, &m, cfg.lr, ls.scale, &norm, &skipped) == QT_OK,
                          "%s", qt_last_error());
            ck_assert_msg(skipped == 1, "an inf gradient did not skip the step (norm %g)", norm);
            ck_assert_msg(!isfinite(norm), "the gradient norm %g hides the inf", norm);
            qt_loss_scaler_update(&ls, skipped);
        }
        for (int b = 0; b < 4; b++) {
            ck_assert_int_eq(gpu.ops->to_host(gpu.ctx, dst, bufs[b], sizes[b]), QT_OK);
            dst += sizes[b];
        }
    }
    ck_assert_msg(memcmp(before, after, pbytes + 3 * fbytes) == 0,
                  "a skipped step changed the parameters, master weights or moments");
    ck_assert_int_eq(opt.step, 0);
    ck_assert_msg(ls.scale == scale0 * 0.5f, "loss scale %g after an overflow, want %g",
                  (double)ls.scale, (double)(scale0 * 0.5f));
    free(before);
    free(after);
    qt_optimizer_free(&opt, &m);
    qt_model_free(&m);
    qt_backend_free(&gpu);
}
END_TEST

// ---- 4. quantized training tracks the CPU backend ------------------------------------------

typedef struct {
    const char *name;
    qt_dtype dt;
    double loss_rtol;
    const char *sets[8];
} quant_variant;

#define LLAMA "model.arch=llama", "model.norm=rmsnorm", "model.pos=rope", "model.activation=swiglu"
static const quant_variant QUANT_VARIANTS[] = {
    {"qat_wagmv8_int8_switchback", QT_DTYPE_F32, 0.01,
     {"quant.mode=qat", "quant.g_bits=8", "quant.m_bits=8", "quant.v_bits=8", "quant.backward=dx",
      "quant.g_rounding=stochastic", NULL}},
    // s8dx part: g 8-bit nearest per token, w per tensor: dX on the INT8 GEMM (linear_s8_dx)
    {"qat_g8_wtensor_int8_dx", QT_DTYPE_F32, 0.01,
     {"quant.mode=qat", "quant.g_bits=8", "quant.backward=dx", "quant.w_granularity=tensor",
      NULL}},
    {"bitnet_llama", QT_DTYPE_F32, 0.01,
     {LLAMA, "model.bias=0", "model.tie_embeddings=0", "quant.mode=bitnet", NULL}},
    {"dqt_ternary_llama", QT_DTYPE_F32, 0.01,
     {LLAMA, "model.bias=0", "model.tie_embeddings=0", "quant.mode=dqt", NULL}},
    {"dqt_8bit_absmean_fp16", QT_DTYPE_F16, 0.02,
     {"quant.mode=dqt", "quant.dqt_bits=8", "quant.dqt_scale=absmean", NULL}},
};
#undef LLAMA
#define N_QUANT_VARIANTS ((int)(sizeof QUANT_VARIANTS / sizeof QUANT_VARIANTS[0]))
#define QUANT_STEPS 8

START_TEST(test_quant_training_tracks_cpu) {
    const quant_variant *v = &QUANT_VARIANTS[_i];
    qt_config cfg;
    small_config(&cfg, NULL);
    for (int i = 0; v->sets[i]; i++)
        ck_assert_msg(qt_config_set(&cfg, v->sets[i], "test") == QT_OK, "%s: %s", v->sets[i],
                      qt_last_error());
    ck_assert_msg(qt_config_validate(&cfg) == QT_OK, "%s: %s", v->name, qt_last_error());
    side_by_side p;
    side_by_side_init(&p, &cfg, v->dt, v->name);
    const float scale = v->dt == QT_DTYPE_F16 ? LOSS_SCALE : 1.0f;
    float first = 0, last = 0;
    side_by_side_train(&p, &cfg, v->name, QUANT_STEPS, 4, scale, v->loss_rtol, &first, &last);
    ck_assert_msg(last < first, "%s: the loss went from %g to %g", v->name, (double)first,
                  (double)last);
    const qt_model *mc = &p.mc, *mg = &p.mg;
    if (mc->n_code_bytes) {
        ck_assert_uint_eq(mc->n_code_bytes, mg->n_code_bytes);
        int8_t *cg = malloc(mg->n_code_bytes);
        ck_assert_int_eq(p.gpu.ops->to_host(p.gpu.ctx, cg, mg->codes, mg->n_code_bytes), QT_OK);
        size_t same = 0, total = 0;
        for (int ti = 0; ti < mc->n_tensors; ti++) {
            const qt_tensor_info *t = &mc->tensors[ti];
            if (!t->quantized) continue;
            for (size_t i = 0; i < t->numel; i++)
                same += mc->codes[t->code_offset + i] == cg[t->code_offset + i];
            total += t->numel;
            ck_assert_msg(fabsf(mg->code_scales[ti] - mc->code_scales[ti]) <=
                              0.01f * mc->code_scales[ti],
                          "%s: %s scale %g (cuda) vs %g (cpu)", v->name, t->name,
                          (double)mg->code_scales[ti], (double)mc->code_scales[ti]);
        }
        double agree = (double)same / (double)total;
        printf("%s: %.4f%% of %zu DQT codes equal on both backends after %d steps\n", v->name,
               100.0 * agree, total, QUANT_STEPS);
        // fp16 gradients move the 8-bit grid's rounding points more: 91% measured.
        ck_assert_msg(agree >= (v->dt == QT_DTYPE_F32 ? 0.99 : 0.8),
                      "%s: only %.3f%% of the codes agree", v->name, 100.0 * agree);
        free(cg);
    }
    side_by_side_free(&p);
}
END_TEST

// ---- 5. the table, conversions and init errors --------------------------------------------

START_TEST(test_backend_table_and_conversions) {
    ck_assert_int_ge(qt_cuda_device_count(), 1);
    const qt_dtype dts[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
    enum { n = 1031 };
    float src[n], back[n];
    qt_test_fill_uniform(src, n, -70000.0f, 70000.0f, 77);
    src[0] = 0.0f;
    src[1] = -0.0f;
    src[2] = 1e-8f; // below fp16's smallest subnormal: rounds to 0
    src[3] = 65520.0f; // rounds to inf in fp16
    src[4] = 3.0e-5f; // an fp16 subnormal
    for (int d = 0; d < 3; d++) {
        qt_backend be;
        init_cuda(&be, dts[d]);
        ck_assert_int_eq(be.dtype, dts[d]);
        ck_assert_str_eq(be.name, "cuda");
        ck_assert_msg(qt_backend_check(&be) == QT_OK, "%s", qt_last_error());
        // the fused attention: fp16/bf16 with head dims 64 and 128, declined otherwise
        ck_assert_msg(be.ops->attention_flash_fwd && be.ops->attention_flash_bwd &&
                          be.ops->attention_flash_supports,
                      "the CUDA backend has the fused attention");
        qt_attn_params ap;
        memset(&ap, 0, sizeof ap);
        ck_assert_int_eq(be.ops->attention_flash_supports(be.ctx, &ap, 768, 12),
                         dts[d] != QT_DTYPE_F32);
        ck_assert_int_eq(be.ops->attention_flash_supports(be.ctx, &ap, 256, 2),
                         dts[d] != QT_DTYPE_F32);
        ck_assert_int_eq(be.ops->attention_flash_supports(be.ctx, &ap, 64, 4), 0);
        void *dev = NULL;
        ck_assert_int_eq(be.ops->alloc(be.ctx, &dev, n * qt_dtype_size(dts[d])), QT_OK);
        ck_assert_int_eq(be.ops->to_device_f32(be.ctx, dev, src, n), QT_OK);
        ck_assert_int_eq(be.ops->to_host_f32(be.ctx, back, dev, n), QT_OK);
        for (int i = 0; i < n; i++) {
            float want = qt_ct_round(dts[d], src[i]);
            ck_assert_msg(memcmp(&want, &back[i], sizeof want) == 0,
                          "%s: %.9g -> %.9g, want %.9g (element %d)", qt_dtype_name(dts[d]),
                          (double)src[i], (double)back[i], (double)want, i);
        }
        ck_assert_int_eq(be.ops->zero(be.ctx, dev, n * qt_dtype_size(dts[d])), QT_OK);
        ck_assert_int_eq(be.ops->to_host_f32(be.ctx, back, dev, n), QT_OK);
        for (int i = 0; i < n; i++) ck_assert_msg(back[i] == 0.0f, "zero left %g", back[i]);
        be.ops->free(be.ctx, dev);
        ck_assert_int_eq(be.ops->sync(be.ctx), QT_OK);
        qt_backend_free(&be);
    }
    qt_backend be;
    ck_assert_int_eq(qt_backend_cuda_init(&be, 99, QT_DTYPE_F32), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "device 99") != NULL, "%s", qt_last_error());
    ck_assert_int_eq(qt_backend_cuda_init(&be, 0, (qt_dtype)9), QT_ERR_ARG);
    ck_assert_int_eq(qt_backend_cuda_init(NULL, 0, QT_DTYPE_F32), QT_ERR_ARG);
}
END_TEST

int main(void) {
    qt_ct_require_device();
    Suite *s = suite_create("cuda_backend");
    TCase *tc = tcase_create("backend");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_backend_table_and_conversions);
    tcase_add_loop_test(tc, test_fp32_step_matches_cpu, 0, N_VARIANTS);
    tcase_add_test(tc, test_fp16_training_tracks_cpu);
    tcase_add_test(tc, test_bf16_training_tracks_cpu);
    tcase_add_test(tc, test_encoder_fp16_training_tracks_cpu);
    tcase_add_test(tc, test_fused_attention_fp16_training_tracks_cpu);
    tcase_add_test(tc, test_fp16_overflow_skips_step);
    tcase_add_test(tc, test_fp16_runs_are_identical);
    tcase_add_loop_test(tc, test_quant_training_tracks_cpu, 0, N_QUANT_VARIANTS);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

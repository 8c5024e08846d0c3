// bench/step.c: `qtrain bench step` (bench/step.h): one training step of a config on the CUDA
// backend, recorded launch by launch, its predicted time on a GPU's datasheet and, on a GPU,
// its measured time beside it.
//
// Which backend runs the step: without a GPU (or with --predict-only), the record-only backend
// (qt_backend_cuda_init_dry), which records the real shapes' launches in milliseconds and runs
// none; on a GPU, the real backend, recorded during one step and timed with CUDA events over
// --steps more; in the emulated build (bench_step_emu), the record-only backend unless
// --execute runs the kernels on the emulator (small configs: a check of the record-only mode).
#include "bench/step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/args.h"

static const char usage[] =
    "usage: qtrain bench step [--config FILE] [--set key=value]... [--gpu NAME]\n"
    "                         [--predict-only] [--steps N] [--warmup N] [--top N] [--json]\n"
    "                         [--eff-tensor F] [--eff-fp32 F] [--eff-bw F] [--launch-us U]\n"
    "                         [--sync-us U] [--execute]\n"
    "\n"
    "Runs one training step of the config (its grad_accum micro-steps and one optimizer step)\n"
    "on the CUDA backend, records every launch it makes (kernels, cuBLASLt GEMMs, memsets,\n"
    "copies, host synchronizations) with the bytes and FLOPs its launcher declares, and predicts\n"
    "the step's time on a GPU from its datasheet: per launch, max(bytes / bandwidth, FLOPs /\n"
    "peak) plus a launch cost; a host synchronization costs --sync-us. Prints the predicted step\n"
    "time, tokens/s and MFU (llm.c's convention: 6 N + 6 L C T FLOPs per token), the launches\n"
    "and host synchronizations per micro-step and per optimizer step, and the most expensive\n"
    "kernels. Without a GPU (or with --predict-only) the step is recorded, not run; on a GPU it\n"
    "also runs --steps steps after --warmup, timed with CUDA events, and prints the measurement\n"
    "beside the prediction.\n"
    "\n"
    "  --config FILE    config file (default: the built-in defaults); --set key=value overrides\n"
    "  --gpu NAME       the datasheet to predict for: a100 (default, SXM4 80GB), a100-40gb,\n"
    "                   h100 (SXM5), h200 (SXM)\n"
    "  --predict-only   record the step without running it, even where a GPU exists\n"
    "  --steps N        timed steps on a GPU (default 10); --warmup N before them (default 3)\n"
    "  --top N          kernels listed (default 10)\n"
    "  --json           one JSON object per line: the summary, then every kernel group\n"
    "  --eff-tensor F   fraction of the tensor-core peaks the GEMMs reach (default 1)\n"
    "  --eff-fp32 F     fraction of the fp32/fp64 peaks the kernels reach (default 1)\n"
    "  --eff-bw F       fraction of the DRAM bandwidth the launches reach (default 1)\n"
    "  --launch-us U    microseconds per launch (default 3)\n"
    "  --sync-us U      microseconds per host synchronization (default 10)\n"
    "  --execute        emulated build only (bench_step_emu): also run the kernels on the\n"
    "                   emulator (small configs: the real shapes would take hours)\n";

typedef struct {
    const char *config;
    const qt_step_gpu *gpu;
    qt_step_model model;
    int predict_only, execute, steps, warmup, top, json;
} step_opts;

#ifdef QT_HAVE_CUDA
// The report and the run exist where a CUDA backend is linked.

static const char *const kind_names[QT_LAUNCH_KINDS] = {"kernel", "gemm", "memset", "h2d",
                                                        "d2h",    "d2d",  "sync"};
static const char *const unit_names[QT_MATH_UNITS] = {"none", "fp32", "fp64", "tensor16", "int8"};

static void tally_sum(qt_step_tally *a, const qt_step_tally *b) {
    a->launches += b->launches;
    a->kernels += b->kernels;
    a->gemms += b->gemms;
    a->memsets += b->memsets;
    a->copies += b->copies;
    a->syncs += b->syncs;
    a->bytes += b->bytes;
    a->flops += b->flops;
    a->gemm_flops += b->gemm_flops;
    a->seconds += b->seconds;
    a->s_compute += b->s_compute;
    a->s_memory += b->s_memory;
    a->s_launch += b->s_launch;
    a->s_sync += b->s_sync;
}

static void tally_scale(qt_step_tally *a, double s) {
    double *f[] = {&a->launches,  &a->kernels,  &a->gemms,    &a->memsets,    &a->copies,
                   &a->syncs,     &a->bytes,    &a->flops,    &a->gemm_flops, &a->seconds,
                   &a->s_compute, &a->s_memory, &a->s_launch, &a->s_sync};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        *f[i] *= s;
}

static void print_tally_row(FILE *out, const char *name, const qt_step_tally *t) {
    fprintf(out, "%-24s %9.0f %8.0f %6.0f %8.0f %7.0f %6.0f %9.3f %10.1f %12.3f\n", name,
            t->launches, t->kernels, t->gemms, t->memsets, t->copies, t->syncs, t->bytes * 1e-9,
            t->flops * 1e-9, t->seconds * 1e3);
}

static void print_tally_json(FILE *out, const char *name, const qt_step_tally *t) {
    fprintf(out,
            "\"%s\":{\"launches\":%.0f,\"kernels\":%.0f,\"gemms\":%.0f,\"memsets\":%.0f,"
            "\"copies\":%.0f,\"syncs\":%.0f,\"bytes\":%.6g,\"flops\":%.6g,\"predicted_ms\":%.6g,"
            "\"compute_ms\":%.6g,\"memory_ms\":%.6g,\"launch_ms\":%.6g,\"sync_ms\":%.6g}",
            name, t->launches, t->kernels, t->gemms, t->memsets, t->copies, t->syncs, t->bytes,
            t->flops, t->seconds * 1e3, t->s_compute * 1e3, t->s_memory * 1e3, t->s_launch * 1e3,
            t->s_sync * 1e3);
}

// The report of trace t for the GPU of o, measured on `device` when t was timed.
static qt_status report(FILE *out, const step_opts *o, const qt_config *cfg, const char *device,
                        const qt_step_trace *t) {
    const qt_step_gpu *g = o->gpu;
    const qt_step_model *m = &o->model;
    qt_step_tally micro, opt, tail, step;
    qt_step_tally_range(g, m, t->r + t->micro_begin, t->micro_end - t->micro_begin, &micro);
    qt_step_tally_range(g, m, t->r, t->micro_begin, &opt);
    qt_step_tally_range(g, m, t->r + t->micro_end, t->n - t->micro_end, &tail);
    tally_sum(&opt, &tail);
    step = micro;
    tally_sum(&step, &opt);
    qt_step_tally per_micro = micro;
    tally_scale(&per_micro, 1.0 / t->micro_steps);
    // The storage type the CUDA backend trains in (auto: fp16), whose peak MFU is taken against.
    const qt_dtype dt = qt_config_precision_dtype(cfg->precision, QT_DTYPE_F16);
    const double peak = g->peak_tflops[dt == QT_DTYPE_F32 ? QT_MATH_FP32 : QT_MATH_TENSOR16];
    const double tok_s = t->tokens / step.seconds;
    const double mfu = t->flops_per_token * tok_s / (peak * 1e12);
    qt_step_hot *hot = NULL;
    size_t n_hot = 0;
    QT_TRY(qt_step_hot_list(g, m, t->r, t->n, &hot, &n_hot));
    const char *prec = qt_dtype_name(dt);
    if (o->json) {
        fprintf(out,
                "{\"type\":\"summary\",\"config\":\"%s\",\"precision\":\"%s\",\"B\":%d,\"T\":%d,"
                "\"grad_accum\":%d,\"tokens\":%.0f,\"params\":%.0f,\"flops_per_token\":%.6g,"
                "\"device\":\"%s\",\"gpu\":\"%s\",\"eff_tensor\":%g,\"eff_fp32\":%g,"
                "\"eff_bw\":%g,\"launch_us\":%g,\"sync_us\":%g,",
                o->config ? o->config : "(defaults)", prec, cfg->batch_size, cfg->seq_len,
                cfg->grad_accum, t->tokens, t->params, t->flops_per_token, device, g->name,
                m->eff[QT_MATH_TENSOR16], m->eff[QT_MATH_FP32], m->eff_bw, m->launch_us,
                m->sync_us);
        print_tally_json(out, "micro_step", &per_micro);
        fputc(',', out);
        print_tally_json(out, "optimizer_step", &opt);
        fputc(',', out);
        print_tally_json(out, "step", &step);
        fprintf(out,
                ",\"predicted_ms\":%.6g,\"predicted_tokens_per_s\":%.6g,\"predicted_mfu\":%.6g",
                step.seconds * 1e3, tok_s, mfu);
        if (t->timed_steps)
            fprintf(out, ",\"measured_ms\":%.6g,\"wall_ms\":%.6g,\"measured_mfu\":%.6g",
                    t->measured_ms, t->wall_ms,
                    t->flops_per_token * t->tokens / (t->measured_ms * 1e-3) / (peak * 1e12));
        fputs("}\n", out);
        for (size_t i = 0; i < n_hot; i++) {
            const qt_launch *l = &hot[i].r->l;
            fprintf(out,
                    "{\"type\":\"kernel\",\"op\":\"%s\",\"kernel\":\"%s\",\"shape\":\"%s\","
                    "\"kind\":\"%s\",\"unit\":\"%s\",\"calls\":%.0f,\"bytes\":%.6g,"
                    "\"flops\":%.6g,\"predicted_ms\":%.6g,\"bound\":\"%s\"}\n",
                    hot[i].r->op, l->name, hot[i].r->shape, kind_names[l->kind],
                    unit_names[l->unit], hot[i].calls, l->bytes / l->count, l->flops / l->count,
                    hot[i].seconds * 1e3, qt_step_launch_bound(g, m, l));
        }
        free(hot);
        return QT_OK;
    }
    fprintf(out, "qtrain bench step: %s, %s, B %d x T %d x grad_accum %d = %.0f tokens per step\n",
            o->config ? o->config : "the default config", prec, cfg->batch_size, cfg->seq_len,
            cfg->grad_accum, t->tokens);
    fprintf(out,
            "model: %.0f parameters (N), %d layers, d_model %d, %d heads, d_ff %d, vocabulary %d; "
            "FLOPs per token 6 N + 6 L C T = %.4g (llm.c)\n",
            t->params, cfg->n_layer, cfg->d_model, cfg->n_head, cfg->d_ff, cfg->vocab_size,
            t->flops_per_token);
    fprintf(out, "backend: %s\n", device);
    fprintf(out, "predicted for %s, %s; datasheet: %s\n", g->name, g->desc, g->source);
    fprintf(out,
            "constants: peaks fp16/bf16 tensor %g TFLOP/s x eff %g, fp32 %g x %g, fp64 %g x %g, "
            "int8 %g TOPS x %g; HBM %g GB/s x %g; PCIe %g GB/s each way; %g us per launch, %g us "
            "per host sync\n",
            g->peak_tflops[QT_MATH_TENSOR16], m->eff[QT_MATH_TENSOR16],
            g->peak_tflops[QT_MATH_FP32], m->eff[QT_MATH_FP32], g->peak_tflops[QT_MATH_FP64],
            m->eff[QT_MATH_FP64], g->peak_tflops[QT_MATH_INT8], m->eff[QT_MATH_INT8], g->hbm_gbs,
            m->eff_bw, g->pcie_gbs, m->launch_us, m->sync_us);
    fprintf(out, "per launch: count x (max(bytes / bandwidth, FLOPs / peak) + launch); bytes are "
                 "compulsory DRAM traffic, no overlap between launches\n\n");
    fprintf(out, "%-24s %9s %8s %6s %8s %7s %6s %9s %10s %12s\n", "", "launches", "kernels",
            "GEMMs", "memsets", "copies", "syncs", "GB", "GFLOP", "predicted ms");
    print_tally_row(out, "per micro-step", &per_micro);
    print_tally_row(out, "optimizer step", &opt);
    char name[64];
    snprintf(name, sizeof name, "step (%d micro-step%s)", t->micro_steps,
             t->micro_steps == 1 ? "" : "s");
    print_tally_row(out, name, &step);
    fprintf(out,
            "\npredicted step: %.3f ms = compute %.3f (GEMMs %.1f of %.1f GFLOP) + memory %.3f + "
            "launches %.3f + host syncs %.3f\n",
            step.seconds * 1e3, step.s_compute * 1e3, step.gemm_flops * 1e-9, step.flops * 1e-9,
            step.s_memory * 1e3, step.s_launch * 1e3, step.s_sync * 1e3);
    fprintf(out, "predicted: %.0f tokens/s, MFU %.1f%% of %g TFLOP/s\n", tok_s, 100 * mfu, peak);
    if (t->timed_steps) {
        const double mtok = t->tokens / (t->measured_ms * 1e-3);
        fprintf(out,
                "measured: %.3f ms per step (CUDA events around %d steps after %d warm-up; host "
                "clock %.3f ms), %.0f tokens/s, MFU %.1f%% of %g TFLOP/s; predicted / measured "
                "%.3f\n",
                t->measured_ms, t->timed_steps, o->warmup, t->wall_ms, mtok,
                100 * t->flops_per_token * mtok / (peak * 1e12), peak,
                step.seconds * 1e3 / t->measured_ms);
    }
    const size_t top = (size_t)o->top < n_hot ? (size_t)o->top : n_hot;
    fprintf(out, "\nthe %zu most expensive kernels (predicted, per step):\n", top);
    fprintf(out, "%3s %-18s %-28s %-30s %6s %9s %10s %9s %9s %6s  %s\n", "#", "op", "kernel",
            "shape", "calls", "MB/call", "GFLOP/call", "us/call", "ms/step", "share", "bound");
    for (size_t i = 0; i < top; i++) {
        const qt_launch *l = &hot[i].r->l;
        fprintf(out, "%3zu %-18s %-28s %-30s %6.0f %9.3f %10.3f %9.2f %9.3f %5.1f%%  %s\n", i + 1,
                hot[i].r->op, l->name, hot[i].r->shape, hot[i].calls, l->bytes / l->count * 1e-6,
                l->flops / l->count * 1e-9, hot[i].seconds / hot[i].calls * 1e6,
                hot[i].seconds * 1e3, 100 * hot[i].seconds / step.seconds,
                qt_step_launch_bound(g, m, l));
    }
    free(hot);
    return QT_OK;
}

static qt_status run_and_report(const step_opts *o, const qt_config *cfg) {
    const int emulated = qt_backend_cuda_emulated();
    if (o->execute && !emulated)
        return qt_error(QT_ERR_ARG, "--execute runs the kernels on the emulator: it is for the "
                                    "emulated build (bench_step_emu); here a GPU runs them");
    const int have_device = !emulated && qt_cuda_device_count() > 0;
    const int dry = o->predict_only || (emulated ? !o->execute : !have_device);
    const qt_dtype dt = qt_config_precision_dtype(cfg->precision, QT_DTYPE_F16);
    qt_backend be;
    memset(&be, 0, sizeof be);
    QT_TRY(dry ? qt_backend_cuda_init_dry(&be, dt) : qt_backend_cuda_init(&be, 0, dt));
    char device[256], name[120];
    qt_status st = qt_backend_cuda_device_name(&be, name, sizeof name);
    if (st == QT_OK)
        snprintf(device, sizeof device, "%s%s", name,
                 dry        ? (!emulated && !have_device && !o->predict_only
                                   ? ": no CUDA device here, the step's launches recorded, none run"
                                   : ": the step's launches recorded, none run")
                 : emulated ? ": the step run on the emulator (no timing)"
                            : ": the step run and timed");
    qt_step_trace t;
    if (st == QT_OK)
        st = qt_step_run(&be, cfg,
                         dry        ? 1
                         : emulated ? 1
                                    : o->warmup,
                         dry || emulated ? 0 : o->steps, &t);
    if (st == QT_OK) st = report(stdout, o, cfg, device, &t);
    qt_backend_free(&be);
    return st;
}
#endif

int qt_cmd_bench_step(int argc, char **argv) {
    const char *config = NULL, *gpu = "a100";
    const char *sets[256];
    qt_args_list set_list = {sets, 0, 256};
    step_opts o;
    memset(&o, 0, sizeof o);
    qt_step_model_default(&o.model);
    o.steps = 10;
    o.warmup = 3;
    o.top = 10;
    double eff_tensor = 1.0, eff_fp32 = 1.0;
    int help = 0;
    const qt_arg flags[] = {
        {"config", QT_ARG_STRING, &config, 0, 0},
        {"set", QT_ARG_LIST, &set_list, 0, 0},
        {"gpu", QT_ARG_STRING, &gpu, 0, 0},
        {"predict-only", QT_ARG_SWITCH, &o.predict_only, 0, 0},
        {"execute", QT_ARG_SWITCH, &o.execute, 0, 0},
        {"steps", QT_ARG_INT, &o.steps, 1, 100000},
        {"warmup", QT_ARG_INT, &o.warmup, 1, 100000},
        {"top", QT_ARG_INT, &o.top, 0, 100000},
        {"json", QT_ARG_SWITCH, &o.json, 0, 0},
        {"eff-tensor", QT_ARG_DOUBLE, &eff_tensor, 1e-3, 1},
        {"eff-fp32", QT_ARG_DOUBLE, &eff_fp32, 1e-3, 1},
        {"eff-bw", QT_ARG_DOUBLE, &o.model.eff_bw, 1e-3, 1},
        {"launch-us", QT_ARG_DOUBLE, &o.model.launch_us, 0, 1e6},
        {"sync-us", QT_ARG_DOUBLE, &o.model.sync_us, 0, 1e6},
    };
    if (qt_args_parse(argc, argv, "bench step", usage, flags, QT_ARGS_COUNT(flags), &help) != QT_OK)
        return qt_cli_fail();
    if (help) return 0;
    o.config = config;
    o.gpu = qt_step_gpu_find(gpu);
    if (!o.gpu) {
        char names[160] = "";
        for (int i = 0; i < qt_step_n_gpus; i++) {
            strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
            strncat(names, qt_step_gpus[i].name, sizeof names - strlen(names) - 1);
        }
        qt_error(QT_ERR_ARG, "--gpu %s is not a GPU of the cost model; use one of %s", gpu, names);
        return qt_cli_fail();
    }
    o.model.eff[QT_MATH_TENSOR16] = o.model.eff[QT_MATH_INT8] = eff_tensor;
    o.model.eff[QT_MATH_FP32] = o.model.eff[QT_MATH_FP64] = eff_fp32;
    qt_config cfg;
    qt_config_defaults(&cfg);
    if (config && qt_config_load(&cfg, config) != QT_OK) return qt_cli_fail();
    for (int s = 0; s < set_list.n; s++)
        if (qt_config_set(&cfg, sets[s], "--set") != QT_OK) return qt_cli_fail();
    if (qt_config_validate(&cfg) != QT_OK) return qt_cli_fail();
#ifdef QT_HAVE_CUDA
    if (run_and_report(&o, &cfg) != QT_OK) return qt_cli_fail();
    return 0;
#else
    qt_error(QT_ERR_UNSUPPORTED,
             "bench step: this program was built without the CUDA backend; build where the CUDA "
             "toolkit is (its record-only mode needs no GPU), or run build/bench_step_emu");
    return qt_cli_fail();
#endif
}

// cmd_eval.c: `qtrain eval`: validation loss, perplexity and outlier metrics of a checkpoint;
// with --quant, the post-training quantization evaluation of qtrain/ptq.h (PAPERS.md section 5):
// full-precision, fake-quantized and INT8-GEMM perplexity side by side.
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "qtrain/data.h"
#include "qtrain/evaluate.h"
#include "qtrain/ptq.h"
#include "qtrain/trainer.h"

static const char usage[] =
    "usage: qtrain eval --ckpt FILE [--data DIR] [--batches N] [--json] [--device D]\n"
    "                   [--allow-tokenizer-mismatch]\n"
    "                   [--quant w8a8|w4a8|w6a6 [--calib-batches N]\n"
    "                    [--act-range minmax|percentile] [--weight-range absmax|mse]]\n"
    "\n"
    "  --ckpt FILE    checkpoint written by 'qtrain train' (its config describes the model)\n"
    "  --data DIR     directory with val_*.bin shards (default: the run's data.dir)\n"
    "  --batches N    validation batches of the run's batch size and seq_len (default: the\n"
    "                 run's train.eval_batches)\n"
    "  --json         print the metrics as one JSON object instead of a table\n"
    "  --allow-tokenizer-mismatch\n"
    "                 evaluate even when the shards were made by another tokenizer than the\n"
    "                 checkpoint records (refused by default: the loss would mean nothing)\n"
    "  --device D     auto (default), cpu or cuda\n"
    "\n"
    "post-training quantization (PAPERS.md section 5): weights symmetric per tensor, activations\n"
    "asymmetric per tensor at every site with ranges calibrated on training batches, the LM head\n"
    "in full precision; prints the full-precision, fake-quantized and INT8-GEMM perplexities.\n"
    "  --quant Q            w8a8, w4a8 (4-bit weights) or w6a6\n"
    "  --calib-batches N    training batches (train_*.bin in the data dir) to calibrate the\n"
    "                       activation ranges on (default 16)\n"
    "  --act-range R        minmax: running min-max, momentum 0.9 (default); percentile:\n"
    "                       per-batch 99.999th percentile\n"
    "  --weight-range R     absmax (default) or mse: the best of 100 clipping ranges\n";

// Progress of the PTQ phases on stderr: a line per phase; calibration batches rewrite one line
// on a terminal.
static void ptq_progress(void *user, const char *phase, int done, int total) {
    (void)user;
    if (strcmp(phase, "calibrate") == 0) {
        if (isatty(fileno(stderr))) {
            fprintf(stderr, "\rqtrain: calibrating activation ranges: batch %d/%d", done, total);
            if (done == total) fputc('\n', stderr);
        } else if (done == 0 || done == total) {
            fprintf(stderr, "qtrain: calibrating activation ranges: batch %d/%d\n", done, total);
        }
        return;
    }
    const char *what = strcmp(phase, "fp") == 0     ? "full precision"
                       : strcmp(phase, "fake") == 0 ? "fake-quantized"
                                                    : "through the INT8 GEMM";
    fprintf(stderr, "qtrain: evaluating %s (%d batches)\n", what, total);
}

static void print_ptq(const char *ckpt, const qt_config *cfg, const char *quant,
                      const qt_ptq_config *c, const qt_ptq_result *r, int json) {
    char name[8];
    snprintf(name, sizeof name, "W%dA%d", c->weight_bits, c->act_bits);
    const char *wr = qt_name(&qt_quant_range_names, c->weight_range);
    const char *ar = qt_name(&qt_quant_range_names, c->act_range);
    if (json) {
        printf("{\"type\":\"ptq\",\"quant\":\"%s\",\"weight_bits\":%d,\"act_bits\":%d,"
               "\"weight_range\":\"%s\",\"act_range\":\"%s\",\"calib_batches\":%d,"
               "\"eval_batches\":%d,\"tokens\":%lld,\"head_tied\":%d,"
               "\"fp_loss\":%.6g,\"fp_ppl\":%.6g,\"fake_loss\":%.6g,\"fake_ppl\":%.6g,"
               "\"int8_loss\":%.6g,\"int8_ppl\":%.6g,\"int8_vs_fake\":%.6g,"
               "\"int8_gemm\":\"%s\"}\n",
               quant, c->weight_bits, c->act_bits, wr, ar, c->calib_batches, c->eval_batches,
               r->tokens, r->head_tied, r->fp_loss, r->fp_ppl, r->fake_loss, r->fake_ppl,
               r->int8_loss, r->int8_ppl, r->int8_vs_fake, r->int8_gemm ? r->int8_gemm : "");
        return;
    }
    printf("checkpoint %s | %d validation batches of %d x %d (%lld tokens)\n", ckpt,
           c->eval_batches, cfg->batch_size, cfg->seq_len, r->tokens);
    printf("%s post-training quantization (PAPERS.md section 5); the LM head in full precision\n"
           "  weights      %d-bit symmetric per tensor, %s range\n"
           "  activations  %d-bit asymmetric per tensor, %s over %d training batches\n",
           name, c->weight_bits, wr, c->act_bits,
           c->act_range == QT_QUANT_RANGE_PERCENTILE ? "99.999th-percentile ranges averaged"
                                                     : "running min-max (momentum 0.9)",
           c->calib_batches);
    if (r->head_tied)
        printf("  tied embeddings: the token embedding is the LM head and stays in full "
               "precision;\n  the embedding output is quantized instead\n");
    printf("%-28s %10s %10s\n", "model", "val_loss", "val_ppl");
    printf("%-28s %10.4f %10.4f\n", "full precision", r->fp_loss, r->fp_ppl);
    char label[64];
    snprintf(label, sizeof label, "%s fake-quantized", name);
    printf("%-28s %10.4f %10.4f\n", label, r->fake_loss, r->fake_ppl);
    snprintf(label, sizeof label, "%s INT8 GEMM (%s)", name, r->int8_gemm ? r->int8_gemm : "-");
    printf("%-28s %10.4f %10.4f\n", label, r->int8_loss, r->int8_ppl);
    printf("INT8 GEMM vs fake-quantized: relative ppl difference %.3g%% (%lld linear forwards "
           "through the INT8 GEMM)\n",
           100.0 * r->int8_vs_fake, r->int8_linears);
}

// --<flag> <value>: one of the `allowed` range methods, by name (qtrain/names.h).
static qt_status range_flag(const char *flag, const char *value, unsigned allowed,
                            qt_quant_range *out) {
    int x = qt_name_value(&qt_quant_range_names, value, strlen(value), allowed);
    if (x >= 0) {
        *out = (qt_quant_range)x;
        return QT_OK;
    }
    char names[64];
    qt_names_join(&qt_quant_range_names, allowed, " or ", names, sizeof names);
    return qt_error(QT_ERR_ARG, "--%s %s is not a range method; use %s", flag, value, names);
}

int qt_cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *device = "auto";
    const char *quant = NULL, *act_range = NULL, *weight_range = NULL;
    int batches = 0, json = 0, calib_batches = 0, help = 0, allow_mismatch = 0;
    const qt_arg flags[] = {
        {"json", QT_ARG_SWITCH, &json, 0, 0},
        {"allow-tokenizer-mismatch", QT_ARG_SWITCH, &allow_mismatch, 0, 0},
        {"ckpt", QT_ARG_STRING, &ckpt, 0, 0},
        {"data", QT_ARG_STRING, &data, 0, 0},
        {"device", QT_ARG_STRING, &device, 0, 0},
        {"batches", QT_ARG_INT, &batches, 1, 1000000},
        {"quant", QT_ARG_STRING, &quant, 0, 0},
        {"calib-batches", QT_ARG_INT, &calib_batches, 1, 1000000},
        {"act-range", QT_ARG_STRING, &act_range, 0, 0},
        {"weight-range", QT_ARG_STRING, &weight_range, 0, 0},
    };
    if (qt_args_parse(argc, argv, "eval", usage, flags, QT_ARGS_COUNT(flags), &help) != QT_OK)
        return qt_cli_fail();
    if (help) return 0;
    if (!ckpt) {
        qt_error(QT_ERR_ARG, "--ckpt is required: the checkpoint to evaluate (e.g. "
                 "runs/default/ckpt.bin)");
        return qt_cli_fail();
    }
    qt_ptq_config pc = qt_ptq_config_default();
    if (quant) {
        if (qt_ptq_config_preset(&pc, quant) != QT_OK) {
            qt_error(QT_ERR_ARG, "--quant %s is not a quantization; use w8a8, w4a8 or w6a6",
                     quant);
            return qt_cli_fail();
        }
        if (calib_batches) pc.calib_batches = calib_batches;
        if ((act_range &&
             range_flag("act-range", act_range, QT_PTQ_ACT_RANGES, &pc.act_range) != QT_OK) ||
            (weight_range && range_flag("weight-range", weight_range, QT_PTQ_WEIGHT_RANGES,
                                        &pc.weight_range) != QT_OK))
            return qt_cli_fail();
    } else if (calib_batches || act_range || weight_range) {
        qt_error(QT_ERR_ARG, "--%s only applies to post-training quantization; add --quant "
                 "w8a8 (or w4a8, w6a6)",
                 calib_batches ? "calib-batches" : act_range ? "act-range" : "weight-range");
        return qt_cli_fail();
    }
    qt_config cfg;
    qt_tokenizer_id trained;
    if (qt_train_state_read_info(ckpt, &cfg, &trained) != QT_OK) return qt_cli_fail();
    // Checkpoints hold fp32 weights: evaluate in the device's natural precision, whatever the
    // run trained in; post-training quantization in fp32, so that fake-quantized tensors hold
    // exact grid values on every device.
    cfg.precision = quant ? QT_PRECISION_FP32 : QT_PRECISION_AUTO;
    if (data) snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", data);
    if (batches == 0) batches = cfg.eval_batches;
    // Shards of another tokenizer give a loss that means nothing: refuse them.
    qt_tokenizer_id used;
    char what[700], note[2048];
    snprintf(what, sizeof what, "the shards in %s", cfg.data_dir);
    if (qt_data_tokenizer_id(cfg.data_dir, &used) != QT_OK ||
        qt_tokenizer_id_check(trained, ckpt, used, what,
                              "evaluate on shards made with the run's tokenizer (--data DIR)",
                              allow_mismatch, note, sizeof note) != QT_OK)
        return qt_cli_fail();
    if (note[0]) fprintf(stderr, "%s\n", note);
    qt_backend be;
    qt_model model;
    qt_dataloader *val = NULL;
    qt_eval_result r;
    if (qt_cli_open_backend(device, &cfg, 1, &be) != QT_OK) return qt_cli_fail();
    if (qt_model_init(&model, &cfg, &be, cfg.batch_size, cfg.seq_len) != QT_OK) {
        qt_backend_free(&be);
        return qt_cli_fail();
    }
    int rc = 0;
    if (quant) {
        qt_dataloader *calib = NULL;
        qt_ptq_result pr;
        pc.eval_batches = batches;
        pc.progress = ptq_progress;
        if (qt_train_state_load(ckpt, &model, NULL, NULL) != QT_OK ||
            qt_dataloader_open_for(&calib, &cfg, "train", 0) != QT_OK ||
            qt_dataloader_open_for(&val, &cfg, "val", 0) != QT_OK ||
            qt_ptq_evaluate(&model, calib, val, &pc, &pr) != QT_OK)
            rc = qt_cli_fail();
        else
            print_ptq(ckpt, &cfg, quant, &pc, &pr, json);
        if (calib) qt_dataloader_free(calib);
    } else if (qt_train_state_load(ckpt, &model, NULL, NULL) != QT_OK ||
               qt_dataloader_open_for(&val, &cfg, "val", 0) != QT_OK ||
               qt_evaluate(&model, val, batches, &r) != QT_OK) {
        rc = qt_cli_fail();
    } else {
        if (json) {
            qt_eval_write_json(&r, -1, stdout);
            fputc('\n', stdout);
        } else {
            printf("checkpoint %s | %d validation batches of %d x %d\n", ckpt, batches,
                   cfg.batch_size, cfg.seq_len);
            qt_eval_print(&r, stdout);
        }
        qt_eval_result_free(&r);
    }
    if (val) qt_dataloader_free(val);
    qt_model_free(&model);
    qt_backend_free(&be);
    return rc;
}

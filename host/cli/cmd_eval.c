// cmd_eval.c: `qtrain eval`: validation loss, perplexity and outlier metrics of a checkpoint.
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "qtrain/data.h"
#include "qtrain/evaluate.h"
#include "qtrain/trainer.h"

static const char usage[] =
    "usage: qtrain eval --ckpt FILE [--data DIR] [--batches N] [--json] [--device D]\n"
    "\n"
    "  --ckpt FILE    checkpoint written by 'qtrain train' (its config describes the model)\n"
    "  --data DIR     directory with val_*.bin shards (default: the run's data.dir)\n"
    "  --batches N    validation batches of the run's batch size and seq_len (default: the\n"
    "                 run's train.eval_batches)\n"
    "  --json         print the metrics as one JSON object instead of a table\n"
    "  --device D     auto (default), cpu or cuda\n";

int qt_cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *device = "auto";
    int batches = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (qt_args_switch(argv, i, "help")) {
            fputs(usage, stdout);
            return 0;
        } else if (qt_args_switch(argv, i, "json")) {
            json = 1;
        } else if (qt_args_flag(argc, argv, &i, "ckpt", &v)) {
            if (qt_args_need_value("ckpt", v) != QT_OK) return qt_cli_fail();
            ckpt = v;
        } else if (qt_args_flag(argc, argv, &i, "data", &v)) {
            if (qt_args_need_value("data", v) != QT_OK) return qt_cli_fail();
            data = v;
        } else if (qt_args_flag(argc, argv, &i, "device", &v)) {
            if (qt_args_need_value("device", v) != QT_OK) return qt_cli_fail();
            device = v;
        } else if (qt_args_flag(argc, argv, &i, "batches", &v)) {
            if (qt_args_int("batches", v, 1, 1000000, &batches) != QT_OK) return qt_cli_fail();
        } else {
            qt_args_unknown("eval", argv[i]);
            return qt_cli_fail();
        }
    }
    if (!ckpt) {
        qt_error(QT_ERR_ARG, "--ckpt is required: the checkpoint to evaluate (e.g. "
                 "runs/default/ckpt.bin)");
        return qt_cli_fail();
    }
    qt_config cfg;
    if (qt_train_state_read_config(ckpt, &cfg) != QT_OK) return qt_cli_fail();
    // Checkpoints hold fp32 weights: evaluate in the device's natural precision, whatever the
    // run trained in.
    cfg.precision = QT_PRECISION_AUTO;
    if (data) snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", data);
    if (batches == 0) batches = cfg.eval_batches;
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
    if (qt_train_state_load(ckpt, &model, NULL, NULL) != QT_OK ||
        qt_dataloader_open(&val, cfg.data_dir, "val", cfg.batch_size, cfg.seq_len,
                           cfg.vocab_size, cfg.seed, 0) != QT_OK ||
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

// cmd_train.c: `qtrain train`: resolve the config (defaults < --config file < --set), then run
// the trainer; or continue a run from its checkpoint with --resume.
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "qtrain/trainer.h"

static const char usage[] =
    "usage: qtrain train [--config FILE] [--set key=value]... [--out DIR]\n"
    "                    [--resume CKPT [--allow-tokenizer-mismatch]] [--stop-at STEP]\n"
    "                    [--device auto|cpu|cuda] [--quiet]\n"
    "\n"
    "  --config FILE     config file of `key = value` lines (see configs/); default: the\n"
    "                    built-in defaults (configs/default.conf lists them)\n"
    "  --set key=value   override one key, after the file (repeatable)\n"
    "  --out DIR         where config.conf, metrics.jsonl and ckpt.bin go (default: runs/default)\n"
    "  --resume CKPT     continue the run saved in CKPT; its stored config is used, --set may\n"
    "                    still override keys (e.g. train.max_steps)\n"
    "  --allow-tokenizer-mismatch\n"
    "                    resume even when data.dir's shards were made by another tokenizer\n"
    "                    than the checkpoint records (refused by default)\n"
    "  --stop-at STEP    stop (and checkpoint) after STEP optimizer steps, keeping the schedule\n"
    "                    of train.max_steps\n"
    "  --device D        auto (default: CUDA if a device is usable, else the CPU), cpu, cuda\n"
    "  --quiet           no progress lines\n"
    "\n"
    "Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes the checkpoint and exits\n"
    "with status 130 (SIGINT) or 143 (SIGTERM); a finished run exits 0.\n";

int qt_cmd_train(int argc, char **argv) {
    const char *config_path = NULL, *out_dir = "runs/default", *resume = NULL, *device = "auto";
    const char *sets[256];
    qt_args_list set_list = {sets, 0, 256};
    int stop_at = 0, quiet = 0, help = 0, allow_mismatch = 0;
    const qt_arg flags[] = {
        {"quiet", QT_ARG_SWITCH, &quiet, 0, 0},
        {"allow-tokenizer-mismatch", QT_ARG_SWITCH, &allow_mismatch, 0, 0},
        {"config", QT_ARG_STRING, &config_path, 0, 0},
        {"set", QT_ARG_LIST, &set_list, 0, 0},
        {"out", QT_ARG_STRING, &out_dir, 0, 0},
        {"resume", QT_ARG_STRING, &resume, 0, 0},
        {"device", QT_ARG_STRING, &device, 0, 0},
        {"stop-at", QT_ARG_INT, &stop_at, 1, 1000000000},
    };
    if (qt_args_parse(argc, argv, "train", usage, flags, QT_ARGS_COUNT(flags), &help) != QT_OK)
        return qt_cli_fail();
    if (help) return 0;
    if (resume && config_path) {
        qt_error(QT_ERR_ARG, "--resume uses the config stored in %s; drop --config %s (use --set "
                 "to change keys)", resume, config_path);
        return qt_cli_fail();
    }
    qt_config cfg;
    qt_config_defaults(&cfg);
    if (resume && qt_train_state_read_config(resume, &cfg) != QT_OK) return qt_cli_fail();
    if (config_path && qt_config_load(&cfg, config_path) != QT_OK) return qt_cli_fail();
    for (int s = 0; s < set_list.n; s++)
        if (qt_config_set(&cfg, sets[s], "--set") != QT_OK) return qt_cli_fail();
    if (qt_config_validate(&cfg) != QT_OK) return qt_cli_fail();
    qt_backend be;
    if (qt_cli_open_backend(device, &cfg, quiet, &be) != QT_OK) return qt_cli_fail();
    int stop_signal = 0;
    qt_train_opts opts = {.backend = &be,
                          .out_dir = out_dir,
                          .resume_from = resume,
                          .stop_at_step = stop_at,
                          .quiet = quiet,
                          .stop_signal = &stop_signal,
                          .allow_tokenizer_mismatch = allow_mismatch};
    qt_status st = qt_train(&cfg, &opts);
    qt_backend_free(&be);
    if (st != QT_OK) return qt_cli_fail();
    // A run a signal stopped (its checkpoint written) exits as the shell reports that signal.
    return stop_signal ? 128 + stop_signal : 0;
}

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
    "                    [--resume CKPT] [--stop-at STEP] [--device auto|cpu|cuda] [--quiet]\n"
    "\n"
    "  --config FILE     config file of `key = value` lines (see configs/); default: the\n"
    "                    built-in defaults (configs/default.conf lists them)\n"
    "  --set key=value   override one key, after the file (repeatable)\n"
    "  --out DIR         where config.conf, metrics.jsonl and ckpt.bin go (default: runs/default)\n"
    "  --resume CKPT     continue the run saved in CKPT; its stored config is used, --set may\n"
    "                    still override keys (e.g. train.max_steps)\n"
    "  --stop-at STEP    stop (and checkpoint) after STEP optimizer steps, keeping the schedule\n"
    "                    of train.max_steps\n"
    "  --device D        auto (default: CUDA if a device is usable, else the CPU), cpu, cuda\n"
    "  --quiet           no progress lines\n"
    "\n"
    "Ctrl-C finishes the current step, writes the checkpoint and exits.\n";

int qt_cmd_train(int argc, char **argv) {
    const char *config_path = NULL, *out_dir = "runs/default", *resume = NULL, *device = "auto";
    const char *sets[256];
    int n_sets = 0, stop_at = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (qt_args_switch(argv, i, "help")) {
            fputs(usage, stdout);
            return 0;
        } else if (qt_args_switch(argv, i, "quiet")) {
            quiet = 1;
        } else if (qt_args_flag(argc, argv, &i, "config", &v)) {
            if (qt_args_need_value("config", v) != QT_OK) return qt_cli_fail();
            config_path = v;
        } else if (qt_args_flag(argc, argv, &i, "set", &v)) {
            if (qt_args_need_value("set", v) != QT_OK) return qt_cli_fail();
            if (n_sets == (int)(sizeof sets / sizeof sets[0])) {
                qt_error(QT_ERR_ARG, "too many --set flags (at most 256)");
                return qt_cli_fail();
            }
            sets[n_sets++] = v;
        } else if (qt_args_flag(argc, argv, &i, "out", &v)) {
            if (qt_args_need_value("out", v) != QT_OK) return qt_cli_fail();
            out_dir = v;
        } else if (qt_args_flag(argc, argv, &i, "resume", &v)) {
            if (qt_args_need_value("resume", v) != QT_OK) return qt_cli_fail();
            resume = v;
        } else if (qt_args_flag(argc, argv, &i, "device", &v)) {
            if (qt_args_need_value("device", v) != QT_OK) return qt_cli_fail();
            device = v;
        } else if (qt_args_flag(argc, argv, &i, "stop-at", &v)) {
            if (qt_args_int("stop-at", v, 1, 1000000000, &stop_at) != QT_OK) return qt_cli_fail();
        } else {
            qt_args_unknown("train", argv[i]);
            return qt_cli_fail();
        }
    }
    if (resume && config_path) {
        qt_error(QT_ERR_ARG, "--resume uses the config stored in %s; drop --config %s (use --set "
                 "to change keys)", resume, config_path);
        return qt_cli_fail();
    }
    qt_config cfg;
    qt_config_defaults(&cfg);
    if (resume && qt_train_state_read_config(resume, &cfg) != QT_OK) return qt_cli_fail();
    if (config_path && qt_config_load(&cfg, config_path) != QT_OK) return qt_cli_fail();
    for (int s = 0; s < n_sets; s++)
        if (qt_config_set(&cfg, sets[s], "--set") != QT_OK) return qt_cli_fail();
    if (qt_config_validate(&cfg) != QT_OK) return qt_cli_fail();
    qt_backend be;
    if (qt_cli_open_backend(device, &cfg, quiet, &be) != QT_OK) return qt_cli_fail();
    qt_train_opts opts = {.backend = &be, .out_dir = out_dir, .resume_from = resume,
                          .stop_at_step = stop_at, .quiet = quiet};
    qt_status st = qt_train(&cfg, &opts);
    qt_backend_free(&be);
    return st == QT_OK ? 0 : qt_cli_fail();
}

// cmd_study.c: `qtrain study`: train and evaluate a list of attention variants on the same
// data, seeds and budget, and report them side by side (qtrain/study.h, README "Studies").
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "qtrain/study.h"

static const char usage_head[] =
    "usage: qtrain study --variants V1,V2,... --out DIR [--config FILE] [--set key=value]...\n"
    "                    [--seeds N] [--eval-batches N] [--calib-batches N] [--no-plots]\n"
    "                    [--device auto|cpu|cuda] [--quiet]\n"
    "\n"
    "Trains every variant with every seed on the same data and budget (the config), evaluates\n"
    "each finished run (perplexity, max inf-norm, average kurtosis, per-layer statistics, W8A8\n"
    "post-training quantization fake-quantized and through the INT8 GEMM), and writes into\n"
    "--out: results.md (mean and spread over seeds per variant), metrics.json, and plots/*.png\n"
    "(gnuplot: loss, outlier metrics over training, per-layer inf-norm, a layer's value\n"
    "histogram); runs/<variant>-s<i>/ holds each run.\n"
    "\n"
    "  --variants LIST    comma-separated variant names (below)\n"
    "  --out DIR          the study's directory (required)\n"
    "  --config FILE      the base config (default: the built-in defaults); any model family;\n"
    "                     a preset's name (bert-6l) reads configs/NAME.conf\n"
    "  --set key=value    override a key after the variant (repeatable)\n"
    "  --seeds N          runs per variant, train.seed + 0 .. N-1 (default 1)\n"
    "  --eval-batches N   validation batches per evaluation (default: train.eval_batches)\n"
    "  --calib-batches N  training batches calibrating W8A8's activation ranges (default 16)\n"
    "  --no-plots         write no PNGs (without this, a missing gnuplot is an error)\n"
    "  --device D         auto (default), cpu or cuda\n"
    "  --quiet            no progress lines\n"
    "\n"
    "Run the same command again to resume: finished runs are not retrained, an interrupted run\n"
    "continues from its checkpoint (train.ckpt_every defaults to train.eval_every in a study).\n"
    "Ctrl-C (SIGINT) or SIGTERM stops after the current step or phase with status 130 or 143.\n"
    "\n"
    "variants:\n";

static void print_usage(void) {
    fputs(usage_head, stdout);
    for (int i = 0; i < qt_study_n_variants; i++)
        printf("  %-18s %s\n", qt_study_variants[i].name, qt_study_variants[i].what);
}

// --config NAME, when NAME is no file, has no '/' and no ".conf": the preset configs/NAME.conf
// (so a new model family's preset plugs in by name: --config bert-6l).
static const char *preset_path(const char *path, char *buf, size_t n) {
    if (!path || strchr(path, '/') || access(path, F_OK) == 0) return path;
    size_t len = strlen(path);
    if (len >= 5 && strcmp(path + len - 5, ".conf") == 0) return path;
    snprintf(buf, n, "configs/%s.conf", path);
    return access(buf, F_OK) == 0 ? buf : path;
}

// Splits a comma-separated list in place into items (at most cap); empty items are errors.
static qt_status split_list(char *s, const char **items, int cap, int *n) {
    *n = 0;
    for (char *p = s;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (!*p) return qt_error(QT_ERR_ARG, "--variants has an empty name; write V1,V2,...");
        if (*n == cap) return qt_error(QT_ERR_ARG, "--variants names more than %d variants", cap);
        items[(*n)++] = p;
        if (!comma) return QT_OK;
        p = comma + 1;
    }
}

int qt_cmd_study(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage();
            return 0;
        }
    const char *config_path = NULL, *out_dir = NULL, *variants = NULL, *device = "auto";
    const char *sets[256];
    qt_args_list set_list = {sets, 0, 256};
    int seeds = 1, eval_batches = 0, calib_batches = 16, no_plots = 0, quiet = 0, help = 0;
    const qt_arg flags[] = {
        {"quiet", QT_ARG_SWITCH, &quiet, 0, 0},
        {"no-plots", QT_ARG_SWITCH, &no_plots, 0, 0},
        {"config", QT_ARG_STRING, &config_path, 0, 0},
        {"set", QT_ARG_LIST, &set_list, 0, 0},
        {"out", QT_ARG_STRING, &out_dir, 0, 0},
        {"variants", QT_ARG_STRING, &variants, 0, 0},
        {"device", QT_ARG_STRING, &device, 0, 0},
        {"seeds", QT_ARG_INT, &seeds, 1, 1000},
        {"eval-batches", QT_ARG_INT, &eval_batches, 1, 1000000},
        {"calib-batches", QT_ARG_INT, &calib_batches, 1, 1000000},
    };
    if (qt_args_parse(argc, argv, "study", usage_head, flags, QT_ARGS_COUNT(flags), &help) !=
        QT_OK)
        return qt_cli_fail();
    if (help) return 0;
    char preset[1100];
    config_path = preset_path(config_path, preset, sizeof preset);
    char names[512];
    qt_study_variant_names(names, sizeof names);
    if (!variants) {
        qt_error(QT_ERR_ARG, "--variants is required: a comma-separated list of %s", names);
        return qt_cli_fail();
    }
    if (!out_dir) {
        qt_error(QT_ERR_ARG, "--out is required: the study's directory (e.g. results/study)");
        return qt_cli_fail();
    }
    char *list = strdup(variants);
    const char *items[64];
    int n_items = 0;
    if (!list) {
        qt_error(QT_ERR_OOM, "cannot copy --variants");
        return qt_cli_fail();
    }
    if (split_list(list, items, 64, &n_items) != QT_OK) {
        free(list);
        return qt_cli_fail();
    }
    // The backend follows the base config (train.threads, train.precision); the variants
    // change only attention keys.
    qt_config cfg;
    qt_config_defaults(&cfg);
    int rc = 0;
    if (config_path && qt_config_load(&cfg, config_path) != QT_OK) rc = 1;
    for (int s = 0; rc == 0 && s < set_list.n; s++)
        if (qt_config_set(&cfg, sets[s], "--set") != QT_OK) rc = 1;
    // Names are checked before a backend opens (a CUDA context takes seconds).
    for (int i = 0; rc == 0 && i < n_items; i++)
        if (!qt_study_variant_find(items[i])) {
            qt_error(QT_ERR_ARG, "--variants: '%s' is not a variant; the variants are %s", items[i],
                     names);
            rc = 1;
        }
    if (rc) {
        free(list);
        return qt_cli_fail();
    }
    qt_backend train_be, eval_be;
    int have_eval_be = 0;
    if (qt_cli_open_backend(device, &cfg, quiet, &train_be) != QT_OK) {
        free(list);
        return qt_cli_fail();
    }
    // Evaluation and W8A8 run in fp32 on every device (as `qtrain eval --quant`).
    if (train_be.dtype != QT_DTYPE_F32) {
        qt_config fp32 = cfg;
        fp32.precision = QT_PRECISION_FP32;
        if (qt_cli_open_backend(device, &fp32, 1, &eval_be) != QT_OK) rc = qt_cli_fail();
        have_eval_be = rc == 0;
    }
    int stop_signal = 0;
    if (rc == 0) {
        qt_study_opts o = {.config_path = config_path,
                           .sets = sets,
                           .n_sets = set_list.n,
                           .variants = items,
                           .n_variants = n_items,
                           .seeds = seeds,
                           .out_dir = out_dir,
                           .eval_batches = eval_batches,
                           .calib_batches = calib_batches,
                           .plots = !no_plots,
                           .quiet = quiet,
                           .train_be = &train_be,
                           .eval_be = have_eval_be ? &eval_be : &train_be,
                           .stop_signal = &stop_signal};
        if (qt_study_run(&o) != QT_OK) rc = qt_cli_fail();
    }
    if (have_eval_be) qt_backend_free(&eval_be);
    qt_backend_free(&train_be);
    free(list);
    if (rc) return rc;
    return stop_signal ? 128 + stop_signal : 0;
}

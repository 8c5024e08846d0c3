// main.c: `qtrain <command> [args]`: dispatch to the subcommands.
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const char usage[] =
    "usage: qtrain <command> [options]\n"
    "\n"
    "commands:\n"
    "  prepare   train a BPE tokenizer on a text file and write token shards\n"
    "  train     pretrain a model (config file + --set overrides), with evaluation,\n"
    "            outlier metrics and checkpoints under --out\n"
    "  eval      evaluate a checkpoint: validation loss, perplexity, outlier metrics\n"
    "  sample    generate text from a checkpoint\n"
    "  study     train and evaluate attention variants on the same data, seeds and budget;\n"
    "            a table, metrics.json and plots of their outliers and W8A8 perplexity\n"
    "  bench     time the op families' kernels against this machine's measured roofline\n"
    "  export    write a checkpoint as a Hugging Face transformers directory (safetensors)\n"
    "  import    read such a directory back into a checkpoint\n"
    "\n"
    "'qtrain <command> --help' describes a command's options.\n";

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "prepare") == 0) return qt_cmd_prepare(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0) return qt_cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0) return qt_cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "sample") == 0) return qt_cmd_sample(argc - 1, argv + 1);
    if (strcmp(cmd, "study") == 0) return qt_cmd_study(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return qt_cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0) return qt_cmd_export(argc - 1, argv + 1);
    if (strcmp(cmd, "import") == 0) return qt_cmd_import(argc - 1, argv + 1);
    fprintf(stderr, "qtrain: error: unknown command '%s'; run 'qtrain --help' for the list\n", cmd);
    return 1;
}

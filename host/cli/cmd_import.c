// cmd_import.c: `qtrain import`: a directory written by 'qtrain export' back into a checkpoint
// (qtrain/hf.h).
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "qtrain/hf.h"

static const char usage[] =
    "usage: qtrain import --from DIR --out FILE\n"
    "\n"
    "Reads DIR/config.json and DIR/model.safetensors (written by 'qtrain export') into the\n"
    "checkpoint FILE. With DIR/qtrain_state.safetensors the checkpoint is the exported one, byte\n"
    "for byte (step, data position, AdamW moments); without it, the checkpoint is at step 0\n"
    "with a fresh optimizer (zero moments), ready for eval, sample or --resume.\n"
    "\n"
    "  --from DIR   the exported directory\n"
    "  --out FILE   the checkpoint to write (atomically)\n";

int qt_cmd_import(int argc, char **argv) {
    const char *from = NULL, *out = NULL;
    int help = 0;
    const qt_arg flags[] = {
        {"from", QT_ARG_STRING, &from, 0, 0},
        {"out", QT_ARG_STRING, &out, 0, 0},
    };
    if (qt_args_parse(argc, argv, "import", usage, flags, QT_ARGS_COUNT(flags), &help) != QT_OK)
        return qt_cli_fail();
    if (help) return 0;
    if (!from || !out) {
        qt_error(QT_ERR_ARG, "--%s is required: %s", !from ? "from" : "out",
                 !from ? "the directory 'qtrain export' wrote" : "the checkpoint to write");
        return qt_cli_fail();
    }
    qt_hf_import_report r;
    if (qt_hf_import(from, out, &r) != QT_OK) return qt_cli_fail();
    if (r.full)
        printf("imported %s to %s: %d parameter tensors and the training state (step %d)\n", from,
               out, r.n_tensors, r.step);
    else
        printf("imported %s to %s: %d parameter tensors; no %s, so the checkpoint is at step 0 "
               "with a fresh optimizer\n",
               from, out, r.n_tensors, QT_HF_STATE_FILE);
    return 0;
}

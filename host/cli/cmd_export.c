// cmd_export.c: `qtrain export`: a checkpoint as a Hugging Face transformers directory
// (model.safetensors, config.json, the tokenizer, the training state), qtrain/hf.h.
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "qtrain/hf.h"

static const char usage[] =
    "usage: qtrain export --ckpt FILE --out DIR [--format safetensors] [--tokenizer FILE]\n"
    "                     [--weights-only]\n"
    "\n"
    "Writes DIR/model.safetensors and DIR/config.json, which Hugging Face transformers loads as\n"
    "OPTForCausalLM (model.arch = opt) or LlamaForCausalLM (llama), DIR/tokenizer.json for\n"
    "PreTrainedTokenizerFast, and DIR/qtrain_state.safetensors (step, data position, AdamW\n"
    "moments: what 'qtrain import' needs to give back the checkpoint byte for byte).\n"
    "Variants transformers cannot run (clipped softmax, NCS, gates, quantized training) are\n"
    "exported with their extra tensors, and config.json says why stock transformers will not\n"
    "compute the same function.\n"
    "\n"
    "  --ckpt FILE       checkpoint written by 'qtrain train'\n"
    "  --out DIR         output directory, created if missing\n"
    "  --format F        safetensors (the only format)\n"
    "  --tokenizer FILE  tokenizer to export (default: tokenizer.bin in the run's data.dir,\n"
    "                    skipped with a note when it is not there)\n"
    "  --weights-only    no qtrain_state.safetensors: an import then starts at step 0 with a\n"
    "                    fresh optimizer\n";

int qt_cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *format = "safetensors", *tokenizer = NULL;
    int weights_only = 0, help = 0;
    const qt_arg flags[] = {
        {"ckpt", QT_ARG_STRING, &ckpt, 0, 0},
        {"out", QT_ARG_STRING, &out, 0, 0},
        {"format", QT_ARG_STRING, &format, 0, 0},
        {"tokenizer", QT_ARG_STRING, &tokenizer, 0, 0},
        {"weights-only", QT_ARG_SWITCH, &weights_only, 0, 0},
    };
    if (qt_args_parse(argc, argv, "export", usage, flags, QT_ARGS_COUNT(flags), &help) != QT_OK)
        return qt_cli_fail();
    if (help) return 0;
    if (!ckpt || !out) {
        qt_error(QT_ERR_ARG, "--%s is required: %s", !ckpt ? "ckpt" : "out",
                 !ckpt ? "the checkpoint to export (e.g. runs/default/ckpt.bin)"
                       : "the directory to write (e.g. runs/default/hf)");
        return qt_cli_fail();
    }
    if (strcmp(format, "safetensors") != 0) {
        qt_error(QT_ERR_ARG, "--format %s is not supported; use --format safetensors", format);
        return qt_cli_fail();
    }
    qt_hf_export_opts opts = {tokenizer, weights_only};
    qt_hf_export_report r;
    if (qt_hf_export(ckpt, out, &opts, &r) != QT_OK) return qt_cli_fail();
    printf("exported %s to %s: %s, %d tensors in %s", ckpt, out, r.architecture, r.n_tensors,
           QT_HF_MODEL_FILE);
    if (r.n_state) printf(", %d state entries in %s", r.n_state, QT_HF_STATE_FILE);
    printf("%s\n", r.tokenizer ? ", tokenizer.json" : "");
    if (r.tokenizer_note[0]) fprintf(stderr, "qtrain: note: %s\n", r.tokenizer_note);
    if (!r.runs_in_transformers)
        fprintf(stderr,
                "qtrain: warning: stock transformers will NOT compute what this model "
                "computes (%s); config.json says so under \"qtrain\"\n",
                r.why_not);
    return 0;
}

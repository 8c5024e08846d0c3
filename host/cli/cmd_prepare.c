// cmd_prepare.c: `qtrain prepare`: train the BPE tokenizer on a text file and write the train
// and validation token shards (qt_prepare_ex in host/data/prepare.c does the work).
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "qtrain/data.h"
#include "qtrain/mlm.h"
#include "qtrain/tokenizer.h"

#define DEFAULT_INPUT "data/kjv.txt"
#define DEFAULT_OUT "data/kjv"

static const char usage[] =
    "usage: qtrain prepare [--input FILE] [--out DIR] [--vocab-size N] [--val-fraction F]\n"
    "\n"
    "Trains a byte-level BPE tokenizer on the text and writes DIR/tokenizer.bin, the shards\n"
    "DIR/train_000.bin ... and DIR/val_000.bin ... (llm.c format) and DIR/prepare.json (token\n"
    "counts and the validation unigram entropy, the loss a trained model must beat).\n"
    "\n"
    "  --input FILE        text to tokenize (default " DEFAULT_INPUT ", the King James Bible\n"
    "                      written by scripts/get_corpus.sh)\n"
    "  --out DIR           output directory, created if missing (default " DEFAULT_OUT ")\n"
    "  --vocab-size N      tokens in the vocabulary, 257..65536 (default 4096)\n"
    "  --val-fraction F    the last F of the text, cut at a line boundary, is validation\n"
    "                      (default 0.05)\n"
    "  --help              print this help\n";

int qt_cmd_prepare(int argc, char **argv) {
    const char *input = DEFAULT_INPUT, *out = DEFAULT_OUT;
    int vocab_size = 4096, help = 0;
    double val_fraction = 0.05;
    const qt_arg flags[] = {
        {"input", QT_ARG_STRING, &input, 0, 0},
        {"out", QT_ARG_STRING, &out, 0, 0},
        {"vocab-size", QT_ARG_INT, &vocab_size, 257, QT_TOKENIZER_MAX_VOCAB},
        {"val-fraction", QT_ARG_DOUBLE, &val_fraction, 0.0, 1.0},
    };
    if (qt_args_parse(argc, argv, "prepare", usage, flags, QT_ARGS_COUNT(flags), &help) != QT_OK)
        return qt_cli_fail();
    if (help) return 0;
    if (!(val_fraction > 0.0 && val_fraction < 1.0)) {
        qt_error(QT_ERR_ARG, "--val-fraction %g must lie strictly between 0 and 1, e.g. 0.05",
                 val_fraction);
        return qt_cli_fail();
    }
    struct stat sb;
    if (strcmp(input, DEFAULT_INPUT) == 0 && stat(input, &sb) != 0 && errno == ENOENT) {
        qt_error(QT_ERR_IO, "the default corpus %s is missing; run scripts/get_corpus.sh to "
                 "create it (needs 'apt-get install bible-kjv'), or pass --input FILE", input);
        return qt_cli_fail();
    }
    qt_prepare_stats stats;
    if (qt_prepare_ex(input, out, vocab_size, val_fraction, QT_PREPARE_SHARD_TOKENS, 1,
                      &stats) != QT_OK)
        return qt_cli_fail();
    printf("prepared %s: vocab %d, train %llu tokens in %d shard(s), validation %llu tokens "
           "in %d shard(s), validation unigram entropy %.4f nats/token\n", out, vocab_size,
           (unsigned long long)stats.train_tokens, stats.train_shards,
           (unsigned long long)stats.val_tokens, stats.val_shards, stats.val_unigram_entropy);
    printf("an encoder on these shards (model.arch = bert) takes model.vocab_size = %d: the %d "
           "tokens, then [PAD] [CLS] [SEP] [MASK] = %d..%d\n", vocab_size + QT_MLM_SPECIALS,
           vocab_size, vocab_size, vocab_size + QT_MLM_SPECIALS - 1);
    return 0;
}

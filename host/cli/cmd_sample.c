// cmd_sample.c: `qtrain sample`: generate text from a checkpoint with temperature and top-k.
//
// Each new token reruns the forward over the last max_seq_len tokens (no KV cache: the CPU
// models this targets are small) and draws from the last position's distribution.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "base/philox.h"
#include "qtrain/tokenizer.h"
#include "qtrain/trainer.h"

static const char usage[] =
    "usage: qtrain sample --ckpt FILE [--prompt TEXT] [--tokens N] [--temperature T]\n"
    "                     [--top-k K] [--seed S] [--tokenizer FILE] [--device D]\n"
    "                     [--allow-tokenizer-mismatch]\n"
    "\n"
    "  --ckpt FILE         checkpoint written by 'qtrain train'\n"
    "  --prompt TEXT       text to continue (default: a newline)\n"
    "  --tokens N          tokens to generate (default 200)\n"
    "  --temperature T     softmax temperature, > 0 (default 0.8); 0 picks the argmax\n"
    "  --top-k K           sample among the K most likely tokens (default 40; 0: all)\n"
    "  --seed S            random seed (default 1)\n"
    "  --tokenizer FILE    default: tokenizer.bin in the run's data.dir\n"
    "  --device D          auto (default), cpu or cuda\n"
    "  --allow-tokenizer-mismatch\n"
    "                      sample even when the tokenizer is not the one the checkpoint\n"
    "                      records (refused by default)\n"
    "\n"
    "Only tokens the tokenizer can decode are drawn: with a tokenizer smaller than the\n"
    "model's vocabulary, the draw is restricted to the tokenizer's tokens (and says so).\n";

// Index of a draw from softmax(logits / temperature) restricted to the top k.
static int draw_token(const float *logits, int V, double temperature, int top_k, float u,
                      double *weights, int *order) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    for (int i = 0; i < V; i++) order[i] = i;
    int k = top_k > 0 && top_k < V ? top_k : V;
    // Partial selection sort: the k largest logits first (k is small).
    if (k < V) {
        for (int a = 0; a < k; a++) {
            int arg = a;
            for (int i = a + 1; i < V; i++)
                if (logits[order[i]] > logits[order[arg]]) arg = i;
            int tmp = order[a];
            order[a] = order[arg];
            order[arg] = tmp;
        }
    }
    double total = 0.0;
    for (int i = 0; i < k; i++) {
        weights[i] = exp(((double)logits[order[i]] - logits[best]) / temperature);
        total += weights[i];
    }
    double target = u * total, acc = 0.0;
    for (int i = 0; i < k; i++) {
        acc += weights[i];
        if (target < acc) return order[i];
    }
    return order[k - 1];
}

int qt_cmd_sample(int argc, char **argv) {
    const char *ckpt = NULL, *prompt = "\n", *tok_path = NULL, *device = "auto";
    int n_tokens = 200, top_k = 40, seed = 1, help = 0, allow_mismatch = 0;
    double temperature = 0.8;
    const qt_arg flags[] = {
        {"ckpt", QT_ARG_STRING, &ckpt, 0, 0},
        {"prompt", QT_ARG_STRING, &prompt, 0, 0},
        {"tokenizer", QT_ARG_STRING, &tok_path, 0, 0},
        {"device", QT_ARG_STRING, &device, 0, 0},
        {"tokens", QT_ARG_INT, &n_tokens, 1, 1000000},
        {"top-k", QT_ARG_INT, &top_k, 0, 65536},
        {"seed", QT_ARG_INT, &seed, 0, 2147483647},
        {"temperature", QT_ARG_DOUBLE, &temperature, 0.0, 100.0},
        {"allow-tokenizer-mismatch", QT_ARG_SWITCH, &allow_mismatch, 0, 0},
    };
    if (qt_args_parse(argc, argv, "sample", usage, flags, QT_ARGS_COUNT(flags), &help) != QT_OK)
        return qt_cli_fail();
    if (help) return 0;
    if (!ckpt) {
        qt_error(QT_ERR_ARG, "--ckpt is required: the checkpoint to sample from");
        return qt_cli_fail();
    }
    qt_config cfg;
    qt_tokenizer_id trained;
    if (qt_train_state_read_info(ckpt, &cfg, &trained) != QT_OK) return qt_cli_fail();
    if (cfg.arch == QT_ARCH_BERT) {
        qt_error(QT_ERR_ARG, "%s is a masked-LM encoder (model.arch = bert): it fills in masked "
                 "tokens and does not generate text; sample from a causal LM (model.arch = opt "
                 "or llama), or evaluate it with qtrain eval", ckpt);
        return qt_cli_fail();
    }
    // Checkpoints hold fp32 weights: evaluate in the device's natural precision, whatever the
    // run trained in.
    cfg.precision = QT_PRECISION_AUTO;
    char default_tok[600];
    if (!tok_path) {
        snprintf(default_tok, sizeof default_tok, "%s/tokenizer.bin", cfg.data_dir);
        tok_path = default_tok;
    }
    qt_tokenizer *tok = NULL;
    if (qt_tokenizer_load(&tok, tok_path) != QT_OK) return qt_cli_fail();
    char what[700], note[2048];
    snprintf(what, sizeof what, "tokenizer %s", tok_path);
    if (qt_tokenizer_id_check(trained, ckpt, qt_tokenizer_identity(tok), what,
                              "pass the run's tokenizer with --tokenizer", allow_mismatch, note,
                              sizeof note) != QT_OK) {
        qt_tokenizer_free(tok);
        return qt_cli_fail();
    }
    if (note[0]) fprintf(stderr, "%s\n", note);
    if (qt_tokenizer_vocab_size(tok) > cfg.vocab_size) {
        qt_error(QT_ERR_ARG, "tokenizer %s has %d tokens but the model only %d; pass the "
                 "run's tokenizer with --tokenizer", tok_path, qt_tokenizer_vocab_size(tok),
                 cfg.vocab_size);
        qt_tokenizer_free(tok);
        return qt_cli_fail();
    }
    // A model may have more tokens than its tokenizer (a padded vocabulary, or a mismatch the
    // user allowed): draw only tokens the tokenizer can decode, so none is dropped.
    int V_draw = qt_tokenizer_vocab_size(tok);
    if (V_draw < cfg.vocab_size)
        fprintf(stderr,
                "qtrain: note: the model has %d tokens and tokenizer %s %d: drawing "
                "only among the tokenizer's %d\n",
                cfg.vocab_size, tok_path, V_draw, V_draw);
    uint16_t *prompt_tokens = NULL;
    size_t n_prompt = 0;
    if (qt_tokenizer_encode(tok, (const uint8_t *)prompt, strlen(prompt), &prompt_tokens,
                            &n_prompt) != QT_OK) {
        qt_tokenizer_free(tok);
        return qt_cli_fail();
    }
    int T = cfg.max_seq_len, V = cfg.vocab_size;
    size_t total = n_prompt + (size_t)n_tokens;
    int *context = malloc(total * sizeof(int));
    float *logits = malloc((size_t)V * sizeof(float));
    double *weights = malloc((size_t)V * sizeof(double));
    int *order = malloc((size_t)V * sizeof(int));
    qt_backend be;
    qt_model model;
    int rc = 0, have_model = 0, have_be = 0;
    if (!context || !logits || !weights || !order) {
        qt_error(QT_ERR_OOM, "cannot allocate sampling buffers");
        rc = qt_cli_fail();
        goto out;
    }
    for (size_t i = 0; i < n_prompt; i++) context[i] = prompt_tokens[i];
    if (qt_cli_open_backend(device, &cfg, 1, &be) != QT_OK) {
        rc = qt_cli_fail();
        goto out;
    }
    have_be = 1;
    if (qt_model_init(&model, &cfg, &be, 1, T) != QT_OK) {
        rc = qt_cli_fail();
        goto out;
    }
    have_model = 1;
    if (qt_train_state_load(ckpt, &model, NULL, NULL) != QT_OK) {
        rc = qt_cli_fail();
        goto out;
    }
    fputs(prompt, stdout);
    size_t n = n_prompt;
    if (n == 0) context[n++] = '\n'; // byte tokens are their own ids
    for (int s = 0; s < n_tokens; s++) {
        size_t start = n > (size_t)T ? n - (size_t)T : 0;
        int len = (int)(n - start);
        if (qt_model_forward(&model, context + start, NULL, 1, len, NULL) != QT_OK ||
            be.ops->to_host_f32(be.ctx, logits, QT_AT(model.logits, model.es, (size_t)(len - 1) * V),
                                (size_t)V) != QT_OK) {
            rc = qt_cli_fail();
            goto out;
        }
        float u = qt_philox_uniform((uint64_t)seed, 0x5A3B1E, (uint64_t)s);
        int next = draw_token(logits, V_draw, temperature, top_k, u, weights, order);
        context[n++] = next;
        size_t blen = 0;
        const uint8_t *bytes = qt_tokenizer_token_bytes(tok, next, &blen);
        fwrite(bytes, 1, blen, stdout); // next < V_draw: always a token of the tokenizer
        fflush(stdout);
    }
    fputc('\n', stdout);
out:
    if (have_model) qt_model_free(&model);
    if (have_be) qt_backend_free(&be);
    free(context);
    free(logits);
    free(weights);
    free(order);
    free(prompt_tokens);
    qt_tokenizer_free(tok);
    return rc;
}

// hf_map.c: qtrain names -> transformers names, and config.json (hf_map.h; the mapping is
// documented in qtrain/hf.h).
//
// Sources for the transformers side (v4.45-4.49, the versions the export test runs):
// models/opt/modeling_opt.py (OPTLearnedPositionalEmbedding's offset 2, LayerNorm always with
// a bias, enable_bias for the linears, ACT2FN["gelu_new"] = the tanh GELU) and
// models/llama/modeling_llama.py (rotate_half, LlamaRMSNorm in fp32, the MLP's
// down(silu(gate(x)) * up(x))).
#include "host/io/hf_map.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/params.h"
#include "host/io/json.h"
#include "qtrain/hf.h"
#include "qtrain/names.h"

static int is_llama(const qt_config *cfg) { return cfg->arch == QT_ARCH_LLAMA; }

const char *qt_hf_architecture(const qt_config *cfg) {
    return is_llama(cfg) ? "LlamaForCausalLM" : "OPTForCausalLM";
}

// One piece named prefix + rest, rows [row0, row0 + rows).
static void piece(qt_hf_piece *p, const char *prefix, const char *rest, int64_t row0,
                  int64_t rows) {
    snprintf(p->name, sizeof p->name, "%s%s", prefix, rest);
    p->row0 = row0;
    p->rows = rows;
    p->pad_rows = 0;
}

// rows split into k equal pieces named prefix + names[i].
static qt_status split(qt_hf_piece *out, int *n, const char *prefix, const char *const *names,
                       int k, int64_t rows, const char *qt_name) {
    if (rows % k != 0)
        return qt_error(QT_ERR_FORMAT,
                        "tensor %s has %" PRId64 " rows, which do not split into "
                        "%d equal parts",
                        qt_name, rows, k);
    for (int i = 0; i < k; i++)
        piece(&out[i], prefix, names[i], i * (rows / k), rows / k);
    *n = k;
    return QT_OK;
}

// The per-layer part: rest (after "decoder.layers.<l>.") under prefix "...layers.<l>.".
static qt_status layer_pieces(const qt_config *cfg, const char *prefix, const char *rest,
                              int64_t rows, const char *qt_name, qt_hf_piece *out, int *n) {
    static const char *const qkv_w[3] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                         "self_attn.v_proj.weight"};
    static const char *const qkv_b[3] = {"self_attn.q_proj.bias", "self_attn.k_proj.bias",
                                         "self_attn.v_proj.bias"};
    static const char *const gate_up[2] = {"mlp.gate_proj.weight", "mlp.up_proj.weight"};
    static const char *const llama_names[][2] = {
        {"self_attn_layer_norm.weight", "input_layernorm.weight"},
        {"self_attn.out_proj.weight", "self_attn.o_proj.weight"},
        {"final_layer_norm.weight", "post_attention_layernorm.weight"},
        {"fc2.weight", "mlp.down_proj.weight"},
    };
    if (strcmp(rest, "self_attn.qkv_proj.weight") == 0)
        return split(out, n, prefix, qkv_w, 3, rows, qt_name);
    if (strcmp(rest, "self_attn.qkv_proj.bias") == 0)
        return split(out, n, prefix, qkv_b, 3, rows, qt_name);
    if (is_llama(cfg)) {
        if (strcmp(rest, "fc1.weight") == 0 && cfg->activation == QT_ACT_SWIGLU)
            return split(out, n, prefix, gate_up, 2, rows, qt_name);
        for (size_t i = 0; i < sizeof llama_names / sizeof llama_names[0]; i++)
            if (strcmp(rest, llama_names[i][0]) == 0) {
                piece(&out[0], prefix, llama_names[i][1], 0, rows);
                *n = 1;
                return QT_OK;
            }
    }
    // OPT's own names; and what transformers has no slot for (gates), under qtrain's name.
    piece(&out[0], prefix, rest, 0, rows);
    *n = 1;
    return QT_OK;
}

qt_status qt_hf_pieces(const qt_config *cfg, const char *name, int64_t rows, qt_hf_piece *out,
                       int *n) {
    *n = 0;
    if (strcmp(name, "lm_head.weight") == 0) {
        piece(&out[0], "", name, 0, rows);
        *n = 1;
        return QT_OK;
    }
    static const char layers[] = "decoder.layers.";
    if (strncmp(name, layers, sizeof layers - 1) == 0) {
        const char *s = name + sizeof layers - 1;
        int l = 0, digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 6)
            l = l * 10 + (*s++ - '0'), digits++;
        if (digits == 0 || *s != '.' || !s[1])
            return qt_error(QT_ERR_FORMAT, "tensor %s: no qtrain layer tensor has that name", name);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s%d.",
                 is_llama(cfg) ? "model.layers." : "model.decoder.layers.", l);
        return layer_pieces(cfg, prefix, s + 1, rows, name, out, n);
    }
    if (strncmp(name, "decoder.", 8) != 0)
        return qt_error(QT_ERR_FORMAT,
                        "tensor %s: not a qtrain parameter name (decoder.* or "
                        "lm_head.weight)",
                        name);
    if (is_llama(cfg)) {
        if (strcmp(name, "decoder.embed_tokens.weight") == 0)
            piece(&out[0], "", "model.embed_tokens.weight", 0, rows);
        else if (strcmp(name, "decoder.final_layer_norm.weight") == 0)
            piece(&out[0], "", "model.norm.weight", 0, rows);
        else
            piece(&out[0], "model.", name + 8, 0, rows);
    } else {
        piece(&out[0], "model.", name, 0, rows);
        // OPTLearnedPositionalEmbedding: position t reads row t + 2 (fairseq's padding offset).
        if (strcmp(name, "decoder.embed_positions.weight") == 0) out[0].pad_rows = 2;
    }
    *n = 1;
    return QT_OK;
}

int qt_hf_zero_tensors(const qt_config *cfg, char (*names)[QT_HF_NAME], int cap) {
    if (is_llama(cfg) || cfg->bias || cfg->norm != QT_NORM_LAYERNORM) return 0;
    int n = 0;
    for (int l = 0; l <= cfg->n_layer; l++) {
        for (int k = 0; k < (l < cfg->n_layer ? 2 : 1); k++) {
            if (n < cap) {
                if (l == cfg->n_layer)
                    snprintf(names[n], QT_HF_NAME, "model.decoder.final_layer_norm.bias");
                else
                    snprintf(names[n], QT_HF_NAME, "model.decoder.layers.%d.%s.bias", l,
                             k ? "final_layer_norm" : "self_attn_layer_norm");
            }
            n++;
        }
    }
    return n;
}

// Appends "; " + the formatted reason to why.
static void add_reason(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_reason(char *why, size_t cap, const char *fmt, ...) {
    size_t n = strlen(why);
    if (n + 3 >= cap) return;
    if (n) {
        snprintf(why + n, cap - n, "; ");
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + n, cap - n, fmt, ap);
    va_end(ap);
}

int qt_hf_runs_in_transformers(const qt_config *cfg, char *why, size_t cap) {
    why[0] = '\0';
    if (!is_llama(cfg)) {
        if (cfg->norm != QT_NORM_LAYERNORM)
            add_reason(why, cap, "model.norm = %s: OPT uses LayerNorm",
                       qt_name(&qt_norm_names, cfg->norm));
        if (cfg->pos != QT_POS_LEARNED)
            add_reason(why, cap, "model.pos = %s: OPT uses learned positions",
                       qt_name(&qt_pos_names, cfg->pos));
        if (cfg->activation == QT_ACT_SWIGLU)
            add_reason(why, cap, "model.activation = %s: OPT's MLP has no gated activation",
                       qt_name(&qt_activation_names, cfg->activation));
    }
    if (cfg->softmax != QT_SOFTMAX_VANILLA)
        add_reason(why, cap, "attn.softmax = %s: transformers' attention is a plain softmax",
                   qt_name(&qt_softmax_names, cfg->softmax));
    if (cfg->gate != QT_GATE_NONE)
        add_reason(why, cap,
                   "attn.gate = %s: transformers has no attention gate (its tensors "
                   "are exported as %sself_attn.gate.*)",
                   qt_name(&qt_gate_names, cfg->gate),
                   is_llama(cfg) ? "model.layers.N." : "model.decoder.layers.N.");
    switch (cfg->quant_mode) {
    case QT_QMODE_NONE:
        break;
    case QT_QMODE_QAT:
        if (cfg->q_w.bits > 0 || cfg->q_a.bits > 0)
            add_reason(why, cap,
                       "quant.mode = qat fake-quantizes the block linears' %s in the "
                       "forward",
                       cfg->q_w.bits > 0 && cfg->q_a.bits > 0 ? "weights and inputs"
                       : cfg->q_w.bits > 0                    ? "weights"
                                                              : "inputs");
        break;
    case QT_QMODE_BITNET:
        add_reason(why, cap,
                   "quant.mode = bitnet: ternary weights and 8-bit inputs in the "
                   "forward");
        break;
    case QT_QMODE_DQT:
        add_reason(why, cap,
                   "quant.mode = dqt: the block weights are int8 codes (I8 tensors "
                   "with a *_scale) and the inputs 8-bit in the forward");
        break;
    }
    return why[0] == '\0';
}

const char *qt_hf_model_type(const qt_config *cfg) {
    char why[8];
    int runs = qt_hf_runs_in_transformers(cfg, why, sizeof why);
    if (is_llama(cfg)) return runs ? "llama" : "qtrain_llama";
    return runs ? "opt" : "qtrain_opt";
}

// A JSON string of s[0, len), with invalid UTF-8 bytes replaced by U+FFFD (JSON holds only
// Unicode; the exact bytes travel in qtrain_state.safetensors).
static void write_text(FILE *f, const char *s, size_t len) {
    if (qt_json_utf8_valid(s, len)) {
        qt_json_write_string(f, s, len);
        return;
    }
    char *clean = malloc(3 * len + 1);
    if (!clean) {
        qt_json_write_string(f, "", 0);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t k = 1;
        while (k <= 4 && i + k <= len && !qt_json_utf8_valid(s + i, k))
            k++;
        if (k <= 4 && i + k <= len) {
            memcpy(clean + n, s + i, k);
            n += k;
            i += k;
        } else {
            memcpy(clean + n, "\xEF\xBF\xBD", 3);
            n += 3;
            i++;
        }
    }
    qt_json_write_string(f, clean, n);
    free(clean);
}

qt_status qt_hf_config_json(const qt_config *cfg, const char *cfg_text, size_t text_len,
                            int has_state, char **out, size_t *len) {
    *out = NULL;
    FILE *f = open_memstream(out, len);
    if (!f) return qt_error(QT_ERR_OOM, "out of memory writing config.json");
    const int C = cfg->d_model, H = cfg->n_head;
    const float attn_drop = cfg->attn_dropout >= 0 ? cfg->attn_dropout : cfg->dropout;
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n", qt_hf_architecture(cfg));
    if (is_llama(cfg)) {
        fprintf(f,
                "  \"model_type\": \"%s\",\n  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n"
                "  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
                "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
                "  \"head_dim\": %d,\n  \"hidden_act\": \"silu\",\n"
                "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %.9g,\n"
                "  \"rope_theta\": %.9g,\n  \"rope_scaling\": null,\n"
                "  \"attention_bias\": false,\n  \"mlp_bias\": false,\n"
                "  \"attention_dropout\": %.9g,\n  \"tie_word_embeddings\": %s,\n"
                "  \"initializer_range\": %.9g,\n  \"pretraining_tp\": 1,\n",
                qt_hf_model_type(cfg), cfg->vocab_size, C, cfg->d_ff, cfg->n_layer, H, H, C / H,
                cfg->max_seq_len, (double)QT_RMSNORM_EPS, (double)cfg->rope_theta,
                (double)attn_drop, cfg->tie_embeddings ? "true" : "false", (double)cfg->init_std);
    } else {
        fprintf(f,
                "  \"model_type\": \"%s\",\n  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n"
                "  \"word_embed_proj_dim\": %d,\n  \"ffn_dim\": %d,\n"
                "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
                "  \"max_position_embeddings\": %d,\n  \"do_layer_norm_before\": true,\n"
                "  \"_remove_final_layer_norm\": false,\n  \"activation_function\": \"%s\",\n"
                "  \"enable_bias\": %s,\n  \"layer_norm_elementwise_affine\": true,\n"
                "  \"tie_word_embeddings\": %s,\n  \"dropout\": %.9g,\n"
                "  \"attention_dropout\": %.9g,\n  \"activation_dropout\": 0.0,\n"
                "  \"layerdrop\": 0.0,\n  \"init_std\": %.9g,\n",
                qt_hf_model_type(cfg), cfg->vocab_size, C, C, cfg->d_ff, cfg->n_layer, H,
                cfg->max_seq_len, cfg->activation == QT_ACT_RELU ? "relu" : "gelu_new",
                cfg->bias ? "true" : "false", cfg->tie_embeddings ? "true" : "false",
                (double)cfg->dropout, (double)attn_drop, (double)cfg->init_std);
    }
    // qtrain's tokenizer has no special tokens.
    fputs("  \"bos_token_id\": null,\n  \"eos_token_id\": null,\n  \"pad_token_id\": null,\n"
          "  \"torch_dtype\": \"float32\",\n  \"use_cache\": true,\n",
          f);
    char why[1024];
    int runs = qt_hf_runs_in_transformers(cfg, why, sizeof why);
    fprintf(f, "  \"qtrain\": {\n    \"format\": %d,\n    \"runs_in_transformers\": %s,\n",
            QT_HF_FORMAT, runs ? "true" : "false");
    fputs("    \"not_in_transformers\": ", f);
    if (runs) {
        fputs("null", f);
    } else {
        fputs("\"stock transformers will not compute what qtrain computes: ", f);
        fputs(why, f); // our own ASCII text without quotes or backslashes
        fputc('"', f);
    }
    fprintf(f, ",\n    \"state_file\": %s,\n    \"config\": ",
            has_state ? "\"" QT_HF_STATE_FILE "\"" : "null");
    write_text(f, cfg_text, text_len);
    fputs("\n  }\n}\n", f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(*out);
        *out = NULL;
        return qt_error(QT_ERR_OOM, "out of memory writing config.json");
    }
    return QT_OK;
}

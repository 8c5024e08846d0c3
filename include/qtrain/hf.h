// qtrain/hf.h: hand-off to the Hugging Face ecosystem: a checkpoint exported as a transformers
// model directory, and such a directory imported back into a checkpoint.
//
// An exported directory holds:
//   model.safetensors        the parameters under the names of the matching transformers class
//                            (qtrain/safetensors.h), fp32 (DQT weights: int8 codes);
//   config.json              the transformers config (OPTForCausalLM for model.arch = opt,
//                            LlamaForCausalLM for llama) plus a "qtrain" object: the run's whole
//                            config text, and whether stock transformers computes the same
//                            function ("runs_in_transformers") or why not ("not_in_transformers").
//                            When it does not, model_type is "qtrain_opt" / "qtrain_llama", so
//                            that AutoModelForCausalLM refuses the directory rather than run
//                            another function (the explicit class still loads it, with a
//                            warning: e.g. to study clipped-softmax weights under softmax);
//   qtrain_state.safetensors every checkpoint entry that is not a parameter (step, data position,
//                            config, loss scaler, AdamW moments, ...) and the entry order, so
//                            that import(export(ckpt)) is ckpt byte for byte (omitted with
//                            weights_only: the import then starts at step 0 with zero moments);
//   tokenizer.json, tokenizer_config.json
//                            the run's byte-level BPE for transformers' PreTrainedTokenizerFast
//                            (when the tokenizer is found; see qt_hf_write_tokenizer).
//
// The mapping (qtrain name -> Hugging Face name; C d_model, F d_ff):
//   OPT     decoder.X -> model.decoder.X, lm_head.weight as is (absent when tied); the fused
//           self_attn.qkv_proj (3C rows) splits into q_proj, k_proj, v_proj (C rows each);
//           decoder.embed_positions.weight gets two zero rows in front, because transformers'
//           OPTLearnedPositionalEmbedding looks position t up at row t + 2; with model.bias = 0
//           the LayerNorm biases that OPT always has are written as zeros (enable_bias = false
//           drops only the linear biases). GELU is qtrain's tanh form: "gelu_new".
//   LLaMA   decoder.embed_tokens -> model.embed_tokens, decoder.final_layer_norm -> model.norm,
//           per layer self_attn_layer_norm -> input_layernorm, qkv_proj -> q/k/v_proj,
//           out_proj -> o_proj, final_layer_norm -> post_attention_layernorm, fc1 (2F rows:
//           gate then up) -> mlp.gate_proj + mlp.up_proj, fc2 -> mlp.down_proj. RoPE is
//           rotate-half in both, so no permutation; rms_norm_eps 1e-5, rope_theta as trained.
//   Tensors transformers has no slot for keep qtrain's name under the same prefix (attention
//   gates: model.decoder.layers.0.self_attn.gate.weight); DQT weights are I8 codes under the
//   weight's name plus "<name>_scale" (F32 [1]; q, k and v repeat the fused tensor's one scale).
#ifndef QTRAIN_HF_H
#define QTRAIN_HF_H

#include "base/status.h"
#include "qtrain/config.h"
#include "qtrain/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QT_HF_MODEL_FILE "model.safetensors"
#define QT_HF_STATE_FILE "qtrain_state.safetensors"
#define QT_HF_FORMAT 1 // the "qtrain"."format" of config.json this qtrain writes and reads

typedef struct {
    const char *tokenizer; // tokenizer.bin to export; NULL: <data.dir>/tokenizer.bin when it
                           // exists (else no tokenizer is exported, with a note)
    int weights_only;      // 1: no qtrain_state.safetensors
} qt_hf_export_opts;

typedef struct {
    int runs_in_transformers; // 1: stock transformers computes what qtrain computes
    char why_not[1024];       // else the reasons, "; "-separated
    const char *architecture; // "OPTForCausalLM" or "LlamaForCausalLM"
    int n_tensors;            // in model.safetensors
    int n_state;              // in qtrain_state.safetensors (0 with weights_only)
    int tokenizer;            // 1: tokenizer.json written
    char tokenizer_note[512]; // why not, or what it cannot express
} qt_hf_export_report;

// Exports checkpoint `ckpt` into directory `dir` (created if missing). Files of an earlier
// export that this one does not write (qtrain_state.safetensors, tokenizer files) are removed,
// so the directory never mixes two exports. QT_ERR_* with a message naming the file or tensor.
qt_status qt_hf_export(const char *ckpt, const char *dir, const qt_hf_export_opts *opts,
                       qt_hf_export_report *report);

typedef struct {
    int full;      // 1: qtrain_state.safetensors was there: the checkpoint is the exported one
    int step;      // the imported checkpoint's step (0 when not full)
    int n_tensors; // parameters imported
} qt_hf_import_report;

// Reads directory `dir` (written by qt_hf_export) into checkpoint `out_ckpt` (atomically).
// Every parameter must be present with its shape and dtype, and the tensors transformers needs
// but qtrain has no room for (OPT's two position rows, zero LayerNorm biases of model.bias = 0)
// must hold what export wrote there; anything else is an error naming the tensor.
qt_status qt_hf_import(const char *dir, const char *out_ckpt, qt_hf_import_report *report);

// Writes dir/tokenizer.json and dir/tokenizer_config.json for `tok`: a BPE model over the
// GPT-2 byte-to-unicode alphabet, qtrain's merges in order (ranks), and qtrain's
// pre-tokenization as a ByteLevel mapping followed by one Split regex on the mapped characters
// (one mapped character per byte, so the byte classes and the 256-byte word cap of
// qtrain/tokenizer.h carry over exactly). transformers gets the same token ids as
// qt_tokenizer_encode for any valid UTF-8 text; it cannot take other bytes, and when two tokens
// have the same bytes (possible in BPE) it can only name the first: *duplicates counts them
// (0 means the two agree on every UTF-8 text).
qt_status qt_hf_write_tokenizer(const qt_tokenizer *tok, int model_max_length, const char *dir,
                                int *duplicates);

#ifdef __cplusplus
}
#endif
#endif

// hf_map.h (internal): the qtrain <-> Hugging Face transformers correspondence that export and
// import share (documented in qtrain/hf.h): tensor names and row splits, the tensors
// transformers needs that qtrain has no room for, whether stock transformers computes the same
// function, and config.json.
#ifndef QTRAIN_HOST_IO_HF_MAP_H
#define QTRAIN_HOST_IO_HF_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "qtrain/config.h"

#define QT_HF_NAME 192
#define QT_HF_MAX_PIECES 3

// One Hugging Face tensor made of rows of a qtrain tensor (dim 0; the other dims unchanged).
typedef struct {
    char name[QT_HF_NAME];
    int64_t row0, rows; // rows [row0, row0 + rows) of the qtrain tensor
    int pad_rows;       // zero rows in front of them in the HF tensor (OPT's positions: 2)
} qt_hf_piece;

// The pieces of qtrain parameter `name` (dim 0 of `rows`) under cfg's architecture: *n in
// 1..QT_HF_MAX_PIECES, in row order (q, k, v; gate, up). QT_ERR_FORMAT for a name that is no
// qtrain parameter, or rows that do not split evenly.
qt_status qt_hf_pieces(const qt_config *cfg, const char *name, int64_t rows, qt_hf_piece *out,
                       int *n);

// The names of the tensors transformers needs that qtrain does not have, all zero, each of
// shape (d_model): OPT's LayerNorm biases when model.bias = 0. Returns their count (at most
// cap are written; call with cap 0 to count).
int qt_hf_zero_tensors(const qt_config *cfg, char (*names)[QT_HF_NAME], int cap);

// 1 when stock transformers computes what qtrain computes for cfg; else 0 with the reasons,
// "; "-separated, in why (always NUL-terminated).
int qt_hf_runs_in_transformers(const qt_config *cfg, char *why, size_t cap);

// "OPTForCausalLM" or "LlamaForCausalLM".
const char *qt_hf_architecture(const qt_config *cfg);
// config.json's model_type: "opt" or "llama"; "qtrain_opt" or "qtrain_llama" for a model that
// stock transformers does not compute (qt_hf_runs_in_transformers), so that AutoConfig and
// AutoModel refuse it ("does not recognize this architecture") instead of running another
// function; OPTForCausalLM / LlamaForCausalLM.from_pretrained still load it, with a warning.
const char *qt_hf_model_type(const qt_config *cfg);

// config.json for cfg into *out (malloc'd, *len bytes): the transformers keys, then "qtrain":
// {format, runs_in_transformers, not_in_transformers, state_file, config (cfg_text)}.
qt_status qt_hf_config_json(const qt_config *cfg, const char *cfg_text, size_t text_len,
                            int has_state, char **out, size_t *len);

#endif

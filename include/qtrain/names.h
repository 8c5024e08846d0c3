// qtrain/names.h: the one spelling of every enum a user reads or writes, name <-> value.
//
// One table per enum. The config parser reads names through them (qt_config_set), and every
// printer writes through them: the resolved config (config.conf, the checkpoint's stored
// config), the run summary and the memory line of metrics.jsonl (host/train/trainer.c), PTQ's
// messages (host/eval/ptq.c) and the CLI's flags and reports (host/cli). A new enum value gets
// its name here and nowhere else. Every enum listed counts up from 0, so a table is its names
// in value order.
#ifndef QTRAIN_NAMES_H
#define QTRAIN_NAMES_H

#include <stddef.h>

#include "qtrain/config.h"

typedef struct {
    const char *const *names; // (n) names[value]
    int n;                    // values 0..n-1
} qt_names;

extern const qt_names qt_arch_names;              // qt_arch: opt | llama | bert
extern const qt_names qt_activation_names;        // qt_activation: gelu | relu | swiglu
extern const qt_names qt_norm_names;              // qt_norm: layernorm | rmsnorm
extern const qt_names qt_pos_names;               // qt_pos: learned | rope
extern const qt_names qt_loss_names;              // qt_loss: clm | mlm
extern const qt_names qt_norm_position_names;     // qt_norm_position: pre | post
extern const qt_names qt_sched_names;             // qt_sched: linear | cosine | constant
extern const qt_names qt_precision_names;         // qt_precision: auto | fp32 | fp16 | bf16
extern const qt_names qt_softmax_names;           // qt_softmax_kind: vanilla | clipped | ncs
// qt_gate_kind: none | linear | mlp | all_heads | elementwise
extern const qt_names qt_gate_names;
extern const qt_names qt_sink_names;              // qt_sink_kind: none | off_by_one | learned
extern const qt_names qt_quant_mode_names;        // qt_quant_mode: none | qat | bitnet | dqt
extern const qt_names qt_quant_backward_names;    // qt_quant_backward: dw | dx
extern const qt_names qt_dqt_scale_names;         // qt_dqt_scale: fixed | absmax_pre | absmean
extern const qt_names qt_quant_granularity_names; // qt_quant_granularity: tensor | row | group
extern const qt_names qt_quant_rounding_names;    // qt_quant_rounding: nearest | stochastic
// qt_quant_range: absmax | absmean | minmax (RUNNING: running min-max) | percentile | mse |
// fixed. Training takes absmax and absmean; PTQ's activations minmax and percentile, its
// weights absmax and mse: each reader passes the subset it accepts.
extern const qt_names qt_quant_range_names;

// A subset of a table's values, one bit per value (value < 32).
#define QT_NAMES_ALL (~0u)
#define QT_NAME_BIT(value) (1u << (unsigned)(value))

// 1 when `value` is in the subset `allowed` (any int: out-of-range values are not).
int qt_names_allow(unsigned allowed, int value);

// The name of `value`, or "?" when the table has none.
const char *qt_name(const qt_names *t, int value);

// The value named s[0, len) among the values in `allowed`, or -1.
int qt_name_value(const qt_names *t, const char *s, size_t len, unsigned allowed);

// The names of the values in `allowed`, in value order, joined by `sep` ("|": "none|qat"),
// into buf (n bytes, always NUL-terminated; cut short when it does not fit).
void qt_names_join(const qt_names *t, unsigned allowed, const char *sep, char *buf, size_t n);

#endif

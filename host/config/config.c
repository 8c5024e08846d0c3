// config.c: qt_config defaults, `key = value` parsing, validation and writing.
//
// Every key lives in ONE table (`keys` below): its dotted name, its type, where it lives in
// qt_config (offset), its default, its allowed range with the reason for that range, and a
// one-line help; enum keys read and write their names through qtrain/names.h.
// qt_config_defaults parses each default through the table, qt_config_set parses through it,
// qt_config_write prints through it, and qt_config_validate checks every key's range through
// it before the relations between keys (n_head divides d_model, seq_len <= max_seq_len, ...),
// which are the only hand-written checks.
// Adding a key = adding a field to qt_config (include/qtrain/config.h) and one table row.
//
// Values: integers and floats through strtol/strtof with end, errno and range checked (`12x`,
// `1e99`, `nan` are errors); enums by name; data.dir as the rest of the value, or a quoted
// string ("..." with \" and \\) when it needs '#', quotes or edge spaces. Floats are written with
// the shortest %.Ng that reads back as the same float (%.9g at most), so
// qt_config_load(qt_config_write(cfg)) == cfg bit for bit. Config text, from a file or stored in a
// checkpoint, has one parser, qt_config_parse: `#` comments outside quotes, lines of any length,
// all or nothing. The math behind the attention keys: PAPERS.md sections 1-3.
#include "qtrain/config.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/mlm.h"
#include "qtrain/names.h"

// Enum fields are read and written as int through their offset.
_Static_assert(sizeof(qt_arch) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_activation) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_norm) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_pos) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_loss) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_norm_position) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_sched) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_softmax_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_gate_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_sink_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_quant_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_quant_backward) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_dqt_scale) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_quant_granularity) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_quant_rounding) == sizeof(int), "enum size");
_Static_assert(sizeof(qt_quant_range) == sizeof(int), "enum size");

// ---------------------------------------------------------------------------------------
// The key table

typedef enum {
    KEY_INT,   // int, decimal
    KEY_BOOL,  // int, 0 | 1
    KEY_FLOAT, // float
    KEY_U64,   // uint64_t, decimal
    KEY_ENUM,  // int-sized enum, by name (qtrain/names.h)
    KEY_STR,   // char[cap], NUL-terminated
} key_type;

typedef struct {
    const char *name; // "model.n_layer"
    key_type type;
    size_t offset;              // of the field in qt_config
    size_t cap;                 // KEY_STR: capacity of the char array (with the NUL)
    double lo, hi;              // KEY_INT, KEY_FLOAT: allowed range
    int lo_open, hi_open;       // 1: the bound itself is excluded
    const qt_names *choices;    // KEY_ENUM: the enum's name table (qtrain/names.h) ...
    unsigned allowed;           // ... and the values this key accepts (QT_NAME_BIT per value)
    int list_choices;           // KEY_ENUM: 1 appends ": a|b|c" (the choices) to the help
    const char *def;            // the default, as a value: qt_config_defaults parses it
    const char *why;  // why the range (said when a value falls outside it)
    const char *help; // one line, written as a comment by qt_config_write
} key_def;

// The ranges that need calibration state (minmax, percentile, mse) are for evaluation, not
// for quantized training: quant.*_range takes absmax and absmean only.
#define TRAIN_RANGES (QT_NAME_BIT(QT_QUANT_RANGE_ABSMAX) | QT_NAME_BIT(QT_QUANT_RANGE_ABSMEAN))

#define OFF(field) offsetof(qt_config, field)
// Each key: its name, its field, its default (as a value text), then what its type needs.
#define INT_KEY(nm, field, def, lo, hi, why, help)                                                 \
    { nm, KEY_INT, OFF(field), 0, lo, hi, 0, 0, NULL, 0, 0, def, why, help }
#define BOOL_KEY(nm, field, def, help)                                                             \
    { nm, KEY_BOOL, OFF(field), 0, 0, 1, 0, 0, NULL, 0, 0, def, NULL, help }
#define FLOAT_KEY(nm, field, def, lo, lo_open, hi, hi_open, why, help)                             \
    { nm, KEY_FLOAT, OFF(field), 0, lo, hi, lo_open, hi_open, NULL, 0, 0, def, why, help }
// An enum key over the values in `allowed` of table `names`; LISTED_ adds the choices to the help.
#define SUBSET_KEY(nm, field, def, names, allowed, list, help)                                     \
    { nm, KEY_ENUM, OFF(field), 0, 0, 0, 0, 0, &names, allowed, list, def, NULL, help }
#define ENUM_KEY(nm, field, def, names, help)                                                      \
    SUBSET_KEY(nm, field, def, names, QT_NAMES_ALL, 0, help)
#define LISTED_ENUM_KEY(nm, field, def, names, help)                                               \
    SUBSET_KEY(nm, field, def, names, QT_NAMES_ALL, 1, help)

#define INF INFINITY
// The six keys of one qat quantizer, quant.<role>_*: bits and symmetric defaults per role;
// every role defaults to per-row, groups of 128, nearest, absmax.
#define QSPEC_KEYS(role, field, what, bits_def, sym_def)                                           \
    INT_KEY("quant." role "_bits", field.bits, bits_def, 0, 8,                                     \
            "bits are 0 (off), 1 (ternary) or 2..8", what ": bits (0 off, 1 ternary)"),            \
        LISTED_ENUM_KEY("quant." role "_granularity", field.granularity, "row",                    \
                        qt_quant_granularity_names, what),                                         \
        INT_KEY("quant." role "_group", field.group, "128", 1, 1 << 20,                            \
                "a group holds >= 1 element", what ": group size"),                                \
        LISTED_ENUM_KEY("quant." role "_rounding", field.rounding, "nearest",                      \
                        qt_quant_rounding_names, what),                                            \
        BOOL_KEY("quant." role "_symmetric", field.symmetric, sym_def,                             \
                 what ": 1 signed, 0 zero point"),                                                 \
        SUBSET_KEY("quant." role "_range", field.range, "absmax", qt_quant_range_names,            \
                   TRAIN_RANGES, 1, what)

static const key_def keys[] = {
    ENUM_KEY("model.arch", arch, "opt", qt_arch_names, "architecture"),
    INT_KEY("model.n_layer", n_layer, "4", 1, 1024, NULL, "transformer blocks"),
    INT_KEY("model.d_model", d_model, "256", 1, 65536, NULL, "residual width C"),
    INT_KEY("model.n_head", n_head, "4", 1, 65536, NULL, "attention heads H (divides d_model)"),
    INT_KEY("model.d_ff", d_ff, "1024", 1, 1 << 20, NULL, "MLP hidden width"),
    INT_KEY("model.max_seq_len", max_seq_len, "128", 1, 1 << 20, NULL,
            "learned positions (T <= this)"),
    INT_KEY("model.vocab_size", vocab_size, "4096", 257, 65536,
            "the vocabulary holds the 256 bytes plus merges, and shards store uint16 tokens",
            "tokens (shards hold uint16)"),
    ENUM_KEY("model.activation", activation, "gelu", qt_activation_names, "MLP activation"),
    ENUM_KEY("model.norm", norm, "layernorm", qt_norm_names, "normalization"),
    ENUM_KEY("model.pos", pos, "learned", qt_pos_names, "position encoding"),
    FLOAT_KEY("model.rope_theta", rope_theta, "10000", 1, 1, INF, 0, "the RoPE base must be > 1",
              "RoPE base"),
    ENUM_KEY("model.loss", loss, "clm", qt_loss_names, "training objective (mlm: bert)"),
    ENUM_KEY("model.norm_position", norm_position, "pre", qt_norm_position_names,
             "block norms: pre-LN, or post-LN (bert)"),
    BOOL_KEY("model.tie_embeddings", tie_embeddings, "1", "LM head shares the token embedding"),
    BOOL_KEY("model.bias", bias, "1", "linear and norm biases"),
    FLOAT_KEY("model.init_std", init_std, "0.02", 0, 1, 1, 0,
              "weights are drawn from N(0, init_std) with 0 < init_std <= 1",
              "N(0, init_std) init"),
    FLOAT_KEY("model.dropout", dropout, "0", 0, 0, 1, 1, "a dropout probability lies in [0, 1)",
              "embeddings, attention probs, residual branches"),
    FLOAT_KEY("model.attn_dropout", attn_dropout, "-1", -1, 0, 1, 1,
              "a dropout probability lies in [0, 1), or -1 for model.dropout",
              "attention probabilities (-1: = dropout)"),

    ENUM_KEY("attn.softmax", softmax, "vanilla", qt_softmax_names, "attention softmax variant"),
    FLOAT_KEY("attn.gamma", gamma, "0", -INF, 0, 0, 0, "clipped softmax needs gamma <= 0",
              "clipped: lower stretch, <= 0"),
    FLOAT_KEY("attn.zeta", zeta, "1", 1, 0, INF, 0, "clipped softmax needs zeta >= 1",
              "clipped: upper stretch, >= 1"),
    FLOAT_KEY("attn.alpha", alpha, "0", 0, 0, INF, 0,
              "alpha >= 0 (alpha > 0 sets gamma = -alpha / max_seq_len)",
              "clipped: > 0 sets gamma = -alpha / max_seq_len"),
    FLOAT_KEY("attn.eta", eta, "1.03", 0, 1, INF, 0, "NCS needs eta > 0 (p = 1 maps to eta)",
              "ncs: p = 1 maps to eta"),
    FLOAT_KEY("attn.beta", beta, "1", -INF, 0, INF, 0, "NCS needs a finite beta",
              "ncs: a uniform row maps to beta / N"),
    ENUM_KEY("attn.gate", gate, "none", qt_gate_names, "gated attention"),
    INT_KEY("attn.gate_n_hid", gate_n_hid, "0", 0, 65536, NULL,
            "mlp gate hidden width (0: d_head / 4)"),
    FLOAT_KEY("attn.gate_pi_init", gate_pi_init, "0.5", 0, 1, 1, 1,
              "the initial gate value is a sigmoid output, strictly inside (0, 1)",
              "initial gate value"),
    ENUM_KEY("attn.sink", sink, "none", qt_sink_names, "softmax sink (off_by_one: softmax1)"),

    INT_KEY("train.batch_size", batch_size, "8", 1, 1 << 20, NULL, "B, sequences per micro-batch"),
    INT_KEY("train.seq_len", seq_len, "128", 1, 1 << 20, NULL, "T (<= model.max_seq_len)"),
    INT_KEY("train.grad_accum", grad_accum, "1", 1, 1 << 20, NULL, "micro-batches per step"),
    INT_KEY("train.max_steps", max_steps, "1000", 1, INT_MAX, "a run takes at least one step",
            "optimizer steps"),
    FLOAT_KEY("train.lr", lr, "1e-3", 0, 1, INF, 0, "the peak learning rate must be > 0",
              "peak learning rate"),
    FLOAT_KEY("train.min_lr", min_lr, "1e-4", 0, 0, INF, 0, "the learning-rate floor must be >= 0",
              "floor of the decay"),
    INT_KEY("train.warmup_steps", warmup_steps, "100", 0, INT_MAX, "warmup steps are >= 0",
            "linear warmup from 0"),
    ENUM_KEY("train.schedule", schedule, "cosine", qt_sched_names, "learning-rate decay"),
    FLOAT_KEY("train.beta1", beta1, "0.9", 0, 0, 1, 1, "Adam's beta1 lies in [0, 1)", "Adam beta1"),
    FLOAT_KEY("train.beta2", beta2, "0.95", 0, 0, 1, 1, "Adam's beta2 lies in [0, 1)",
              "Adam beta2"),
    FLOAT_KEY("train.eps", eps, "1e-8", 0, 1, INF, 0, "Adam's eps must be > 0", "Adam epsilon"),
    FLOAT_KEY("train.weight_decay", weight_decay, "0.1", 0, 0, INF, 0, "weight decay must be >= 0",
              "decoupled weight decay"),
    BOOL_KEY("train.decay_norm_weights", decay_norm_weights, "0", "1 decays LayerNorm gains (OPT)"),
    FLOAT_KEY("train.grad_clip", grad_clip, "1", 0, 0, INF, 0, "the clip norm is >= 0 (0: off)",
              "global norm clip (0: off)"),
    {"train.seed", KEY_U64, OFF(seed), 0, 0, 0, 0, 0, NULL, 0, 0, "1337", NULL,
     "every random draw derives from it"},
    INT_KEY("train.threads", threads, "0", 0, 4096, NULL, "OpenMP threads (0: all cores)"),
    INT_KEY("train.log_every", log_every, "10", 1, INT_MAX, "log at least every N >= 1 steps",
            "steps between training lines"),
    INT_KEY("train.eval_every", eval_every, "200", 0, INT_MAX,
            "evaluation interval is >= 0 (0: at end)",
            "steps between evaluations (0: only at end)"),
    INT_KEY("train.eval_batches", eval_batches, "20", 1, INT_MAX,
            "an evaluation needs at least one batch", "validation batches per evaluation"),
    INT_KEY("train.ckpt_every", ckpt_every, "0", 0, INT_MAX,
            "checkpoint interval is >= 0 (0: at end)",
            "steps between checkpoints (0: only at end)"),
    ENUM_KEY("train.precision", precision, "auto", qt_precision_names,
             "storage dtype (auto: fp32 on CPU, fp16 on CUDA)"),
    FLOAT_KEY("train.loss_scale_init", loss_scale_init, "65536", 1, 0, 16777216.0, 0,
              "the initial loss scale lies in [1, 2^24]", "fp16: first loss scale"),
    INT_KEY("train.loss_scale_window", loss_scale_window, "2000", 1, INT_MAX,
            "the growth window is >= 1 step", "fp16: clean steps before the scale grows"),
    FLOAT_KEY("train.loss_scale_growth", loss_scale_growth, "2", 1, 1, 1024, 0,
              "the growth factor lies in (1, 1024]", "fp16: scale factor after a clean window"),
    FLOAT_KEY("train.loss_scale_backoff", loss_scale_backoff, "0.5", 0, 1, 1, 1,
              "the backoff factor lies in (0, 1)", "fp16: scale factor on inf/nan"),

    LISTED_ENUM_KEY("quant.mode", quant_mode, "none", qt_quant_mode_names, "quantized training"),
    // qat: 8-bit weights (per output channel) and inputs (per token), everything else off; v
    // (non-negative) on an unsigned grid when switched on (PAPERS.md section 6).
    QSPEC_KEYS("w", q_w, "qat weights", "8", "1"),
    QSPEC_KEYS("a", q_a, "qat linear inputs", "8", "1"),
    QSPEC_KEYS("g", q_g, "qat output gradients", "0", "1"),
    QSPEC_KEYS("m", q_m, "qat Adam first moment", "0", "1"),
    QSPEC_KEYS("v", q_v, "qat Adam second moment", "0", "0"),
    ENUM_KEY("quant.backward", q_backward, "dw", qt_quant_backward_names,
             "quantized gradient feeds dW (dw) or dX (dx, SwitchBack)"),
    BOOL_KEY("quant.int8_gemm", q_int8_gemm, "1",
             "8-bit symmetric W x A forwards on the INT8 GEMM"),
    INT_KEY("quant.dqt_bits", dqt_bits, "1", 1, 8, "DQT codes are ternary (1) or 2..8-bit",
            "dqt: 1 = ternary, else bits"),
    LISTED_ENUM_KEY("quant.dqt_scale", dqt_scale, "fixed", qt_dqt_scale_names, "dqt scale rule"),

    {"data.dir", KEY_STR, OFF(data_dir), sizeof(((qt_config *)0)->data_dir), 0, 0, 0, 0, NULL, 0, 0,
     "data/kjv", NULL, "tokenizer.bin, train_*.bin, val_*.bin"},
    FLOAT_KEY("data.mlm_prob", mlm_prob, "0.15", 0, 1, 1, 1,
              "the masked-LM share of chosen tokens lies in (0, 1)",
              "mlm: share of tokens chosen (80% [MASK], 10% random, 10% kept)"),

    FLOAT_KEY("dist.bucket_mb", dist_bucket_mb, "25", 0, 0, 1048576, 0,
              "the bucket size lies in [0, 2^20] MiB (0: one bucket)",
              "data-parallel gradient bucket, MiB (0: one)"),
    BOOL_KEY("dist.zero", dist_zero, "0", "1 shards Adam moments and masters over ranks (ZeRO-1)"),
    FLOAT_KEY("dist.timeout_s", dist_timeout_s, "60", 1, 0, 86400, 0,
              "the collective timeout lies in [1, 86400] seconds",
              "a collective not done after this long ends the run"),
};

#define N_KEYS ((int)(sizeof(keys) / sizeof(keys[0])))

// ---------------------------------------------------------------------------------------
// Defaults: a small model that trains on 2 CPU cores in a few minutes, from the table

static qt_status parse_value(const key_def *k, qt_config *cfg, const char *v, size_t len,
                             const char *origin);

void qt_config_defaults(qt_config *cfg) {
    // Zero first: padding and the tail of data_dir are then defined, so two configs that hold
    // the same values compare equal with memcmp.
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &keys[i];
        qt_status st = parse_value(k, cfg, k->def, strlen(k->def), "the key table");
        QT_ASSERT(st == QT_OK, "config: the default of %s does not parse: %s", k->name,
                  qt_last_error());
    }
}

float qt_config_gamma(const qt_config *cfg) {
    if (cfg->alpha > 0.0f) return -cfg->alpha / (float)cfg->max_seq_len;
    return cfg->gamma;
}

qt_dtype qt_config_precision_dtype(qt_precision precision, qt_dtype auto_dtype) {
    switch (precision) {
    case QT_PRECISION_AUTO: return auto_dtype;
    case QT_PRECISION_FP32: return QT_DTYPE_F32;
    case QT_PRECISION_FP16: return QT_DTYPE_F16;
    case QT_PRECISION_BF16: return QT_DTYPE_BF16;
    }
    return auto_dtype;
}

// ---------------------------------------------------------------------------------------
// Small string helpers

static const char *skip_space(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return s;
}

// Length of s[0, n) without trailing white space.
static size_t trim_right(const char *s, size_t n) {
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    return n;
}

static const key_def *find_key(const char *name, size_t len) {
    for (int i = 0; i < N_KEYS; i++) {
        if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0) return &keys[i];
    }
    return NULL;
}

// Levenshtein distance between a[0, na) and b (both short: key names).
static int edit_distance(const char *a, size_t na, const char *b) {
    size_t nb = strlen(b);
    if (na > 63 || nb > 63) return INT_MAX;
    int row[64];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            int best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

// The known key closest to an unknown one, or NULL when nothing is close. A name without its
// section ("n_layer") is compared with the part after the dot as well.
static const char *closest_key(const char *name, size_t len) {
    const char *best = NULL;
    int best_d = INT_MAX;
    for (int i = 0; i < N_KEYS; i++) {
        int d = edit_distance(name, len, keys[i].name);
        const char *dot = strchr(keys[i].name, '.');
        if (dot && memchr(name, '.', len) == NULL) {
            int ds = edit_distance(name, len, dot + 1);
            if (ds < d) d = ds;
        }
        if (d < best_d) {
            best_d = d;
            best = keys[i].name;
        }
    }
    int limit = (int)len / 3 > 2 ? (int)len / 3 : 2;
    return best_d <= limit ? best : NULL;
}

// The shortest %.Ng (N <= 9) that reads back as the same float: "0.02", not "0.0199999996".
// %.9g always does, so a written config loads back bit for bit.
static void format_float(float x, char *buf, size_t n) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)x);
        float back = strtof(buf, NULL);
        if (memcmp(&back, &x, sizeof x) == 0) return;
    }
    snprintf(buf, n, "%.9g", (double)x);
}

// "[0, 1)", ">= 1", "<= 0", "> 0": the allowed range of a numeric key.
static void range_text(const key_def *k, char *buf, size_t n) {
    int has_lo = isfinite(k->lo), has_hi = isfinite(k->hi);
    if (has_lo && has_hi) {
        snprintf(buf, n, "in %c%.10g, %.10g%c", k->lo_open ? '(' : '[', k->lo, k->hi,
                 k->hi_open ? ')' : ']');
    } else if (has_lo) {
        snprintf(buf, n, "%s %.10g", k->lo_open ? ">" : ">=", k->lo);
    } else if (has_hi) {
        snprintf(buf, n, "%s %.10g", k->hi_open ? "<" : "<=", k->hi);
    } else {
        snprintf(buf, n, "finite");
    }
}

static int in_range(const key_def *k, double v) {
    // Written so that NaN fails every test.
    if (!(k->lo_open ? v > k->lo : v >= k->lo)) return 0;
    if (!(k->hi_open ? v < k->hi : v <= k->hi)) return 0;
    return 1;
}

static qt_status range_error(const key_def *k, const char *origin, const char *value) {
    char range[96];
    range_text(k, range, sizeof range);
    if (k->why) {
        return qt_error(QT_ERR_ARG, "%s%s%s = %s is impossible: %s; set %s %s",
                        origin ? origin : "", origin ? ": " : "", k->name, value, k->why, k->name,
                        range);
    }
    return qt_error(QT_ERR_ARG, "%s%s%s = %s is out of range; set %s %s", origin ? origin : "",
                    origin ? ": " : "", k->name, value, k->name, range);
}

// ---------------------------------------------------------------------------------------
// Parsing one value into the field (the field is written only when the value is valid)

static void choices_text(const key_def *k, char *buf, size_t n) {
    qt_names_join(k->choices, k->allowed, "|", buf, n);
}

// The value of an enum key's field, or -1 when it is not one of the key's choices.
static int enum_value(const key_def *k, const qt_config *cfg) {
    int x = *(const int *)((const char *)cfg + k->offset);
    return x < k->choices->n && qt_names_allow(k->allowed, x) ? x : -1;
}

// Unquotes a "..." value (escapes \" and \\) into out[cap]; returns 0 on a malformed string.
static int unquote(const char *v, size_t len, char *out, size_t cap, const char **why) {
    size_t o = 0;
    if (len < 2 || v[len - 1] != '"') {
        *why = "the closing quote is missing";
        return 0;
    }
    for (size_t i = 1; i + 1 < len; i++) {
        char c = v[i];
        if (c == '\\') {
            if (i + 2 >= len || (v[i + 1] != '"' && v[i + 1] != '\\')) {
                *why = "only \\\" and \\\\ are escapes";
                return 0;
            }
            c = v[++i];
        } else if (c == '"') {
            *why = "a quote inside the string must be written \\\"";
            return 0;
        }
        if (o + 1 >= cap) {
            *why = "it is too long";
            return 0;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return 1;
}

static qt_status parse_value(const key_def *k, qt_config *cfg, const char *v, size_t len,
                             const char *origin) {
    char *field = (char *)cfg + k->offset;
    const char *sep = origin ? ": " : "";
    const char *org = origin ? origin : "";
    char text[128]; // the value as a C string, for strtol and friends and for messages
    if (k->type != KEY_STR) {
        if (len >= sizeof text) {
            return qt_error(QT_ERR_ARG, "%s%s%s = %.40s... is too long to be a value", org, sep,
                            k->name, v);
        }
        memcpy(text, v, len);
        text[len] = '\0';
    }
    if (len == 0) {
        return qt_error(QT_ERR_ARG, "%s%s%s has no value; write `%s = <value>`", org, sep, k->name,
                        k->name);
    }

    switch (k->type) {
    case KEY_INT:
    case KEY_BOOL: {
        char *end;
        errno = 0;
        long long x = strtoll(text, &end, 10);
        if (end == text || *end != '\0') {
            if (end != text) {
                return qt_error(
                    QT_ERR_ARG,
                    "%s%s%s = %s is not an integer (trailing '%s'); write e.g. %s = %lld", org, sep,
                    k->name, text, end, k->name, x);
            }
            return qt_error(QT_ERR_ARG, "%s%s%s = %s is not an integer; write e.g. %s = %d", org,
                            sep, k->name, text, k->name, *(int *)field);
        }
        if (k->type == KEY_BOOL && !(errno == 0 && (x == 0 || x == 1))) {
            return qt_error(QT_ERR_ARG, "%s%s%s = %s is not a switch; use 0 (off) or 1 (on)", org,
                            sep, k->name, text);
        }
        if (errno == ERANGE || x < INT_MIN || x > INT_MAX) {
            char range[96];
            range_text(k, range, sizeof range);
            return qt_error(QT_ERR_ARG, "%s%s%s = %s does not fit in an int; set %s %s", org, sep,
                            k->name, text, k->name, range);
        }
        if (!in_range(k, (double)x)) return range_error(k, origin, text);
        *(int *)field = (int)x;
        return QT_OK;
    }
    case KEY_FLOAT: {
        char *end;
        errno = 0;
        float x = strtof(text, &end);
        if (end == text || *end != '\0') {
            if (end != text) {
                return qt_error(QT_ERR_ARG,
                                "%s%s%s = %s is not a number (trailing '%s'); write e.g. %s = %g",
                                org, sep, k->name, text, end, k->name, (double)x);
            }
            return qt_error(QT_ERR_ARG, "%s%s%s = %s is not a number; write e.g. %s = %g", org, sep,
                            k->name, text, k->name, (double)*(float *)field);
        }
        if (errno == ERANGE || !isfinite(x)) {
            return qt_error(QT_ERR_ARG,
                            "%s%s%s = %s is not a finite float; use 0 or |x| in [%.2g, %.2g]", org,
                            sep, k->name, text, (double)FLT_MIN, (double)FLT_MAX);
        }
        if (!in_range(k, (double)x)) return range_error(k, origin, text);
        *(float *)field = x;
        return QT_OK;
    }
    case KEY_U64: {
        char *end;
        if (text[0] == '-' || text[0] == '+') {
            return qt_error(QT_ERR_ARG,
                            "%s%s%s = %s: write a plain unsigned integer, e.g. %s = 1337", org, sep,
                            k->name, text, k->name);
        }
        errno = 0;
        unsigned long long x = strtoull(text, &end, 10);
        if (end == text || *end != '\0') {
            return qt_error(QT_ERR_ARG,
                            "%s%s%s = %s is not an unsigned integer; write e.g. %s = 1337", org,
                            sep, k->name, text, k->name);
        }
        if (errno == ERANGE) {
            return qt_error(QT_ERR_ARG, "%s%s%s = %s does not fit in 64 bits; use a value <= %llu",
                            org, sep, k->name, text, (unsigned long long)UINT64_MAX);
        }
        *(uint64_t *)field = (uint64_t)x;
        return QT_OK;
    }
    case KEY_ENUM: {
        int x = qt_name_value(k->choices, text, len, k->allowed);
        if (x >= 0) {
            *(int *)field = x;
            return QT_OK;
        }
        char names[128];
        choices_text(k, names, sizeof names);
        return qt_error(QT_ERR_ARG, "%s%s%s = %s is not a choice; use one of %s", org, sep, k->name,
                        text, names);
    }
    case KEY_STR: {
        char buf[1024];
        if (k->cap > sizeof buf) return qt_error(QT_ERR_INTERNAL, "%s: capacity", k->name);
        if (v[0] == '"') {
            const char *why = "";
            if (!unquote(v, len, buf, k->cap, &why)) {
                return qt_error(QT_ERR_ARG, "%s%s%s = %.*s is not a valid quoted string: %s", org,
                                sep, k->name, (int)(len > 80 ? 80 : len), v, why);
            }
        } else {
            if (len + 1 > k->cap) {
                return qt_error(QT_ERR_ARG, "%s%s%s is %zu bytes long; use a path under %zu bytes",
                                org, sep, k->name, len, k->cap);
            }
            memcpy(buf, v, len);
            buf[len] = '\0';
        }
        if (buf[0] == '\0') {
            return qt_error(QT_ERR_ARG, "%s%s%s is empty; name a directory, e.g. %s = data/kjv",
                            org, sep, k->name, k->name);
        }
        for (const char *c = buf; *c; c++) {
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                return qt_error(QT_ERR_ARG, "%s%s%s holds a control character; rename the path",
                                org, sep, k->name);
            }
        }
        memset(field, 0, k->cap); // defined tail: equal configs compare equal with memcmp
        strcpy(field, buf);
        return QT_OK;
    }
    }
    return qt_error(QT_ERR_INTERNAL, "%s: unknown key type %d", k->name, (int)k->type);
}

// Splits `key = value` and applies it. Returns the key's table index through *index.
static qt_status apply(qt_config *cfg, const char *assignment, const char *origin, int *index) {
    const char *sep = origin ? ": " : "";
    const char *org = origin ? origin : "";
    if (!cfg || !assignment) return qt_error(QT_ERR_ARG, "qt_config_set: NULL argument");
    const char *s = skip_space(assignment);
    const char *eq = strchr(s, '=');
    if (!eq) {
        return qt_error(QT_ERR_ARG, "%s%sexpected `key = value`, got '%s'", org, sep, s);
    }
    size_t klen = trim_right(s, (size_t)(eq - s));
    if (klen == 0) {
        return qt_error(QT_ERR_ARG, "%s%sthe key is missing in '%s'; write `key = value`", org, sep,
                        s);
    }
    const key_def *k = find_key(s, klen);
    if (!k) {
        const char *near = closest_key(s, klen);
        if (near) {
            return qt_error(QT_ERR_ARG, "%s%sunknown key '%.*s'; did you mean '%s'?", org, sep,
                            (int)klen, s, near);
        }
        return qt_error(QT_ERR_ARG, "%s%sunknown key '%.*s'; configs/default.conf lists every key",
                        org, sep, (int)klen, s);
    }
    const char *v = skip_space(eq + 1);
    size_t vlen = trim_right(v, strlen(v));
    // Parse into a copy, so that a rejected value leaves *cfg as it was.
    qt_config tmp = *cfg;
    QT_TRY(parse_value(k, &tmp, v, vlen, origin));
    *cfg = tmp;
    if (index) *index = (int)(k - keys);
    return QT_OK;
}

qt_status qt_config_set(qt_config *cfg, const char *assignment, const char *origin) {
    return apply(cfg, assignment, origin, NULL);
}

// Cuts a line at the first '#' that is not inside a "..." string.
static void strip_comment(char *line) {
    int quoted = 0;
    for (char *c = line; *c; c++) {
        if (quoted && *c == '\\' && c[1]) {
            c++;
        } else if (*c == '"') {
            quoted = !quoted;
        } else if (*c == '#' && !quoted) {
            *c = '\0';
            return;
        }
    }
}

qt_status qt_config_parse(qt_config *cfg, const char *text, size_t len, const char *source) {
    if (!cfg || (!text && len > 0)) return qt_error(QT_ERR_ARG, "qt_config_parse: NULL argument");
    if (!source) source = "config";
    // One writable copy of the whole text: lines are cut in place, so a line has no length
    // limit.
    char *buf = malloc(len + 1);
    if (!buf) return qt_error(QT_ERR_OOM, "cannot allocate %zu bytes to parse %s", len, source);
    if (len) memcpy(buf, text, len);
    buf[len] = '\0';
    qt_config tmp = *cfg; // applied to *cfg only when the whole text is good
    int first_line[N_KEYS] = {0};
    qt_status st = QT_OK;
    long lineno = 0;
    for (size_t start = 0; start < len && st == QT_OK;) {
        char *line = buf + start;
        char *nl = memchr(line, '\n', len - start);
        size_t n = nl ? (size_t)(nl - line) : len - start;
        line[n] = '\0';
        start += n + 1;
        lineno++;
        char origin[1200];
        snprintf(origin, sizeof origin, "%s:%ld", source, lineno);
        if (memchr(line, '\0', n) != NULL) {
            st =
                qt_error(QT_ERR_ARG, "%s: the line holds a NUL byte; is this a text file?", origin);
            break;
        }
        strip_comment(line);
        if (*skip_space(line) == '\0') continue;
        int idx = -1;
        st = apply(&tmp, line, origin, &idx);
        if (st != QT_OK) break;
        if (first_line[idx]) {
            st = qt_error(QT_ERR_ARG, "%s: %s is set again (first at line %d); keep one of them",
                          origin, keys[idx].name, first_line[idx]);
            break;
        }
        first_line[idx] = (int)(lineno < INT_MAX ? lineno : INT_MAX);
    }
    if (st == QT_OK) *cfg = tmp;
    free(buf);
    return st;
}

qt_status qt_config_load(qt_config *cfg, const char *path) {
    if (!cfg || !path) return qt_error(QT_ERR_ARG, "qt_config_load: NULL argument");
    FILE *f = fopen(path, "r");
    if (!f) {
        return qt_error(QT_ERR_IO,
                        "cannot open config %s: %s; check the path (presets are in "
                        "configs/)",
                        path, strerror(errno));
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    qt_status st = QT_OK;
    for (;;) {
        if (len == cap) {
            size_t c = cap ? 2 * cap : 4096;
            char *t = realloc(text, c);
            if (!t) {
                st = qt_error(QT_ERR_OOM, "cannot allocate %zu bytes to read config %s", c, path);
                break;
            }
            text = t;
            cap = c;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (st == QT_OK && ferror(f))
        st = qt_error(QT_ERR_IO, "reading config %s failed: %s", path, strerror(errno));
    fclose(f);
    if (st == QT_OK) st = qt_config_parse(cfg, text, len, path);
    free(text);
    return st;
}

// ---------------------------------------------------------------------------------------
// Validation: every key's range from the table, then the relations between keys

static qt_status check_key_range(const qt_config *cfg, const key_def *k) {
    const char *field = (const char *)cfg + k->offset;
    char text[64];
    switch (k->type) {
    case KEY_INT:
    case KEY_BOOL: {
        int x = *(const int *)field;
        if (in_range(k, (double)x)) return QT_OK;
        if (k->type == KEY_BOOL) {
            return qt_error(QT_ERR_ARG, "%s = %d is not a switch; use 0 (off) or 1 (on)", k->name,
                            x);
        }
        snprintf(text, sizeof text, "%d", x);
        return range_error(k, NULL, text);
    }
    case KEY_FLOAT: {
        float x = *(const float *)field;
        if (isfinite(x) && in_range(k, (double)x)) return QT_OK;
        format_float(x, text, sizeof text);
        return range_error(k, NULL, text);
    }
    case KEY_U64: return QT_OK;
    case KEY_ENUM: {
        int x = *(const int *)field;
        if (enum_value(k, cfg) >= 0) return QT_OK;
        char names[128];
        choices_text(k, names, sizeof names);
        return qt_error(QT_ERR_ARG, "%s holds the value %d, which names no choice; use one of %s",
                        k->name, x, names);
    }
    case KEY_STR:
        if (memchr(field, '\0', k->cap) == NULL) {
            return qt_error(QT_ERR_ARG, "%s is not NUL-terminated; set it with qt_config_set",
                            k->name);
        }
        if (field[0] == '\0') {
            return qt_error(QT_ERR_ARG, "%s is empty; name a directory, e.g. %s = data/kjv",
                            k->name, k->name);
        }
        return QT_OK;
    }
    return qt_error(QT_ERR_INTERNAL, "%s: unknown key type %d", k->name, (int)k->type);
}

qt_status qt_config_validate(const qt_config *cfg) {
    if (!cfg) return qt_error(QT_ERR_ARG, "qt_config_validate: NULL config");
    for (int i = 0; i < N_KEYS; i++) QT_TRY(check_key_range(cfg, &keys[i]));

    if (cfg->d_model % cfg->n_head != 0) {
        int lower = cfg->n_head, upper = cfg->n_head;
        while (lower > 1 && cfg->d_model % lower != 0) lower--;
        while (upper < cfg->d_model && cfg->d_model % upper != 0) upper++;
        return qt_error(QT_ERR_ARG,
                        "model.n_head = %d does not divide model.d_model = %d; use model.n_head = "
                        "%d or %d, or change model.d_model",
                        cfg->n_head, cfg->d_model, lower, upper);
    }
    if (cfg->seq_len > cfg->max_seq_len) {
        return qt_error(QT_ERR_ARG,
                        "train.seq_len = %d exceeds model.max_seq_len = %d; use train.seq_len <= "
                        "%d or raise model.max_seq_len",
                        cfg->seq_len, cfg->max_seq_len, cfg->max_seq_len);
    }
    if (!(cfg->attn_dropout == -1.0f || cfg->attn_dropout >= 0.0f)) {
        return qt_error(QT_ERR_ARG,
                        "model.attn_dropout = %g is impossible: use -1 (same as model.dropout) "
                        "or a probability in [0, 1)",
                        (double)cfg->attn_dropout);
    }
    if (cfg->alpha > 0.0f && cfg->gamma != 0.0f) {
        return qt_error(
            QT_ERR_ARG,
            "attn.alpha = %g and attn.gamma = %g are both set; alpha > 0 sets gamma "
            "= -alpha / max_seq_len, so set only one (attn.gamma = 0 or attn.alpha = 0)",
            (double)cfg->alpha, (double)cfg->gamma);
    }
    // NCS stretches p by (N eta - beta) / (N - 1): that slope must be positive for every N >= 2,
    // i.e. 2 eta > beta given eta > 0 (PAPERS.md section 2).
    if (!(2.0 * (double)cfg->eta > (double)cfg->beta)) {
        return qt_error(QT_ERR_ARG,
                        "attn.eta = %g, attn.beta = %g are impossible: NCS needs N*eta - beta > "
                        "0 for every N >= 2, i.e. 2*eta > beta; lower attn.beta below %g",
                        (double)cfg->eta, (double)cfg->beta, 2.0 * (double)cfg->eta);
    }
    int d_head = cfg->d_model / cfg->n_head;
    if (cfg->gate == QT_GATE_MLP && cfg->gate_n_hid == 0 && d_head / 4 < 1) {
        return qt_error(QT_ERR_ARG,
                        "attn.gate = mlp with attn.gate_n_hid = 0 uses d_head / 4 = %d / 4 = 0 "
                        "hidden units; set attn.gate_n_hid >= 1",
                        d_head);
    }
    if (cfg->pos == QT_POS_ROPE && (cfg->d_model / cfg->n_head) % 2 != 0)
        return qt_error(QT_ERR_ARG,
                        "model.pos = rope rotates pairs of a head's dimensions: d_head = %d / %d "
                        "= %d must be even",
                        cfg->d_model, cfg->n_head, cfg->d_model / cfg->n_head);
    if (cfg->arch == QT_ARCH_LLAMA) {
        const char *bad = cfg->norm != QT_NORM_RMSNORM        ? "model.norm = rmsnorm"
                          : cfg->pos != QT_POS_ROPE           ? "model.pos = rope"
                          : cfg->activation != QT_ACT_SWIGLU  ? "model.activation = swiglu"
                          : cfg->bias                         ? "model.bias = 0"
                          : cfg->tie_embeddings               ? "model.tie_embeddings = 0"
                                                              : NULL;
        if (bad)
            return qt_error(QT_ERR_ARG,
                            "model.arch = llama means RMSNorm, RoPE, SwiGLU, no biases and an "
                            "untied head: set %s (configs/llama-tiny.conf has them all)",
                            bad);
    }
    if ((cfg->arch == QT_ARCH_BERT) != (cfg->loss == QT_LOSS_MLM))
        return qt_error(QT_ERR_ARG,
                        "model.arch = %s with model.loss = %s: the masked-LM loss is the "
                        "encoder's and only its; set model.arch = bert with model.loss = mlm, or "
                        "model.loss = clm for a decoder (configs/bert-6l.conf is an encoder)",
                        qt_name(&qt_arch_names, cfg->arch), qt_name(&qt_loss_names, cfg->loss));
    if (cfg->arch != QT_ARCH_BERT && cfg->norm_position == QT_NORM_POST)
        return qt_error(QT_ERR_ARG,
                        "model.norm_position = post is BERT's post-LN block; the decoders are "
                        "pre-LN: set model.norm_position = pre or model.arch = bert");
    if (cfg->arch == QT_ARCH_BERT) {
        const char *bad = cfg->norm != QT_NORM_LAYERNORM   ? "model.norm = layernorm"
                          : cfg->pos != QT_POS_LEARNED     ? "model.pos = learned"
                          : cfg->activation == QT_ACT_SWIGLU ? "model.activation = gelu"
                          : !cfg->tie_embeddings           ? "model.tie_embeddings = 1"
                                                           : NULL;
        if (bad)
            return qt_error(QT_ERR_ARG,
                            "model.arch = bert means LayerNorm, learned positions, a GELU or ReLU "
                            "MLP and an MLM decoder tied to the token embedding: set %s "
                            "(configs/bert-6l.conf has them all)",
                            bad);
        if (cfg->vocab_size < 257 + QT_MLM_SPECIALS)
            return qt_error(QT_ERR_ARG,
                            "model.vocab_size = %d leaves no room for the encoder's %d special "
                            "tokens after the 256 bytes; use model.vocab_size >= %d",
                            cfg->vocab_size, QT_MLM_SPECIALS, 257 + QT_MLM_SPECIALS);
    }
    if (cfg->quant_mode == QT_QMODE_QAT) {
        const qt_quant_spec *sp[5] = {&cfg->q_w, &cfg->q_a, &cfg->q_g, &cfg->q_m, &cfg->q_v};
        const char *role[5] = {"w", "a", "g", "m", "v"};
        for (int i = 0; i < 5; i++) {
            const qt_quant_spec *q = sp[i];
            if (q->bits == 0) continue;
            if (q->range == QT_QUANT_RANGE_ABSMEAN && !q->symmetric)
                return qt_error(QT_ERR_ARG,
                                "quant.%s_range = absmean needs a symmetric grid: set "
                                "quant.%s_symmetric = 1 or quant.%s_range = absmax",
                                role[i], role[i], role[i]);
            if (q->bits == QT_QUANT_TERNARY && !q->symmetric)
                return qt_error(QT_ERR_ARG,
                                "quant.%s_bits = 1 (ternary) is symmetric: set "
                                "quant.%s_symmetric = 1",
                                role[i], role[i]);
        }
    }
    if (cfg->min_lr > cfg->lr) {
        return qt_error(QT_ERR_ARG,
                        "train.min_lr = %g exceeds train.lr = %g; the decay floor must be <= "
                        "the peak, lower train.min_lr",
                        (double)cfg->min_lr, (double)cfg->lr);
    }
    return QT_OK;
}

// ---------------------------------------------------------------------------------------
// Writing: every key, in table order, in a form qt_config_load reads back exactly

// A data.dir value needs quotes when it would not read back as itself unquoted.
static int needs_quotes(const char *s) {
    if (s[0] == '\0') return 1;
    if (isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1])) return 1;
    return strpbrk(s, "#\"") != NULL;
}

static int write_value(FILE *out, const key_def *k, const qt_config *cfg) {
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case KEY_INT:
    case KEY_BOOL: return fprintf(out, "%d", *(const int *)field);
    case KEY_FLOAT: {
        char buf[32];
        format_float(*(const float *)field, buf, sizeof buf);
        return fprintf(out, "%s", buf);
    }
    case KEY_U64: return fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)field);
    case KEY_ENUM: {
        int x = enum_value(k, cfg);
        return fprintf(out, "%s", x >= 0 ? qt_name(k->choices, x) : "?");
    }
    case KEY_STR: {
        if (!needs_quotes(field)) return fprintf(out, "%s", field);
        int total = 0;
        if (fputc('"', out) == EOF) return -1;
        for (const char *c = field; *c; c++) {
            if ((*c == '"' || *c == '\\') && fputc('\\', out) == EOF) return -1;
            if (fputc(*c, out) == EOF) return -1;
            total++;
        }
        if (fputc('"', out) == EOF) return -1;
        return total + 2;
    }
    }
    return -1;
}

qt_status qt_config_write(const qt_config *cfg, FILE *out) {
    if (!cfg || !out) return qt_error(QT_ERR_ARG, "qt_config_write: NULL argument");
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &keys[i];
        if (k->type == KEY_ENUM && enum_value(k, cfg) < 0) {
            return qt_error(QT_ERR_ARG, "qt_config_write: %s holds %d, which names no choice",
                            k->name, *(const int *)((const char *)cfg + k->offset));
        }
        const char *dot = strchr(k->name, '.');
        if (i > 0 && strncmp(k->name, keys[i - 1].name, (size_t)(dot - k->name) + 1) != 0) {
            if (fputc('\n', out) == EOF) goto io;
        }
        int w = fprintf(out, "%-24s = ", k->name);
        if (w < 0) goto io;
        int v = write_value(out, k, cfg);
        if (v < 0) goto io;
        int pad = 12 - v;
        char choices[128] = "";
        if (k->type == KEY_ENUM && k->list_choices) {
            choices[0] = ':';
            choices[1] = ' ';
            choices_text(k, choices + 2, sizeof choices - 2);
        }
        if (fprintf(out, "%*s # %s%s\n", pad > 0 ? pad : 0, "", k->help, choices) < 0) goto io;
    }
    if (fflush(out) != 0 || ferror(out)) goto io;
    return QT_OK;
io:
    return qt_error(QT_ERR_IO, "writing the config failed: %s; check the disk and the path",
                    strerror(errno));
}

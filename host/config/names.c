// names.c: the name tables of qtrain/names.h, and lookups in both directions.
//
// Each array is indexed by the enum's value; the _Static_asserts tie an array's length to the
// enum's last value, so adding a value without its name fails the build.
#include "qtrain/names.h"

#include <stdio.h>
#include <string.h>

#define TABLE(name, ...)                                                                           \
    static const char *const name##_list[] = {__VA_ARGS__};                                        \
    const qt_names name = {name##_list, (int)(sizeof name##_list / sizeof name##_list[0])}
#define COUNT(list) ((int)(sizeof list / sizeof list[0]))

TABLE(qt_arch_names, "opt", "llama", "bert");
TABLE(qt_activation_names, "gelu", "relu", "swiglu");
TABLE(qt_norm_names, "layernorm", "rmsnorm");
TABLE(qt_pos_names, "learned", "rope");
TABLE(qt_loss_names, "clm", "mlm");
TABLE(qt_norm_position_names, "pre", "post");
TABLE(qt_sched_names, "linear", "cosine", "constant");
TABLE(qt_precision_names, "auto", "fp32", "fp16", "bf16");
TABLE(qt_softmax_names, "vanilla", "clipped", "ncs");
TABLE(qt_gate_names, "none", "linear", "mlp", "all_heads", "elementwise");
TABLE(qt_sink_names, "none", "off_by_one", "learned");
TABLE(qt_quant_mode_names, "none", "qat", "bitnet", "dqt");
TABLE(qt_quant_backward_names, "dw", "dx");
TABLE(qt_dqt_scale_names, "fixed", "absmax_pre", "absmean");
TABLE(qt_quant_granularity_names, "tensor", "row", "group");
TABLE(qt_quant_rounding_names, "nearest", "stochastic");
TABLE(qt_quant_range_names, "absmax", "absmean", "minmax", "percentile", "mse", "fixed");

_Static_assert(COUNT(qt_arch_names_list) == QT_ARCH_BERT + 1, "qt_arch names");
_Static_assert(COUNT(qt_activation_names_list) == QT_ACT_SWIGLU + 1, "qt_activation names");
_Static_assert(COUNT(qt_norm_names_list) == QT_NORM_RMSNORM + 1, "qt_norm names");
_Static_assert(COUNT(qt_pos_names_list) == QT_POS_ROPE + 1, "qt_pos names");
_Static_assert(COUNT(qt_loss_names_list) == QT_LOSS_MLM + 1, "qt_loss names");
_Static_assert(COUNT(qt_norm_position_names_list) == QT_NORM_POST + 1, "qt_norm_position names");
_Static_assert(COUNT(qt_sched_names_list) == QT_SCHED_CONSTANT + 1, "qt_sched names");
_Static_assert(COUNT(qt_precision_names_list) == QT_PRECISION_BF16 + 1, "qt_precision names");
_Static_assert(COUNT(qt_softmax_names_list) == QT_SOFTMAX_NCS + 1, "qt_softmax_kind names");
_Static_assert(COUNT(qt_gate_names_list) == QT_GATE_ELEMENTWISE + 1, "qt_gate_kind names");
_Static_assert(COUNT(qt_sink_names_list) == QT_SINK_LEARNED + 1, "qt_sink_kind names");
_Static_assert(COUNT(qt_quant_mode_names_list) == QT_QMODE_DQT + 1, "qt_quant_mode names");
_Static_assert(COUNT(qt_quant_backward_names_list) == QT_QBWD_DX + 1, "qt_quant_backward names");
_Static_assert(COUNT(qt_dqt_scale_names_list) == QT_DQT_SCALE_ABSMEAN + 1, "qt_dqt_scale names");
_Static_assert(COUNT(qt_quant_granularity_names_list) == QT_QUANT_PER_GROUP + 1,
               "qt_quant_granularity names");
_Static_assert(COUNT(qt_quant_rounding_names_list) == QT_QUANT_STOCHASTIC + 1,
               "qt_quant_rounding names");
_Static_assert(COUNT(qt_quant_range_names_list) == QT_QUANT_RANGE_FIXED + 1,
               "qt_quant_range names");

int qt_names_allow(unsigned allowed, int value) {
    return value >= 0 && value < 32 && (allowed & QT_NAME_BIT(value)) != 0;
}

const char *qt_name(const qt_names *t, int value) {
    return value >= 0 && value < t->n ? t->names[value] : "?";
}

int qt_name_value(const qt_names *t, const char *s, size_t len, unsigned allowed) {
    for (int v = 0; v < t->n; v++)
        if (qt_names_allow(allowed, v) && strlen(t->names[v]) == len &&
            memcmp(t->names[v], s, len) == 0)
            return v;
    return -1;
}

void qt_names_join(const qt_names *t, unsigned allowed, const char *sep, char *buf, size_t n) {
    size_t used = 0;
    if (n == 0) return;
    buf[0] = '\0';
    for (int v = 0; v < t->n && used < n; v++) {
        if (!qt_names_allow(allowed, v)) continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? sep : "", t->names[v]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

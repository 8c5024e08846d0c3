// variants.c: the variants `qtrain study` trains, by name: the one table mapping a name to
// its config assignments (qtrain/study.h). The attention variants are README "Attention
// variants" (PAPERS.md sections 1-3); their constants are those of the default-*.conf presets.
#include <stdio.h>
#include <string.h>

#include "qtrain/study.h"

// The plain attention every variant starts from, so that a base config with, say, a gate does
// not leak into the variants that name none.
#define PLAIN_SOFTMAX "attn.softmax=vanilla"
#define NO_GATE "attn.gate=none"
#define NO_SINK "attn.sink=none"

const qt_study_variant qt_study_variants[] = {
    {"vanilla", {PLAIN_SOFTMAX, NO_GATE, NO_SINK, NULL}, "softmax(QK^T / sqrt(d))"},
    // gamma = -alpha / max_seq_len: -0.025 at T = 128 (configs/default-clipped.conf).
    {"clipped",
     {"attn.softmax=clipped", "attn.gamma=0", "attn.alpha=3.2", "attn.zeta=1", NO_GATE, NO_SINK,
      NULL},
     "clipped softmax, gamma = -3.2 / max_seq_len, zeta = 1"},
    {"ncs",
     {"attn.softmax=ncs", "attn.eta=1.03", "attn.beta=1", NO_GATE, NO_SINK, NULL},
     "length-normalized clipped softmax, eta 1.03, beta 1"},
    {"gated-linear",
     {PLAIN_SOFTMAX, "attn.gate=linear", "attn.gate_pi_init=0.25", NO_SINK, NULL},
     "gated attention, Linear(d_head -> 1) per head, initial gate 0.25"},
    {"gated-mlp",
     {PLAIN_SOFTMAX, "attn.gate=mlp", "attn.gate_pi_init=0.25", NO_SINK, NULL},
     "gated attention, an MLP gate per head, initial gate 0.25"},
    {"gated-all-heads",
     {PLAIN_SOFTMAX, "attn.gate=all_heads", "attn.gate_pi_init=0.25", NO_SINK, NULL},
     "gated attention, Linear(d_model -> H) over all heads, initial gate 0.25"},
    {"gated-elementwise",
     {PLAIN_SOFTMAX, "attn.gate=elementwise", NO_SINK, NULL},
     "elementwise gate, sigmoid(x W + b) per channel"},
    {"off-by-one", {PLAIN_SOFTMAX, NO_GATE, "attn.sink=off_by_one", NULL},
     "off-by-one softmax (softmax1)"},
    {"learned-sink", {PLAIN_SOFTMAX, NO_GATE, "attn.sink=learned", NULL},
     "a learned sink logit per head"},
};
const int qt_study_n_variants = (int)(sizeof qt_study_variants / sizeof qt_study_variants[0]);

const qt_study_variant *qt_study_variant_find(const char *name) {
    for (int i = 0; i < qt_study_n_variants; i++)
        if (strcmp(qt_study_variants[i].name, name) == 0) return &qt_study_variants[i];
    return NULL;
}

void qt_study_variant_names(char *buf, size_t n) {
    size_t used = 0;
    if (n == 0) return;
    buf[0] = '\0';
    for (int i = 0; i < qt_study_n_variants && used < n; i++) {
        int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", qt_study_variants[i].name);
        if (w < 0) break;
        used += (size_t)w;
    }
}

qt_status qt_study_variant_apply(qt_config *cfg, const qt_study_variant *v) {
    char origin[96];
    snprintf(origin, sizeof origin, "variant %s", v->name);
    for (int i = 0; v->assignments[i]; i++) QT_TRY(qt_config_set(cfg, v->assignments[i], origin));
    return QT_OK;
}

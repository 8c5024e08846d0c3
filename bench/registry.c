// bench/registry.c: the list of op families with a benchmark, and the run over a selection
// (bench/registry.h). A new family adds its qt_bench_family_<name> here.
#include "bench/registry.h"

#include <string.h>

extern const qt_bench_family qt_bench_family_activation, qt_bench_family_adamw,
    qt_bench_family_attention, qt_bench_family_crossentropy, qt_bench_family_dqt,
    qt_bench_family_dropout, qt_bench_family_elementwise, qt_bench_family_embedding,
    qt_bench_family_gate, qt_bench_family_int8_gemm, qt_bench_family_layernorm,
    qt_bench_family_linear, qt_bench_family_quant, qt_bench_family_rmsnorm, qt_bench_family_rope,
    qt_bench_family_softmax_clip, qt_bench_family_sumsq, qt_bench_family_swiglu;

const qt_bench_family *const qt_bench_families[] = {
    &qt_bench_family_activation,   &qt_bench_family_adamw,     &qt_bench_family_attention,
    &qt_bench_family_crossentropy, &qt_bench_family_dqt,       &qt_bench_family_dropout,
    &qt_bench_family_elementwise,  &qt_bench_family_embedding, &qt_bench_family_gate,
    &qt_bench_family_int8_gemm,    &qt_bench_family_layernorm, &qt_bench_family_linear,
    &qt_bench_family_quant,        &qt_bench_family_rmsnorm,   &qt_bench_family_rope,
    &qt_bench_family_softmax_clip, &qt_bench_family_sumsq,     &qt_bench_family_swiglu,
};
const int qt_bench_n_families = (int)(sizeof qt_bench_families / sizeof qt_bench_families[0]);

const qt_bench_family *qt_bench_family_find(const char *name) {
    for (int i = 0; i < qt_bench_n_families; i++)
        if (strcmp(qt_bench_families[i]->name, name) == 0) return qt_bench_families[i];
    return NULL;
}

void qt_bench_family_names(char *buf, size_t len) {
    size_t used = 0;
    if (len) buf[0] = '\0';
    for (int i = 0; i < qt_bench_n_families && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? " " : "", qt_bench_families[i]->name);
        if (w < 0) break;
        used += (size_t)w;
    }
}

qt_status qt_bench_main(const qt_bench_options *o, const char *const *names, int n, FILE *out) {
    for (int i = 0; i < n; i++)
        if (!qt_bench_family_find(names[i])) {
            char list[512];
            qt_bench_family_names(list, sizeof list);
            return qt_error(QT_ERR_ARG, "unknown benchmark family '%s'; use one of: %s", names[i],
                            list);
        }
    qt_bench *b = NULL;
    QT_TRY(qt_bench_open(&b, o, out));
    qt_status st = QT_OK;
    const int count = n > 0 ? n : qt_bench_n_families;
    for (int i = 0; i < count && st == QT_OK; i++)
        st = qt_bench_run_family(b, n > 0 ? qt_bench_family_find(names[i]) : qt_bench_families[i]);
    qt_bench_close(b);
    return st;
}

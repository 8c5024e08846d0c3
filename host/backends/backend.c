// backend.c: backend-independent helpers: the table check and teardown.
#include <stddef.h>

#include "qtrain/backend.h"

// Names and offsets of every entry, so qt_backend_check can name a missing one.
#define QT_OP_ENTRY(name) {#name, offsetof(qt_backend_ops, name)}
static const struct {
    const char *name;
    size_t offset;
} op_entries[] = {
    QT_OP_ENTRY(alloc),         QT_OP_ENTRY(free),          QT_OP_ENTRY(zero),
    QT_OP_ENTRY(to_host),       QT_OP_ENTRY(to_device),     QT_OP_ENTRY(sync),
    QT_OP_ENTRY(to_host_f32),   QT_OP_ENTRY(to_device_f32),
    QT_OP_ENTRY(gemm),          QT_OP_ENTRY(linear_fwd),    QT_OP_ENTRY(linear_bwd),
    QT_OP_ENTRY(softmax_clip_fwd), QT_OP_ENTRY(softmax_clip_bwd), QT_OP_ENTRY(gate_fwd),
    QT_OP_ENTRY(gate_bwd),      QT_OP_ENTRY(gate_mul_fwd),  QT_OP_ENTRY(gate_mul_bwd),
    QT_OP_ENTRY(layernorm_fwd), QT_OP_ENTRY(layernorm_bwd), QT_OP_ENTRY(gelu_fwd),
    QT_OP_ENTRY(gelu_bwd),      QT_OP_ENTRY(relu_fwd),      QT_OP_ENTRY(relu_bwd),
    QT_OP_ENTRY(embedding_fwd), QT_OP_ENTRY(embedding_bwd), QT_OP_ENTRY(add),
    QT_OP_ENTRY(dropout_fwd),   QT_OP_ENTRY(dropout_bwd),   QT_OP_ENTRY(crossentropy_fwd),
    QT_OP_ENTRY(crossentropy_bwd), QT_OP_ENTRY(adamw_step), QT_OP_ENTRY(sumsq),
};

qt_status qt_backend_check(const qt_backend *be) {
    const char *base = (const char *)be->ops;
    for (size_t i = 0; i < sizeof op_entries / sizeof op_entries[0]; i++) {
        void *const *fn = (void *const *)(base + op_entries[i].offset);
        if (*fn == NULL)
            return qt_error(QT_ERR_UNSUPPORTED, "backend '%s' does not implement op '%s'",
                            be->name, op_entries[i].name);
    }
    return QT_OK;
}

void qt_backend_free(qt_backend *be) {
    if (be->ops && be->ops->destroy) be->ops->destroy(be->ctx);
    // Clearing the table makes a use after free fail loudly.
    be->ops = NULL;
    be->ctx = NULL;
}

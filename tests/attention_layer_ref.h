// attention_layer_ref.h: a float reference of one whole attention layer composed from the op
// families (linear, attention, gate), for tests/test_attention.c; the model composes its layers
// itself (host/model), so this composition is a test oracle, not a kernel.
#ifndef QTRAIN_TESTS_ATTENTION_LAYER_REF_H
#define QTRAIN_TESTS_ATTENTION_LAYER_REF_H

#include <stddef.h>

#include "base/params.h"
#include "base/status.h"

// One whole attention layer, as the model runs it (pre-LN: x is the LayerNorm output):
//   qkv = x Wqkv^T + bqkv; ctx = attention(qkv); ctx = gate(x) * ctx (if gated);
//   out = ctx Wo^T + bo

typedef struct {
    int B, T, C, H;
    qt_softmax_params softmax;
    qt_gate_shape gate; // kind QT_GATE_NONE for an ungated layer
} qt_attention_layer_shape;

typedef struct {
    const float *qkv_w;  // (3C, C)
    const float *qkv_b;  // (3C)
    const float *proj_w; // (C, C)
    const float *proj_b; // (C)
    const float *gate_w1, *gate_b1, *gate_w2, *gate_b2; // see qt_cpu_gate_fwd
} qt_attention_layer_params;

typedef struct {
    float *qkv_w, *qkv_b, *proj_w, *proj_b;
    float *gate_w1, *gate_b1, *gate_w2, *gate_b2;
} qt_attention_layer_grads;

// Activations the forward saves for the backward; the caller allocates them with the
// sizes from qt_attention_layer_act_sizes (elements, in the order of the fields).
typedef struct {
    float *qkv;    // (B, T, 3C)
    float *p;      // (B, H, T, T)
    float *probs;  // (B, H, T, T)
    float *ctx;    // (B, T, C) pre-gate context
    float *gate;   // (B, T, H)         gated only
    float *hidden; // (B, T, H, n_hid)  MLP gate only
    float *gated;  // (B, T, C) gate * ctx, the out projection's input (gated only)
} qt_attention_layer_acts;
void qt_attention_layer_act_sizes(const qt_attention_layer_shape *s, size_t sizes[7]);

// The gate's parameter sizes for model width C (see qt_cpu_gate_fwd): w1, b1, w2, b2, 0 where
// the kind has no such tensor.
void qt_gate_param_sizes(const qt_gate_shape *g, int C, size_t sz[4]);

// Both return the first failing op's status (QT_ERR_ARG for a bad shape, naming the op).
// out (B, T, C) from x (B, T, C); lens (B, T) as in qt_cpu_attention_fwd.
qt_status qt_cpu_attention_layer_fwd(const qt_attention_layer_shape *s,
                                     const qt_attention_layer_params *w, qt_attention_layer_acts *a,
                                     float *out, const float *x, const int *lens);
// dx (B, T, C) += ..., grads += ..., from dout (B, T, C). scratch: (B, H, T, T) + 4 (B, T, C)
// elements, overwritten.
qt_status qt_cpu_attention_layer_bwd(const qt_attention_layer_shape *s,
                                     const qt_attention_layer_params *w,
                                     const qt_attention_layer_acts *a, qt_attention_layer_grads *g,
                                     float *dx, float *scratch, const float *dout, const float *x,
                                     const int *lens);

#endif

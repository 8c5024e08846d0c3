// embedding.c: qt_cpu_embedding_{fwd,bwd}, token plus position embeddings (float only).
// Contract (kernels/embedding.h): the forward overwrites out (wpe NULL: token embeddings
// only, for models whose positions come from RoPE); the backward adds into dwte and dwpe
// (NULL skips it).
// The backward's scatter into dwte is race-free and deterministic: each thread owns a block
// of channels and visits the tokens in order, so repeated tokens sum in a fixed order.
#include "common/real.h"

#include <stddef.h>
#include <string.h>

#include "kernels/embedding.h"
#include "base/status.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384
// Channels per task in the dwte scatter.
#define EMB_BLOCK 64

void qt_cpu_embedding_fwd(float *out, const int *tokens, const float *wte, const float *wpe,
                          int B, int T, int C) {
#pragma omp parallel for schedule(static) if ((size_t)B * T * C >= PAR_MIN)
    for (int n = 0; n < B * T; n++) {
        const int tok = tokens[n], t = n % T;
        QT_ASSERT(tok >= 0, "embedding_fwd: tokens[%d] = %d is negative", n, tok);
        const float *restrict e = wte + (size_t)tok * C;
        float *restrict o = out + (size_t)n * C;
        if (!wpe) {
            memcpy(o, e, (size_t)C * sizeof *o);
            continue;
        }
        const float *restrict pe = wpe + (size_t)t * C;
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = e[c] + pe[c];
    }
}

void qt_cpu_embedding_bwd(float *dwte, float *dwpe, const float *dout, const int *tokens, int B,
                          int T, int C) {
    const int par = (size_t)B * T * C >= PAR_MIN;
    for (int n = 0; n < B * T; n++)
        QT_ASSERT(tokens[n] >= 0, "embedding_bwd: tokens[%d] = %d is negative", n, tokens[n]);
    const int nblk = (C + EMB_BLOCK - 1) / EMB_BLOCK;
#pragma omp parallel for schedule(static) if (par && nblk > 1)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * EMB_BLOCK, w = C - c0 < EMB_BLOCK ? C - c0 : EMB_BLOCK;
        for (int n = 0; n < B * T; n++) {
            float *restrict d = dwte + (size_t)tokens[n] * C + c0;
            const float *restrict g = dout + (size_t)n * C + c0;
#pragma omp simd
            for (int j = 0; j < w; j++) d[j] += g[j];
        }
    }
    if (!dwpe) return;
#pragma omp parallel for schedule(static) if (par)
    for (int t = 0; t < T; t++) {
        float *restrict d = dwpe + (size_t)t * C;
        for (int b = 0; b < B; b++) {
            const float *restrict g = dout + ((size_t)b * T + t) * C;
#pragma omp simd
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
    }
}

// embedding.c: qt_cpu_embedding_{fwd,bwd}, token plus position embeddings (float only).
// Contract (kernels/embedding.h): the forward overwrites out (wpe NULL: token embeddings
// only, for models whose positions come from RoPE); the backward adds into dwte and dwpe
// (NULL skips it).
// The backward's scatter into dwte is race-free and deterministic: each thread owns a block
// of channels and visits the tokens in order, so repeated tokens sum in a fixed order.
#include "common/real.h"

#include <stddef.h>
#include <string.h>

#include "base/status.h"
#include "common/check.h"
#include "kernels/embedding.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384
// Channels per task in the dwte scatter.
#define EMB_BLOCK 64

// The checks both directions make, before anything is written: B >= 0, T, C >= 1, the
// required pointers (ok, names: check_ptrs) and every token id non-negative (the ops do not
// know V: the caller's tokens come from a vocabulary-checked tokenizer or data file).
static qt_status embedding_check(const char *op, int ok, const char *names, const int *tokens,
                                 int B, int T, int C) {
    if (B < 0 || T < 1 || C < 1)
        return qt_error(QT_ERR_ARG, "%s: B = %d, T = %d, C = %d; need B >= 0, T >= 1, C >= 1",
                        op, B, T, C);
    if (B == 0) return QT_OK;
    QT_TRY(check_ptrs(op, ok && tokens, names));
    for (size_t n = 0; n < (size_t)B * (size_t)T; n++)
        if (tokens[n] < 0)
            return qt_error(QT_ERR_ARG, "%s: tokens[%zu] = %d is negative; pass token ids in "
                                        "[0, V)", op, n, tokens[n]);
    return QT_OK;
}

qt_status qt_cpu_embedding_fwd(float *out, const int *tokens, const float *wte, const float *wpe,
                               int B, int T, int C) {
    QT_TRY(embedding_check("embedding_fwd", out && wte, "out, tokens and wte (only wpe may be "
                           "NULL)", tokens, B, T, C));
#pragma omp parallel for schedule(static) if ((size_t)B * T * C >= PAR_MIN)
    for (int n = 0; n < B * T; n++) {
        const int tok = tokens[n], t = n % T;
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
    return QT_OK;
}

qt_status qt_cpu_embedding_bwd(float *dwte, float *dwpe, const float *dout, const int *tokens,
                               int B, int T, int C) {
    QT_TRY(embedding_check("embedding_bwd", dwte && dout, "dwte, dout and tokens (only dwpe "
                           "may be NULL)", tokens, B, T, C));
    const int par = (size_t)B * T * C >= PAR_MIN;
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
    if (!dwpe) return QT_OK;
#pragma omp parallel for schedule(static) if (par)
    for (int t = 0; t < T; t++) {
        float *restrict d = dwpe + (size_t)t * C;
        for (int b = 0; b < B; b++) {
            const float *restrict g = dout + ((size_t)b * T + t) * C;
#pragma omp simd
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
    }
    return QT_OK;
}

// embedding.c: qt_cpu_embedding_{fwd,bwd}, token plus position embeddings (float only).
// Contract (kernels/embedding.h): the forward overwrites out (wpe NULL: token embeddings
// only, for models whose positions come from RoPE); the backward adds into dwte and dwpe
// (NULL skips it).
// The backward's scatter into dwte is race-free and deterministic: each thread owns a block
// of channels and visits the tokens in order, so repeated tokens sum in a fixed order. The
// sorted backward (and qt_embedding_buckets, its host-side index) gives each bucket, one token,
// to one task, which sums its rows in position order and adds the sum once.
#include "common/real.h"

#include <stddef.h>
#include <stdlib.h> // qsort
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

// dwpe (maxT, C) += sum over b of dout[b, t] (dout (B, T, C)), in b order.
static void dwpe_acc(float *dwpe, const float *dout, int B, int T, int C, int par) {
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
    if (dwpe) dwpe_acc(dwpe, dout, B, T, C, par);
    return QT_OK;
}

// Orders positions by (token, position): the stable sort of the buckets.
static int by_token_then_position(const void *pa, const void *pb) {
    const int *a = pa, *b = pb; // (token, position) pairs
    if (a[0] != b[0]) return a[0] < b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

qt_status qt_embedding_buckets(int *order, int *start, int *token, int *n_buckets,
                               const int *tokens, int N, int *scratch) {
    const char *op = "embedding_buckets";
    if (N < 0) return qt_error(QT_ERR_ARG, "%s: N = %d; need N >= 0", op, N);
    QT_TRY(check_ptrs(op, n_buckets && (N == 0 || (order && start && token && tokens && scratch)),
                      "order, start, token, n_buckets, tokens and scratch"));
    for (int n = 0; n < N; n++)
        if (tokens[n] < 0)
            return qt_error(QT_ERR_ARG, "%s: tokens[%d] = %d is negative; pass token ids in "
                                        "[0, V)", op, n, tokens[n]);
    int *pairs = scratch; // (N, 2): (token, position)
    for (int n = 0; n < N; n++) {
        pairs[2 * n] = tokens[n];
        pairs[2 * n + 1] = n;
    }
    qsort(pairs, (size_t)N, 2 * sizeof(int), by_token_then_position);
    int u = 0;
    for (int k = 0; k < N; k++) {
        order[k] = pairs[2 * k + 1];
        if (k == 0 || pairs[2 * k] != pairs[2 * k - 2]) {
            start[u] = k;
            token[u++] = pairs[2 * k];
        }
    }
    if (start) start[u] = N; // N == 0: no bucket, start may be NULL
    *n_buckets = u;
    return QT_OK;
}

qt_status qt_cpu_embedding_bwd_sorted(float *dwte, float *dwpe, const float *dout,
                                      const int *order, const int *start, const int *token,
                                      int n_buckets, int B, int T, int C) {
    const char *op = "embedding_bwd_sorted";
    if (B < 0 || T < 1 || C < 1 || n_buckets < 0 || n_buckets > B * T || (B > 0 && !n_buckets))
        return qt_error(QT_ERR_ARG, "%s: B = %d, T = %d, C = %d, %d buckets; need B >= 0, T, C "
                        ">= 1 and 1 to B T buckets", op, B, T, C, n_buckets);
    if (B == 0) return QT_OK;
    QT_TRY(check_ptrs(op, dwte && dout && order && start && token,
                      "dwte, dout, order, start and token (only dwpe may be NULL)"));
    if (start[0] != 0 || start[n_buckets] != B * T)
        return qt_error(QT_ERR_ARG, "%s: the buckets cover positions %d to %d, not the batch's "
                        "0 to %d; build them with qt_embedding_buckets", op, start[0],
                        start[n_buckets], B * T);
    const int par = (size_t)B * T * C >= PAR_MIN;
    // one bucket per task: its token's row is written by that task alone
#pragma omp parallel for schedule(dynamic, 16) if (par)
    for (int u = 0; u < n_buckets; u++) {
        float *restrict d = dwte + (size_t)token[u] * C;
        for (int c0 = 0; c0 < C; c0 += EMB_BLOCK) {
            const int w = C - c0 < EMB_BLOCK ? C - c0 : EMB_BLOCK;
            float acc[EMB_BLOCK] = {0};
            for (int k = start[u]; k < start[u + 1]; k++) {
                const float *restrict g = dout + (size_t)order[k] * C + c0;
#pragma omp simd
                for (int j = 0; j < w; j++) acc[j] += g[j];
            }
#pragma omp simd
            for (int j = 0; j < w; j++) d[c0 + j] += acc[j];
        }
    }
    if (dwpe) dwpe_acc(dwpe, dout, B, T, C, par);
    return QT_OK;
}

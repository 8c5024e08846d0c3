// common/softmax_row.h: one row of the softmax-clip forward and backward (no include guard;
// included once per common/real.h instantiation by softmax_clip_impl.h and attention_impl.h).
//
// Math (PAPERS.md sections 1-2, base/softmax_clip_math.h): a row attends its first
// n columns; p = softmax(scale * scores) over them; probs = clip(a p + c, 0, 1) there and
// exactly 0 on the masked columns (by index: NCS with beta > eta has c > 0).
// Backward: g_j = a dprobs_j [0 <= a p_j + c <= 1] (inclusive, as torch.clip),
//           dscores_j = scale p_j (g_j - sum_k p_k g_k).
// The forward and the backward evaluate a p + c through the same helper, so the backward's
// mask sees exactly the value the forward clipped.

// The (a, c) of the row's map, rounded once to REAL.
static inline void FN(row_clip_coeffs)(const qt_softmax_params *prm, int n, REAL *a,
                                       REAL *c) {
    double ad, cd;
    qt_softmax_clip_coeffs((int)prm->kind, prm->gamma, prm->zeta, prm->eta, prm->beta, n, &ad,
                           &cd);
    *a = (REAL)ad;
    *c = (REAL)cd;
}

#pragma omp declare simd notinbranch
static inline REAL FN(clip_arg)(REAL a, REAL p, REAL c) { return a * p + c; }

// probs (cols), p (cols) from scores (n attended of cols). probs may alias scores (the
// scores are read before any probs element is written); p aliases neither.
static inline void FN(softmax_clip_row_fwd)(REAL a, REAL c, REAL scale, REAL *probs,
                                            REAL *restrict p, const REAL *scores, int n,
                                            int cols) {
    REAL m = scale * scores[0];
#pragma omp simd reduction(max : m)
    for (int j = 1; j < n; j++) {
        REAL z = scale * scores[j];
        m = z > m ? z : m;
    }
    REAL sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        REAL e = EXP(scale * scores[j] - m);
        p[j] = e;
        sum += e;
    }
    const REAL inv = (REAL)1 / sum;
#pragma omp simd
    for (int j = 0; j < n; j++) {
        REAL pj = p[j] * inv;
        p[j] = pj;
        REAL y = FN(clip_arg)(a, pj, c);
        y = y < (REAL)0 ? (REAL)0 : y;
        probs[j] = y > (REAL)1 ? (REAL)1 : y;
    }
    for (int j = n; j < cols; j++) {
        p[j] = 0;
        probs[j] = 0;
    }
}

// dscores (n) += the gradient from dprobs (n) and p (n); no aliasing.
static inline void FN(softmax_clip_row_bwd)(REAL a, REAL c, REAL scale,
                                            REAL *restrict dscores, const REAL *restrict dprobs,
                                            const REAL *restrict p, int n) {
    REAL dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < n; j++) {
        REAL y = FN(clip_arg)(a, p[j], c);
        int pass = (y >= (REAL)0) & (y <= (REAL)1);
        REAL g = pass ? a * dprobs[j] : (REAL)0;
        dot += p[j] * g;
    }
#pragma omp simd
    for (int j = 0; j < n; j++) {
        REAL y = FN(clip_arg)(a, p[j], c);
        int pass = (y >= (REAL)0) & (y <= (REAL)1);
        REAL g = pass ? a * dprobs[j] : (REAL)0;
        dscores[j] += scale * p[j] * (g - dot);
    }
}

// In place: d (width) holds dprobs on entry and the gradient of the scores on exit (the
// first n entries; entries [n, width) are set to 0 so a GEMM over width columns sees none).
static inline void FN(softmax_clip_row_bwd_inplace)(REAL a, REAL c, REAL scale,
                                                    REAL *restrict d, const REAL *restrict p,
                                                    int n, int width) {
    REAL dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < n; j++) {
        REAL y = FN(clip_arg)(a, p[j], c);
        int pass = (y >= (REAL)0) & (y <= (REAL)1);
        REAL g = pass ? a * d[j] : (REAL)0;
        d[j] = g;
        dot += p[j] * g;
    }
#pragma omp simd
    for (int j = 0; j < n; j++) d[j] = scale * p[j] * (d[j] - dot);
    for (int j = n; j < width; j++) d[j] = 0;
}

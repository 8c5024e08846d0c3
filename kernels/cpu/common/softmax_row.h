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

// The clip map of a row attending n keys, probs = clip(a p + c, 0, 1), with a and c rounded once
// to REAL, and the scores' scale.
typedef struct {
    REAL a, c, scale;
} FN(clip_map);

static inline FN(clip_map) FN(clip_map_of)(const qt_softmax_params *prm, int n) {
    double a, c;
    qt_softmax_clip_coeffs((int)prm->kind, prm->gamma, prm->zeta, prm->eta, prm->beta, n, &a, &c);
    return (FN(clip_map)){(REAL)a, (REAL)c, (REAL)prm->scale};
}

#pragma omp declare simd notinbranch
static inline REAL FN(clip_arg)(REAL a, REAL p, REAL c) { return a * p + c; }

// The gradient reaching a p + c from dprobs d: a d where the clip passes it, else 0.
#pragma omp declare simd notinbranch
static inline REAL FN(clip_grad)(REAL a, REAL p, REAL c, REAL d) {
    const REAL y = FN(clip_arg)(a, p, c);
    return (y >= (REAL)0) & (y <= (REAL)1) ? a * d : (REAL)0;
}

// probs (cols), p (cols) from scores (n attended of cols). probs may alias scores (the
// scores are read before any probs element is written); p aliases neither.
static inline void FN(softmax_clip_row_fwd)(const qt_softmax_params *prm, REAL *probs,
                                            REAL *restrict p, const REAL *scores, int n, int cols) {
    const FN(clip_map) k = FN(clip_map_of)(prm, n);
    const REAL scale = k.scale;
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
        REAL y = FN(clip_arg)(k.a, pj, k.c);
        y = y < (REAL)0 ? (REAL)0 : y;
        probs[j] = y > (REAL)1 ? (REAL)1 : y;
    }
    for (int j = n; j < cols; j++) {
        p[j] = 0;
        probs[j] = 0;
    }
}

// dscores (n) += the gradient from dprobs (n) and p (n); no aliasing.
static inline void FN(softmax_clip_row_bwd)(const qt_softmax_params *prm, REAL *restrict dscores,
                                            const REAL *restrict dprobs, const REAL *restrict p,
                                            int n) {
    const FN(clip_map) k = FN(clip_map_of)(prm, n);
    REAL dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < n; j++) dot += p[j] * FN(clip_grad)(k.a, p[j], k.c, dprobs[j]);
#pragma omp simd
    for (int j = 0; j < n; j++)
        dscores[j] += k.scale * p[j] * (FN(clip_grad)(k.a, p[j], k.c, dprobs[j]) - dot);
}

// In place: d (width) holds dprobs on entry and the gradient of the scores on exit (the
// first n entries; entries [n, width) are set to 0 so a GEMM over width columns sees none).
static inline void FN(softmax_clip_row_bwd_inplace)(const qt_softmax_params *prm, REAL *restrict d,
                                                    const REAL *restrict p, int n, int width) {
    const FN(clip_map) k = FN(clip_map_of)(prm, n);
    REAL dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < n; j++) {
        const REAL g = FN(clip_grad)(k.a, p[j], k.c, d[j]);
        d[j] = g;
        dot += p[j] * g;
    }
#pragma omp simd
    for (int j = 0; j < n; j++) d[j] = k.scale * p[j] * (d[j] - dot);
    for (int j = n; j < width; j++) d[j] = 0;
}

// ---- the sink variants (base/params.h qt_sink_kind): a virtual key with logit s0 (in units of
// scale * scores) and a zero value joins the row's softmax; p then sums to 1 - p0. The clip map
// and the backward above are unchanged (d p_j / d x_k = p_j (delta_jk - p_k) over the real keys
// as without a sink); the sink's own gradient is FN(softmax_sink_row_grad).

// As FN(softmax_clip_row_fwd), with the sink: p_j = exp(x_j - m) / (exp(s0 - m) + sum_k
// exp(x_k - m)), m = max(s0, max_k x_k).
static inline void FN(softmax_clip_row_fwd_sink)(const qt_softmax_params *prm, REAL s0, REAL *probs,
                                                 REAL *restrict p, const REAL *scores, int n,
                                                 int cols) {
    const FN(clip_map) k = FN(clip_map_of)(prm, n);
    const REAL scale = k.scale;
    REAL m = s0;
#pragma omp simd reduction(max : m)
    for (int j = 0; j < n; j++) {
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
    const REAL inv = (REAL)1 / (sum + EXP(s0 - m));
#pragma omp simd
    for (int j = 0; j < n; j++) {
        REAL pj = p[j] * inv;
        p[j] = pj;
        REAL y = FN(clip_arg)(k.a, pj, k.c);
        y = y < (REAL)0 ? (REAL)0 : y;
        probs[j] = y > (REAL)1 ? (REAL)1 : y;
    }
    for (int j = n; j < cols; j++) {
        p[j] = 0;
        probs[j] = 0;
    }
}

// The row's share of d loss / d s0: -p0 sum_j p_j g_j (g as in FN(softmax_clip_row_bwd)), with
// p0 = 1 - sum_j p_j, the sink's probability (summed in double: its absolute error is a few
// ulps of 1, which matters only when p0 is that small and its share with it).
static inline REAL FN(softmax_sink_row_grad)(const qt_softmax_params *prm, const REAL *dprobs,
                                             const REAL *p, int n) {
    const FN(clip_map) k = FN(clip_map_of)(prm, n);
    REAL dot = 0;
    double psum = 0.0;
    for (int j = 0; j < n; j++) {
        dot += p[j] * FN(clip_grad)(k.a, p[j], k.c, dprobs[j]);
        psum += (double)p[j];
    }
    return -(REAL)(1.0 - psum) * dot;
}

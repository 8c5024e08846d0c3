// llama_ops_impl.h: the body of the RMSNorm, RoPE and SwiGLU ops, written once over REAL (no
// include guard; see real_impl.h and llama_ops.c).

// ---- RMSNorm --------------------------------------------------------------------------------

void FN(qt_cpu_rmsnorm_fwd)(REAL *out, REAL *rstd, const REAL *x, const REAL *w, int N, int C) {
    QT_ASSERT(N >= 0 && C >= 1, "rmsnorm_fwd: N = %d, C = %d; need N >= 0, C >= 1", N, C);
    const REAL inv_c = (REAL)1 / (REAL)C, eps = (REAL)QT_RMSNORM_EPS;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *restrict xr = x + (size_t)n * C;
        REAL *restrict o = out + (size_t)n * C;
        REAL ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
        const REAL rs = (REAL)1 / SQRT(ss * inv_c + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = xr[c] * rs * w[c];
        rstd[n] = rs;
    }
}

void FN(qt_cpu_rmsnorm_bwd)(REAL *dx, REAL *dw, const REAL *dout, const REAL *x,
                            const REAL *rstd, const REAL *w, int N, int C) {
    QT_ASSERT(N >= 0 && C >= 1, "rmsnorm_bwd: N = %d, C = %d; need N >= 0, C >= 1", N, C);
    const REAL inv_c = (REAL)1 / (REAL)C;
    // dx: with xh = x rstd and g = dout w, dx = rstd (g - xh mean(g xh)), row by row.
    if (dx) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN)
        for (int n = 0; n < N; n++) {
            const REAL *restrict xr = x + (size_t)n * C, *restrict dr = dout + (size_t)n * C;
            REAL *restrict dxr = dx + (size_t)n * C;
            const REAL rs = rstd[n];
            REAL sgx = 0;
#pragma omp simd reduction(+ : sgx)
            for (int c = 0; c < C; c++) sgx += dr[c] * w[c] * (xr[c] * rs);
            const REAL mgx = sgx * inv_c;
#pragma omp simd
            for (int c = 0; c < C; c++) dxr[c] += rs * (dr[c] * w[c] - (xr[c] * rs) * mgx);
        }
    }
    if (!dw) return;
    // dw = column sums of dout xh: one thread per column block, rows in order (deterministic).
    const int nblk = (C + COLSUM_BLOCK - 1) / COLSUM_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN && nblk > 1)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * COLSUM_BLOCK;
        const int width = C - c0 < COLSUM_BLOCK ? C - c0 : COLSUM_BLOCK;
        REAL aw[COLSUM_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const REAL *restrict xr = x + (size_t)n * C + c0;
            const REAL *restrict dr = dout + (size_t)n * C + c0;
            const REAL rs = rstd[n];
#pragma omp simd
            for (int j = 0; j < width; j++) aw[j] += dr[j] * (xr[j] * rs);
        }
        for (int j = 0; j < width; j++) dw[c0 + j] += aw[j];
    }
}

// ---- RoPE -----------------------------------------------------------------------------------

// Rotates the q and k thirds of qkv (B, T, 3C) in place by +angle (dir = 1, the forward) or
// -angle (dir = -1, the backward: the transpose, which is the inverse, of the rotation).
// Pair (i, i + D/2) of every head: (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos) with
// sin = dir sin(angle). Parallel over positions t; each task builds a table of ROPE_CHUNK
// cos/sin values at a time and applies it to all B rows, H heads and both of q and k.
static void FN(rope_rotate)(REAL *qkv, int B, int T, int C, int H, float theta, int dir,
                            const char *op) {
    QT_ASSERT(B >= 0 && T >= 0 && H >= 1 && C >= 1 && C % H == 0,
              "%s: C = %d is not a positive multiple of H = %d (B = %d, T = %d)", op, C, H, B, T);
    const int D = C / H, half = D / 2;
    QT_ASSERT(D % 2 == 0, "%s: head dim D = C / H = %d is odd; RoPE pairs channels i and i + D/2",
              op, D);
    QT_ASSERT(theta > 0.0f, "%s: theta = %g must be > 0", op, (double)theta);
    const double log_theta = log((double)theta);
#pragma omp parallel for schedule(static) if ((size_t)B * (size_t)T * (size_t)C >= PAR_MIN)
    for (int t = 0; t < T; t++) {
        REAL cs[ROPE_CHUNK], sn[ROPE_CHUNK];
        for (int i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
            const int len = half - i0 < ROPE_CHUNK ? half - i0 : ROPE_CHUNK;
            for (int j = 0; j < len; j++) {
                const double a = rope_angle(t, i0 + j, D, log_theta);
                cs[j] = (REAL)cos(a);
                sn[j] = (REAL)((double)dir * sin(a));
            }
            for (int b = 0; b < B; b++) {
                REAL *row = qkv + ((size_t)b * T + t) * 3 * (size_t)C;
                for (int part = 0; part < 2; part++) { // q, then k; v is untouched
                    for (int h = 0; h < H; h++) {
                        REAL *restrict x1 = row + (size_t)part * C + (size_t)h * D + i0;
                        REAL *restrict x2 = x1 + half;
#pragma omp simd
                        for (int j = 0; j < len; j++) {
                            const REAL a1 = x1[j], a2 = x2[j];
                            x1[j] = a1 * cs[j] - a2 * sn[j];
                            x2[j] = a1 * sn[j] + a2 * cs[j];
                        }
                    }
                }
            }
        }
    }
}

void FN(qt_cpu_rope_fwd)(REAL *qkv, int B, int T, int C, int H, float theta) {
    FN(rope_rotate)(qkv, B, T, C, H, theta, 1, "rope_fwd");
}

void FN(qt_cpu_rope_bwd)(REAL *dqkv, int B, int T, int C, int H, float theta) {
    FN(rope_rotate)(dqkv, B, T, C, H, theta, -1, "rope_bwd");
}

// ---- SwiGLU ---------------------------------------------------------------------------------
// silu(a) = a s, s = sigmoid(a) = 1 / (1 + e), e = exp(-a);
// silu'(a) = s + a s (1 - s) = s (1 + a e s) (1 - s as e s: no cancellation for a >> 0).
// EXP never returns inf (argument capped at 88.3), so e s stays finite for a << 0.

void FN(qt_cpu_swiglu_fwd)(REAL *out, const REAL *x, int N, int F) {
    QT_ASSERT(N >= 0 && F >= 1, "swiglu_fwd: N = %d, F = %d; need N >= 0, F >= 1", N, F);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)F >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *restrict a = x + (size_t)n * 2 * F, *restrict b = a + F;
        REAL *restrict o = out + (size_t)n * F;
#pragma omp simd
        for (int f = 0; f < F; f++) o[f] = a[f] / ((REAL)1 + EXP(-a[f])) * b[f];
    }
}

void FN(qt_cpu_swiglu_bwd)(REAL *dx, const REAL *dout, const REAL *x, int N, int F) {
    QT_ASSERT(N >= 0 && F >= 1, "swiglu_bwd: N = %d, F = %d; need N >= 0, F >= 1", N, F);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)F >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *restrict a = x + (size_t)n * 2 * F, *restrict b = a + F;
        const REAL *restrict g = dout + (size_t)n * F;
        REAL *restrict da = dx + (size_t)n * 2 * F, *restrict db = da + F;
#pragma omp simd
        for (int f = 0; f < F; f++) {
            const REAL e = EXP(-a[f]), s = (REAL)1 / ((REAL)1 + e);
            const REAL silu = a[f] * s, dsilu = s * ((REAL)1 + a[f] * (e * s));
            da[f] += g[f] * b[f] * dsilu;
            db[f] += g[f] * silu;
        }
    }
}

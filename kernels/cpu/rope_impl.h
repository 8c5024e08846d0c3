// rope_impl.h: the body of the RoPE ops, written once over REAL (no include guard; see
// common/real.h and rope.c).

// ---- RoPE -----------------------------------------------------------------------------------

// Rotates the q and k thirds of qkv (B, T, 3C) in place by +angle (dir = 1, the forward) or
// -angle (dir = -1, the backward: the transpose, which is the inverse, of the rotation).
// Pair (i, i + D/2) of every head: (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos) with
// sin = dir sin(angle). Parallel over positions t; each task builds a table of ROPE_CHUNK
// cos/sin values at a time and applies it to all B rows, H heads and both of q and k.
static qt_status FN(rope_rotate)(REAL *qkv, int B, int T, int C, int H, float theta, int dir,
                                 const char *op) {
    QT_TRY(rope_check(op, qkv, B, T, C, H, theta));
    const int D = C / H, half = D / 2;
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
    return QT_OK;
}

qt_status FN(qt_cpu_rope_fwd)(REAL *qkv, int B, int T, int C, int H, float theta) {
    return FN(rope_rotate)(qkv, B, T, C, H, theta, 1, OPNAME("rope_fwd"));
}

qt_status FN(qt_cpu_rope_bwd)(REAL *dqkv, int B, int T, int C, int H, float theta) {
    return FN(rope_rotate)(dqkv, B, T, C, H, theta, -1, OPNAME("rope_bwd"));
}

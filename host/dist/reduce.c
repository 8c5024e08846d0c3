// reduce.c: elementwise reductions and the fp16/bf16 conversions the host-side communicators
// use (MPI's user-defined ops, the rank threads of the emulated build); dist_internal.h.
//
// fp16 and bf16 values are widened to fp32, combined there and rounded back to nearest even
// once per pairwise combination, as NCCL reduces 16-bit types. Conversions follow IEEE 754
// binary16 (subnormals, inf, nan kept) and bfloat16 (the top half of a binary32).
#include "dist_internal.h"

#include <string.h>

float qt_dist_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); // inf, nan
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: normalize
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t qt_dist_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) // inf or nan (nan keeps a set mantissa bit)
        return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); // rounds past 65504: inf
    if (abs < 0x38800000u) {                                   // below 2^-14: subnormal
        if (abs < 0x33000000u) return (uint16_t)sign;          // below half of 2^-24: 0
        uint32_t man = (abs & 0x7fffffu) | 0x800000u;
        int shift = 113 - (int)(abs >> 23) + 13; // 126 - e, with e the biased exponent
        uint32_t v = man >> shift, rest = man & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (v & 1u))) v++;
        return (uint16_t)(sign | v);
    }
    uint32_t v = ((abs >> 13) - (112u << 10)), rest = abs & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (v & 1u))) v++;
    return (uint16_t)(sign | v);
}

float qt_dist_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t qt_dist_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); // quiet nan
    uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)((x + rounding) >> 16);
}

static float combine(float a, float b, qt_dist_op op) {
    if (op == QT_DIST_MAX) return a > b || a != a ? a : b; // a nan stays
    return a + b;
}

void qt_dist_reduce_into(void *inout, const void *in, size_t n, qt_dtype dt, qt_dist_op op) {
    if (dt == QT_DTYPE_F32) {
        float *y = inout;
        const float *x = in;
        for (size_t i = 0; i < n; i++)
            y[i] = combine(y[i], x[i], op);
        return;
    }
    uint16_t *y = inout;
    const uint16_t *x = in;
    if (dt == QT_DTYPE_F16) {
        for (size_t i = 0; i < n; i++)
            y[i] =
                qt_dist_f32_to_f16(combine(qt_dist_f16_to_f32(y[i]), qt_dist_f16_to_f32(x[i]), op));
    } else {
        for (size_t i = 0; i < n; i++)
            y[i] = qt_dist_f32_to_bf16(
                combine(qt_dist_bf16_to_f32(y[i]), qt_dist_bf16_to_f32(x[i]), op));
    }
}

void qt_dist_scale(void *buf, size_t n, qt_dtype dt, float s) {
    if (dt == QT_DTYPE_F32) {
        float *y = buf;
        for (size_t i = 0; i < n; i++)
            y[i] *= s;
        return;
    }
    uint16_t *y = buf;
    if (dt == QT_DTYPE_F16) {
        for (size_t i = 0; i < n; i++)
            y[i] = qt_dist_f32_to_f16(qt_dist_f16_to_f32(y[i]) * s);
    } else {
        for (size_t i = 0; i < n; i++)
            y[i] = qt_dist_f32_to_bf16(qt_dist_bf16_to_f32(y[i]) * s);
    }
}

const char *qt_dist_op_name(qt_dist_op op) {
    switch (op) {
    case QT_DIST_SUM:
        return "sum";
    case QT_DIST_AVG:
        return "average";
    case QT_DIST_MAX:
        return "max";
    }
    return "?";
}

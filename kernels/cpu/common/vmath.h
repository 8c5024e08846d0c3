// common/vmath.h: vexpf and vsqrtf, float exp and sqrt that gcc vectorizes inside
// `#pragma omp simd` loops (glibc's are scalar calls: expf always, sqrtf because of errno).
//
// vexpf: glibc's expf costs ~8 ns here and the float trainer evaluates exp for every
// attention score, every logit (V = 4096 per token) and every GELU element. vexpf is
// branch-free plain C (~0.7 ns):
//   x = n ln2 + r, |r| <= ln2/2 (n by the round-to-nearest shift trick, r with ln2 in two
//   parts, Cody-Waite), exp(r) by the degree-7 minimax polynomial of Cephes' expf
//   (relative error < 2^-23 on that interval), times 2^n built in the exponent bits.
// Accuracy: within 1 ulp of the exact exp over [-87, 88.3] (0.97 ulp measured on 4M points).
// Inputs are clamped to that range first: exp(x < -87) returns exp(-87) ~ 1.6e-38 instead of
// a subnormal or 0 (every caller adds it to terms >= 1 or scales it by a bounded factor) and
// exp(x > 88.3) returns ~2.2e38 instead of inf; NaN stays NaN.
// Both need -fno-trapping-math to vectorize (see common/real.h).
#ifndef QTRAIN_VMATH_IMPL_H
#define QTRAIN_VMATH_IMPL_H

#include <stdint.h>
#include <string.h>

// The clamp runs on the bit patterns, as unsigned/signed integer minimums: gcc turns those
// into vpminud/vpminsd, whereas float compares against constants make it specialize the
// whole caller for the clamped constant and evaluate that copy too (in GELU that copy divided
// by exp(88.3) and produced denormals: 4x slower). NaN is restored by the last select.
#pragma omp declare simd notinbranch
static inline float vexpf(float x) {
    const float shift = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
    uint32_t xb;
    memcpy(&xb, &x, sizeof xb);
    // x < -87 (and -NaN): as unsigned, a negative float's bits grow with its magnitude
    uint32_t cb = xb < 0xC2AE0000u ? xb : 0xC2AE0000u; // bits of -87.0f
    // x > 88.3 (and +inf, +NaN): as signed, a positive float's bits grow with it
    int32_t sb = (int32_t)cb;
    sb = sb < 0x42B0999A ? sb : 0x42B0999A; // bits of 88.3f
    float xc;
    memcpy(&xc, &sb, sizeof xc);
    float kf = xc * 1.44269504088896341f + shift;
    uint32_t kbits;
    memcpy(&kbits, &kf, sizeof kbits); // low mantissa bits hold n (two's complement)
    kf -= shift;
    float r = xc - kf * 0.693359375f; // ln2 high part (exact product for |n| < 2^9)
    r = r - kf * -2.12194440e-4f;     // ln2 low part
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t sbits = (kbits + 127u) << 23; // 2^n (the shift's own bits fall off the top)
    float scale;
    memcpy(&scale, &sbits, sizeof scale);
    float y = p * scale;
    return x == x ? y : x;
}

// vsqrtf: sqrt for v >= 0 within 1 ulp of the correctly rounded sqrtf (0.73 ulp measured
// over all normal floats; sqrt(0) = 0). gcc vectorizes sqrtf only under -fno-math-errno, which
// a `#pragma GCC optimize` cannot switch on, and AdamW's scalar sqrtf made the step 6x slower.
// rsqrt from the bit-level first guess (relative error < 3.5%), two Newton steps (< 5e-6),
// then one Newton step on sqrt itself: y + (v - y^2) / (2 y), with 1/y taken from the rsqrt.
#pragma omp declare simd notinbranch
static inline float vsqrtf(float v) {
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    b = 0x5f375a86u - (b >> 1);
    float r;
    memcpy(&r, &b, sizeof r);
    const float h = 0.5f * v;
    r = r * (1.5f - h * r * r);
    r = r * (1.5f - h * r * r);
    const float y = v * r;
    return y + (v - y * y) * (0.5f * r);
}

#endif

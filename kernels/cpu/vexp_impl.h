// vexp_impl.h: vexpf, an expf that gcc vectorizes inside `#pragma omp simd` loops.
//
// glibc's expf is a scalar call (~8 ns here) and the float trainer evaluates exp for every
// attention score, every logit (V = 4096 per token) and every GELU element; the scalar call
// alone would take a large share of a training step. vexpf is branch-free plain C (~0.7 ns):
//   x = n ln2 + r, |r| <= ln2/2 (n by the round-to-nearest shift trick, r with ln2 in two
//   parts, Cody-Waite), exp(r) by the degree-7 minimax polynomial of Cephes' expf
//   (relative error < 2^-23 on that interval), times 2^n built in the exponent bits.
// Accuracy: within 1 ulp of the exact exp over [-87, 88.3] (0.97 ulp measured on 4M points).
// Inputs are clamped to that range first: exp(x < -87) returns exp(-87) ~ 1.6e-38 instead of
// a subnormal or 0 (every caller adds it to terms >= 1 or scales it by a bounded factor) and
// exp(x > 88.3) returns ~2.2e38 instead of inf. NaN stays NaN (the clamps are compares that
// keep it). Needs -fno-trapping-math to vectorize (see real_impl.h).
#ifndef QTRAIN_VEXP_IMPL_H
#define QTRAIN_VEXP_IMPL_H

#include <stdint.h>
#include <string.h>

#pragma omp declare simd notinbranch
static inline float vexpf(float x) {
    const float shift = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.3f ? 88.3f : x;
    float kf = x * 1.44269504088896341f + shift;
    uint32_t kbits;
    memcpy(&kbits, &kf, sizeof kbits); // low mantissa bits hold n (two's complement)
    kf -= shift;
    float r = x - kf * 0.693359375f;   // ln2 high part (exact product for |n| < 2^9)
    r = r - kf * -2.12194440e-4f;      // ln2 low part
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
    return p * scale;
}

#endif

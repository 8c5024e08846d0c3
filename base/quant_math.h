// base/quant_math.h: the quantizer arithmetic shared by the CPU reference (kernels/cpu/quant.c) and
// the CUDA kernels (kernels/cuda/quant.cu), so both land on the same codes bit for bit.
// Sources: PAPERS.md sections 6 (linear quantizer, floors, granularity), 8 (BitNet absmean),
// 9 (stochastic rounding keyed by (seed, step, tensor id, element index), Philox4x32-10).
//
// Grid. Every code lives in [qmin, qmax]: bits b in 2..8 gives [-2^(b-1), 2^(b-1) - 1],
// ternary (bits = 1 here, QT_QUANT_TERNARY) gives [-1, 1]. A slice (the whole tensor, a row or
// a group of a row) has a step > 0 and an integer zero point zc (0 when symmetric):
//   code = clamp(round(x / step) + zc, qmin, qmax),   dequant = (code - zc) * step.
// Asymmetric (unsigned with zero point z in [0, 2^b - 1]) is stored shifted by qmin, so its
// codes fit int8 too: zc = z + qmin; code - zc is the same integer as (unsigned code) - z.
// round() is rintf (ties to even) for nearest, floorf(x / step + u) for stochastic rounding,
// u = qt_philox_uniform(seed, stream, flat element index) (base/philox.h; computed
// by qt_quant_uniform below).
// Operation order is fixed (one division, one add, one multiply; nothing fusable into an fma),
// so host and device agree exactly. NaN inputs clamp to qmin (fmaxf drops the NaN).
//
// Absmean reduction order (so the CUDA block reduction and the CPU give the same float):
// QT_QUANT_LANES lanes, lane t sums |x_j| for j = t, t + LANES, ... in order, in double; then a
// tree lanes[t] += lanes[t + s] for s = LANES/2, ..., 1; mean = (float)(sum / count).
#ifndef QTRAIN_QUANT_MATH_H
#define QTRAIN_QUANT_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "philox.h"
#include "hd.h"

#define QT_QUANT_LANES 256
// The `use` word mixed into a quantizer's Philox stream (qt_stream_id's third argument), so
// stochastic rounding never shares bits with dropout or any other use of the same step/tensor.
#define QT_QUANT_STREAM_USE 0x5152u

QT_HD uint64_t qt_quant_stream_id(uint64_t step, uint64_t tensor_id) {
    return qt_stream_id(step, tensor_id, QT_QUANT_STREAM_USE);
}

// Code range of `bits` (1 = ternary). Asymmetric codes use the same range (see above).
QT_HD int qt_quant_qmin(int bits) { return bits == 1 ? -1 : -(1 << (bits - 1)); }
QT_HD int qt_quant_qmax(int bits) { return bits == 1 ? 1 : (1 << (bits - 1)) - 1; }

// Symmetric step from a magnitude r (absmax, BitNet's gamma + eps, a percentile, ...),
// floored: step = max(r, floor) / qmax. A NaN r takes the floor.
QT_HD float qt_quant_sym_step(float r, float floor_, int bits) {
    const float m = r >= floor_ ? r : floor_;
    return m / (float)qt_quant_qmax(bits);
}

// Asymmetric grid over [lo, hi] widened to contain 0, width floored:
//   step = max(hi - lo, floor) / (2^b - 1),  z = clamp(rint(-lo / step), 0, 2^b - 1),
// returned shifted: *zc = z + qmin.
QT_HD float qt_quant_asym_step(float lo, float hi, float floor_, int bits, int *zc) {
    const float l = lo < 0.0f ? lo : 0.0f, h = hi > 0.0f ? hi : 0.0f;
    const float w0 = h - l;
    const float w = w0 >= floor_ ? w0 : floor_;
    const int levels = (1 << bits) - 1;
    const float step = w / (float)levels;
    float z = rintf(-l / step);
    z = fminf(fmaxf(z, 0.0f), (float)levels);
    *zc = (int)z + qt_quant_qmin(bits);
    return step;
}

// The code of x: clamp(round(x / step) + zc, qmin, qmax); stochastic uses floor(x/step + u).
QT_HD int qt_quant_code(float x, float step, int zc, int qmin, int qmax, int stochastic,
                        float u) {
    const float t = x / step;
    const float r = stochastic ? floorf(t + u) : rintf(t);
    const float c = fminf(fmaxf(r + (float)zc, (float)qmin), (float)qmax);
    return (int)c;
}

// u for element i: qt_philox_uniform(seed, stream, i) (the same bits), with the word picked by
// selects instead of an array index, so the device code keeps it in registers (no local memory).
QT_HD float qt_quant_uniform(uint64_t seed, uint64_t stream, uint64_t i) {
    const qt_u32x4 r = qt_philox_block(seed, stream, i >> 2);
    const unsigned k = (unsigned)(i & 3u);
    const uint32_t w = k == 0u ? r.v[0] : k == 1u ? r.v[1] : k == 2u ? r.v[2] : r.v[3];
    return qt_u32_to_uniform(w);
}

QT_HD float qt_quant_dequant(int code, float step, int zc) { return (float)(code - zc) * step; }

#endif

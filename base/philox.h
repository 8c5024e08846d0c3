// base/philox.h: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011), the counter-based generator behind every random draw in qtrain.
//
// A draw is a pure function of (key, counter): the same bits on CPU and GPU, in any order,
// and after a resume. Callers key it by the run seed and pack (stream, element index) into
// the counter, where `stream` names the use (tensor id, step, micro-step); see qt_philox_uniform.
#ifndef QTRAIN_PHILOX_H
#define QTRAIN_PHILOX_H

#include <stdint.h>

#include "hd.h"

typedef struct {
    uint32_t v[4];
} qt_u32x4;

#define QT_PHILOX_M0 0xD2511F53u
#define QT_PHILOX_M1 0xCD9E8D57u
#define QT_PHILOX_W0 0x9E3779B9u
#define QT_PHILOX_W1 0xBB67AE85u

QT_HD uint32_t qt_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

// Ten rounds of Philox4x32 on `ctr` under the 64-bit key (k0, k1).
QT_HD qt_u32x4 qt_philox4x32_10(qt_u32x4 ctr, uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = qt_mulhilo32(QT_PHILOX_M0, ctr.v[0], &hi0);
        uint32_t lo1 = qt_mulhilo32(QT_PHILOX_M1, ctr.v[2], &hi1);
        qt_u32x4 next;
        next.v[0] = hi1 ^ ctr.v[1] ^ k0;
        next.v[1] = lo1;
        next.v[2] = hi0 ^ ctr.v[3] ^ k1;
        next.v[3] = lo0;
        ctr = next;
        k0 += QT_PHILOX_W0;
        k1 += QT_PHILOX_W1;
    }
    return ctr;
}

// Four random words for element block `index / 4` of stream `stream` under `seed`.
// Counter layout: (index / 4 low, index / 4 high, stream low, stream high).
QT_HD qt_u32x4 qt_philox_block(uint64_t seed, uint64_t stream, uint64_t block) {
    qt_u32x4 ctr;
    ctr.v[0] = (uint32_t)block;
    ctr.v[1] = (uint32_t)(block >> 32);
    ctr.v[2] = (uint32_t)stream;
    ctr.v[3] = (uint32_t)(stream >> 32);
    return qt_philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// 32 random bits for element `index` of stream `stream`.
QT_HD uint32_t qt_philox_u32(uint64_t seed, uint64_t stream, uint64_t index) {
    qt_u32x4 r = qt_philox_block(seed, stream, index >> 2);
    return r.v[index & 3];
}

// A uniform float in [0, 1) with 24 random bits (exactly representable, never 1.0).
QT_HD float qt_u32_to_uniform(uint32_t bits) { return (float)(bits >> 8) * (1.0f / 16777216.0f); }

QT_HD float qt_philox_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
    return qt_u32_to_uniform(qt_philox_u32(seed, stream, index));
}

// Mixes several small identifiers (step, tensor id, use) into one 64-bit stream number
// (splitmix64 finalizer), so distinct uses never share random bits.
QT_HD uint64_t qt_stream_id(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^
                 (c + 0x85157AF5ull) * 0x94D049BB133111EBull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif

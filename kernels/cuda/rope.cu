// rope.cu: rotary position embedding (RoPE) forward and backward, in place on the q and k
// thirds of qkv, on fp32/fp16/bf16 storage with fp32 math and double-precision angles.
//
// Math (Su et al. 2021, "RoFormer"; the "rotate half" layout of Hugging Face's LLaMA;
// PAPERS.md, issue 4 section 3): qkv (B, T, 3C) holds [q | k | v] per token; in each of the H
// heads of D = C / H channels (D even) of q and of k, channel i < D/2 pairs with i + D/2:
//   (x1, x2) -> (x1 cos a - x2 sin a, x1 sin a + x2 cos a),  a = t theta^(-2i/D),
// t the position 0..T-1. The backward applies the inverse (= transposed) rotation, angle -a,
// to the gradient in place. v is never touched.
// Angles: a = t exp(-(2i/D) log theta) in double, and its cos/sin in double (on the GPU by
// sincospi(a / pi), whose argument reduction is exact and needs no local memory, unlike sin/cos
// of a large double; in the emulated build by the host's sin/cos of a), rounded to fp32 once.
// The CPU twin takes the same double angle and libm's cos/sin, so the two agree to an ulp of
// the fp32 cos/sin, far inside the 1e-5 of the tests.
// CPU twin: kernels/cpu/rope_impl.h (qt_cpu_rope_{fwd,bwd}).
// Contract (kernels/rope.h): both directions rotate in place (the backward is not an
// accumulation: it maps d loss / d rotated to d loss / d input).
// Determinism: no reductions.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include <math.h>

#include "kernels/rope.h"

// ---- launch constants -----------------------------------------------------------------------
// A thread owns one (position, pair) and rotates it in every head of q and of k for the
// batches blockIdx.y, blockIdx.y + gridDim.y, ...: one cos/sin for 2 H (B / gridDim.y) pairs.
#define ROPE_THREADS 128
#define ROPE_MAX_GRID_Y 65535

// ---- device helpers -------------------------------------------------------------------------

// cos and sin of the double angle a, rounded to fp32 (see the file header).
static __device__ __forceinline__ void rope_sincos(double a, float *s, float *c) {
#ifdef QT_CUEMU
    *s = (float)sin(a);
    *c = (float)cos(a);
#else
    double sd, cd;
    sincospi(a * 0.318309886183790671537767526745, &sd, &cd); // 1 / pi
    *s = (float)sd;
    *c = (float)cd;
#endif
}

// ---- kernels --------------------------------------------------------------------------------

// Rotates qkv (B, T, 3C) in place by the angle `sign` a (sign +1: forward, -1: backward).
// Thread mapping: grid (ceil(T half / ROPE_THREADS), min(B, ROPE_MAX_GRID_Y)), block
// ROPE_THREADS; global thread g of grid row y owns position t = g / half and pair i = g % half
// (consecutive threads: consecutive channels, coalesced), computes cos/sin once, then rotates
// pair i of each head of q and k in batches y, y + gridDim.y, ... < B.
// Each element is read and written by one thread only (in place is safe). Guard: g < T half.
template <typename T>
static __global__ void __launch_bounds__(ROPE_THREADS)
    rope_rotate_pairs(T *qkv, int B, int Tlen, int C, int H, double log_theta, float sign) {
    const int D = C / H, half = D / 2;
    const long long g = (long long)blockIdx.x * ROPE_THREADS + threadIdx.x;
    if (g >= (long long)Tlen * half) return;
    const int t = (int)(g / half), i = (int)(g % half);
    const double a = (double)t * exp(-((double)(2 * i) / (double)D) * log_theta);
    float sn, cs;
    rope_sincos(a, &sn, &cs);
    sn *= sign;
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        T *row = qkv + ((size_t)b * Tlen + t) * 3 * (size_t)C + i;
        // the 2 H heads of q and k in one loop: k's heads follow q's at the same stride D (one
        // flat loop, not two nested ones, which made ptxas spill on sm_80)
        for (int j = 0; j < 2 * H; j++) {
            T *p1 = row + (size_t)j * D, *p2 = p1 + half;
            const float x1 = qt_ld(p1), x2 = qt_ld(p2);
            qt_st(p1, x1 * cs - x2 * sn);
            qt_st(p2, x1 * sn + x2 * cs);
        }
    }
}

// ---- launchers ------------------------------------------------------------------------------

template <typename T>
static void rope_launch(cudaStream_t st, void *qkv, int B, int Tlen, int C, int H,
                        double log_theta, float sign) {
    const long long pairs = (long long)Tlen * (C / H / 2);
    const dim3 grid((unsigned)QT_CEIL_DIV(pairs, (long long)ROPE_THREADS),
                    B < ROPE_MAX_GRID_Y ? B : ROPE_MAX_GRID_Y);
    QT_LAUNCH(rope_rotate_pairs<T>, grid, ROPE_THREADS, 0, st, (T *)qkv, B, Tlen, C, H,
              log_theta, sign);
}

static qt_status rope_run(const char *op, qt_cuda_stream s, qt_dtype dt, void *qkv, int B,
                          int T, int C, int H, float theta, float sign) {
    QT_TRY(qt_check_dtype(op, dt));
    if (B < 0 || T < 0 || H < 1 || C < 1 || C % H != 0)
        return qt_error(QT_ERR_ARG,
                        "%s: B = %d, T = %d, C = %d, H = %d; need B, T >= 0 and C a positive "
                        "multiple of H >= 1", op, B, T, C, H);
    if ((C / H) % 2 != 0)
        return qt_error(QT_ERR_ARG, "%s: head dim D = C / H = %d is odd; RoPE pairs channels i "
                                    "and i + D/2, so use an even head dim", op, C / H);
    if (!(theta > 0.0f))
        return qt_error(QT_ERR_ARG, "%s: theta = %g must be > 0 (LLaMA uses 10000)", op,
                        (double)theta);
    if ((long long)T * (C / H / 2) / ROPE_THREADS >= 0x7fffffffLL)
        return qt_error(QT_ERR_ARG, "%s: T = %d, D = %d is too many pairs for one grid", op, T,
                        C / H);
    if (B == 0 || T == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("qkv", qkv, dt)));
    const double log_theta = log((double)theta);
    QT_DTYPE_DISPATCH(dt, rope_launch, (cudaStream_t)s, qkv, B, T, C, H, log_theta, sign);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_rope_fwd(qt_cuda_stream s, qt_dtype dt, void *qkv, int B, int T,
                                      int C, int H, float theta) {
    return rope_run("cuda rope_fwd", s, dt, qkv, B, T, C, H, theta, 1.0f);
}

extern "C" qt_status qt_cuda_rope_bwd(qt_cuda_stream s, qt_dtype dt, void *dqkv, int B, int T,
                                      int C, int H, float theta) {
    return rope_run("cuda rope_bwd", s, dt, dqkv, B, T, C, H, theta, -1.0f);
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// One kernel per call, in place: reads and writes the q and k thirds of (B, T, 3C) (4 E B T C;
// v untouched); 3 flops per rotated element (a pair: four products and two sums; the angles'
// cos and sin are not counted).

static void rope_cost(qt_cost *c, qt_dtype dt, int B, int T, int C, int H, float theta) {
    if (B <= 0 || T <= 0 || H < 1 || C < 1 || C % H != 0 || (C / H) % 2 != 0 || !(theta > 0.0f))
        return;
    const double qk = 2.0 * B * T * C, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "rope_rotate_pairs", 2 * E * qk, 3 * qk);
}

extern "C" void qt_cuda_rope_fwd_cost(qt_cost *c, qt_dtype dt, const void *qkv, int B, int T, int C,
                                      int H, float theta) {
    (void)qkv;
    rope_cost(c, dt, B, T, C, H, theta);
}

extern "C" void qt_cuda_rope_bwd_cost(qt_cost *c, qt_dtype dt, const void *dqkv, int B, int T,
                                      int C, int H, float theta) {
    (void)dqkv;
    rope_cost(c, dt, B, T, C, H, theta);
}

// warp.cu: warp-level kernels for the emulator's tests: every shuffle kind with widths below
// 32, segmented warp reductions, votes, matches and reductions, a partial last warp, and
// collectives over the lanes left after others exited.
#include "qt_cuda_compat.h"

#include "cuemu_test_kernels.h"

// Thread t, lane l: the four shuffle kinds of in[t] with one width. src_of(l) ranges over
// [-2, 34] so that srcLane outside [0, width) is exercised too.
static __global__ void shuffle_int(const int *in, int *out, int width) {
    const unsigned t = threadIdx.x, l = t % 32;
    const int v = in[t];
    const int src = static_cast<int>((7 * l + 3) % 37) - 2;
    out[4 * t + 0] = __shfl_sync(0xffffffffu, v, src, width);
    out[4 * t + 1] = __shfl_up_sync(0xffffffffu, v, 3, width);
    out[4 * t + 2] = __shfl_down_sync(0xffffffffu, v, 5, width);
    out[4 * t + 3] = __shfl_xor_sync(0xffffffffu, v, 6, width);
}

// 8-byte and packed 16-bit values travel whole.
static __global__ void shuffle_wide(const double *in_d, double *out_d, const unsigned *in_h2,
                                    unsigned *out_h2, int width) {
    const unsigned t = threadIdx.x;
    out_d[t] = __shfl_xor_sync(0xffffffffu, in_d[t], 6, width);
    const unsigned bits = in_h2[t];
    const __half2 h = __halves2half2(__ushort_as_half(static_cast<unsigned short>(bits & 0xffffu)),
                                     __ushort_as_half(static_cast<unsigned short>(bits >> 16)));
    const __half2 r = __shfl_xor_sync(0xffffffffu, h, 6, width);
    out_h2[t] = __half_as_ushort(__low2half(r)) |
                (static_cast<unsigned>(__half_as_ushort(__high2half(r))) << 16);
}

// Segments of `width` lanes: sum by xor butterfly, sum by down tree, inclusive scan by up,
// broadcast of the segment's last lane by index.
static __global__ void warp_reduce(const float *x, float *xor_sum, float *down_sum,
                                   float *up_scan, float *bcast, int width) {
    const unsigned t = threadIdx.x, l = t % 32;
    const float v = x[t];
    float a = v;
    for (int o = width / 2; o > 0; o /= 2) a += __shfl_xor_sync(0xffffffffu, a, o, width);
    xor_sum[t] = a;
    float d = v;
    for (int o = width / 2; o > 0; o /= 2) d += __shfl_down_sync(0xffffffffu, d, o, width);
    down_sum[t] = d;
    float s = v;
    const unsigned seg_lane = l % static_cast<unsigned>(width);
    for (int o = 1; o < width; o *= 2) {
        float n = __shfl_up_sync(0xffffffffu, s, o, width);
        if (seg_lane >= static_cast<unsigned>(o)) s += n;
    }
    up_scan[t] = s;
    bcast[t] = __shfl_sync(0xffffffffu, v, width - 1, width);
}

static __global__ void votes(const int *pred, unsigned *ballot, int *any, int *all,
                             unsigned *active, unsigned *match, unsigned *radd, unsigned *rmax) {
    const unsigned t = threadIdx.x;
    const int p = pred[t];
    ballot[t] = __ballot_sync(0xffffffffu, p);
    any[t] = __any_sync(0xffffffffu, p);
    all[t] = __all_sync(0xffffffffu, p);
    active[t] = __activemask();
    match[t] = __match_any_sync(0xffffffffu, p);
    radd[t] = __reduce_add_sync(0xffffffffu, static_cast<unsigned>(p));
    rmax[t] = __reduce_max_sync(0xffffffffu, static_cast<unsigned>(p));
    __syncwarp();
}

// Each warp sums its existing lanes (the last warp may be partial) with a down tree on its own
// mask, guarding reads past its last lane; lane 0 adds the warp's sum to out[0].
static __global__ void partial_warp_sum(const float *x, float *out) {
    const unsigned t = threadIdx.x, l = t % 32, warp_base = t - l;
    const unsigned n = blockDim.x - warp_base < 32 ? blockDim.x - warp_base : 32;
    const unsigned mask = n == 32 ? 0xffffffffu : (1u << n) - 1u;
    float v = x[t];
    for (unsigned o = 16; o > 0; o /= 2) {
        float other = __shfl_down_sync(mask, v, o);
        if (l + o < n) v += other;
    }
    if (l == 0) atomicAdd(out, v);
}

// Lanes >= k leave; the others run collectives on the mask of the lanes that stay.
static __global__ void early_exit(const int *x, int *out, int k) {
    const unsigned t = threadIdx.x, l = t % 32;
    if (l >= static_cast<unsigned>(k)) return;
    const unsigned mask = k == 32 ? 0xffffffffu : (1u << k) - 1u;
    const int v = x[t];
    out[4 * t + 0] = static_cast<int>(__ballot_sync(mask, v > 0));
    int d = __shfl_down_sync(mask, v, 1);
    out[4 * t + 1] = l + 1 < static_cast<unsigned>(k) ? d : v;
    out[4 * t + 2] = __reduce_add_sync(mask, v);
    out[4 * t + 3] = __shfl_sync(mask, v, k - 1);
}

extern "C" cudaError_t cuemu_test_shuffle_int(const int *in, int *out, int threads, int width) {
    QT_LAUNCH(shuffle_int, 1, threads, 0, nullptr, in, out, width);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_shuffle_wide(const double *in_d, double *out_d,
                                               const unsigned *in_h2, unsigned *out_h2,
                                               int threads, int width) {
    QT_LAUNCH(shuffle_wide, 1, threads, 0, nullptr, in_d, out_d, in_h2, out_h2, width);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_warp_reduce(const float *x, float *xor_sum, float *down_sum,
                                              float *up_scan, float *bcast, int threads,
                                              int width) {
    QT_LAUNCH(warp_reduce, 1, threads, 0, nullptr, x, xor_sum, down_sum, up_scan, bcast, width);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_votes(const int *pred, unsigned *ballot, int *any, int *all,
                                        unsigned *active, unsigned *match, unsigned *radd,
                                        unsigned *rmax, int threads) {
    QT_LAUNCH(votes, 1, threads, 0, nullptr, pred, ballot, any, all, active, match, radd, rmax);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_partial_warp_sum(const float *x, float *out, int threads) {
    QT_LAUNCH(partial_warp_sum, 1, threads, 0, nullptr, x, out);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_early_exit(const int *x, int *out, int threads, int k) {
    QT_LAUNCH(early_exit, 1, threads, 0, nullptr, x, out, k);
    return cudaGetLastError();
}

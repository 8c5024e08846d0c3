// test_cuemu.cpp: the emulator runs CUDA kernels as CUDA would (Check suite "cuemu").
//
// Every case launches kernels from kernels_test/*.cu through their launchers, on device memory
// from cudaMalloc, and compares with a reference computed here from the CUDA documentation's
// definitions (not from the emulator's code). The same binary is built three times: plain,
// ASan+UBSan and TSan; under TSan any race report fails the run (exit status 66).
// A failure names the kernel, shape and parameter that broke.
#include <check.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuemu.h"
#include "cuemu_test_kernels.h"

namespace {

// Smaller problems under the sanitizers (TSan runs ~10x slower).
constexpr bool k_sanitized = QT_CUEMU_MODE != QT_CUEMU_MODE_NORMAL;

#define CK_CUDA(expr)                                                                            \
    do {                                                                                         \
        cudaError_t err_ = (expr);                                                               \
        ck_assert_msg(err_ == cudaSuccess, "%s failed: %s", #expr, cudaGetErrorString(err_));   \
    } while (0)

template <class T>
T *dev_alloc(size_t n) {
    void *p = nullptr;
    CK_CUDA(cudaMalloc(&p, n * sizeof(T)));
    return static_cast<T *>(p);
}

template <class T>
T *to_dev(const std::vector<T> &h) {
    T *d = dev_alloc<T>(h.size());
    CK_CUDA(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

template <class T>
std::vector<T> from_dev(const T *d, size_t n) {
    std::vector<T> h(n);
    CK_CUDA(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

// Deterministic pseudo-random integers (xorshift), so a failure reproduces.
struct rng {
    uint32_t s;
    uint32_t next() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        return s;
    }
};

bool close(double got, double ref, double atol, double rtol) {
    return std::fabs(got - ref) <= atol + rtol * std::fabs(ref);  // false for NaN
}

}  // namespace

// ---- block reductions with __syncthreads and shared memory ---------------------------------

START_TEST(test_block_sum) {
    const int threads_list[] = {32, 128, 1024};
    const int per_block_list[] = {1, 33, 1027};
    for (int dyn = 0; dyn < 2; dyn++)
        for (int threads : threads_list)
            for (int per_block : per_block_list) {
                const int nblocks = 5;
                rng r{12345u + static_cast<uint32_t>(per_block)};
                std::vector<float> x(static_cast<size_t>(nblocks) * per_block);
                for (float &v : x) v = static_cast<float>(r.next() % 2001) / 1000.0f - 1.0f;
                float *dx = to_dev(x), *dout = dev_alloc<float>(nblocks);
                CK_CUDA(dyn ? cuemu_test_block_sum_dyn(dx, dout, nblocks, per_block, threads)
                            : cuemu_test_block_sum(dx, dout, nblocks, per_block, threads));
                std::vector<float> out = from_dev(dout, nblocks);
                for (int b = 0; b < nblocks; b++) {
                    double ref = 0.0;
                    for (int i = 0; i < per_block; i++) ref += x[static_cast<size_t>(b) * per_block + i];
                    ck_assert_msg(close(out[b], ref, 1e-4, 1e-5),
                                  "block_sum%s threads %d per_block %d block %d: got %g want %g",
                                  dyn ? "_dyn" : "", threads, per_block, b, out[b], ref);
                }
                CK_CUDA(cudaFree(dx));
                CK_CUDA(cudaFree(dout));
            }
}
END_TEST

START_TEST(test_softmax_rows) {
    const int threads_list[] = {32, 256, 1024};
    const int rows = k_sanitized ? 8 : 64, cols = 1027;
    rng r{777u};
    std::vector<float> x(static_cast<size_t>(rows) * cols);
    for (float &v : x) v = static_cast<float>(r.next() % 20001) / 1000.0f - 10.0f;
    float *dx = to_dev(x), *dy = dev_alloc<float>(x.size());
    for (int threads : threads_list) {
        CK_CUDA(cuemu_test_softmax_rows(dx, dy, rows, cols, threads));
        std::vector<float> y = from_dev(dy, x.size());
        for (int i = 0; i < rows; i++) {
            const float *xr = &x[static_cast<size_t>(i) * cols];
            double m = xr[0], s = 0.0;
            for (int j = 0; j < cols; j++) m = std::max(m, static_cast<double>(xr[j]));
            for (int j = 0; j < cols; j++) s += std::exp(xr[j] - m);
            for (int j = 0; j < cols; j++) {
                double ref = std::exp(xr[j] - m) / s;
                float got = y[static_cast<size_t>(i) * cols + j];
                ck_assert_msg(close(got, ref, 1e-7, 1e-5),
                              "softmax_rows %dx%d threads %d at (%d,%d): got %g want %g", rows,
                              cols, threads, i, j, got, ref);
            }
        }
    }
    CK_CUDA(cudaFree(dx));
    CK_CUDA(cudaFree(dy));
}
END_TEST

// ---- warp shuffles, votes, partial warps -------------------------------------------------------

// CUDA Programming Guide, warp shuffle functions: each segment of `width` lanes behaves as its
// own warp. idx: srcLane modulo width; up: the lowest delta lanes keep their value; down: the
// highest delta lanes keep theirs; xor: reading a later segment returns the own value.
static int ref_shfl_idx(const std::vector<int> &in, int t, int src, int w) {
    int base = t - t % 32, l = t % 32, seg = l - l % w;
    int s = ((src % w) + w) % w;
    return in[base + seg + s];
}
static int ref_shfl_up(const std::vector<int> &in, int t, int d, int w) {
    return (t % 32) % w >= d ? in[t - d] : in[t];
}
static int ref_shfl_down(const std::vector<int> &in, int t, int d, int w) {
    return (t % 32) % w + d < w ? in[t + d] : in[t];
}
static int ref_shfl_xor_lane(int t, int m, int w) {
    int l = t % 32, s = l ^ m;
    return s / w > l / w ? t : t - l + s;
}

START_TEST(test_shuffle_kinds_and_widths) {
    const int threads = 64, widths[] = {1, 2, 4, 8, 16, 32};
    std::vector<int> in(threads);
    for (int t = 0; t < threads; t++) in[t] = 1000 + 7 * t;
    int *din = to_dev(in), *dout = dev_alloc<int>(4 * threads);
    for (int w : widths) {
        CK_CUDA(cuemu_test_shuffle_int(din, dout, threads, w));
        std::vector<int> out = from_dev(dout, 4 * threads);
        for (int t = 0; t < threads; t++) {
            int l = t % 32, src = (7 * l + 3) % 37 - 2;
            int want[4] = {ref_shfl_idx(in, t, src, w), ref_shfl_up(in, t, 3, w),
                           ref_shfl_down(in, t, 5, w), in[ref_shfl_xor_lane(t, 6, w)]};
            const char *kind[4] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"};
            for (int k = 0; k < 4; k++)
                ck_assert_msg(out[4 * t + k] == want[k], "%s width %d thread %d: got %d want %d",
                              kind[k], w, t, out[4 * t + k], want[k]);
        }
    }
    CK_CUDA(cudaFree(din));
    CK_CUDA(cudaFree(dout));
}
END_TEST

START_TEST(test_shuffle_wide_types) {
    const int threads = 64, widths[] = {8, 32};
    std::vector<double> ind(threads);
    std::vector<unsigned> inh(threads);
    for (int t = 0; t < threads; t++) {
        ind[t] = 1e12 + 0.25 * t;  // needs all 8 bytes
        inh[t] = 0x3c003c00u + static_cast<unsigned>(t) * 0x00010003u;
    }
    double *dind = to_dev(ind), *doutd = dev_alloc<double>(threads);
    unsigned *dinh = to_dev(inh), *douth = dev_alloc<unsigned>(threads);
    for (int w : widths) {
        CK_CUDA(cuemu_test_shuffle_wide(dind, doutd, dinh, douth, threads, w));
        std::vector<double> od = from_dev(doutd, threads);
        std::vector<unsigned> oh = from_dev(douth, threads);
        for (int t = 0; t < threads; t++) {
            int s = ref_shfl_xor_lane(t, 6, w);
            ck_assert_msg(od[t] == ind[s], "double xor shuffle width %d thread %d: got %.17g want %.17g",
                          w, t, od[t], ind[s]);
            ck_assert_msg(oh[t] == inh[s], "__half2 xor shuffle width %d thread %d: got %08x want %08x",
                          w, t, oh[t], inh[s]);
        }
    }
    CK_CUDA(cudaFree(dind));
    CK_CUDA(cudaFree(doutd));
    CK_CUDA(cudaFree(dinh));
    CK_CUDA(cudaFree(douth));
}
END_TEST

START_TEST(test_warp_reductions) {
    const int threads = 64, widths[] = {2, 4, 8, 16, 32};
    std::vector<float> x(threads);
    for (int t = 0; t < threads; t++) x[t] = static_cast<float>((t * 5) % 11 - 3);  // exact sums
    float *dx = to_dev(x);
    float *dxs = dev_alloc<float>(threads), *dds = dev_alloc<float>(threads);
    float *dus = dev_alloc<float>(threads), *dbc = dev_alloc<float>(threads);
    for (int w : widths) {
        CK_CUDA(cuemu_test_warp_reduce(dx, dxs, dds, dus, dbc, threads, w));
        std::vector<float> xs = from_dev(dxs, threads), ds = from_dev(dds, threads);
        std::vector<float> us = from_dev(dus, threads), bc = from_dev(dbc, threads);
        for (int t = 0; t < threads; t++) {
            int start = t - (t % 32) % w;
            float seg = 0.0f, scan = 0.0f;
            for (int i = start; i < start + w; i++) seg += x[i];
            for (int i = start; i <= t; i++) scan += x[i];
            ck_assert_msg(xs[t] == seg, "xor reduction width %d thread %d: got %g want %g", w, t, xs[t], seg);
            if (t == start)
                ck_assert_msg(ds[t] == seg, "down reduction width %d thread %d: got %g want %g", w, t, ds[t], seg);
            ck_assert_msg(us[t] == scan, "up scan width %d thread %d: got %g want %g", w, t, us[t], scan);
            ck_assert_msg(bc[t] == x[start + w - 1], "broadcast width %d thread %d: got %g want %g", w,
                          t, bc[t], x[start + w - 1]);
        }
    }
    CK_CUDA(cudaFree(dx));
    CK_CUDA(cudaFree(dxs));
    CK_CUDA(cudaFree(dds));
    CK_CUDA(cudaFree(dus));
    CK_CUDA(cudaFree(dbc));
}
END_TEST

START_TEST(test_votes) {
    const int threads = 96;
    std::vector<int> pred(threads);
    for (int t = 0; t < threads; t++) pred[t] = t < 32 ? (t % 3 == 0 ? 2 : 0) : (t < 64 ? 1 : 0);
    int *dp = to_dev(pred), *dany = dev_alloc<int>(threads), *dall = dev_alloc<int>(threads);
    unsigned *db = dev_alloc<unsigned>(threads), *dact = dev_alloc<unsigned>(threads);
    unsigned *dm = dev_alloc<unsigned>(threads), *dra = dev_alloc<unsigned>(threads);
    unsigned *drm = dev_alloc<unsigned>(threads);
    CK_CUDA(cuemu_test_votes(dp, db, dany, dall, dact, dm, dra, drm, threads));
    std::vector<unsigned> b = from_dev(db, threads), act = from_dev(dact, threads);
    std::vector<unsigned> m = from_dev(dm, threads), ra = from_dev(dra, threads), rm = from_dev(drm, threads);
    std::vector<int> any = from_dev(dany, threads), all = from_dev(dall, threads);
    for (int t = 0; t < threads; t++) {
        int w0 = t - t % 32;
        unsigned ballot = 0, match = 0, sum = 0, mx = 0;
        for (int l = 0; l < 32; l++) {
            if (pred[w0 + l]) ballot |= 1u << l;
            if (pred[w0 + l] == pred[t]) match |= 1u << l;
            sum += static_cast<unsigned>(pred[w0 + l]);
            mx = std::max(mx, static_cast<unsigned>(pred[w0 + l]));
        }
        ck_assert_msg(b[t] == ballot, "__ballot_sync thread %d: got %08x want %08x", t, b[t], ballot);
        ck_assert_msg(any[t] == (ballot != 0), "__any_sync thread %d: got %d", t, any[t]);
        ck_assert_msg(all[t] == (ballot == 0xffffffffu), "__all_sync thread %d: got %d", t, all[t]);
        ck_assert_msg(act[t] == 0xffffffffu, "__activemask thread %d: got %08x", t, act[t]);
        ck_assert_msg(m[t] == match, "__match_any_sync thread %d: got %08x want %08x", t, m[t], match);
        ck_assert_msg(ra[t] == sum, "__reduce_add_sync thread %d: got %u want %u", t, ra[t], sum);
        ck_assert_msg(rm[t] == mx, "__reduce_max_sync thread %d: got %u want %u", t, rm[t], mx);
    }
    CK_CUDA(cudaFree(dp));
    CK_CUDA(cudaFree(dany));
    CK_CUDA(cudaFree(dall));
    CK_CUDA(cudaFree(db));
    CK_CUDA(cudaFree(dact));
    CK_CUDA(cudaFree(dm));
    CK_CUDA(cudaFree(dra));
    CK_CUDA(cudaFree(drm));
}
END_TEST

START_TEST(test_partial_last_warp) {
    const int sizes[] = {1, 17, 48, 100, 1000};
    for (int threads : sizes) {
        std::vector<float> x(threads);
        double ref = 0.0;
        for (int t = 0; t < threads; t++) {
            x[t] = static_cast<float>(t % 13);
            ref += x[t];
        }
        float *dx = to_dev(x), *dout = dev_alloc<float>(1);
        CK_CUDA(cudaMemset(dout, 0, sizeof(float)));
        CK_CUDA(cuemu_test_partial_warp_sum(dx, dout, threads));
        float got = from_dev(dout, 1)[0];
        ck_assert_msg(got == ref, "partial_warp_sum threads %d: got %g want %g", threads, got, ref);
        CK_CUDA(cudaFree(dx));
        CK_CUDA(cudaFree(dout));
    }
}
END_TEST

START_TEST(test_early_exit_collectives) {
    const int threads = 64, ks[] = {1, 5, 31, 32};
    std::vector<int> x(threads);
    for (int t = 0; t < threads; t++) x[t] = (t % 4 == 1) ? -t : t + 1;
    int *dx = to_dev(x), *dout = dev_alloc<int>(4 * threads);
    for (int k : ks) {
        CK_CUDA(cudaMemset(dout, 0x7f, 4 * threads * sizeof(int)));
        CK_CUDA(cuemu_test_early_exit(dx, dout, threads, k));
        std::vector<int> out = from_dev(dout, 4 * threads);
        for (int t = 0; t < threads; t++) {
            int l = t % 32, w0 = t - l;
            if (l >= k) {
                for (int j = 0; j < 4; j++)
                    ck_assert_msg(out[4 * t + j] == 0x7f7f7f7f, "early_exit k %d: exited thread %d wrote", k, t);
                continue;
            }
            unsigned ballot = 0;
            int sum = 0;
            for (int i = 0; i < k; i++) {
                if (x[w0 + i] > 0) ballot |= 1u << i;
                sum += x[w0 + i];
            }
            int want[4] = {static_cast<int>(ballot), l + 1 < k ? x[t + 1] : x[t], sum, x[w0 + k - 1]};
            for (int j = 0; j < 4; j++)
                ck_assert_msg(out[4 * t + j] == want[j], "early_exit k %d thread %d result %d: got %d want %d",
                              k, t, j, out[4 * t + j], want[j]);
        }
    }
    CK_CUDA(cudaFree(dx));
    CK_CUDA(cudaFree(dout));
}
END_TEST

// ---- grids, atomics, shared memory -------------------------------------------------------------

START_TEST(test_index_coverage) {
    struct cfg {
        dim3 g, b;
    };
    const cfg cfgs[] = {{dim3(7), dim3(33)},       {dim3(3, 2, 2), dim3(4, 3, 2)},
                        {dim3(2, 3, 4), dim3(5, 1, 3)}, {dim3(1, 1, 5), dim3(1, 7, 1)},
                        {dim3(1), dim3(8, 8, 16)},  {dim3(k_sanitized ? 2000 : 70000), dim3(1)}};
    for (const cfg &c : cfgs) {
        const size_t X = c.g.x * c.b.x, Y = c.g.y * c.b.y, Z = c.g.z * c.b.z, n = X * Y * Z;
        unsigned *dcount = dev_alloc<unsigned>(n), *dwho = dev_alloc<unsigned>(4 * n);
        CK_CUDA(cudaMemset(dcount, 0, n * sizeof(unsigned)));
        CK_CUDA(cuemu_test_index_cover(dcount, dwho, c.g, c.b));
        std::vector<unsigned> count = from_dev(dcount, n), who = from_dev(dwho, 4 * n);
        for (size_t g = 0; g < n; g++) {
            size_t x = g % X, y = (g / X) % Y, z = g / (X * Y);
            unsigned bl = static_cast<unsigned>(x / c.b.x + c.g.x * (y / c.b.y + c.g.y * (z / c.b.z)));
            unsigned th = static_cast<unsigned>(x % c.b.x + c.b.x * (y % c.b.y + c.b.y * (z % c.b.z)));
            ck_assert_msg(count[g] == 1, "grid (%u,%u,%u) block (%u,%u,%u): element %zu written %u times",
                          c.g.x, c.g.y, c.g.z, c.b.x, c.b.y, c.b.z, g, count[g]);
            ck_assert_msg(who[4 * g] == bl && who[4 * g + 1] == th &&
                              who[4 * g + 2] == c.g.x * c.g.y * c.g.z &&
                              who[4 * g + 3] == c.b.x * c.b.y * c.b.z,
                          "grid (%u,%u,%u) block (%u,%u,%u): element %zu has block %u thread %u, "
                          "want %u %u",
                          c.g.x, c.g.y, c.g.z, c.b.x, c.b.y, c.b.z, g, who[4 * g], who[4 * g + 1], bl, th);
        }
        CK_CUDA(cudaFree(dcount));
        CK_CUDA(cudaFree(dwho));
    }
}
END_TEST

START_TEST(test_atomics_histogram) {
    const int n = 10007, nbins = 37, blocks = 13, threads = 96;
    rng r{4242u};
    std::vector<unsigned> x(n), bins(nbins, 0);
    double sum = 0.0;
    unsigned mx = 0;
    for (unsigned &v : x) {
        v = r.next() % 1000;
        bins[v % nbins]++;
        sum += v;
        mx = std::max(mx, v);
    }
    unsigned *dx = to_dev(x), *dbg = dev_alloc<unsigned>(nbins), *dbs = dev_alloc<unsigned>(nbins);
    unsigned *dmax = dev_alloc<unsigned>(1), *dwr = dev_alloc<unsigned>(1);
    float *dsum = dev_alloc<float>(1);
    CK_CUDA(cudaMemset(dbg, 0, nbins * sizeof(unsigned)));
    CK_CUDA(cudaMemset(dbs, 0, nbins * sizeof(unsigned)));
    CK_CUDA(cudaMemset(dmax, 0, sizeof(unsigned)));
    CK_CUDA(cudaMemset(dwr, 0, sizeof(unsigned)));
    CK_CUDA(cudaMemset(dsum, 0, sizeof(float)));
    CK_CUDA(cuemu_test_histogram(dx, n, dbg, dbs, nbins, dsum, dmax, dwr, blocks, threads));
    std::vector<unsigned> bg = from_dev(dbg, nbins), bs = from_dev(dbs, nbins);
    for (int b = 0; b < nbins; b++) {
        ck_assert_msg(bg[b] == bins[b], "histogram (global atomics) bin %d: got %u want %u", b, bg[b], bins[b]);
        ck_assert_msg(bs[b] == bins[b], "histogram (shared atomics) bin %d: got %u want %u", b, bs[b], bins[b]);
    }
    float gs = from_dev(dsum, 1)[0];
    ck_assert_msg(gs == sum, "atomicAdd(float) sum: got %.1f want %.1f (integers: exact)", gs, sum);
    ck_assert_msg(from_dev(dmax, 1)[0] == mx, "atomicMax: got %u want %u", from_dev(dmax, 1)[0], mx);
    ck_assert_msg(from_dev(dwr, 1)[0] == static_cast<unsigned>(n % 10), "atomicInc(.., 9) x %d: got %u",
                  n, from_dev(dwr, 1)[0]);
    CK_CUDA(cudaFree(dx));
    CK_CUDA(cudaFree(dbg));
    CK_CUDA(cudaFree(dbs));
    CK_CUDA(cudaFree(dmax));
    CK_CUDA(cudaFree(dwr));
    CK_CUDA(cudaFree(dsum));
}
END_TEST

START_TEST(test_dynamic_shared) {
    const int blocks = 3, threads = 100, n = blocks * threads;
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = static_cast<float>(i) * 0.5f;
    float *dx = to_dev(x), *dy = dev_alloc<float>(n);
    unsigned *dp = dev_alloc<unsigned>(n);
    CK_CUDA(cuemu_test_reverse_dyn(dx, dy, dp, blocks, threads));
    std::vector<float> y = from_dev(dy, n);
    std::vector<unsigned> probe = from_dev(dp, n);
    for (int b = 0; b < blocks; b++)
        for (int t = 0; t < threads; t++) {
            float want = x[b * threads + threads - 1 - t];
            ck_assert_msg(y[b * threads + t] == want, "reverse_dyn block %d thread %d: got %g want %g", b,
                          t, y[b * threads + t], want);
            ck_assert_msg(probe[b * threads + t] == 0xffffffffu,
                          "dynamic shared memory of block %d at %d is %08x before any write, want the "
                          "NaN fill ffffffff",
                          b, t, probe[b * threads + t]);
        }
    CK_CUDA(cudaFree(dx));
    CK_CUDA(cudaFree(dy));
    CK_CUDA(cudaFree(dp));
}
END_TEST

START_TEST(test_static_shared_fresh_per_block) {
    const int blocks = 6, threads = 64;
    unsigned *dp = dev_alloc<unsigned>(blocks * threads);
    CK_CUDA(cuemu_test_static_poison(dp, blocks, threads));
    std::vector<unsigned> p = from_dev(dp, blocks * threads);
    for (int i = 0; i < blocks * threads; i++)
        ck_assert_msg(p[i] == 0xffffffffu, "static shared memory of block %d at %d is %08x before any "
                      "write, want the NaN fill ffffffff", i / threads, i % threads, p[i]);
    CK_CUDA(cudaFree(dp));
}
END_TEST

START_TEST(test_multidim_shared_transpose) {
    const int sizes[] = {1, 31, 70};
    for (int n : sizes) {
        std::vector<float> in(static_cast<size_t>(n) * n);
        for (size_t i = 0; i < in.size(); i++) in[i] = static_cast<float>(i);
        float *din = to_dev(in), *dout = dev_alloc<float>(in.size());
        int *dcube = dev_alloc<int>(6);
        CK_CUDA(cuemu_test_transpose(din, dout, n, dcube));
        std::vector<float> out = from_dev(dout, in.size());
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++)
                ck_assert_msg(out[static_cast<size_t>(r) * n + c] == in[static_cast<size_t>(c) * n + r],
                              "transpose n %d at (%d,%d): got %g want %g", n, r, c,
                              out[static_cast<size_t>(r) * n + c], in[static_cast<size_t>(c) * n + r]);
        std::vector<int> cube = from_dev(dcube, 6);
        for (int yy = 0; yy < 2; yy++)
            for (int xx = 0; xx < 3; xx++) {
                int want = 0;
                for (int ty = 0; ty < 8; ty++)
                    for (int tx = 0; tx < 32; tx++) want += (ty % 2 == yy && tx % 3 == xx);
                ck_assert_msg(cube[yy * 3 + xx] == want, "3-D shared count (%d,%d): got %d want %d", yy, xx,
                              cube[yy * 3 + xx], want);
            }
        CK_CUDA(cudaFree(din));
        CK_CUDA(cudaFree(dout));
        CK_CUDA(cudaFree(dcube));
    }
}
END_TEST

START_TEST(test_syncthreads_predicates) {
    const int blocks = 3, threads = 70;
    std::vector<int> pred(threads);
    for (int t = 0; t < threads; t++) pred[t] = t % 3 == 0 ? 5 : 0;
    int *dp = to_dev(pred), *dres = dev_alloc<int>(3 * blocks);
    CK_CUDA(cuemu_test_sync_preds(dp, dres, blocks, threads));
    std::vector<int> res = from_dev(dres, 3 * blocks);
    for (int b = 0; b < blocks; b++) {
        ck_assert_msg(res[3 * b] == 24, "__syncthreads_count block %d: got %d want 24", b, res[3 * b]);
        ck_assert_msg(res[3 * b + 1] == 0, "__syncthreads_and block %d: got %d want 0", b, res[3 * b + 1]);
        ck_assert_msg(res[3 * b + 2] != 0, "__syncthreads_or block %d: got 0", b);
    }
    CK_CUDA(cudaFree(dp));
    CK_CUDA(cudaFree(dres));
}
END_TEST

START_TEST(test_half_intrinsics) {
    const int n = 70;
    std::vector<unsigned short> a(n);
    std::vector<float> af(n);
    for (int i = 0; i < n; i++) {
        af[i] = static_cast<float>(i - 35) / 16.0f;  // exact in half
        __half h = __float2half(af[i]);
        a[i] = __half_as_ushort(h);
    }
    unsigned short *da = to_dev(a);
    float *dout = dev_alloc<float>(8 * n);
    CK_CUDA(cuemu_test_half_ops(da, dout, n));
    std::vector<float> o = from_dev(dout, 8 * n);
    for (int i = 0; i < n; i++) {
        float v = af[i];
        double want[8] = {std::exp(v), v * v + v, std::sqrt(std::fabs(v)), v, std::exp(v), std::exp(v),
                          v * v + v, af[i ^ 1]};
        double rtol[8] = {2e-3, 2e-3, 2e-3, 0, 2e-3, 1e-2, 1e-2, 0};
        for (int k = 0; k < 8; k++)
            ck_assert_msg(close(o[8 * i + k], want[k], 1e-3, rtol[k]), "half_ops %d at %d (a=%g): got %g want %g",
                          k, i, v, o[8 * i + k], want[k]);
    }
    CK_CUDA(cudaFree(da));
    CK_CUDA(cudaFree(dout));
}
END_TEST

START_TEST(test_template_and_argless_kernels) {
    const int n = 300;
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = static_cast<float>(i);
    float *dx = to_dev(x), *dy = dev_alloc<float>(n);
    int flag = 0;
    CK_CUDA(cuemu_test_template_launch(dx, dy, n, &flag));
    std::vector<float> y = from_dev(dy, n);
    for (int i = 0; i < n; i++) ck_assert_msg(y[i] == 3.0f * x[i], "scale<float, 3> at %d: got %g", i, y[i]);
    ck_assert_msg(flag == 7, "set_flag: __device__ int is %d, want 7", flag);
    CK_CUDA(cudaFree(dx));
    CK_CUDA(cudaFree(dy));
}
END_TEST

START_TEST(test_spin_with_nanosleep) {
    int *dout = dev_alloc<int>(64);
    CK_CUDA(cuemu_test_spin_nanosleep(dout));
    std::vector<int> out = from_dev(dout, 64);
    for (int t = 0; t < 64; t++) ck_assert_msg(out[t] == 5, "spin_nanosleep thread %d saw %d, want 5", t, out[t]);
    CK_CUDA(cudaFree(dout));
}
END_TEST

// ---- launch configuration and runtime API ------------------------------------------------------

START_TEST(test_launch_errors) {
    ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
    struct bad {
        dim3 g, b;
        size_t smem;
        cudaError_t want;
        const char *what;
    };
    const bad cases[] = {
        {dim3(1), dim3(1025), 0, cudaErrorInvalidConfiguration, "1025 threads per block"},
        {dim3(1), dim3(32, 32, 2), 0, cudaErrorInvalidConfiguration, "2048 threads per block"},
        {dim3(1), dim3(1, 1, 65), 0, cudaErrorInvalidConfiguration, "blockDim.z 65"},
        {dim3(0), dim3(32), 0, cudaErrorInvalidConfiguration, "an empty grid"},
        {dim3(1, 65536), dim3(32), 0, cudaErrorInvalidConfiguration, "gridDim.y 65536"},
        {dim3(1), dim3(32), 48 * 1024 + 1, cudaErrorInvalidValue, "48 KiB + 1 of dynamic smem"},
    };
    for (const bad &c : cases) {
        cudaError_t got = cuemu_test_empty(c.g, c.b, c.smem);
        ck_assert_msg(got == c.want, "launch with %s: got %s want %s", c.what, cudaGetErrorName(got),
                      cudaGetErrorName(c.want));
        ck_assert_msg(cudaGetLastError() == cudaSuccess, "cudaGetLastError did not reset after %s", c.what);
    }
    CK_CUDA(cuemu_test_empty(dim3(2), dim3(32), 48 * 1024));
    CK_CUDA(cuemu_test_empty_set_smem(100 * 1024));
    CK_CUDA(cuemu_test_empty(dim3(2), dim3(32), 100 * 1024));
    ck_assert_msg(cuemu_test_empty(dim3(2), dim3(32), 100 * 1024 + 1) == cudaErrorInvalidValue,
                  "launch above the opted-in 100 KiB of dynamic smem was accepted");
    ck_assert_msg(cuemu_test_empty_set_smem(200 * 1024) == cudaErrorInvalidValue,
                  "cudaFuncSetAttribute accepted 200 KiB (sm_80 allows 163 KiB)");
    (void)cudaGetLastError();
    CK_CUDA(cuemu_test_empty_set_smem(48 * 1024));
    // Many small launches: the worker handshake must not lose one.
    for (int i = 0; i < 300; i++) CK_CUDA(cuemu_test_empty(dim3(1 + i % 3), dim3(1 + i % 64), 0));
}
END_TEST

START_TEST(test_runtime_api) {
    int n = 0;
    CK_CUDA(cudaGetDeviceCount(&n));
    ck_assert_int_eq(n, 1);
    cudaDeviceProp prop;
    CK_CUDA(cudaGetDeviceProperties(&prop, 0));
    ck_assert_int_eq(prop.major, 8);
    ck_assert_int_eq(prop.warpSize, 32);
    ck_assert_int_eq(prop.maxThreadsPerBlock, 1024);
    ck_assert_msg(cudaSetDevice(1) == cudaErrorInvalidDevice, "cudaSetDevice(1) succeeded");
    (void)cudaGetLastError();

    float *d = dev_alloc<float>(16);
    std::vector<float> fresh = from_dev(d, 16);
    for (float v : fresh) ck_assert_msg(std::isnan(v), "fresh cudaMalloc memory is %g, want the NaN fill", v);
    std::vector<float> h(17, 1.0f);
    ck_assert_msg(cudaMemcpy(d, h.data(), 17 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue,
                  "cudaMemcpy of 17 floats into a 16-float allocation succeeded");
    ck_assert_msg(cudaMemcpy(h.data(), d + 1, 16 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue,
                  "cudaMemcpy reading past the end of an allocation succeeded");
    ck_assert_msg(cudaMemset(d + 8, 0, 9 * sizeof(float)) == cudaErrorInvalidValue,
                  "cudaMemset past the end of an allocation succeeded");
    ck_assert_msg(cudaGetLastError() == cudaErrorInvalidValue, "cudaGetLastError lost the copy error");
    CK_CUDA(cudaMemcpy(d + 4, h.data(), 12 * sizeof(float), cudaMemcpyHostToDevice));
    CK_CUDA(cudaMemcpy(d, d + 4, 4 * sizeof(float), cudaMemcpyDeviceToDevice));
    CK_CUDA(cudaMemcpy(h.data(), d, 4 * sizeof(float), cudaMemcpyDefault));
    ck_assert_msg(h[0] == 1.0f, "device-to-device copy lost data: %g", h[0]);
    ck_assert_msg(cudaFree(h.data()) == cudaErrorInvalidValue, "cudaFree of a host pointer succeeded");
    (void)cudaGetLastError();
    CK_CUDA(cudaFree(d));

    cudaStream_t s;
    cudaEvent_t e0, e1;
    CK_CUDA(cudaStreamCreate(&s));
    CK_CUDA(cudaEventCreate(&e0));
    CK_CUDA(cudaEventCreate(&e1));
    CK_CUDA(cudaEventRecord(e0, s));
    CK_CUDA(cuemu_test_empty(dim3(4), dim3(64), 0));
    CK_CUDA(cudaEventRecord(e1, s));
    CK_CUDA(cudaEventSynchronize(e1));
    float ms = -1.0f;
    CK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    ck_assert_msg(ms >= 0.0f, "cudaEventElapsedTime gave %g ms", ms);
    CK_CUDA(cudaEventDestroy(e0));
    CK_CUDA(cudaEventDestroy(e1));
    CK_CUDA(cudaStreamSynchronize(s));
    CK_CUDA(cuemu_test_empty_on(s));
    CK_CUDA(cudaStreamDestroy(s));
    // A destroyed stream is refused, as a GPU refuses it, by every call that takes one.
    ck_assert_msg(cudaStreamSynchronize(s) == cudaErrorInvalidResourceHandle,
                  "cudaStreamSynchronize on a destroyed stream succeeded");
    ck_assert_msg(cuemu_test_empty_on(s) == cudaErrorInvalidResourceHandle,
                  "a launch on a destroyed stream succeeded");
    float *dd = dev_alloc<float>(4);
    ck_assert_msg(cudaMemsetAsync(dd, 0, 4, s) == cudaErrorInvalidResourceHandle,
                  "cudaMemsetAsync on a destroyed stream succeeded");
    ck_assert_msg(cudaStreamDestroy(s) == cudaErrorInvalidResourceHandle,
                  "a second cudaStreamDestroy succeeded");
    (void)cudaGetLastError();
    CK_CUDA(cudaFree(dd));
}
END_TEST

// ldmatrix (PTX ISA, "Warp-level matrix load instruction: ldmatrix"): lane l receives from
// matrix i the two 16-bit elements (l / 4, 2 (l % 4)) and (l / 4, 2 (l % 4) + 1), the first in
// the low half; .trans the elements (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4); x1 / x2 / x4
// load matrices 0 / 0-1 / 0-3 from the row addresses of lanes 0-7 / 0-15 / 0-31.
START_TEST(test_ptx_ldmatrix) {
    std::vector<uint16_t> src(4 * 64);
    rng r{12345};
    for (auto &v : src) v = static_cast<uint16_t>(r.next());
    uint16_t *d_src = to_dev(src);
    uint32_t *d_out = dev_alloc<uint32_t>(32 * 14);
    CK_CUDA(cuemu_test_ldmatrix(d_src, d_out));
    std::vector<uint32_t> out = from_dev(d_out, 32 * 14);
    auto at = [&](int i, int row, int col) -> uint32_t { return src[64 * i + 8 * row + col]; };
    for (int l = 0; l < 32; l++) {
        uint32_t plain[4], trans[4];
        for (int i = 0; i < 4; i++) {
            plain[i] = at(i, l / 4, 2 * (l % 4)) | at(i, l / 4, 2 * (l % 4) + 1) << 16;
            trans[i] = at(i, 2 * (l % 4), l / 4) | at(i, 2 * (l % 4) + 1, l / 4) << 16;
        }
        const uint32_t want[14] = {plain[0], plain[0], plain[1], plain[0], plain[1], plain[2],
                                   plain[3], trans[0], trans[0], trans[1], trans[0], trans[1],
                                   trans[2], trans[3]};
        static const char *names[14] = {"x1", "x2[0]", "x2[1]", "x4[0]", "x4[1]", "x4[2]",
                                        "x4[3]", "x1.trans", "x2.trans[0]", "x2.trans[1]",
                                        "x4.trans[0]", "x4.trans[1]", "x4.trans[2]",
                                        "x4.trans[3]"};
        for (int j = 0; j < 14; j++)
            ck_assert_msg(out[14 * l + j] == want[j], "ldmatrix %s lane %d: 0x%08x, want 0x%08x",
                          names[j], l, out[14 * l + j], want[j]);
    }
    CK_CUDA(cudaFree(d_src));
    CK_CUDA(cudaFree(d_out));
}
END_TEST

// cp.async (PTX ISA, "cp.async", "cp.async.wait_group"): src-size bytes copied, the rest of
// cp-size zero-filled; wait_group N completes all but the N most recent committed groups and
// never an uncommitted copy. The twin's model: the destination reads 0xFF until then.
START_TEST(test_ptx_cp_async) {
    std::vector<unsigned char> src(32 * 16);
    for (size_t i = 0; i < src.size(); i++) src[i] = static_cast<unsigned char>(i * 7 + 1);
    unsigned char *d_src = to_dev(src);
    unsigned char *d_out = dev_alloc<unsigned char>(32 * 96);
    CK_CUDA(cudaMemset(d_out, 0x11, 32 * 96));
    CK_CUDA(cuemu_test_cp_async(d_src, d_out));
    std::vector<unsigned char> out = from_dev(d_out, 32 * 96);
    for (int t = 0; t < 32; t++) {
        const unsigned char *o = &out[96 * t], *g = &src[16 * t];
        for (int i = 0; i < 16; i++) {
            ck_assert_msg(o[i] == 0xFF, "thread %d: cg16 byte %d before any wait: 0x%02x, want "
                          "the poison 0xff", t, i, o[i]);
            ck_assert_msg(o[16 + i] == g[i], "thread %d: cg16 byte %d after wait_group 2: %d, "
                          "want %d", t, i, o[16 + i], g[i]);
            ck_assert_msg(o[52 + i] == 0xFF, "thread %d: uncommitted cg16 byte %d after "
                          "wait_group 0: 0x%02x, want the poison 0xff", t, i, o[52 + i]);
            ck_assert_msg(o[68 + i] == g[i], "thread %d: cg16 byte %d after wait_all: %d, want "
                          "%d", t, i, o[68 + i], g[i]);
        }
        for (int i = 0; i < 8; i++) {
            ck_assert_msg(o[32 + i] == 0xFF, "thread %d: ca8 (group 1) byte %d after "
                          "wait_group 2: 0x%02x, want the poison 0xff", t, i, o[32 + i]);
            const unsigned char want = i < 5 ? g[i] : 0;
            ck_assert_msg(o[40 + i] == want, "thread %d: ca8 src-size 5 byte %d after "
                          "wait_group 1: %d, want %d", t, i, o[40 + i], want);
        }
        for (int i = 0; i < 4; i++)
            ck_assert_msg(o[48 + i] == 0, "thread %d: ca4 src-size 0 byte %d: %d, want 0", t, i,
                          o[48 + i]);
    }
    CK_CUDA(cudaFree(d_src));
    CK_CUDA(cudaFree(d_out));
}
END_TEST

static Suite *cuemu_suite(void) {
    Suite *s = suite_create("cuemu");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_block_sum);
    tcase_add_test(tc, test_softmax_rows);
    tcase_add_test(tc, test_shuffle_kinds_and_widths);
    tcase_add_test(tc, test_shuffle_wide_types);
    tcase_add_test(tc, test_warp_reductions);
    tcase_add_test(tc, test_votes);
    tcase_add_test(tc, test_partial_last_warp);
    tcase_add_test(tc, test_early_exit_collectives);
    tcase_add_test(tc, test_index_coverage);
    tcase_add_test(tc, test_atomics_histogram);
    tcase_add_test(tc, test_dynamic_shared);
    tcase_add_test(tc, test_static_shared_fresh_per_block);
    tcase_add_test(tc, test_multidim_shared_transpose);
    tcase_add_test(tc, test_syncthreads_predicates);
    tcase_add_test(tc, test_half_intrinsics);
    tcase_add_test(tc, test_template_and_argless_kernels);
    tcase_add_test(tc, test_spin_with_nanosleep);
    tcase_add_test(tc, test_ptx_ldmatrix);
    tcase_add_test(tc, test_ptx_cp_async);
    suite_add_tcase(s, tc);
    TCase *api = tcase_create("runtime");
    tcase_add_test(api, test_launch_errors);
    tcase_add_test(api, test_runtime_api);
    suite_add_tcase(s, api);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(cuemu_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

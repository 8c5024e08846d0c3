// cuemu_test_kernels.h: launchers of the emulator's own test kernels (kernels_test/*.cu).
//
// Each launcher takes device pointers (cudaMalloc), launches through QT_LAUNCH and returns
// cudaGetLastError(). C linkage, so C code (test_cuemu_capi.c) can call them too.
// Shapes in comments; every buffer is float32 unless said otherwise.
#ifndef QTRAIN_CUEMU_TEST_KERNELS_H
#define QTRAIN_CUEMU_TEST_KERNELS_H

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- reduce.cu ------------------------------------------------------------------------------
// out[b] = sum of x[b*per_block .. +per_block): shared-memory tree with __syncthreads.
// threads: a power of 2 <= 1024. x: (nblocks, per_block), out: (nblocks).
cudaError_t cuemu_test_block_sum(const float *x, float *out, int nblocks, int per_block,
                                 int threads);
// Same through dynamic shared memory (threads * 4 bytes).
cudaError_t cuemu_test_block_sum_dyn(const float *x, float *out, int nblocks, int per_block,
                                     int threads);
// Row softmax, one block per row, warp shuffles + shared memory: x, y: (rows, cols).
// threads: a multiple of 32 <= 1024.
cudaError_t cuemu_test_softmax_rows(const float *x, float *y, int rows, int cols, int threads);

// ---- warp.cu --------------------------------------------------------------------------------
// One warp per 32 threads of a 1-D block of `threads` (multiple of 32). For each thread t with
// lane l = t % 32 and v = in[t]: out[4t+0] = __shfl_sync(full, v, src_of(l), width) with
// src_of(l) = (7l + 3) % 37 - 2, out[4t+1] = __shfl_up_sync(full, v, 3, width),
// out[4t+2] = __shfl_down_sync(full, v, 5, width), out[4t+3] = __shfl_xor_sync(full, v, 6,
// width). in: (threads) int, out: (4 * threads) int.
cudaError_t cuemu_test_shuffle_int(const int *in, int *out, int threads, int width);
// The xor-6 shuffle of double and of __half2 values (as raw bits): in, out: (threads).
cudaError_t cuemu_test_shuffle_wide(const double *in_d, double *out_d, const unsigned *in_h2,
                                    unsigned *out_h2, int threads, int width);
// Segmented warp reductions over segments of `width` lanes (x: (threads)):
// xor_sum[t]: segment sum by xor butterfly (every lane); down_sum[t]: segment sum by down tree
// (valid at the segment's first lane); up_scan[t]: inclusive prefix sum within the segment by
// shfl_up; bcast[t]: value of the segment's last lane by __shfl_sync.
cudaError_t cuemu_test_warp_reduce(const float *x, float *xor_sum, float *down_sum,
                                   float *up_scan, float *bcast, int threads, int width);
// Votes with pred[t] (int): ballot[t] = __ballot_sync(full, pred), any[t], all[t],
// active[t] = __activemask(), match[t] = __match_any_sync(full, pred[t]), radd[t] =
// __reduce_add_sync(full, pred[t]), rmax[t] = __reduce_max_sync(full, (unsigned)pred[t]).
// Each (threads) of unsigned/int.
cudaError_t cuemu_test_votes(const int *pred, unsigned *ballot, int *any, int *all,
                             unsigned *active, unsigned *match, unsigned *radd, unsigned *rmax,
                             int threads);
// Partial last warp: a block of `threads` (any 1..1024) sums x (threads) with warp shuffles on
// each warp's existing lanes, then atomics: out[0] = sum.
cudaError_t cuemu_test_partial_warp_sum(const float *x, float *out, int threads);
// Lanes >= k of each warp return first; the rest (mask (1 << k) - 1) run collectives:
// out[4t+0] = __ballot_sync(mask, x[t] > 0), out[4t+1] = __shfl_down_sync(mask, x, 1) (own value
// at the last lane), out[4t+2] = __reduce_add_sync(mask, x), out[4t+3] = __shfl_sync(mask, x,
// k - 1). Exited lanes leave out untouched. x: (threads) int, out: (4 * threads) int.
cudaError_t cuemu_test_early_exit(const int *x, int *out, int threads, int k);

// ---- grid.cu --------------------------------------------------------------------------------
// Every thread of grid x block increments count[g] once, g = its global linear index in the
// (gx*bx, gy*by, gz*bz) box, and stores its coordinates: who[4g..4g+3] = (blockIdx linear,
// threadIdx linear, gridDim linear, blockDim linear). count: (N) unsigned, who: (4N) unsigned.
cudaError_t cuemu_test_index_cover(unsigned *count, unsigned *who, dim3 grid, dim3 block);
// Grid-wide histogram: bins[x[i] % nbins]++ by global atomics (bins_g) and by a per-block
// shared histogram merged with atomics (bins_s); sum[0] += x[i] as float; maxv[0] = max x[i];
// wraps[0] = atomicInc(.., 9) applied n times; x: (n) unsigned, bins: (nbins) unsigned.
cudaError_t cuemu_test_histogram(const unsigned *x, int n, unsigned *bins_g, unsigned *bins_s,
                                 int nbins, float *sum, unsigned *maxv, unsigned *wraps,
                                 int blocks, int threads);
// y = x reversed within each block of `threads`, through dynamic shared memory. Also
// probe[t] = bits of the dynamic shared float the thread reads before anyone writes it.
cudaError_t cuemu_test_reverse_dyn(const float *x, float *y, unsigned *probe, int blocks,
                                   int threads);
// probe[b*threads + t] = bits of a static shared float read before any write, in every block
// (each block must see the emulator's fresh 0xFFFFFFFF pattern, not the previous block's data).
cudaError_t cuemu_test_static_poison(unsigned *probe, int blocks, int threads);
// out = in^T, in/out: (n, n), through a 2-D QT_SHARED tile with 2-D blocks; cube (6) int: how
// many threads of block (0,0) fall in each (threadIdx.y % 2, threadIdx.x % 3) class, counted in
// a 3-D QT_SHARED array.
cudaError_t cuemu_test_transpose(const float *in, float *out, int n, int *cube);
// __syncthreads_count/and/or of pred (threads) int: res[3b+0..2] per block b.
cudaError_t cuemu_test_sync_preds(const int *pred, int *res, int blocks, int threads);
// Half and bfloat16 intrinsics on a (n) __half given as raw bits: out[8i+0..7] = float of hexp(a), __hfma(a, a, a),
// hsqrt(|a|), __ldg(a), h2exp(a,a).x, bf16 hexp, bf16 __hfma, xor-1 shuffle of the __half.
cudaError_t cuemu_test_half_ops(const unsigned short *a_bits, float *out, int n);
// A template kernel (scale<float, 3>) and a kernel without arguments (sets a __device__ int
// to 7), launched through QT_LAUNCH: y = 3 * x, flag = 7.
cudaError_t cuemu_test_template_launch(const float *x, float *y, int n, int *flag);
// All threads spin (with __nanosleep) until thread 32 sets a shared flag: out[t] = value seen.
cudaError_t cuemu_test_spin_nanosleep(int *out);
// A kernel that does nothing, for launch configuration checks.
cudaError_t cuemu_test_empty(dim3 grid, dim3 block, size_t smem);
// The same kernel launched on `stream`.
cudaError_t cuemu_test_empty_on(cudaStream_t stream);
// Sets the dynamic shared memory limit of that empty kernel (cudaFuncSetAttribute).
cudaError_t cuemu_test_empty_set_smem(int bytes);

// ---- ptx.cu ---------------------------------------------------------------------------------
// ldmatrix x1/x2/x4 and .trans of 4 matrices src (4, 8, 8) uint16 by one warp: out (32, 14)
// uint32, per lane: x1, x2[0..1], x4[0..3], x1.trans, x2.trans[0..1], x4.trans[0..3].
cudaError_t cuemu_test_ldmatrix(const uint16_t *src, uint32_t *out);
// cp.async groups, zero fill and waits as one warp's threads see them: src (32, 16) bytes,
// out (32, 96) bytes (the layout is in ptx.cu).
cudaError_t cuemu_test_cp_async(const unsigned char *src, unsigned char *out);

// ---- fail.cu: kernels that must be reported (see test_cuemu_fail.cpp) -------------------------
// Runs failure case `name`; returns -1 if no such case. Most never return.
int cuemu_test_fail_case(const char *name);

#ifdef __cplusplus
}
#endif

#endif

// dqt.cu: qt_cuda_dqt_step and qt_cuda_dqt_dequant, direct quantized training on the device
// (kernels/dqt.h; Zhao et al. 2024, PAPERS.md section 7): one AdamW step applied to
// int8 codes with stochastic rounding onto the grid of scale_out, and codes * scale.
// CPU twin: kernels/cpu/dqt.c. Both take the per-element math (AdamW in adamw.c's order, the
// rounding) and the stats reduction order from base/dqt_math.h, so codes, m, v and
// the stats are bit-identical to the CPU's for fp32 gradients (fp16/bf16 gradients are widened
// to fp32 first, exactly, so they match the CPU run on the dt-rounded gradients).
// Contract: codes (n) int8, m, v (n) fp32 updated in place unless dp->dry_run; grad (n) and
// out (n) in dt (fp32, fp16, bf16). stats (host pointer, may be NULL): sum |w'| and max |code|
// before the step, reduced on the device in a fixed order and copied back (the call then waits
// for the stream). The reduction's partials live in the caller's scratch (device, at least
// qt_cuda_dqt_scratch_bytes(n): one double and one int per 4096 elements, plus the totals),
// free again when the call returns since it waited; without stats scratch is not touched (may
// be NULL) and the call does not wait. Nothing is allocated here.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include <stdint.h>

#include "base/dqt_math.h"
#include "kernels/dqt.h"
#include "base/dtype.h"

// ---- launch constants -----------------------------------------------------------------------
// The step kernel's block IS the lane set of dqt_math.h's stats order (thread = lane), one
// block per QT_DQT_CHUNK elements; the final reduction is one block of the same width.
// Dequant: element-wise, grid-stride (common.cuh's QT_EW_THREADS, QT_EW_MAX_BLOCKS).
#define STEP_THREADS QT_DQT_LANES
// A grid dimension's limit; n above MAX_CHUNKS * QT_DQT_CHUNK (8.8e12) is refused.
#define MAX_CHUNKS 2147483647ull

// ---- device helpers -------------------------------------------------------------------------

// The fixed tree of dqt_math.h over the block's lanes (qt_block_tree): sum[t] += sum[t + s]
// (max for mx), s = LANES/2 .. 1; the totals end in sum[0], mx[0]. Every thread of the block
// must call it.
static __device__ __forceinline__ void lanes_tree(double *sum, int *mx) {
    qt_block_tree<QT_DQT_LANES>((int)threadIdx.x, [&](int dst, int src) {
        sum[dst] += sum[src];
        mx[dst] = qt_op_max()(mx[dst], mx[src]);
    });
}

// ---- kernels --------------------------------------------------------------------------------

// One DQT step on chunk blockIdx.x = elements [b CHUNK, min(n, (b+1) CHUNK)).
// Thread -> data: thread t (= lane t) handles elements b CHUNK + t + j LANES, j = 0 .. 15, in
// order (coalesced: a warp reads 32 consecutive elements); guard i < n. u for element i is
// qt_quant_uniform(seed, stream, i) = qt_philox_uniform(...), the CPU's draw.
// dry: compute only. part_sum, part_max (device, one per chunk) or NULL for no stats; with
// stats, shared memory holds the block's LANES partial sums (double) and maxima (int), reduced
// by lanes_tree; thread 0 writes the chunk's entries. The stats branch is uniform per launch.
template <typename T>
static __global__ void __launch_bounds__(STEP_THREADS)
    dqt_step_chunk(qt_dqt_coef k, uint64_t seed, uint64_t stream, int dry, int8_t *codes,
                   const T *grad, float *m, float *v, size_t n, double *part_sum,
                   int *part_max) {
    const size_t start = (size_t)blockIdx.x * QT_DQT_CHUNK;
    const unsigned t = threadIdx.x;
    double acc = 0.0;
    int mx = 0;
    for (int j = 0; j < QT_DQT_PER_LANE; j++) {
        const size_t i = start + t + (size_t)j * QT_DQT_LANES;
        if (i >= n) break;
        const int c = codes[i];
        float mi = m[i], vi = v[i], tq;
        const float w1 = qt_dqt_update(&k, qt_ld(grad + i), c, &mi, &vi, &tq);
        const int q = qt_dqt_round(tq, qt_quant_uniform(seed, stream, i), k.qmin, k.qmax);
        if (!dry) {
            codes[i] = (int8_t)q;
            m[i] = mi;
            v[i] = vi;
        }
        acc += (double)fabsf(w1);
        mx = qt_op_max()(mx, c < 0 ? -c : c);
    }
    if (!part_sum) return;
    QT_SHARED(double, sh_sum, STEP_THREADS);
    QT_SHARED(int, sh_max, STEP_THREADS);
    sh_sum[t] = acc;
    sh_max[t] = mx;
    lanes_tree(sh_sum, sh_max);
    if (t == 0) {
        part_sum[blockIdx.x] = sh_sum[0];
        part_max[blockIdx.x] = sh_max[0];
    }
}

// The second level, one block: thread t sums partials t, t + LANES, ... < nchunks in order
// (dqt_math.h), then lanes_tree; thread 0 writes *out_sum, *out_max. Shared memory: the lanes'
// sums (double) and maxima (int).
static __global__ void __launch_bounds__(STEP_THREADS)
    dqt_stats_final_block(const double *part_sum, const int *part_max, size_t nchunks,
                          double *out_sum, int *out_max) {
    QT_SHARED(double, sh_sum, STEP_THREADS);
    QT_SHARED(int, sh_max, STEP_THREADS);
    const unsigned t = threadIdx.x;
    double acc = 0.0;
    int mx = 0;
    for (size_t c = t; c < nchunks; c += QT_DQT_LANES) {
        acc += part_sum[c];
        mx = qt_op_max()(mx, part_max[c]);
    }
    sh_sum[t] = acc;
    sh_max[t] = mx;
    lanes_tree(sh_sum, sh_max);
    if (t == 0) {
        *out_sum = sh_sum[0];
        *out_max = sh_max[0];
    }
}

// out[i] = codes[i] * scale rounded to T (qt_quant_dequant, the CPU's expression).
// Thread -> data: grid-stride, thread i handles i, i + gridDim.x blockDim.x, ... < n.
template <typename T>
static __global__ void __launch_bounds__(QT_EW_THREADS)
    dqt_dequant_elem(T *out, const int8_t *codes, float scale, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        qt_st(out + i, qt_quant_dequant(codes[i], scale, 0));
}

// ---- launchers ------------------------------------------------------------------------------

template <typename T>
static void step_launch(cudaStream_t st, const qt_dqt_coef &k, const qt_dqt_params *dp,
                        int8_t *codes, const void *grad, float *m, float *v, size_t n,
                        size_t nchunks, double *part_sum, int *part_max) {
    QT_LAUNCH(dqt_step_chunk<T>, (unsigned)nchunks, STEP_THREADS, 0, st, k, dp->seed,
              dp->stream, dp->dry_run ? 1 : 0, codes, (const T *)grad, m, v, n, part_sum,
              part_max);
}

// Launches the step (and, with part_sum, the stats reduction into part_sum[nchunks] and
// part_max[nchunks]); checks each launch.
static qt_status step_run(const char *op, cudaStream_t st, int dt, const qt_dqt_params *dp,
                          int8_t *codes, const void *grad, float *m, float *v, size_t n,
                          size_t nchunks, double *part_sum, int *part_max) {
    const qt_dqt_coef k = qt_dqt_coef_of(dp);
    QT_DTYPE_DISPATCH(dt, step_launch, st, k, dp, codes, grad, m, v, n, nchunks, part_sum,
                      part_max);
    QT_CHECK_LAUNCH(op);
    if (part_sum) {
        QT_LAUNCH(dqt_stats_final_block, 1, STEP_THREADS, 0, st, (const double *)part_sum,
                  (const int *)part_max, nchunks, part_sum + nchunks, part_max + nchunks);
        QT_CHECK_LAUNCH(op);
    }
    return QT_OK;
}

template <typename T>
static void dequant_launch(cudaStream_t st, void *out, const int8_t *codes, float scale, size_t n) {
    QT_LAUNCH(dqt_dequant_elem<T>, qt_ew_blocks(n, 1), QT_EW_THREADS, 0, st, (T *)out, codes, scale,
              n);
}

// Scratch layout: (nchunks + 1) doubles (the chunks' partial sums, then the total), then
// (nchunks + 1) ints (partial maxima, then the total); the ints start 8-byte aligned.
extern "C" size_t qt_cuda_dqt_scratch_bytes(size_t n) {
    if (n == 0) return 0;
    const size_t nchunks = QT_CEIL_DIV(n, (size_t)QT_DQT_CHUNK);
    return (nchunks + 1) * (sizeof(double) + sizeof(int));
}

extern "C" qt_status qt_cuda_dqt_step(qt_cuda_stream stream, qt_dtype dt,
                                      const qt_dqt_params *dp, int8_t *codes, const void *grad,
                                      float *m, float *v, size_t n, qt_dqt_stats *stats,
                                      void *scratch) {
    const char *op = "cuda dqt_step";
    QT_TRY(qt_check_dtype(op, dt));
    QT_TRY(qt_dqt_check(op, dp));
    if (stats) {
        stats->abs_sum = 0.0;
        stats->max_abs_code = 0;
    }
    if (n == 0 || (dp->dry_run && !stats)) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("codes", codes), qt_arg("grad", grad, dt), qt_arg("m", m),
                            qt_arg("v", v)));
    const size_t nchunks = QT_CEIL_DIV(n, (size_t)QT_DQT_CHUNK);
    if (nchunks > MAX_CHUNKS)
        return qt_error(QT_ERR_ARG, "%s: n = %zu exceeds %llu elements; split the tensor", op,
                        n, MAX_CHUNKS * QT_DQT_CHUNK);
    cudaStream_t st = (cudaStream_t)stream;
    if (!stats) return step_run(op, st, dt, dp, codes, grad, m, v, n, nchunks, NULL, NULL);
    if (!scratch || !qt_aligned(scratch, sizeof(double)))
        return qt_error(QT_ERR_ARG,
                        "%s: stats need a device scratch of qt_cuda_dqt_scratch_bytes(%zu) = "
                        "%zu bytes, 8-byte aligned (got %p)",
                        op, n, qt_cuda_dqt_scratch_bytes(n), scratch);

    // Scratch: (nchunks + 1) doubles (partials, total), then (nchunks + 1) ints.
    const size_t dbytes = (nchunks + 1) * sizeof(double);
    double *part_sum = (double *)scratch;
    int *part_max = (int *)((char *)scratch + dbytes);
    QT_TRY(step_run(op, st, dt, dp, codes, grad, m, v, n, nchunks, part_sum, part_max));
    double total = 0.0;
    int mx = 0;
    cudaError_t e =
        cudaMemcpyAsync(&total, part_sum + nchunks, sizeof total, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(&mx, part_max + nchunks, sizeof mx, cudaMemcpyDeviceToHost, st);
    // the wait also hands the scratch back to the caller
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    if (e != cudaSuccess)
        return qt_error(QT_ERR_CUDA, "%s: copying the stats back failed at %s:%d: %s", op,
                        __FILE__, __LINE__, cudaGetErrorString(e));
    stats->abs_sum = total;
    stats->max_abs_code = mx;
    return QT_OK;
}

extern "C" qt_status qt_cuda_dqt_dequant(qt_cuda_stream stream, qt_dtype dt, void *out,
                                         const int8_t *codes, float scale, size_t n) {
    const char *op = "cuda dqt_dequant";
    QT_TRY(qt_check_elementwise(op, dt, n, qt_arg("out", out, dt), qt_arg("codes", codes)));
    if (n == 0) return QT_OK;
    QT_DTYPE_DISPATCH(dt, dequant_launch, (cudaStream_t)stream, out, codes, scale, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// step: dqt_step_chunk reads codes (1 byte), grad (E), fp32 m, v and writes codes, m, v
// ((18 + E) n; a dry run writes none of them: (9 + E) n), plus one partial sum and maximum per
// chunk with stats; 28 flops per element (AdamW's 18, the rescale (3), the stochastic rounding
// (5), |w'| summed (2)). With stats: dqt_stats_final_block reduces the partials, then the two
// totals are copied to the host and the call waits (a host synchronization). dequant: reads
// codes, writes out ((1 + E) n), one product each.

extern "C" void qt_cuda_dqt_step_cost(qt_cost *c, qt_dtype dt, const qt_dqt_params *dp,
                                      const int8_t *codes, const void *grad, const float *m,
                                      const float *v, size_t n, const qt_dqt_stats *stats,
                                      const void *scratch) {
    (void)codes, (void)grad, (void)m, (void)v;
    if (!dp || n == 0 || (dp->dry_run && !stats)) return;
    if (stats && (!scratch || (uintptr_t)scratch % sizeof(double) != 0)) return;
    const double N = (double)n, E = (double)qt_dtype_size(dt);
    const double chunks = (double)QT_CEIL_DIV(n, (size_t)QT_DQT_CHUNK);
    const double bytes = (dp->dry_run ? 9 + E : 18 + E) * N + (stats ? 12 * chunks : 0);
    qt_cost_kernel(c, "dqt_step_chunk", bytes, 28 * N);
    if (!stats) return;
    qt_cost_kernel(c, "dqt_stats_final_block", 12 * chunks + 12, 2 * chunks);
    qt_cost_add(c, "memcpy", QT_LAUNCH_COPY_D2H, QT_MATH_NONE, sizeof(double), 0, 1);
    qt_cost_add(c, "memcpy", QT_LAUNCH_COPY_D2H, QT_MATH_NONE, sizeof(int), 0, 1);
    qt_cost_add(c, "cudaStreamSynchronize", QT_LAUNCH_SYNC, QT_MATH_NONE, 0, 0, 1);
}

extern "C" void qt_cuda_dqt_dequant_cost(qt_cost *c, qt_dtype dt, const void *out,
                                         const int8_t *codes, float scale, size_t n) {
    (void)out, (void)codes, (void)scale;
    if (n == 0) return;
    const double N = (double)n;
    qt_cost_kernel(c, "dqt_dequant_elem", (1 + (double)qt_dtype_size(dt)) * N, N);
}

// gate.cu: qt_cuda_gate_{fwd,bwd} and qt_cuda_gate_mul_{fwd,bwd}, the attention gate of
// PAPERS.md section 3: out_h = sigmoid(G_h(x_h)) * ctx_h, per head h, with G
//   linear:    z[n, h] = b1[h] + w1[h, :] . x[n, hD:(h+1)D]
//   mlp:       hid[n, h, j] = b1[h, j] + w1[h, j, :] . x[n, hD:(h+1)D]
//              z[n, h] = b2[h] + sum_j relu(hid[n, h, j]) w2[h, j]
//   all heads: z[n, h] = b1[h] + w1[h, :] . x[n, :]
//   gate = sigmoid(z); backward from dgate: dz = dgate g (1 - g), then the chain rule.
// CPU twin: kernels/cpu/gate.c (body in kernels/cpu/gate_impl.h), same argument order.
// Contract (kernels/gate.h): forwards overwrite gate, hidden (fp32) and out (dt; out
// may alias ctx: each element is read and written by one thread); backwards add into dx, dw1,
// db1, dw2, db2, dctx (dt) and dgate (fp32); a NULL gradient pointer skips that gradient.
// Determinism: no atomics. Parameter gradients sum over the N tokens in a fixed order (each
// thread a fixed stride of rows, then a fixed tree over the threads of one block), so a run
// reproduces its bits; the order differs from the CPU's, hence tolerances in the tests.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "kernels/gate.h"

// ---- launch constants ----------------------------------------------------------------------
// Gate forward and gate_mul backward: one warp per (token, head) dot product; 4 warps a block
// keeps the tail block small when N * H is not a multiple of it.
#define WARPS_PER_BLOCK 4
// Element-wise kernels (dx, gate_mul forward): the usual 256 threads.
#define THREADS 256
// dw1: a block owns 32 consecutive dw1 elements (threadIdx.x: coalesced x and dw1 accesses) and
// splits the N rows over ROWS_SPLIT thread rows (threadIdx.y), reduced in shared memory. No
// scratch is needed (the contract has none), and the order is fixed.
#define ROWS_SPLIT 8
// db1, dw2, db2: one block per output element, threads striding the N rows.
#define BIAS_THREADS 256

// ---- device helpers ------------------------------------------------------------------------
// a[0:len) . b[0:len) over the warp: lane l takes l, l + 32, ...; every lane gets the sum.
template <typename T>
static __device__ __forceinline__ float warp_dot(const T *a, const T *b, int len, int lane) {
    float s = 0.0f;
    for (int i = lane; i < len; i += QT_WARP)
        s += qt_to_f32(a[i]) * qt_to_f32(b[i]);
    return qt_warp_sum(s);
}

// d loss / d logit from the saved gate value: dgate g (1 - g), in the CPU's order.
static __device__ __forceinline__ float gate_dz(const float *dgate, const float *gate,
                                                size_t i) {
    const float g = gate[i];
    return dgate[i] * g * (1.0f - g);
}

// ---- kernels: gate -------------------------------------------------------------------------

// Thread -> data: warp q (over the grid) owns (n, h) = (q / H, q % H); lanes stride the dot
// products (D long, or C for all heads) and reduce with shuffles; lane 0 writes hidden (MLP)
// and the gate. No shared memory. Guards: a warp with q >= N H returns whole.
template <typename T>
static __global__ void __launch_bounds__(WARPS_PER_BLOCK *QT_WARP)
    gate_fwd_warp(int kind, int H, int nh, float *gate, float *hidden, const T *x, const T *w1,
                  const T *b1, const T *w2, const T *b2, int N, int C) {
    const int lane = (int)(threadIdx.x % QT_WARP);
    const size_t q = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / QT_WARP;
    if (q >= (size_t)N * (size_t)H) return;
    const size_t n = q / (size_t)H;
    const int h = (int)(q % (size_t)H), D = C / H;
    const T *xn = x + n * (size_t)C;
    float z;
    if (kind == QT_GATE_LINEAR) {
        z = qt_to_f32(b1[h]) + warp_dot(xn + (size_t)h * D, w1 + (size_t)h * D, D, lane);
    } else if (kind == QT_GATE_ALL_HEADS) {
        z = qt_to_f32(b1[h]) + warp_dot(xn, w1 + (size_t)h * C, C, lane);
    } else {
        z = qt_to_f32(b2[h]);
        float *hid = hidden + q * (size_t)nh; // (n, h, :) of (N, H, nh)
        for (int j = 0; j < nh; j++) {
            const size_t hj = (size_t)h * nh + j;
            const float v = qt_to_f32(b1[hj]) + warp_dot(xn + (size_t)h * D, w1 + hj * D, D, lane);
            if (lane == 0) hid[j] = v;
            z += fmaxf(v, 0.0f) * qt_to_f32(w2[hj]);
        }
    }
    if (lane == 0) gate[q] = 1.0f / (1.0f + expf(-z));
}

// dx (N, C) += the gate's input gradient. Thread -> data: one element (n, c) per thread,
// summing its heads' (all heads) or hidden units' (MLP) contributions in order, then one
// rounded add. No shared memory. Guard: i < N C.
template <typename T>
static __global__ void __launch_bounds__(THREADS)
    gate_bwd_dx_elem(int kind, int H, int nh, T *dx, const float *dgate, const float *gate,
                     const float *hidden, const T *w1, const T *w2, int N, int C) {
    const size_t i = (size_t)blockIdx.x * THREADS + threadIdx.x;
    if (i >= (size_t)N * (size_t)C) return;
    const size_t n = i / (size_t)C;
    const int c = (int)(i % (size_t)C), D = C / H;
    float acc = 0.0f;
    if (kind == QT_GATE_ALL_HEADS) {
        for (int h = 0; h < H; h++)
            acc += gate_dz(dgate, gate, n * H + h) * qt_to_f32(w1[(size_t)h * C + c]);
    } else {
        const int h = c / D, d = c % D;
        const float dz = gate_dz(dgate, gate, n * H + h);
        if (kind == QT_GATE_LINEAR) {
            acc = dz * qt_to_f32(w1[(size_t)h * D + d]);
        } else {
            const float *hid = hidden + (n * H + h) * (size_t)nh;
            for (int j = 0; j < nh; j++) {
                const size_t hj = (size_t)h * nh + j;
                if (hid[j] > 0.0f) acc += dz * qt_to_f32(w2[hj]) * qt_to_f32(w1[hj * D + d]);
            }
        }
    }
    qt_add_st(dx + i, acc);
}

// dw1 (units, len) += sum_n coef[n, u] x[n, xoff(u) + k] for element e = u len + k, where
//   linear:    units H,      len D, coef dz[n, h],                          xoff h D
//   all heads: units H,      len C, coef dz[n, h],                          xoff 0
//   mlp:       units H nh,   len D, coef [hid[n, u] > 0] dz[n, h] w2[u],    xoff h D  (h = u / nh)
// Thread -> data: block b owns e = 32 b + threadIdx.x; thread row y sums n = y, y + 8, ...;
// red (ROWS_SPLIT x 33 floats, padded against bank conflicts) holds the 8 partials, which
// thread row 0 adds in order. Guards: threads with e >= units len still reach the barrier.
template <typename T>
static __global__ void __launch_bounds__(QT_WARP *ROWS_SPLIT)
    gate_bwd_dw1_coltile(int kind, int H, int nh, T *dw1, const float *dgate, const float *gate,
                         const float *hidden, const T *x, const T *w2, int N, int C) {
    QT_SHARED(float, red, ROWS_SPLIT, QT_WARP + 1);
    const int tx = (int)threadIdx.x, ty = (int)threadIdx.y, D = C / H;
    const int mlp = kind == QT_GATE_MLP;
    const int units = mlp ? H * nh : H, len = kind == QT_GATE_ALL_HEADS ? C : D;
    const size_t e = (size_t)blockIdx.x * QT_WARP + tx;
    float acc = 0.0f;
    if (e < (size_t)units * (size_t)len) {
        const int u = (int)(e / (size_t)len), k = (int)(e % (size_t)len);
        const int h = mlp ? u / nh : u;
        const int xcol = kind == QT_GATE_ALL_HEADS ? k : h * D + k;
        const float w2u = mlp ? qt_to_f32(w2[u]) : 0.0f;
        for (int n = ty; n < N; n += ROWS_SPLIT) {
            float coef = gate_dz(dgate, gate, (size_t)n * H + h);
            if (mlp) coef = hidden[(size_t)n * units + u] > 0.0f ? coef * w2u : 0.0f;
            acc += coef * qt_to_f32(x[(size_t)n * C + xcol]);
        }
    }
    red[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && e < (size_t)units * (size_t)len) {
        float s = red[0][tx];
        for (int y = 1; y < ROWS_SPLIT; y++) s += red[y][tx];
        qt_add_st(dw1 + e, s);
    }
}

// Block-wide sum of one value per thread (BIAS_THREADS threads): qt_block_allreduce, i.e. warp
// butterflies, then every thread adds the 8 warp partials of `scratch` in warp order. Ends with
// a barrier so scratch can be reused.
static __device__ __forceinline__ float block_sum(float v, float *scratch) {
    return qt_block_allreduce<BIAS_THREADS>(v, scratch, qt_op_sum());
}

// db1, dw2, db2 += sums over n. Thread -> data: task b = first + blockIdx.x; b < units owns
// unit u = b (db1[u]: sum of coef as in dw1; dw2[u] for the MLP: sum of dz relu(hid)); b =
// units + h (MLP only) owns db2[h] = sum of dz. Threads stride the N rows; block_sum reduces
// (scratch: 8 floats). The branch on b is uniform, so every thread reaches the barriers.
template <typename T>
static __global__ void __launch_bounds__(BIAS_THREADS)
    gate_bwd_bias_rowsum(int kind, int H, int nh, int first, T *db1, T *dw2, T *db2,
                         const float *dgate, const float *gate, const float *hidden,
                         const T *w2, int N) {
    QT_SHARED(float, scratch, BIAS_THREADS / QT_WARP);
    const int mlp = kind == QT_GATE_MLP, units = mlp ? H * nh : H;
    const int b = first + (int)blockIdx.x;
    if (b >= units) { // db2[h], MLP only
        const int h = b - units;
        float s = 0.0f;
        for (int n = (int)threadIdx.x; n < N; n += BIAS_THREADS)
            s += gate_dz(dgate, gate, (size_t)n * H + h);
        s = block_sum(s, scratch);
        if (threadIdx.x == 0) qt_add_st(db2 + h, s);
        return;
    }
    const int u = b, h = mlp ? u / nh : u;
    const float w2u = mlp ? qt_to_f32(w2[u]) : 0.0f;
    float sb = 0.0f, sw2 = 0.0f;
    for (int n = (int)threadIdx.x; n < N; n += BIAS_THREADS) {
        const float dz = gate_dz(dgate, gate, (size_t)n * H + h);
        if (mlp) {
            const float v = hidden[(size_t)n * units + u];
            sb += v > 0.0f ? dz * w2u : 0.0f;
            sw2 += dz * fmaxf(v, 0.0f);
        } else {
            sb += dz;
        }
    }
    sb = block_sum(sb, scratch);
    if (mlp) sw2 = block_sum(sw2, scratch);
    if (threadIdx.x == 0) {
        if (db1) qt_add_st(db1 + u, sb);
        if (mlp && dw2) qt_add_st(dw2 + u, sw2);
    }
}

// ---- kernels: gate times context -------------------------------------------------------------

// out (N, C) = gate[n, c / D] ctx[n, c]. Thread -> data: one element per thread; out may alias
// ctx (read, then written, by the same thread). No shared memory. Guard: i < N C.
template <typename T>
static __global__ void __launch_bounds__(THREADS)
    gate_mul_fwd_elem(T *out, const float *gate, const T *ctx, int N, int C, int H) {
    const size_t i = (size_t)blockIdx.x * THREADS + threadIdx.x;
    if (i >= (size_t)N * (size_t)C) return;
    const size_t n = i / (size_t)C;
    const int h = (int)(i % (size_t)C) / (C / H);
    qt_st(out + i, gate[n * H + h] * qt_to_f32(ctx[i]));
}

// dctx (N, C) += gate dout; dgate[n, h] += dout . ctx over the head's D channels.
// Thread -> data: warp q owns (n, h) = (q / H, q % H); lanes stride the D channels, updating
// dctx as they go and reducing the dot by shuffles; lane 0 adds it to dgate. No shared memory.
// Guards: warps with q >= N H return whole.
template <typename T>
static __global__ void __launch_bounds__(WARPS_PER_BLOCK *QT_WARP)
    gate_mul_bwd_warp(T *dctx, float *dgate, const T *dout, const float *gate, const T *ctx, int N,
                      int C, int H) {
    const int lane = (int)(threadIdx.x % QT_WARP);
    const size_t q = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / QT_WARP;
    if (q >= (size_t)N * (size_t)H) return;
    const int D = C / H;
    const size_t off = (q / (size_t)H) * (size_t)C + (q % (size_t)H) * (size_t)D;
    const float g = gate[q];
    float dot = 0.0f;
    for (int d = lane; d < D; d += QT_WARP) {
        const float go = qt_to_f32(dout[off + d]);
        dot += go * qt_to_f32(ctx[off + d]);
        if (dctx) qt_add_st(dctx + off + d, g * go);
    }
    dot = qt_warp_sum(dot);
    if (lane == 0 && dgate) dgate[q] += dot;
}

// ---- launchers -----------------------------------------------------------------------------

static qt_status check_gate(const char *op, qt_dtype dt, const qt_gate_shape *g, int N, int C) {
    QT_TRY(qt_check_dtype(op, dt));
    if (!g) return qt_error(QT_ERR_ARG, "%s: gate shape is NULL; pass one", op);
    const int kind = qt_enum_int(g->kind);
    if (kind != QT_GATE_LINEAR && kind != QT_GATE_MLP && kind != QT_GATE_ALL_HEADS)
        return qt_error(QT_ERR_ARG,
                        "%s: gate kind %d is not linear (1), mlp (2) or all_heads (3)", op, kind);
    if (N < 0 || C < 1 || g->n_heads < 1 || C % g->n_heads != 0)
        return qt_error(QT_ERR_ARG,
                        "%s: shape (N %d, C %d, heads %d); need N >= 0 and C a positive "
                        "multiple of heads",
                        op, N, C, g->n_heads);
    if (g->kind == QT_GATE_MLP && g->n_hid < 1)
        return qt_error(QT_ERR_ARG, "%s: mlp gate with n_hid = %d; need n_hid >= 1", op,
                        g->n_hid);
    return QT_OK;
}

template <typename T>
static void launch_gate_fwd(cudaStream_t st, const qt_gate_shape *g, float *gate,
                            float *hidden, const void *x, const void *w1, const void *b1,
                            const void *w2, const void *b2, int N, int C, size_t blocks) {
    QT_LAUNCH(gate_fwd_warp<T>, (unsigned)blocks, WARPS_PER_BLOCK * QT_WARP, 0, st, (int)g->kind,
              g->n_heads, g->n_hid, gate, hidden, (const T *)x, (const T *)w1, (const T *)b1,
              (const T *)w2, (const T *)b2, N, C);
}

extern "C" qt_status qt_cuda_gate_fwd(qt_cuda_stream s, qt_dtype dt, const qt_gate_shape *g,
                                      float *gate, float *hidden, const void *x, const void *w1,
                                      const void *b1, const void *w2, const void *b2, int N,
                                      int C) {
    const char *op = "gate_fwd";
    QT_TRY(check_gate(op, dt, g, N, C));
    if (N == 0) return QT_OK;
    const qt_arg_need mlp = g->kind == QT_GATE_MLP ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL;
    QT_TRY(qt_check_tensors(op, qt_arg("gate", gate), qt_arg("x", x, dt), qt_arg("w1", w1, dt),
                            qt_arg("b1", b1, dt), qt_arg("hidden (mlp)", hidden, mlp),
                            qt_arg("w2 (mlp)", w2, dt, mlp), qt_arg("b2 (mlp)", b2, dt, mlp)));
    const size_t blocks = QT_CEIL_DIV((size_t)N * (size_t)g->n_heads, (size_t)WARPS_PER_BLOCK);
    QT_TRY(qt_check_grid(op, blocks));
    QT_DTYPE_DISPATCH(dt, launch_gate_fwd, (cudaStream_t)s, g, gate, hidden, x, w1, b1, w2, b2, N,
                      C, blocks);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// The backward's up to three launches (dx, dw1, biases), each only when it has an output.
template <typename T>
static qt_status launch_gate_bwd(cudaStream_t st, const qt_gate_shape *g, void *dx, void *dw1,
                                 void *db1, void *dw2, void *db2, const float *dgate,
                                 const float *gate, const float *hidden, const void *x,
                                 const void *w1, const void *w2, int N, int C) {
    const char *op = "gate_bwd";
    const int kind = (int)g->kind, H = g->n_heads, nh = g->n_hid, mlp = kind == QT_GATE_MLP;
    const int units = mlp ? H * nh : H, len = kind == QT_GATE_ALL_HEADS ? C : C / H;
    if (dx) {
        const size_t blocks = QT_CEIL_DIV((size_t)N * (size_t)C, (size_t)THREADS);
        QT_TRY(qt_check_grid(op, blocks));
        QT_LAUNCH(gate_bwd_dx_elem<T>, (unsigned)blocks, THREADS, 0, st, kind, H, nh, (T *)dx,
                  dgate, gate, hidden, (const T *)w1, (const T *)w2, N, C);
        QT_CHECK_LAUNCH(op);
    }
    if (dw1) {
        const size_t blocks = QT_CEIL_DIV((size_t)units * (size_t)len, (size_t)QT_WARP);
        QT_TRY(qt_check_grid(op, blocks));
        QT_LAUNCH(gate_bwd_dw1_coltile<T>, (unsigned)blocks, dim3(QT_WARP, ROWS_SPLIT), 0, st, kind,
                  H, nh, (T *)dw1, dgate, gate, hidden, (const T *)x, (const T *)w2, N, C);
        QT_CHECK_LAUNCH(op);
    }
    // tasks [0, units) for db1/dw2, then [units, units + H) for db2: launch the wanted range
    const int want_units = db1 || (mlp && dw2), want_db2 = mlp && db2;
    if (want_units || want_db2) {
        const int first = want_units ? 0 : units;
        const int blocks = (want_units ? units : 0) + (want_db2 ? H : 0);
        QT_LAUNCH(gate_bwd_bias_rowsum<T>, blocks, BIAS_THREADS, 0, st, kind, H, nh, first,
                  (T *)db1, (T *)dw2, (T *)db2, dgate, gate, hidden, (const T *)w2, N);
        QT_CHECK_LAUNCH(op);
    }
    return QT_OK;
}

extern "C" qt_status qt_cuda_gate_bwd(qt_cuda_stream s, qt_dtype dt, const qt_gate_shape *g,
                                      void *dx, void *dw1, void *db1, void *dw2, void *db2,
                                      const float *dgate, const float *gate,
                                      const float *hidden, const void *x, const void *w1,
                                      const void *w2, int N, int C) {
    const char *op = "gate_bwd";
    QT_TRY(check_gate(op, dt, g, N, C));
    if (N == 0) return QT_OK;
    const qt_arg_need mlp = g->kind == QT_GATE_MLP ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL;
    const qt_arg_need opt = QT_ARG_OPTIONAL;
    QT_TRY(qt_check_tensors(
        op, qt_arg("dx", dx, dt, opt), qt_arg("dw1", dw1, dt, opt), qt_arg("db1", db1, dt, opt),
        qt_arg("dw2", dw2, dt, opt), qt_arg("db2", db2, dt, opt), qt_arg("dgate", dgate),
        qt_arg("gate", gate), qt_arg("hidden (mlp)", hidden, mlp), qt_arg("x", x, dt),
        qt_arg("w1", w1, dt), qt_arg("w2 (mlp)", w2, dt, mlp)));
    return QT_DTYPE_DISPATCH(dt, launch_gate_bwd, (cudaStream_t)s, g, dx, dw1, db1, dw2, db2, dgate,
                             gate, hidden, x, w1, w2, N, C);
}

template <typename T>
static void launch_gate_mul_fwd(cudaStream_t st, size_t blocks, void *out, const float *gate,
                                const void *ctx, int N, int C, int H) {
    QT_LAUNCH(gate_mul_fwd_elem<T>, (unsigned)blocks, THREADS, 0, st, (T *)out, gate,
              (const T *)ctx, N, C, H);
}

template <typename T>
static void launch_gate_mul_bwd(cudaStream_t st, size_t blocks, void *dctx, float *dgate,
                                const void *dout, const float *gate, const void *ctx, int N, int C,
                                int H) {
    QT_LAUNCH(gate_mul_bwd_warp<T>, (unsigned)blocks, WARPS_PER_BLOCK * QT_WARP, 0, st, (T *)dctx,
              dgate, (const T *)dout, gate, (const T *)ctx, N, C, H);
}

static qt_status check_mul(const char *op, qt_dtype dt, int N, int C, int H) {
    QT_TRY(qt_check_dtype(op, dt));
    if (N < 0 || C < 1 || H < 1 || C % H != 0)
        return qt_error(QT_ERR_ARG,
                        "%s: shape (N %d, C %d, H %d); need N >= 0 and C a positive multiple "
                        "of H",
                        op, N, C, H);
    return QT_OK;
}

extern "C" qt_status qt_cuda_gate_mul_fwd(qt_cuda_stream s, qt_dtype dt, void *out,
                                          const float *gate, const void *ctx, int N, int C,
                                          int H) {
    const char *op = "gate_mul_fwd";
    QT_TRY(check_mul(op, dt, N, C, H));
    if (N == 0) return QT_OK;
    QT_TRY(
        qt_check_tensors(op, qt_arg("out", out, dt), qt_arg("gate", gate), qt_arg("ctx", ctx, dt)));
    const size_t blocks = QT_CEIL_DIV((size_t)N * (size_t)C, (size_t)THREADS);
    QT_TRY(qt_check_grid(op, blocks));
    QT_DTYPE_DISPATCH(dt, launch_gate_mul_fwd, (cudaStream_t)s, blocks, out, gate, ctx, N, C, H);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_gate_mul_bwd(qt_cuda_stream s, qt_dtype dt, void *dctx,
                                          float *dgate, const void *dout, const float *gate,
                                          const void *ctx, int N, int C, int H) {
    const char *op = "gate_mul_bwd";
    QT_TRY(check_mul(op, dt, N, C, H));
    if (N == 0 || (!dctx && !dgate)) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("dctx", dctx, dt, QT_ARG_OPTIONAL),
                            qt_arg("dgate", dgate, QT_ARG_OPTIONAL), qt_arg("dout", dout, dt),
                            qt_arg("gate", gate), qt_arg("ctx", ctx, dt)));
    const size_t blocks = QT_CEIL_DIV((size_t)N * (size_t)H, (size_t)WARPS_PER_BLOCK);
    QT_TRY(qt_check_grid(op, blocks));
    QT_DTYPE_DISPATCH(dt, launch_gate_mul_bwd, (cudaStream_t)s, blocks, dctx, dgate, dout, gate,
                      ctx, N, C, H);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// Counts per launch, with D = C / H, units = H (H nh for the MLP gate), len = D (C for all
// heads), E the dtype size; fp32 gate, dgate (N H) and hidden (N H nh):
//   gate_fwd_warp: reads x (E N C), w1 (E units len), b1 (E units), w2 and b2 (MLP: E (units +
//     H)); writes gate (4 N H) and hidden (MLP: 4 N H nh). Per (token, head): each dot product
//     (2 len) and its bias, the ReLU and w2 product per hidden unit (MLP: 3), the sigmoid (3).
//   gate_bwd_dx_elem: reads dgate, gate (8 N H), hidden and w2 (MLP), w1, dx (+=); writes dx.
//     Per element: dz (3) and the add, plus 2 per head (all heads) or 4 per hidden unit (MLP).
//   gate_bwd_dw1_coltile: reads dgate, gate, x, hidden and w2 (MLP), dw1 (+=); writes dw1.
//     Per token and dw1 element: dz (3), the product and add (2), the mask and w2 (MLP: 2).
//   gate_bwd_bias_rowsum: reads dgate, gate, hidden and w2 (MLP) and the += sums it writes
//     (db1, dw2, db2). Per token and unit: dz (3) and the add, the MLP's mask, w2 and dw2 (4).
//   gate_mul_fwd_elem: reads gate (4 N H), ctx (E N C), writes out (E N C); one product each.
//   gate_mul_bwd_warp: reads dout, ctx (2 E N C), gate, and dctx (+=) and dgate (+=) when
//     given; writes those. Per element: the dot's product and add (2), dctx += g dout (2).

static int gate_cost_shape(const qt_gate_shape *g, int N, int C) {
    if (!g || N <= 0 || C < 1 || g->n_heads < 1 || C % g->n_heads != 0) return 0;
    if (g->kind == QT_GATE_MLP) return g->n_hid >= 1;
    return g->kind == QT_GATE_LINEAR || g->kind == QT_GATE_ALL_HEADS;
}

extern "C" void qt_cuda_gate_fwd_cost(qt_cost *c, qt_dtype dt, const qt_gate_shape *g,
                                      const float *gate, const float *hidden, const void *x,
                                      const void *w1, const void *b1, const void *w2,
                                      const void *b2, int N, int C) {
    (void)gate, (void)hidden, (void)x, (void)w1, (void)b1, (void)w2, (void)b2;
    if (!gate_cost_shape(g, N, C)) return;
    const int mlp = g->kind == QT_GATE_MLP;
    const double H = g->n_heads, nh = mlp ? g->n_hid : 0, E = (double)qt_dtype_size(dt);
    const double units = mlp ? H * nh : H, len = g->kind == QT_GATE_ALL_HEADS ? C : C / H;
    const double nH = (double)N * H, nc = (double)N * C;
    const double bytes = E * (nc + units * len + units + (mlp ? units + H : 0)) + 4 * nH * (1 + nh);
    const double per = mlp ? nh * (2 * len + 4) + 4 : 2 * len + 4;
    qt_cost_kernel(c, "gate_fwd_warp", bytes, nH * per);
}

extern "C" void qt_cuda_gate_bwd_cost(qt_cost *c, qt_dtype dt, const qt_gate_shape *g,
                                      const void *dx, const void *dw1, const void *db1,
                                      const void *dw2, const void *db2, const float *dgate,
                                      const float *gate, const float *hidden, const void *x,
                                      const void *w1, const void *w2, int N, int C) {
    (void)dgate, (void)gate, (void)hidden, (void)x, (void)w1, (void)w2;
    if (!gate_cost_shape(g, N, C)) return;
    const int mlp = g->kind == QT_GATE_MLP, all = g->kind == QT_GATE_ALL_HEADS;
    const double H = g->n_heads, nh = mlp ? g->n_hid : 0, E = (double)qt_dtype_size(dt);
    const double units = mlp ? H * nh : H, len = all ? C : C / H;
    const double nH = (double)N * H, nc = (double)N * C, Nd = N;
    const double gates = 8 * nH + 4 * nH * nh; // dgate, gate, and hidden for the MLP
    if (dx) {
        const double per = mlp ? 4 * nh + 4 : all ? 5 * H + 1 : 6;
        qt_cost_kernel(c, "gate_bwd_dx_elem",
                       gates + E * (2 * nc + units * len + (mlp ? units : 0)), per * nc);
    }
    if (dw1)
        qt_cost_kernel(c, "gate_bwd_dw1_coltile",
                       gates + E * (nc + 2 * units * len + (mlp ? units : 0)),
                       Nd * units * len * (mlp ? 7 : 5));
    const int want_units = db1 || (mlp && dw2), want_db2 = mlp && db2;
    if (want_units || want_db2) {
        const double sums = (db1 ? units : 0) + (mlp && dw2 ? units : 0) + (want_db2 ? H : 0);
        const double flops =
            (want_units ? Nd * units * (mlp ? 8 : 4) : 0) + (want_db2 ? 4 * nH : 0);
        qt_cost_kernel(c, "gate_bwd_bias_rowsum", gates + E * (2 * sums + (mlp ? units : 0)),
                       flops);
    }
}

extern "C" void qt_cuda_gate_mul_fwd_cost(qt_cost *c, qt_dtype dt, const void *out,
                                          const float *gate, const void *ctx, int N, int C, int H) {
    (void)out, (void)gate, (void)ctx;
    if (N <= 0 || C < 1 || H < 1 || C % H != 0) return;
    const double nc = (double)N * C, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "gate_mul_fwd_elem", 2 * E * nc + 4.0 * N * H, nc);
}

extern "C" void qt_cuda_gate_mul_bwd_cost(qt_cost *c, qt_dtype dt, const void *dctx,
                                          const float *dgate, const void *dout, const float *gate,
                                          const void *ctx, int N, int C, int H) {
    (void)dout, (void)gate, (void)ctx;
    if (N <= 0 || C < 1 || H < 1 || C % H != 0 || (!dctx && !dgate)) return;
    const double nc = (double)N * C, nH = (double)N * H, E = (double)qt_dtype_size(dt);
    const double bytes = E * (2 + (dctx ? 2 : 0)) * nc + 4 * nH + (dgate ? 8 * nH : 0);
    qt_cost_kernel(c, "gate_mul_bwd_warp", bytes, (dctx ? 4 : 2) * nc);
}

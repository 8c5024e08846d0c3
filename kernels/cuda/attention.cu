// attention.cu: qt_cuda_attention_flash_fwd, the fused (flash) attention of kernels/attention.h
// and FLASH_CLIP.md on tensor cores: scores, softmax variant with its sink, context, R and gate
// in one kernel, no (B, H, T, T) buffer. CPU twin: qt_cpu_attention_flash_fwd
// (kernels/cpu/attention_impl.h), which this follows tile for tile in its math (not its tiles).
//
// Thread -> data: one block of 4 warps per (b, h, query tile of 64 rows); warp w owns the 16
// query rows 16w .. 16w+15 of the tile. Key tiles of BC keys (64 for D = 64, 16 for D = 128:
// the shared memory stays under 48 KiB) are staged in shared memory as T (fp16/bf16) and the
// scores S = scale Q K^T come from qt_mma_m16n8k16 (fp32 accumulators; common.cuh has the
// fragment layout). Lane (g, t) of a warp holds the scores of rows g, g+8 and key columns
// 2t, 2t+1 of every 8-key slice, so the per-row max and sums reduce over the 4 lanes of a quad.
//   vanilla: one pass, online softmax (running m, l; A rescaled), A /= l at the end;
//   clipped, NCS: pass 1 the same scores -> (m, l) -> L = m + log l; pass 2 recomputes S with
//   the same code (same bits: the clip masks agree with the backward's), P = exp(S - L),
//   Z = a P + c (two roundings, as the CPU's clip_arg), Pc = clip(Z, 0, 1), M = [0 <= Z <= 1];
//   A += Pc V and R += (M P) V, both with P-like tiles converted to T as the mma's A operand
//   (as FlashAttention does with P). The sink is the first "key": m = s0, l = 1 at the start.
// Masking: key j is attended by row t iff j < lens[b, t]; unattended scores are -inf and their
// Pc exactly 0 (by index: c > 0 for NCS with beta > eta). Rows past T get no keys and are not
// stored. Keys past T are zero-filled in shared memory (finite: 0 * V stays 0).
// Outputs: lse (fp32), ctx = A (dt), R (fp32, clipped and NCS, when not NULL), out = g A (dt,
// gated), nzero (B, H) the attended Pc exactly 0 (vanilla: exponentials that underflowed),
// counted with integer atomics (exact, any order) after the launcher zeroes it.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "base/softmax_clip_math.h"
#include "base/params_check.h"
#include "kernels/attention.h"

#define FLASH_BR 64     // query rows per block
#define FLASH_WARPS 4   // 16 rows per warp
#define FLASH_PAD 8     // 16-bit elements of padding per shared row (16 bytes: banks spread)

template <int D> struct flash_tile {
    static constexpr int BC = D == 64 ? 64 : 16; // keys per tile (D 128: registers, A and R)
    static constexpr int LD = D + FLASH_PAD;     // shared row stride (elements)
};

// Two 16-bit storage elements packed into one .b32 mma register, the first in the low half.
template <typename T> static __device__ __forceinline__ uint32_t flash_pack2(T lo, T hi) {
    uint16_t a, b;
    memcpy(&a, &lo, 2);
    memcpy(&b, &hi, 2);
    return (uint32_t)a | ((uint32_t)b << 16);
}
template <typename T> static __device__ __forceinline__ uint32_t flash_pack2f(float lo, float hi) {
    T a, b;
    qt_st(&a, lo);
    qt_st(&b, hi);
    return flash_pack2<T>(a, b);
}
// The .b32 at two consecutive 16-bit elements of shared memory (4-byte aligned).
template <typename T> static __device__ __forceinline__ uint32_t flash_ld2(const T *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// a p + c with two roundings, as the CPU's clip_arg.
static __device__ __forceinline__ float flash_clip_arg(float a, float p, float c) {
    return __fadd_rn(__fmul_rn(a, p), c);
}

// A shared tile of T (fp16/bf16) declared as raw 16-bit storage: under the emulator __shared__
// arrays are thread_local statics, and a type with a constructor (cuda_fp16's __half) gets a
// per-thread initialization guard that the fibers of one block touch unsynchronized (TSan
// reports it). Same size and alignment, so the nvcc build's layout is unchanged.
#define FLASH_SHARED_TILE(T, name, n)                                                             \
    static_assert(sizeof(T) == sizeof(uint16_t), "fp16/bf16 tiles");                          \
    QT_SHARED(uint16_t, name##_raw, n);                                                        \
    T *const name = reinterpret_cast<T *>(name##_raw)

// rows (n) x D elements of one head from the (B, T, 3C) tensor into shared memory (row stride
// LD), rows at or past `valid` zero-filled. All threads of the block take part.
template <typename T, int D>
static __device__ __forceinline__ void flash_stage(T *dst, const T *src, size_t src_ld, int rows,
                                                   int valid) {
    constexpr int LD = D + FLASH_PAD;
    for (int i = (int)threadIdx.x; i < rows * D; i += FLASH_BR * 2) {
        const int r = i / D, d = i % D;
        T v;
        if (r < valid) v = src[(size_t)r * src_ld + d];
        else qt_st(&v, 0.0f);
        dst[r * LD + d] = v;
    }
}

// S (16 x BC per warp) = scale Q_w K^T: s[n][.] is the 8-key slice n, layout of d[] in the mma.
// Both operands are K-contiguous rows of shared memory (row stride D + FLASH_PAD). The backward
// reuses it with other operands (dPc = dA V^T; S^T = K Q^T: the same products, same k order).
template <typename T, int D, int BC>
static __device__ __forceinline__ void flash_scores(float (&s)[BC / 8][4], const T *Qw,
                                                    const T *Ks, float scale) {
    constexpr int LD = D + FLASH_PAD, NS = BC / 8;
    const int lane = (int)threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    QT_UNROLL
    for (int n = 0; n < NS; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    QT_UNROLL
    for (int k0 = 0; k0 < D; k0 += 16) {
        uint32_t a[4];
        a[0] = flash_ld2(Qw + g * LD + k0 + 2 * t);
        a[1] = flash_ld2(Qw + (g + 8) * LD + k0 + 2 * t);
        a[2] = flash_ld2(Qw + g * LD + k0 + 2 * t + 8);
        a[3] = flash_ld2(Qw + (g + 8) * LD + k0 + 2 * t + 8);
        QT_UNROLL
        for (int n = 0; n < NS; n++) {
            // B = K^T (k = channel, column = key): key n*8 + g, channels k0 + 2t.. contiguous
            uint32_t b[2];
            b[0] = flash_ld2(Ks + (n * 8 + g) * LD + k0 + 2 * t);
            b[1] = flash_ld2(Ks + (n * 8 + g) * LD + k0 + 2 * t + 8);
            qt_mma_m16n8k16<T>(s[n], a, b);
        }
    }
    QT_UNROLL
    for (int n = 0; n < NS; n++)
        QT_UNROLL
        for (int r = 0; r < 4; r++) s[n][r] = __fmul_rn(s[n][r], scale);
}

// acc (16 x D per warp) += P (16 x BC, fp32 in the score layout, rounded to T) V (BC x D).
// The backward reuses it: dV += Pc^T dA, dK += dS^T Q, dQ += dS K.
template <typename T, int D, int BC>
static __device__ __forceinline__ void flash_pv(float (&acc)[D / 8][4], const float (&p)[BC / 8][4],
                                                const T *Vs) {
    constexpr int LD = D + FLASH_PAD;
    const int lane = (int)threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    QT_UNROLL
    for (int kk = 0; kk < BC / 16; kk++) {
        // the score slices 2kk (keys 0-7 of the step) and 2kk+1 (keys 8-15) are exactly the A
        // fragment of rows g, g+8 and k = 2t.., 2t+8..
        uint32_t a[4];
        a[0] = flash_pack2f<T>(p[2 * kk][0], p[2 * kk][1]);
        a[1] = flash_pack2f<T>(p[2 * kk][2], p[2 * kk][3]);
        a[2] = flash_pack2f<T>(p[2 * kk + 1][0], p[2 * kk + 1][1]);
        a[3] = flash_pack2f<T>(p[2 * kk + 1][2], p[2 * kk + 1][3]);
        const T *v0 = Vs + (kk * 16 + 2 * t) * LD;
        QT_UNROLL
        for (int n = 0; n < D / 8; n++) {
            // B = V (k = key, column = channel n*8 + g): two keys per register
            uint32_t b[2];
            b[0] = flash_pack2<T>(v0[n * 8 + g], v0[LD + n * 8 + g]);
            b[1] = flash_pack2<T>(v0[8 * LD + n * 8 + g], v0[9 * LD + n * 8 + g]);
            qt_mma_m16n8k16<T>(acc[n], a, b);
        }
    }
}

// The max over the 4 lanes of a quad (the lanes holding one row).
static __device__ __forceinline__ float flash_quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(QT_FULL_MASK, v, 1));
    return fmaxf(v, __shfl_xor_sync(QT_FULL_MASK, v, 2));
}
static __device__ __forceinline__ float flash_quad_sum(float v) {
    v += __shfl_xor_sync(QT_FULL_MASK, v, 1);
    return v + __shfl_xor_sync(QT_FULL_MASK, v, 2);
}

// The online softmax step of the lane's two rows over a key tile (scores s, masked to -inf
// past each row's length): m, l move on; p (when WRITE) gets exp(s - m) (0 unattended), and
// the returned rescale factors of the old state (0 from -inf) go to alpha[].
template <int NS, bool WRITE>
static __device__ __forceinline__ void flash_online(float (&s)[NS][4], float (&m)[2],
                                                    float (&l)[2], float (&alpha)[2],
                                                    long long *zeros) {
    QT_UNROLL
    for (int r = 0; r < 2; r++) {
        float mx = m[r];
        QT_UNROLL
        for (int n = 0; n < NS; n++) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
        mx = flash_quad_max(mx);
        const float ref = mx == -INFINITY ? 0.0f : mx; // a row with nothing attended yet
        alpha[r] = m[r] == -INFINITY ? 0.0f : expf(m[r] - mx);
        float sum = 0.0f;
        QT_UNROLL
        for (int n = 0; n < NS; n++)
            QT_UNROLL
            for (int e = 0; e < 2; e++) {
                const float x = s[n][2 * r + e];
                const float p = x == -INFINITY ? 0.0f : expf(x - ref);
                sum += p;
                if (WRITE) {
                    if (x != -INFINITY && p == 0.0f) (*zeros)++;
                    s[n][2 * r + e] = p;
                }
            }
        sum = flash_quad_sum(sum);
        l[r] = l[r] * alpha[r] + sum;
        m[r] = mx;
    }
}

// The clip map of a row with n keys (base/softmax_clip_math.h, in double as on the CPU), in
// float: Pc = clamp(a P + c, 0, 1).
static __device__ __forceinline__ void flash_coeffs(int kind, float gamma, float zeta, float eta,
                                                    float beta, int n, float *a, float *c) {
    double ad, cd;
    qt_softmax_clip_coeffs(kind, gamma, zeta, eta, beta, n, &ad, &cd);
    *a = (float)ad;
    *c = (float)cd;
}

// The tile of FLASH_BR rows of one (sequence, head) a block owns, from blockIdx.x =
// (b H + h) tiles + tile: query rows in the forward and in dQ, key rows in dK/dV. The lane's
// fragment column t = lane % 4 and its two tile-local rows 16 warp + lane / 4 and + 8 follow the
// mma accumulator layout.
struct flash_block {
    int b, h, r0, valid; // sequence, head, first row, rows inside T (at most FLASH_BR)
    int warp, lane, t;
    int row[2];
};

static __device__ __forceinline__ flash_block flash_block_of(int T_, int H) {
    flash_block fb;
    const int tiles = (T_ + FLASH_BR - 1) / FLASH_BR;
    const int tile = (int)(blockIdx.x % (unsigned)tiles), bh = (int)(blockIdx.x / (unsigned)tiles);
    fb.b = bh / H;
    fb.h = bh % H;
    fb.r0 = tile * FLASH_BR;
    fb.valid = T_ - fb.r0 < FLASH_BR ? T_ - fb.r0 : FLASH_BR;
    fb.warp = (int)threadIdx.x >> 5;
    fb.lane = (int)threadIdx.x & 31;
    fb.t = fb.lane & 3;
    fb.row[0] = 16 * fb.warp + (fb.lane >> 2);
    fb.row[1] = fb.row[0] + 8;
    return fb;
}

// The query tile's key lengths (lens: (B, T)) into s_len (FLASH_BR), 0 past T; read them after
// a barrier.
static __device__ __forceinline__ void flash_stage_lens(int *s_len, const int *lens,
                                                        const flash_block &fb, int T_) {
    if (threadIdx.x < FLASH_BR)
        s_len[threadIdx.x] =
            (int)threadIdx.x < fb.valid ? lens[(size_t)fb.b * T_ + fb.r0 + threadIdx.x] : 0;
}

// The longest key length of the tile's rows: the key loop's bound, the same in every thread.
static __device__ __forceinline__ int flash_kmax(const int *s_len) {
    int kmax = 0;
    for (int i = 0; i < FLASH_BR; i++) kmax = s_len[i] > kmax ? s_len[i] : kmax;
    return kmax;
}

template <typename T, int D>
static __global__ void __launch_bounds__(FLASH_BR * 2)
    attention_flash_fwd_tile(int kind, float scale, float gamma, float zeta, float eta,
                             float beta, int sink_kind, int gate_kind, T *out, T *ctx, float *lse,
                             float *R, unsigned long long *nzero, const T *qkv, const float *gate,
                             const T *sink, const int *lens, int T_, int C, int H) {
    constexpr int BC = flash_tile<D>::BC, LD = flash_tile<D>::LD, NS = BC / 8, ND = D / 8;
    FLASH_SHARED_TILE(T, Qs, FLASH_BR * LD);
    FLASH_SHARED_TILE(T, Ks, BC * LD);
    FLASH_SHARED_TILE(T, Vs, BC * LD);
    QT_SHARED(int, s_len, FLASH_BR);
    const flash_block fb = flash_block_of(T_, H);
    const int b = fb.b, h = fb.h, r0 = fb.r0, valid = fb.valid, warp = fb.warp, t = fb.t;
    const int *row = fb.row;
    const size_t C3 = 3 * (size_t)C;
    const T *q = qkv + (size_t)b * T_ * C3 + (size_t)h * D, *k = q + C, *v = q + 2 * C;

    flash_stage_lens(s_len, lens, fb, T_);
    flash_stage<T, D>(Qs, q + (size_t)r0 * C3, C3, FLASH_BR, valid);
    __syncthreads();
    const int kmax = flash_kmax(s_len);
    const int len[2] = {s_len[row[0]], s_len[row[1]]};
    float ca[2], cc[2];
    QT_UNROLL
    for (int r = 0; r < 2; r++) flash_coeffs(kind, gamma, zeta, eta, beta, len[r], &ca[r], &cc[r]);
    const bool has_sink = sink_kind != QT_SINK_NONE;
    const float s0 = sink_kind == QT_SINK_LEARNED ? qt_ld(sink + h) : 0.0f;
    float m[2], l[2], L[2] = {INFINITY, INFINITY}, alpha[2];
    QT_UNROLL
    for (int r = 0; r < 2; r++) {
        m[r] = has_sink ? s0 : -INFINITY;
        l[r] = has_sink ? 1.0f : 0.0f;
    }
    float acc[ND][4], racc[ND][4];
    QT_UNROLL
    for (int n = 0; n < ND; n++)
        QT_UNROLL
        for (int e = 0; e < 4; e++) acc[n][e] = racc[n][e] = 0.0f;
    long long zeros = 0;
    const T *Qw = Qs + 16 * warp * LD;
    const bool two_pass = kind != QT_SOFTMAX_KIND_VANILLA;
    float s[NS][4];

    // S of the key tile j0 (staged), masked to -inf past each row's length
    auto masked_scores = [&](int j0) {
        flash_scores<T, D, BC>(s, Qw, Ks, scale);
        QT_UNROLL
        for (int n = 0; n < NS; n++)
            QT_UNROLL
            for (int e = 0; e < 4; e++) {
                const int j = j0 + n * 8 + 2 * t + (e & 1);
                if (j >= len[e >> 1]) s[n][e] = -INFINITY;
            }
    };

    for (int pass = two_pass ? 0 : 1; pass < 2; pass++) {
        for (int j0 = 0; j0 < kmax; j0 += BC) {
            const int nk = T_ - j0 < BC ? T_ - j0 : BC;
            __syncthreads(); // the previous tile's readers are done
            flash_stage<T, D>(Ks, k + (size_t)j0 * C3, C3, BC, nk);
            if (pass == 1) flash_stage<T, D>(Vs, v + (size_t)j0 * C3, C3, BC, nk);
            __syncthreads();
            masked_scores(j0);
            if (two_pass && pass == 0) {
                flash_online<NS, false>(s, m, l, alpha, &zeros);
                continue;
            }
            if (!two_pass) {
                flash_online<NS, true>(s, m, l, alpha, &zeros);
                QT_UNROLL
                for (int n = 0; n < ND; n++) {
                    acc[n][0] *= alpha[0];
                    acc[n][1] *= alpha[0];
                    acc[n][2] *= alpha[1];
                    acc[n][3] *= alpha[1];
                }
                flash_pv<T, D, BC>(acc, s, Vs);
                continue;
            }
            // pass 2 of the clipped variants: s -> Pc, and mp = M P
            float mp[NS][4];
            QT_UNROLL
            for (int n = 0; n < NS; n++)
                QT_UNROLL
                for (int e = 0; e < 4; e++) {
                    const int r = e >> 1;
                    const bool att = s[n][e] != -INFINITY;
                    const float P = att ? expf(s[n][e] - L[r]) : 0.0f;
                    const float z = flash_clip_arg(ca[r], P, cc[r]);
                    const float y = z < 0.0f ? 0.0f : z > 1.0f ? 1.0f : z;
                    const bool lin = z >= 0.0f && z <= 1.0f;
                    s[n][e] = att ? y : 0.0f;
                    mp[n][e] = att && lin ? P : 0.0f;
                    zeros += att && y == 0.0f;
                }
            flash_pv<T, D, BC>(acc, s, Vs);
            if (R) flash_pv<T, D, BC>(racc, mp, Vs);
        }
        if (pass == 0 || !two_pass)
            QT_UNROLL
            for (int r = 0; r < 2; r++) L[r] = l[r] > 0.0f ? m[r] + logf(l[r]) : INFINITY;
    }
    if (!two_pass) {
        // A = (sum e^(s - m) v) / l
        const float inv[2] = {l[0] > 0.0f ? 1.0f / l[0] : 0.0f, l[1] > 0.0f ? 1.0f / l[1] : 0.0f};
        QT_UNROLL
        for (int n = 0; n < ND; n++)
            QT_UNROLL
            for (int e = 0; e < 4; e++) acc[n][e] *= inv[e >> 1];
    }
    // emit L, A, R and O = g A for the lane's rows inside T
    QT_UNROLL
    for (int r = 0; r < 2; r++) {
        if (row[r] >= valid) continue;
        const size_t tok = (size_t)b * T_ + r0 + row[r];
        if (t == 0) lse[((size_t)b * H + h) * T_ + r0 + row[r]] = L[r];
        const size_t off = tok * C + (size_t)h * D;
        const float gh = gate_kind == QT_ATTN_GATE_HEAD ? gate[tok * H + h] : 1.0f;
        QT_UNROLL
        for (int n = 0; n < ND; n++)
            QT_UNROLL
            for (int e = 0; e < 2; e++) {
                const int d = n * 8 + 2 * t + e;
                const float a = acc[n][2 * r + e];
                qt_st(ctx + off + d, a);
                if (two_pass && R) R[off + d] = racc[n][2 * r + e];
                if (gate_kind == QT_ATTN_GATE_HEAD) qt_st(out + off + d, __fmul_rn(gh, a));
                else if (gate_kind == QT_ATTN_GATE_CHANNEL)
                    qt_st(out + off + d, __fmul_rn(gate[off + d], a));
            }
    }
    if (nzero) {
        long long z = zeros;
        for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(QT_FULL_MASK, z, o);
        if (fb.lane == 0 && z) atomicAdd(nzero + (size_t)b * H + h, (unsigned long long)z);
    }
}

// ---- backward (FLASH_CLIP.md section 2, D by option B) --------------------------------------
// Three kernels, all deterministic (no float atomics):
//   attention_flash_bwd_rows   per (b, t, h) row, one thread: dA = g dO (rounded to T into the
//                              workspace: the mma operand), dgate += dO . A (head) or dO * A
//                              (channel), D_t = a_t dA . R_t (vanilla: dA . A), the learned sink's
//                              share -exp(s0 - L_t) D_t; then attention_flash_bwd_sink sums the
//                              shares per head in a fixed order (b, then t) into dsink.
//   attention_flash_bwd_kv     per (b, h, 64 keys), warp w owning keys 16w..: loops over the
//                              query tiles of BQ rows that attend any of them; per tile S^T =
//                              scale K_w Q^T (the forward's products in the same k order),
//                              P = exp(S - L), Pc, M; dV += Pc^T dA; dPc^T = V_w dA^T;
//                              dS^T = P (a M dPc - D); dK += dS^T Q. dK (scaled), dV added once.
//   attention_flash_bwd_q      per (b, h, 64 queries), the forward's tiling: S again, P, Pc, M,
//                              dPc = dA V^T, dS, dQ += dS K; dQ (scaled) added once.
// QT_ATTENTION_MUTATION = 1 (tests only: its ctest must fail) takes FlashAttention-2's shortcut
// D = rowsum(dO * O) = dA . A for the clipped variants too, wrong under a clip (FLASH_CLIP.md).
#ifndef QT_ATTENTION_MUTATION
#define QT_ATTENTION_MUTATION 0
#endif

template <int D> struct flash_bwd_tile {
    static constexpr int BQ = D == 64 ? 32 : 16; // query rows per tile of the kv kernel, keys
                                                 // per tile of the q kernel (48 KiB of smem)
};

// The clip gradient a dPc where 0 <= a P + c <= 1 (inclusive), else 0.
static __device__ __forceinline__ float flash_clip_grad(float a, float P, float c, float d) {
    const float y = flash_clip_arg(a, P, c);
    return y >= 0.0f && y <= 1.0f ? __fmul_rn(a, d) : 0.0f;
}

template <typename T>
static __global__ void __launch_bounds__(FLASH_BR * 2)
    attention_flash_bwd_rows(int kind, float gamma, float zeta, float eta, float beta,
                             int sink_kind, int gate_kind, T *dA, float *Drow, float *sink_part,
                             float *dgate, const T *dout, const T *ctx, const float *R,
                             const float *lse, const float *gate, const T *sink, const int *lens,
                             int B, int T_, int C, int H) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; // (b, t, h)
    if (i >= (size_t)B * T_ * H) return;
    const int h = (int)(i % (size_t)H);
    const size_t tok = i / (size_t)H;
    const int b = (int)(tok / (size_t)T_), t = (int)(tok % (size_t)T_);
    const int D = C / H;
    const size_t off = tok * C + (size_t)h * D;
    float a, c;
    flash_coeffs(kind, gamma, zeta, eta, beta, lens[tok], &a, &c);
    const bool vanilla = kind == QT_SOFTMAX_KIND_VANILLA || QT_ATTENTION_MUTATION == 1;
    const float gh = gate_kind == QT_ATTN_GATE_HEAD ? gate[tok * H + h] : 1.0f;
    float dd = 0.0f, dg = 0.0f;
    for (int d = 0; d < D; d++) {
        const float o = qt_ld(dout + off + d), A = qt_ld(ctx + off + d);
        const float g = gate_kind == QT_ATTN_GATE_CHANNEL ? gate[off + d] : gh;
        const float da = gate_kind == QT_ATTN_GATE_NONE ? o : __fmul_rn(g, o);
        const float X = vanilla ? A : R[off + d];
        dd += da * X;
        dg += o * A;
        qt_st(dA + off + d, da);
        if (dgate && gate_kind == QT_ATTN_GATE_CHANNEL) dgate[off + d] += o * A;
    }
    if (dgate && gate_kind == QT_ATTN_GATE_HEAD) dgate[tok * H + h] += dg;
    const float Dt = vanilla ? dd : a * dd;
    const size_t r = ((size_t)b * H + h) * T_ + t; // (B, H, T)
    Drow[r] = Dt;
    if (sink_kind == QT_SINK_LEARNED) sink_part[r] = -expf(qt_ld(sink + h) - lse[r]) * Dt;
}

template <typename T>
static __global__ void attention_flash_bwd_sink(T *dsink, const float *sink_part, int B, int T_,
                                                int H) {
    const int h = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (h >= H) return;
    float s = 0.0f;
    for (int b = 0; b < B; b++) {
        float part = 0.0f;
        for (int t = 0; t < T_; t++) part += sink_part[((size_t)b * H + h) * T_ + t];
        s += part;
    }
    qt_add_st(dsink + h, s);
}

template <typename T, int D>
static __global__ void __launch_bounds__(FLASH_BR * 2)
    attention_flash_bwd_kv(int kind, float scale, float gamma, float zeta, float eta, float beta,
                           T *dqkv, const T *qkv, const T *dA, const float *lse,
                           const float *Drow, const int *lens, int T_, int C, int H) {
    constexpr int BQ = flash_bwd_tile<D>::BQ, LD = D + FLASH_PAD, NS = BQ / 8, ND = D / 8;
    FLASH_SHARED_TILE(T, Ks, FLASH_BR * LD);
    FLASH_SHARED_TILE(T, Vs, FLASH_BR * LD);
    FLASH_SHARED_TILE(T, Qs, BQ * LD);
    FLASH_SHARED_TILE(T, dAs, BQ * LD);
    QT_SHARED(float, s_L, BQ);
    QT_SHARED(float, s_D, BQ);
    QT_SHARED(float, s_a, BQ);
    QT_SHARED(float, s_c, BQ);
    QT_SHARED(int, s_len, BQ);
    const flash_block fb = flash_block_of(T_, H); // its rows are keys here
    const int b = fb.b, h = fb.h, j0 = fb.r0, warp = fb.warp, t = fb.t;
    const size_t C3 = 3 * (size_t)C;
    const T *q = qkv + (size_t)b * T_ * C3 + (size_t)h * D, *k = q + C, *v = q + 2 * C;
    const T *dAh = dA + (size_t)b * T_ * C + (size_t)h * D;
    const float *L = lse + ((size_t)b * H + h) * T_, *Dr = Drow + ((size_t)b * H + h) * T_;
    flash_stage<T, D>(Ks, k + (size_t)j0 * C3, C3, FLASH_BR, fb.valid);
    flash_stage<T, D>(Vs, v + (size_t)j0 * C3, C3, FLASH_BR, fb.valid);
    float dk[ND][4], dv[ND][4];
    QT_UNROLL
    for (int n = 0; n < ND; n++)
        QT_UNROLL
        for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0.0f;
    const T *Kw = Ks + 16 * warp * LD, *Vw = Vs + 16 * warp * LD;
    const int key[2] = {j0 + fb.row[0], j0 + fb.row[1]}; // the lane's two keys
    for (int i0 = 0; i0 < T_; i0 += BQ) {
        const int nq = T_ - i0 < BQ ? T_ - i0 : BQ;
        __syncthreads(); // the previous tile's readers are done
        flash_stage<T, D>(Qs, q + (size_t)i0 * C3, C3, BQ, nq);
        flash_stage<T, D>(dAs, dAh + (size_t)i0 * C, C, BQ, nq);
        if ((int)threadIdx.x < BQ) {
            const int r = (int)threadIdx.x, ok = r < nq;
            const int n = ok ? lens[(size_t)b * T_ + i0 + r] : 0;
            s_len[r] = n;
            s_L[r] = ok ? L[i0 + r] : 0.0f;
            s_D[r] = ok ? Dr[i0 + r] : 0.0f;
            flash_coeffs(kind, gamma, zeta, eta, beta, n, &s_a[r], &s_c[r]);
        }
        __syncthreads();
        int qmax = 0;
        for (int r = 0; r < BQ; r++) qmax = s_len[r] > qmax ? s_len[r] : qmax;
        if (qmax <= j0) continue; // no row of the tile attends these keys (block-uniform)
        float st[NS][4], dst[NS][4];
        flash_scores<T, D, BQ>(st, Kw, Qs, scale); // S^T: rows = keys, columns = queries
        flash_scores<T, D, BQ>(dst, Vw, dAs, 1.0f); // dPc^T
        QT_UNROLL
        for (int n = 0; n < NS; n++)
            QT_UNROLL
            for (int e = 0; e < 4; e++) {
                const int qr = n * 8 + 2 * t + (e & 1), kj = key[e >> 1];
                const bool att = kj < s_len[qr];
                const float P = att ? expf(st[n][e] - s_L[qr]) : 0.0f;
                const float z = flash_clip_arg(s_a[qr], P, s_c[qr]);
                const float y = z < 0.0f ? 0.0f : z > 1.0f ? 1.0f : z;
                st[n][e] = att ? y : 0.0f; // Pc^T
                dst[n][e] = att ? P * (flash_clip_grad(s_a[qr], P, s_c[qr], dst[n][e]) - s_D[qr])
                                : 0.0f; // dS^T
            }
        flash_pv<T, D, BQ>(dv, st, dAs);
        flash_pv<T, D, BQ>(dk, dst, Qs);
    }
    QT_UNROLL
    for (int r = 0; r < 2; r++) {
        if (key[r] >= T_) continue;
        T *dkr = dqkv + ((size_t)b * T_ + key[r]) * C3 + C + (size_t)h * D, *dvr = dkr + C;
        QT_UNROLL
        for (int n = 0; n < ND; n++)
            QT_UNROLL
            for (int e = 0; e < 2; e++) {
                const int d = n * 8 + 2 * t + e;
                qt_add_st(dkr + d, __fmul_rn(scale, dk[n][2 * r + e]));
                qt_add_st(dvr + d, dv[n][2 * r + e]);
            }
    }
}

template <typename T, int D>
static __global__ void __launch_bounds__(FLASH_BR * 2)
    attention_flash_bwd_q(int kind, float scale, float gamma, float zeta, float eta, float beta,
                          T *dqkv, const T *qkv, const T *dA, const float *lse, const float *Drow,
                          const int *lens, int T_, int C, int H) {
    // key tiles of BQ keys (not the forward's BC): Q and dA take 64 rows of shared memory here.
    // Each score is still the same mma dot product in the same k order: the forward's bits.
    constexpr int BC = flash_bwd_tile<D>::BQ, LD = D + FLASH_PAD, NS = BC / 8, ND = D / 8;
    FLASH_SHARED_TILE(T, Qs, FLASH_BR * LD);
    FLASH_SHARED_TILE(T, dAs, FLASH_BR * LD);
    FLASH_SHARED_TILE(T, Ks, BC * LD);
    FLASH_SHARED_TILE(T, Vs, BC * LD);
    QT_SHARED(int, s_len, FLASH_BR);
    const flash_block fb = flash_block_of(T_, H);
    const int b = fb.b, h = fb.h, r0 = fb.r0, valid = fb.valid, warp = fb.warp, t = fb.t;
    const int *row = fb.row;
    const size_t C3 = 3 * (size_t)C;
    const T *q = qkv + (size_t)b * T_ * C3 + (size_t)h * D, *k = q + C, *v = q + 2 * C;
    flash_stage_lens(s_len, lens, fb, T_);
    flash_stage<T, D>(Qs, q + (size_t)r0 * C3, C3, FLASH_BR, valid);
    flash_stage<T, D>(dAs, dA + ((size_t)b * T_ + r0) * C + (size_t)h * D, C, FLASH_BR, valid);
    __syncthreads();
    const int kmax = flash_kmax(s_len);
    const int len[2] = {s_len[row[0]], s_len[row[1]]};
    float ca[2], cc[2], Lr[2], Dt[2];
    QT_UNROLL
    for (int r = 0; r < 2; r++) {
        flash_coeffs(kind, gamma, zeta, eta, beta, len[r], &ca[r], &cc[r]);
        const bool ok = row[r] < valid;
        Lr[r] = ok ? lse[((size_t)b * H + h) * T_ + r0 + row[r]] : 0.0f;
        Dt[r] = ok ? Drow[((size_t)b * H + h) * T_ + r0 + row[r]] : 0.0f;
    }
    float dq[ND][4];
    QT_UNROLL
    for (int n = 0; n < ND; n++)
        QT_UNROLL
        for (int e = 0; e < 4; e++) dq[n][e] = 0.0f;
    const T *Qw = Qs + 16 * warp * LD, *dAw = dAs + 16 * warp * LD;
    for (int j0 = 0; j0 < kmax; j0 += BC) {
        const int nk = T_ - j0 < BC ? T_ - j0 : BC;
        __syncthreads();
        flash_stage<T, D>(Ks, k + (size_t)j0 * C3, C3, BC, nk);
        flash_stage<T, D>(Vs, v + (size_t)j0 * C3, C3, BC, nk);
        __syncthreads();
        float s[NS][4], ds[NS][4];
        flash_scores<T, D, BC>(s, Qw, Ks, scale);  // the forward's S, same bits
        flash_scores<T, D, BC>(ds, dAw, Vs, 1.0f); // dPc = dA V^T
        QT_UNROLL
        for (int n = 0; n < NS; n++)
            QT_UNROLL
            for (int e = 0; e < 4; e++) {
                const int r = e >> 1, j = j0 + n * 8 + 2 * t + (e & 1);
                const bool att = j < len[r];
                const float P = att ? expf(s[n][e] - Lr[r]) : 0.0f;
                ds[n][e] = att ? P * (flash_clip_grad(ca[r], P, cc[r], ds[n][e]) - Dt[r]) : 0.0f;
            }
        flash_pv<T, D, BC>(dq, ds, Ks);
    }
    QT_UNROLL
    for (int r = 0; r < 2; r++) {
        if (row[r] >= valid) continue;
        T *dqr = dqkv + ((size_t)b * T_ + r0 + row[r]) * C3 + (size_t)h * D;
        QT_UNROLL
        for (int n = 0; n < ND; n++)
            QT_UNROLL
            for (int e = 0; e < 2; e++)
                qt_add_st(dqr + n * 8 + 2 * t + e, __fmul_rn(scale, dq[n][2 * r + e]));
    }
}

// ---- launcher --------------------------------------------------------------------------------

static qt_status flash_check(const char *op, qt_dtype dt, const qt_attn_params *ap, int B, int T,
                             int C, int H) {
    QT_TRY(qt_check_attn_params(op, ap)); // base/params_check.h: the CPU op's checks
    if (dt != QT_DTYPE_F16 && dt != QT_DTYPE_BF16)
        return qt_error(QT_ERR_ARG, "%s: dtype %s; the tensor-core kernel takes fp16 or bf16", op,
                        qt_dtype_name(dt));
    if (B < 0 || T < 1 || H < 1 || C < 1 || C % H != 0)
        return qt_error(QT_ERR_ARG, "%s: shape B %d, T %d, C %d, H %d; need B >= 0, T >= 1, H >= 1 "
                        "dividing C", op, B, T, C, H);
    if (!qt_cuda_attention_flash_supported(dt, C / H))
        return qt_error(QT_ERR_ARG, "%s: head dim %d; the kernel has 64 and 128", op, C / H);
    if ((size_t)B * H * ((T + FLASH_BR - 1) / FLASH_BR) > QT_MAX_GRID_X)
        return qt_error(QT_ERR_ARG, "%s: B %d H %d T %d exceed one launch's grid", op, B, H, T);
    return QT_OK;
}

template <typename T, int D>
static void launch_fwd_d(cudaStream_t st, const qt_attn_params *ap, void *out, void *ctx,
                         float *lse, float *R, int64_t *nzero, const void *qkv, const float *gate,
                         const void *sink, const int *lens, int B, int T_, int C, int H) {
    const unsigned blocks = (unsigned)((size_t)B * H * ((T_ + FLASH_BR - 1) / FLASH_BR));
    QT_LAUNCH(attention_flash_fwd_tile<T, D>, blocks, FLASH_BR * 2, 0, st, (int)ap->sm.kind,
              ap->sm.scale, ap->sm.gamma, ap->sm.zeta, ap->sm.eta, ap->sm.beta, (int)ap->sink,
              (int)ap->gate, (T *)out, (T *)ctx, lse, R, (unsigned long long *)nzero,
              (const T *)qkv, gate, (const T *)sink, lens, T_, C, H);
}

template <typename T>
static void launch_fwd(cudaStream_t st, const qt_attn_params *ap, void *out, void *ctx,
                       float *lse, float *R, int64_t *nzero, const void *qkv, const float *gate,
                       const void *sink, const int *lens, int B, int T_, int C, int H) {
    if (std::is_same<T, float>::value) return; // refused by flash_check
    typedef typename std::conditional<std::is_same<T, float>::value, __half, T>::type T16;
    if (C / H == 64)
        launch_fwd_d<T16, 64>(st, ap, out, ctx, lse, R, nzero, qkv, gate, sink, lens, B, T_, C, H);
    else
        launch_fwd_d<T16, 128>(st, ap, out, ctx, lse, R, nzero, qkv, gate, sink, lens, B, T_, C, H);
}

extern "C" int qt_cuda_attention_flash_supported(qt_dtype dt, int head_dim) {
    return (dt == QT_DTYPE_F16 || dt == QT_DTYPE_BF16) && (head_dim == 64 || head_dim == 128);
}

extern "C" qt_status qt_cuda_attention_flash_fwd(qt_cuda_stream s, qt_dtype dt,
                                                 const qt_attn_params *ap, void *out, void *ctx,
                                                 float *lse, float *R, int64_t *nzero,
                                                 const void *qkv, const float *gate,
                                                 const void *sink, const int *lens, int B, int T,
                                                 int C, int H) {
    const char *op = "attention_flash_fwd";
    QT_TRY(flash_check(op, dt, ap, B, T, C, H));
    if (B == 0) return QT_OK;
    const bool gated = ap->gate != QT_ATTN_GATE_NONE, learned = ap->sink == QT_SINK_LEARNED;
    QT_TRY(qt_check_tensors(op, qt_arg("ctx", ctx, dt), qt_arg("lse", lse), qt_arg("qkv", qkv, dt),
                            qt_arg("lens", lens),
                            qt_arg("out", out, dt, gated ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL),
                            qt_arg("gate", gate, gated ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL),
                            qt_arg("sink", sink, dt, learned ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL),
                            qt_arg("R", R, QT_ARG_OPTIONAL),
                            qt_arg("nzero", nzero, QT_ARG_OPTIONAL)));
    cudaStream_t st = (cudaStream_t)s;
    if (nzero) QT_CHECK_CUDA(cudaMemsetAsync(nzero, 0, (size_t)B * H * sizeof(int64_t), st));
    QT_DTYPE_DISPATCH(dt, launch_fwd, st, ap, out, ctx, lse, R, nzero, qkv, gate, sink, lens, B, T,
                      C, H);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ---- backward launcher -------------------------------------------------------------------------
// Workspace: dA (B, T, C) of dt, then D and the sink's shares (B, H, T) fp32 each, 256-byte aligned.
static size_t flash_round256(size_t n) { return (n + 255) / 256 * 256; }

extern "C" size_t qt_cuda_attention_flash_ws_bytes(qt_dtype dt, int B, int T, int C, int H) {
    const size_t n = (size_t)(B > 0 ? B : 0) * (size_t)(T > 0 ? T : 0);
    const size_t rows = n * (size_t)(H > 0 ? H : 0);
    return flash_round256(n * (size_t)(C > 0 ? C : 0) * qt_dtype_size(dt)) +
           2 * flash_round256(rows * sizeof(float));
}

template <typename T, int D>
static void launch_bwd_d(cudaStream_t st, const qt_attn_params *ap, void *dqkv, float *dgate,
                         void *dsink, const void *dout, const void *qkv, const void *ctx,
                         const float *lse, const float *R, const float *gate, const void *sink,
                         const int *lens, int B, int T_, int C, int H, void *ws) {
    const qt_softmax_params &sm = ap->sm;
    const size_t n = (size_t)B * T_, rows = n * H;
    T *dA = (T *)ws;
    float *Drow = (float *)((char *)ws + flash_round256(n * C * sizeof(T)));
    float *sink_part = (float *)((char *)Drow + flash_round256(rows * sizeof(float)));
    QT_LAUNCH(attention_flash_bwd_rows<T>, (unsigned)QT_CEIL_DIV(rows, FLASH_BR * 2), FLASH_BR * 2,
              0, st, (int)sm.kind, sm.gamma, sm.zeta, sm.eta, sm.beta, (int)ap->sink,
              (int)ap->gate, dA, Drow, sink_part, dgate, (const T *)dout, (const T *)ctx, R, lse,
              gate, (const T *)sink, lens, B, T_, C, H);
    if (ap->sink == QT_SINK_LEARNED && dsink)
        QT_LAUNCH(attention_flash_bwd_sink<T>, (unsigned)QT_CEIL_DIV((size_t)H, 32), 32, 0, st,
                  (T *)dsink, (const float *)sink_part, B, T_, H);
    const unsigned blocks = (unsigned)((size_t)B * H * ((T_ + FLASH_BR - 1) / FLASH_BR));
    QT_LAUNCH(attention_flash_bwd_kv<T, D>, blocks, FLASH_BR * 2, 0, st, (int)sm.kind, sm.scale,
              sm.gamma, sm.zeta, sm.eta, sm.beta, (T *)dqkv, (const T *)qkv, (const T *)dA, lse,
              (const float *)Drow, lens, T_, C, H);
    QT_LAUNCH(attention_flash_bwd_q<T, D>, blocks, FLASH_BR * 2, 0, st, (int)sm.kind, sm.scale,
              sm.gamma, sm.zeta, sm.eta, sm.beta, (T *)dqkv, (const T *)qkv, (const T *)dA, lse,
              (const float *)Drow, lens, T_, C, H);
}

template <typename T>
static void launch_bwd(cudaStream_t st, const qt_attn_params *ap, void *dqkv, float *dgate,
                       void *dsink, const void *dout, const void *qkv, const void *ctx,
                       const float *lse, const float *R, const float *gate, const void *sink,
                       const int *lens, int B, int T_, int C, int H, void *ws) {
    if (std::is_same<T, float>::value) return; // refused by flash_check
    typedef typename std::conditional<std::is_same<T, float>::value, __half, T>::type T16;
    if (C / H == 64)
        launch_bwd_d<T16, 64>(st, ap, dqkv, dgate, dsink, dout, qkv, ctx, lse, R, gate, sink, lens,
                              B, T_, C, H, ws);
    else
        launch_bwd_d<T16, 128>(st, ap, dqkv, dgate, dsink, dout, qkv, ctx, lse, R, gate, sink,
                               lens, B, T_, C, H, ws);
}

extern "C" qt_status qt_cuda_attention_flash_bwd(qt_cuda_stream s, qt_dtype dt,
                                                 const qt_attn_params *ap, void *dqkv,
                                                 float *dgate, void *dsink, const void *dout,
                                                 const void *qkv, const void *ctx,
                                                 const float *lse, const float *R,
                                                 const float *gate, const void *sink,
                                                 const int *lens, int B, int T, int C, int H,
                                                 void *ws, size_t ws_bytes) {
    const char *op = "attention_flash_bwd";
    QT_TRY(flash_check(op, dt, ap, B, T, C, H));
    if (B == 0) return QT_OK;
    const bool gated = ap->gate != QT_ATTN_GATE_NONE, learned = ap->sink == QT_SINK_LEARNED;
    const bool vanilla = ap->sm.kind == QT_SOFTMAX_VANILLA;
    QT_TRY(qt_check_tensors(op, qt_arg("dqkv", dqkv, dt), qt_arg("dout", dout, dt),
                            qt_arg("qkv", qkv, dt), qt_arg("ctx", ctx, dt), qt_arg("lse", lse),
                            qt_arg("lens", lens), qt_arg("ws", (const char *)ws),
                            qt_arg("R", R, vanilla ? QT_ARG_OPTIONAL : QT_ARG_REQUIRED),
                            qt_arg("gate", gate, gated ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL),
                            qt_arg("sink", sink, dt, learned ? QT_ARG_REQUIRED : QT_ARG_OPTIONAL),
                            qt_arg("dgate", dgate, QT_ARG_OPTIONAL),
                            qt_arg("dsink", dsink, dt, QT_ARG_OPTIONAL)));
    const size_t need = qt_cuda_attention_flash_ws_bytes(dt, B, T, C, H);
    if (ws_bytes < need || !qt_aligned(ws, 256))
        return qt_error(QT_ERR_ARG, "%s: workspace %p of %zu bytes; pass %zu bytes (qt_cuda_"
                        "attention_flash_ws_bytes), 256-byte aligned", op, ws, ws_bytes, need);
    QT_DTYPE_DISPATCH(dt, launch_bwd, (cudaStream_t)s, ap, dqkv, gated ? dgate : NULL,
                      learned ? dsink : NULL, dout, qkv, ctx, lse, R, gate, sink, lens, B, T, C, H,
                      ws);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (base/cost.h) =================================================================
// lens lie in device memory: the rows are taken as causal (row t attends t + 1 keys), as
// qt_cuda_softmax_clip_*_cost does. att = B H T (T + 1) / 2 attended (row, key) pairs; one
// matmul over them costs 2 D att FLOPs. Bytes are base/cost.h's compulsory traffic: every
// tensor once. The tiles a kernel re-reads (K and V once per query tile that attends them, Q
// and dA once per key tile in bwd_kv) are one (b, h)'s T x D slices, read by blocks that run
// together, so they come from L2: the kernels' inefficiency where they miss, not counted.
// The tile kernels' matmuls run on mma.sync (QT_MATH_TENSOR16); their few element-wise FLOPs
// per score (mask, max, exp, clip: 3% of the total at D 64) are counted with them on that pipe.
static double flash_att(int B, int T, int H) { return (double)B * H * T * (T + 1.0) / 2; }
static int flash_cost_ok(const qt_attn_params *ap, int B, int T, int C, int H) {
    return ap && B > 0 && T > 0 && H > 0 && C % H == 0 && (C / H == 64 || C / H == 128);
}

extern "C" void qt_cuda_attention_flash_fwd_cost(qt_cost *c, qt_dtype dt, const qt_attn_params *ap,
                                                 int has_R, int B, int T, int C, int H) {
    if (!flash_cost_ok(ap, B, T, C, H)) return;
    const int D = C / H, clipv = ap->sm.kind != QT_SOFTMAX_VANILLA;
    const double E = (double)qt_dtype_size(dt), N = (double)B * T, att = flash_att(B, T, H);
    // K and V (clipped: K read in both passes, from L2 the second time)
    const double kv = 2.0 * E * N * C;
    const double bytes = E * N * C + kv + 4.0 * N + E * N * C * (ap->gate ? 2 : 1) +
                         4.0 * B * H * T + (clipv && has_R ? 4.0 * N * C : 0);
    // matmuls: S (2 passes when clipped), A, R; per score ~8 element-wise ops (mask, max, exp,
    // sum, clip)
    const double mm = clipv ? (has_R ? 4 : 3) : 2;
    qt_cost_add(c, "attention_flash_fwd_tile", QT_LAUNCH_KERNEL, QT_MATH_TENSOR16, bytes,
                mm * 2.0 * D * att + 8.0 * att, 1);
}

extern "C" void qt_cuda_attention_flash_bwd_cost(qt_cost *c, qt_dtype dt, const qt_attn_params *ap,
                                                 int B, int T, int C, int H) {
    if (!flash_cost_ok(ap, B, T, C, H)) return;
    const int D = C / H, clipv = ap->sm.kind != QT_SOFTMAX_VANILLA;
    const double E = (double)qt_dtype_size(dt), N = (double)B * T, att = flash_att(B, T, H);
    // rows: dout, ctx, R (clipped), gate read; dA written; D, sink share written
    qt_cost_kernel(c, "attention_flash_bwd_rows",
                   E * N * C * 3 + (clipv ? 4.0 * N * C : 0) + (ap->gate ? 4.0 * N * C : 0) +
                       8.0 * N * H,
                   5.0 * N * C);
    if (ap->sink == QT_SINK_LEARNED)
        qt_cost_kernel(c, "attention_flash_bwd_sink", 4.0 * N * H + 2 * E * H, N * H);
    // kv: Q and dA (each key tile walks every query tile: from L2 after the first), K, V,
    // the rows' lse, D and share (12 bytes a row) once; dK, dV read and written (+=).
    // 4 matmuls (S^T, dPc^T, dV, dK).
    qt_cost_add(c, "attention_flash_bwd_kv", QT_LAUNCH_KERNEL, QT_MATH_TENSOR16,
                2.0 * E * N * C + 2.0 * E * N * C + 4.0 * E * N * C + 12.0 * B * H * T,
                4 * 2.0 * D * att + 10.0 * att, 1);
    // q: K, V (the attended key tiles, from L2 after the first query tile), Q and dA once, dQ
    // read and written. 3 matmuls.
    qt_cost_add(c, "attention_flash_bwd_q", QT_LAUNCH_KERNEL, QT_MATH_TENSOR16,
                2.0 * E * N * C + 4.0 * E * N * C + 8.0 * B * H * T,
                3 * 2.0 * D * att + 8.0 * att, 1);
}

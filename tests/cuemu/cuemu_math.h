// cuemu_math.h: CUDA device functions that a host compilation of the CUDA headers lacks
// (included by cuemu.h).
//
// Intrinsics compute the exactly rounded host result: __expf is expf, __fdividef is a / b,
// hexp converts to float, calls expf and rounds back. So results can differ from the GPU's in
// the last bits (the GPU's approximate intrinsics are documented with their error bounds);
// tests compare with tolerances. Only round-to-nearest variants (_rn) of the arithmetic
// intrinsics exist; the directed-rounding ones fail to compile, so add them here if needed.
#ifndef QTRAIN_CUEMU_MATH_H
#define QTRAIN_CUEMU_MATH_H

// ---- loads and stores with cache hints (plain accesses) -------------------------------------
template <class T> inline T __ldg(const T *p) { return *p; }
template <class T> inline T __ldcg(const T *p) { return *p; }
template <class T> inline T __ldca(const T *p) { return *p; }
template <class T> inline T __ldcs(const T *p) { return *p; }
template <class T> inline T __ldlu(const T *p) { return *p; }
template <class T> inline T __ldcv(const T *p) { return *p; }
template <class T> inline void __stwb(T *p, T v) { *p = v; }
template <class T> inline void __stcg(T *p, T v) { *p = v; }
template <class T> inline void __stcs(T *p, T v) { *p = v; }
template <class T> inline void __stwt(T *p, T v) { *p = v; }

// ---- min / max: the overload set of CUDA's math_functions.hpp --------------------------------
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned min(int a, unsigned b) { return min(static_cast<unsigned>(a), b); }
inline unsigned min(unsigned a, int b) { return min(a, static_cast<unsigned>(b)); }
inline long min(long a, long b) { return a < b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long min(long a, unsigned long b) { return min(static_cast<unsigned long>(a), b); }
inline unsigned long min(unsigned long a, long b) { return min(a, static_cast<unsigned long>(b)); }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long min(long long a, unsigned long long b) {
    return min(static_cast<unsigned long long>(a), b);
}
inline unsigned long long min(unsigned long long a, long long b) {
    return min(a, static_cast<unsigned long long>(b));
}
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double min(float a, double b) { return fmin(static_cast<double>(a), b); }
inline double min(double a, float b) { return fmin(a, static_cast<double>(b)); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned max(int a, unsigned b) { return max(static_cast<unsigned>(a), b); }
inline unsigned max(unsigned a, int b) { return max(a, static_cast<unsigned>(b)); }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline unsigned long max(long a, unsigned long b) { return max(static_cast<unsigned long>(a), b); }
inline unsigned long max(unsigned long a, long b) { return max(a, static_cast<unsigned long>(b)); }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline unsigned long long max(long long a, unsigned long long b) {
    return max(static_cast<unsigned long long>(a), b);
}
inline unsigned long long max(unsigned long long a, long long b) {
    return max(a, static_cast<unsigned long long>(b));
}
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double max(float a, double b) { return fmax(static_cast<double>(a), b); }
inline double max(double a, float b) { return fmax(a, static_cast<double>(b)); }

// ---- float intrinsics ----------------------------------------------------------------------
// glibc already declares __expf, __logf, __log2f, __log10f, __exp10f, __powf, __sinf, __cosf,
// __tanf, __sincosf and exp10f (its exactly rounded versions), which stand in for CUDA's.
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
inline double normcdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752); }
inline float norm3df(float a, float b, float c) { return sqrtf(a * a + b * b + c * c); }
inline void sincospif(float x, float *s, float *c) {
    *s = sinf(3.14159265358979323846f * x);
    *c = cosf(3.14159265358979323846f * x);
}
// Inverse error function: Winitzki's closed-form estimate (relative error ~2e-3), then Newton
// steps on erf(x) - y in double, which reach float accuracy.
inline float erfinvf(float y) {
    if (!(y > -1.0f && y < 1.0f)) {
        if (y == 1.0f) return INFINITY;
        if (y == -1.0f) return -INFINITY;
        return NAN;
    }
    if (y == 0.0f) return y;
    const double a = 0.147, two_over_pi_a = 2.0 / (3.14159265358979323846 * a);
    double yd = y, l = log((1.0 - yd) * (1.0 + yd)), t = two_over_pi_a + 0.5 * l;
    double x = sqrt(sqrt(t * t - l / a) - t);
    if (yd < 0.0) x = -x;
    for (int it = 0; it < 3; it++) {
        double err = erf(x) - yd;
        x -= err / (1.1283791670955126 * exp(-x * x));
    }
    return static_cast<float>(x);
}
inline float erfcinvf(float y) { return erfinvf(1.0f - y); }

// ---- conversions and bit casts ----------------------------------------------------------------
inline int __float_as_int(float x) {
    int r;
    std::memcpy(&r, &x, 4);
    return r;
}
inline unsigned __float_as_uint(float x) {
    unsigned r;
    std::memcpy(&r, &x, 4);
    return r;
}
inline float __int_as_float(int x) {
    float r;
    std::memcpy(&r, &x, 4);
    return r;
}
inline float __uint_as_float(unsigned x) {
    float r;
    std::memcpy(&r, &x, 4);
    return r;
}
inline long long __double_as_longlong(double x) {
    long long r;
    std::memcpy(&r, &x, 8);
    return r;
}
inline double __longlong_as_double(long long x) {
    double r;
    std::memcpy(&r, &x, 8);
    return r;
}
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(nearbyintf(x)); }
inline unsigned __float2uint_rz(float x) { return static_cast<unsigned>(x); }
inline long long __float2ll_rn(float x) { return static_cast<long long>(nearbyintf(x)); }
inline long long __float2ll_rz(float x) { return static_cast<long long>(x); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline int __double2int_rn(double x) { return static_cast<int>(nearbyint(x)); }
inline float __double2float_rn(double x) { return static_cast<float>(x); }

// ---- integer intrinsics --------------------------------------------------------------------
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) {
    return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x));
}
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
    return (static_cast<unsigned long long>(__brev(static_cast<unsigned>(x))) << 32) |
           __brev(static_cast<unsigned>(x >> 32));
}
// Result byte n is byte ((s >> 4n) & 7) of the 8-byte value y:x (x holds bytes 0-3).
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    unsigned long long v = (static_cast<unsigned long long>(y) << 32) | x;
    unsigned r = 0;
    for (int n = 0; n < 4; n++) r |= static_cast<unsigned>((v >> (8 * ((s >> (4 * n)) & 7))) & 0xff) << (8 * n);
    return r;
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned shift) {
    unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
    return static_cast<unsigned>((v << (shift & 31)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned shift) {
    unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
    return static_cast<unsigned>(v >> (shift & 31));
}
inline unsigned __funnelshift_lc(unsigned lo, unsigned hi, unsigned shift) {
    unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
    return static_cast<unsigned>((v << (shift < 32 ? shift : 32)) >> 32);
}
inline unsigned __funnelshift_rc(unsigned lo, unsigned hi, unsigned shift) {
    unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
    return static_cast<unsigned>(v >> (shift < 32 ? shift : 32));
}
inline unsigned __umulhi(unsigned a, unsigned b) {
    return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline long long __mul64hi(long long a, long long b) {
    return static_cast<long long>((static_cast<__int128>(a) * b) >> 64);
}
inline int __mul24(int a, int b) {
    return static_cast<int>(static_cast<unsigned>(((a << 8) >> 8) * ((b << 8) >> 8)));
}
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline unsigned __sad(int x, int y, unsigned z) {
    return (x > y ? static_cast<unsigned>(x) - static_cast<unsigned>(y)
                  : static_cast<unsigned>(y) - static_cast<unsigned>(x)) + z;
}
inline unsigned __usad(unsigned x, unsigned y, unsigned z) { return (x > y ? x - y : y - x) + z; }
inline int __hadd(int a, int b) { return static_cast<int>((static_cast<long long>(a) + b) >> 1); }
inline int __rhadd(int a, int b) {
    return static_cast<int>((static_cast<long long>(a) + b + 1) >> 1);
}
inline unsigned __uhadd(unsigned a, unsigned b) {
    return static_cast<unsigned>((static_cast<unsigned long long>(a) + b) >> 1);
}
inline unsigned __urhadd(unsigned a, unsigned b) {
    return static_cast<unsigned>((static_cast<unsigned long long>(a) + b + 1) >> 1);
}

// ---- half and bfloat16 functions the host headers lack (computed in float) -------------------
#define QT_CUEMU_H1(name, T, to_f, from_f, expr)                                              \
    inline T name(T h) {                                                                       \
        float x = to_f(h);                                                                     \
        return from_f(expr);                                                                   \
    }
#define QT_CUEMU_H2(name, T2, T1, name1)                                                       \
    inline T2 name(T2 h) { return T2(name1(h.x), name1(h.y)); }
#define QT_CUEMU_HMATH(T, to_f, from_f)                                                        \
    QT_CUEMU_H1(hexp, T, to_f, from_f, expf(x))                                                \
    QT_CUEMU_H1(hexp2, T, to_f, from_f, exp2f(x))                                              \
    QT_CUEMU_H1(hexp10, T, to_f, from_f, powf(10.0f, x))                                       \
    QT_CUEMU_H1(hlog, T, to_f, from_f, logf(x))                                                \
    QT_CUEMU_H1(hlog2, T, to_f, from_f, log2f(x))                                              \
    QT_CUEMU_H1(hlog10, T, to_f, from_f, log10f(x))                                            \
    QT_CUEMU_H1(hsqrt, T, to_f, from_f, sqrtf(x))                                              \
    QT_CUEMU_H1(hrsqrt, T, to_f, from_f, 1.0f / sqrtf(x))                                      \
    QT_CUEMU_H1(hrcp, T, to_f, from_f, 1.0f / x)                                               \
    QT_CUEMU_H1(hsin, T, to_f, from_f, sinf(x))                                                \
    QT_CUEMU_H1(hcos, T, to_f, from_f, cosf(x))                                                \
    QT_CUEMU_H1(htanh, T, to_f, from_f, tanhf(x))                                              \
    QT_CUEMU_H1(hceil, T, to_f, from_f, ceilf(x))                                              \
    QT_CUEMU_H1(hfloor, T, to_f, from_f, floorf(x))                                            \
    QT_CUEMU_H1(htrunc, T, to_f, from_f, truncf(x))                                            \
    QT_CUEMU_H1(hrint, T, to_f, from_f, nearbyintf(x))                                         \
    inline T __hfma(T a, T b, T c) { return from_f(fmaf(to_f(a), to_f(b), to_f(c))); }        \
    inline T __hfma_relu(T a, T b, T c) {                                                      \
        float r = fmaf(to_f(a), to_f(b), to_f(c));                                             \
        return from_f(r > 0.0f ? r : (r != r ? r : 0.0f));                                     \
    }
QT_CUEMU_HMATH(__half, __half2float, __float2half_rn)
QT_CUEMU_HMATH(__nv_bfloat16, __bfloat162float, __float2bfloat16_rn)
#undef QT_CUEMU_HMATH
#undef QT_CUEMU_H1

#define QT_CUEMU_H2MATH(T2, T1)                                                                \
    QT_CUEMU_H2(h2exp, T2, T1, hexp)                                                           \
    QT_CUEMU_H2(h2exp2, T2, T1, hexp2)                                                         \
    QT_CUEMU_H2(h2exp10, T2, T1, hexp10)                                                       \
    QT_CUEMU_H2(h2log, T2, T1, hlog)                                                           \
    QT_CUEMU_H2(h2log2, T2, T1, hlog2)                                                         \
    QT_CUEMU_H2(h2log10, T2, T1, hlog10)                                                       \
    QT_CUEMU_H2(h2sqrt, T2, T1, hsqrt)                                                         \
    QT_CUEMU_H2(h2rsqrt, T2, T1, hrsqrt)                                                       \
    QT_CUEMU_H2(h2rcp, T2, T1, hrcp)                                                           \
    QT_CUEMU_H2(h2sin, T2, T1, hsin)                                                           \
    QT_CUEMU_H2(h2cos, T2, T1, hcos)                                                           \
    QT_CUEMU_H2(h2tanh, T2, T1, htanh)                                                         \
    QT_CUEMU_H2(h2ceil, T2, T1, hceil)                                                         \
    QT_CUEMU_H2(h2floor, T2, T1, hfloor)                                                       \
    QT_CUEMU_H2(h2trunc, T2, T1, htrunc)                                                       \
    QT_CUEMU_H2(h2rint, T2, T1, hrint)                                                         \
    inline T2 __hfma2(T2 a, T2 b, T2 c) {                                                      \
        return T2(__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y));                               \
    }                                                                                          \
    inline T2 __hfma2_relu(T2 a, T2 b, T2 c) {                                                 \
        return T2(__hfma_relu(a.x, b.x, c.x), __hfma_relu(a.y, b.y, c.y));                     \
    }
QT_CUEMU_H2MATH(__half2, __half)
QT_CUEMU_H2MATH(__nv_bfloat162, __nv_bfloat16)
#undef QT_CUEMU_H2MATH
#undef QT_CUEMU_H2

inline int __half2int_rn(__half h) { return __float2int_rn(__half2float(h)); }
inline int __bfloat162int_rn(__nv_bfloat16 h) { return __float2int_rn(__bfloat162float(h)); }

#endif

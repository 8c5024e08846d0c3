// cuemu_atomic.h: CUDA atomic functions as real atomics (included by cuemu.h).
//
// Blocks run concurrently on worker threads, so these must be atomic read-modify-writes; they
// use relaxed ordering like CUDA's atomics (order comes from __threadfence or barriers).
// Floating-point and 16-bit types use compare-and-swap loops on the word that holds them.
// The _block and _system scopes are the same operation here.
#ifndef QTRAIN_CUEMU_ATOMIC_H
#define QTRAIN_CUEMU_ATOMIC_H

namespace cuemu {
namespace detail {

template <size_t N> struct atomic_word;
template <> struct atomic_word<2> { typedef uint16_t type; };
template <> struct atomic_word<4> { typedef uint32_t type; };
template <> struct atomic_word<8> { typedef uint64_t type; };

// Applies f to *addr atomically and returns the old value, with a compare-and-swap loop on the
// 2-, 4- or 8-byte word holding it (as CUDA code builds atomics from atomicCAS): T may be a
// float or a half type whose host-side class is not "trivially copyable" for the builtins.
template <class T, class F>
inline T atomic_update(T *addr, F f) {
    typedef typename atomic_word<sizeof(T)>::type word;
    word *w = reinterpret_cast<word *>(addr);
    word old_bits = __atomic_load_n(w, __ATOMIC_RELAXED);
    for (;;) {
        T old = T();
        std::memcpy(static_cast<void *>(&old), &old_bits, sizeof(T));
        const T desired = f(old);
        word new_bits;
        std::memcpy(&new_bits, static_cast<const void *>(&desired), sizeof(T));
        if (__atomic_compare_exchange_n(w, &old_bits, new_bits, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return old;
    }
}

}  // namespace detail
}  // namespace cuemu

#define QT_CUEMU_ATOMIC_INT(T)                                                                \
    inline T atomicAdd(T *a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }     \
    inline T atomicExch(T *a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }   \
    inline T atomicMin(T *a, T v) {                                                           \
        return ::cuemu::detail::atomic_update(a, [v](T o) { return v < o ? v : o; });         \
    }                                                                                          \
    inline T atomicMax(T *a, T v) {                                                           \
        return ::cuemu::detail::atomic_update(a, [v](T o) { return v > o ? v : o; });         \
    }                                                                                          \
    inline T atomicAnd(T *a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }     \
    inline T atomicOr(T *a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }       \
    inline T atomicXor(T *a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }     \
    inline T atomicCAS(T *a, T compare, T v) {                                                \
        __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED,                  \
                                    __ATOMIC_RELAXED);                                        \
        return compare;                                                                        \
    }

QT_CUEMU_ATOMIC_INT(int)
QT_CUEMU_ATOMIC_INT(unsigned int)
QT_CUEMU_ATOMIC_INT(unsigned long long int)
#undef QT_CUEMU_ATOMIC_INT

// CUDA has these for long long only as min/max.
inline long long atomicMin(long long *a, long long v) {
    return ::cuemu::detail::atomic_update(a, [v](long long o) { return v < o ? v : o; });
}
inline long long atomicMax(long long *a, long long v) {
    return ::cuemu::detail::atomic_update(a, [v](long long o) { return v > o ? v : o; });
}
inline int atomicSub(int *a, int v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicSub(unsigned *a, unsigned v) {
    return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED);
}
// ((old >= v) ? 0 : old + 1) and (((old == 0) || (old > v)) ? v : old - 1), as documented.
inline unsigned atomicInc(unsigned *a, unsigned v) {
    return ::cuemu::detail::atomic_update(a, [v](unsigned o) { return o >= v ? 0u : o + 1u; });
}
inline unsigned atomicDec(unsigned *a, unsigned v) {
    return ::cuemu::detail::atomic_update(
        a, [v](unsigned o) { return (o == 0u || o > v) ? v : o - 1u; });
}
inline unsigned short atomicCAS(unsigned short *a, unsigned short compare, unsigned short v) {
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}

inline float atomicExch(float *a, float v) {
    return ::cuemu::detail::atomic_update(a, [v](float) { return v; });
}
inline float atomicAdd(float *a, float v) {
    return ::cuemu::detail::atomic_update(a, [v](float o) { return o + v; });
}
inline double atomicAdd(double *a, double v) {
    return ::cuemu::detail::atomic_update(a, [v](double o) { return o + v; });
}
inline __half atomicAdd(__half *a, __half v) {
    return ::cuemu::detail::atomic_update(
        a, [v](__half o) { return __float2half(__half2float(o) + __half2float(v)); });
}
inline __half2 atomicAdd(__half2 *a, __half2 v) {
    return ::cuemu::detail::atomic_update(a, [v](__half2 o) {
        return __floats2half2_rn(__low2float(o) + __low2float(v),
                                 __high2float(o) + __high2float(v));
    });
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *a, __nv_bfloat16 v) {
    return ::cuemu::detail::atomic_update(a, [v](__nv_bfloat16 o) {
        return __float2bfloat16(__bfloat162float(o) + __bfloat162float(v));
    });
}
inline __nv_bfloat162 atomicAdd(__nv_bfloat162 *a, __nv_bfloat162 v) {
    return ::cuemu::detail::atomic_update(a, [v](__nv_bfloat162 o) {
        return __floats2bfloat162_rn(__low2float(o) + __low2float(v),
                                     __high2float(o) + __high2float(v));
    });
}

// Scoped variants: the same operation (every scope is coherent on the CPU).
#define QT_CUEMU_ATOMIC_SCOPED(name)                                                          \
    template <class... A>                                                                      \
    inline auto name##_block(A... a)->decltype(name(a...)) {                                  \
        return name(a...);                                                                     \
    }                                                                                          \
    template <class... A>                                                                      \
    inline auto name##_system(A... a)->decltype(name(a...)) {                                 \
        return name(a...);                                                                     \
    }
QT_CUEMU_ATOMIC_SCOPED(atomicAdd)
QT_CUEMU_ATOMIC_SCOPED(atomicSub)
QT_CUEMU_ATOMIC_SCOPED(atomicExch)
QT_CUEMU_ATOMIC_SCOPED(atomicMin)
QT_CUEMU_ATOMIC_SCOPED(atomicMax)
QT_CUEMU_ATOMIC_SCOPED(atomicInc)
QT_CUEMU_ATOMIC_SCOPED(atomicDec)
QT_CUEMU_ATOMIC_SCOPED(atomicCAS)
QT_CUEMU_ATOMIC_SCOPED(atomicAnd)
QT_CUEMU_ATOMIC_SCOPED(atomicOr)
QT_CUEMU_ATOMIC_SCOPED(atomicXor)
#undef QT_CUEMU_ATOMIC_SCOPED

#endif

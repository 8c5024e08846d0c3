// cuemu.h: the CUDA execution model on the CPU, for CUDA C compiled as C++ (g++/clang++).
//
// defines: threadIdx, blockIdx, blockDim, gridDim, warpSize; __shared__ storage;
//          __syncthreads{,_count,_and,_or}, __syncwarp, __shfl{,_up,_down,_xor}_sync,
//          __ballot_sync, __any_sync, __all_sync, __activemask, __match_{any,all}_sync,
//          __reduce_{add,min,max,and,or,xor}_sync, __nanosleep, __threadfence*, atomics
//          (cuemu_atomic.h), math/half/bit intrinsics missing host-side (cuemu_math.h),
//          cuemu::launch (what QT_LAUNCH expands to), cuemu::dynamic_shared().
//
// The model (tests/cuemu/README.md has the long version):
//   - each CUDA thread is a fiber; a block's fibers run on one worker OS thread, one at a time,
//     each until it reaches a barrier or a warp collective, where it yields;
//   - worker threads (QT_CUEMU_THREADS, default: the number of cores) take whole blocks;
//   - threadIdx & co. are thread_local variables set by the scheduler before it resumes a fiber;
//   - __shared__ is `static thread_local` (one copy per worker, hence per running block), or
//     plain `static` in the ASan build, which runs blocks one at a time so ASan sees the arrays;
//   - a divergent __syncthreads, a collective naming an exited lane and a deadlock abort with
//     the kernel, block and thread coordinates.
//
// Include order matters: the CUDA headers (types, half/bf16 host arithmetic, cuRAND device API)
// are included first, then the macros that would break them (threadIdx, __shared__) are defined.
#ifndef QTRAIN_CUEMU_H
#define QTRAIN_CUEMU_H

#ifndef __cplusplus
#error "cuemu.h is C++: compile CUDA sources with g++/clang++ (-x c++) and -DQT_CUEMU"
#endif
#if defined(__CUDACC__)
#error "cuemu.h is the CPU emulator; nvcc builds use the CUDA headers directly"
#endif

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <curand_kernel.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// Which sanitizer this translation unit is built with: it decides where __shared__ lives, and
// the runtime checks at launch that it was built for the same one.
#define QT_CUEMU_MODE_NORMAL 0
#define QT_CUEMU_MODE_ASAN 1
#define QT_CUEMU_MODE_TSAN 2
#if defined(__SANITIZE_ADDRESS__)
#define QT_CUEMU_MODE QT_CUEMU_MODE_ASAN
#elif defined(__SANITIZE_THREAD__)
#define QT_CUEMU_MODE QT_CUEMU_MODE_TSAN
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QT_CUEMU_MODE QT_CUEMU_MODE_ASAN
#elif __has_feature(thread_sanitizer)
#define QT_CUEMU_MODE QT_CUEMU_MODE_TSAN
#endif
#endif
#ifndef QT_CUEMU_MODE
#define QT_CUEMU_MODE QT_CUEMU_MODE_NORMAL
#endif

// Storage of a __shared__ variable. ASan does not instrument thread_local, so its build keeps
// shared memory in plain statics (with redzones) and the runtime runs one block at a time.
#if QT_CUEMU_MODE == QT_CUEMU_MODE_ASAN
#define QT_CUEMU_SHARED_STORAGE static
#else
#define QT_CUEMU_SHARED_STORAGE static thread_local
#endif

// initial-exec: TLS is reached through %fs directly, also from a shared library loaded at start.
#define QT_CUEMU_TLS thread_local __attribute__((tls_model("initial-exec")))

namespace cuemu {

// The calling point of an intrinsic, for messages (filled by __builtin_FILE/__builtin_LINE as
// default arguments, so the intrinsics keep their CUDA names and signatures).
#define QT_CUEMU_HERE const char *qt_file_ = __builtin_FILE(), int qt_line_ = __builtin_LINE()

namespace detail {

// The running CUDA thread's coordinates, per worker OS thread. Kernel code reads them through
// the threadIdx/blockIdx/blockDim/gridDim macros below.
extern QT_CUEMU_TLS uint3 tl_thread_idx;
extern QT_CUEMU_TLS uint3 tl_block_idx;
extern QT_CUEMU_TLS dim3 tl_block_dim;
extern QT_CUEMU_TLS dim3 tl_grid_dim;
extern QT_CUEMU_TLS void *tl_dynamic_smem;

// Warp collective operations (the op argument of warp_collective).
enum warp_op : int {
    OP_SYNCWARP = 1,
    OP_SHFL_IDX,
    OP_SHFL_UP,
    OP_SHFL_DOWN,
    OP_SHFL_XOR,
    OP_BALLOT,
    OP_ANY,
    OP_ALL,
    OP_REDUCE_ADD,
    OP_REDUCE_MIN_U,
    OP_REDUCE_MIN_S,
    OP_REDUCE_MAX_U,
    OP_REDUCE_MAX_S,
    OP_REDUCE_AND,
    OP_REDUCE_OR,
    OP_REDUCE_XOR,
    OP_MATCH_ANY,
    OP_MATCH_ALL,
};

// Block barrier flavours (the op argument of block_barrier).
enum barrier_op : int { BAR_SYNC = 0, BAR_COUNT, BAR_AND, BAR_OR };

// Waits at the block barrier; returns the count / and / or of `pred` over the block.
int block_barrier(int op, int pred, const char *file, int line);

// Waits until every lane named in `mask` reaches a collective with the same mask, then returns
// this lane's result. `value` holds `size` bytes (shuffles, matches) or the predicate (votes);
// `b` is the shuffle's lane/delta/lane mask; `width` the shuffle's segment width.
uint64_t warp_collective(int op, unsigned mask, uint64_t value, unsigned size, int b, int width,
                         const char *file, int line);

// Lanes of the caller's warp that exist and have not exited.
unsigned active_mask(const char *file, int line);

// Puts the calling thread at the back of its block's run queue (spin loops need this).
void yield_thread(const char *file, int line);

// Fills a static shared array with the NaN pattern the first time a block touches it.
void shared_init(void *p, size_t bytes);

// Aborts with the calling thread's coordinates (__trap, unsupported use).
[[noreturn]] void fatal_in_kernel(const char *what, const char *file, int line);

// cp.async twins (the PTX instructions of sm_80; the model is in ptx twins below).
void cp_async(void *dst, const void *src, unsigned cp_size, unsigned src_size, bool cache_global,
              const char *file, int line);
void cp_async_commit(const char *file, int line);
void cp_async_wait(unsigned n, const char *file, int line);

// One launch, type-erased: invoke(ctx) runs the kernel body for the current CUDA thread.
struct launch_desc {
    const char *text;  // the QT_LAUNCH arguments as written: the kernel name is the first
    const void *func;  // the kernel's address (cudaFuncSetAttribute key)
    void (*invoke)(const void *ctx);
    const void *ctx;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    int mode;  // QT_CUEMU_MODE of the translation unit that launched
};
cudaError_t launch(const launch_desc &d);

// Holds the kernel pointer and its arguments converted to the parameter types, as CUDA copies
// them into parameter space. Every CUDA thread calls the kernel with its own copy.
template <class... P>
struct kernel_call {
    void (*fn)(P...);
    std::tuple<typename std::decay<P>::type...> args;
    static void invoke(const void *self) {
        const kernel_call *k = static_cast<const kernel_call *>(self);
        std::apply(k->fn, k->args);
    }
};

}  // namespace detail

// Launches fn over grid x block CUDA threads with `smem` bytes of dynamic shared memory and
// waits for it (every launch is synchronous). Launch errors (bad configuration, too much shared
// memory) are reported as by CUDA: through cudaGetLastError()/cudaPeekAtLastError().
template <class... P, class... A>
void launch(const char *text, void (*fn)(P...), dim3 grid, dim3 block, size_t smem,
            cudaStream_t stream, A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A),
                  "QT_LAUNCH: the number of arguments differs from the kernel's parameters");
    detail::kernel_call<P...> call{fn, std::tuple<typename std::decay<P>::type...>(
                                           std::forward<A>(args)...)};
    detail::launch_desc d;
    d.text = text;
    d.func = reinterpret_cast<const void *>(fn);
    d.invoke = &detail::kernel_call<P...>::invoke;
    d.ctx = &call;
    d.grid = grid;
    d.block = block;
    d.smem = smem;
    d.stream = stream;
    d.mode = QT_CUEMU_MODE;
    (void)detail::launch(d);
}

// The running block's dynamic shared memory (QT_DYNAMIC_SHARED). Filled with 0xFF bytes (a NaN
// in every float format) at block start; in the ASan build a malloc of exactly the launch's
// byte count, elsewhere followed by an inaccessible page.
inline void *dynamic_shared() { return detail::tl_dynamic_smem; }

// Worker threads the runtime uses (after the first launch; QT_CUEMU_THREADS, 1 under ASan).
int num_workers();

// Fiber switches performed so far, summed over workers (for benchmarks).
unsigned long long switch_count();

// "asm" or "ucontext".
const char *context_kind();

}  // namespace cuemu

// ---- runtime API templates that cuda_runtime.h defines only for nvcc ------------------------
// (the C functions they call are in cuemu_cudart.cpp)
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count,
                                      size_t offset = 0,
                                      enum cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
    return ::cudaMemcpyToSymbol(static_cast<const void *>(&symbol), src, count, offset, kind);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t count,
                                        size_t offset = 0,
                                        enum cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
    return ::cudaMemcpyFromSymbol(dst, static_cast<const void *>(&symbol), count, offset, kind);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbolAsync(const T &symbol, const void *src, size_t count,
                                           size_t offset = 0,
                                           enum cudaMemcpyKind kind = cudaMemcpyHostToDevice,
                                           cudaStream_t stream = 0) {
    (void)stream;
    return ::cudaMemcpyToSymbol(static_cast<const void *>(&symbol), src, count, offset, kind);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbolAsync(void *dst, const T &symbol, size_t count,
                                             size_t offset = 0,
                                             enum cudaMemcpyKind kind = cudaMemcpyDeviceToHost,
                                             cudaStream_t stream = 0) {
    (void)stream;
    return ::cudaMemcpyFromSymbol(dst, static_cast<const void *>(&symbol), count, offset, kind);
}
template <class T>
inline cudaError_t cudaGetSymbolAddress(void **dev_ptr, const T &symbol) {
    return ::cudaGetSymbolAddress(dev_ptr, static_cast<const void *>(&symbol));
}
template <class T>
inline cudaError_t cudaGetSymbolSize(size_t *size, const T &symbol) {
    (void)symbol;
    if (!size) return cudaErrorInvalidValue;
    *size = sizeof(T);
    return cudaSuccess;
}
template <class T>
inline cudaError_t cudaFuncSetAttribute(T *func, enum cudaFuncAttribute attr, int value) {
    return ::cudaFuncSetAttribute(reinterpret_cast<const void *>(func), attr, value);
}
template <class T>
inline cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, T *func) {
    return ::cudaFuncGetAttributes(attr, reinterpret_cast<const void *>(func));
}
template <class T>
inline cudaError_t cudaFuncSetCacheConfig(T *func, enum cudaFuncCache config) {
    return ::cudaFuncSetCacheConfig(reinterpret_cast<const void *>(func), config);
}

// ---- built-in variables --------------------------------------------------------------------
// curand_mtgp32_kernel.h declares extern threadIdx/blockDim; the macros come after it.
#define threadIdx (static_cast<const uint3 &>(::cuemu::detail::tl_thread_idx))
#define blockIdx (static_cast<const uint3 &>(::cuemu::detail::tl_block_idx))
#define blockDim (static_cast<const dim3 &>(::cuemu::detail::tl_block_dim))
#define gridDim (static_cast<const dim3 &>(::cuemu::detail::tl_grid_dim))
// Not a macro: cudaDeviceProp has a field of that name.
constexpr int warpSize = 32;

// ---- qualifiers ----------------------------------------------------------------------------
// __global__, __device__, __host__, __constant__, __forceinline__ already expand to nothing
// (or plain attributes) in a host compilation. __shared__ gets storage; extern __shared__ fails
// to compile on purpose (use QT_DYNAMIC_SHARED). __noinline__ is left undefined: a macro of
// that name breaks `__attribute__((__noinline__))` in standard headers included later (use
// QT_NOINLINE from qt_cuda_compat.h).
#undef __shared__
#define __shared__ QT_CUEMU_SHARED_STORAGE
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

// ---- synchronization -----------------------------------------------------------------------
inline void __syncthreads(QT_CUEMU_HERE) {
    ::cuemu::detail::block_barrier(::cuemu::detail::BAR_SYNC, 0, qt_file_, qt_line_);
}
inline int __syncthreads_count(int pred, QT_CUEMU_HERE) {
    return ::cuemu::detail::block_barrier(::cuemu::detail::BAR_COUNT, pred, qt_file_, qt_line_);
}
inline int __syncthreads_and(int pred, QT_CUEMU_HERE) {
    return ::cuemu::detail::block_barrier(::cuemu::detail::BAR_AND, pred, qt_file_, qt_line_);
}
inline int __syncthreads_or(int pred, QT_CUEMU_HERE) {
    return ::cuemu::detail::block_barrier(::cuemu::detail::BAR_OR, pred, qt_file_, qt_line_);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, QT_CUEMU_HERE) {
    ::cuemu::detail::warp_collective(::cuemu::detail::OP_SYNCWARP, mask, 0, 0, 0, 32, qt_file_,
                                     qt_line_);
}
inline unsigned __activemask(QT_CUEMU_HERE) {
    return ::cuemu::detail::active_mask(qt_file_, qt_line_);
}
// Within a block, threads run one at a time and switch only at barriers: any fence is a
// compiler barrier there; between blocks (concurrent OS threads) it is a real fence.
#if defined(__SANITIZE_THREAD__)
// TSan does not model atomic_thread_fence (GCC refuses it under -fsanitize=thread). There every
// fence is a sequentially consistent read-modify-write of one shared word instead: a full fence
// on the host, and for TSan a release and an acquire on that word, so a fence after a thread's
// stores and a later fence before another thread's loads (the last-block pattern of
// common.cuh's qt_colsum_finish) order them as the GPU's fence.sc does.
namespace cuemu {
namespace detail {
inline unsigned fence_word;
}  // namespace detail
}  // namespace cuemu
inline void __threadfence() {
    (void)__atomic_fetch_add(&::cuemu::detail::fence_word, 0u, __ATOMIC_SEQ_CST);
}
inline void __threadfence_block() { __threadfence(); }
inline void __threadfence_system() { __threadfence(); }
#else
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
#endif
// Yields to the other threads of the block, so a spin loop with a back-off makes progress.
inline void __nanosleep(unsigned ns, QT_CUEMU_HERE) {
    (void)ns;
    ::cuemu::detail::yield_thread(qt_file_, qt_line_);
}
[[noreturn]] inline void __trap(QT_CUEMU_HERE) {
    ::cuemu::detail::fatal_in_kernel("__trap()", qt_file_, qt_line_);
}
inline long long clock64() {
    unsigned lo, hi;
#if defined(__x86_64__)
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
#else
    lo = 0;
    hi = 0;
#endif
    return static_cast<long long>((static_cast<unsigned long long>(hi) << 32) | lo);
}

// ---- warp shuffles -------------------------------------------------------------------------
// Any plain type of at most 8 bytes (int, float, double, __half, __half2, __nv_bfloat16, ...).
namespace cuemu {
namespace detail {
// __half2 and __nv_bfloat162 have user-written assignments in a host compilation (so they are
// not "trivially copyable"), but are plain bits: copy them as bytes.
template <class T>
inline T shuffle(int op, unsigned mask, T var, int b, int width, const char *file, int line) {
    static_assert(std::is_trivially_destructible<T>::value && sizeof(T) <= 8,
                  "warp shuffles move plain values of at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, static_cast<const void *>(&var), sizeof(T));
    uint64_t r = warp_collective(op, mask, bits, sizeof(T), b, width, file, line);
    T out = var;
    std::memcpy(static_cast<void *>(&out), &r, sizeof(T));
    return out;
}
}  // namespace detail
}  // namespace cuemu

template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, QT_CUEMU_HERE) {
    return ::cuemu::detail::shuffle(::cuemu::detail::OP_SHFL_IDX, mask, var, src_lane, width,
                                    qt_file_, qt_line_);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                        QT_CUEMU_HERE) {
    return ::cuemu::detail::shuffle(::cuemu::detail::OP_SHFL_UP, mask, var,
                                    static_cast<int>(delta), width, qt_file_, qt_line_);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                          QT_CUEMU_HERE) {
    return ::cuemu::detail::shuffle(::cuemu::detail::OP_SHFL_DOWN, mask, var,
                                    static_cast<int>(delta), width, qt_file_, qt_line_);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                         QT_CUEMU_HERE) {
    return ::cuemu::detail::shuffle(::cuemu::detail::OP_SHFL_XOR, mask, var, lane_mask, width,
                                    qt_file_, qt_line_);
}

// ---- votes, matches, reductions --------------------------------------------------------------
inline unsigned __ballot_sync(unsigned mask, int pred, QT_CUEMU_HERE) {
    return static_cast<unsigned>(::cuemu::detail::warp_collective(
        ::cuemu::detail::OP_BALLOT, mask, pred != 0, 0, 0, 32, qt_file_, qt_line_));
}
inline int __any_sync(unsigned mask, int pred, QT_CUEMU_HERE) {
    return static_cast<int>(::cuemu::detail::warp_collective(::cuemu::detail::OP_ANY, mask,
                                                             pred != 0, 0, 0, 32, qt_file_,
                                                             qt_line_));
}
inline int __all_sync(unsigned mask, int pred, QT_CUEMU_HERE) {
    return static_cast<int>(::cuemu::detail::warp_collective(::cuemu::detail::OP_ALL, mask,
                                                             pred != 0, 0, 0, 32, qt_file_,
                                                             qt_line_));
}
template <class T>
inline unsigned __match_any_sync(unsigned mask, T value, QT_CUEMU_HERE) {
    static_assert(std::is_integral<T>::value || std::is_floating_point<T>::value,
                  "__match_any_sync takes int, unsigned, long long, float or double");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    return static_cast<unsigned>(::cuemu::detail::warp_collective(
        ::cuemu::detail::OP_MATCH_ANY, mask, bits, sizeof(T), 0, 32, qt_file_, qt_line_));
}
template <class T>
inline unsigned __match_all_sync(unsigned mask, T value, int *pred, QT_CUEMU_HERE) {
    static_assert(std::is_integral<T>::value || std::is_floating_point<T>::value,
                  "__match_all_sync takes int, unsigned, long long, float or double");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    unsigned r = static_cast<unsigned>(::cuemu::detail::warp_collective(
        ::cuemu::detail::OP_MATCH_ALL, mask, bits, sizeof(T), 0, 32, qt_file_, qt_line_));
    *pred = r != 0;
    return r;
}
#define QT_CUEMU_REDUCE(name, T, op)                                                          \
    inline T name(unsigned mask, T value, QT_CUEMU_HERE) {                                    \
        return static_cast<T>(::cuemu::detail::warp_collective(                               \
            ::cuemu::detail::op, mask, static_cast<uint32_t>(value), 4, 0, 32, qt_file_,      \
            qt_line_));                                                                        \
    }
QT_CUEMU_REDUCE(__reduce_add_sync, unsigned, OP_REDUCE_ADD)
QT_CUEMU_REDUCE(__reduce_add_sync, int, OP_REDUCE_ADD)
QT_CUEMU_REDUCE(__reduce_min_sync, unsigned, OP_REDUCE_MIN_U)
QT_CUEMU_REDUCE(__reduce_min_sync, int, OP_REDUCE_MIN_S)
QT_CUEMU_REDUCE(__reduce_max_sync, unsigned, OP_REDUCE_MAX_U)
QT_CUEMU_REDUCE(__reduce_max_sync, int, OP_REDUCE_MAX_S)
QT_CUEMU_REDUCE(__reduce_and_sync, unsigned, OP_REDUCE_AND)
QT_CUEMU_REDUCE(__reduce_or_sync, unsigned, OP_REDUCE_OR)
QT_CUEMU_REDUCE(__reduce_xor_sync, unsigned, OP_REDUCE_XOR)
#undef QT_CUEMU_REDUCE

// ---- PTX twins: ldmatrix and cp.async (sm_80) ---------------------------------------------
// Kernels reach these through small wrappers with a QT_CUDA_EMULATED branch (kernels/cuda/
// common.cuh: qt_ldmatrix_*, qt_cp_async_*); each follows the PTX ISA's definition.
namespace cuemu {

// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16 d, [row]: a warp-wide load of X 8x8
// matrices of 16-bit elements. Lanes 8i .. 8i+7 give the addresses of rows 0..7 of matrix i
// (each row 16 contiguous, 16-byte aligned bytes; the other lanes' addresses are ignored).
// Lane l receives in d[i] the elements (l/4, 2(l%4)) and (l/4, 2(l%4)+1) of matrix i, the first
// in the low half; with .trans, the elements (2(l%4), l/4) and (2(l%4)+1, l/4). Every lane of
// the warp must call it together (full mask), as the instruction is .sync.aligned. Twin: each
// lane fetches the row address it needs from the lane that holds it with a shuffle (so a lane
// that gives a wrong address corrupts the others' registers, as on the GPU) and reads the
// bytes itself.
template <int X>
inline void ldmatrix_b16(uint32_t (&d)[X], const void *row, bool trans, QT_CUEMU_HERE) {
    static_assert(X == 1 || X == 2 || X == 4, "ldmatrix loads 1, 2 or 4 matrices");
    const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned lane = tid & 31u;
    if (lane < 8u * X && reinterpret_cast<uintptr_t>(row) % 16 != 0)
        detail::fatal_in_kernel("ldmatrix: a row address not 16-byte aligned in", qt_file_,
                                qt_line_);
    const uintptr_t mine = reinterpret_cast<uintptr_t>(row);
    for (int i = 0; i < X; i++) {
        if (!trans) {
            const uintptr_t r = static_cast<uintptr_t>(detail::warp_collective(
                detail::OP_SHFL_IDX, 0xffffffffu, mine, 8, static_cast<int>(8 * i + lane / 4),
                32, qt_file_, qt_line_));
            std::memcpy(&d[i], reinterpret_cast<const char *>(r) + 4 * (lane % 4), 4);
        } else {
            const int r0 = static_cast<int>(8 * i + 2 * (lane % 4));
            const uintptr_t a0 = static_cast<uintptr_t>(detail::warp_collective(
                detail::OP_SHFL_IDX, 0xffffffffu, mine, 8, r0, 32, qt_file_, qt_line_));
            const uintptr_t a1 = static_cast<uintptr_t>(detail::warp_collective(
                detail::OP_SHFL_IDX, 0xffffffffu, mine, 8, r0 + 1, 32, qt_file_, qt_line_));
            uint16_t lo, hi;
            std::memcpy(&lo, reinterpret_cast<const char *>(a0) + 2 * (lane / 4), 2);
            std::memcpy(&hi, reinterpret_cast<const char *>(a1) + 2 * (lane / 4), 2);
            d[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
        }
    }
}

// cp.async.{ca,cg}.shared.global [dst], [src], cp_size, src_size: copies src_size bytes of
// global memory to shared memory and zero-fills the rest of cp_size (4, 8 or 16; .cg: 16),
// both addresses aligned to cp_size. Asynchronous: the copy joins the thread's open group,
// cp_async_commit_group closes that group, and cp_async_wait_group(n) waits until at most the
// n most recently committed groups of this thread are pending (copies not yet committed are
// never waited for). Twin: the source is read at issue, the destination filled with 0xFF
// bytes at once, and the data written when a wait covering its group runs; a thread that
// exits with copies in flight is reported.
inline void cp_async(void *dst, const void *src, unsigned cp_size, unsigned src_size,
                     bool cache_global, QT_CUEMU_HERE) {
    detail::cp_async(dst, src, cp_size, src_size, cache_global, qt_file_, qt_line_);
}
inline void cp_async_commit_group(QT_CUEMU_HERE) { detail::cp_async_commit(qt_file_, qt_line_); }
inline void cp_async_wait_group(unsigned n, QT_CUEMU_HERE) {
    detail::cp_async_wait(n, qt_file_, qt_line_);
}
// cp.async.wait_all: commit_group then wait_group 0.
inline void cp_async_wait_all(QT_CUEMU_HERE) {
    detail::cp_async_commit(qt_file_, qt_line_);
    detail::cp_async_wait(0, qt_file_, qt_line_);
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 d, a, b, d: D (16x8, fp32)
// += A (16x16, row) B (16x8, col) on 16-bit operands. With g = lane >> 2 (groupID) and
// t = lane % 4 (threadID_in_group), each .b32 register holds two elements, the lower k (or
// column) in the low half:
//   A: a[0] (row g, k 2t, 2t+1), a[1] (row g+8, k 2t..), a[2] (row g, k 2t+8..), a[3] (row g+8,
//      k 2t+8..);   B: b[0] (k 2t, 2t+1; column g), b[1] (k 2t+8, 2t+9; column g);
//   C/D: d[0] (g, 2t), d[1] (g, 2t+1), d[2] (g+8, 2t), d[3] (g+8, 2t+1).
// Every lane of the warp must call it together (full mask). Twin: the lanes publish their
// registers in a per-warp exchange area (per worker thread: a worker runs one block at a time)
// between two __syncwarp, and each lane reads the A rows and B columns of its four outputs from
// the lanes that hold them, so a fragment in the wrong register gives wrong results here as on
// the GPU. Products of two 16-bit values are exact in fp32; they are summed in k order, then
// added to d (the hardware's internal order differs: results agree to fp32 rounding).
// BF16: false for __half operands, true for __nv_bfloat16.
namespace detail {
inline float mma_b16_to_f32(uint32_t bits, bool bf16) {
    if (bf16) {
        const uint32_t w = bits << 16;
        float f;
        std::memcpy(&f, &w, 4);
        return f;
    }
    __half_raw r;
    r.x = static_cast<unsigned short>(bits);
    return __half2float(__half(r));
}
}  // namespace detail

template <bool BF16>
inline void mma_m16n8k16_f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                             QT_CUEMU_HERE) {
    static thread_local uint32_t xa[32][32][4], xb[32][32][2];
    const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const int lane = static_cast<int>(tid & 31u), warp = static_cast<int>(tid >> 5);
    if (warp >= 32) detail::fatal_in_kernel("mma: more than 32 warps in a block in", qt_file_, qt_line_);
    const int g = lane >> 2, t = lane & 3;
    for (int r = 0; r < 4; r++) xa[warp][lane][r] = a[r];
    xb[warp][lane][0] = b[0];
    xb[warp][lane][1] = b[1];
    __syncwarp(0xffffffffu, qt_file_, qt_line_);
    // A (row, k): register (row >= 8) + 2 (k >= 8) of lane 4 (row % 8) + (k % 8) / 2, half k % 2.
    // B (k, n): register (k >= 8) of lane 4 n + (k % 8) / 2, half k % 2.
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int k = 0; k < 16; k++) {
        const int kr = (k >= 8) ? 1 : 0, kl = (k % 8) / 2, sh = 16 * (k % 2);
        const float a_lo = detail::mma_b16_to_f32(xa[warp][4 * g + kl][2 * kr] >> sh, BF16);
        const float a_hi = detail::mma_b16_to_f32(xa[warp][4 * g + kl][1 + 2 * kr] >> sh, BF16);
        const float b0 = detail::mma_b16_to_f32(xb[warp][4 * (2 * t) + kl][kr] >> sh, BF16);
        const float b1 = detail::mma_b16_to_f32(xb[warp][4 * (2 * t + 1) + kl][kr] >> sh, BF16);
        acc[0] += a_lo * b0;
        acc[1] += a_lo * b1;
        acc[2] += a_hi * b0;
        acc[3] += a_hi * b1;
    }
    for (int r = 0; r < 4; r++) d[r] += acc[r];
    __syncwarp(0xffffffffu, qt_file_, qt_line_);
}

}  // namespace cuemu

#include "cuemu_atomic.h"
#include "cuemu_math.h"

#endif

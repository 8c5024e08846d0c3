// cuemu_cudart.cpp: the part of the CUDA runtime API the project uses, on the CPU.
//
// Defines, with the exact signatures cuda_runtime_api.h declares (C linkage), what a launcher
// or the CUDA backend calls around its kernels, so they link against cuemu instead of libcudart:
// memory (device memory is host memory), copies, streams and events (all synchronous),
// device properties of an emulated sm_80 device, function attributes, errors.
//
// Checks a GPU would also make, plus a few a CPU can make cheaply:
//   - cudaMemcpy/cudaMemset ranges must lie inside one cudaMalloc allocation on the device
//     side (cudaErrorInvalidValue otherwise: a CPU "memcheck" of copies);
//   - cudaFree of a pointer cudaMalloc did not return fails;
//   - fresh device memory is filled with 0xFF bytes (NaN in every float format), so a kernel
//     that reads memory nobody wrote sees NaN instead of zeros.
// Launch configuration errors are raised by the launcher (cuemu_runtime.cpp).
#include "cuemu_internal.h"

#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace cuemu {
namespace detail {
namespace {

thread_local cudaError_t tl_last_error = cudaSuccess;

// Device allocations: key(start) -> bytes. The key is start / 2 (starts are 256-byte aligned,
// so it is exact and keeps the order) because LeakSanitizer must not find the pointer here:
// an allocation nobody cudaFree'd is then reported as a leak in the ASan build.
std::mutex g_mem_mutex;
std::map<uintptr_t, size_t> g_allocs;

inline uintptr_t alloc_key(const void *p) { return reinterpret_cast<uintptr_t>(p) >> 1; }

std::mutex g_func_mutex;
std::unordered_map<const void *, int> g_func_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize

// True if [p, p + n) lies inside one device allocation.
bool device_range(const void *p, size_t n) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    std::lock_guard<std::mutex> lk(g_mem_mutex);
    auto it = g_allocs.upper_bound(alloc_key(p));
    if (it == g_allocs.begin()) return false;
    --it;
    uintptr_t start = it->first << 1;
    return a >= start && n <= it->second && a - start <= it->second - n;
}

bool is_device(const void *p) { return device_range(p, 0); }

cudaError_t check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    if (n == 0) return cudaSuccess;
    if (!dst || !src) return cudaErrorInvalidValue;
    bool dst_dev = false, src_dev = false;
    switch (kind) {
        case cudaMemcpyHostToHost: break;
        case cudaMemcpyHostToDevice: dst_dev = true; break;
        case cudaMemcpyDeviceToHost: src_dev = true; break;
        case cudaMemcpyDeviceToDevice: dst_dev = src_dev = true; break;
        case cudaMemcpyDefault:
            dst_dev = is_device(dst);
            src_dev = is_device(src);
            break;
        default: return cudaErrorInvalidMemcpyDirection;
    }
    if (dst_dev && !device_range(dst, n)) return cudaErrorInvalidValue;
    if (src_dev && !device_range(src, n)) return cudaErrorInvalidValue;
    return cudaSuccess;
}

size_t physical_memory() {
    long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
    return pages > 0 && ps > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(ps) : (16ull << 30);
}

}  // namespace

cudaError_t set_last_error(cudaError_t err) {
    if (err != cudaSuccess) tl_last_error = err;
    return err;
}

int func_max_dynamic_smem(const void *func) {
    std::lock_guard<std::mutex> lk(g_func_mutex);
    auto it = g_func_smem.find(func);
    return it == g_func_smem.end() ? k_smem_default : it->second;
}

}  // namespace detail
}  // namespace cuemu

using cuemu::detail::set_last_error;

// Streams are never freed: cudaStreamDestroy marks them dead, so a stale handle is recognised
// (a freed and reused address could look live) and the registry keeps them reachable.
struct CUstream_st {
    bool live;
};
namespace {
std::mutex g_streams_mu;
// Every stream created, live or destroyed; never destructed, so LeakSanitizer (which runs after
// the static destructors) still sees the streams reachable.
std::vector<CUstream_st *> &g_streams = *new std::vector<CUstream_st *>();
}  // namespace

bool cuemu::detail::stream_usable(cudaStream_t stream) {
    if (stream == 0 || stream == cudaStreamLegacy || stream == cudaStreamPerThread) return true;
    std::lock_guard<std::mutex> lk(g_streams_mu);
    for (CUstream_st *s : g_streams)
        if (s == stream) return s->live;
    return false;
}
using cuemu::detail::stream_usable;
struct CUevent_st {
    std::chrono::steady_clock::time_point t;
    bool recorded;
};

// ---- errors ----------------------------------------------------------------------------------

cudaError_t cudaGetLastError(void) {
    cudaError_t e = cuemu::detail::tl_last_error;
    cuemu::detail::tl_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return cuemu::detail::tl_last_error; }

const char *cudaGetErrorName(cudaError_t error) {
    switch (error) {
#define QT_CUEMU_ERR(e) \
    case e: return #e;
        QT_CUEMU_ERR(cudaSuccess)
        QT_CUEMU_ERR(cudaErrorInvalidValue)
        QT_CUEMU_ERR(cudaErrorMemoryAllocation)
        QT_CUEMU_ERR(cudaErrorInvalidConfiguration)
        QT_CUEMU_ERR(cudaErrorInvalidDevice)
        QT_CUEMU_ERR(cudaErrorInvalidDevicePointer)
        QT_CUEMU_ERR(cudaErrorInvalidMemcpyDirection)
        QT_CUEMU_ERR(cudaErrorInvalidResourceHandle)
        QT_CUEMU_ERR(cudaErrorNotSupported)
        QT_CUEMU_ERR(cudaErrorInvalidDeviceFunction)
#undef QT_CUEMU_ERR
        default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidDevicePointer: return "invalid device pointer";
        case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotSupported: return "operation not supported (by the cuemu emulator)";
        case cudaErrorInvalidDeviceFunction: return "invalid device function";
        default: return "unrecognized error code";
    }
}

// ---- device ----------------------------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int *count) {
    if (!count) return set_last_error(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    return device == 0 ? cudaSuccess : set_last_error(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int *device) {
    if (!device) return set_last_error(cudaErrorInvalidValue);
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaDeviceReset(void) { return cudaSuccess; }

cudaError_t cudaDriverGetVersion(int *v) {
    if (!v) return set_last_error(cudaErrorInvalidValue);
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v) {
    if (!v) return set_last_error(cudaErrorInvalidValue);
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    using namespace cuemu::detail;
    if (!prop) return set_last_error(cudaErrorInvalidValue);
    if (device != 0) return set_last_error(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "cuemu (CPU emulation of sm_%d%d)", k_cc_major,
             k_cc_minor);
    prop->totalGlobalMem = physical_memory();
    prop->sharedMemPerBlock = k_smem_default;
    prop->sharedMemPerBlockOptin = k_smem_optin;
    prop->sharedMemPerMultiprocessor = k_smem_per_sm;
    prop->regsPerBlock = 65536;
    prop->regsPerMultiprocessor = 65536;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = k_max_threads_per_block;
    prop->maxThreadsDim[0] = k_max_block_x;
    prop->maxThreadsDim[1] = k_max_block_y;
    prop->maxThreadsDim[2] = k_max_block_z;
    prop->maxGridSize[0] = static_cast<int>(k_max_grid_x);
    prop->maxGridSize[1] = static_cast<int>(k_max_grid_y);
    prop->maxGridSize[2] = static_cast<int>(k_max_grid_z);
    prop->totalConstMem = 65536;
    prop->major = k_cc_major;
    prop->minor = k_cc_minor;
    int workers = cuemu::num_workers();
    prop->multiProcessorCount = workers > 0 ? workers : 1;
    prop->maxThreadsPerMultiProcessor = k_max_threads_per_sm;
    prop->maxBlocksPerMultiProcessor = k_max_blocks_per_sm;
    prop->l2CacheSize = 40 << 20;
    prop->unifiedAddressing = 1;
    prop->managedMemory = 1;
    prop->concurrentKernels = 1;
    prop->memoryBusWidth = 5120;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
    using namespace cuemu::detail;
    if (!value) return set_last_error(cudaErrorInvalidValue);
    if (device != 0) return set_last_error(cudaErrorInvalidDevice);
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock: *value = k_max_threads_per_block; break;
        case cudaDevAttrMaxBlockDimX: *value = k_max_block_x; break;
        case cudaDevAttrMaxBlockDimY: *value = k_max_block_y; break;
        case cudaDevAttrMaxBlockDimZ: *value = k_max_block_z; break;
        case cudaDevAttrMaxGridDimX: *value = static_cast<int>(k_max_grid_x); break;
        case cudaDevAttrMaxGridDimY: *value = static_cast<int>(k_max_grid_y); break;
        case cudaDevAttrMaxGridDimZ: *value = static_cast<int>(k_max_grid_z); break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = k_smem_default; break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = k_smem_optin; break;
        case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = k_smem_per_sm; break;
        case cudaDevAttrWarpSize: *value = 32; break;
        case cudaDevAttrMultiProcessorCount: {
            int w = cuemu::num_workers();
            *value = w > 0 ? w : 1;
            break;
        }
        case cudaDevAttrComputeCapabilityMajor: *value = k_cc_major; break;
        case cudaDevAttrComputeCapabilityMinor: *value = k_cc_minor; break;
        case cudaDevAttrMaxThreadsPerMultiProcessor: *value = k_max_threads_per_sm; break;
        case cudaDevAttrL2CacheSize: *value = 40 << 20; break;
        default: return set_last_error(cudaErrorNotSupported);
    }
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    if (!free_bytes || !total) return set_last_error(cudaErrorInvalidValue);
    *total = cuemu::detail::physical_memory();
    long avail = sysconf(_SC_AVPHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
    *free_bytes = avail > 0 && ps > 0 ? static_cast<size_t>(avail) * static_cast<size_t>(ps) : *total;
    return cudaSuccess;
}

// ---- functions -------------------------------------------------------------------------------

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
    using namespace cuemu::detail;
    if (!func) return set_last_error(cudaErrorInvalidDeviceFunction);
    switch (attr) {
        case cudaFuncAttributeMaxDynamicSharedMemorySize: {
            if (value < 0 || value > k_smem_optin) return set_last_error(cudaErrorInvalidValue);
            std::lock_guard<std::mutex> lk(g_func_mutex);
            g_func_smem[func] = value;
            return cudaSuccess;
        }
        case cudaFuncAttributePreferredSharedMemoryCarveout:
            return value >= -1 && value <= 100 ? cudaSuccess : set_last_error(cudaErrorInvalidValue);
        default: return set_last_error(cudaErrorNotSupported);
    }
}

cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *func) {
    if (!attr || !func) return set_last_error(cudaErrorInvalidValue);
    memset(attr, 0, sizeof *attr);
    attr->maxThreadsPerBlock = cuemu::detail::k_max_threads_per_block;
    attr->maxDynamicSharedSizeBytes = cuemu::detail::func_max_dynamic_smem(func);
    attr->ptxVersion = cuemu::detail::k_cc_major * 10 + cuemu::detail::k_cc_minor;
    attr->binaryVersion = attr->ptxVersion;
    return cudaSuccess;
}

cudaError_t cudaFuncSetCacheConfig(const void *func, enum cudaFuncCache config) {
    (void)config;
    return func ? cudaSuccess : set_last_error(cudaErrorInvalidDeviceFunction);
}

// Occupancy from the thread, block and shared-memory limits only (registers are unknown).
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *num_blocks, const void *func,
                                                          int block_size, size_t smem) {
    using namespace cuemu::detail;
    if (!num_blocks || !func || block_size <= 0 || block_size > k_max_threads_per_block)
        return set_last_error(cudaErrorInvalidValue);
    int n = k_max_threads_per_sm / block_size;
    if (n > k_max_blocks_per_sm) n = k_max_blocks_per_sm;
    if (smem > 0 && static_cast<int>(k_smem_per_sm / smem) < n) n = static_cast<int>(k_smem_per_sm / smem);
    *num_blocks = n;
    return cudaSuccess;
}

// ---- memory ----------------------------------------------------------------------------------

cudaError_t cudaMalloc(void **ptr, size_t size) {
    if (!ptr) return set_last_error(cudaErrorInvalidValue);
    *ptr = nullptr;
    if (size == 0) return cudaSuccess;
    void *p = nullptr;
    if (posix_memalign(&p, 256, size) != 0) return set_last_error(cudaErrorMemoryAllocation);
    memset(p, 0xff, size);
    {
        std::lock_guard<std::mutex> lk(cuemu::detail::g_mem_mutex);
        cuemu::detail::g_allocs[cuemu::detail::alloc_key(p)] = size;
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaMallocManaged(void **ptr, size_t size, unsigned int flags) {
    (void)flags;
    return cudaMalloc(ptr, size);
}

cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lk(cuemu::detail::g_mem_mutex);
        auto it = cuemu::detail::g_allocs.find(cuemu::detail::alloc_key(ptr));
        if (it != cuemu::detail::g_allocs.end() && (it->first << 1) != reinterpret_cast<uintptr_t>(ptr))
            it = cuemu::detail::g_allocs.end();
        if (it == cuemu::detail::g_allocs.end()) return set_last_error(cudaErrorInvalidValue);
        cuemu::detail::g_allocs.erase(it);
    }
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t size) {
    if (!ptr) return set_last_error(cudaErrorInvalidValue);
    *ptr = nullptr;
    if (size == 0) return cudaSuccess;
    if (posix_memalign(ptr, 256, size) != 0) return set_last_error(cudaErrorMemoryAllocation);
    return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags) {
    (void)flags;
    return cudaMallocHost(ptr, size);
}

cudaError_t cudaFreeHost(void *ptr) {
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    cudaError_t e = cuemu::detail::check_copy(dst, src, count, kind);
    if (e != cudaSuccess) return set_last_error(e);
    if (count) memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
    if (!stream_usable(stream)) return set_last_error(cudaErrorInvalidResourceHandle);
    return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void *ptr, int value, size_t count) {
    if (count == 0) return cudaSuccess;
    if (!cuemu::detail::device_range(ptr, count)) return set_last_error(cudaErrorInvalidValue);
    memset(ptr, value, count);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream) {
    if (!stream_usable(stream)) return set_last_error(cudaErrorInvalidResourceHandle);
    return cudaMemset(ptr, value, count);
}

// Symbols (__device__ / __constant__ variables) are ordinary globals in the emulator.
cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src, size_t count, size_t offset,
                               enum cudaMemcpyKind kind) {
    if (!symbol || (!src && count)) return set_last_error(cudaErrorInvalidValue);
    if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost)
        return set_last_error(cudaErrorInvalidMemcpyDirection);
    if (count) memcpy(static_cast<char *>(const_cast<void *>(symbol)) + offset, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyFromSymbol(void *dst, const void *symbol, size_t count, size_t offset,
                                 enum cudaMemcpyKind kind) {
    if (!symbol || (!dst && count)) return set_last_error(cudaErrorInvalidValue);
    if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost)
        return set_last_error(cudaErrorInvalidMemcpyDirection);
    if (count) memcpy(dst, static_cast<const char *>(symbol) + offset, count);
    return cudaSuccess;
}

cudaError_t cudaGetSymbolAddress(void **dev_ptr, const void *symbol) {
    if (!dev_ptr || !symbol) return set_last_error(cudaErrorInvalidValue);
    *dev_ptr = const_cast<void *>(symbol);
    return cudaSuccess;
}

// ---- streams and events (every operation completes before it returns) ----------------------

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    if (!stream) return set_last_error(cudaErrorInvalidValue);
    CUstream_st *s = new CUstream_st{true};
    std::lock_guard<std::mutex> lk(g_streams_mu);
    g_streams.push_back(s);
    *stream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    (void)flags;
    return cudaStreamCreate(stream);
}

cudaError_t cudaStreamCreateWithPriority(cudaStream_t *stream, unsigned int flags, int priority) {
    (void)flags;
    (void)priority;
    return cudaStreamCreate(stream);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream || !stream_usable(stream)) return set_last_error(cudaErrorInvalidResourceHandle);
    std::lock_guard<std::mutex> lk(g_streams_mu);
    stream->live = false;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    return stream_usable(stream) ? cudaSuccess : set_last_error(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    return stream_usable(stream) ? cudaSuccess : set_last_error(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
    (void)flags;
    return event && stream_usable(stream) ? cudaSuccess
                                          : set_last_error(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    if (!event) return set_last_error(cudaErrorInvalidValue);
    *event = new CUevent_st{std::chrono::steady_clock::now(), false};
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
    (void)flags;
    return cudaEventCreate(event);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    if (!event || !stream_usable(stream)) return set_last_error(cudaErrorInvalidResourceHandle);
    event->t = std::chrono::steady_clock::now();
    event->recorded = true;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    return event ? cudaSuccess : set_last_error(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    return event ? cudaSuccess : set_last_error(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    if (!ms) return set_last_error(cudaErrorInvalidValue);
    if (!start || !end || !start->recorded || !end->recorded)
        return set_last_error(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    if (!event) return set_last_error(cudaErrorInvalidResourceHandle);
    delete event;
    return cudaSuccess;
}

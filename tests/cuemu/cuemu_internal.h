// cuemu_internal.h: what the emulator's runtime files share (not for kernels).
#ifndef QTRAIN_CUEMU_INTERNAL_H
#define QTRAIN_CUEMU_INTERNAL_H

#include "cuemu.h"

// The sanitizer this runtime library is built for. The TSan runtime is compiled without
// -fsanitize=thread (its bookkeeping is not the kernels' memory) and says so with
// QT_CUEMU_RUNTIME_TSAN; the ASan runtime is compiled with ASan.
#if defined(QT_CUEMU_RUNTIME_TSAN)
#define QT_CUEMU_RUNTIME_MODE QT_CUEMU_MODE_TSAN
#else
#define QT_CUEMU_RUNTIME_MODE QT_CUEMU_MODE
#endif

namespace cuemu {
namespace detail {

// The emulated device: an sm_80 part (A100), the project's target.
constexpr int k_cc_major = 8;
constexpr int k_cc_minor = 0;
constexpr int k_max_threads_per_block = 1024;
constexpr int k_max_block_x = 1024, k_max_block_y = 1024, k_max_block_z = 64;
constexpr unsigned k_max_grid_x = 2147483647u, k_max_grid_y = 65535u, k_max_grid_z = 65535u;
constexpr int k_smem_default = 48 * 1024;    // dynamic shared memory without opt-in
constexpr int k_smem_optin = 163 * 1024;     // sm_80 per-block maximum with opt-in
constexpr int k_smem_per_sm = 164 * 1024;
constexpr int k_max_threads_per_sm = 2048;
constexpr int k_max_blocks_per_sm = 32;

// Records err as the calling host thread's last error (cudaGetLastError) and returns it.
cudaError_t set_last_error(cudaError_t err);

// 1 when `stream` may be used: the default stream (0, cudaStreamLegacy, cudaStreamPerThread) or
// one cudaStreamCreate made and cudaStreamDestroy has not destroyed. On a GPU a destroyed
// stream's handle is invalid (CUDA reports it, e.g. "context is destroyed", or worse); the
// emulator refuses it with cudaErrorInvalidResourceHandle so the same bug fails on the CPU.
bool stream_usable(cudaStream_t stream);

// The dynamic shared memory limit set with cudaFuncSetAttribute for `func`, or the default.
int func_max_dynamic_smem(const void *func);

}  // namespace detail
}  // namespace cuemu

#endif

// bench_cuemu.cpp: how fast the emulator runs kernels (not a test: prints, asserts nothing).
//
//   cuemu_bench [rows cols]      default 1024 1024
// Prints, for the row-softmax block reduction of kernels_test/reduce.cu at several block sizes
// and for barrier / shuffle loops: wall and CPU time, fiber switches and ns per switch, with the
// worker count (QT_CUEMU_THREADS) and the context switch used (asm or ucontext).
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuemu.h"
#include "cuemu_test_kernels.h"

extern "C" cudaError_t cuemu_bench_loop(int kind, int blocks, int threads, int iters, int *out);

namespace {

double cpu_ms() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

template <class F>
void timed(const char *what, F f) {
    double best_wall = 1e30, best_cpu = 0;
    unsigned long long sw = 0;
    for (int rep = 0; rep < 5; rep++) {
        unsigned long long s0 = cuemu::switch_count();
        double c0 = cpu_ms();
        auto t0 = std::chrono::steady_clock::now();
        cudaError_t e = f();
        double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        double cpu = cpu_ms() - c0;
        if (e != cudaSuccess) {
            printf("%s: %s\n", what, cudaGetErrorString(e));
            exit(1);
        }
        if (wall < best_wall) {
            best_wall = wall;
            best_cpu = cpu;
            sw = cuemu::switch_count() - s0;
        }
    }
    printf("%-44s wall %8.1f ms  cpu %8.1f ms  switches %9llu  %5.1f ns cpu/switch\n", what, best_wall,
           best_cpu, sw, sw ? best_cpu * 1e6 / static_cast<double>(sw) : 0.0);
}

}  // namespace

int main(int argc, char **argv) {
    const int rows = argc > 2 ? atoi(argv[1]) : 1024, cols = argc > 2 ? atoi(argv[2]) : 1024;
    std::vector<float> h(static_cast<size_t>(rows) * cols);
    for (size_t i = 0; i < h.size(); i++) h[i] = static_cast<float>((i * 37) % 101) / 17.0f;
    float *x = nullptr, *y = nullptr;
    int *scratch = nullptr;
    if (cudaMalloc(reinterpret_cast<void **>(&x), h.size() * 4) != cudaSuccess ||
        cudaMalloc(reinterpret_cast<void **>(&y), h.size() * 4) != cudaSuccess ||
        cudaMalloc(reinterpret_cast<void **>(&scratch), 4) != cudaSuccess)
        return 1;
    cudaMemcpy(x, h.data(), h.size() * 4, cudaMemcpyHostToDevice);
    (void)cuemu_test_empty(dim3(1), dim3(1), 0);  // start the workers
    printf("cuemu: %d workers, %s context switch\n", cuemu::num_workers(), cuemu::context_kind());
    const int block_sizes[] = {128, 256, 1024};
    for (int threads : block_sizes) {
        char what[96];
        snprintf(what, sizeof what, "softmax_rows %dx%d, %d threads/block", rows, cols, threads);
        timed(what, [&] { return cuemu_test_softmax_rows(x, y, rows, cols, threads); });
    }
    timed("__syncthreads loop, 64 blocks x 256 x 1000", [&] { return cuemu_bench_loop(0, 64, 256, 1000, scratch); });
    timed("__shfl_xor_sync loop, 64 blocks x 256 x 1000", [&] { return cuemu_bench_loop(1, 64, 256, 1000, scratch); });
    cudaFree(x);
    cudaFree(y);
    cudaFree(scratch);
    return 0;
}

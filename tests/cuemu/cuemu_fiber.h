// cuemu_fiber.h: the execution contexts the emulator switches between (one per CUDA thread).
//
// Two implementations behind one interface:
//   - x86-64: a hand-written switch that saves only what the System V ABI says a callee must
//     preserve (rbx, rbp, r12-r15, rsp, the MXCSR control bits and the x87 control word). It
//     makes no system call, unlike glibc swapcontext, which saves the signal mask with
//     rt_sigprocmask at every switch (about 10x slower).
//   - everything else, or -DQT_CUEMU_UCONTEXT=1: makecontext/swapcontext.
//
// A context is prepared once per CUDA thread per block with cuemu_ctx_make() and entered with
// cuemu_ctx_swap(); the entry function must never return (it switches away for good instead).
#ifndef QTRAIN_CUEMU_FIBER_H
#define QTRAIN_CUEMU_FIBER_H

#include <cstddef>

#if !defined(QT_CUEMU_UCONTEXT)
#if defined(__x86_64__)
#define QT_CUEMU_UCONTEXT 0
#else
#define QT_CUEMU_UCONTEXT 1
#endif
#endif

#if QT_CUEMU_UCONTEXT
#include <ucontext.h>
#endif

namespace cuemu {
namespace detail {

struct exec_context {
#if QT_CUEMU_UCONTEXT
    ucontext_t uc;
#else
    void *sp;  // saved stack pointer; the registers live on the stack below it
#endif
};

// Prepares `c` to run entry(arg) on the stack [stack_lo, stack_lo + stack_size) at the next
// cuemu_ctx_swap() into it. The stack top is aligned so that entry() starts with
// rsp % 16 == 8, as after a call (clang-built code crashes otherwise).
void cuemu_ctx_make(exec_context *c, char *stack_lo, size_t stack_size, void (*entry)(void *),
                    void *arg);

// Saves the running context into `from` and resumes `to`.
void cuemu_ctx_swap(exec_context *from, exec_context *to);

// "asm" or "ucontext": which implementation this build uses (reported by the benchmark).
const char *cuemu_ctx_kind();

}  // namespace detail
}  // namespace cuemu

#endif

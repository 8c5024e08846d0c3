// cuemu_fiber.cpp: context switch for the emulator's fibers (see cuemu_fiber.h).
#include "cuemu_fiber.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace cuemu {
namespace detail {

#if !QT_CUEMU_UCONTEXT

// cuemu_asm_swap(void **save_sp, void *load_sp)
//   Pushes the callee-saved registers and the FP control state on the current stack, stores
//   rsp in *save_sp, loads load_sp and pops the same frame from there. The frame, from low to
//   high addresses: [mxcsr:4 | x87 cw:2 | pad:2] r15 r14 r13 r12 rbx rbp <return address>.
// cuemu_asm_start
//   First "return address" of a new context: calls r12(rbx) with rsp 16-byte aligned before
//   the call. Its CFI marks the return address undefined so unwinders stop here.
extern "C" void cuemu_asm_swap(void **save_sp, void *load_sp);
extern "C" void cuemu_asm_start(void);

__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl cuemu_asm_swap\n"
    ".hidden cuemu_asm_swap\n"
    ".type cuemu_asm_swap, @function\n"
    "cuemu_asm_swap:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size cuemu_asm_swap, .-cuemu_asm_swap\n"
    "\n"
    ".p2align 4\n"
    ".globl cuemu_asm_start\n"
    ".hidden cuemu_asm_start\n"
    ".type cuemu_asm_start, @function\n"
    "cuemu_asm_start:\n"
    "    .cfi_startproc\n"
    "    .cfi_undefined rip\n"
    "    movq %rbx, %rdi\n"
    "    callq *%r12\n"
    "    ud2\n"
    "    .cfi_endproc\n"
    ".size cuemu_asm_start, .-cuemu_asm_start\n");

void cuemu_ctx_make(exec_context *c, char *stack_lo, size_t stack_size, void (*entry)(void *),
                    void *arg) {
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack_lo) + stack_size) & ~static_cast<uintptr_t>(15);
    uint64_t *frame = reinterpret_cast<uint64_t *>(top - 80);
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    uint64_t csr = static_cast<uint64_t>(mxcsr) | (static_cast<uint64_t>(fpucw) << 32);
    frame[0] = csr;                                            // FP control state
    frame[1] = 0;                                              // r15
    frame[2] = 0;                                              // r14
    frame[3] = 0;                                              // r13
    frame[4] = reinterpret_cast<uint64_t>(entry);              // r12
    frame[5] = reinterpret_cast<uint64_t>(arg);                // rbx
    frame[6] = 0;                                              // rbp (ends frame-pointer walks)
    frame[7] = reinterpret_cast<uint64_t>(&cuemu_asm_start);   // at top-24: popped by ret
    frame[8] = 0;                                              // top-16: rsp here at the call
    frame[9] = 0;                                              // top-8
    c->sp = frame;
}

void cuemu_ctx_swap(exec_context *from, exec_context *to) { cuemu_asm_swap(&from->sp, to->sp); }

const char *cuemu_ctx_kind() { return "asm"; }

#else  // QT_CUEMU_UCONTEXT

// makecontext passes int arguments only: the entry and its argument travel as 32-bit halves.
static void ucontext_start(unsigned e_lo, unsigned e_hi, unsigned a_lo, unsigned a_hi) {
    uintptr_t e = static_cast<uintptr_t>(e_lo) | (static_cast<uintptr_t>(e_hi) << 16 << 16);
    uintptr_t a = static_cast<uintptr_t>(a_lo) | (static_cast<uintptr_t>(a_hi) << 16 << 16);
    reinterpret_cast<void (*)(void *)>(e)(reinterpret_cast<void *>(a));
    abort();  // entries never return
}

void cuemu_ctx_make(exec_context *c, char *stack_lo, size_t stack_size, void (*entry)(void *),
                    void *arg) {
    if (getcontext(&c->uc) != 0) abort();
    c->uc.uc_stack.ss_sp = stack_lo;
    c->uc.uc_stack.ss_size = stack_size;
    c->uc.uc_link = nullptr;
    uintptr_t e = reinterpret_cast<uintptr_t>(entry), a = reinterpret_cast<uintptr_t>(arg);
    makecontext(&c->uc, reinterpret_cast<void (*)()>(ucontext_start), 4,
                static_cast<unsigned>(e), static_cast<unsigned>(e >> 16 >> 16),
                static_cast<unsigned>(a), static_cast<unsigned>(a >> 16 >> 16));
}

void cuemu_ctx_swap(exec_context *from, exec_context *to) {
    if (swapcontext(&from->uc, &to->uc) != 0) abort();
}

const char *cuemu_ctx_kind() { return "ucontext"; }

#endif

}  // namespace detail
}  // namespace cuemu

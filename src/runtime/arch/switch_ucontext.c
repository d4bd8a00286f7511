/*
 * Portable fallback context switch on ucontext.  swapcontext() also saves the
 * signal mask with a system call, which makes it far slower than the assembly
 * backends; it exists for architectures without one.
 */
#include <stdint.h>

#include "runtime/arch/switch.h"

static void trampoline(unsigned fn_hi, unsigned fn_lo, unsigned arg_hi, unsigned arg_lo)
{
    /* makecontext passes int arguments only, so pointers travel in halves. */
    void (*fn)(void *) = (void (*)(void *))(((uintptr_t)fn_hi << 32) | fn_lo);
    void *arg = (void *)(((uintptr_t)arg_hi << 32) | arg_lo);
    fn(arg);
    __builtin_trap();
}

void arpc__ctx_make(arpc__ctx *ctx, void *stack_lo, size_t size, void (*fn)(void *), void *arg)
{
    uintptr_t f = (uintptr_t)fn;
    uintptr_t a = (uintptr_t)arg;
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = stack_lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))trampoline, 4, (unsigned)(f >> 32), (unsigned)f,
                (unsigned)(a >> 32), (unsigned)a);
}

void arpc__ctx_switch(arpc__ctx *from, arpc__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}

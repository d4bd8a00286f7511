/*
 * Portable fallback context switch on ucontext.  swapcontext() also saves the
 * signal mask with a system call, which makes it far slower than the assembly
 * backends; it exists for architectures without one.
 *
 * A context is a pointer to a ucontext_t (see switch.h).  A suspended
 * context's ucontext_t lives in the frame of the arpc__ctx_switch() call that
 * suspended it, which stays alive exactly as long as the context is
 * suspended; a fresh context's lives at the top of its own stack, above the
 * part handed to makecontext(), and is dead once the context first runs.
 */
#include <stdint.h>
#include <ucontext.h>

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
    uintptr_t top = ((uintptr_t)stack_lo + size - sizeof(ucontext_t)) & ~(uintptr_t)63;
    ucontext_t *uc = (ucontext_t *)top;
    getcontext(uc);
    uc->uc_stack.ss_sp = stack_lo;
    uc->uc_stack.ss_size = (size_t)(top - (uintptr_t)stack_lo);
    uc->uc_link = NULL;
    makecontext(uc, (void (*)(void))trampoline, 4, (unsigned)(f >> 32), (unsigned)f,
                (unsigned)(a >> 32), (unsigned)a);
    ctx->sp = uc;
}

void arpc__ctx_switch(arpc__ctx *from, arpc__ctx *to)
{
    ucontext_t here;
    /* ASan's swapcontext interceptor clears the shadow of the target's
     * uc_stack; a resumed context must not name a stale or random range. */
    here.uc_stack.ss_sp = NULL;
    here.uc_stack.ss_size = 0;
    here.uc_stack.ss_flags = 0;
    from->sp = &here;
    swapcontext(&here, to->sp);
}

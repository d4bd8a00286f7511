/*
 * The one platform interface for context switching.  Each backend
 * (switch_x86_64.S, switch_aarch64.S, switch_ucontext.c) implements these two
 * functions, and CMake compiles exactly one of them.
 */
#ifndef ARPC_RUNTIME_ARCH_SWITCH_H
#define ARPC_RUNTIME_ARCH_SWITCH_H

#include <stddef.h>

#ifdef ARPC_CORO_UCONTEXT
#include <ucontext.h>
typedef struct arpc__ctx {
    ucontext_t uc;
} arpc__ctx;
#else
/* The assembly backends keep every callee-saved register on the suspended
 * stack, so a context is just that stack's pointer. */
typedef struct arpc__ctx {
    void *sp;
} arpc__ctx;
#endif

/* Prepares `ctx` so that the first switch to it calls `fn(arg)` on the stack
 * [stack_lo, stack_lo + size).  `fn` must never return. */
void arpc__ctx_make(arpc__ctx *ctx, void *stack_lo, size_t size, void (*fn)(void *), void *arg);

/* Saves the current context in `from` and resumes `to`. */
void arpc__ctx_switch(arpc__ctx *from, arpc__ctx *to);

#endif

/*
 * The one platform interface for context switching.  Each backend
 * (switch_x86_64.S, switch_aarch64.S, switch_ucontext.c) implements these two
 * functions, and CMake compiles exactly one of them.
 */
#ifndef ARPC_RUNTIME_ARCH_SWITCH_H
#define ARPC_RUNTIME_ARCH_SWITCH_H

#include <stddef.h>

/* Every backend keeps the saved state on the suspended stack itself (the
 * assembly backends push the callee-saved registers, the ucontext backend
 * keeps its ucontext_t in the suspended call's frame), so a context is just a
 * pointer into that stack.  The layout is therefore the same for every
 * backend, and no translation unit needs to know which one was compiled. */
typedef struct arpc__ctx {
    void *sp;
} arpc__ctx;

/* Prepares `ctx` so that the first switch to it calls `fn(arg)` on the stack
 * [stack_lo, stack_lo + size).  `fn` must never return. */
void arpc__ctx_make(arpc__ctx *ctx, void *stack_lo, size_t size, void (*fn)(void *), void *arg);

/* Saves the current context in `from` and resumes `to`. */
void arpc__ctx_switch(arpc__ctx *from, arpc__ctx *to);

#endif

/*
 * Context switch for x86-64 (System V ABI).  A suspended context is its stack
 * pointer; the stack holds, from low to high: MXCSR and the x87 control word
 * (8 bytes), r15, r14, r13, r12, rbx, rbp, return address.  These are exactly
 * the registers the ABI makes callee-saved, so nothing else needs saving.
 */
    .text

/* void arpc__ctx_switch(arpc__ctx *from = rdi, arpc__ctx *to = rsi) */
    .globl  arpc__ctx_switch
    .hidden arpc__ctx_switch
    .type   arpc__ctx_switch, @function
    .p2align 4
arpc__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   arpc__ctx_switch, .-arpc__ctx_switch

/* void arpc__ctx_make(arpc__ctx *ctx = rdi, void *stack_lo = rsi, size_t size = rdx,
 *                     void (*fn)(void *) = rcx, void *arg = r8)
 * Builds a frame that arpc__ctx_switch pops: r12 = arg, r13 = fn, and the
 * return address is the trampoline.  After that `ret`, rsp is 16-byte
 * aligned, as the trampoline's `call` requires. */
    .globl  arpc__ctx_make
    .hidden arpc__ctx_make
    .type   arpc__ctx_make, @function
    .p2align 4
arpc__ctx_make:
    .cfi_startproc
    leaq    (%rsi,%rdx), %rax
    andq    $-16, %rax
    subq    $64, %rax
    leaq    arpc_ctx_trampoline(%rip), %r9
    movq    %r9, 56(%rax)
    movq    $0, 48(%rax)
    movq    $0, 40(%rax)
    movq    %r8, 32(%rax)
    movq    %rcx, 24(%rax)
    movq    $0, 16(%rax)
    movq    $0, 8(%rax)
    stmxcsr (%rax)
    fnstcw  4(%rax)
    movq    %rax, (%rdi)
    ret
    .cfi_endproc
    .size   arpc__ctx_make, .-arpc__ctx_make

    .type   arpc_ctx_trampoline, @function
    .p2align 4
arpc_ctx_trampoline:
    .cfi_startproc
    /* The outermost frame of a coroutine: stop unwinders here. */
    .cfi_undefined rip
    movq    %r12, %rdi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   arpc_ctx_trampoline, .-arpc_ctx_trampoline

    .section .note.GNU-stack,"",%progbits

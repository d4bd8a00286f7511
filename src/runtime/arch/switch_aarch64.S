/*
 * Context switch for AArch64 (AAPCS64).  A suspended context is its stack
 * pointer; the 176-byte frame holds, from low to high: x19..x28, x29 (fp),
 * x30 (lr), d8..d15 and FPCR (plus 8 bytes of padding, so sp stays 16-byte
 * aligned).  These are the registers the ABI makes callee-saved: only the
 * low 64 bits of v8..v15 are, and FPCR's control fields (rounding mode,
 * flush-to-zero, default NaN) must survive a call, as MXCSR and the x87
 * control word do on x86-64.  FPSR holds only cumulative status flags and is
 * not saved.
 */
    .text

/* void arpc__ctx_switch(arpc__ctx *from = x0, arpc__ctx *to = x1) */
    .globl  arpc__ctx_switch
    .hidden arpc__ctx_switch
    .type   arpc__ctx_switch, %function
    .p2align 4
arpc__ctx_switch:
    .cfi_startproc
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]
    ldr     x9, [x1]
    mov     sp, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    /* Writing FPCR can be much slower than reading it on some cores, and the
     * two contexts almost always agree, so write only on a change. */
    ldr     x9, [sp, #160]
    mrs     x10, fpcr
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x9
1:
    add     sp, sp, #176
    ret
    .cfi_endproc
    .size   arpc__ctx_switch, .-arpc__ctx_switch

/* void arpc__ctx_make(arpc__ctx *ctx = x0, void *stack_lo = x1, size_t size = x2,
 *                     void (*fn)(void *) = x3, void *arg = x4)
 * The frame restores x19 = arg, x20 = fn, x29 = 0, x30 = the trampoline and
 * the caller's FPCR (as the x86-64 backend copies MXCSR and the x87 control
 * word).  After the switch pops it, sp is the 16-byte aligned stack top. */
    .globl  arpc__ctx_make
    .hidden arpc__ctx_make
    .type   arpc__ctx_make, %function
    .p2align 4
arpc__ctx_make:
    .cfi_startproc
    add     x9, x1, x2
    and     x9, x9, #~15
    sub     x9, x9, #176
    stp     x4, x3, [x9, #0]
    stp     xzr, xzr, [x9, #16]
    stp     xzr, xzr, [x9, #32]
    stp     xzr, xzr, [x9, #48]
    stp     xzr, xzr, [x9, #64]
    adr     x10, arpc_ctx_trampoline
    stp     xzr, x10, [x9, #80]
    stp     xzr, xzr, [x9, #96]
    stp     xzr, xzr, [x9, #112]
    stp     xzr, xzr, [x9, #128]
    stp     xzr, xzr, [x9, #144]
    mrs     x10, fpcr
    stp     x10, xzr, [x9, #160]
    str     x9, [x0]
    ret
    .cfi_endproc
    .size   arpc__ctx_make, .-arpc__ctx_make

    .type   arpc_ctx_trampoline, %function
    .p2align 4
arpc_ctx_trampoline:
    .cfi_startproc
    /* The outermost frame of a coroutine: stop unwinders here. */
    .cfi_undefined x30
    mov     x0, x19
    blr     x20
    brk     #0
    .cfi_endproc
    .size   arpc_ctx_trampoline, .-arpc_ctx_trampoline

    .section .note.GNU-stack,"",%progbits

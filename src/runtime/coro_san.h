/*
 * Sanitizer annotations for coroutine switches, in one place.  ASan must be
 * told which stack is live (or it reports false stack-buffer overflows and
 * loses track of fake stacks); TSan must be told which fiber runs (or it
 * mixes up the happens-before history of different coroutines).  In a normal
 * build every function here compiles to nothing.
 */
#ifndef ARPC_RUNTIME_CORO_SAN_H
#define ARPC_RUNTIME_CORO_SAN_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define ARPC__ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define ARPC__TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARPC__ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define ARPC__TSAN 1
#endif
#endif

#ifdef ARPC__ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
#endif
#ifdef ARPC__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* Before switching to the stack [bottom, bottom + size) of fiber `tsan_fiber`.
 * `fake_stack_save` is NULL when the current stack is about to die. */
static inline void arpc__san_switch_begin(void **fake_stack_save, const void *bottom, size_t size,
                                          void *tsan_fiber)
{
#ifdef ARPC__ASAN
    __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
    (void)fake_stack_save;
    (void)bottom;
    (void)size;
#endif
#ifdef ARPC__TSAN
    __tsan_switch_to_fiber(tsan_fiber, 0);
#else
    (void)tsan_fiber;
#endif
}

/* Right after a switch lands; reports the stack we came from. */
static inline void arpc__san_switch_end(void *fake_stack_save, const void **from_bottom,
                                        size_t *from_size)
{
#ifdef ARPC__ASAN
    __sanitizer_finish_switch_fiber(fake_stack_save, from_bottom, from_size);
#else
    (void)fake_stack_save;
    (void)from_bottom;
    (void)from_size;
#endif
}

static inline void *arpc__san_fiber_current(void)
{
#ifdef ARPC__TSAN
    return __tsan_get_current_fiber();
#else
    return NULL;
#endif
}

static inline void *arpc__san_fiber_create(void)
{
#ifdef ARPC__TSAN
    return __tsan_create_fiber(0);
#else
    return NULL;
#endif
}

static inline void arpc__san_fiber_destroy(void *fiber)
{
#ifdef ARPC__TSAN
    __tsan_destroy_fiber(fiber);
#else
    (void)fiber;
#endif
}

#endif

/*
 * Internal coroutine interface: the scheduler and the primitives that
 * suspend and resume coroutines.  A coroutine's struct lives at the top of its
 * own mmap'd stack, so spawning one from the pool allocates nothing.
 */
#ifndef ARPC_RUNTIME_CORO_H
#define ARPC_RUNTIME_CORO_H

#include <stdbool.h>
#include <stdint.h>

#include <arpc/coro.h>

#include "base/list.h"
#include "runtime/arch/switch.h"
#include "runtime/inbox.h"
#include "runtime/timer_heap.h"

typedef struct arpc_coro arpc_coro;

struct arpc_coro {
    arpc__ctx ctx;
    arpc_loop *loop;
    arpc__list link; /* in the loop's ready queue, or the stack pool */
    arpc_coro_fn fn;
    void *arg;
    void *stack_lo; /* usable stack: [stack_lo, stack_lo + stack_size) */
    size_t stack_size;
    void *map_base; /* the whole mapping, guard page included */
    size_t map_size;
    arpc__timer timer; /* deadline of the current park, if any */
    /* Its hand-off to its loop from another thread: the spawn, then the
     * wake-ups of the events it waits on (one at a time).  Never allocates. */
    arpc__task task;
    bool timed_out;
    bool finished;
    void *asan_fake_stack;
    void *tsan_fiber;
};

/* The running coroutine, or NULL on a plain thread or in the scheduler. */
arpc_coro *arpc__coro_self(void);

/* Suspends the running coroutine until arpc__coro_wake() (or, with a
 * deadline, until it passes).  The caller must have arranged to be woken.
 * @return 0 if woken, ARPC_ETIMEDOUT if the deadline passed first. */
int arpc__coro_park(int64_t deadline_ns);

/* Makes a parked coroutine of the calling thread's loop ready; a coroutine that
 * is already ready is left alone.  Loop thread only. */
void arpc__coro_wake(arpc_coro *coro);

/* Spawns `fn` on the calling thread's loop.  Called from the scheduler (not
 * inside a coroutine), it runs the coroutine at once, until it first parks or
 * ends, before returning; inside a coroutine it queues it like
 * arpc_coro_spawn.  @return 0 or ARPC_ENOMEM.  Loop thread only. */
int arpc__coro_spawn_run(arpc_loop *loop, arpc_coro_fn fn, void *user_data);

/* Test-only: true while a waiter (coroutine or thread) has registered on `ev`
 * and no signal has claimed it, so a signal now wakes it rather than being kept
 * for a later wait.  Thread: any. */
bool arpc__event_has_waiter(const arpc_event *ev);

/* Scheduler hooks used by the loop. */
void arpc__coro_run_ready(arpc_loop *loop);
void arpc__coro_pool_fini(arpc_loop *loop);

#endif

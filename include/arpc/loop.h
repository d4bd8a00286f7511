/**
 * An event loop: one thread, epoll, an fd -> handler table, a timer heap, a
 * coroutine scheduler and an MPSC inbox through which other threads hand it
 * work.  Everything that belongs to a loop is touched only on its thread.
 */
#ifndef ARPC_LOOP_H
#define ARPC_LOOP_H

#include <stddef.h>

#include <arpc/export.h>

ARPC_BEGIN_DECLS

typedef struct arpc_loop arpc_loop;

/** A unit of work handed to a loop; runs on the loop's thread. */
typedef void (*arpc_task_cb)(void *user_data);

typedef struct arpc_loop_opts {
    /** Slots of the lock-free inbox ring (rounded up to a power of two); when the
     *  ring is full, submissions spill to a locked overflow list, never lost. */
    size_t inbox_capacity;
    /** Usable stack bytes of each coroutine (rounded up to pages; default 128 KiB). */
    size_t coro_stack_size;
    /** Free stacks kept for reuse (default 1024). */
    size_t stack_pool_max;
    /** Busy polling: when the loop runs out of work it keeps polling without
     *  sleeping for up to this many microseconds (never past its next timer)
     *  before it blocks.  An answer that arrives within the window is seen
     *  without the kernel's wake-up of a sleeping thread, which on a loopback
     *  or LAN round trip is most of the latency; the price is up to this much
     *  CPU time after every burst of work, spent even if nothing arrives.
     *  Worth it on a loop that owns a core; harmful when loops share cores
     *  with other busy threads.  0 (the default) never spins. */
    unsigned busy_poll_us;
} arpc_loop_opts;

/** Fills `opts` with defaults.  Thread: any.  Suspends: no. */
ARPC_EXPORT void arpc_loop_opts_init(arpc_loop_opts *opts);

/**
 * Creates a loop that is not running yet.
 * @param opts  borrowed; NULL means defaults.
 * @param out   on success the loop, owned by the caller (arpc_loop_destroy()).
 * @return 0, ARPC_ENOMEM, ARPC_EINVAL or an OS error (-errno).
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_loop_create(const arpc_loop_opts *opts, arpc_loop **out);

/**
 * Starts a thread that runs the loop until arpc_loop_stop().
 * @return 0, ARPC_EINVAL (already running) or -errno from pthread_create.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_loop_start(arpc_loop *loop);

/**
 * Runs the loop on the calling thread until arpc_loop_stop().
 * @return 0 or ARPC_EINVAL (already running).
 * Thread: any thread that is not running another loop.  Blocks.
 */
ARPC_EXPORT int arpc_loop_run(arpc_loop *loop);

/**
 * Asks the loop to return after its current iteration.  Work still queued in
 * its inbox runs first; coroutines still parked stay parked.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT void arpc_loop_stop(arpc_loop *loop);

/**
 * Waits for the thread started by arpc_loop_start() to finish.
 * @return 0 or ARPC_EINVAL (not started with arpc_loop_start()).
 * Thread: any but the loop's own.  Blocks.
 */
ARPC_EXPORT int arpc_loop_join(arpc_loop *loop);

/**
 * Frees a stopped loop, its stacks and its timers.  NULL is a no-op.  A running
 * loop is stopped and joined first.
 * Thread: any but the loop's own.  Blocks until the loop thread ends.
 */
ARPC_EXPORT void arpc_loop_destroy(arpc_loop *loop);

/**
 * Queues `cb(user_data)` to run on the loop's thread, in order with the other
 * submissions of the same thread.  Wakes the loop only if it sleeps.  Never
 * runs `cb` inside this call.
 * @return 0, ARPC_ENOMEM (the ring is full and the overflow could not grow)
 *         or ARPC_ESTOPPED (the loop has been destroyed or stopped for good).
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_loop_submit(arpc_loop *loop, arpc_task_cb cb, void *user_data);

/** The loop running on the calling thread, or NULL.  Thread: any. */
ARPC_EXPORT arpc_loop *arpc_loop_current(void);

ARPC_END_DECLS

#endif

/**
 * An event loop: one thread, epoll, an fd -> handler table, a timer heap, a
 * coroutine scheduler and an MPSC inbox through which other threads hand it
 * work.  Everything that belongs to a loop is touched only on its thread.
 *
 * Blocking on a loop thread.  Code that runs on a loop thread outside a
 * coroutine (a task, an arpc_call_async() callback, a timer) must not block:
 * the loop would stall, and deadlock when the wait needs that loop.  So every
 * function that waits returns ARPC_ENOTCORO there at once instead (a wait
 * with timeout 0, which never blocks, is allowed), and the void teardown
 * functions that cannot wait there either continue the teardown in a
 * coroutine of that loop or refuse, as each documents.  Inside a coroutine
 * the same functions suspend only the coroutine.
 *
 * Stopping.  From the moment arpc_loop_stop() is called, submissions and
 * spawns on the loop return ARPC_ESTOPPED.  Everything accepted before runs
 * before arpc_loop_run() returns (on arpc_loop_destroy() for a loop that
 * never ran); nothing accepted is dropped.  Coroutines that are parked then
 * stay parked and never resume.
 */
#ifndef ARPC_LOOP_H
#define ARPC_LOOP_H

#include <stddef.h>

#include <arpc/export.h>

ARPC_BEGIN_DECLS

/**
 * Timeouts.  A wait (arpc_event_wait(), arpc_wg_wait(), the arpc_io_*
 * functions) takes `timeout_ms`: ARPC_WAIT_FOREVER (any negative value) has
 * no limit, 0 only tests (it never suspends), > 0 waits at most that long.
 * A call's deadline (arpc_call_opts.timeout_ms) is a different field with its
 * own sentinels: ARPC_TIMEOUT_DEFAULT (any negative value) takes the
 * channel's default_timeout_ms, ARPC_NO_DEADLINE (0) sets none.  Option
 * fields that enable a periodic check (heartbeat_interval_ms,
 * idle_timeout_ms) take 0 for "off".
 */
#define ARPC_WAIT_FOREVER    (-1)
#define ARPC_TIMEOUT_DEFAULT (-1)
#define ARPC_NO_DEADLINE     0

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
 * @return 0, ARPC_EINVAL (already started) or -errno from pthread_create.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_loop_start(arpc_loop *loop);

/**
 * Runs the loop on the calling thread until arpc_loop_stop(), then runs what
 * was accepted before the stop (see "Stopping") and returns.  A stopped loop
 * does not run again: a second arpc_loop_run() only finishes and returns.
 * @return 0 or ARPC_EINVAL (already running, or the thread runs another loop).
 * Thread: any thread that is not running a loop.  Blocks.
 */
ARPC_EXPORT int arpc_loop_run(arpc_loop *loop);

/**
 * Stops the loop for good: from this call on, arpc_loop_submit() and
 * arpc_coro_spawn() on it return ARPC_ESTOPPED; the loop returns after its
 * current iteration, once it has run every task accepted before (also those
 * that its own tasks queue meanwhile for internal hand-offs).  Coroutines
 * still parked stay parked.  Calling it again is harmless.
 * Thread: any, the loop's own included.  Suspends: no.
 */
ARPC_EXPORT void arpc_loop_stop(arpc_loop *loop);

/**
 * Waits for the thread started by arpc_loop_start() to finish.
 * @return 0 or ARPC_EINVAL (not started with arpc_loop_start(), already
 *         joined, or called on the loop's own thread, which cannot join itself).
 * Thread: any.  Blocks.
 */
ARPC_EXPORT int arpc_loop_join(arpc_loop *loop);

/**
 * Frees a loop, its stacks and its timers.  NULL is a no-op.  A running loop
 * is stopped and joined first; a loop that never ran runs the tasks it had
 * accepted first (when the caller is not a loop thread itself).  Called on the
 * loop's own thread (or in one of its coroutines) it cannot join itself: it
 * logs an error and returns without doing anything.
 * Thread: any (see above).  Blocks until the loop thread ends.
 */
ARPC_EXPORT void arpc_loop_destroy(arpc_loop *loop);

/**
 * Queues `cb(user_data)` to run on the loop's thread, in order with the other
 * submissions of the same thread.  Wakes the loop only if it sleeps.  Never
 * runs `cb` inside this call.  A task accepted (0) always runs, also if the
 * loop is stopped before it gets to it (see "Stopping").
 * @return 0 (cb will run exactly once), ARPC_EINVAL (NULL loop or cb),
 *         ARPC_ENOMEM (the ring is full and the overflow could not grow) or
 *         ARPC_ESTOPPED (arpc_loop_stop() was called); cb then never runs.
 * Thread: any, while the loop has not been destroyed.  Suspends: no.
 */
ARPC_EXPORT int arpc_loop_submit(arpc_loop *loop, arpc_task_cb cb, void *user_data);

/** The loop running on the calling thread, or NULL.  Thread: any. */
ARPC_EXPORT arpc_loop *arpc_loop_current(void);

ARPC_END_DECLS

#endif

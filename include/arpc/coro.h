/**
 * Stackful coroutines.  A coroutine runs on one loop for its whole life and
 * suspends only itself: sleeping, waiting for I/O, for an RPC answer or for an
 * event.  Stacks come from mmap with a guard page below them, so an overflow
 * is a clean crash, and are pooled per loop.
 *
 * The synchronisation types below live in caller storage (no allocation);
 * their size is fixed and their contents private.
 */
#ifndef ARPC_CORO_H
#define ARPC_CORO_H

#include <stdbool.h>
#include <stdint.h>

#include <arpc/export.h>
#include <arpc/loop.h>

ARPC_BEGIN_DECLS

/** The body of a coroutine; when it returns the coroutine ends. */
typedef void (*arpc_coro_fn)(void *user_data);

/**
 * Starts a coroutine running `fn(user_data)` on `loop`.  It first runs at the
 * loop's next scheduling point, never inside this call.  From another thread
 * the stack is mapped here and the coroutine handed over without further
 * allocation, so once this returns 0 the coroutine runs.
 * @return 0, ARPC_EINVAL (NULL loop or fn), ARPC_ENOMEM (no stack could be
 *         mapped) or ARPC_ESTOPPED (arpc_loop_stop() was called on `loop`).
 * Thread: any (from another thread it goes through the loop's inbox).
 * Suspends: no.
 */
ARPC_EXPORT int arpc_coro_spawn(arpc_loop *loop, arpc_coro_fn fn, void *user_data);

/** True when the caller runs inside an arpc coroutine.  Thread: any. */
ARPC_EXPORT bool arpc_coro_in(void);

/**
 * Lets the other ready coroutines and the loop's I/O run, then continues.
 * @return 0 or ARPC_ENOTCORO.
 * Thread: a coroutine.  Suspends: yes.
 */
ARPC_EXPORT int arpc_coro_yield(void);

/**
 * Suspends the coroutine for at least `ms` milliseconds (a negative `ms` is
 * 0).  On a plain thread it sleeps the thread instead.
 * @return 0, ARPC_ENOMEM (the loop's timer heap could not grow; the coroutine
 *         did not sleep) or ARPC_ENOTCORO (a loop thread outside a coroutine,
 *         which must not block; nothing slept).
 * Thread: any; on a loop thread only in a coroutine.  Suspends: yes.
 */
ARPC_EXPORT int arpc_coro_sleep_ms(int64_t ms);

/**
 * A binary event: one waiter at a time (a coroutine or a plain thread), any
 * number of signallers on any thread.  A signal with nobody waiting is kept
 * until the next wait consumes it.  This is the wait/wake primitive the RPC
 * layer's synchronous calls are built on.
 */
typedef struct arpc_event {
    uint64_t opaque_[4];
} arpc_event;

/** Prepares an event in caller storage (unsignalled).  Thread: any. */
ARPC_EXPORT void arpc_event_init(arpc_event *ev);

/**
 * Waits until the event is signalled, then consumes the signal.
 * @param timeout_ms  ARPC_WAIT_FOREVER (< 0) waits without limit; 0 only
 *                    consumes a pending signal.
 * @return 0, ARPC_ETIMEDOUT, or ARPC_ENOTCORO (a loop thread outside a
 *         coroutine with timeout_ms != 0: blocking would stall the loop).
 * Thread: any; inside a coroutine only that coroutine suspends.  Suspends: yes.
 */
ARPC_EXPORT int arpc_event_wait(arpc_event *ev, int64_t timeout_ms);

/**
 * Signals the event, waking its waiter if there is one.  The event may be
 * reused or freed by the waiter as soon as it wakes, so a signaller must not
 * touch `ev` after this call.  Never allocates and never fails; a waiting
 * coroutine whose loop has been stopped stays parked, as its loop's
 * coroutines all do.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT void arpc_event_signal(arpc_event *ev);

/**
 * A wait group: wait until `n` pieces of work, started anywhere, are done.
 * The typical fan-out: arpc_wg_init(&wg, n), start n calls or coroutines that
 * each end with arpc_wg_done(&wg), then arpc_wg_wait(&wg, -1).
 */
typedef struct arpc_wg {
    uint64_t opaque_[6];
} arpc_wg;

/** Prepares a wait group expecting `count` arpc_wg_done() calls.  Thread: any. */
ARPC_EXPORT void arpc_wg_init(arpc_wg *wg, int64_t count);

/** Expects `n` more arpc_wg_done() calls.  Thread: any.  Suspends: no. */
ARPC_EXPORT void arpc_wg_add(arpc_wg *wg, int64_t n);

/** Marks one piece of work done.  Thread: any.  Suspends: no. */
ARPC_EXPORT void arpc_wg_done(arpc_wg *wg);

/**
 * Waits until the count reaches zero (one waiter at a time).
 * @param timeout_ms  ARPC_WAIT_FOREVER (< 0) waits without limit; 0 only tests.
 * @return 0, ARPC_ETIMEDOUT, or ARPC_ENOTCORO (a loop thread outside a
 *         coroutine with timeout_ms != 0 and the count above zero).
 * Thread: any; inside a coroutine only that coroutine suspends.  Suspends: yes.
 */
ARPC_EXPORT int arpc_wg_wait(arpc_wg *wg, int64_t timeout_ms);

ARPC_END_DECLS

#endif

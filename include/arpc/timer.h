/**
 * One-shot timers on a loop's indexed min-heap: add and cancel in O(log n).
 * Timers are named by generation-tagged ids, so cancelling an id whose timer
 * already fired is safe and reports ARPC_EINVAL.
 */
#ifndef ARPC_TIMER_H
#define ARPC_TIMER_H

#include <stdint.h>

#include <arpc/export.h>
#include <arpc/loop.h>

ARPC_BEGIN_DECLS

typedef uint64_t arpc_timer_id;

typedef void (*arpc_timer_cb)(void *user_data);

/**
 * Calls `cb(user_data)` on the loop's thread once `delay_ms` milliseconds
 * have passed (never earlier).  Timers with the same deadline fire in the
 * order they were added.
 * @param out  on success the id for arpc_timer_cancel(); may be NULL.
 * @return 0, ARPC_EINVAL (delay_ms < 0) or ARPC_ENOMEM.
 * Thread: the loop's.  Suspends: no.
 */
ARPC_EXPORT int arpc_timer_add(arpc_loop *loop, int64_t delay_ms, arpc_timer_cb cb,
                               void *user_data, arpc_timer_id *out);

/**
 * Cancels a pending timer; its callback never runs.
 * @return 0, or ARPC_EINVAL if the timer already fired or was cancelled.
 * Thread: the loop's.  Suspends: no.
 */
ARPC_EXPORT int arpc_timer_cancel(arpc_loop *loop, arpc_timer_id id);

ARPC_END_DECLS

#endif

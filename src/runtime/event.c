/*
 * Design notes: arpc_event is the wait/wake primitive under synchronous calls
 * and wait groups.  Its state word moves between
 *   IDLE -> SIGNALLED            (signal with nobody waiting)
 *   IDLE -> WAITING              (a waiter parks)
 *   WAITING -> WAKING -> IDLE    (signal to a parked coroutine: the waker owns
 *                                 the hand-off until the coroutine resumes)
 *   WAITING -> SIGNALLED         (signal to a thread blocked in futex_wait)
 *   WAITING -> IDLE              (the waiter's deadline passed)
 * A coroutine whose deadline fires while a wake is in flight (WAKING) keeps
 * waiting for that wake, so its wake-up task never finds a coroutine that
 * has moved on.  Plain threads sleep on the state word with a futex.
 */
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <arpc/coro.h>
#include <arpc/err.h>

#include "base/assert.h"
#include "base/clock.h"
#include "runtime/coro.h"

enum { EV_IDLE = 0, EV_SIGNALLED = 1, EV_WAITING = 2, EV_WAKING = 3 };

typedef struct event_impl {
    _Atomic uint32_t state;
    arpc_coro *_Atomic waiter; /* NULL when the waiter is a plain thread */
} event_impl;

_Static_assert(sizeof(event_impl) <= sizeof(arpc_event), "arpc_event too small");

typedef struct wg_impl {
    _Atomic int64_t count;
    arpc_event done;
} wg_impl;

_Static_assert(sizeof(wg_impl) <= sizeof(arpc_wg), "arpc_wg too small");

static void futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline_ns)
{
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (deadline_ns != ARPC__NO_DEADLINE) {
        int64_t left = deadline_ns - arpc__now_ns();
        if (left <= 0)
            return;
        ts.tv_sec = left / 1000000000;
        ts.tv_nsec = left % 1000000000;
        tsp = &ts;
    }
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
}

static void futex_wake_one(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void arpc_event_init(arpc_event *ev)
{
    event_impl *e = (event_impl *)ev;
    atomic_init(&e->state, EV_IDLE);
    e->waiter = NULL;
}

static bool consume_signal(event_impl *e)
{
    uint32_t expected = EV_SIGNALLED;
    return atomic_compare_exchange_strong(&e->state, &expected, EV_IDLE);
}

static int wait_in_coroutine(event_impl *e, arpc_coro *self, int64_t deadline_ns)
{
    e->waiter = self;
    uint32_t expected = EV_IDLE;
    if (!atomic_compare_exchange_strong(&e->state, &expected, EV_WAITING)) {
        /* Signalled between the first check and now. */
        ARPC_CHECK(consume_signal(e));
        return 0;
    }
    for (;;) {
        int rc = arpc__coro_park(deadline_ns);
        if (atomic_load(&e->state) == EV_WAITING) {
            expected = EV_WAITING;
            if (rc == ARPC_ETIMEDOUT &&
                atomic_compare_exchange_strong(&e->state, &expected, EV_IDLE))
                return ARPC_ETIMEDOUT;
            continue; /* a spurious resume, or a signal racing the deadline */
        }
        /* A signaller took the hand-off (WAKING, then IDLE or even a newer
         * signal).  If its wake-up has not arrived yet, wait for it: it must
         * not reach a coroutine that has moved on. */
        if (rc == 0)
            return 0;
        deadline_ns = ARPC__NO_DEADLINE;
    }
}

static int wait_on_thread(event_impl *e, int64_t deadline_ns)
{
    e->waiter = NULL;
    uint32_t expected = EV_IDLE;
    if (!atomic_compare_exchange_strong(&e->state, &expected, EV_WAITING)) {
        ARPC_CHECK(consume_signal(e));
        return 0;
    }
    for (;;) {
        futex_wait(&e->state, EV_WAITING, deadline_ns);
        if (consume_signal(e))
            return 0;
        if (deadline_ns != ARPC__NO_DEADLINE && arpc__now_ns() >= deadline_ns) {
            expected = EV_WAITING;
            if (atomic_compare_exchange_strong(&e->state, &expected, EV_IDLE))
                return ARPC_ETIMEDOUT;
        }
    }
}

int arpc_event_wait(arpc_event *ev, int64_t timeout_ms)
{
    event_impl *e = (event_impl *)ev;
    if (consume_signal(e))
        return 0;
    int64_t deadline_ns =
        timeout_ms < 0 ? ARPC__NO_DEADLINE : arpc__now_ns() + timeout_ms * ARPC__NS_PER_MS;
    arpc_coro *self = arpc__coro_self();
    if (self != NULL)
        return wait_in_coroutine(e, self, deadline_ns);
    return wait_on_thread(e, deadline_ns);
}

void arpc_event_signal(arpc_event *ev)
{
    event_impl *e = (event_impl *)ev;
    uint32_t state = atomic_load(&e->state);
    for (;;) {
        if (state == EV_SIGNALLED || state == EV_WAKING)
            return;
        if (state == EV_IDLE) {
            if (atomic_compare_exchange_weak(&e->state, &state, EV_SIGNALLED))
                return;
            continue;
        }
        /* WAITING: read the waiter before any state change lets it leave. */
        arpc_coro *waiter = e->waiter;
        if (waiter == NULL) {
            if (atomic_compare_exchange_weak(&e->state, &state, EV_SIGNALLED)) {
                futex_wake_one(&e->state);
                return;
            }
            continue;
        }
        if (atomic_compare_exchange_weak(&e->state, &state, EV_WAKING)) {
            /* The coroutine cannot leave while WAKING, so it is safe to hand
             * it back to IDLE before the wake-up reaches it. */
            atomic_store(&e->state, EV_IDLE);
            arpc__coro_wake_any_thread(waiter);
            return;
        }
    }
}

void arpc_wg_init(arpc_wg *wg, int64_t count)
{
    wg_impl *w = (wg_impl *)wg;
    atomic_init(&w->count, count);
    arpc_event_init(&w->done);
}

void arpc_wg_add(arpc_wg *wg, int64_t n)
{
    wg_impl *w = (wg_impl *)wg;
    atomic_fetch_add(&w->count, n);
}

void arpc_wg_done(arpc_wg *wg)
{
    wg_impl *w = (wg_impl *)wg;
    int64_t before = atomic_fetch_sub(&w->count, 1);
    ARPC_CHECK(before > 0);
    if (before == 1)
        arpc_event_signal(&w->done);
}

int arpc_wg_wait(arpc_wg *wg, int64_t timeout_ms)
{
    wg_impl *w = (wg_impl *)wg;
    int64_t deadline_ns =
        timeout_ms < 0 ? ARPC__NO_DEADLINE : arpc__now_ns() + timeout_ms * ARPC__NS_PER_MS;
    while (atomic_load(&w->count) > 0) {
        int64_t left_ms = -1;
        if (deadline_ns != ARPC__NO_DEADLINE) {
            int64_t left_ns = deadline_ns - arpc__now_ns();
            if (left_ns <= 0)
                return ARPC_ETIMEDOUT;
            /* Round up: a truncated wait would time out before the deadline. */
            left_ms = (left_ns + ARPC__NS_PER_MS - 1) / ARPC__NS_PER_MS;
        }
        int rc = arpc_event_wait(&w->done, left_ms);
        if (rc < 0 && atomic_load(&w->count) > 0)
            return rc;
    }
    return 0;
}

/*
 * Design notes: arpc_event is the wait/wake primitive under synchronous calls
 * and wait groups.  Its state word moves between
 *   IDLE -> SIGNALLED            (signal with nobody waiting)
 *   IDLE -> WAITING              (a waiter parks)
 *   WAITING -> WAKING            (a signaller claims the hand-off)
 *   WAKING -> IDLE               (to a coroutine: on the coroutine's loop
 *                                 thread, right before it is woken)
 *   WAKING -> SIGNALLED          (to a plain thread, which then consumes it)
 *   WAITING -> IDLE              (the waiter's deadline passed)
 * The waiter cannot leave while the state is WAKING, so the signaller may
 * read `waiter` and the hand-off may touch the event.  Because a coroutine's
 * hand-off completes on its own loop thread, a coroutine that resumes and
 * still sees WAKING knows its wake-up is queued and waits for it (so the
 * wake never reaches a coroutine that has moved on), and one that sees
 * anything else knows the wake-up has already been delivered, even if its
 * deadline fired too and the wake itself was absorbed.  Plain threads sleep
 * on the state word with a futex.
 *
 * The cross-thread hand-off travels in the task node embedded in the waiting
 * coroutine (it waits on one event at a time, and cannot leave while its
 * hand-off is queued), so a signal never allocates and never fails.  Only a
 * stopped loop refuses it; the coroutine then stays parked, as every
 * coroutine of a stopped loop does.
 *
 * A loop thread outside a coroutine may not wait: its own loop would stall,
 * and deadlock if the signal had to come through it.  It gets ARPC_ENOTCORO
 * (a zero timeout, which never blocks, still tests the event).
 */
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <arpc/coro.h>
#include <arpc/err.h>

#include "base/assert.h"
#include "base/clock.h"
#include "runtime/coro.h"
#include "runtime/loop.h"

enum { EV_IDLE = 0, EV_SIGNALLED = 1, EV_WAITING = 2, EV_WAKING = 3 };

typedef struct event_impl {
    _Atomic uint32_t state;
    arpc_coro *_Atomic waiter; /* NULL when the waiter is a plain thread */
} event_impl;

_Static_assert(sizeof(event_impl) <= sizeof(arpc_event), "arpc_event too small");

typedef struct wg_impl {
    _Atomic int64_t count;
    arpc_event done;
    /* arpc_wg_done() calls between their first and last touch of the group:
     * the one that brings the count to zero still signals `done` afterwards,
     * and a waiter that saw zero must not return (and let its caller free the
     * group) before that signal is over. */
    _Atomic uint32_t busy;
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

/* Registers `waiter` (NULL: a plain thread) and moves IDLE -> WAITING.
 * @return false if a signal came first; it is consumed, and the wait is over. */
static bool begin_wait(event_impl *e, arpc_coro *waiter)
{
    e->waiter = waiter;
    uint32_t expected = EV_IDLE;
    if (atomic_compare_exchange_strong(&e->state, &expected, EV_WAITING))
        return true;
    /* Signalled between the first check and now: nobody else consumes it. */
    bool consumed = consume_signal(e);
    ARPC_CHECK(consumed);
    return false;
}

static int wait_in_coroutine(event_impl *e, arpc_coro *self, int64_t deadline_ns)
{
    if (!begin_wait(e, self))
        return 0;
    for (;;) {
        int rc = arpc__coro_park(deadline_ns);
        uint32_t state = atomic_load(&e->state);
        if (state == EV_WAITING) {
            if (rc != ARPC_ETIMEDOUT)
                continue; /* a spurious resume */
            if (atomic_compare_exchange_strong(&e->state, &state, EV_IDLE))
                return ARPC_ETIMEDOUT;
            /* A signaller claimed the hand-off first: `state` is WAKING now. */
        }
        if (state == EV_WAKING) {
            /* The hand-off is queued on this loop and has not run yet; wait
             * for it, whatever the deadline says. */
            deadline_ns = ARPC__NO_DEADLINE;
            continue;
        }
        /* The hand-off ran (IDLE, or SIGNALLED again by a newer signal). */
        return 0;
    }
}

static int wait_on_thread(event_impl *e, int64_t deadline_ns)
{
    if (!begin_wait(e, NULL))
        return 0;
    for (;;) {
        uint32_t state = atomic_load(&e->state);
        if (state == EV_SIGNALLED && consume_signal(e))
            return 0;
        if (state == EV_WAITING && deadline_ns != ARPC__NO_DEADLINE &&
            arpc__now_ns() >= deadline_ns) {
            if (atomic_compare_exchange_strong(&e->state, &state, EV_IDLE))
                return ARPC_ETIMEDOUT;
            continue;
        }
        /* While WAKING the signal is a few instructions away: no deadline. */
        futex_wait(&e->state, state, state == EV_WAKING ? ARPC__NO_DEADLINE : deadline_ns);
    }
}

bool arpc__event_has_waiter(const arpc_event *ev)
{
    const event_impl *e = (const event_impl *)ev;
    return atomic_load(&((event_impl *)e)->state) == EV_WAITING;
}

int arpc_event_wait(arpc_event *ev, int64_t timeout_ms)
{
    event_impl *e = (event_impl *)ev;
    if (consume_signal(e))
        return 0;
    if (timeout_ms == 0)
        return ARPC_ETIMEDOUT;
    if (arpc__on_loop_outside_coro())
        return ARPC_ENOTCORO;
    int64_t deadline_ns =
        timeout_ms < 0 ? ARPC__NO_DEADLINE : arpc__now_ns() + timeout_ms * ARPC__NS_PER_MS;
    arpc_coro *self = arpc__coro_self();
    if (self != NULL)
        return wait_in_coroutine(e, self, deadline_ns);
    return wait_on_thread(e, deadline_ns);
}

/* Runs on the waiting coroutine's loop thread. */
static void finish_handoff(void *ev, void *coro)
{
    event_impl *e = ev;
    atomic_store(&e->state, EV_IDLE);
    arpc__coro_wake(coro);
}

void arpc_event_signal(arpc_event *ev)
{
    event_impl *e = (event_impl *)ev;
    uint32_t state = atomic_load(&e->state);
    for (;;) {
        if (state == EV_SIGNALLED || state == EV_WAKING)
            return;
        uint32_t next = state == EV_IDLE ? EV_SIGNALLED : EV_WAKING;
        if (atomic_compare_exchange_weak(&e->state, &state, next))
            break;
    }
    if (state == EV_IDLE)
        return;
    /* WAKING: the waiter cannot leave, so `waiter` is the current one (read
     * after the claim, never a previous waiter's). */
    arpc_coro *waiter = e->waiter;
    if (waiter == NULL) {
        atomic_store(&e->state, EV_SIGNALLED);
        futex_wake_one(&e->state);
        return;
    }
    if (arpc__loop_current() == waiter->loop) {
        finish_handoff(e, waiter);
        return;
    }
    arpc__task_set(&waiter->task, finish_handoff, e, waiter);
    /* Refused only by a stopped loop, whose coroutines stay parked anyway. */
    (void)arpc__loop_post(waiter->loop, &waiter->task);
}

void arpc_wg_init(arpc_wg *wg, int64_t count)
{
    wg_impl *w = (wg_impl *)wg;
    atomic_init(&w->count, count);
    arpc_event_init(&w->done);
    atomic_init(&w->busy, 0);
}

void arpc_wg_add(arpc_wg *wg, int64_t n)
{
    wg_impl *w = (wg_impl *)wg;
    atomic_fetch_add(&w->count, n);
}

void arpc_wg_done(arpc_wg *wg)
{
    wg_impl *w = (wg_impl *)wg;
    atomic_fetch_add(&w->busy, 1); /* before the count can reach zero */
    int64_t before = atomic_fetch_sub(&w->count, 1);
    ARPC_CHECK(before > 0);
    if (before == 1)
        arpc_event_signal(&w->done);
    atomic_fetch_sub(&w->busy, 1); /* the last touch of `wg` */
}

int arpc_wg_wait(arpc_wg *wg, int64_t timeout_ms)
{
    wg_impl *w = (wg_impl *)wg;
    if (timeout_ms != 0 && atomic_load(&w->count) > 0 && arpc__on_loop_outside_coro())
        return ARPC_ENOTCORO;
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
    /* The count is zero, but the arpc_wg_done() that made it so may still be
     * inside arpc_event_signal(): wait (a few instructions) until it is out,
     * since the caller may free the group as soon as this returns. */
    while (atomic_load(&w->busy) > 0) {
        if (arpc_coro_yield() == ARPC_ENOTCORO)
            sched_yield();
    }
    return 0;
}

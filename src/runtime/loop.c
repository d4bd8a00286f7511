/*
 * Design notes.
 *
 * One iteration: run the ready coroutines, drain the inbox, fire expired
 * timers, run the deferred work (output flushes), then poll.  The poll
 * blocks only when nothing is ready; its timeout is the next timer.
 *
 * Wake-up protocol: before a blocking poll the loop sets `sleeping`, then
 * checks the inbox once more.  A producer pushes, then (after a full fence)
 * clears `sleeping` with an exchange and writes the eventfd only if it was
 * set.  Either the loop sees the task or the producer sees the flag, so no
 * task waits for a timeout, and a busy loop receives no eventfd writes.
 *
 * Busy polling (opts.busy_poll_us): before that blocking poll, the loop polls
 * with a zero timeout until something arrives or the window closes.  It stays
 * `sleeping == 0` meanwhile, so producers write no eventfd and the spin sees
 * their tasks by looking at the inbox.  The window ends at the next timer so a
 * spin never delays one.
 */
#include "runtime/loop.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"

#define DEFAULT_INBOX_CAPACITY 65536
#define DEFAULT_STACK_SIZE     (128 * 1024)
#define DEFAULT_STACK_POOL_MAX 1024
#define INBOX_BUDGET           4096

_Thread_local arpc_loop *arpc__tls_loop ARPC__TLS_MODEL;

arpc_loop *arpc_loop_current(void)
{
    return arpc__tls_loop;
}

void arpc_loop_opts_init(arpc_loop_opts *opts)
{
    opts->inbox_capacity = DEFAULT_INBOX_CAPACITY;
    opts->coro_stack_size = DEFAULT_STACK_SIZE;
    opts->stack_pool_max = DEFAULT_STACK_POOL_MAX;
    opts->busy_poll_us = 0;
}

int arpc_loop_create(const arpc_loop_opts *opts, arpc_loop **out)
{
    arpc_loop_opts defaults;
    if (opts == NULL) {
        arpc_loop_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->coro_stack_size < 16 * 1024)
        return ARPC_EINVAL;
    arpc_loop *loop = arpc__calloc(1, sizeof(*loop));
    if (loop == NULL)
        return ARPC_ENOMEM;
    int rc = arpc__inbox_init(&loop->inbox, opts->inbox_capacity);
    if (rc < 0) {
        arpc__free(loop);
        return rc;
    }
    rc = arpc__poller_open(loop);
    if (rc < 0) {
        arpc__inbox_fini(&loop->inbox);
        arpc__free(loop);
        return rc;
    }
    arpc__timer_heap_init(&loop->timers);
    arpc__list_init(&loop->ready);
    arpc__list_init(&loop->deferred);
    arpc__list_init(&loop->free_stacks);
    arpc__buf_init(&loop->read_buf);
    loop->stack_size = opts->coro_stack_size;
    loop->stack_pool_max = opts->stack_pool_max;
    loop->busy_poll_ns = (int64_t)opts->busy_poll_us * 1000;
    loop->user_timer_free = UINT32_MAX;
    loop->now_ns = arpc__now_ns();
    *out = loop;
    return 0;
}

static void run_deferred(arpc_loop *loop)
{
    /* A deferred item may schedule itself again (a flush that hit EAGAIN
     * does not: it waits for EPOLLOUT); detach the list first so that
     * re-scheduling during the walk runs next iteration. */
    arpc__list batch;
    arpc__list_move_all(&loop->deferred, &batch);
    arpc__list *node;
    while ((node = arpc__list_pop_front(&batch)) != NULL) {
        arpc__deferred *deferred = arpc__container_of(node, arpc__deferred, link);
        deferred->run(deferred);
    }
}

static void fire_timers(arpc_loop *loop)
{
    arpc__timer *timer;
    while ((timer = arpc__timer_heap_pop_expired(&loop->timers, loop->now_ns)) != NULL)
        timer->fire(timer);
}

static int poll_timeout_ms(arpc_loop *loop)
{
    if (!arpc__list_empty(&loop->ready) || !arpc__list_empty(&loop->deferred))
        return 0;
    arpc__timer *next = arpc__timer_heap_peek(&loop->timers);
    if (next == NULL)
        return -1;
    /* The clock read before the timers ran is recent enough: a stale "now"
     * can only make the wait longer by microseconds, never fire a timer early. */
    int64_t wait_ns = next->deadline_ns - loop->now_ns;
    if (wait_ns <= 0)
        return 0;
    /* Round up: waking early would only poll again; waking late by under a
     * millisecond is the timer resolution we promise. */
    int64_t ms = (wait_ns + ARPC__NS_PER_MS - 1) / ARPC__NS_PER_MS;
    return ms > 3600 * 1000 ? 3600 * 1000 : (int)ms;
}

/* Polls without blocking until there is work or the busy-poll window (cut
 * short by the next timer) has passed.  @return true if there is work. */
static bool busy_poll(arpc_loop *loop)
{
    int64_t until = arpc__now_ns() + loop->busy_poll_ns;
    arpc__timer *next = arpc__timer_heap_peek(&loop->timers);
    if (next != NULL && next->deadline_ns < until)
        until = next->deadline_ns;
    do {
        if (arpc__poller_poll(loop, 0) > 0 || arpc__inbox_nonempty(&loop->inbox) ||
            atomic_load_explicit(&loop->stop_requested, memory_order_relaxed))
            return true;
    } while (loop->now_ns < until); /* the poll refreshed now_ns */
    return false;
}

static void poll_once(arpc_loop *loop)
{
    int timeout = poll_timeout_ms(loop);
    if (timeout != 0 && loop->busy_poll_ns > 0) {
        if (busy_poll(loop))
            return;
        timeout = poll_timeout_ms(loop); /* the spin used part of the wait */
    }
    if (timeout != 0) {
        atomic_store(&loop->sleeping, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (arpc__inbox_nonempty(&loop->inbox) || atomic_load(&loop->stop_requested))
            timeout = 0;
    }
    arpc__poller_poll(loop, timeout);
    atomic_store_explicit(&loop->sleeping, 0, memory_order_relaxed);
}

static void loop_iteration(arpc_loop *loop)
{
    /* now_ns was refreshed when the poll returned (poller_epoll.c). */
    arpc__coro_run_ready(loop);
    arpc__inbox_drain(&loop->inbox, INBOX_BUDGET);
    loop->now_ns = arpc__now_ns();
    fire_timers(loop);
    arpc__coro_run_ready(loop);
    run_deferred(loop);
    poll_once(loop);
}

int arpc_loop_run(arpc_loop *loop)
{
    if (loop->running || arpc__tls_loop != NULL)
        return ARPC_EINVAL;
    loop->running = true;
    arpc__tls_loop = loop;
    while (!atomic_load_explicit(&loop->stop_requested, memory_order_acquire))
        loop_iteration(loop);
    /* Work submitted before the stop still runs, as arpc_loop_stop promises. */
    arpc__inbox_drain(&loop->inbox, SIZE_MAX);
    arpc__coro_run_ready(loop);
    run_deferred(loop);
    arpc__tls_loop = NULL;
    loop->running = false;
    return 0;
}

static void *loop_thread_main(void *arg)
{
    arpc_loop_run(arg);
    return NULL;
}

int arpc_loop_start(arpc_loop *loop)
{
    if (loop->thread_started)
        return ARPC_EINVAL;
    int rc = pthread_create(&loop->thread, NULL, loop_thread_main, loop);
    if (rc != 0)
        return -rc;
    loop->thread_started = true;
    return 0;
}

void arpc_loop_stop(arpc_loop *loop)
{
    atomic_store_explicit(&loop->stop_requested, true, memory_order_release);
    arpc__poller_wake(loop);
}

int arpc_loop_join(arpc_loop *loop)
{
    if (!loop->thread_started)
        return ARPC_EINVAL;
    pthread_join(loop->thread, NULL);
    loop->thread_started = false;
    return 0;
}

void arpc_loop_destroy(arpc_loop *loop)
{
    if (loop == NULL)
        return;
    if (loop->thread_started) {
        arpc_loop_stop(loop);
        arpc_loop_join(loop);
    }
    for (int i = 0; i < ARPC__LOCAL_COUNT; i++) {
        if (loop->locals[i].fini != NULL)
            loop->locals[i].fini(loop->locals[i].value);
    }
    arpc__loop_user_timers_fini(loop);
    arpc__timer_heap_fini(&loop->timers);
    arpc__coro_pool_fini(loop);
    arpc__poller_close(loop);
    arpc__inbox_fini(&loop->inbox);
    arpc__free(loop->watchers);
    arpc__buf_fini(&loop->read_buf);
    arpc__free(loop);
}

int arpc__loop_submit2(arpc_loop *loop, arpc__task_fn fn, void *a, void *b)
{
    int rc = arpc__inbox_push(&loop->inbox, fn, a, b);
    if (rc < 0)
        return rc;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&loop->sleeping, memory_order_relaxed) &&
        atomic_exchange(&loop->sleeping, 0))
        arpc__poller_wake(loop);
    return 0;
}

static void run_user_task(void *fn, void *user_data)
{
    arpc_task_cb cb;
    memcpy(&cb, &fn, sizeof(cb));
    cb(user_data);
}

int arpc_loop_submit(arpc_loop *loop, arpc_task_cb cb, void *user_data)
{
    if (loop == NULL || cb == NULL)
        return ARPC_EINVAL;
    void *fn;
    memcpy(&fn, &cb, sizeof(fn));
    return arpc__loop_submit2(loop, run_user_task, fn, user_data);
}

void arpc__loop_defer(arpc_loop *loop, arpc__deferred *deferred)
{
    if (!arpc__list_linked(&deferred->link))
        arpc__list_push_back(&loop->deferred, &deferred->link);
}

int arpc__loop_timer_arm(arpc_loop *loop, arpc__timer *timer, int64_t deadline_ns)
{
    arpc__timer_heap_remove(&loop->timers, timer);
    return arpc__timer_heap_push(&loop->timers, timer, deadline_ns);
}

void arpc__loop_timer_disarm(arpc_loop *loop, arpc__timer *timer)
{
    arpc__timer_heap_remove(&loop->timers, timer);
}

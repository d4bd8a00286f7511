/*
 * What a stopping loop and a runtime being destroyed do with work, and what
 * the blocking runtime functions do on a loop thread outside a coroutine.
 * Proves: a submit or spawn on a stopped loop returns ARPC_ESTOPPED (it used
 * to return 0 and never run); tasks accepted before the stop run before
 * arpc_loop_run() returns, even when they arrive through the overflow list,
 * and a ring cell claimed before the stop is waited for and run;
 * tasks that keep submitting to other loops while arpc_runtime_destroy()
 * runs are either refused or run, never dropped and never a use-after-free
 * (ASan, TSan); arpc_event_wait, arpc_wg_wait, arpc_coro_sleep_ms and
 * arpc_runtime_offload (and, as before, arpc_io_read) return ARPC_ENOTCORO on
 * a loop thread outside a
 * coroutine instead of blocking the loop; arpc_runtime_destroy() and
 * arpc_loop_destroy() called on one of their own loop threads return without
 * freeing anything instead of joining themselves, and arpc_loop_join() there
 * returns ARPC_EINVAL.
 */
#include <pthread.h>
#include <stdatomic.h>

#include <arpc/arpc.h>

#include "runtime/inbox.h"
#include "test.h"

static _Atomic int ran;

static void count_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
}

static void count_coro(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
}

/* Refused work is refused out loud: submit and spawn return ARPC_ESTOPPED
 * from the moment arpc_loop_stop() returns, before and after the thread ends. */
static void test_submit_after_stop_is_refused(void)
{
    arpc_loop *loop;
    ASSERT_OK(arpc_loop_create(NULL, &loop));
    ASSERT_OK(arpc_loop_start(loop));
    arpc_loop_stop(loop);
    ASSERT_ERR(arpc_loop_submit(loop, count_task, NULL), ARPC_ESTOPPED);
    ASSERT_ERR(arpc_coro_spawn(loop, count_coro, NULL), ARPC_ESTOPPED);
    ASSERT_OK(arpc_loop_join(loop));
    ASSERT_ERR(arpc_loop_submit(loop, count_task, NULL), ARPC_ESTOPPED);
    ASSERT_ERR(arpc_coro_spawn(loop, count_coro, NULL), ARPC_ESTOPPED);
    arpc_loop_destroy(loop);
}

/* Accepted work runs: tasks queued before the stop (4 of them in the ring,
 * the rest in the overflow list) and coroutines spawned then all run before
 * arpc_loop_run() returns. */
static void test_queued_before_stop_runs(void)
{
    arpc_loop_opts opts;
    arpc_loop_opts_init(&opts);
    opts.inbox_capacity = 4;
    arpc_loop *loop;
    ASSERT_OK(arpc_loop_create(&opts, &loop));
    atomic_store(&ran, 0);
    for (int i = 0; i < 100; i++)
        ASSERT_OK(arpc_loop_submit(loop, count_task, NULL));
    for (int i = 0; i < 10; i++)
        ASSERT_OK(arpc_coro_spawn(loop, count_coro, NULL));
    arpc_loop_stop(loop);
    ASSERT_OK(arpc_loop_run(loop));
    ASSERT_EQ(atomic_load(&ran), 110);
    arpc_loop_destroy(loop);
}

/* White box: a close refuses later pushes (ring or overflow) but not forced
 * ones, and the inbox is settled only once a cell claimed before the close
 * has been published and run. */
static char trace[8];
static int trace_len;

static void trace_task(void *a, void *b)
{
    (void)b;
    trace[trace_len++] = (char)(intptr_t)a;
}

static void test_inbox_close(void)
{
    arpc__inbox inbox;
    ASSERT_OK(arpc__inbox_init(&inbox, 4));
    ASSERT_OK(arpc__inbox_push(&inbox, trace_task, (void *)(intptr_t)'a', NULL));
    size_t claimed = atomic_fetch_add(&inbox.tail, 1); /* a producer mid-push */
    arpc__inbox_close(&inbox);
    ASSERT_ERR(arpc__inbox_push(&inbox, trace_task, (void *)(intptr_t)'x', NULL), ARPC_ESTOPPED);
    arpc__task refused;
    arpc__task_set(&refused, trace_task, (void *)(intptr_t)'y', NULL);
    ASSERT_ERR(arpc__inbox_push_task(&inbox, &refused, false), ARPC_ESTOPPED);
    arpc__task forced;
    arpc__task_set(&forced, trace_task, (void *)(intptr_t)'f', NULL);
    ASSERT_OK(arpc__inbox_push_task(&inbox, &forced, true));
    arpc__inbox_drain(&inbox, SIZE_MAX);
    ASSERT_FALSE(arpc__inbox_settled(&inbox)); /* the claimed cell is not published */
    arpc__inbox_cell *cell = &inbox.cells[claimed & inbox.mask];
    cell->fn = trace_task;
    cell->a = (void *)(intptr_t)'c';
    cell->b = NULL;
    atomic_store(&cell->seq, claimed + 1);
    arpc__inbox_drain(&inbox, SIZE_MAX);
    ASSERT_TRUE(arpc__inbox_settled(&inbox));
    trace[trace_len] = '\0';
    ASSERT_STREQ(trace, "acf");
    arpc__inbox_fini(&inbox);
}

/* ---- cross-loop submissions during arpc_runtime_destroy() ---------------- */

#define HOP_LOOPS 4
#define CHAINS    64

static arpc_runtime *hop_rt;
static _Atomic long hops_accepted;
static _Atomic long hops_run;
static _Atomic long hops_refused;
static _Atomic long hops_other_error;

static void hop(void *arg);

/* Each task hands the chain on to the next loop, so every loop keeps
 * submitting to the others while they stop. */
static void hop(void *arg)
{
    atomic_fetch_add(&hops_run, 1);
    uintptr_t next = ((uintptr_t)arg + 1) % HOP_LOOPS;
    int rc = arpc_loop_submit(arpc_runtime_loop(hop_rt, (unsigned)next), hop, (void *)next);
    if (rc == 0)
        atomic_fetch_add(&hops_accepted, 1);
    else if (rc == ARPC_ESTOPPED)
        atomic_fetch_add(&hops_refused, 1);
    else
        atomic_fetch_add(&hops_other_error, 1);
}

static bool enough_hops(void *arg)
{
    (void)arg;
    return atomic_load(&hops_run) > 20000;
}

static void test_cross_loop_submit_during_destroy(void)
{
    for (int round = 0; round < 5; round++) {
        arpc_runtime_opts opts;
        arpc_runtime_opts_init(&opts);
        opts.loops = HOP_LOOPS;
        ASSERT_OK(arpc_runtime_create(&opts, &hop_rt));
        atomic_store(&hops_accepted, 0);
        atomic_store(&hops_run, 0);
        atomic_store(&hops_refused, 0);
        atomic_store(&hops_other_error, 0);
        for (uintptr_t i = 0; i < CHAINS; i++) {
            ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(hop_rt, (unsigned)(i % HOP_LOOPS)), hop,
                                       (void *)(i % HOP_LOOPS)));
        }
        ASSERT_TRUE(wait_until(enough_hops, NULL, 10000));
        arpc_runtime_destroy(hop_rt);
        /* Every accepted submission ran; the chains ended only by refusals. */
        ASSERT_EQ(atomic_load(&hops_other_error), 0);
        ASSERT_EQ(atomic_load(&hops_run), atomic_load(&hops_accepted) + CHAINS);
        ASSERT_EQ(atomic_load(&hops_refused), CHAINS);
    }
}

/* ---- blocking functions on a loop thread outside a coroutine -------------- */

typedef struct on_loop {
    arpc_runtime *rt;
    arpc_event done;
    int event_rc;
    int wg_rc;
    int sleep_rc;
    int offload_rc;
    int zero_wait_rc;
    int io_rc;
    int join_rc;
    int64_t elapsed_ms;
} on_loop;

static void nothing(void *arg)
{
    (void)arg;
}

static void blocking_calls_task(void *arg)
{
    on_loop *t = arg;
    arpc_event ev;
    arpc_event_init(&ev);
    arpc_wg wg;
    arpc_wg_init(&wg, 1);
    int64_t start = test_now_ms();
    t->event_rc = arpc_event_wait(&ev, 5000);
    t->wg_rc = arpc_wg_wait(&wg, 5000);
    t->sleep_rc = arpc_coro_sleep_ms(5000);
    t->offload_rc = arpc_runtime_offload(t->rt, nothing, NULL);
    /* A zero timeout does not block: it only tests the event. */
    t->zero_wait_rc = arpc_event_wait(&ev, 0);
    char byte;
    t->io_rc = (int)arpc_io_read(0, &byte, 1, 5000);
    t->elapsed_ms = test_now_ms() - start;
    arpc_event_signal(&t->done);
}

static void test_blocking_calls_on_loop_thread(void)
{
    on_loop t = {0};
    ASSERT_OK(arpc_runtime_create(NULL, &t.rt));
    arpc_event_init(&t.done);
    ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(t.rt, 0), blocking_calls_task, &t));
    ASSERT_OK(arpc_event_wait(&t.done, 20000));
    ASSERT_ERR(t.event_rc, ARPC_ENOTCORO);
    ASSERT_ERR(t.wg_rc, ARPC_ENOTCORO);
    ASSERT_ERR(t.sleep_rc, ARPC_ENOTCORO);
    ASSERT_ERR(t.offload_rc, ARPC_ENOTCORO);
    ASSERT_ERR(t.zero_wait_rc, ARPC_ETIMEDOUT);
    ASSERT_ERR(t.io_rc, ARPC_ENOTCORO);
    ASSERT_LT(t.elapsed_ms, 2000); /* nothing waited out its 5 s */
    arpc_runtime_destroy(t.rt);
}

/* arpc_runtime_destroy() from one of its own loops cannot join that loop:
 * it returns, the runtime stays usable, and the owner destroys it later. */
static void destroy_from_inside_task(void *arg)
{
    on_loop *t = arg;
    arpc_runtime_destroy(t->rt);
    arpc_loop_destroy(arpc_loop_current());
    t->join_rc = arpc_loop_join(arpc_loop_current());
    arpc_event_signal(&t->done);
}

static void test_destroy_from_own_loop_is_refused(void)
{
    on_loop t = {0};
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 2;
    ASSERT_OK(arpc_runtime_create(&opts, &t.rt));
    arpc_event_init(&t.done);
    arpc_log_set_level(ARPC_LOG_OFF); /* the refusal is logged */
    ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(t.rt, 1), destroy_from_inside_task, &t));
    ASSERT_OK(arpc_event_wait(&t.done, 20000));
    arpc_log_set_level(ARPC_LOG_WARN);
    ASSERT_ERR(t.join_rc, ARPC_EINVAL); /* a loop thread cannot join itself */
    atomic_store(&ran, 0);
    ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(t.rt, 1), count_task, NULL));
    arpc_runtime_destroy(t.rt);
    ASSERT_EQ(atomic_load(&ran), 1);
}

int main(void)
{
    RUN_TEST(test_submit_after_stop_is_refused);
    RUN_TEST(test_queued_before_stop_runs);
    RUN_TEST(test_inbox_close);
    RUN_TEST(test_cross_loop_submit_during_destroy);
    RUN_TEST(test_blocking_calls_on_loop_thread);
    RUN_TEST(test_destroy_from_own_loop_is_refused);
    return 0;
}

/*
 * Public timers on a running loop (run on the test thread): timers fire in
 * deadline order and never before their delay has passed (CLOCK_MONOTONIC
 * against the add time), timers with the same delay fire in insertion order,
 * a cancelled timer never fires (also when cancelled by another timer that
 * expired in the same pass), cancelling a fired, cancelled or bogus id gives
 * ARPC_EINVAL, and an id stays dead after its slot is reused.
 */
#include <time.h>

#include <arpc/err.h>
#include <arpc/loop.h>
#include <arpc/timer.h>

#include "test.h"

#define NS_PER_MS 1000000LL

static void busy_wait_ms(int64_t ms)
{
    int64_t end = test_now_ns() + ms * NS_PER_MS;
    while (test_now_ns() < end)
        ;
}

static void stop_loop(void *loop)
{
    arpc_loop_stop(loop);
}

static void watchdog_fired(void *unused)
{
    test_fail(__FILE__, __LINE__, "watchdog: the loop did not finish in time");
}

/* Fails the test if the loop still runs after 20 s. */
static void add_watchdog(arpc_loop *loop)
{
    ASSERT_OK(arpc_timer_add(loop, 20000, watchdog_fired, NULL, NULL));
}

/* Runs a fresh loop on this thread whose first task is `setup(arg)`; setup
 * arranges for the loop to stop.  Returns once it has. */
static void run_loop(arpc_loop *loop, arpc_task_cb setup, void *arg)
{
    ASSERT_OK(arpc_loop_submit(loop, setup, arg));
    ASSERT_OK(arpc_loop_run(loop));
}

static arpc_loop *new_loop(void)
{
    arpc_loop *loop = NULL;
    ASSERT_OK(arpc_loop_create(NULL, &loop));
    return loop;
}

/* ---- deadline order, not early ------------------------------------------------------ */

#define N_ORDER 300

struct order_fixture;

typedef struct order_timer {
    struct order_fixture *f;
    int64_t delay_ms;
    int64_t before_ns; /* just before arpc_timer_add */
    int64_t after_ns;  /* just after it returned */
    int64_t fired_ns;
    int rank;
    int fire_count;
} order_timer;

typedef struct order_fixture {
    arpc_loop *loop;
    order_timer t[N_ORDER];
    int fired;
} order_fixture;

static void on_order_fire(void *arg)
{
    order_timer *t = arg;
    t->fired_ns = test_now_ns();
    t->fire_count++;
    t->rank = t->f->fired++;
    if (t->f->fired == N_ORDER)
        arpc_timer_add(t->f->loop, 20, stop_loop, t->f->loop, NULL);
}

static void setup_order(void *arg)
{
    order_fixture *f = arg;
    add_watchdog(f->loop);
    for (int i = 0; i < N_ORDER; i++) {
        order_timer *t = &f->t[i];
        t->f = f;
        /* Even delays from 0 to 80 ms: many ties, many distinct deadlines. */
        t->delay_ms = (int64_t)(test_rand() % 41) * 2;
        t->before_ns = test_now_ns();
        ASSERT_OK(arpc_timer_add(f->loop, t->delay_ms, on_order_fire, t, NULL));
        t->after_ns = test_now_ns();
    }
}

static void test_fire_in_deadline_order_never_early(void)
{
    static order_fixture f;
    memset(&f, 0, sizeof(f));
    test_seed();
    f.loop = new_loop();
    run_loop(f.loop, setup_order, &f);
    arpc_loop_destroy(f.loop);
    ASSERT_EQ(f.fired, N_ORDER);
    for (int i = 0; i < N_ORDER; i++) {
        const order_timer *a = &f.t[i];
        ASSERT_EQ(a->fire_count, 1);
        ASSERT_GE(a->fired_ns - a->before_ns, a->delay_ms * NS_PER_MS);
        for (int j = 0; j < N_ORDER; j++) {
            const order_timer *b = &f.t[j];
            /* If a fired first, a's deadline (added somewhere in
             * [before, after]) cannot be later than b's. */
            if (a->rank < b->rank)
                ASSERT_LE(a->before_ns + a->delay_ms * NS_PER_MS,
                          b->after_ns + b->delay_ms * NS_PER_MS);
        }
    }
}

/* ---- same delay, insertion order ---------------------------------------------------- */

#define N_SAME 500

typedef struct same_fixture {
    arpc_loop *loop;
    int64_t delay_ms;
    int order[N_SAME];
    int fired;
    int index[N_SAME];
} same_fixture;

static same_fixture *same_current;

static void on_same_fire(void *arg)
{
    same_fixture *f = same_current;
    f->order[f->fired++] = *(int *)arg;
    if (f->fired == N_SAME)
        arpc_loop_stop(f->loop);
}

static void setup_same(void *arg)
{
    same_fixture *f = arg;
    add_watchdog(f->loop);
    for (int i = 0; i < N_SAME; i++) {
        f->index[i] = i;
        ASSERT_OK(arpc_timer_add(f->loop, f->delay_ms, on_same_fire, &f->index[i], NULL));
    }
}

static void check_same_delay(int64_t delay_ms)
{
    static same_fixture f;
    memset(&f, 0, sizeof(f));
    same_current = &f;
    f.delay_ms = delay_ms;
    f.loop = new_loop();
    run_loop(f.loop, setup_same, &f);
    arpc_loop_destroy(f.loop);
    ASSERT_EQ(f.fired, N_SAME);
    for (int i = 0; i < N_SAME; i++)
        ASSERT_EQ(f.order[i], i);
}

static void test_same_delay_fires_in_insertion_order(void)
{
    check_same_delay(0);
    check_same_delay(15);
}

/* ---- cancel ------------------------------------------------------------------------- */

#define N_CANCEL 2000

typedef struct cancel_fixture {
    arpc_loop *loop;
    arpc_timer_id ids[N_CANCEL];
    int counts[N_CANCEL];
    bool cancelled[N_CANCEL];
} cancel_fixture;

static void on_count(void *arg)
{
    (*(int *)arg)++;
}

static void setup_cancel(void *arg)
{
    cancel_fixture *f = arg;
    add_watchdog(f->loop);
    for (int i = 0; i < N_CANCEL; i++) {
        int64_t delay = (int64_t)(test_rand() % 40);
        ASSERT_OK(arpc_timer_add(f->loop, delay, on_count, &f->counts[i], &f->ids[i]));
    }
    for (int i = 0; i < N_CANCEL; i++) {
        if (test_rand() % 2 == 0)
            continue;
        ASSERT_OK(arpc_timer_cancel(f->loop, f->ids[i]));
        ASSERT_ERR(arpc_timer_cancel(f->loop, f->ids[i]), ARPC_EINVAL);
        f->cancelled[i] = true;
    }
    ASSERT_OK(arpc_timer_add(f->loop, 100, stop_loop, f->loop, NULL));
}

static void test_cancelled_timer_never_fires(void)
{
    static cancel_fixture f;
    memset(&f, 0, sizeof(f));
    test_seed();
    f.loop = new_loop();
    run_loop(f.loop, setup_cancel, &f);
    arpc_loop_destroy(f.loop);
    for (int i = 0; i < N_CANCEL; i++)
        ASSERT_EQ(f.counts[i], f.cancelled[i] ? 0 : 1);
}

/* Two timers expire in the same pass; the first cancels the second. */
typedef struct same_pass_fixture {
    arpc_loop *loop;
    arpc_timer_id victim;
    int victim_fired;
    int cancel_rc;
} same_pass_fixture;

static void on_cancel_victim(void *arg)
{
    same_pass_fixture *f = arg;
    f->cancel_rc = arpc_timer_cancel(f->loop, f->victim);
}

static void setup_same_pass(void *arg)
{
    same_pass_fixture *f = arg;
    add_watchdog(f->loop);
    ASSERT_OK(arpc_timer_add(f->loop, 1, on_cancel_victim, f, NULL));
    ASSERT_OK(arpc_timer_add(f->loop, 1, on_count, &f->victim_fired, &f->victim));
    ASSERT_OK(arpc_timer_add(f->loop, 30, stop_loop, f->loop, NULL));
    /* Both deadlines pass before the loop looks at its timers. */
    busy_wait_ms(5);
}

static void test_cancel_from_timer_in_same_pass(void)
{
    same_pass_fixture f = {0};
    f.cancel_rc = 1;
    f.loop = new_loop();
    run_loop(f.loop, setup_same_pass, &f);
    arpc_loop_destroy(f.loop);
    ASSERT_OK(f.cancel_rc);
    ASSERT_EQ(f.victim_fired, 0);
}

/* Cancel of fired ids, reused slots and bogus ids. */
typedef struct fired_fixture {
    arpc_loop *loop;
    arpc_timer_id first;
    arpc_timer_id second;
    int second_fired;
} fired_fixture;

static void on_second(void *arg)
{
    fired_fixture *f = arg;
    f->second_fired++;
    ASSERT_ERR(arpc_timer_cancel(f->loop, f->second), ARPC_EINVAL);
    ASSERT_ERR(arpc_timer_cancel(f->loop, f->first), ARPC_EINVAL);
    arpc_loop_stop(f->loop);
}

static void on_first(void *arg)
{
    fired_fixture *f = arg;
    /* Inside its own callback the timer has already fired. */
    ASSERT_ERR(arpc_timer_cancel(f->loop, f->first), ARPC_EINVAL);
    /* The freed slot is reused; the old id must not reach the new timer. */
    ASSERT_OK(arpc_timer_add(f->loop, 5, on_second, f, &f->second));
    ASSERT_NE(f->second, f->first);
    ASSERT_ERR(arpc_timer_cancel(f->loop, f->first), ARPC_EINVAL);
}

static void setup_fired(void *arg)
{
    fired_fixture *f = arg;
    add_watchdog(f->loop);
    ASSERT_ERR(arpc_timer_cancel(f->loop, 12345), ARPC_EINVAL);
    ASSERT_ERR(arpc_timer_add(f->loop, -1, on_count, NULL, NULL), ARPC_EINVAL);
    ASSERT_ERR(arpc_timer_add(f->loop, 1, NULL, NULL, NULL), ARPC_EINVAL);
    ASSERT_OK(arpc_timer_add(f->loop, 1, on_first, f, &f->first));
    ASSERT_ERR(arpc_timer_cancel(f->loop, f->first ^ (1ull << 40)), ARPC_EINVAL);
    ASSERT_ERR(arpc_timer_cancel(f->loop, (f->first & ~0xffffffffull) | 0xfffffff0u), ARPC_EINVAL);
}

static void test_cancel_fired_id_is_einval(void)
{
    fired_fixture f = {0};
    f.loop = new_loop();
    run_loop(f.loop, setup_fired, &f);
    arpc_loop_destroy(f.loop);
    ASSERT_EQ(f.second_fired, 1);
}

/* ---- destroy with pending timers ---------------------------------------------------- */

static void setup_pending(void *arg)
{
    arpc_loop *loop = arg;
    for (int i = 0; i < 1000; i++)
        ASSERT_OK(arpc_timer_add(loop, 60000 + i, on_count, NULL, NULL));
    ASSERT_OK(arpc_timer_add(loop, 0, stop_loop, loop, NULL));
}

static void test_destroy_with_pending_timers(void)
{
    /* Pending timers are freed with the loop and never run (ASan checks leaks). */
    arpc_loop *loop = new_loop();
    run_loop(loop, setup_pending, loop);
    arpc_loop_destroy(loop);
}

int main(void)
{
    RUN_TEST(test_fire_in_deadline_order_never_early);
    RUN_TEST(test_same_delay_fires_in_insertion_order);
    RUN_TEST(test_cancelled_timer_never_fires);
    RUN_TEST(test_cancel_from_timer_in_same_pass);
    RUN_TEST(test_cancel_fired_id_is_einval);
    RUN_TEST(test_destroy_with_pending_timers);
    return 0;
}

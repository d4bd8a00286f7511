/*
 * Cross-thread waking.  Proves: an arpc_event waited on by a coroutine is
 * woken by a coroutine on another loop and by a plain thread, and one waited
 * on by a plain thread is woken by a coroutine; waits time out with
 * ARPC_ETIMEDOUT and never early, on a loop thread and on a plain thread;
 * thousands of ping-pong rounds whose waits use tiny timeouts (so deadlines
 * race the wake-ups) lose no signal and never strand a waiter; a wait group
 * counts down from coroutines on several loops and from plain threads; and
 * arpc_runtime_spawn from the test thread runs every coroutine exactly once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <arpc/coro.h>
#include <arpc/err.h>
#include <arpc/loop.h>
#include <arpc/runtime.h>

#include "runtime/coro.h"
#include "test.h"

/* TSan makes every fiber expensive (its own shadow state), so its counts are smaller. */
#if defined(__SANITIZE_THREAD__)
#define ROUNDS  1000
#define N_SPAWN 1000
#else
#define ROUNDS  5000
#define N_SPAWN 10000
#endif

static void assert_not_early(int64_t start_ns, int64_t ms)
{
    ASSERT_GE(test_now_ns() - start_ns, ms * 1000000);
}

/* Two started loops, standing in for two runtime threads. */
typedef struct two_loops {
    arpc_loop *a;
    arpc_loop *b;
} two_loops;

static void start_loops(two_loops *l)
{
    ASSERT_OK(arpc_loop_create(NULL, &l->a));
    ASSERT_OK(arpc_loop_create(NULL, &l->b));
    ASSERT_OK(arpc_loop_start(l->a));
    ASSERT_OK(arpc_loop_start(l->b));
}

static void stop_loops(two_loops *l)
{
    arpc_loop_destroy(l->a);
    arpc_loop_destroy(l->b);
}

/* The test thread waits for `wg` (as a plain thread), failing after 30 s. */
static void wait_done(arpc_wg *wg)
{
    ASSERT_OK(arpc_wg_wait(wg, 30000));
}

/* ---- ping-pong with racing deadlines ------------------------------------------------- */

typedef struct pingpong {
    arpc_event ping;
    arpc_event pong;
    arpc_wg done;
    _Atomic int served;
    _Atomic int timeouts;
} pingpong;

/* Timeouts cycle through "forever", "now" and one millisecond, so some waits
 * time out just as the signal arrives. */
static int64_t round_timeout(int round)
{
    static const int64_t pattern[] = {-1, 0, 1, 2};
    return pattern[round % 4];
}

static void wait_retrying(pingpong *p, arpc_event *ev, int round)
{
    int rc;
    while ((rc = arpc_event_wait(ev, round_timeout(round))) == ARPC_ETIMEDOUT)
        atomic_fetch_add(&p->timeouts, 1);
    ASSERT_OK(rc);
}

/* Side A: waits for ping, answers pong.  Runs as a coroutine. */
static void side_a(void *arg)
{
    pingpong *p = arg;
    for (int r = 0; r < ROUNDS; r++) {
        wait_retrying(p, &p->ping, r);
        atomic_fetch_add(&p->served, 1);
        arpc_event_signal(&p->pong);
    }
    arpc_wg_done(&p->done);
}

/* Side B: sends ping, waits for pong.  Runs as a coroutine or a plain thread. */
static void side_b(void *arg)
{
    pingpong *p = arg;
    for (int r = 0; r < ROUNDS; r++) {
        arpc_event_signal(&p->ping);
        wait_retrying(p, &p->pong, r + 1);
        ASSERT_EQ(atomic_load(&p->served), r + 1);
    }
    arpc_wg_done(&p->done);
}

static void *side_b_thread(void *arg)
{
    side_b(arg);
    return NULL;
}

static void pingpong_init(pingpong *p)
{
    arpc_event_init(&p->ping);
    arpc_event_init(&p->pong);
    arpc_wg_init(&p->done, 2);
    atomic_init(&p->served, 0);
    atomic_init(&p->timeouts, 0);
}

static void test_event_between_loops(void)
{
    two_loops l;
    pingpong p;
    start_loops(&l);
    pingpong_init(&p);
    ASSERT_OK(arpc_coro_spawn(l.a, side_a, &p));
    ASSERT_OK(arpc_coro_spawn(l.b, side_b, &p));
    wait_done(&p.done);
    ASSERT_EQ(atomic_load(&p.served), ROUNDS);
    fprintf(stderr, "     %d rounds, %d timed-out waits\n", ROUNDS, atomic_load(&p.timeouts));
    stop_loops(&l);
}

static void test_event_coroutine_and_thread(void)
{
    two_loops l;
    pingpong p;
    pthread_t thread;
    start_loops(&l);
    pingpong_init(&p);
    ASSERT_OK(arpc_coro_spawn(l.a, side_a, &p));
    ASSERT_EQ(pthread_create(&thread, NULL, side_b_thread, &p), 0);
    wait_done(&p.done);
    pthread_join(thread, NULL);
    ASSERT_EQ(atomic_load(&p.served), ROUNDS);
    stop_loops(&l);
}

/* ---- one-shot waits and timeouts ----------------------------------------------------- */

typedef struct oneshot {
    arpc_event ev;
    arpc_wg done;
    int rc;
} oneshot;

static void timed_waiter(void *arg)
{
    oneshot *o = arg;
    int64_t start = test_now_ns();
    o->rc = arpc_event_wait(&o->ev, 40);
    assert_not_early(start, 40);
    arpc_wg_done(&o->done);
}

static void forever_waiter(void *arg)
{
    oneshot *o = arg;
    o->rc = arpc_event_wait(&o->ev, -1);
    arpc_wg_done(&o->done);
}

/* The waiter has registered on the event: a signal now wakes it. */
static bool is_waiting(void *arg)
{
    return arpc__event_has_waiter(&((oneshot *)arg)->ev);
}

static void signaller(void *arg)
{
    arpc_event_signal(arg);
}

/* Signals once the waiter has parked, so the signal wakes it rather than
 * being kept for it: polls the event's state (bounded), yielding the loop. */
static void delayed_signaller(void *arg)
{
    for (int i = 0; i < 10000 && !arpc__event_has_waiter(arg); i++)
        ASSERT_OK(arpc_coro_sleep_ms(1));
    ASSERT_TRUE(arpc__event_has_waiter(arg));
    arpc_event_signal(arg);
}

static void test_event_timeouts(void)
{
    two_loops l;
    oneshot o = {0};
    start_loops(&l);
    /* A coroutine on a loop thread times out. */
    arpc_event_init(&o.ev);
    arpc_wg_init(&o.done, 1);
    ASSERT_OK(arpc_coro_spawn(l.a, timed_waiter, &o));
    wait_done(&o.done);
    ASSERT_ERR(o.rc, ARPC_ETIMEDOUT);
    /* A plain thread times out. */
    int64_t start = test_now_ns();
    ASSERT_ERR(arpc_event_wait(&o.ev, 40), ARPC_ETIMEDOUT);
    assert_not_early(start, 40);
    ASSERT_ERR(arpc_event_wait(&o.ev, 0), ARPC_ETIMEDOUT);
    stop_loops(&l);
}

static void test_event_wakes_across_threads(void)
{
    two_loops l;
    oneshot o = {0};
    start_loops(&l);
    /* Coroutine waiter on A, woken by a plain thread (this one). */
    arpc_event_init(&o.ev);
    arpc_wg_init(&o.done, 1);
    o.rc = 1;
    ASSERT_OK(arpc_coro_spawn(l.a, forever_waiter, &o));
    ASSERT_TRUE(wait_until(is_waiting, &o, 10000));
    arpc_event_signal(&o.ev);
    wait_done(&o.done);
    ASSERT_OK(o.rc);
    /* Coroutine waiter on A, woken by a coroutine on B. */
    arpc_event_init(&o.ev);
    arpc_wg_init(&o.done, 1);
    o.rc = 1;
    ASSERT_OK(arpc_coro_spawn(l.a, forever_waiter, &o));
    ASSERT_TRUE(wait_until(is_waiting, &o, 10000));
    ASSERT_OK(arpc_coro_spawn(l.b, signaller, &o.ev));
    wait_done(&o.done);
    ASSERT_OK(o.rc);
    /* Plain-thread waiter (this one), woken by a coroutine on B. */
    arpc_event_init(&o.ev);
    ASSERT_OK(arpc_coro_spawn(l.b, delayed_signaller, &o.ev));
    ASSERT_OK(arpc_event_wait(&o.ev, 10000));
    stop_loops(&l);
}

/* ---- wait groups and the runtime ----------------------------------------------------- */

#define N_THREADS 4

typedef struct counted {
    arpc_wg wg;
    _Atomic int ran;
    _Atomic int per_loop[2];
    arpc_runtime *rt;
} counted;

static void counted_coro(void *arg)
{
    counted *c = arg;
    atomic_fetch_add(&c->ran, 1);
    for (unsigned i = 0; i < 2; i++) {
        if (arpc_loop_current() == arpc_runtime_loop(c->rt, i))
            atomic_fetch_add(&c->per_loop[i], 1);
    }
    ASSERT_OK(arpc_coro_yield());
    arpc_wg_done(&c->wg);
}

static void test_runtime_spawn_and_wait_group(void)
{
    arpc_runtime_opts opts;
    counted c = {0};
    arpc_runtime_opts_init(&opts);
    opts.loops = 2;
    ASSERT_OK(arpc_runtime_create(&opts, &c.rt));
    ASSERT_EQ(arpc_runtime_loop_count(c.rt), 2);
    ASSERT_TRUE(arpc_runtime_loop(c.rt, 2) == NULL);
    arpc_wg_init(&c.wg, N_SPAWN);
    for (int i = 0; i < N_SPAWN; i++)
        ASSERT_OK(arpc_runtime_spawn(c.rt, counted_coro, &c));
    wait_done(&c.wg);
    ASSERT_EQ(atomic_load(&c.ran), N_SPAWN);
    /* Round-robin placement: an even split. */
    ASSERT_EQ(atomic_load(&c.per_loop[0]), N_SPAWN / 2);
    ASSERT_EQ(atomic_load(&c.per_loop[1]), N_SPAWN / 2);
    arpc_runtime_destroy(c.rt);
    arpc_runtime_destroy(NULL);
}

typedef struct thread_done {
    arpc_wg wg;
    arpc_wg finished;
    int rc;
} thread_done;

static void wg_waiter(void *arg)
{
    thread_done *t = arg;
    t->rc = arpc_wg_wait(&t->wg, 20000);
    arpc_wg_done(&t->finished);
}

static void *done_many(void *arg)
{
    thread_done *t = arg;
    for (int i = 0; i < 1000; i++)
        arpc_wg_done(&t->wg);
    return NULL;
}

static void test_wait_group_done_from_threads(void)
{
    two_loops l;
    thread_done t;
    pthread_t threads[N_THREADS];
    start_loops(&l);
    arpc_wg_init(&t.wg, N_THREADS * 1000);
    arpc_wg_init(&t.finished, 1);
    t.rc = 1;
    ASSERT_OK(arpc_coro_spawn(l.a, wg_waiter, &t));
    for (int i = 0; i < N_THREADS; i++)
        ASSERT_EQ(pthread_create(&threads[i], NULL, done_many, &t), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(threads[i], NULL);
    wait_done(&t.finished);
    ASSERT_OK(t.rc);
    stop_loops(&l);
}

int main(void)
{
    RUN_TEST(test_event_between_loops);
    RUN_TEST(test_event_coroutine_and_thread);
    RUN_TEST(test_event_timeouts);
    RUN_TEST(test_event_wakes_across_threads);
    RUN_TEST(test_runtime_spawn_and_wait_group);
    RUN_TEST(test_wait_group_done_from_threads);
    return 0;
}

/*
 * Coroutines on one loop run on the test thread (built twice: asm and ucontext
 * switch).  Proves: 100,000 coroutines are created, switched (each yields a
 * few times) and finished with every stack back in the pool and nothing
 * leaked (ASan); sleeps are never early and wake in deadline order; a wait
 * group fans out and in, and times out; an event keeps a signal sent before
 * the wait, times out with ARPC_ETIMEDOUT (not early), and is woken by
 * another coroutine; yields run coroutines round-robin in spawn order; a
 * spawn never runs the new coroutine inside the call; registers (including
 * floating point) survive switches; a coroutine can use most of its stack;
 * every callee-saved register holds its own value in each coroutine; each
 * coroutine keeps its own floating-point rounding mode.
 */
#include <fenv.h>
#include <time.h>

#include <arpc/coro.h>
#include <arpc/err.h>
#include <arpc/loop.h>
#include <arpc/timer.h>

#include "runtime/loop.h"
#include "test.h"

#define N_COROS 100000
#define BATCH   1000
#define YIELDS  3

static void assert_not_early(int64_t start_ns, int64_t ms)
{
    ASSERT_GE(test_now_ns() - start_ns, ms * 1000000);
}

/* ---- harness: a main coroutine on a loop that runs on the test thread ---------------- */

typedef struct main_ctx {
    void (*body)(void *arg);
    void *arg;
} main_ctx;

static void watchdog_fired(void *unused)
{
    test_fail(__FILE__, __LINE__, "watchdog: the test coroutine did not finish in time");
}

static void main_coro(void *arg)
{
    main_ctx *ctx = arg;
    ASSERT_TRUE(arpc_coro_in());
    ASSERT_OK(arpc_timer_add(arpc_loop_current(), 50000, watchdog_fired, NULL, NULL));
    ctx->body(ctx->arg);
    arpc_loop_stop(arpc_loop_current());
}

/* Runs `body(arg)` in a coroutine until it returns; then checks that every
 * coroutine of the loop has finished and its stack went back to the pool. */
static void run_main(const arpc_loop_opts *opts, void (*body)(void *), void *arg)
{
    arpc_loop *loop = NULL;
    main_ctx ctx = {body, arg};
    ASSERT_OK(arpc_loop_create(opts, &loop));
    ASSERT_OK(arpc_coro_spawn(loop, main_coro, &ctx));
    ASSERT_OK(arpc_loop_run(loop));
    ASSERT_EQ(loop->live_coros, 0);
    ASSERT_LE(loop->free_stack_count, loop->stack_pool_max);
    arpc_loop_destroy(loop);
}

/* ---- 100,000 coroutines -------------------------------------------------------------- */

typedef struct many {
    arpc_wg wg;
    long started;
    long steps;
    long finished;
} many;

static void many_child(void *arg)
{
    many *m = arg;
    m->started++;
    for (int i = 0; i < YIELDS; i++) {
        m->steps++;
        ASSERT_OK(arpc_coro_yield());
    }
    m->finished++;
    arpc_wg_done(&m->wg);
}

static void many_body(void *arg)
{
    many *m = arg;
    arpc_loop *loop = arpc_loop_current();
    /* Batches bound the number of live stacks (and mappings) at a time. */
    for (int b = 0; b < N_COROS / BATCH; b++) {
        arpc_wg_init(&m->wg, BATCH);
        for (int i = 0; i < BATCH; i++)
            ASSERT_OK(arpc_coro_spawn(loop, many_child, m));
        ASSERT_OK(arpc_wg_wait(&m->wg, -1));
        ASSERT_EQ(m->finished, (long)(b + 1) * BATCH);
    }
    /* Stacks are pooled: the pool is full, not one stack per coroutine. */
    ASSERT_EQ(loop->free_stack_count, BATCH);
}

static void test_100k_coroutines(void)
{
    many m = {0};
    run_main(NULL, many_body, &m);
    ASSERT_EQ(m.started, N_COROS);
    ASSERT_EQ(m.steps, (long)N_COROS * YIELDS);
    ASSERT_EQ(m.finished, N_COROS);
}

/* ---- sleep --------------------------------------------------------------------------- */

typedef struct sleepers {
    arpc_wg wg;
    int order[10];
    int woken;
    int index[10];
    int64_t start_ns[10];
} sleepers;

static sleepers *sleepers_current;

static void sleeper(void *arg)
{
    int i = *(int *)arg;
    sleepers *s = sleepers_current;
    int64_t ms = (10 - i) * 4;
    s->start_ns[i] = test_now_ns();
    ASSERT_OK(arpc_coro_sleep_ms(ms));
    assert_not_early(s->start_ns[i], ms);
    s->order[s->woken++] = i;
    arpc_wg_done(&s->wg);
}

static void sleep_body(void *arg)
{
    static const int64_t delays[] = {0, 1, 5, 20, 50};
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        int64_t start = test_now_ns();
        ASSERT_OK(arpc_coro_sleep_ms(delays[i]));
        assert_not_early(start, delays[i]);
    }
    ASSERT_OK(arpc_coro_sleep_ms(-5));
    sleepers *s = arg;
    sleepers_current = s;
    arpc_wg_init(&s->wg, 10);
    for (int i = 0; i < 10; i++) {
        s->index[i] = i;
        ASSERT_OK(arpc_coro_spawn(arpc_loop_current(), sleeper, &s->index[i]));
    }
    ASSERT_OK(arpc_wg_wait(&s->wg, -1));
}

static void test_sleep_not_early(void)
{
    sleepers s = {0};
    run_main(NULL, sleep_body, &s);
    /* Wake order follows the deadlines (start + delay), whatever stalls
     * separated the starts; 2 ms allow for the gap between our clock read
     * and the library's. */
    for (int k = 1; k < 10; k++) {
        int a = s.order[k - 1];
        int b = s.order[k];
        ASSERT_LE(s.start_ns[a] + (10 - a) * 4000000LL,
                  s.start_ns[b] + (10 - b) * 4000000LL + 2000000);
    }
    int64_t start = test_now_ns();
    ASSERT_OK(arpc_coro_sleep_ms(10)); /* plain thread: sleeps the thread */
    assert_not_early(start, 10);
}

/* ---- wait group ---------------------------------------------------------------------- */

typedef struct fanout {
    arpc_wg wg;
    int done;
} fanout;

static void fanout_child(void *arg)
{
    fanout *f = arg;
    ASSERT_OK(arpc_coro_sleep_ms((int64_t)(test_rand() % 10)));
    f->done++;
    arpc_wg_done(&f->wg);
}

static void wg_body(void *arg)
{
    fanout *f = arg;
    arpc_wg_init(&f->wg, 0);
    ASSERT_OK(arpc_wg_wait(&f->wg, 0)); /* nothing to wait for */
    for (int i = 0; i < 100; i++) {
        arpc_wg_add(&f->wg, 1);
        ASSERT_OK(arpc_coro_spawn(arpc_loop_current(), fanout_child, f));
    }
    ASSERT_OK(arpc_wg_wait(&f->wg, -1));
    ASSERT_EQ(f->done, 100);

    arpc_wg wg;
    arpc_wg_init(&wg, 1);
    int64_t start = test_now_ns();
    ASSERT_ERR(arpc_wg_wait(&wg, 30), ARPC_ETIMEDOUT);
    assert_not_early(start, 30);
    arpc_wg_done(&wg);
    ASSERT_OK(arpc_wg_wait(&wg, -1));
}

static void test_wait_group_fan_out(void)
{
    fanout f = {0};
    test_seed();
    run_main(NULL, wg_body, &f);
}

/* ---- event --------------------------------------------------------------------------- */

typedef struct ev_pair {
    arpc_event ev;
    arpc_wg wg;
    bool waiting;
    int wait_rc;
} ev_pair;

static void ev_waiter(void *arg)
{
    ev_pair *p = arg;
    p->waiting = true;
    p->wait_rc = arpc_event_wait(&p->ev, 10000);
    arpc_wg_done(&p->wg);
}

static void event_body(void *arg)
{
    arpc_event ev;
    arpc_event_init(&ev);
    ASSERT_ERR(arpc_event_wait(&ev, 0), ARPC_ETIMEDOUT);
    int64_t start = test_now_ns();
    ASSERT_ERR(arpc_event_wait(&ev, 25), ARPC_ETIMEDOUT);
    assert_not_early(start, 25);
    /* A signal with nobody waiting is kept; two signals are one. */
    arpc_event_signal(&ev);
    arpc_event_signal(&ev);
    ASSERT_OK(arpc_event_wait(&ev, 0));
    ASSERT_ERR(arpc_event_wait(&ev, 0), ARPC_ETIMEDOUT);

    ev_pair *p = arg;
    arpc_event_init(&p->ev);
    arpc_wg_init(&p->wg, 1);
    p->wait_rc = 1;
    ASSERT_OK(arpc_coro_spawn(arpc_loop_current(), ev_waiter, p));
    while (!p->waiting)
        ASSERT_OK(arpc_coro_yield());
    ASSERT_OK(arpc_coro_sleep_ms(5));
    ASSERT_EQ(p->wait_rc, 1); /* still parked */
    arpc_event_signal(&p->ev);
    ASSERT_OK(arpc_wg_wait(&p->wg, -1));
    ASSERT_OK(p->wait_rc);
}

static void test_event_in_one_loop(void)
{
    ev_pair p = {0};
    run_main(NULL, event_body, &p);
}

/* ---- yield order, spawn semantics ---------------------------------------------------- */

typedef struct trace {
    arpc_wg wg;
    char log[16];
    int n;
    char names[3];
} trace;

static trace *trace_current;

static void traced(void *arg)
{
    char name = *(char *)arg;
    trace *t = trace_current;
    for (int r = 0; r < 3; r++) {
        t->log[t->n++] = name;
        ASSERT_OK(arpc_coro_yield());
    }
    arpc_wg_done(&t->wg);
}

static void yield_body(void *arg)
{
    trace *t = arg;
    trace_current = t;
    arpc_wg_init(&t->wg, 3);
    memcpy(t->names, "ABC", 3);
    for (int i = 0; i < 3; i++)
        ASSERT_OK(arpc_coro_spawn(arpc_loop_current(), traced, &t->names[i]));
    /* Spawned, but none has run yet: spawn never runs the coroutine inline. */
    ASSERT_EQ(t->n, 0);
    ASSERT_OK(arpc_wg_wait(&t->wg, -1));
}

static void not_a_coroutine(void *arg)
{
    *(int *)arg = arpc_coro_yield();
    ASSERT_FALSE(arpc_coro_in());
}

static void test_yield_order(void)
{
    trace t = {0};
    run_main(NULL, yield_body, &t);
    ASSERT_EQ(t.n, 9);
    ASSERT_MEMEQ(t.log, "ABCABCABC", 9);
    /* Neither a plain thread nor a loop task (no coroutine) may yield. */
    ASSERT_FALSE(arpc_coro_in());
    ASSERT_ERR(arpc_coro_yield(), ARPC_ENOTCORO);
    arpc_loop *loop = NULL;
    int rc = 0;
    ASSERT_OK(arpc_loop_create(NULL, &loop));
    ASSERT_OK(arpc_loop_submit(loop, not_a_coroutine, &rc));
    arpc_loop_stop(loop);
    ASSERT_OK(arpc_loop_run(loop));
    arpc_loop_destroy(loop);
    ASSERT_ERR(rc, ARPC_ENOTCORO);
    ASSERT_ERR(arpc_coro_spawn(NULL, traced, NULL), ARPC_EINVAL);
}

/* ---- registers and stack ------------------------------------------------------------- */

typedef struct fp_state {
    arpc_wg wg;
    double results[2];
} fp_state;

static fp_state *fp_current;

static void fp_worker(void *arg)
{
    int id = *(int *)arg;
    double x = 1.0 + id;
    for (int i = 0; i < 1000; i++) {
        x = x * 1.0001 + 0.5 / (i + 1);
        ASSERT_OK(arpc_coro_yield());
    }
    fp_current->results[id] = x;
    arpc_wg_done(&fp_current->wg);
}

static double fp_reference(int id)
{
    double x = 1.0 + id;
    for (int i = 0; i < 1000; i++)
        x = x * 1.0001 + 0.5 / (i + 1);
    return x;
}

__attribute__((noinline)) static unsigned use_stack(size_t bytes)
{
    volatile unsigned char big[48 * 1024];
    ASSERT_LE(bytes, sizeof(big));
    for (size_t i = 0; i < bytes; i += 64)
        big[i] = (unsigned char)i;
    unsigned sum = 0;
    for (size_t i = 0; i < bytes; i += 64)
        sum += big[i];
    return sum;
}

static void regs_body(void *arg)
{
    fp_state *s = arg;
    static int ids[2] = {0, 1};
    fp_current = s;
    arpc_wg_init(&s->wg, 2);
    for (int i = 0; i < 2; i++)
        ASSERT_OK(arpc_coro_spawn(arpc_loop_current(), fp_worker, &ids[i]));
    ASSERT_GT(use_stack(48 * 1024), 0);
    ASSERT_OK(arpc_wg_wait(&s->wg, -1));
}

static void test_registers_and_stack_survive_switches(void)
{
    fp_state s = {0};
    arpc_loop_opts opts;
    arpc_loop_opts_init(&opts);
    opts.coro_stack_size = 64 * 1024;
    run_main(&opts, regs_body, &s);
    for (int i = 0; i < 2; i++)
        ASSERT_TRUE(s.results[i] == fp_reference(i));
}

/* ---- callee-saved registers --------------------------------------------------------- */

#define LIVE_ROUNDS 300

typedef struct live_sums {
    uint64_t ints;
    double fps;
} live_sums;

/* Keeps ten integers and eight doubles live across every yield: more than a
 * compiler can park on the stack cheaply, so it keeps them in the
 * callee-saved registers (x19-x28 and d8-d15 on aarch64; rbx, rbp and
 * r12-r15 on x86-64, where every SSE register is caller-saved and the doubles
 * are spilled), and the coroutines running in between hold different values
 * in the same registers.  A register the switch forgets changes the sums. */
__attribute__((noinline)) static live_sums live_values(int id, bool yield)
{
    uint64_t a = (uint64_t)id + 1, b = a * 3, c = a * 5, d = a * 7, e = a * 11;
    uint64_t f = a * 13, g = a * 17, h = a * 19, i = a * 23, j = a * 29;
    double p = id + 0.5, q = p * 2, r = p * 3, s = p * 5, t = p * 7, u = p * 11;
    double v = p * 13, w = p * 17;
    for (int k = 0; k < LIVE_ROUNDS; k++) {
        if (yield)
            ASSERT_OK(arpc_coro_yield());
        a = a * 6364136223846793005u + j;
        b = (b ^ a) * 3 + 1;
        c = (c ^ b) * 5 + 2;
        d = (d ^ c) * 7 + 3;
        e = (e ^ d) * 11 + 4;
        f = (f ^ e) * 13 + 5;
        g = (g ^ f) * 17 + 6;
        h = (h ^ g) * 19 + 7;
        i = (i ^ h) * 23 + 8;
        j = (j ^ i) * 29 + 9;
        p = p * 0.999 + w * 0.001;
        q = q * 0.998 + p * 0.002;
        r = r * 0.997 + q * 0.003;
        s = s * 0.996 + r * 0.004;
        t = t * 0.995 + s * 0.005;
        u = u * 0.994 + t * 0.006;
        v = v * 0.993 + u * 0.007;
        w = w * 0.992 + v * 0.008;
    }
    live_sums sums = {a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j, p + q + r + s + t + u + v + w};
    return sums;
}

#define LIVE_WORKERS 3

typedef struct live_state {
    arpc_wg wg;
    int ids[LIVE_WORKERS];
    live_sums sums[LIVE_WORKERS];
} live_state;

static live_state *live_current;

static void live_worker(void *arg)
{
    int id = *(int *)arg;
    live_current->sums[id] = live_values(id, true);
    arpc_wg_done(&live_current->wg);
}

static void live_body(void *arg)
{
    live_state *s = arg;
    live_current = s;
    arpc_wg_init(&s->wg, LIVE_WORKERS);
    for (int i = 0; i < LIVE_WORKERS; i++) {
        s->ids[i] = i;
        ASSERT_OK(arpc_coro_spawn(arpc_loop_current(), live_worker, &s->ids[i]));
    }
    ASSERT_OK(arpc_wg_wait(&s->wg, -1));
}

static void test_callee_saved_registers_per_coroutine(void)
{
    live_state s;
    memset(&s, 0, sizeof(s));
    run_main(NULL, live_body, &s);
    for (int i = 0; i < LIVE_WORKERS; i++) {
        live_sums want = live_values(i, false);
        ASSERT_EQ(s.sums[i].ints, want.ints);
        ASSERT_TRUE(s.sums[i].fps == want.fps);
    }
}

/* ---- floating-point control ---------------------------------------------------------- */

/* The rounding mode lives in a control register (MXCSR and the x87 control
 * word on x86-64, FPCR on aarch64) that the ABIs make callee-saved, so each
 * coroutine must keep its own across switches, like any thread would. */

#define ROUNDING_WORKERS 3

static const int rounding_modes[ROUNDING_WORKERS] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};

typedef struct rounding_state {
    arpc_wg wg;
    int ids[ROUNDING_WORKERS];
    double third[ROUNDING_WORKERS];
} rounding_state;

static rounding_state *rounding_current;

/* Volatile, so every division happens at run time under the current mode. */
static volatile double fp_one = 1.0;
static volatile double fp_three = 3.0;

static void rounding_worker(void *arg)
{
    int id = *(int *)arg;
    int mode = rounding_modes[id];
    ASSERT_EQ(fesetround(mode), 0);
    double third = fp_one / fp_three;
    for (int i = 0; i < 20; i++) {
        ASSERT_OK(arpc_coro_yield());
        ASSERT_EQ(fegetround(), mode);
        ASSERT_TRUE(fp_one / fp_three == third);
    }
    rounding_current->third[id] = third;
    arpc_wg_done(&rounding_current->wg);
}

static void rounding_body(void *arg)
{
    rounding_state *s = arg;
    rounding_current = s;
    ASSERT_EQ(fegetround(), FE_TONEAREST);
    arpc_wg_init(&s->wg, ROUNDING_WORKERS);
    for (int i = 0; i < ROUNDING_WORKERS; i++) {
        s->ids[i] = i;
        ASSERT_OK(arpc_coro_spawn(arpc_loop_current(), rounding_worker, &s->ids[i]));
    }
    ASSERT_OK(arpc_wg_wait(&s->wg, -1));
    ASSERT_EQ(fegetround(), FE_TONEAREST);
}

static void test_rounding_mode_per_coroutine(void)
{
    rounding_state s;
    memset(&s, 0, sizeof(s));
    run_main(NULL, rounding_body, &s);
    ASSERT_EQ(fegetround(), FE_TONEAREST);
    /* The modes really applied: 1/3 rounded up is above 1/3 rounded down. */
    ASSERT_TRUE(s.third[0] > s.third[1]);
    ASSERT_TRUE(s.third[1] == s.third[2]);
}

int main(void)
{
    RUN_TEST(test_100k_coroutines);
    RUN_TEST(test_sleep_not_early);
    RUN_TEST(test_wait_group_fan_out);
    RUN_TEST(test_event_in_one_loop);
    RUN_TEST(test_yield_order);
    RUN_TEST(test_registers_and_stack_survive_switches);
    RUN_TEST(test_callee_saved_registers_per_coroutine);
    RUN_TEST(test_rounding_mode_per_coroutine);
    return 0;
}

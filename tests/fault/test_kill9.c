/*
 * A server killed with SIGKILL while 1,000 calls are in flight on one
 * connection: every call completes exactly once, with a connection error,
 * promptly (not at its deadline, not at the end of the server's longer sleep);
 * a server restarted on the same port is used again with no action by the
 * caller.
 * Then the kill races the deadlines: 1,000 calls whose deadlines are spread
 * over 200 ms, the server killed when half of them have timed out; each call
 * completes once, at its deadline (not before) or with the connection's error.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "test.h"

#define CALLS 1000
/* All calls done within this of the kill: far below the deadlines, with room
 * for a sanitizer build on a loaded machine. */
#ifdef FAULT_SANITIZED
#define KILL_BOUND_MS 4000
#else
#define KILL_BOUND_MS 2000
#endif
/*
 * The server starts the CALLS sleeps (a coroutine each) as it decodes them,
 * and reads nothing behind them until it has: until then neither the barrier
 * behind them nor a PING of the client's is answered.  Without TSan that
 * takes about 10 ms (ASan: 40-190 ms).  Under TSan every coroutine is also a
 * TSan fiber, about 0.9 ms of server CPU to create (measured on a 2-core VM:
 * 700-1,300 ms for the 1,000, most of it page faults zeroing the fibers' TSan
 * state, 280 KB each), 0.8-1.3 s of wall time on an idle machine.  On a
 * loaded one (test_many_conns beside it, as under ctest -j2) it passed 5 s in
 * 3 runs of 54, and the barrier, then bounded by 5 s, failed with
 * ARPC_ETIMEDOUT; with two more sanitizer tests and a build beside it, it took
 * up to 13.8 s.  So this bound is the barrier's timeout and the channel's
 * heartbeat timeout both.
 */
#ifdef FAULT_TSAN
#define START_BOUND_MS 20000
#else
#define START_BOUND_MS 5000
#endif
/* The deadlines come after the server's start of the calls and the kill's
 * bound (and a second for sending the calls and sending the kill), so no call
 * can time out before the kill ends it; the sleeps outlast the deadlines.
 * The test waits past the deadlines to check that none completes twice. */
#define CALL_TIMEOUT_MS (START_BOUND_MS + KILL_BOUND_MS + 1000)
#define SLEEP_MS        (2 * CALL_TIMEOUT_MS)

typedef struct timers_until {
    int64_t until_ms;
    arpc_wg wg;
} timers_until;

static void sleep_until_body(void *arg)
{
    timers_until *t = arg;
    int64_t left = t->until_ms - test_now_ms();
    if (left > 0)
        ASSERT_OK(arpc_coro_sleep_ms(left));
    arpc_wg_done(&t->wg);
}

/* Returns once every loop of `rt` has run its timers due up to `until_ms`
 * (test_now_ms() time): a coroutine on each sleeps until then, and a loop's
 * timers fire in deadline order, so no earlier call deadline can fire later. */
static void run_loop_timers_until(arpc_runtime *rt, int64_t until_ms)
{
    timers_until t = {.until_ms = until_ms};
    unsigned n = arpc_runtime_loop_count(rt);
    arpc_wg_init(&t.wg, n);
    for (unsigned i = 0; i < n; i++)
        ASSERT_OK(arpc_coro_spawn(arpc_runtime_loop(rt, i), sleep_until_body, &t));
    ASSERT_OK(arpc_wg_wait(&t.wg, (until_ms - test_now_ms()) + 20000));
}

/* The echo behind the sleeps on their one connection: once it is answered
 * the server holds all of them.  A failure says what the channel saw and how
 * the server spent the wait (on a CPU, waiting for one), so a server too slow
 * to start the sleeps or starved of CPU reads differently from a lost echo
 * (neither near the wait) or a lost connection. */
static void barrier_after(arpc_channel *ch, const fault_calls *set, const fault_proc *srv)
{
    int64_t begun = test_now_ms();
    int64_t cpu_begun = test_proc_cpu_ms(srv->pid);
    int64_t runq_begun = test_proc_runq_wait_ms(srv->pid);
    int rc = fault_echo_call(ch, START_BOUND_MS);
    int64_t waited = test_now_ms() - begun;
    int64_t cpu = test_proc_cpu_ms(srv->pid) - cpu_begun;
    int64_t runq = test_proc_runq_wait_ms(srv->pid) - runq_begun;
    if (rc == 0) {
        fprintf(stderr,
                "  the server held the %zu sleeps %lld ms after the last was sent (%lld ms on "
                "a CPU, %lld ms waiting for one)\n",
                set->count, (long long)waited, (long long)cpu, (long long)runq);
        return;
    }
    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    test_fail(__FILE__, __LINE__,
              "the echo behind %zu sleeps failed with %s after %lld ms (bound %d ms), the "
              "server %lld ms on a CPU and %lld ms waiting for one meanwhile; %zu of the sleeps "
              "completed; channel: %llu connections, %llu heartbeat failures, %llu late answers",
              set->count, arpc_err_name(rc), (long long)waited, START_BOUND_MS, (long long)cpu,
              (long long)runq, atomic_load(&set->completed), (unsigned long long)stats.reconnects,
              (unsigned long long)stats.heartbeat_failures, (unsigned long long)stats.late_answers);
}

static bool is_conn_error(int st)
{
    return st == ARPC_ECLOSED || st == ARPC_ECONNRESET || st == ARPC_EPIPE;
}

static void test_kill9_completes_every_call_once_then_reconnects(void)
{
    fault_proc srv;
    fault_echo_start("127.0.0.1:0", 2, &srv);
    int port = srv.port;
    char target[64];
    fault_addr(target, sizeof(target), port);

    arpc_runtime *rt = fault_runtime(2);
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    copts.connections_per_endpoint = 1;
    copts.reconnect_backoff_max_ms = 500;
    /* The server answers no PING while it starts the sleeps (START_BOUND_MS). */
    copts.heartbeat_timeout_ms = START_BOUND_MS;
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &copts, &ch));
    ASSERT_OK(fault_echo_call(ch, 5000));

    arpc_call_opts opts = fault_call_opts(CALL_TIMEOUT_MS);
    char sleep_ms[16];
    snprintf(sleep_ms, sizeof(sleep_ms), "%d", SLEEP_MS);
    fault_calls set;
    fault_calls_init(&set, CALLS);
    int64_t started = test_now_ms();
    for (size_t i = 0; i < CALLS; i++)
        fault_call_start(&set, i, ch, "sleep", sleep_ms, &opts);
    barrier_after(ch, &set, &srv);
    ASSERT_EQ(atomic_load(&set.completed), 0);

    int64_t killed = test_now_ms();
    fault_proc_signal(&srv, SIGKILL);
    int status = fault_proc_reap(&srv, 5000);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    if (!wait_until(fault_calls_all_done, &set, KILL_BOUND_MS))
        test_fail(__FILE__, __LINE__, "only %zu of %d calls completed within %d ms of the kill",
                  atomic_load(&set.completed), CALLS, KILL_BOUND_MS);
    int64_t slowest = 0;
    int closed = 0;
    int reset = 0;
    for (size_t i = 0; i < CALLS; i++) {
        fault_call *c = &set.calls[i];
        ASSERT_EQ(atomic_load(&c->done), 1);
        int st = atomic_load(&c->status);
        if (st != ARPC_ECLOSED && st != ARPC_ECONNRESET)
            test_fail(__FILE__, __LINE__, "call %zu ended with %d %s, want ECLOSED or ECONNRESET",
                      i, st, arpc_err_name(st));
        closed += st == ARPC_ECLOSED;
        reset += st == ARPC_ECONNRESET;
        int64_t after_kill = atomic_load(&c->end_ms) - killed;
        if (after_kill > slowest)
            slowest = after_kill;
    }
    fprintf(stderr, "  %d calls: %d ECLOSED, %d ECONNRESET, last one %lld ms after the kill\n",
            CALLS, closed, reset, (long long)slowest);
    ASSERT_LT(slowest, KILL_BOUND_MS);

    /* While nothing listens, calls fail fast with a connection error. */
    int rc = fault_echo_call(ch, 1000);
    ASSERT_TRUE(rc == ARPC_ECONNREFUSED || rc == ARPC_ECLOSED || rc == ARPC_ECONNRESET);

    /* Same port again: the slot reconnects by itself (backoff capped at 500 ms). */
    char listen[64];
    fault_addr(listen, sizeof(listen), port);
    fault_echo_start(listen, 2, &srv);
    int64_t restarted = test_now_ms();
    fault_echo_wait w = {.ch = ch};
    ASSERT_TRUE(wait_until(fault_echo_succeeds, &w, 10000));
    fprintf(stderr, "  restarted server answered after %lld ms (%d failed calls, last %s)\n",
            (long long)(test_now_ms() - restarted), w.failures, arpc_err_name(w.last_error));
    for (int i = 0; i < 20; i++)
        ASSERT_OK(fault_echo_call(ch, 2000));

    /* No call completes a second time, even when its old deadline passes. */
    run_loop_timers_until(rt, started + CALL_TIMEOUT_MS + 200);
    ASSERT_OK(fault_echo_call(ch, 2000));
    ASSERT_EQ(atomic_load(&set.completed), CALLS);

    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    ASSERT_GE(stats.reconnects, 2);
    ASSERT_EQ(stats.late_answers, 0);

    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    for (size_t i = 0; i < CALLS; i++)
        ASSERT_EQ(atomic_load(&set.calls[i].done), 1);
    fault_calls_fini(&set);

    fault_proc_signal(&srv, SIGTERM);
    status = fault_proc_reap(&srv, 15000);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static bool half_done(void *arg)
{
    fault_calls *set = arg;
    return atomic_load(&set->completed) >= set->count / 2;
}

/* The kill races the deadline timers: calls whose deadlines straddle the
 * kill each complete exactly once, either at their deadline or, if the
 * connection's loss came first, with its error (after the kill). */
static void test_kill9_races_deadlines(void)
{
    enum { SPREAD_MS = 200 };
#ifdef FAULT_SANITIZED
    const int64_t base_ms = 1500; /* after all 1,000 calls are sent, even under TSan */
#else
    const int64_t base_ms = 500;
#endif
    fault_proc srv;
    fault_echo_start("127.0.0.1:0", 2, &srv);
    char target[64];
    fault_addr(target, sizeof(target), srv.port);
    arpc_runtime *rt = fault_runtime(2);
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &copts, &ch));
    ASSERT_OK(fault_echo_call(ch, 5000));

    fault_calls set;
    fault_calls_init(&set, CALLS);
    int64_t timeout_of[CALLS];
    int64_t last_deadline = 0;
    for (size_t i = 0; i < CALLS; i++) {
        arpc_call_opts opts = fault_call_opts(base_ms + (int64_t)(i * 7 % SPREAD_MS));
        timeout_of[i] = opts.timeout_ms;
        fault_call_start(&set, i, ch, "sleep", "20000", &opts);
        if (set.calls[i].start_ms + opts.timeout_ms > last_deadline)
            last_deadline = set.calls[i].start_ms + opts.timeout_ms;
    }
    ASSERT_TRUE(wait_until(half_done, &set, 20000));
    int64_t killed = test_now_ms();
    fault_proc_signal(&srv, SIGKILL);
    (void)fault_proc_reap(&srv, 5000);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, KILL_BOUND_MS));

    int timed_out = 0;
    int lost = 0;
    for (size_t i = 0; i < CALLS; i++) {
        fault_call *c = &set.calls[i];
        ASSERT_EQ(atomic_load(&c->done), 1);
        int st = atomic_load(&c->status);
        int64_t end = atomic_load(&c->end_ms);
        if (st == ARPC_ETIMEDOUT) {
            ASSERT_GE(end - c->start_ms, timeout_of[i] - 1); /* not before its deadline */
            timed_out++;
        } else if (is_conn_error(st)) {
            ASSERT_GE(end, killed);
            lost++;
        } else {
            test_fail(__FILE__, __LINE__, "call %zu ended with %s", i, arpc_err_name(st));
        }
    }
    fprintf(stderr, "  %d calls: %d at their deadline, %d with the connection's loss\n", CALLS,
            timed_out, lost);
    ASSERT_GE(timed_out, CALLS / 2);
    /* Past every deadline (the slot's loop has run its timers that far):
     * no call completed a second time. */
    run_loop_timers_until(rt, last_deadline + 200);
    ASSERT_EQ(atomic_load(&set.completed), CALLS);
    fault_calls_fini(&set);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
}

/* Idempotent calls in flight on a killed server are sent again, to the
 * other server, and succeed within their deadline. */
static void test_kill9_idempotent_calls_retried_elsewhere(void)
{
    enum { N = 200 };

    fault_proc a;
    fault_proc b;
    fault_echo_start("127.0.0.1:0", 1, &a);
    fault_echo_start("127.0.0.1:0", 1, &b);
    char target[128];
    snprintf(target, sizeof(target), "127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
    arpc_runtime *rt = fault_runtime(2);
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &copts, &ch));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(fault_echo_call(ch, 5000));

    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    /* Room for 8 s on A (killed long before they end, even under TSan), then
     * 8 s again on B. */
    opts.timeout_ms = 25000;
    opts.idempotent = true;
    fault_calls set;
    fault_calls_init(&set, N);
    fault_calls_start_all(&set, ch, "sleep", "8000", &opts);
    /* Round robin: these two follow the sleeps on each connection. */
    ASSERT_OK(fault_echo_call(ch, 5000));
    ASSERT_OK(fault_echo_call(ch, 5000));
    ASSERT_EQ(atomic_load(&set.completed), 0);

    fault_proc_signal(&a, SIGKILL);
    fault_proc_reap(&a, 5000);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, 25000 + 2000));
    int failed = 0;
    int first_error = 0;
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(atomic_load(&set.calls[i].done), 1);
        int st = atomic_load(&set.calls[i].status);
        if (st != 0 && failed++ == 0)
            first_error = st;
    }
    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    fprintf(stderr, "  %d idempotent calls, %d failed (first: %s), %llu retries\n", N, failed,
            arpc_err_name(first_error), (unsigned long long)stats.retries);
    ASSERT_EQ(failed, 0);
    ASSERT_GE(stats.retries, N / 2);
    fault_calls_fini(&set);

    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    fault_proc_signal(&b, SIGTERM);
    int status = fault_proc_reap(&b, 15000);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_kill9_completes_every_call_once_then_reconnects);
    RUN_TEST(test_kill9_races_deadlines);
    RUN_TEST(test_kill9_idempotent_calls_retried_elsewhere);
    return 0;
}

/*
 * A server killed with SIGKILL while 1,000 calls are in flight on one
 * connection: every call completes exactly once, with a connection error,
 * promptly (not at its 8 s deadline, not at the server's 20 s sleep); a server
 * restarted on the same port is used again with no action by the caller.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "test.h"

#define CALLS           1000
/* The sleeps (20 s) and deadlines (8 s) outlast any delay before the kill,
 * even under TSan on a loaded machine, so no call can end another way first;
 * the test waits past the deadlines to check that none completes twice. */
#define CALL_TIMEOUT_MS 8000
#define KILL_BOUND_MS   1500 /* all calls done within this of the kill */

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
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &copts, &ch));
    ASSERT_OK(fault_echo_call(ch, 5000));

    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = CALL_TIMEOUT_MS;
    fault_calls set;
    fault_calls_init(&set, CALLS);
    int64_t started = test_now_ms();
    for (size_t i = 0; i < CALLS; i++)
        fault_call_start(&set, i, ch, "sleep", "20000", &opts);
    /* A barrier: the calls above were written to the one connection before
     * this one, so once it is answered the server holds all of them. */
    ASSERT_OK(fault_echo_call(ch, 5000));
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
    int64_t past_deadlines = started + CALL_TIMEOUT_MS + 200;
    while (test_now_ms() < past_deadlines) {
        ASSERT_OK(fault_echo_call(ch, 2000));
        usleep(20 * 1000);
    }
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
    for (size_t i = 0; i < N; i++)
        fault_call_start(&set, i, ch, "sleep", "8000", &opts);
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
    RUN_TEST(test_kill9_idempotent_calls_retried_elsewhere);
    return 0;
}

/*
 * A server that stops answering without closing anything (SIGSTOP: its
 * sockets stay open and the kernel still completes handshakes): calls routed
 * to it end at their deadline, the heartbeat declares its connection dead
 * within interval + timeout, load balancing then avoids it, and after SIGCONT a
 * probe re-admits it.
 *
 * Ejection and re-admission are observed through the library's log messages
 * ("endpoint ADDR ejected ...", "endpoint ADDR re-admitted ..."), which are
 * emitted exactly when the endpoint's state changes.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "test.h"
#include "test_stats.h"

/* 200/400 ms keeps the test short.  A sanitizer build of the child servers
 * can miss a 400 ms PONG on a loaded 2-core machine (seen under TSan), so
 * there the heartbeat is 300/1000 ms. */
#ifdef FAULT_SANITIZED
#define HB_INTERVAL_MS 300
#define HB_TIMEOUT_MS  1000
#else
#define HB_INTERVAL_MS 200
#define HB_TIMEOUT_MS  400
#endif
/* Well below HB_TIMEOUT_MS: on the stopped server the deadline comes first. */
#define SHORT_CALL_MS (HB_TIMEOUT_MS - 150)
#define PROBE_CALLS   20

static struct {
    pthread_mutex_t mu;
    char a_prefix[64]; /* "endpoint 127.0.0.1:PORT " */
    int a_ejected;
    int64_t a_ejected_ms; /* when the first ejection was logged */
    int a_readmitted;
} logs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_log(arpc_log_level level, const char *message, void *user_data)
{
    (void)user_data;
    pthread_mutex_lock(&logs.mu);
    if (logs.a_prefix[0] != '\0' && strstr(message, logs.a_prefix) != NULL) {
        if (strstr(message, " ejected ") != NULL && logs.a_ejected++ == 0)
            logs.a_ejected_ms = test_now_ms();
        logs.a_readmitted += strstr(message, " re-admitted ") != NULL;
    }
    pthread_mutex_unlock(&logs.mu);
    fprintf(stderr, "  log[%d]: %s\n", (int)level, message);
}

static bool a_ejected(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&logs.mu);
    bool yes = logs.a_ejected > 0;
    pthread_mutex_unlock(&logs.mu);
    return yes;
}

static bool a_readmitted(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&logs.mu);
    bool yes = logs.a_readmitted > 0;
    pthread_mutex_unlock(&logs.mu);
    return yes;
}

typedef struct probe_wait {
    arpc_channel *ch;
    int calls;
} probe_wait;

/* Calls (each must succeed) until two more heartbeat failures were counted. */
static bool probes_failed_twice(void *arg)
{
    probe_wait *w = arg;
    ASSERT_OK(fault_echo_call(w->ch, 1000));
    w->calls++;
    usleep(5 * 1000); /* a steady trickle, not a busy loop on a shared machine */
    arpc_channel_stats stats;
    arpc_channel_get_stats(w->ch, &stats);
    return stats.heartbeat_failures >= 3;
}

typedef struct ok_streak {
    arpc_channel *ch;
    int streak;
    int failures;
} ok_streak;

/* True after 20 successful calls in a row. */
static bool twenty_in_a_row(void *arg)
{
    ok_streak *s = arg;
    if (fault_echo_call(s->ch, 1000) == 0) {
        s->streak++;
    } else {
        s->streak = 0;
        s->failures++;
    }
    return s->streak >= 20;
}

static void test_sigstop_heartbeat_ejects_then_probe_readmits(void)
{
    fault_proc a;
    fault_proc b;
    fault_echo_start("127.0.0.1:0", 1, &a);
    fault_echo_start("127.0.0.1:0", 1, &b);
    char target[128];
    snprintf(target, sizeof(target), "127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
    pthread_mutex_lock(&logs.mu);
    snprintf(logs.a_prefix, sizeof(logs.a_prefix), "endpoint 127.0.0.1:%d ", a.port);
    pthread_mutex_unlock(&logs.mu);

    arpc_runtime *rt = fault_runtime(2);
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    copts.lb_policy = ARPC_LB_ROUND_ROBIN;
    copts.heartbeat_interval_ms = HB_INTERVAL_MS;
    copts.heartbeat_timeout_ms = HB_TIMEOUT_MS;
    copts.reconnect_backoff_max_ms = 500;
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &copts, &ch));
    for (int i = 0; i < 20; i++)
        ASSERT_OK(fault_echo_call(ch, 5000)); /* both connected */

    int64_t stopped = test_now_ms();
    fault_proc_signal(&a, SIGSTOP);
    ASSERT_TRUE(fault_proc_wait_state(&a, 'T', false, 5000));

    /* Round robin sends half of these to A: they end at their deadline. */
    arpc_call_opts opts = fault_call_opts(SHORT_CALL_MS);
    fault_calls set;
    fault_calls_init(&set, PROBE_CALLS);
    fault_calls_start_all(&set, ch, "echo", "x", &opts);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, 5000));
    int timed_out = 0;
    int ok = 0;
    for (size_t i = 0; i < PROBE_CALLS; i++) {
        fault_call *c = &set.calls[i];
        int st = atomic_load(&c->status);
        int64_t took = atomic_load(&c->end_ms) - c->start_ms;
        ASSERT_EQ(atomic_load(&c->done), 1);
        if (st == 0) {
            ok++;
            continue;
        }
        ASSERT_ERR(st, ARPC_ETIMEDOUT);
        ASSERT_GE(took, SHORT_CALL_MS - 1); /* not early (test clock truncates to ms) */
        ASSERT_LT(took, SHORT_CALL_MS + 3000);
        timed_out++;
    }
    fprintf(stderr, "  stopped A: %d calls answered by B, %d timed out on A\n", ok, timed_out);
    ASSERT_GE(timed_out, 1);
    ASSERT_GE(ok, 1);
    fault_calls_fini(&set);

    /* The heartbeat notices within interval + timeout of A's last bytes
     * (which came before the SIGSTOP), plus slack for a busy machine, and no
     * sooner than a PING's timeout after the stop. */
    ASSERT_TRUE(WAIT_CHANNEL_STAT_GE(ch, heartbeat_failures, 1, 3000));
    ASSERT_TRUE(wait_until(a_ejected, NULL, 1000));
    pthread_mutex_lock(&logs.mu);
    int64_t noticed = logs.a_ejected_ms - stopped;
    pthread_mutex_unlock(&logs.mu);
    fprintf(stderr, "  A declared dead %lld ms after SIGSTOP (interval %d + timeout %d)\n",
            (long long)noticed, HB_INTERVAL_MS, HB_TIMEOUT_MS);
    ASSERT_GE(noticed, HB_TIMEOUT_MS - 50);
    ASSERT_LT(noticed, HB_INTERVAL_MS + HB_TIMEOUT_MS + 600);

    /* Ejected: everything goes to B and succeeds. */
    for (int i = 0; i < 50; i++)
        ASSERT_OK(fault_echo_call(ch, 1000));

    /* The slot keeps probing A; the stopped kernel still completes the TCP
     * handshake, but a connection counts only once a PING is answered, so
     * the probes fail by heartbeat and A stays out.  Meanwhile every call
     * succeeds on B. */
    probe_wait pw = {.ch = ch};
    ASSERT_TRUE(wait_until(probes_failed_twice, &pw, 10000));
    fprintf(stderr, "  2 more probes of stopped A failed; %d calls meanwhile, all on B\n",
            pw.calls);

    /* SIGCONT: a probe PING is answered and A is re-admitted. */
    int64_t resumed = test_now_ms();
    fault_proc_signal(&a, SIGCONT);
    ASSERT_TRUE(fault_proc_wait_state(&a, 'T', true, 5000));
    ASSERT_TRUE(wait_until(a_readmitted, NULL, 5000));
    fprintf(stderr, "  A re-admitted %lld ms after SIGCONT\n",
            (long long)(test_now_ms() - resumed));

    /* With B gone, only A can answer. */
    fault_proc_signal(&b, SIGKILL);
    int status = fault_proc_reap(&b, 5000);
    ASSERT_TRUE(WIFSIGNALED(status));
    ok_streak streak = {.ch = ch};
    ASSERT_TRUE(wait_until(twenty_in_a_row, &streak, 10000));
    fprintf(stderr, "  after killing B: %d failed calls before 20 in a row succeeded on A\n",
            streak.failures);

    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    fprintf(stderr, "  stats: calls %llu retries %llu reconnects %llu heartbeat_failures %llu\n",
            (unsigned long long)stats.calls, (unsigned long long)stats.retries,
            (unsigned long long)stats.reconnects, (unsigned long long)stats.heartbeat_failures);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);

    fault_proc_signal(&a, SIGTERM);
    status = fault_proc_reap(&a, 15000);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    arpc_log_set_level(ARPC_LOG_INFO);
    arpc_log_set_handler(on_log, NULL);
    RUN_TEST(test_sigstop_heartbeat_ejects_then_probe_readmits);
    return 0;
}

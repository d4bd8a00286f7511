/*
 * A grpcio server stopped gracefully under load, seen by arpc's gRPC channel
 * with a second endpoint.  grpcio's server.stop(grace) sends GOAWAY(2^31-1),
 * a PING, and after its ACK GOAWAY(last stream id); streams that reach it in
 * between (and some just before the first) are answered CANCELLED without
 * running (goaway_probe.py measures it; docs/grpc.md, "When a gRPC server goes
 * away").  Non-idempotent Echo calls flow through the channel (a bounded
 * count, at most WINDOW in flight) while server A stops, with Sleep calls running on A: no call fails (A's running
 * calls finish there; new ones go to B, and the ones A turned away without
 * running are retried on B), every call's servicer ran exactly once over A and
 * B together (their --log-calls lines), and the channel counted the GOAWAYs.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "interop_util.h"
#include "test.h"

#define CALLS       2000 /* Echo calls in all */
#define WINDOW      16   /* of them in flight at once */
#define STOP_AT     300  /* completed calls before A is stopped */
#define SLEEPS      4    /* Sleep(1500) calls started before the stop */
#define FLOW_MAX_MS 30000

static arpc_channel *ch;
static atomic_int started, completed, failed, in_flight;
static atomic_int sleeps_ok, sleeps_done;
static int first_error;
static unsigned ran[CALLS]; /* servicer runs per call, from both servers' lines */
static unsigned sleeps_ran_at_a;

/* EchoMsg{data} (field 1, length-delimited, under 128 bytes) into buf. */
static size_t echo_msg(uint8_t *buf, const char *data)
{
    return interop_echo_msg(buf, data, strlen(data));
}

static void on_echo(int status, const void *rsp, size_t rsp_len, void *arg)
{
    uint8_t want[32];
    size_t len;
    char text[16];
    snprintf(text, sizeof(text), "e%d", (int)(intptr_t)arg);
    len = echo_msg(want, text);
    if (status != 0 || rsp_len != len || memcmp(rsp, want, len) != 0) {
        if (atomic_fetch_add(&failed, 1) == 0)
            first_error = status;
        fprintf(stderr, "call %s failed: %d %s\n", text, status,
                status < 0 ? arpc_strerror(status) : "(application code)");
    }
    atomic_fetch_sub(&in_flight, 1);
    atomic_fetch_add(&completed, 1);
}

static void on_sleep(int status, const void *rsp, size_t rsp_len, void *arg)
{
    (void)rsp;
    (void)rsp_len;
    (void)arg;
    if (status == 0)
        atomic_fetch_add(&sleeps_ok, 1);
    else
        fprintf(stderr, "Sleep failed: %d %s\n", status, arpc_strerror(status));
    atomic_fetch_add(&sleeps_done, 1);
}

static bool window_open(void *arg)
{
    (void)arg;
    return atomic_load(&in_flight) < WINDOW;
}

/* The load: CALLS non-idempotent Echo calls, at most WINDOW in flight. */
static void *flow(void *arg)
{
    (void)arg;
    int64_t end = test_now_ms() + FLOW_MAX_MS;
    for (int i = 0; i < CALLS && test_now_ms() < end; i++) {
        if (!wait_until(window_open, NULL, 10000))
            break;
        uint8_t req[32];
        char text[16];
        snprintf(text, sizeof(text), "e%d", i);
        size_t len = echo_msg(req, text);
        atomic_fetch_add(&in_flight, 1);
        atomic_fetch_add(&started, 1);
        int rc = arpc_call_async(ch, "arpc.echo.Echo/Echo", req, len, NULL, on_echo,
                                 (void *)(intptr_t)i);
        if (rc != 0) {
            fprintf(stderr, "arpc_call_async: %s\n", arpc_strerror(rc));
            atomic_fetch_sub(&in_flight, 1);
            atomic_fetch_add(&completed, 1);
            atomic_fetch_add(&failed, 1);
        }
    }
    return NULL;
}

/* One event line of a server: counts the calls its servicer began. */
static void note_line(const char *line, bool at_a)
{
    int id;
    if (sscanf(line, "event call Echo e%d", &id) == 1 && id >= 0 && id < CALLS)
        ran[id]++;
    else if (at_a && strncmp(line, "event call Sleep", 16) == 0)
        sleeps_ran_at_a++;
}

/* Reads the server's event lines until one starts with `until`. */
static bool read_events(interop_proc *p, const char *until, bool at_a, int timeout_ms)
{
    char line[256];
    int64_t end = test_now_ms() + timeout_ms;
    while (test_now_ms() < end) {
        if (!interop_wait_line(p, "event ", line, sizeof(line), (int)(end - test_now_ms())))
            return false;
        note_line(line, at_a);
        if (strncmp(line, until, strlen(until)) == 0)
            return true;
    }
    return false;
}

static bool stop_reached(void *arg)
{
    (void)arg;
    return atomic_load(&completed) >= STOP_AT;
}

static bool flow_done(void *arg)
{
    (void)arg;
    return atomic_load(&completed) == CALLS && atomic_load(&sleeps_done) == SLEEPS;
}

static void start_sleeps(void)
{
    uint8_t req[32];
    size_t len = echo_msg(req, "1500");
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 10000;
    for (int i = 0; i < SLEEPS; i++)
        ASSERT_OK(arpc_call_async(ch, "arpc.echo.Echo/Sleep", req, len, &opts, on_sleep, NULL));
}

static void test_graceful_stop_under_load(interop_proc *a, interop_proc *b)
{
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, flow, NULL), 0);
    ASSERT_TRUE(wait_until(stop_reached, NULL, 20000));
    /* Round robin: some of the Sleeps run on A when it is told to stop. */
    start_sleeps();
    ASSERT_TRUE(read_events(a, "event sleep-begin", true, 10000));
    arpc_channel_stats before;
    arpc_channel_get_stats(ch, &before);
    interop_signal(a, SIGTERM);
    ASSERT_TRUE(read_events(a, "event stopped", true, 20000));
    ASSERT_EQ(interop_reap(a, 10000), 0);
    /* B's lines are read while the calls go on, so its stdout pipe never fills. */
    int64_t end = test_now_ms() + FLOW_MAX_MS;
    char line[256];
    while (!flow_done(NULL) && test_now_ms() < end) {
        if (interop_wait_line(b, "event ", line, sizeof(line), 100))
            note_line(line, false);
    }
    ASSERT_TRUE(flow_done(NULL));
    ASSERT_EQ(pthread_join(th, NULL), 0);

    arpc_channel_stats after;
    arpc_channel_get_stats(ch, &after);
    interop_signal(b, SIGTERM);
    ASSERT_TRUE(read_events(b, "event stopped", false, 20000));
    ASSERT_EQ(interop_reap(b, 10000), 0);

    unsigned never = 0, twice = 0;
    for (int i = 0; i < CALLS; i++) {
        never += ran[i] == 0;
        twice += ran[i] > 1;
    }
    fprintf(stderr,
            "goaway: %d calls, %d failed (first %d), %u never ran, %u ran twice; Sleeps ok %d "
            "(%u on A); goaways %llu, retries %llu, late answers %llu\n",
            atomic_load(&completed), atomic_load(&failed), first_error, never, twice,
            atomic_load(&sleeps_ok), sleeps_ran_at_a,
            (unsigned long long)(after.goaways - before.goaways),
            (unsigned long long)(after.retries - before.retries),
            (unsigned long long)(after.late_answers - before.late_answers));
    ASSERT_EQ(atomic_load(&started), CALLS);
    ASSERT_EQ(atomic_load(&failed), 0);
    ASSERT_EQ(atomic_load(&sleeps_ok), SLEEPS);
    ASSERT_TRUE(sleeps_ran_at_a >= 1);
    ASSERT_EQ(never, 0);
    ASSERT_EQ(twice, 0);
    /* grpcio sends two GOAWAYs per connection (2^31-1, then the last id). */
    ASSERT_TRUE(after.goaways - before.goaways >= 2);
    /* Every answer belonged to a live call: none was reported twice. */
    ASSERT_EQ(after.late_answers, before.late_answers);
}

int main(void)
{
    interop_require_grpc();
    interop_proc a, b;
    const char *args[] = {"--log-calls", "--grace", "10", NULL};
    interop_start_grpc_peer(args, &a);
    interop_start_grpc_peer(args, &b);
    char target[128], addr_b[64];
    interop_addr(target, sizeof(target), a.port);
    interop_addr(addr_b, sizeof(addr_b), b.port);
    strncat(target, ",", sizeof(target) - strlen(target) - 1);
    strncat(target, addr_b, sizeof(target) - strlen(target) - 1);

    arpc_runtime *rt;
    ASSERT_OK(arpc_runtime_create(NULL, &rt));
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    copts.protocol = ARPC_PROTOCOL_GRPC;
    ASSERT_OK(arpc_channel_create(rt, target, &copts, &ch));
    test_graceful_stop_under_load(&a, &b);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    return 0;
}

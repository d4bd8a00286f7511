/*
 * A client process killed with SIGKILL while 128 of its requests run in
 * handlers of an in-process server (docs/connections.md section 10): every one
 * of them is seen as canceled by its handler, half of them through
 * arpc_request_on_cancel (parked on an event) and half by polling
 * arpc_request_is_canceled (a request nothing watches learns of the close from
 * its connection); the server counts each in stats.canceled, returns every
 * request (ASan: nothing leaks) and closes the connection.  Another client's
 * requests parked in the same handlers are not canceled, and its new calls are
 * served meanwhile and afterwards.  Run for the native protocol (no cancel
 * frame: the close is the only news) and for gRPC.
 *
 * The killed client is this binary run again (fault_self_start) with
 * "--client PORT PROTOCOL": its own process, runtime and channel, so the
 * kernel's close of its socket is the only thing the server sees.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "test.h"
#include "test_stats.h"

#define CHILD_CALLS 128 /* half "park", half "poll" */
#define OTHER_CALLS 16  /* the other client's parked requests */
#define ECHOES      100
#define HOLD_MAX_MS 30000 /* a handler gives up on its cancel after this */
#define WAIT_MS     20000 /* a sanitizer build starts the child slowly */
#ifdef FAULT_SANITIZED
#define KILL_BOUND_MS 4000 /* from the kill to the last handler's cancel */
#else
#define KILL_BOUND_MS 2000
#endif

/* Per payload ("child", "other"): started, canceled, finished. */
typedef struct tally {
    _Atomic int started;
    _Atomic int canceled;
    _Atomic int finished;
} tally;

static tally child_tally, other_tally;

static tally *tally_of(arpc_request *req)
{
    bool child = arpc_request_len(req) == 5 && memcmp(arpc_request_data(req), "child", 5) == 0;
    return child ? &child_tally : &other_tally;
}

/* Parked on arpc_request_on_cancel's event until the cancel (bounded). */
static int handle_park(arpc_request *req, void *user_data)
{
    (void)user_data;
    tally *t = tally_of(req);
    atomic_fetch_add(&t->started, 1);
    if (test_wait_request_canceled(req, HOLD_MAX_MS))
        atomic_fetch_add(&t->canceled, 1);
    atomic_fetch_add(&t->finished, 1);
    return arpc_buf_append(arpc_request_response(req), "parked", 6);
}

/* Watches nothing: polls arpc_request_is_canceled (bounded). */
static int handle_poll(arpc_request *req, void *user_data)
{
    (void)user_data;
    tally *t = tally_of(req);
    atomic_fetch_add(&t->started, 1);
    int64_t end = test_now_ms() + HOLD_MAX_MS;
    while (!arpc_request_is_canceled(req) && test_now_ms() < end)
        ASSERT_OK(arpc_coro_sleep_ms(5));
    if (arpc_request_is_canceled(req))
        atomic_fetch_add(&t->canceled, 1);
    atomic_fetch_add(&t->finished, 1);
    return 0;
}

static arpc_channel_opts channel_opts(bool grpc)
{
    arpc_channel_opts opts;
    fault_channel_opts_init(&opts);
    opts.connections_per_endpoint = 1;
    if (grpc)
        opts.protocol = ARPC_PROTOCOL_GRPC;
    return opts;
}

static void ignore_result(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    (void)status;
    (void)rsp;
    (void)rsp_len;
    (void)user_data;
}

/* The child's role: CHILD_CALLS calls without a deadline, then wait for the
 * SIGKILL.  Any failure exits, which the parent sees as too few requests. */
static int run_client(int port, bool grpc)
{
    arpc_runtime *rt;
    if (arpc_runtime_create(NULL, &rt) != 0)
        return 1;
    arpc_channel_opts copts = channel_opts(grpc);
    char target[64];
    fault_addr(target, sizeof(target), port);
    arpc_channel *ch;
    if (arpc_channel_create(rt, target, &copts, &ch) != 0)
        return 1;
    arpc_call_opts opts = fault_call_opts(0);
    for (int i = 0; i < CHILD_CALLS; i++) {
        const char *method = i % 2 == 0 ? "park" : "poll";
        if (arpc_call_async(ch, method, "child", 5, &opts, ignore_result, NULL) != 0)
            return 1;
    }
    for (;;)
        pause();
}

static bool at_least(void *arg)
{
    _Atomic int *counter = ((void **)arg)[0];
    int want = (int)(intptr_t)((void **)arg)[1];
    return atomic_load(counter) >= want;
}

static bool reached(_Atomic int *counter, int want, int timeout_ms)
{
    void *arg[2] = {counter, (void *)(intptr_t)want};
    return wait_until(at_least, arg, timeout_ms) && atomic_load(counter) == want;
}

typedef struct stats_wait {
    arpc_server *srv;
    uint64_t canceled;
    uint64_t connections;
} stats_wait;

static bool stats_reached(void *arg)
{
    stats_wait *w = arg;
    arpc_server_stats st;
    arpc_server_get_stats(w->srv, &st);
    return st.canceled >= w->canceled && st.connections == w->connections;
}

static void expect_stats(arpc_server *srv, uint64_t canceled, uint64_t connections)
{
    stats_wait w = {srv, canceled, connections};
    bool ok = wait_until(stats_reached, &w, WAIT_MS);
    arpc_server_stats st;
    arpc_server_get_stats(srv, &st);
    if (!ok || st.canceled != canceled)
        test_fail(__FILE__, __LINE__, "canceled %llu (want %llu), connections %llu (want %llu)",
                  (unsigned long long)st.canceled, (unsigned long long)canceled,
                  (unsigned long long)st.connections, (unsigned long long)connections);
}

static void echoes_succeed(arpc_channel *ch)
{
    fault_calls set;
    fault_calls_init(&set, ECHOES);
    arpc_call_opts opts = fault_call_opts(10000);
    fault_calls_start_all(&set, ch, "echo", "hello", &opts);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, WAIT_MS));
    for (size_t i = 0; i < ECHOES; i++)
        ASSERT_OK(atomic_load(&set.calls[i].status));
    fault_calls_fini(&set);
}

static void killed_client(bool grpc)
{
    memset(&child_tally, 0, sizeof(child_tally));
    memset(&other_tally, 0, sizeof(other_tally));
    arpc_runtime *rt = fault_runtime(2);
    static const fault_method methods[] = {
        {"park", handle_park}, {"poll", handle_poll}, {NULL, NULL}};
    arpc_server *srv = fault_server(rt, NULL, methods);

    /* The other client: its own runtime, requests parked before the kill. */
    arpc_runtime *rt_other = fault_runtime(1);
    arpc_channel_opts copts = channel_opts(grpc);
    arpc_channel *other = fault_channel(rt_other, arpc_server_port(srv), &copts);
    arpc_call_opts opts = fault_call_opts(0);
    fault_calls parked;
    fault_calls_init(&parked, OTHER_CALLS);
    fault_calls_start_all(&parked, other, "park", "other", &opts);
    ASSERT_TRUE(reached(&other_tally.started, OTHER_CALLS, WAIT_MS));

    char port[16];
    snprintf(port, sizeof(port), "%d", arpc_server_port(srv));
    char *args[] = {"--client", port, grpc ? "grpc" : "native", NULL};
    fault_proc child;
    fault_self_start(args, &child);
    if (!reached(&child_tally.started, CHILD_CALLS, WAIT_MS))
        test_fail(__FILE__, __LINE__, "%d of the child's %d requests started",
                  atomic_load(&child_tally.started), CHILD_CALLS);
    arpc_server_stats st;
    arpc_server_get_stats(srv, &st);
    ASSERT_EQ(st.connections, 2);
    ASSERT_EQ(st.canceled, 0);

    int64_t killed = test_now_ms();
    fault_proc_signal(&child, SIGKILL);
    int status = fault_proc_reap(&child, 5000);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    if (!reached(&child_tally.finished, CHILD_CALLS, KILL_BOUND_MS))
        test_fail(__FILE__, __LINE__, "%d of %d handlers ended within %d ms of the kill",
                  atomic_load(&child_tally.finished), CHILD_CALLS, KILL_BOUND_MS);
    fprintf(stderr, "  %s: %d handlers canceled, the last %lld ms after the kill\n",
            grpc ? "grpc" : "native", atomic_load(&child_tally.canceled),
            (long long)(test_now_ms() - killed));
    ASSERT_EQ(atomic_load(&child_tally.canceled), CHILD_CALLS);
    expect_stats(srv, CHILD_CALLS, 1);

    /* The other client lost nothing and is served. */
    echoes_succeed(other);
    ASSERT_EQ(atomic_load(&other_tally.canceled), 0);
    ASSERT_EQ(atomic_load(&other_tally.finished), 0);
    ASSERT_EQ(atomic_load(&parked.completed), 0);

    /* Its own parked requests end when it goes (they are canceled too). */
    arpc_channel_destroy(other);
    ASSERT_EQ(atomic_load(&parked.completed), OTHER_CALLS);
    ASSERT_TRUE(reached(&other_tally.canceled, OTHER_CALLS, WAIT_MS));
    expect_stats(srv, CHILD_CALLS + OTHER_CALLS, 0);
    fault_calls_fini(&parked);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt_other);
    arpc_runtime_destroy(rt);
}

static void test_killed_native_client_requests_canceled(void)
{
    killed_client(false);
}

static void test_killed_grpc_client_requests_canceled(void)
{
    killed_client(true);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--client") == 0)
        return run_client(atoi(argv[2]), strcmp(argv[3], "grpc") == 0);
    RUN_TEST(test_killed_native_client_requests_canceled);
    RUN_TEST(test_killed_grpc_client_requests_canceled);
    return 0;
}

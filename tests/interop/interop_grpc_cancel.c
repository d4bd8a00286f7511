/*
 * Cancellation against real gRPC peers (docs/connections.md section 10,
 * docs/grpc.md section 10).  Three processes: this test (two in-process arpc
 * servers, `front` and `back`, and arpc's gRPC channels), grpcio's client
 * (grpc_peer_client.py, case `cancel`) and grpcio's server
 * (grpc_peer_server.py).  Proves:
 *  - grpcio's future.cancel() on a Sleep without a deadline (RST_STREAM(CANCEL))
 *    cancels the front request: its handler's on_cancel runs and it sees
 *    arpc_request_is_canceled, stats.canceled counts it, its downstream call
 *    to `back` (a gRPC channel, arpc_call_opts.parent, no deadline) completes
 *    with ARPC_ECANCELED and `back`'s handler sees its own cancel (the channel
 *    reset the stream, not the connection); grpcio's channel then serves a
 *    normal call;
 *  - the same cancel with the downstream call going to grpcio's server: the
 *    servicer sees the call end long before its 60 s Sleep, with no deadline
 *    (time_remaining "none"), and arpc's channel did not reconnect, so what
 *    ended it was arpc's RST_STREAM(CANCEL);
 *  - arpc's call that times out, and one abandoned by arpc_channel_destroy,
 *    end grpcio's Sleep long before it would have ended.
 * The test synchronises on counters of the in-process servers and on the
 * peers' lines, never on sleeps.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

#include "fault_util.h"
#include "interop_util.h"
#include "test.h"

#define HOLD_MAX_MS 20000 /* a parked handler waits this long at most for its cancel */
#define WAIT_MS     10000
#define SLEEP_DATA  "60000" /* grpcio's Sleep: far beyond every bound below */
#ifdef FAULT_SANITIZED
#define CANCEL_BOUND_MS 5000 /* from the cancel to the servicer's event line */
#else
#define CANCEL_BOUND_MS 3000
#endif

typedef struct counters {
    _Atomic int front_started;
    _Atomic int front_on_cancel; /* the front handler's on_cancel callback ran */
    _Atomic int front_saw_canceled;
    _Atomic int front_status; /* of its downstream call */
    _Atomic int front_done;
    _Atomic int hold_started;
    _Atomic int hold_canceled;
    _Atomic int hold_finished;
} counters;

static counters c;
static arpc_channel *ch_back; /* front -> back, gRPC */
static arpc_channel *ch_peer; /* arpc -> grpcio's server, gRPC */

/* EchoMsg{data} (field 1, length-delimited, data < 128 bytes) into buf. */
static size_t echo_msg(uint8_t *buf, const char *data)
{
    size_t len = strlen(data);
    ASSERT_LT(len, 128);
    buf[0] = 0x0a;
    buf[1] = (uint8_t)len;
    memcpy(buf + 2, data, len);
    return len + 2;
}

/* Whether the request is EchoMsg{data: text}. */
static bool request_is(arpc_request *req, const char *text)
{
    uint8_t want[130];
    size_t len = echo_msg(want, text);
    return arpc_request_len(req) == len && memcmp(arpc_request_data(req), want, len) == 0;
}

static void count_front_cancel(arpc_request *req, void *user_data)
{
    (void)req;
    (void)user_data;
    atomic_fetch_add(&c.front_on_cancel, 1);
}

/* arpc.echo.Echo/Sleep on `front`: "to-back" calls `back`'s hold, "to-grpcio"
 * grpcio's Sleep(60000), both on the request's behalf and without a deadline,
 * so only the request's cancel can end them. */
static int handle_front(arpc_request *req, void *user_data)
{
    (void)user_data;
    atomic_fetch_add(&c.front_started, 1);
    ASSERT_OK(arpc_request_on_cancel(req, count_front_cancel, NULL));
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 0;
    opts.parent = req;
    int rc;
    if (request_is(req, "to-back")) {
        rc = arpc_call(ch_back, "hold", NULL, 0, &opts, NULL);
    } else {
        uint8_t msg[16];
        size_t len = echo_msg(msg, SLEEP_DATA);
        rc = arpc_call(ch_peer, "arpc.echo.Echo/Sleep", msg, len, &opts, NULL);
    }
    atomic_store(&c.front_status, rc);
    if (arpc_request_is_canceled(req))
        atomic_fetch_add(&c.front_saw_canceled, 1);
    atomic_fetch_add(&c.front_done, 1);
    return 0;
}

static void signal_event(arpc_request *req, void *ev)
{
    (void)req;
    arpc_event_signal(ev);
}

/* `back`'s hold: parked until its cancel (bounded). */
static int handle_hold(arpc_request *req, void *user_data)
{
    (void)user_data;
    atomic_fetch_add(&c.hold_started, 1);
    arpc_event ev;
    arpc_event_init(&ev);
    if (arpc_request_on_cancel(req, signal_event, &ev) == 0)
        (void)arpc_event_wait(&ev, HOLD_MAX_MS);
    if (arpc_request_is_canceled(req))
        atomic_fetch_add(&c.hold_canceled, 1);
    atomic_fetch_add(&c.hold_finished, 1);
    return 0;
}

static bool at_least(void *arg)
{
    _Atomic int *counter = ((void **)arg)[0];
    int want = (int)(intptr_t)((void **)arg)[1];
    return atomic_load(counter) >= want;
}

static void wait_for(_Atomic int *counter, int want)
{
    void *arg[2] = {counter, (void *)(intptr_t)want};
    ASSERT_TRUE(wait_until(at_least, arg, WAIT_MS));
    ASSERT_EQ(atomic_load(counter), want);
}

typedef struct stats_wait {
    arpc_server *srv;
    uint64_t canceled;
} stats_wait;

static bool canceled_reached(void *arg)
{
    stats_wait *w = arg;
    arpc_server_stats st;
    arpc_server_get_stats(w->srv, &st);
    return st.canceled >= w->canceled;
}

static void wait_canceled(arpc_server *srv, uint64_t want)
{
    stats_wait w = {srv, want};
    ASSERT_TRUE(wait_until(canceled_reached, &w, WAIT_MS));
    arpc_server_stats st;
    arpc_server_get_stats(srv, &st);
    ASSERT_EQ(st.canceled, want);
}

static uint64_t reconnects(arpc_channel *ch)
{
    arpc_channel_stats st;
    arpc_channel_get_stats(ch, &st);
    return st.reconnects;
}

/*
 * Waits for the servicer's "event sleep-canceled MS LEFT" line within
 * CANCEL_BOUND_MS and checks that the Sleep ended long before its 60 s and,
 * with `no_deadline`, that it had none (LEFT "none").
 */
static void expect_sleep_canceled(interop_proc *peer, bool no_deadline)
{
    char line[128];
    ASSERT_TRUE(
        interop_wait_line(peer, "event sleep-canceled ", line, sizeof(line), CANCEL_BOUND_MS));
    char left[32] = "";
    long ms = -1;
    ASSERT_EQ(sscanf(line, "event sleep-canceled %ld %31s", &ms, left), 2);
    fprintf(stderr, "  grpcio: %s\n", line);
    ASSERT_TRUE(ms >= 0 && ms < 30000);
    if (no_deadline)
        ASSERT_STREQ(left, "none");
}

/* Starts grpcio's `cancel` case with Sleep data `data` and waits until it has
 * sent its Sleep ("cancel started"). */
static void start_cancel_client(int front_port, const char *data, interop_proc *cli)
{
    char target[64];
    interop_addr(target, sizeof(target), front_port);
    const char *args[] = {"--cancel-data", data, "cancel", NULL};
    interop_start_grpc_client(target, args, cli);
    ASSERT_TRUE(interop_wait_line(cli, "cancel started", NULL, 0, WAIT_MS));
}

/* Tells the client to cancel and waits until grpcio has done it. */
static void client_cancels(interop_proc *cli)
{
    interop_send_line(cli, "cancel");
    ASSERT_TRUE(interop_wait_line(cli, "cancel sent", NULL, 0, WAIT_MS));
}

/* The same grpcio channel serves a normal Echo after its cancel. */
static void client_finishes(interop_proc *cli)
{
    interop_send_line(cli, "go on");
    ASSERT_TRUE(interop_wait_line(cli, "cancel ok", NULL, 0, WAIT_MS));
    ASSERT_EQ(interop_reap(cli, WAIT_MS), 0);
}

static void test_grpcio_cancel_reaches_arpc_downstream(arpc_server *front, arpc_server *back)
{
    interop_proc cli;
    start_cancel_client(arpc_server_port(front), "to-back", &cli);
    wait_for(&c.hold_started, 1); /* the front handler runs, its call reached back */
    ASSERT_EQ(atomic_load(&c.front_started), 1);
    ASSERT_EQ(atomic_load(&c.front_done), 0);
    uint64_t before = reconnects(ch_back);
    int64_t start = test_now_ms();
    client_cancels(&cli);
    wait_for(&c.front_done, 1);
    wait_for(&c.hold_finished, 1);
    int64_t took = test_now_ms() - start;
    fprintf(stderr, "  front and back canceled %lld ms after the cancel\n", (long long)took);
    ASSERT_LT(took, HOLD_MAX_MS / 2); /* woken by the cancel, not by the bound */
    ASSERT_EQ(atomic_load(&c.front_on_cancel), 1);
    ASSERT_EQ(atomic_load(&c.front_saw_canceled), 1);
    ASSERT_EQ(atomic_load(&c.front_status), ARPC_ECANCELED);
    ASSERT_EQ(atomic_load(&c.hold_canceled), 1);
    wait_canceled(front, 1);
    wait_canceled(back, 1);
    /* back heard a RST_STREAM: the connection lives on and serves. */
    ASSERT_EQ(reconnects(ch_back), before);
    ASSERT_OK(arpc_call(ch_back, "echo", "x", 1, NULL, NULL));
    client_finishes(&cli);
}

static void test_grpcio_cancel_reaches_grpcio_downstream(arpc_server *front, interop_proc *peer)
{
    interop_proc cli;
    start_cancel_client(arpc_server_port(front), "to-grpcio", &cli);
    ASSERT_TRUE(interop_wait_line(peer, "event sleep-begin 1", NULL, 0, WAIT_MS));
    uint64_t before = reconnects(ch_peer);
    client_cancels(&cli);
    expect_sleep_canceled(peer, true);
    wait_for(&c.front_done, 2);
    ASSERT_EQ(atomic_load(&c.front_on_cancel), 2);
    ASSERT_EQ(atomic_load(&c.front_saw_canceled), 2);
    ASSERT_EQ(atomic_load(&c.front_status), ARPC_ECANCELED);
    wait_canceled(front, 2);
    /* No deadline and the same connection: the servicer was told by the
     * stream's RST_STREAM(CANCEL), not by a close or a timer. */
    ASSERT_EQ(reconnects(ch_peer), before);
    client_finishes(&cli);
}

static void test_timed_out_call_cancels_grpcio_sleep(interop_proc *peer)
{
    uint8_t msg[16];
    size_t len = echo_msg(msg, SLEEP_DATA);
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 300;
    uint64_t before = reconnects(ch_peer);
    ASSERT_ERR(arpc_call(ch_peer, "arpc.echo.Echo/Sleep", msg, len, &opts, NULL), ARPC_ETIMEDOUT);
    expect_sleep_canceled(peer, false);
    ASSERT_EQ(reconnects(ch_peer), before);
    ASSERT_OK(arpc_call(ch_peer, "arpc.echo.Echo/Echo", msg, len, NULL, NULL));
}

typedef struct async_result {
    _Atomic int done;
    _Atomic int status;
} async_result;

static void on_async(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    (void)rsp;
    (void)rsp_len;
    async_result *r = user_data;
    atomic_store(&r->status, status);
    atomic_fetch_add(&r->done, 1);
}

static void test_abandoned_call_cancels_grpcio_sleep(arpc_runtime *rt, interop_proc *peer)
{
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    copts.protocol = ARPC_PROTOCOL_GRPC;
    arpc_channel *ch = fault_channel(rt, peer->port, &copts);
    uint8_t msg[16];
    size_t len = echo_msg(msg, SLEEP_DATA);
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 0;
    async_result r = {0};
    ASSERT_OK(arpc_call_async(ch, "arpc.echo.Echo/Sleep", msg, len, &opts, on_async, &r));
    ASSERT_TRUE(interop_wait_line(peer, "event sleep-begin 1", NULL, 0, WAIT_MS));
    arpc_channel_destroy(ch);
    ASSERT_EQ(atomic_load(&r.done), 1);
    ASSERT_EQ(atomic_load(&r.status), ARPC_ECANCELED);
    expect_sleep_canceled(peer, true);
}

static arpc_server *front_server(arpc_runtime *rt)
{
    static const fault_method methods[] = {{"arpc.echo.Echo/Echo", fault_handle_echo},
                                           {"arpc.echo.Echo/Sleep", handle_front},
                                           {NULL, NULL}};
    return fault_server(rt, NULL, methods);
}

static arpc_channel *grpc_channel(arpc_runtime *rt, int port)
{
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    copts.protocol = ARPC_PROTOCOL_GRPC;
    return fault_channel(rt, port, &copts);
}

int main(void)
{
    interop_require_grpc();
    interop_proc peer;
    interop_start_grpc_peer(NULL, &peer);
    arpc_runtime *rt_front = fault_runtime(2);
    arpc_runtime *rt_back = fault_runtime(1); /* back and its channel: another runtime */
    static const fault_method back_methods[] = {{"hold", handle_hold}, {NULL, NULL}};
    arpc_server *back = fault_server(rt_back, NULL, back_methods);
    arpc_server *front = front_server(rt_front);
    ch_back = grpc_channel(rt_back, arpc_server_port(back));
    ch_peer = grpc_channel(rt_front, peer.port);
    ASSERT_OK(arpc_call(ch_back, "echo", "x", 1, NULL, NULL)); /* both connected first */
    uint8_t msg[16];
    size_t len = echo_msg(msg, "warm");
    ASSERT_OK(arpc_call(ch_peer, "arpc.echo.Echo/Echo", msg, len, NULL, NULL));

    fprintf(stderr, "grpcio client -> arpc front -> arpc back\n");
    test_grpcio_cancel_reaches_arpc_downstream(front, back);
    fprintf(stderr, "grpcio client -> arpc front -> grpcio server\n");
    test_grpcio_cancel_reaches_grpcio_downstream(front, &peer);
    fprintf(stderr, "arpc call timed out -> grpcio server\n");
    test_timed_out_call_cancels_grpcio_sleep(&peer);
    fprintf(stderr, "arpc call abandoned -> grpcio server\n");
    test_abandoned_call_cancels_grpcio_sleep(rt_front, &peer);

    arpc_channel_destroy(ch_peer);
    arpc_channel_destroy(ch_back);
    arpc_server_destroy(front);
    arpc_server_destroy(back);
    arpc_runtime_destroy(rt_back);
    arpc_runtime_destroy(rt_front);
    interop_signal(&peer, SIGTERM);
    ASSERT_TRUE(interop_wait_line(&peer, "event stopped", NULL, 0, WAIT_MS));
    ASSERT_EQ(interop_reap(&peer, WAIT_MS), 0);
    return 0;
}

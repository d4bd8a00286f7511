/*
 * Cancellation against real gRPC peers (docs/connections.md section 10,
 * docs/grpc.md section 10).  Three processes: this test (two in-process arpc
 * servers, `front` and `back`, and arpc's gRPC channels), grpcio's client
 * (grpc_peer_client.py, case `cancel`) and grpcio's server
 * (grpc_peer_server.py).  Proves:
 *  - grpcio's future.cancel() on a Sleep without a deadline (one
 *    RST_STREAM(CANCEL), counted by a relay) cancels the front request: its
 *    handler's on_cancel runs and it sees arpc_request_is_canceled,
 *    stats.canceled counts it, its downstream call to `back` (a gRPC channel,
 *    arpc_call_opts.parent, no deadline) completes with ARPC_ECANCELED and
 *    `back`'s handler sees its own cancel (the channel reset the stream, not
 *    the connection); grpcio's channel then serves a normal call;
 *  - the same cancel with the downstream call going to grpcio's server: the
 *    servicer sees the call end long before its 60 s Sleep, with no deadline
 *    (time_remaining "none"), and arpc's channel did not reconnect, so what
 *    ended it was arpc's RST_STREAM(CANCEL), which a relay between them
 *    counts on the wire;
 *  - arpc's call that times out sends RST_STREAM(CANCEL) too (the relay sees
 *    it while grpcio is frozen, so grpcio's own deadline cannot end the call
 *    first), and grpcio's Sleep ends long before it would have; a call
 *    abandoned by arpc_channel_destroy ends it too.
 * The test synchronises on counters of the in-process servers and on the
 * peers' lines, never on sleeps.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "fault_util.h"
#include "interop_util.h"
#include "raw_peer.h"
#include "test.h"
#include "test_stats.h"

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

/* ---- a relay that reads the frames arpc sends grpcio ------------------------
 *
 * grpcio's servicer cannot tell a client's RST_STREAM from its own deadline
 * timer (both end the call), so arpc's channel to grpcio's server goes
 * through this relay: one TCP connection forwarded both ways on a thread of
 * its own, the client-to-server bytes parsed as HTTP/2 frames (RFC 9113
 * section 4.1: 24-byte preface, then 9-byte headers) to count the RST_STREAMs
 * by error code.  It ends when either side closes. */

#define H2_PREFACE_LEN 24
#define H2_RST_STREAM  3
#define H2_CANCEL      8

typedef struct relay {
    int listen_fd;
    int port;
    int target_port;
    pthread_t thread;
    _Atomic int rst_cancel; /* RST_STREAM(CANCEL) frames arpc sent */
    _Atomic int rst_other;  /* RST_STREAMs with any other code */
    /* Parser of the client's bytes; the relay's thread only. */
    size_t preface_left;
    uint8_t hdr[9];
    size_t hdr_len;
    size_t skip;      /* payload bytes of the current frame still to skip */
    uint8_t code[4];  /* a RST_STREAM's payload */
    size_t code_left; /* its bytes still to read */
} relay;

static void relay_rst(relay *r)
{
    uint32_t code = (uint32_t)r->code[0] << 24 | (uint32_t)r->code[1] << 16 |
                    (uint32_t)r->code[2] << 8 | r->code[3];
    atomic_fetch_add(code == H2_CANCEL ? &r->rst_cancel : &r->rst_other, 1);
}

static void relay_header(relay *r)
{
    size_t len = (size_t)r->hdr[0] << 16 | (size_t)r->hdr[1] << 8 | r->hdr[2];
    r->hdr_len = 0;
    if (r->hdr[3] == H2_RST_STREAM && len == 4)
        r->code_left = 4;
    else
        r->skip = len;
}

static void relay_parse(relay *r, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r->preface_left > 0) {
            r->preface_left--;
        } else if (r->code_left > 0) {
            r->code[4 - r->code_left--] = p[i];
            if (r->code_left == 0)
                relay_rst(r);
        } else if (r->skip > 0) {
            r->skip--;
        } else {
            r->hdr[r->hdr_len++] = p[i];
            if (r->hdr_len == 9)
                relay_header(r);
        }
    }
}

/* Forwards what `from` has to `to`; false at its end. */
static bool relay_move(relay *r, int from, int to, bool parse)
{
    uint8_t buf[16384];
    ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0)
        return false;
    if (parse)
        relay_parse(r, buf, (size_t)n);
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    struct pollfd lp = {.fd = r->listen_fd, .events = POLLIN};
    if (poll(&lp, 1, WAIT_MS) != 1)
        return NULL;
    int client = accept(r->listen_fd, NULL, NULL);
    int server = raw_connect(r->target_port);
    struct pollfd fds[2] = {{.fd = client, .events = POLLIN}, {.fd = server, .events = POLLIN}};
    bool open = client >= 0;
    /* Bounded: the channel's heartbeats cross it every 500 ms while it lives. */
    while (open && poll(fds, 2, 3 * WAIT_MS) > 0) {
        if (fds[0].revents != 0)
            open = relay_move(r, client, server, true);
        if (open && fds[1].revents != 0)
            open = relay_move(r, server, client, false);
    }
    close(client);
    close(server);
    return NULL;
}

static void relay_start(relay *r, int target_port)
{
    memset(r, 0, sizeof(*r));
    uint16_t port = 0;
    r->listen_fd = test_listen_ephemeral(&port);
    ASSERT_GE(r->listen_fd, 0);
    r->port = port;
    r->target_port = target_port;
    r->preface_left = H2_PREFACE_LEN;
    ASSERT_EQ(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

/* After the channel through it was destroyed (its connection closed). */
static void relay_join(relay *r)
{
    ASSERT_EQ(pthread_join(r->thread, NULL), 0);
    close(r->listen_fd);
}

static bool rst_cancels_reached(void *arg)
{
    relay *r = ((void **)arg)[0];
    return atomic_load(&r->rst_cancel) >= (int)(intptr_t)((void **)arg)[1];
}

/* arpc has sent `want` RST_STREAM(CANCEL) in all, and no other RST_STREAM. */
static void expect_rst_cancels(relay *r, int want)
{
    void *arg[2] = {r, (void *)(intptr_t)want};
    ASSERT_TRUE(wait_until(rst_cancels_reached, arg, WAIT_MS));
    ASSERT_EQ(atomic_load(&r->rst_cancel), want);
    ASSERT_EQ(atomic_load(&r->rst_other), 0);
}

static relay peer_relay; /* ch_peer goes through it */

/* EchoMsg{data} (field 1, length-delimited, data < 128 bytes) into buf. */
static size_t echo_msg(uint8_t *buf, const char *data)
{
    size_t len = strlen(data);
    ASSERT_LT(len, 128);
    return interop_echo_msg(buf, data, len);
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

/* `back`'s hold: parked until its cancel (bounded). */
static int handle_hold(arpc_request *req, void *user_data)
{
    (void)user_data;
    atomic_fetch_add(&c.hold_started, 1);
    if (test_wait_request_canceled(req, HOLD_MAX_MS))
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

static void wait_canceled(arpc_server *srv, uint64_t want)
{
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(srv, canceled, want, WAIT_MS));
    ASSERT_EQ(SERVER_STAT(srv, canceled), want);
}

static arpc_channel *grpc_channel(arpc_runtime *rt, int port)
{
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    copts.protocol = ARPC_PROTOCOL_GRPC;
    return fault_channel(rt, port, &copts);
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

/* Starts grpcio's `cancel` case with Sleep data `data`, through relay `r` to
 * front, and waits until it has sent its Sleep ("cancel started"). */
static void start_cancel_client(int front_port, const char *data, relay *r, interop_proc *cli)
{
    relay_start(r, front_port);
    char target[64];
    interop_addr(target, sizeof(target), r->port);
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

/* What grpcio's future.cancel() put on the wire: one RST_STREAM(CANCEL). */
static void client_sent_one_cancel(relay *r)
{
    relay_join(r); /* the client exited: its connection closed */
    ASSERT_EQ(atomic_load(&r->rst_cancel), 1);
    ASSERT_EQ(atomic_load(&r->rst_other), 0);
}

static void test_grpcio_cancel_reaches_arpc_downstream(arpc_server *front, arpc_server *back)
{
    interop_proc cli;
    relay r;
    start_cancel_client(arpc_server_port(front), "to-back", &r, &cli);
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
    client_sent_one_cancel(&r);
}

static void test_grpcio_cancel_reaches_grpcio_downstream(arpc_server *front, interop_proc *peer)
{
    interop_proc cli;
    relay r;
    start_cancel_client(arpc_server_port(front), "to-grpcio", &r, &cli);
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
     * stream's RST_STREAM(CANCEL), not by a close or a timer; the relay saw it. */
    ASSERT_EQ(reconnects(ch_peer), before);
    expect_rst_cancels(&peer_relay, 1);
    client_finishes(&cli);
    client_sent_one_cancel(&r);
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

static bool async_done(void *arg)
{
    return atomic_load(&((async_result *)arg)->done) >= 1;
}

/*
 * grpcio's server keeps the deadline arpc sends (grpc-timeout) and ends the
 * Sleep at about the moment arpc's own timer fires; when it wins, its
 * DEADLINE_EXCEEDED closes the stream and there is nothing left to reset.  So
 * grpcio is frozen (SIGSTOP) once the Sleep runs, until arpc's deadline has
 * passed: only arpc's timer can end the call then, on a stream still open,
 * and the relay must see its RST_STREAM(CANCEL).  The freeze (about 2 s) stays
 * below the channel's heartbeat timeout (5 s, fault_channel_opts_init).
 */
static void test_timed_out_call_cancels_grpcio_sleep(interop_proc *peer)
{
    uint8_t msg[16];
    size_t len = echo_msg(msg, SLEEP_DATA);
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 2000;
    uint64_t before = reconnects(ch_peer);
    async_result r = {0};
    ASSERT_OK(arpc_call_async(ch_peer, "arpc.echo.Echo/Sleep", msg, len, &opts, on_async, &r));
    ASSERT_TRUE(interop_wait_line(peer, "event sleep-begin 1", NULL, 0, WAIT_MS));
    interop_freeze(peer);
    if (atomic_load(&r.done) != 0)
        test_fail(__FILE__, __LINE__, "the call ended (%d) before grpcio was frozen",
                  atomic_load(&r.status));
    ASSERT_TRUE(wait_until(async_done, &r, WAIT_MS));
    ASSERT_EQ(atomic_load(&r.status), ARPC_ETIMEDOUT);
    expect_rst_cancels(&peer_relay, 2);
    interop_thaw(peer);
    expect_sleep_canceled(peer, false);
    ASSERT_EQ(reconnects(ch_peer), before);
    ASSERT_OK(arpc_call(ch_peer, "arpc.echo.Echo/Echo", msg, len, NULL, NULL));
    ASSERT_EQ(atomic_load(&r.done), 1);
}

/* The channel writes the RST_STREAM(CANCEL) before it closes the connection
 * (the relay sees both, in order); grpcio's servicer may learn of either. */
static void test_abandoned_call_cancels_grpcio_sleep(arpc_runtime *rt, interop_proc *peer)
{
    static relay abandon_relay;
    relay_start(&abandon_relay, peer->port);
    arpc_channel *ch = grpc_channel(rt, abandon_relay.port);
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
    relay_join(&abandon_relay); /* it read everything, up to the close */
    ASSERT_EQ(atomic_load(&abandon_relay.rst_cancel), 1);
    ASSERT_EQ(atomic_load(&abandon_relay.rst_other), 0);
    expect_sleep_canceled(peer, true);
}

static arpc_server *front_server(arpc_runtime *rt)
{
    static const fault_method methods[] = {{"arpc.echo.Echo/Echo", fault_handle_echo},
                                           {"arpc.echo.Echo/Sleep", handle_front},
                                           {NULL, NULL}};
    return fault_server(rt, NULL, methods);
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
    relay_start(&peer_relay, peer.port);
    ch_peer = grpc_channel(rt_front, peer_relay.port);
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
    relay_join(&peer_relay);
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

/*
 * The gRPC protocol behind the seam (src/proto/grpc/grpc_proto.c): a client
 * and a server session of arpc__proto_grpc back to back in memory, driven
 * through the ops table and observed through the seam's events, as conn.c,
 * channel.c and server.c drive them.  Method names with and without their
 * '/', metadata both ways, statuses, the built-in health check, an expired
 * grpc-timeout, the client's cancel, a GOAWAY's last stream id turned into the
 * channel's last call id (the calls above it never ran: on_goaway reports
 * them, once), a Trailers-Only CANCELLED after a GOAWAY read as "never ran"
 * (ARPC_ESHUTDOWN), one before any GOAWAY held until the server shows which it was, and heartbeats
 * kept within grpcio's PING budget.
 */
#include <string.h>

#include <arpc/err.h>

#include "base/buf.h"
#include "proto/grpc/wire.h"
#include "proto/metadata.h"
#include "proto/proto.h"
#include "test.h"

#define MAX_EV 16

typedef struct side {
    arpc__proto_session *s;
    arpc_buf out; /* what it wrote, not yet fed to the other side */
    bool stop;
    /* what its events saw */
    int requests, responses, cancels, goaways, pongs;
    uint64_t ids[MAX_EV];
    int statuses[MAX_EV];
    char method[64];
    int64_t timeout_ns;
    uint8_t payload[64];
    size_t payload_len;
    arpc_buf md_buf;
    arpc__md md;
    uint64_t goaway_last;
    uint64_t pong_ids[MAX_EV];
} side;

static void copy_common(side *sd, const arpc__msg *msg)
{
    ASSERT_LE(msg->payload_len, sizeof(sd->payload));
    if (msg->payload_len > 0)
        memcpy(sd->payload, msg->payload, msg->payload_len);
    sd->payload_len = msg->payload_len;
    arpc__buf_clear(&sd->md_buf);
    if (msg->md.len > 0)
        ASSERT_OK(arpc__buf_append(&sd->md_buf, msg->md.data, msg->md.len));
    sd->md = msg->md;
    sd->md.data = arpc__buf_head(&sd->md_buf);
}

static int ev_request(void *owner, const arpc__msg *msg)
{
    side *sd = owner;
    ASSERT_LT(sd->requests, MAX_EV);
    sd->ids[sd->requests++] = msg->id;
    ASSERT_LT(msg->method_len, sizeof(sd->method));
    memcpy(sd->method, msg->method, msg->method_len);
    sd->method[msg->method_len] = '\0';
    sd->timeout_ns = msg->timeout_ns;
    copy_common(sd, msg);
    return 0;
}

static int ev_response(void *owner, const arpc__msg *msg)
{
    side *sd = owner;
    ASSERT_LT(sd->responses, MAX_EV);
    sd->ids[sd->responses] = msg->id;
    sd->statuses[sd->responses++] = msg->status;
    copy_common(sd, msg);
    return 0;
}

static void ev_cancel(void *owner, uint64_t id)
{
    side *sd = owner;
    sd->cancels++;
    sd->ids[0] = id;
}

static void ev_goaway(void *owner, uint64_t last_id, int reason)
{
    side *sd = owner;
    sd->goaways++;
    sd->goaway_last = last_id;
    ASSERT_EQ(reason, ARPC_ESHUTDOWN);
}

static void ev_pong(void *owner, uint64_t id, const arpc__proto_limits *peer)
{
    side *sd = owner;
    ASSERT_TRUE(peer == NULL);
    ASSERT_LT(sd->pongs, MAX_EV);
    sd->pong_ids[sd->pongs++] = id;
}

static const arpc__proto_events srv_events = {.on_request = ev_request, .on_cancel = ev_cancel};
static const arpc__proto_events cli_events = {
    .on_response = ev_response, .on_goaway = ev_goaway, .on_pong = ev_pong};

static side cli, srv;

static void side_open(side *sd, arpc__proto_side which)
{
    memset(sd, 0, sizeof(*sd));
    arpc__buf_init(&sd->out);
    arpc__buf_init(&sd->md_buf);
    arpc__proto_config cfg = {.side = which,
                              .limits = {.max_message = ARPC__PROTO_DEFAULT_MAX_MESSAGE},
                              .events = which == ARPC__PROTO_SERVER ? &srv_events : &cli_events,
                              .owner = sd,
                              .stop = &sd->stop};
    ASSERT_OK(arpc__proto_grpc.create(&cfg, &sd->s));
}

static void side_close(side *sd)
{
    arpc__proto_grpc.destroy(sd->s);
    arpc__buf_fini(&sd->out);
    arpc__buf_fini(&sd->md_buf);
}

/* Moves what `from` wrote into `to`, which consumes all of it. */
static void deliver(side *from, side *to)
{
    size_t len = from->out.len;
    if (len == 0)
        return;
    arpc_buf in;
    arpc__buf_init(&in);
    ASSERT_OK(arpc__buf_append(&in, arpc__buf_head(&from->out), len));
    arpc__buf_clear(&from->out);
    int64_t n = arpc__proto_grpc.feed(to->s, arpc__buf_head(&in), len, &to->out);
    ASSERT_EQ(n, (int64_t)len);
    arpc__buf_fini(&in);
}

/* Both ways until neither has anything to say. */
static void exchange(void)
{
    for (int i = 0; i < 20 && (cli.out.len > 0 || srv.out.len > 0); i++) {
        deliver(&cli, &srv);
        deliver(&srv, &cli);
    }
    ASSERT_EQ(cli.out.len, 0);
    ASSERT_EQ(srv.out.len, 0);
}

static void setup(void)
{
    side_open(&cli, ARPC__PROTO_CLIENT);
    side_open(&srv, ARPC__PROTO_SERVER);
    /* The client's preface and SETTINGS go out with its first write. */
    ASSERT_EQ(arpc__proto_grpc.feed(cli.s, (const uint8_t *)"", 0, &cli.out), 0);
    ASSERT_EQ(arpc__proto_grpc.feed(srv.s, (const uint8_t *)"", 0, &srv.out), 0);
    exchange();
}

static void teardown(void)
{
    side_close(&cli);
    side_close(&srv);
}

static void send_req(uint64_t id, const char *method, const void *payload, size_t len,
                     const arpc__md *md, int64_t timeout_ns)
{
    arpc__msg msg = {.id = id,
                     .method = method,
                     .method_len = strlen(method),
                     .timeout_ns = timeout_ns,
                     .payload = payload,
                     .payload_len = len};
    if (md != NULL)
        msg.md = *md;
    ASSERT_OK(arpc__proto_grpc.send_request(cli.s, &cli.out, &msg));
}

static void send_rsp(uint64_t id, int status, const void *payload, size_t len, const arpc__md *md)
{
    arpc__msg msg = {.id = id, .status = status, .payload = payload, .payload_len = len};
    if (md != NULL)
        msg.md = *md;
    ASSERT_OK(arpc__proto_grpc.send_response(srv.s, &srv.out, &msg));
}

static void test_detect(void)
{
    const uint8_t *p = (const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    ASSERT_EQ(arpc__proto_grpc.detect(p, 0), ARPC__DETECT_MORE);
    ASSERT_EQ(arpc__proto_grpc.detect(p, 10), ARPC__DETECT_MORE);
    ASSERT_EQ(arpc__proto_grpc.detect(p, 24), ARPC__DETECT_YES);
    ASSERT_EQ(arpc__proto_grpc.detect((const uint8_t *)"AR", 2), ARPC__DETECT_NO);
    ASSERT_EQ(arpc__proto_grpc.detect_len, 24);
    ASSERT_TRUE(arpc__proto_by_id(1) == &arpc__proto_grpc);
}

static void test_unary_metadata_status(void)
{
    setup();
    arpc_buf md_buf;
    arpc__buf_init(&md_buf);
    arpc__md md = {0};
    ASSERT_OK(arpc__md_append(&md_buf, &md, "x-k", 3, "v", 1));
    ASSERT_OK(arpc__md_append(&md_buf, &md, "x-raw-bin", 9, "\0\1", 2));
    send_req(7, "pkg.S/M", "hello", 5, &md, 2000000000);
    exchange();
    ASSERT_EQ(srv.requests, 1);
    ASSERT_STREQ(srv.method, "pkg.S/M"); /* :path /pkg.S/M, the '/' stripped */
    ASSERT_EQ(srv.payload_len, 5);
    ASSERT_MEMEQ(srv.payload, "hello", 5);
    ASSERT_GT(srv.timeout_ns, 1000000000);
    ASSERT_LE(srv.timeout_ns, 2000000000);
    size_t vlen = 0;
    const void *v = arpc__md_find(&srv.md, "x-raw-bin", 9, &vlen);
    ASSERT_TRUE(v != NULL && vlen == 2 && memcmp(v, "\0\1", 2) == 0);

    arpc__md rmd = {0};
    arpc__buf_clear(&md_buf);
    ASSERT_OK(arpc__md_append(&md_buf, &rmd, "x-out", 5, "o", 1));
    send_rsp(srv.ids[0], 0, "world", 5, &rmd);
    exchange();
    ASSERT_EQ(cli.responses, 1);
    ASSERT_EQ(cli.ids[0], 7);
    ASSERT_EQ(cli.statuses[0], 0);
    ASSERT_MEMEQ(cli.payload, "world", 5);
    v = arpc__md_find(&cli.md, "x-out", 5, &vlen);
    ASSERT_TRUE(v != NULL && vlen == 1);

    /* A name that starts with '/' goes as it is; an error carries its text. */
    send_req(8, "/pkg.S/N", "", 0, NULL, 0);
    exchange();
    ASSERT_EQ(srv.requests, 2);
    ASSERT_STREQ(srv.method, "pkg.S/N");
    ASSERT_EQ(srv.timeout_ns, 0);
    send_rsp(srv.ids[1], ARPC_ENOMETHOD, "no such method", 14, NULL);
    exchange();
    ASSERT_EQ(cli.responses, 2);
    ASSERT_EQ(cli.statuses[1], ARPC_ENOMETHOD);
    ASSERT_EQ(cli.payload_len, 14);
    /* An application code keeps its number. */
    send_req(9, "pkg.S/N", "", 0, NULL, 0);
    exchange();
    send_rsp(srv.ids[2], 9, NULL, 0, NULL);
    exchange();
    ASSERT_EQ(cli.statuses[2], 9);
    arpc__buf_fini(&md_buf);
    teardown();
}

static void test_health(void)
{
    setup();
    send_req(1, "grpc.health.v1.Health/Check", "", 0, NULL, 0);
    exchange();
    ASSERT_EQ(srv.requests, 0); /* answered by the protocol */
    ASSERT_EQ(cli.responses, 1);
    ASSERT_EQ(cli.statuses[0], 0);
    ASSERT_EQ(cli.payload_len, 2);
    ASSERT_MEMEQ(cli.payload, "\x08\x01", 2); /* SERVING */
    send_req(2, "grpc.health.v1.Health/Check",
             "\x0a\x03"
             "abc",
             5, NULL, 0);
    exchange();
    ASSERT_EQ(cli.responses, 2);
    ASSERT_EQ(cli.statuses[1], arpc__grpc_status_to_arpc(ARPC__GRPC_NOT_FOUND));
    teardown();
}

static void test_expired_deadline_not_run(void)
{
    setup();
    send_req(3, "pkg.S/M", "x", 1, NULL, 1); /* 1 ns: gone when it arrives */
    exchange();
    ASSERT_EQ(srv.requests, 0);
    ASSERT_EQ(cli.responses, 1);
    ASSERT_EQ(cli.statuses[0], ARPC_ETIMEDOUT);
    teardown();
}

static void test_cancel(void)
{
    setup();
    send_req(4, "pkg.S/M", "x", 1, NULL, 0);
    exchange();
    ASSERT_EQ(srv.requests, 1);
    ASSERT_OK(arpc__proto_grpc.send_cancel(cli.s, &cli.out, 4));
    exchange();
    ASSERT_EQ(srv.cancels, 1);
    ASSERT_EQ(srv.ids[0], srv.ids[0]);
    /* The late answer is dropped, and the client hears nothing of the call. */
    send_rsp(srv.ids[0], 0, "late", 4, NULL);
    exchange();
    ASSERT_EQ(cli.responses, 0);
    /* A cancel of a call already answered is a no-op. */
    ASSERT_OK(arpc__proto_grpc.send_cancel(cli.s, &cli.out, 99));
    teardown();
}

/* An HTTP/2 GOAWAY(NO_ERROR) frame with `last` as its last stream id. */
static void goaway_frame(uint8_t f[17], uint32_t last)
{
    const uint8_t head[9] = {0, 0, 8, 7, 0, 0, 0, 0, 0};
    memcpy(f, head, 9);
    f[9] = (uint8_t)(last >> 24);
    f[10] = (uint8_t)(last >> 16);
    f[11] = (uint8_t)(last >> 8);
    f[12] = (uint8_t)last;
    memset(f + 13, 0, 4);
}

static void test_goaway_last_id(void)
{
    setup();
    /* Three calls (stream ids 1, 3, 5); the server says it processed stream 1 only. */
    send_req(10, "pkg.S/M", "a", 1, NULL, 0);
    send_req(11, "pkg.S/M", "b", 1, NULL, 0);
    send_req(12, "pkg.S/M", "c", 1, NULL, 0);
    arpc__buf_clear(&cli.out);
    uint8_t f[17];
    goaway_frame(f, 1);
    ASSERT_EQ(arpc__proto_grpc.feed(cli.s, f, sizeof(f), &cli.out), (int64_t)sizeof(f));
    ASSERT_EQ(cli.goaways, 1);
    ASSERT_EQ(cli.goaway_last, 10);
    /* The two above it never ran: on_goaway alone says so (the channel retries them at
     * once), and nghttp2's refused close of their streams is not reported again, as an
     * answer to ids the channel no longer holds. */
    ASSERT_EQ(cli.responses, 0);
    /* A second GOAWAY with the same last id moves nothing more: call 10 stays (11 and 12,
     * above it, are gone already). */
    ASSERT_EQ(arpc__proto_grpc.feed(cli.s, f, sizeof(f), &cli.out), (int64_t)sizeof(f));
    ASSERT_EQ(cli.goaways, 2);
    ASSERT_TRUE(cli.goaway_last >= 10);
    ASSERT_EQ(cli.responses, 0);
    teardown();
}

static void test_server_goaway_drains(void)
{
    setup();
    send_req(1, "pkg.S/M", "a", 1, NULL, 0);
    exchange();
    ASSERT_EQ(srv.requests, 1);
    ASSERT_OK(arpc__proto_grpc.send_goaway(srv.s, &srv.out, srv.ids[0], ARPC_ESHUTDOWN));
    exchange();
    ASSERT_EQ(cli.goaways, 1);
    ASSERT_EQ(cli.goaway_last, 1);
    /* The request in flight is still answered. */
    send_rsp(srv.ids[0], 0, "ok", 2, NULL);
    exchange();
    ASSERT_EQ(cli.responses, 1);
    ASSERT_EQ(cli.statuses[0], 0);
    teardown();
}

/* gRPC core's server answers the streams that reach it while it shuts down (between its two
 * GOAWAYs) Trailers-Only CANCELLED without running them (goaway_probe.py): after a GOAWAY such
 * an answer is "never ran" (ESHUTDOWN, which the channel retries); before one it is the
 * server's CANCELLED (ARPC_ECANCELED). */
static void test_cancelled_after_goaway_never_ran(void)
{
    setup();
    send_req(1, "pkg.S/M", "a", 1, NULL, 0);
    send_req(2, "pkg.S/M", "b", 1, NULL, 0);
    exchange();
    ASSERT_EQ(srv.requests, 2);
    uint64_t first = srv.ids[0], second = srv.ids[1];
    send_rsp(first, ARPC_ECANCELED, NULL, 0, NULL);
    exchange();
    ASSERT_EQ(cli.responses, 1);
    ASSERT_EQ(cli.ids[0], 1);
    ASSERT_ERR(cli.statuses[0], ARPC_ECANCELED);
    ASSERT_OK(arpc__proto_grpc.send_goaway(srv.s, &srv.out, second, ARPC_ESHUTDOWN));
    exchange();
    ASSERT_EQ(cli.goaways, 1);
    send_rsp(second, ARPC_ECANCELED, NULL, 0, NULL);
    exchange();
    ASSERT_EQ(cli.responses, 2);
    ASSERT_EQ(cli.ids[1], 2);
    ASSERT_ERR(cli.statuses[1], ARPC_ESHUTDOWN);
    teardown();
}

/* gRPC core turns streams away from the moment its shutdown begins, and its GOAWAY goes out
 * only later: a Trailers-Only CANCELLED before any GOAWAY is held (the client opens a health
 * check stream as a probe) until the server shows which it was.  Here the GOAWAY comes first:
 * never ran (ESHUTDOWN); the probe, above its last stream id, settles nothing more, and the
 * other call is answered as usual.  (test_cancelled_after_goaway_never_ran: the probe answered
 * first, the CANCELLED is the server's.) */
static void test_cancelled_before_goaway_held(void)
{
    setup();
    send_req(1, "pkg.S/M", "a", 1, NULL, 0);
    send_req(2, "pkg.S/M", "b", 1, NULL, 0);
    exchange();
    ASSERT_EQ(srv.requests, 2);
    uint64_t first = srv.ids[0], second = srv.ids[1];
    send_rsp(first, ARPC_ECANCELED, NULL, 0, NULL);
    deliver(&srv, &cli);
    ASSERT_EQ(cli.responses, 0);  /* held */
    ASSERT_TRUE(cli.out.len > 0); /* the probe */
    ASSERT_OK(arpc__proto_grpc.send_goaway(srv.s, &srv.out, second, ARPC_ESHUTDOWN));
    deliver(&srv, &cli);
    ASSERT_EQ(cli.goaways, 1);
    ASSERT_EQ(cli.responses, 1);
    ASSERT_EQ(cli.ids[0], 1);
    ASSERT_ERR(cli.statuses[0], ARPC_ESHUTDOWN);
    exchange();
    ASSERT_EQ(srv.requests, 2); /* the probe is answered by no handler */
    send_rsp(second, 0, "ok", 2, NULL);
    exchange();
    ASSERT_EQ(cli.responses, 2);
    ASSERT_EQ(cli.ids[1], 2);
    ASSERT_EQ(cli.statuses[1], 0);
    teardown();
}

/* A held call the channel gives up on (its deadline) is not reported afterwards. */
static void test_held_call_canceled(void)
{
    setup();
    send_req(1, "pkg.S/M", "a", 1, NULL, 0);
    exchange();
    ASSERT_EQ(srv.requests, 1);
    send_rsp(srv.ids[0], ARPC_ECANCELED, NULL, 0, NULL);
    deliver(&srv, &cli);
    ASSERT_EQ(cli.responses, 0);
    ASSERT_OK(arpc__proto_grpc.send_cancel(cli.s, &cli.out, 1));
    exchange(); /* the probe is answered */
    ASSERT_EQ(cli.responses, 0);
    teardown();
}

/* After a GOAWAY, other statuses keep their meaning: UNAVAILABLE (grpcio's answer to a call
 * still running when its grace ends, which did run) is not "never ran". */
static void test_unavailable_after_goaway_is_kept(void)
{
    setup();
    send_req(1, "pkg.S/M", "a", 1, NULL, 0);
    exchange();
    ASSERT_EQ(srv.requests, 1);
    ASSERT_OK(arpc__proto_grpc.send_goaway(srv.s, &srv.out, srv.ids[0], ARPC_ESHUTDOWN));
    exchange();
    ASSERT_EQ(cli.goaways, 1);
    send_rsp(srv.ids[0], ARPC_ECLOSED, NULL, 0, NULL); /* sent as UNAVAILABLE */
    exchange();
    ASSERT_EQ(cli.responses, 1);
    ASSERT_ERR(cli.statuses[0], ARPC_ECLOSED);
    teardown();
}

static void test_ping_budget(void)
{
    setup();
    /* Idle: two PINGs, then health check streams, each answered. */
    for (uint64_t id = 1; id <= 5; id++) {
        ASSERT_OK(arpc__proto_grpc.send_ping(cli.s, &cli.out, id, false));
        exchange();
        ASSERT_EQ(cli.pongs, (int)id);
        ASSERT_EQ(cli.pong_ids[id - 1], id);
    }
    ASSERT_EQ(cli.responses, 0); /* the probes are not calls */
    ASSERT_EQ(srv.requests, 0);
    teardown();
}

int main(void)
{
    RUN_TEST(test_detect);
    RUN_TEST(test_unary_metadata_status);
    RUN_TEST(test_health);
    RUN_TEST(test_expired_deadline_not_run);
    RUN_TEST(test_cancelled_after_goaway_never_ran);
    RUN_TEST(test_cancelled_before_goaway_held);
    RUN_TEST(test_held_call_canceled);
    RUN_TEST(test_unavailable_after_goaway_is_kept);
    RUN_TEST(test_cancel);
    RUN_TEST(test_goaway_last_id);
    RUN_TEST(test_server_goaway_drains);
    RUN_TEST(test_ping_budget);
    return 0;
}

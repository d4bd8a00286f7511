/*
 * gRPC streams behind the seam (src/proto/grpc/grpc_proto.c on session.c): a client and a
 * server session of arpc__proto_grpc back to back in memory, driven through send_stream and
 * observed through on_stream, as the rpc layer drives them.  The three kinds (bidi, client,
 * server streaming), half-close, END with a status and trailers (and Trailers-Only), cancel
 * both ways, an over-limit message on a stream, unary calls to stream methods, and flow
 * control: a reader that grants no CREDIT stalls its writer at the window (no CREDIT raised
 * beyond it), and the writer resumes when it does; a stalled stream does not starve another.
 */
#include <stdio.h>
#include <string.h>

#include <arpc/err.h>

#include "base/buf.h"
#include "proto/grpc/wire.h"
#include "proto/metadata.h"
#include "proto/proto.h"
#include "test.h"

#define NSTREAMS 8
#define WINDOW   (64u * 1024)

/* What one stream saw on one side. */
typedef struct rec {
    uint64_t id;
    int opens, half_closes, ends, cancels, messages, responses, requests;
    char method[64];
    int64_t timeout_ns;
    char md[256];     /* "key=value;" of the OPEN's or the first MESSAGE's md */
    char end_md[256]; /* END's */
    char msgs[512];   /* "m1|m2|" (short messages) */
    size_t bytes;     /* payload bytes received */
    int status;       /* END's or the response's */
    char text[128];   /* END's payload */
    int64_t credit;   /* CREDIT raised (payload bytes) */
} rec;

typedef struct side {
    arpc__proto_session *s;
    arpc_buf out;
    bool stop;
    bool auto_credit; /* grant CREDIT for every message at once */
    rec r[NSTREAMS];
} side;

static side cli, srv;

static rec *rec_for(side *sd, uint64_t id)
{
    for (int i = 0; i < NSTREAMS; i++)
        if (sd->r[i].id == id)
            return &sd->r[i];
    for (int i = 0; i < NSTREAMS; i++)
        if (sd->r[i].id == 0) {
            sd->r[i].id = id;
            return &sd->r[i];
        }
    test_fail(__FILE__, __LINE__, "too many streams");
    return NULL;
}

static void md_text(char *dst, size_t cap, const arpc__md *md)
{
    size_t off = 0, key_len = 0;
    arpc_metadata_entry e;
    while (arpc__md_next(md, &off, &e, &key_len)) {
        size_t at = strlen(dst);
        snprintf(dst + at, cap - at, "%.*s=%.*s;", (int)key_len, e.key, (int)e.value_len,
                 (const char *)e.value);
    }
}

static bool is_stream(void *owner, const char *method, size_t len)
{
    (void)owner;
    return len > 7 && memcmp(method, "test.S/", 7) == 0;
}

static int on_stream(void *owner, arpc__stream_frame frame, const arpc__msg *msg)
{
    side *sd = owner;
    rec *r = rec_for(sd, msg->id);
    switch (frame) {
    case ARPC__STREAM_OPEN:
        r->opens++;
        snprintf(r->method, sizeof(r->method), "%.*s", (int)msg->method_len, msg->method);
        r->timeout_ns = msg->timeout_ns;
        md_text(r->md, sizeof(r->md), &msg->md);
        ASSERT_EQ(msg->payload_len, 0);
        break;
    case ARPC__STREAM_MESSAGE:
        r->messages++;
        r->bytes += msg->payload_len;
        if (msg->md.count > 0) {
            ASSERT_EQ(r->messages, 1); /* initial metadata rides on the first only */
            md_text(r->md, sizeof(r->md), &msg->md);
        }
        if (msg->payload_len < 32) {
            size_t at = strlen(r->msgs);
            snprintf(r->msgs + at, sizeof(r->msgs) - at, "%.*s|", (int)msg->payload_len,
                     (const char *)msg->payload);
        }
        if (sd->auto_credit && msg->payload_len > 0) {
            arpc__msg c = {.id = msg->id, .payload_len = msg->payload_len};
            ASSERT_OK(arpc__proto_grpc.send_stream(sd->s, &sd->out, ARPC__STREAM_CREDIT, &c));
        }
        break;
    case ARPC__STREAM_HALF_CLOSE:
        r->half_closes++;
        break;
    case ARPC__STREAM_END:
        r->ends++;
        r->status = msg->status;
        md_text(r->end_md, sizeof(r->end_md), &msg->md);
        snprintf(r->text, sizeof(r->text), "%.*s", (int)msg->payload_len,
                 msg->payload ? (const char *)msg->payload : "");
        break;
    case ARPC__STREAM_CREDIT:
        r->credit += (int64_t)msg->payload_len;
        break;
    }
    return 0;
}

static void on_cancel(void *owner, uint64_t id)
{
    rec_for(owner, id)->cancels++;
}

static int on_request(void *owner, const arpc__msg *msg)
{
    rec *r = rec_for(owner, msg->id);
    r->requests++;
    snprintf(r->method, sizeof(r->method), "%.*s", (int)msg->method_len, msg->method);
    r->bytes += msg->payload_len;
    return 0;
}

static int on_response(void *owner, const arpc__msg *msg)
{
    rec *r = rec_for(owner, msg->id);
    r->responses++;
    r->status = msg->status;
    snprintf(r->msgs, sizeof(r->msgs), "%.*s", (int)msg->payload_len, (const char *)msg->payload);
    return 0;
}

static const arpc__proto_events srv_events = {.on_request = on_request,
                                              .on_cancel = on_cancel,
                                              .on_stream = on_stream,
                                              .is_stream_method = is_stream};
static const arpc__proto_events cli_events = {.on_response = on_response, .on_stream = on_stream};

static void side_open(side *sd, arpc__proto_side which, uint32_t max_message)
{
    memset(sd, 0, sizeof(*sd));
    arpc__buf_init(&sd->out);
    arpc__proto_config cfg = {
        .side = which,
        .limits = {.max_message = max_message, .streams = true, .stream_window = WINDOW},
        .events = which == ARPC__PROTO_SERVER ? &srv_events : &cli_events,
        .owner = sd,
        .stop = &sd->stop};
    ASSERT_OK(arpc__proto_grpc.create(&cfg, &sd->s));
}

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

static void exchange(void)
{
    for (int i = 0; i < 10000 && (cli.out.len > 0 || srv.out.len > 0); i++) {
        deliver(&cli, &srv);
        deliver(&srv, &cli);
    }
    ASSERT_EQ(cli.out.len, 0);
    ASSERT_EQ(srv.out.len, 0);
}

static void setup_with(uint32_t srv_max)
{
    side_open(&cli, ARPC__PROTO_CLIENT, ARPC__PROTO_DEFAULT_MAX_MESSAGE);
    side_open(&srv, ARPC__PROTO_SERVER, srv_max);
    ASSERT_EQ(arpc__proto_grpc.feed(cli.s, (const uint8_t *)"", 0, &cli.out), 0);
    ASSERT_EQ(arpc__proto_grpc.feed(srv.s, (const uint8_t *)"", 0, &srv.out), 0);
    exchange();
}

static void setup(void)
{
    setup_with(ARPC__PROTO_DEFAULT_MAX_MESSAGE);
}

static void teardown(void)
{
    arpc__proto_grpc.destroy(cli.s);
    arpc__proto_grpc.destroy(srv.s);
    arpc__buf_fini(&cli.out);
    arpc__buf_fini(&srv.out);
}

static int frame_to(side *sd, arpc__stream_frame f, uint64_t id, const void *p, size_t len)
{
    arpc__msg msg = {.id = id, .payload = p, .payload_len = len};
    return arpc__proto_grpc.send_stream(sd->s, &sd->out, f, &msg);
}

static void send_str(side *sd, uint64_t id, const char *s)
{
    ASSERT_OK(frame_to(sd, ARPC__STREAM_MESSAGE, id, s, strlen(s)));
}

/* A metadata list of one entry, in `buf`. */
static arpc__md one_md(arpc_buf *buf, const char *k, const char *v)
{
    arpc__md md = {0};
    arpc__buf_init(buf);
    ASSERT_OK(arpc__md_append(buf, &md, k, strlen(k), v, strlen(v)));
    md.data = arpc__buf_head(buf);
    return md;
}

static void open_stream(uint64_t id, const char *method, int64_t timeout_ns, const arpc__md *md)
{
    arpc__msg msg = {
        .id = id, .method = method, .method_len = strlen(method), .timeout_ns = timeout_ns};
    if (md)
        msg.md = *md;
    ASSERT_OK(arpc__proto_grpc.send_stream(cli.s, &cli.out, ARPC__STREAM_OPEN, &msg));
}

static void end_stream(uint64_t sid, int status, const char *text, const arpc__md *md)
{
    arpc__msg msg = {
        .id = sid, .status = status, .payload = text, .payload_len = text ? strlen(text) : 0};
    if (md)
        msg.md = *md;
    ASSERT_OK(arpc__proto_grpc.send_stream(srv.s, &srv.out, ARPC__STREAM_END, &msg));
}

/* The server's record of the only stream it has seen. */
static rec *srv_rec(void)
{
    ASSERT_TRUE(srv.r[0].id != 0);
    return &srv.r[0];
}

static void test_caps(void)
{
    ASSERT_TRUE(arpc__proto_grpc.caps & ARPC__PROTO_STREAMS);
    ASSERT_TRUE(arpc__proto_grpc.send_stream != NULL);
}

/* Bidi: OPEN at once with method, deadline and metadata; messages both ways interleaved;
 * the server's initial metadata on its first message; half-close; END with trailers. */
static void test_bidi(void)
{
    setup();
    arpc_buf b1, b2, b3;
    arpc__md md = one_md(&b1, "x-req", "rv");
    open_stream(7, "test.S/Bidi", 5000 * 1000000LL, &md);
    exchange();
    rec *s = srv_rec();
    ASSERT_EQ(s->opens, 1);
    ASSERT_EQ(s->messages, 0);
    ASSERT_STREQ(s->method, "test.S/Bidi");
    ASSERT_TRUE(s->timeout_ns > 4000 * 1000000LL && s->timeout_ns <= 5000 * 1000000LL);
    ASSERT_STREQ(s->md, "x-req=rv;");
    uint64_t sid = s->id;

    send_str(&cli, 7, "a");
    exchange();
    ASSERT_EQ(s->messages, 1);
    arpc__md imd = one_md(&b2, "x-init", "iv");
    arpc__msg m = {.id = sid, .payload = "A", .payload_len = 1, .md = imd};
    ASSERT_OK(arpc__proto_grpc.send_stream(srv.s, &srv.out, ARPC__STREAM_MESSAGE, &m));
    exchange();
    rec *c = &cli.r[0];
    ASSERT_EQ(c->id, 7);
    ASSERT_EQ(c->messages, 1);
    ASSERT_STREQ(c->md, "x-init=iv;");
    send_str(&cli, 7, "b");
    send_str(&srv, sid, "B");
    exchange();
    ASSERT_STREQ(s->msgs, "a|b|");
    ASSERT_STREQ(c->msgs, "A|B|");
    ASSERT_EQ(s->half_closes, 0);
    ASSERT_OK(frame_to(&cli, ARPC__STREAM_HALF_CLOSE, 7, NULL, 0));
    exchange();
    ASSERT_EQ(s->half_closes, 1);
    ASSERT_EQ(c->ends, 0);
    /* Writes after half-close are the rpc layer's to refuse; the session drops them. */
    arpc__md tmd = one_md(&b3, "x-trl", "tv");
    end_stream(sid, 0, NULL, &tmd);
    exchange();
    ASSERT_EQ(c->ends, 1);
    ASSERT_EQ(c->status, 0);
    ASSERT_STREQ(c->end_md, "x-trl=tv;");
    ASSERT_EQ(s->cancels, 0);
    /* Frames for the ended stream are dropped quietly. */
    ASSERT_OK(frame_to(&cli, ARPC__STREAM_MESSAGE, 7, "late", 4));
    ASSERT_OK(frame_to(&srv, ARPC__STREAM_MESSAGE, sid, "late", 4));
    exchange();
    ASSERT_EQ(c->messages, 2);
    arpc__buf_fini(&b1);
    arpc__buf_fini(&b2);
    arpc__buf_fini(&b3);
    teardown();
}

/* Client streaming: many messages, half-close, one answer and OK. */
static void test_client_streaming(void)
{
    setup();
    open_stream(1, "test.S/Sum", 0, NULL);
    for (int i = 0; i < 20; i++)
        send_str(&cli, 1, "x");
    ASSERT_OK(frame_to(&cli, ARPC__STREAM_HALF_CLOSE, 1, NULL, 0));
    exchange();
    rec *s = srv_rec();
    ASSERT_EQ(s->timeout_ns, 0);
    ASSERT_EQ(s->messages, 20);
    ASSERT_EQ(s->half_closes, 1);
    send_str(&srv, s->id, "20");
    end_stream(s->id, 0, NULL, NULL);
    exchange();
    ASSERT_EQ(cli.r[0].messages, 1);
    ASSERT_STREQ(cli.r[0].msgs, "20|");
    ASSERT_EQ(cli.r[0].ends, 1);
    ASSERT_EQ(cli.r[0].status, 0);
    teardown();
}

/* Server streaming: one request, N answers, then an application status with its message
 * and trailers. */
static void test_server_streaming_status(void)
{
    setup();
    open_stream(3, "test.S/Count", 0, NULL);
    send_str(&cli, 3, "3");
    ASSERT_OK(frame_to(&cli, ARPC__STREAM_HALF_CLOSE, 3, NULL, 0));
    exchange();
    rec *s = srv_rec();
    ASSERT_STREQ(s->msgs, "3|");
    send_str(&srv, s->id, "1");
    send_str(&srv, s->id, "2");
    send_str(&srv, s->id, "3");
    arpc_buf b;
    arpc__md tmd = one_md(&b, "x-why", "because");
    end_stream(s->id, 9, "not now", &tmd);
    exchange();
    rec *c = &cli.r[0];
    ASSERT_STREQ(c->msgs, "1|2|3|");
    ASSERT_EQ(c->ends, 1);
    ASSERT_EQ(c->status, 9);
    ASSERT_STREQ(c->text, "not now");
    ASSERT_STREQ(c->end_md, "x-why=because;");
    arpc__buf_fini(&b);
    teardown();
}

/* END with nothing before: Trailers-Only, the initial metadata with the end. */
static void test_trailers_only(void)
{
    setup();
    open_stream(5, "test.S/Fail", 0, NULL);
    exchange();
    arpc_buf b;
    arpc__md md = one_md(&b, "x-only", "ov");
    end_stream(srv_rec()->id, ARPC_ENOMETHOD, "no such thing", &md);
    exchange();
    rec *c = &cli.r[0];
    ASSERT_EQ(c->messages, 0);
    ASSERT_EQ(c->ends, 1);
    ASSERT_EQ(c->status, ARPC_ENOMETHOD);
    ASSERT_STREQ(c->text, "no such thing");
    ASSERT_STREQ(c->end_md, "x-only=ov;");
    arpc__buf_fini(&b);
    teardown();
}

/* A stream whose grpc-timeout passed before it could open is not raised: the client ends
 * with DEADLINE_EXCEEDED, and its messages reach nothing. */
static void test_expired_open(void)
{
    setup();
    open_stream(9, "test.S/Bidi", 1, NULL); /* 1 ns: gone when it arrives */
    send_str(&cli, 9, "m");
    exchange();
    ASSERT_EQ(srv.r[0].opens + srv.r[0].messages + srv.r[0].cancels, 0);
    rec *c = rec_for(&cli, 9);
    ASSERT_EQ(c->ends, 1);
    ASSERT_EQ(c->status, ARPC_ETIMEDOUT);
    teardown();
}

/* The client cancels: RST_STREAM(CANCEL), the server's on_cancel; nothing more reaches the
 * client and the server's late frames are dropped.  The server cancels: END(ECANCELED). */
static void test_cancel_both_ways(void)
{
    setup();
    open_stream(2, "test.S/Bidi", 0, NULL);
    send_str(&cli, 2, "m");
    exchange();
    rec *s = srv_rec();
    ASSERT_EQ(s->messages, 1);
    ASSERT_OK(arpc__proto_grpc.send_cancel(cli.s, &cli.out, 2));
    exchange();
    ASSERT_EQ(s->cancels, 1);
    ASSERT_OK(frame_to(&srv, ARPC__STREAM_MESSAGE, s->id, "late", 4));
    end_stream(s->id, 0, NULL, NULL);
    exchange();
    ASSERT_EQ(cli.r[0].messages, 0);
    ASSERT_EQ(cli.r[0].ends, 0);
    ASSERT_OK(frame_to(&cli, ARPC__STREAM_MESSAGE, 2, "x", 1)); /* dropped */
    exchange();

    open_stream(4, "test.S/Bidi", 0, NULL);
    exchange();
    rec *s2 = &srv.r[1];
    ASSERT_EQ(s2->opens, 1);
    end_stream(s2->id, ARPC_ECANCELED, NULL, NULL);
    exchange();
    rec *c2 = &cli.r[1];
    ASSERT_EQ(c2->id, 4);
    ASSERT_EQ(c2->ends, 1);
    ASSERT_EQ(c2->status, ARPC_ECANCELED);
    ASSERT_EQ(s2->cancels, 0);
    teardown();
}

/* A message over the server's limit fails that stream with RESOURCE_EXHAUSTED (the rpc
 * layer hears on_cancel) while another stream on the connection goes on. */
static void test_over_limit(void)
{
    setup_with(4096);
    open_stream(1, "test.S/Bidi", 0, NULL);
    open_stream(3, "test.S/Bidi", 0, NULL);
    exchange();
    static char big[8192];
    memset(big, 'z', sizeof(big));
    ASSERT_OK(frame_to(&cli, ARPC__STREAM_MESSAGE, 1, big, sizeof(big)));
    send_str(&cli, 3, "fine");
    exchange();
    rec *c1 = rec_for(&cli, 1), *c3 = rec_for(&cli, 3);
    ASSERT_EQ(c1->ends, 1);
    ASSERT_EQ(c1->status, ARPC_EOVERLOAD); /* RESOURCE_EXHAUSTED */
    ASSERT_TRUE(strstr(c1->text, "larger than max") != NULL);
    ASSERT_EQ(srv.r[0].cancels + srv.r[1].cancels, 1);
    rec *s3 = srv.r[0].cancels ? &srv.r[1] : &srv.r[0];
    ASSERT_STREQ(s3->msgs, "fine|");
    end_stream(s3->id, 0, NULL, NULL);
    exchange();
    ASSERT_EQ(c3->ends, 1);
    ASSERT_EQ(c3->status, 0);
    teardown();
}

/* The rpc layer's writer: credit starts at the window, goes down by each payload, and a
 * write waits while it is <= 0 (docs/streams.md). */
typedef struct writer {
    side *sd;
    uint64_t id;
    int64_t spent;
    size_t sent, total;
} writer;

static void writer_run(writer *w, size_t msg_len)
{
    static char buf[16 * 1024];
    ASSERT_LE(msg_len, sizeof(buf));
    memset(buf, 'w', msg_len);
    rec *r = rec_for(w->sd, w->id);
    while (w->sent < w->total && (int64_t)WINDOW + r->credit - w->spent > 0) {
        ASSERT_OK(frame_to(w->sd, ARPC__STREAM_MESSAGE, w->id, buf, msg_len));
        w->spent += (int64_t)msg_len;
        w->sent++;
    }
}

/* Flow control: without CREDIT from the reader, the writer stalls at the window and no
 * CREDIT is raised beyond it; each CREDIT moves it on.  Meanwhile a second stream carries
 * 1 MiB: a stalled stream does not starve the connection. */
static void test_flow_control(void)
{
    setup();
    open_stream(1, "test.S/Up", 0, NULL);
    open_stream(3, "test.S/Up", 0, NULL);
    exchange();
    writer w = {.sd = &cli, .id = 1, .total = 64};
    writer_run(&w, 16 * 1024);
    exchange();
    writer_run(&w, 16 * 1024); /* nothing: no credit came back beyond the window */
    exchange();
    rec *c1 = rec_for(&cli, 1);
    rec *s1 = &srv.r[0];
    ASSERT_EQ(s1->id, 1u); /* the first client stream is HTTP/2 stream 1 */
    ASSERT_LE(c1->credit, (int64_t)WINDOW);
    ASSERT_TRUE(c1->credit > (int64_t)WINDOW - 64);
    ASSERT_LE(s1->bytes, WINDOW);
    /* The peer's window took 4 messages (their CREDIT came back), the session holds the
     * next 4, and the writer waits: at most a window beyond what the peer accepted. */
    ASSERT_EQ(w.sent, 8);
    ASSERT_LE(w.spent - c1->credit, (int64_t)(WINDOW + 5 * w.sent)); /* + their prefixes */
    size_t stalled_at = s1->bytes;

    /* The other stream flows, its reader crediting as it reads. */
    srv.auto_credit = true;
    writer w3 = {.sd = &cli, .id = 3, .total = 64};
    for (int i = 0; i < 1000 && w3.sent < w3.total; i++) {
        writer_run(&w3, 16 * 1024);
        exchange();
    }
    ASSERT_EQ(w3.sent, 64);
    ASSERT_EQ(srv.r[1].bytes, 64u * 16 * 1024);
    ASSERT_EQ(s1->bytes, stalled_at); /* stream 1 still waits */

    /* The reader of stream 1 consumes what it has: the writer resumes. */
    arpc__msg credit = {.id = 1, .payload_len = s1->bytes};
    ASSERT_OK(arpc__proto_grpc.send_stream(srv.s, &srv.out, ARPC__STREAM_CREDIT, &credit));
    for (int i = 0; i < 1000 && w.sent < w.total; i++) {
        exchange();
        writer_run(&w, 16 * 1024);
    }
    exchange();
    ASSERT_EQ(w.sent, 64);
    ASSERT_EQ(s1->bytes, 64u * 16 * 1024);
    ASSERT_EQ(c1->credit, (int64_t)(64u * 16 * 1024));
    teardown();
}

/* One message larger than the window still goes through, alone: the part of it that
 * fills the window is granted ahead once nothing complete waits unconsumed; a message
 * queued unconsumed ahead of it holds it back until its CREDIT. */
static void test_message_over_window(void)
{
    setup();
    open_stream(1, "test.S/Up", 0, NULL);
    exchange();
    static char big[3 * WINDOW];
    memset(big, 'b', sizeof(big));
    send_str(&cli, 1, "small");
    ASSERT_OK(frame_to(&cli, ARPC__STREAM_MESSAGE, 1, big, sizeof(big)));
    exchange();
    rec *s1 = &srv.r[0];
    ASSERT_EQ(s1->messages, 1); /* "small" is not consumed: the big one waits */
    arpc__msg credit = {.id = 1, .payload_len = 5};
    ASSERT_OK(arpc__proto_grpc.send_stream(srv.s, &srv.out, ARPC__STREAM_CREDIT, &credit));
    exchange();
    ASSERT_EQ(s1->messages, 2);
    ASSERT_EQ(s1->bytes, 5 + sizeof(big));
    /* Its consume skips what went ahead: the window is whole again, not more. */
    credit.payload_len = sizeof(big);
    ASSERT_OK(arpc__proto_grpc.send_stream(srv.s, &srv.out, ARPC__STREAM_CREDIT, &credit));
    exchange();
    writer w = {.sd = &cli, .id = 1, .total = 16};
    rec *c1 = rec_for(&cli, 1);
    c1->credit = 0; /* a new writer's count: credit starts at the window again */
    writer_run(&w, 16 * 1024);
    exchange();
    writer_run(&w, 16 * 1024);
    exchange();
    ASSERT_EQ(w.sent, 8); /* a window in the peer, a window in the session, as before */
    ASSERT_LE(c1->credit, (int64_t)WINDOW);
    teardown();
}

/* A unary call to a stream method: OPEN, one MESSAGE, HALF_CLOSE; the handler's message
 * and END are the answer.  A large unary request still passes the smaller window. */
static void test_unary_to_stream_method(void)
{
    setup();
    arpc__msg req = {
        .id = 11, .method = "test.S/Echo", .method_len = 11, .payload = "hi", .payload_len = 2};
    ASSERT_OK(arpc__proto_grpc.send_request(cli.s, &cli.out, &req));
    exchange();
    rec *s = srv_rec();
    ASSERT_EQ(s->opens, 1);
    ASSERT_STREQ(s->msgs, "hi|");
    ASSERT_EQ(s->half_closes, 1);
    send_str(&srv, s->id, "HI");
    end_stream(s->id, 0, NULL, NULL);
    exchange();
    rec *c = rec_for(&cli, 11);
    ASSERT_EQ(c->responses, 1);
    ASSERT_EQ(c->status, 0);
    ASSERT_STREQ(c->msgs, "HI");

    static char big[1024 * 1024];
    memset(big, 'u', sizeof(big));
    arpc__msg un = {.id = 12,
                    .method = "pkg.U/Big",
                    .method_len = 9,
                    .payload = big,
                    .payload_len = sizeof(big)};
    ASSERT_OK(arpc__proto_grpc.send_request(cli.s, &cli.out, &un));
    exchange();
    rec *u = rec_for(&srv, 3);
    ASSERT_EQ(u->requests, 1);
    ASSERT_EQ(u->bytes, sizeof(big));
    teardown();
}

int main(void)
{
    RUN_TEST(test_caps);
    RUN_TEST(test_bidi);
    RUN_TEST(test_client_streaming);
    RUN_TEST(test_server_streaming_status);
    RUN_TEST(test_trailers_only);
    RUN_TEST(test_expired_open);
    RUN_TEST(test_cancel_both_ways);
    RUN_TEST(test_over_limit);
    RUN_TEST(test_flow_control);
    RUN_TEST(test_message_over_window);
    RUN_TEST(test_unary_to_stream_method);
    return 0;
}

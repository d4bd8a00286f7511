/*
 * The native protocol's streams (docs/protocol.md section 13) behind the seam: a client
 * session and a server session (src/proto/native/native.c) back to back in memory, their
 * settings exchanged by a real PING/PONG.  Each stream frame both ways (OPEN with metadata
 * and a deadline, MESSAGE with the server's initial metadata, HALF_CLOSE, END with status,
 * trailing metadata and error text, CANCEL of a stream and of a unary request, WINDOW from
 * coalesced CREDIT), CANCEL withheld from a server without streams, both directions split
 * at every byte position as conn.c feeds them, and every malformed
 * case the session rejects: a frame in the wrong direction, towards a peer that did not
 * announce streams, for an id never opened, id 0, bad lengths, a WINDOW of 0 or not 4 bytes,
 * metadata where none may be, an oversized stream frame; an OPEN the server cannot take is
 * ended by the session with END and a fault.
 */
#include <stdlib.h>
#include <string.h>

#include <arpc/buf.h>
#include <arpc/err.h>

#include "base/buf.h"
#include "proto/frame.h"
#include "proto/metadata.h"
#include "proto/proto.h"
#include "test.h"

#define MAX_EVENTS 64

typedef struct event {
    int kind; /* an arpc__stream_frame, or one of the EV_ below */
    uint64_t id;
    int32_t status;
    int64_t timeout_ns;
    char method[64];
    char payload[256];
    size_t payload_len;
    char md[256]; /* "key=value;" */
} event;

enum { EV_REQUEST = 100, EV_RESPONSE, EV_REFUSED, EV_CANCEL, EV_FAULT };

typedef struct side {
    arpc__proto_session *s;
    arpc_buf *out; /* what this side sent, not yet delivered */
    event ev[MAX_EVENTS];
    size_t n;
    bool stop;
    bool pong;
    arpc__proto_limits peer; /* from on_pong / on_peer_limits */
} side;

typedef struct pair {
    side cli, srv;
} pair;

static event *record(side *sd, int kind, const arpc__msg *msg)
{
    ASSERT_LT(sd->n, MAX_EVENTS);
    event *e = &sd->ev[sd->n++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    if (msg == NULL)
        return e;
    e->id = msg->id;
    e->status = msg->status;
    e->timeout_ns = msg->timeout_ns;
    ASSERT_LT(msg->method_len, sizeof(e->method));
    if (msg->method_len > 0)
        memcpy(e->method, msg->method, msg->method_len);
    e->payload_len = msg->payload_len;
    if (msg->payload != NULL)
        memcpy(e->payload, msg->payload,
               msg->payload_len < sizeof(e->payload) ? msg->payload_len : sizeof(e->payload));
    size_t off = 0, key_len;
    arpc_metadata_entry me;
    while (arpc__md_next(&msg->md, &off, &me, &key_len)) {
        size_t at = strlen(e->md);
        snprintf(e->md + at, sizeof(e->md) - at, "%.*s=%.*s;", (int)key_len, me.key,
                 (int)me.value_len, (const char *)me.value);
    }
    return e;
}

static int ev_request(void *owner, const arpc__msg *msg)
{
    record(owner, EV_REQUEST, msg);
    return 0;
}

static int ev_response(void *owner, const arpc__msg *msg)
{
    record(owner, EV_RESPONSE, msg);
    return 0;
}

static int ev_refused(void *owner, uint64_t id, int err)
{
    event *e = record(owner, EV_REFUSED, NULL);
    e->id = id;
    e->status = err;
    return 0;
}

static void ev_pong(void *owner, uint64_t id, const arpc__proto_limits *peer)
{
    side *sd = owner;
    (void)id;
    sd->pong = true;
    if (peer != NULL)
        sd->peer = *peer;
}

static void ev_peer_limits(void *owner, const arpc__proto_limits *peer)
{
    ((side *)owner)->peer = *peer;
}

static void ev_cancel(void *owner, uint64_t id)
{
    record(owner, EV_CANCEL, NULL)->id = id;
}

static void ev_fault(void *owner, uint64_t id, int fault)
{
    event *e = record(owner, EV_FAULT, NULL);
    e->id = id;
    e->status = fault;
}

static int ev_stream(void *owner, arpc__stream_frame frame, const arpc__msg *msg)
{
    record(owner, (int)frame, msg);
    return 0;
}

static const arpc__proto_events events = {
    .on_request = ev_request,
    .on_response = ev_response,
    .on_refused = ev_refused,
    .on_pong = ev_pong,
    .on_peer_limits = ev_peer_limits,
    .on_cancel = ev_cancel,
    .on_stream_fault = ev_fault,
    .on_stream = ev_stream,
};

static void side_init(side *sd, arpc__proto_side which, bool streams, uint32_t window,
                      uint32_t max_message)
{
    memset(sd, 0, sizeof(*sd));
    arpc__proto_config cfg = {
        .side = which,
        .limits = {.max_message = max_message,
                   .metadata = true,
                   .streams = streams,
                   .stream_window = window},
        .events = &events,
        .owner = sd,
        .stop = &sd->stop,
    };
    ASSERT_OK(arpc__proto_native.create(&cfg, &sd->s));
    ASSERT_OK(arpc_buf_create(&sd->out));
}

static void side_fini(side *sd)
{
    arpc__proto_native.destroy(sd->s);
    arpc_buf_destroy(sd->out);
}

/* Feeds `bytes` to `to` as one chunk; @return what feed returned (all consumed, or an
 * error). */
static int64_t feed(side *to, const uint8_t *bytes, size_t len)
{
    int64_t n = to->s->ops->feed(to->s, bytes, len, to->out);
    if (n >= 0)
        ASSERT_EQ(n, (int64_t)len);
    return n;
}

/* Delivers what `from` sent to `to`.  @return feed's result. */
static int64_t deliver(side *from, side *to)
{
    size_t len = from->out->len;
    uint8_t *copy = malloc(len + 1);
    ASSERT_TRUE(copy != NULL);
    memcpy(copy, arpc__buf_data(from->out), len);
    arpc__buf_clear(from->out);
    int64_t n = feed(to, copy, len);
    free(copy);
    return n;
}

/* Both sides created, settings exchanged (the client's PING, the server's PONG). */
static void pair_init(pair *p, bool cli_streams, bool srv_streams, uint32_t window)
{
    side_init(&p->cli, ARPC__PROTO_CLIENT, cli_streams, window, 0);
    side_init(&p->srv, ARPC__PROTO_SERVER, srv_streams, window, 0);
    ASSERT_OK(p->cli.s->ops->send_ping(p->cli.s, p->cli.out, 1, true));
    ASSERT_GT(deliver(&p->cli, &p->srv), 32);
    ASSERT_GT(deliver(&p->srv, &p->cli), 0);
    ASSERT_TRUE(p->cli.pong);
}

static void pair_fini(pair *p)
{
    side_fini(&p->cli);
    side_fini(&p->srv);
}

static void md_add(arpc_buf *buf, arpc__md *md, const char *key, const char *value)
{
    ASSERT_OK(arpc__md_append(buf, md, key, strlen(key), value, strlen(value)));
}

static int send_stream(side *sd, arpc__stream_frame frame, const arpc__msg *msg)
{
    return sd->s->ops->send_stream(sd->s, sd->out, frame, msg);
}

/* Opens stream `id` from the client with method "/s" and delivers it. */
static void open_stream(pair *p, uint64_t id)
{
    arpc__msg open = {.id = id, .method = "/s", .method_len = 2};
    ASSERT_OK(send_stream(&p->cli, ARPC__STREAM_OPEN, &open));
    ASSERT_GT(deliver(&p->cli, &p->srv), 0);
}

static const event *last(const side *sd)
{
    ASSERT_GT(sd->n, 0);
    return &sd->ev[sd->n - 1];
}

/* ---- each frame, both ways --------------------------------------------------------- */

static void test_settings_announce_streams(void)
{
    pair p;
    pair_init(&p, true, true, 128 * 1024);
    ASSERT_TRUE(p.cli.peer.streams);
    ASSERT_EQ(p.cli.peer.stream_window, 128 * 1024);
    ASSERT_TRUE(p.srv.peer.streams);
    ASSERT_EQ(p.srv.peer.stream_window, 128 * 1024);
    ASSERT_TRUE(arpc__proto_native.caps & ARPC__PROTO_STREAMS);
    pair_fini(&p);

    /* A side without streams announces neither setting. */
    pair_init(&p, false, false, 128 * 1024);
    ASSERT_FALSE(p.cli.peer.streams);
    ASSERT_EQ(p.cli.peer.stream_window, 0);
    ASSERT_FALSE(p.srv.peer.streams);
    pair_fini(&p);
}

static void test_stream_round_trip(void)
{
    pair p;
    pair_init(&p, true, true, 0);
    arpc_buf *mdbuf;
    ASSERT_OK(arpc_buf_create(&mdbuf));

    /* OPEN: method, deadline, request metadata. */
    arpc__md md = {0};
    md_add(mdbuf, &md, "x-req", "r1");
    arpc__msg open = {
        .id = 5, .method = "/svc/Chat", .method_len = 9, .timeout_ns = 2500 * 1000000LL, .md = md};
    ASSERT_OK(send_stream(&p.cli, ARPC__STREAM_OPEN, &open));
    ASSERT_EQ(deliver(&p.cli, &p.srv), 32 + 9 + 4 + 4 + 5 + 2);
    const event *e = last(&p.srv);
    ASSERT_EQ(e->kind, ARPC__STREAM_OPEN);
    ASSERT_EQ(e->id, 5);
    ASSERT_STREQ(e->method, "/svc/Chat");
    ASSERT_EQ(e->timeout_ns, 2500 * 1000000LL);
    ASSERT_STREQ(e->md, "x-req=r1;");
    ASSERT_EQ(e->payload_len, 0);

    /* MESSAGE, client to server. */
    arpc__msg m = {.id = 5, .payload = "ping", .payload_len = 4};
    ASSERT_OK(send_stream(&p.cli, ARPC__STREAM_MESSAGE, &m));
    ASSERT_GT(deliver(&p.cli, &p.srv), 0);
    e = last(&p.srv);
    ASSERT_EQ(e->kind, ARPC__STREAM_MESSAGE);
    ASSERT_EQ(e->id, 5);
    ASSERT_EQ(e->payload_len, 4);
    ASSERT_MEMEQ(e->payload, "ping", 4);
    ASSERT_STREQ(e->md, "");

    /* MESSAGE, server to client, with the initial metadata. */
    arpc__md imd = {0};
    arpc__buf_clear(mdbuf);
    md_add(mdbuf, &imd, "x-init", "i");
    arpc__msg sm = {.id = 5, .md = imd, .payload = "pong!", .payload_len = 5};
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_MESSAGE, &sm));
    ASSERT_GT(deliver(&p.srv, &p.cli), 0);
    e = last(&p.cli);
    ASSERT_EQ(e->kind, ARPC__STREAM_MESSAGE);
    ASSERT_EQ(e->payload_len, 5);
    ASSERT_MEMEQ(e->payload, "pong!", 5);
    ASSERT_STREQ(e->md, "x-init=i;");

    /* An empty MESSAGE is a message too. */
    arpc__msg empty = {.id = 5};
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_MESSAGE, &empty));
    ASSERT_EQ(deliver(&p.srv, &p.cli), 32);
    ASSERT_EQ(last(&p.cli)->kind, ARPC__STREAM_MESSAGE);
    ASSERT_EQ(last(&p.cli)->payload_len, 0);

    /* HALF_CLOSE. */
    arpc__msg hc = {.id = 5};
    ASSERT_OK(send_stream(&p.cli, ARPC__STREAM_HALF_CLOSE, &hc));
    ASSERT_EQ(deliver(&p.cli, &p.srv), 32);
    ASSERT_EQ(last(&p.srv)->kind, ARPC__STREAM_HALF_CLOSE);
    ASSERT_EQ(last(&p.srv)->id, 5);

    /* END with an application status, trailing metadata and the error text. */
    arpc__md tmd = {0};
    arpc__buf_clear(mdbuf);
    md_add(mdbuf, &tmd, "x-trail", "t");
    arpc__msg end = {.id = 5, .status = 7, .md = tmd, .payload = "bad", .payload_len = 3};
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_END, &end));
    ASSERT_GT(deliver(&p.srv, &p.cli), 0);
    e = last(&p.cli);
    ASSERT_EQ(e->kind, ARPC__STREAM_END);
    ASSERT_EQ(e->id, 5);
    ASSERT_EQ(e->status, 7);
    ASSERT_STREQ(e->md, "x-trail=t;");
    ASSERT_EQ(e->payload_len, 3);
    ASSERT_MEMEQ(e->payload, "bad", 3);

    /* A frame for the stream that ended is still raised (the rpc layer ignores it). */
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_MESSAGE, &empty));
    ASSERT_EQ(deliver(&p.srv, &p.cli), 32);
    ASSERT_EQ(last(&p.cli)->kind, ARPC__STREAM_MESSAGE);

    /* An END with a negative status and nothing else. */
    open_stream(&p, 6);
    arpc__msg bare = {.id = 6, .status = ARPC_ENOMETHOD};
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_END, &bare));
    ASSERT_EQ(deliver(&p.srv, &p.cli), 32);
    ASSERT_EQ(last(&p.cli)->kind, ARPC__STREAM_END);
    ASSERT_EQ(last(&p.cli)->status, ARPC_ENOMETHOD);

    arpc_buf_destroy(mdbuf);
    pair_fini(&p);
}

/* Metadata goes only to a peer that reads it, as for unary messages. */
static void test_stream_metadata_withheld(void)
{
    side cli, srv;
    side_init(&cli, ARPC__PROTO_CLIENT, true, 0, 0);
    side_init(&srv, ARPC__PROTO_SERVER, true, 0, 0);
    /* No settings exchanged: the client does not know the server reads metadata. */
    arpc_buf *mdbuf;
    ASSERT_OK(arpc_buf_create(&mdbuf));
    arpc__md md = {0};
    md_add(mdbuf, &md, "x-req", "r1");
    arpc__msg open = {.id = 1, .method = "/s", .method_len = 2, .md = md};
    ASSERT_OK(send_stream(&cli, ARPC__STREAM_OPEN, &open));
    ASSERT_EQ(cli.out->len, 34);
    ASSERT_EQ(deliver(&cli, &srv), 34);
    ASSERT_STREQ(last(&srv)->md, "");
    arpc_buf_destroy(mdbuf);
    side_fini(&cli);
    side_fini(&srv);
}

static void test_cancel(void)
{
    pair p;
    pair_init(&p, true, true, 0);
    /* A stream's cancel. */
    open_stream(&p, 3);
    ASSERT_OK(p.cli.s->ops->send_cancel(p.cli.s, p.cli.out, 3));
    ASSERT_EQ(deliver(&p.cli, &p.srv), 32);
    ASSERT_EQ(last(&p.srv)->kind, EV_CANCEL);
    ASSERT_EQ(last(&p.srv)->id, 3);

    /* A unary request's cancel. */
    arpc__msg req = {.id = 4, .method = "/u", .method_len = 2, .payload = "x", .payload_len = 1};
    ASSERT_OK(p.cli.s->ops->send_request(p.cli.s, p.cli.out, &req));
    ASSERT_GT(deliver(&p.cli, &p.srv), 0);
    ASSERT_EQ(last(&p.srv)->kind, EV_REQUEST);
    ASSERT_OK(p.cli.s->ops->send_cancel(p.cli.s, p.cli.out, 4));
    ASSERT_EQ(deliver(&p.cli, &p.srv), 32);
    ASSERT_EQ(last(&p.srv)->kind, EV_CANCEL);
    ASSERT_EQ(last(&p.srv)->id, 4);
    pair_fini(&p);

    /* Frames a side never sends are refused, nothing written; a CREDIT of 0 sends nothing. */
    pair_init(&p, true, true, 0);
    arpc__msg any = {.id = 1, .method = "/s", .method_len = 2};
    ASSERT_ERR(send_stream(&p.srv, ARPC__STREAM_OPEN, &any), ARPC_EINVAL);
    ASSERT_ERR(send_stream(&p.srv, ARPC__STREAM_HALF_CLOSE, &any), ARPC_EINVAL);
    ASSERT_ERR(send_stream(&p.cli, ARPC__STREAM_END, &any), ARPC_EINVAL);
    arpc__msg zero = {.id = 1};
    for (int i = 0; i < 20; i++)
        ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_CREDIT, &zero));
    ASSERT_EQ(p.srv.out->len, 0);
    ASSERT_EQ(p.cli.out->len, 0);
    pair_fini(&p);

    /* A server that did not announce streams is never sent a CANCEL (it would close the
     * connection on type 9): the rpc layer learns it was not told. */
    pair_init(&p, true, false, 0);
    ASSERT_ERR(p.cli.s->ops->send_cancel(p.cli.s, p.cli.out, 1), ARPC_EINVAL);
    ASSERT_EQ(p.cli.out->len, 0);
    pair_fini(&p);
}

/* CREDIT adds up per stream and goes as one WINDOW once half the window we announced has
 * been consumed; the peer raises it as CREDIT. */
static void test_window_coalesced(void)
{
    pair p;
    const uint32_t window = 64 * 1024;
    pair_init(&p, true, true, window);
    open_stream(&p, 1);
    open_stream(&p, 2);

    /* The server consumed 32 KiB - 1 of stream 1 in 1 KiB steps: nothing sent yet. */
    for (int i = 0; i < 31; i++) {
        arpc__msg c = {.id = 1, .payload_len = 1024};
        ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_CREDIT, &c));
    }
    arpc__msg c = {.id = 1, .payload_len = 1023};
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_CREDIT, &c));
    arpc__msg c2 = {.id = 2, .payload_len = 100};
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_CREDIT, &c2));
    ASSERT_EQ(p.srv.out->len, 0);
    /* One more byte reaches half the window: one WINDOW of 32 KiB. */
    c.payload_len = 1;
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_CREDIT, &c));
    ASSERT_EQ(p.srv.out->len, 36);
    size_t before = p.cli.n;
    ASSERT_EQ(deliver(&p.srv, &p.cli), 36);
    ASSERT_EQ(p.cli.n, before + 1);
    const event *e = last(&p.cli);
    ASSERT_EQ(e->kind, ARPC__STREAM_CREDIT);
    ASSERT_EQ(e->id, 1);
    ASSERT_EQ(e->payload_len, 32 * 1024);

    /* A message as large as the window goes back at once, in one WINDOW. */
    arpc__msg big = {.id = 2, .payload_len = 200 * 1024};
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_CREDIT, &big));
    ASSERT_EQ(deliver(&p.srv, &p.cli), 36);
    ASSERT_EQ(last(&p.cli)->id, 2);
    ASSERT_EQ(last(&p.cli)->payload_len, 200 * 1024 + 100);

    /* The client's WINDOW reaches the server the same way. */
    arpc__msg cc = {.id = 1, .payload_len = 40 * 1024};
    ASSERT_OK(send_stream(&p.cli, ARPC__STREAM_CREDIT, &cc));
    ASSERT_EQ(deliver(&p.cli, &p.srv), 36);
    ASSERT_EQ(last(&p.srv)->kind, ARPC__STREAM_CREDIT);
    ASSERT_EQ(last(&p.srv)->payload_len, 40 * 1024);
    pair_fini(&p);
}

/* More streams with pending credit than slots: the oldest is sent early, so no credit is
 * ever lost; an ended stream's credit is dropped. */
static void test_window_slots(void)
{
    pair p;
    pair_init(&p, true, true, 0);
    for (uint64_t id = 1; id <= 12; id++)
        open_stream(&p, id);
    for (uint64_t id = 1; id <= 12; id++) {
        arpc__msg c = {.id = id, .payload_len = 10};
        ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_CREDIT, &c));
    }
    /* 8 slots: streams 1..4 were sent early to make room for 9..12. */
    ASSERT_EQ(p.srv.out->len, 4 * 36);
    size_t before = p.cli.n;
    ASSERT_GT(deliver(&p.srv, &p.cli), 0);
    ASSERT_EQ(p.cli.n, before + 4);
    for (size_t i = 0; i < 4; i++) {
        ASSERT_EQ(p.cli.ev[before + i].kind, ARPC__STREAM_CREDIT);
        ASSERT_EQ(p.cli.ev[before + i].id, i + 1);
        ASSERT_EQ(p.cli.ev[before + i].payload_len, 10);
    }
    /* END drops stream 5's pending credit: a slot is free, nothing is sent early. */
    arpc__msg end = {.id = 5};
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_END, &end));
    ASSERT_GT(deliver(&p.srv, &p.cli), 0);
    open_stream(&p, 13);
    arpc__msg c = {.id = 13, .payload_len = 10};
    ASSERT_OK(send_stream(&p.srv, ARPC__STREAM_CREDIT, &c));
    ASSERT_EQ(p.srv.out->len, 0);
    pair_fini(&p);
}

/* ---- split at every byte position ---------------------------------------------------- */

/* Feeds `bytes` as conn.c does, in two reads split at `split`: what a feed leaves is offered
 * again with the next read behind it. */
static void feed_split(side *to, const uint8_t *bytes, size_t len, size_t split)
{
    arpc_buf *pending;
    ASSERT_OK(arpc_buf_create(&pending));
    size_t cuts[] = {split, len};
    size_t at = 0;
    for (size_t i = 0; i < 2; i++) {
        ASSERT_OK(arpc_buf_append(pending, bytes + at, cuts[i] - at));
        at = cuts[i];
        if (pending->len == 0)
            continue;
        int64_t n = to->s->ops->feed(to->s, arpc__buf_data(pending), pending->len, to->out);
        ASSERT_GE(n, 0);
        arpc__buf_consume(pending, (size_t)n);
    }
    ASSERT_EQ(pending->len, 0);
    arpc_buf_destroy(pending);
}

static void assert_same_events(const side *a, const side *b)
{
    ASSERT_EQ(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const event *x = &a->ev[i], *y = &b->ev[i];
        ASSERT_EQ(x->kind, y->kind);
        ASSERT_EQ(x->id, y->id);
        ASSERT_EQ(x->status, y->status);
        ASSERT_EQ(x->timeout_ns, y->timeout_ns);
        ASSERT_STREQ(x->method, y->method);
        ASSERT_EQ(x->payload_len, y->payload_len);
        ASSERT_MEMEQ(x->payload, y->payload, x->payload_len < 256 ? x->payload_len : 256);
        ASSERT_STREQ(x->md, y->md);
    }
}

/* Each side's stream frames, split at every byte position, raise the events the whole
 * bytes raise, and what the server writes back by itself (an END for an OPEN it refuses)
 * is the same. */
static void test_split_at_every_position(void)
{
    arpc_buf *mdbuf, *up, *down;
    ASSERT_OK(arpc_buf_create(&mdbuf));
    ASSERT_OK(arpc_buf_create(&up));
    ASSERT_OK(arpc_buf_create(&down));
    arpc__md md = {0};
    md_add(mdbuf, &md, "x-k", "v");
    arpc__md bad = {0};
    arpc_buf *badbuf;
    ASSERT_OK(arpc_buf_create(&badbuf));
    md_add(badbuf, &bad, "Bad", "v");

    /* Client to server: an OPEN with metadata, messages (one of 40 bytes, one empty), a
     * WINDOW, a refused OPEN (bad metadata), HALF_CLOSE, a unary request and its CANCEL. */
    ASSERT_OK(arpc__frame_encode_open(up, 1, 1500, "s.Chat", 6, &md));
    ASSERT_OK(
        arpc__frame_encode_message(up, 1, NULL, "0123456789012345678901234567890123456789", 40));
    ASSERT_OK(arpc__frame_encode_message(up, 1, NULL, NULL, 0));
    ASSERT_OK(arpc__frame_encode_window(up, 1, 70000));
    ASSERT_OK(arpc__frame_encode_open(up, 2, 0, "s.S", 3, &bad));
    ASSERT_OK(arpc__frame_encode_control(up, ARPC__FRAME_HALF_CLOSE, 1, 0));
    ASSERT_OK(arpc__frame_encode_request(up, 3, 0, 0, "u", 1, "x", 1));
    ASSERT_OK(arpc__frame_encode_control(up, ARPC__FRAME_CANCEL, 3, 0));
    /* Server to client: MESSAGE with initial metadata, MESSAGE, WINDOW, END with trailing
     * metadata and text, a late MESSAGE for the ended stream. */
    ASSERT_OK(arpc__frame_encode_message(down, 1, &md, "first", 5));
    ASSERT_OK(arpc__frame_encode_message(down, 1, NULL, "second", 6));
    ASSERT_OK(arpc__frame_encode_window(down, 1, 65536));
    ASSERT_OK(arpc__frame_encode_end(down, 1, 42, &md, "why", 3));
    ASSERT_OK(arpc__frame_encode_message(down, 1, NULL, "late", 4));

    const uint8_t *ub = arpc__buf_data(up), *db = arpc__buf_data(down);
    side want_srv, want_cli;
    side_init(&want_srv, ARPC__PROTO_SERVER, true, 0, 0);
    feed_split(&want_srv, ub, up->len, up->len);
    /* OPEN, 2 MESSAGEs, CREDIT, HALF_CLOSE, REQUEST, CANCEL; the refused OPEN raises nothing
     * and is answered with an END. */
    ASSERT_EQ(want_srv.n, 7);
    ASSERT_EQ(want_srv.ev[0].kind, ARPC__STREAM_OPEN);
    ASSERT_EQ(want_srv.ev[6].kind, EV_CANCEL);
    ASSERT_EQ(want_srv.out->len, 32);
    side_init(&want_cli, ARPC__PROTO_CLIENT, true, 0, 0);
    arpc__msg open = {.id = 1, .method = "s", .method_len = 1};
    ASSERT_OK(send_stream(&want_cli, ARPC__STREAM_OPEN, &open));
    arpc__buf_clear(want_cli.out);
    feed_split(&want_cli, db, down->len, down->len);
    ASSERT_EQ(want_cli.n, 5);

    for (size_t split = 0; split <= up->len; split++) {
        side srv;
        side_init(&srv, ARPC__PROTO_SERVER, true, 0, 0);
        feed_split(&srv, ub, up->len, split);
        assert_same_events(&srv, &want_srv);
        ASSERT_EQ(srv.out->len, want_srv.out->len);
        ASSERT_MEMEQ(arpc__buf_data(srv.out), arpc__buf_data(want_srv.out), srv.out->len);
        side_fini(&srv);
    }
    for (size_t split = 0; split <= down->len; split++) {
        side cli;
        side_init(&cli, ARPC__PROTO_CLIENT, true, 0, 0);
        ASSERT_OK(send_stream(&cli, ARPC__STREAM_OPEN, &open));
        arpc__buf_clear(cli.out);
        feed_split(&cli, db, down->len, split);
        assert_same_events(&cli, &want_cli);
        side_fini(&cli);
    }
    side_fini(&want_srv);
    side_fini(&want_cli);
    arpc_buf_destroy(badbuf);
    arpc_buf_destroy(mdbuf);
    arpc_buf_destroy(up);
    arpc_buf_destroy(down);
}

/* ---- malformed: each is a protocol error that closes the connection ------------------- */

/* Feeds one frame `bytes` to `to`, expecting `want`. */
static void expect_feed(side *to, const arpc_buf *frame, int64_t want)
{
    int64_t n = to->s->ops->feed(to->s, arpc__buf_data(frame), frame->len, to->out);
    ASSERT_EQ(n, want);
}

static void test_wrong_direction(void)
{
    pair p;
    arpc_buf *f;
    ASSERT_OK(arpc_buf_create(&f));

    /* END towards a server. */
    pair_init(&p, true, true, 0);
    open_stream(&p, 1);
    ASSERT_OK(arpc__frame_encode_end(f, 1, 0, NULL, NULL, 0));
    expect_feed(&p.srv, f, ARPC_EFRAME);
    pair_fini(&p);

    /* HALF_CLOSE and CANCEL towards a client, for a stream it opened. */
    for (int type = ARPC__FRAME_HALF_CLOSE; type <= ARPC__FRAME_CANCEL;
         type += ARPC__FRAME_CANCEL - ARPC__FRAME_HALF_CLOSE) {
        pair_init(&p, true, true, 0);
        open_stream(&p, 1);
        arpc__buf_clear(f);
        ASSERT_OK(arpc__frame_encode_control(f, (uint8_t)type, 1, 0));
        expect_feed(&p.cli, f, ARPC_EFRAME);
        pair_fini(&p);
    }

    /* An OPEN towards a client (any REQUEST is). */
    pair_init(&p, true, true, 0);
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_open(f, 1, 0, "/s", 2, NULL));
    expect_feed(&p.cli, f, ARPC_EFRAME);
    pair_fini(&p);
    arpc_buf_destroy(f);
}

/* Every stream frame towards a side that did not announce STREAMS = 1. */
static void test_streams_not_announced(void)
{
    arpc_buf *f;
    ASSERT_OK(arpc_buf_create(&f));
    pair p;
    /* Server side: OPEN, MESSAGE, HALF_CLOSE, CANCEL, WINDOW. */
    for (int i = 0; i < 5; i++) {
        pair_init(&p, true, false, 0);
        arpc__msg req = {.id = 1, .method = "/u", .method_len = 2};
        ASSERT_OK(p.cli.s->ops->send_request(p.cli.s, p.cli.out, &req));
        ASSERT_GT(deliver(&p.cli, &p.srv), 0);
        arpc__buf_clear(f);
        if (i == 0)
            ASSERT_OK(arpc__frame_encode_open(f, 2, 0, "/s", 2, NULL));
        else if (i == 1)
            ASSERT_OK(arpc__frame_encode_message(f, 1, NULL, "x", 1));
        else if (i == 2)
            ASSERT_OK(arpc__frame_encode_control(f, ARPC__FRAME_HALF_CLOSE, 1, 0));
        else if (i == 3)
            ASSERT_OK(arpc__frame_encode_control(f, ARPC__FRAME_CANCEL, 1, 0));
        else
            ASSERT_OK(arpc__frame_encode_window(f, 1, 100));
        expect_feed(&p.srv, f, ARPC_EFRAME);
        pair_fini(&p);
    }
    /* Client side: MESSAGE, END, WINDOW for a stream it opened (toward a server that took
     * it) while the client itself did not announce streams. */
    for (int i = 0; i < 3; i++) {
        pair_init(&p, false, true, 0);
        arpc__msg open = {.id = 1, .method = "/s", .method_len = 2};
        ASSERT_OK(send_stream(&p.cli, ARPC__STREAM_OPEN, &open));
        arpc__buf_clear(p.cli.out);
        arpc__buf_clear(f);
        if (i == 0)
            ASSERT_OK(arpc__frame_encode_message(f, 1, NULL, "x", 1));
        else if (i == 1)
            ASSERT_OK(arpc__frame_encode_end(f, 1, 0, NULL, NULL, 0));
        else
            ASSERT_OK(arpc__frame_encode_window(f, 1, 100));
        expect_feed(&p.cli, f, ARPC_EFRAME);
        pair_fini(&p);
    }
    arpc_buf_destroy(f);
}

/* Ids: 0, or above what was opened (a server: above the highest request id; a client:
 * above the highest stream it opened) are protocol errors. */
static void test_ids_never_opened(void)
{
    arpc_buf *f;
    ASSERT_OK(arpc_buf_create(&f));
    pair p;
    /* Server: MESSAGE, HALF_CLOSE, CANCEL, WINDOW for id 0 and for an id above 4. */
    uint64_t ids[] = {0, 5};
    for (size_t k = 0; k < 2; k++) {
        for (int i = 0; i < 4; i++) {
            pair_init(&p, true, true, 0);
            open_stream(&p, 4);
            arpc__buf_clear(f);
            if (i == 0)
                ASSERT_OK(arpc__frame_encode_message(f, ids[k], NULL, "x", 1));
            else if (i == 1)
                ASSERT_OK(arpc__frame_encode_control(f, ARPC__FRAME_HALF_CLOSE, ids[k], 0));
            else if (i == 2)
                ASSERT_OK(arpc__frame_encode_control(f, ARPC__FRAME_CANCEL, ids[k], 0));
            else
                ASSERT_OK(arpc__frame_encode_window(f, ids[k], 100));
            expect_feed(&p.srv, f, ARPC_EFRAME);
            pair_fini(&p);
        }
    }
    /* An id at or below the highest is fine (a stream that ended, or a unary request). */
    pair_init(&p, true, true, 0);
    open_stream(&p, 4);
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_message(f, 3, NULL, "x", 1));
    expect_feed(&p.srv, f, (int64_t)f->len);
    ASSERT_EQ(last(&p.srv)->kind, ARPC__STREAM_MESSAGE);
    ASSERT_EQ(last(&p.srv)->id, 3);
    pair_fini(&p);

    /* Client: MESSAGE, END, WINDOW for id 0 and above its highest stream (a unary
     * request's id above it does not count). */
    for (size_t k = 0; k < 2; k++) {
        for (int i = 0; i < 3; i++) {
            pair_init(&p, true, true, 0);
            open_stream(&p, 4);
            arpc__msg req = {.id = 9, .method = "/u", .method_len = 2};
            ASSERT_OK(p.cli.s->ops->send_request(p.cli.s, p.cli.out, &req));
            ASSERT_GT(deliver(&p.cli, &p.srv), 0);
            uint64_t id = k == 0 ? 0 : 9;
            arpc__buf_clear(f);
            if (i == 0)
                ASSERT_OK(arpc__frame_encode_message(f, id, NULL, "x", 1));
            else if (i == 1)
                ASSERT_OK(arpc__frame_encode_end(f, id, 0, NULL, NULL, 0));
            else
                ASSERT_OK(arpc__frame_encode_window(f, id, 100));
            expect_feed(&p.cli, f, ARPC_EFRAME);
            pair_fini(&p);
        }
    }
    /* An OPEN whose id does not increase is a request id that does not: an error. */
    pair_init(&p, true, true, 0);
    open_stream(&p, 4);
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_open(f, 4, 0, "/s", 2, NULL));
    expect_feed(&p.srv, f, ARPC_EFRAME);
    pair_fini(&p);
    arpc_buf_destroy(f);
}

/* Writes a header of `type` with these lengths and `payload`, no metadata. */
static void raw_frame(arpc_buf *f, uint8_t type, uint16_t flags, uint64_t id, const char *method,
                      const void *payload, uint32_t payload_len)
{
    arpc__frame h = {.type = type,
                     .flags = flags,
                     .request_id = id,
                     .method = method,
                     .method_len = (uint16_t)(method ? strlen(method) : 0),
                     .payload_len = payload_len};
    uint8_t hdr[ARPC__FRAME_HEADER_SIZE];
    arpc__frame_write_header(hdr, &h);
    arpc__buf_clear(f);
    ASSERT_OK(arpc_buf_append(f, hdr, sizeof(hdr)));
    if (method != NULL)
        ASSERT_OK(arpc_buf_append(f, method, strlen(method)));
    if (payload_len > 0)
        ASSERT_OK(arpc_buf_append(f, payload, payload_len));
}

static void test_bad_lengths(void)
{
    arpc_buf *f;
    ASSERT_OK(arpc_buf_create(&f));
    pair p;
    const uint8_t five[5] = {1, 0, 0, 0, 0};

    /* WINDOW: a payload of 0, 3 or 5 bytes, or a grant of 0. */
    uint32_t lens[] = {0, 3, 5};
    for (size_t i = 0; i < 3; i++) {
        pair_init(&p, true, true, 0);
        open_stream(&p, 1);
        raw_frame(f, ARPC__FRAME_WINDOW, 0, 1, NULL, five, lens[i]);
        expect_feed(&p.srv, f, ARPC_EFRAME);
        pair_fini(&p);
    }
    pair_init(&p, true, true, 0);
    open_stream(&p, 1);
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_window(f, 1, 0));
    expect_feed(&p.srv, f, ARPC_EFRAME);
    pair_fini(&p);

    /* HALF_CLOSE and CANCEL with a payload. */
    uint8_t types[] = {ARPC__FRAME_HALF_CLOSE, ARPC__FRAME_CANCEL};
    for (size_t i = 0; i < 2; i++) {
        pair_init(&p, true, true, 0);
        open_stream(&p, 1);
        raw_frame(f, types[i], 0, 1, NULL, "x", 1);
        expect_feed(&p.srv, f, ARPC_EFRAME);
        pair_fini(&p);
    }

    /* A stream frame with a method name. */
    pair_init(&p, true, true, 0);
    open_stream(&p, 1);
    uint8_t hdr[ARPC__FRAME_HEADER_SIZE];
    arpc__frame h = {.type = ARPC__FRAME_MESSAGE, .request_id = 1};
    arpc__frame_write_header(hdr, &h);
    hdr[6] = 2; /* method_len */
    arpc__buf_clear(f);
    ASSERT_OK(arpc_buf_append(f, hdr, sizeof(hdr)));
    ASSERT_OK(arpc_buf_append(f, "/s", 2));
    expect_feed(&p.srv, f, ARPC_EFRAME);
    pair_fini(&p);

    /* An OPEN with bytes after its metadata block (a message: streams carry theirs in
     * MESSAGE frames). */
    pair_init(&p, true, true, 0);
    raw_frame(f, ARPC__FRAME_REQUEST, ARPC__FLAG_STREAM, 1, "/s", "x", 1);
    expect_feed(&p.srv, f, ARPC_EFRAME);
    pair_fini(&p);

    /* A client's MESSAGE with metadata (only the server's first MESSAGE carries any). */
    pair_init(&p, true, true, 0);
    open_stream(&p, 1);
    arpc_buf *mdbuf;
    ASSERT_OK(arpc_buf_create(&mdbuf));
    arpc__md md = {0};
    md_add(mdbuf, &md, "x-a", "b");
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_message(f, 1, &md, "x", 1));
    expect_feed(&p.srv, f, ARPC_EFRAME);
    pair_fini(&p);
    arpc_buf_destroy(mdbuf);
    arpc_buf_destroy(f);
}

/* An oversized MESSAGE, END or WINDOW closes the connection (ETOOBIG): the writer checks
 * each message against the receiver's limit.  An oversized OPEN costs only its stream: the
 * server's session ends it with END(ETOOBIG) and raises a fault. */
static void test_oversized(void)
{
    arpc_buf *f;
    ASSERT_OK(arpc_buf_create(&f));
    static char big[600];
    memset(big, 'b', sizeof(big));
    side cli, srv;

    side_init(&srv, ARPC__PROTO_SERVER, true, 0, 512);
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_open(f, 1, 0, "/s", 2, NULL));
    expect_feed(&srv, f, (int64_t)f->len);
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_message(f, 1, NULL, big, sizeof(big)));
    expect_feed(&srv, f, ARPC_ETOOBIG);
    side_fini(&srv);

    side_init(&cli, ARPC__PROTO_CLIENT, true, 0, 512);
    arpc__msg open = {.id = 1, .method = "/s", .method_len = 2};
    ASSERT_OK(send_stream(&cli, ARPC__STREAM_OPEN, &open));
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_end(f, 1, 3, NULL, big, sizeof(big)));
    expect_feed(&cli, f, ARPC_ETOOBIG);
    side_fini(&cli);

    /* The OPEN: its metadata block is over the limit. */
    side_init(&srv, ARPC__PROTO_SERVER, true, 0, 512);
    arpc__frame h = {.type = ARPC__FRAME_REQUEST,
                     .flags = ARPC__FLAG_STREAM,
                     .request_id = 7,
                     .method = "/s",
                     .method_len = 2,
                     .payload_len = sizeof(big)};
    uint8_t hdr[ARPC__FRAME_HEADER_SIZE];
    arpc__frame_write_header(hdr, &h);
    hdr[4] |= ARPC__FLAG_METADATA;
    /* Only the header and part of the body arrive: the session answers at once. */
    ASSERT_EQ(feed(&srv, hdr, sizeof(hdr)), (int64_t)sizeof(hdr));
    ASSERT_EQ(srv.n, 1);
    ASSERT_EQ(srv.ev[0].kind, EV_FAULT);
    ASSERT_EQ(srv.ev[0].id, 7);
    ASSERT_EQ(srv.ev[0].status, ARPC__PROTO_FAULT_HEADERS_TOO_BIG);
    arpc__frame end;
    ASSERT_EQ(arpc__frame_decode(arpc__buf_data(srv.out), srv.out->len, 1 << 20, &end), 32);
    ASSERT_EQ(end.type, ARPC__FRAME_END);
    ASSERT_EQ(end.request_id, 7);
    ASSERT_EQ(end.status, ARPC_ETOOBIG);
    ASSERT_TRUE(srv.s->ops->mid_message(srv.s));
    /* The rest of its body is skipped; the next frame is read. */
    ASSERT_EQ(feed(&srv, (const uint8_t *)"/s", 2), 2);
    ASSERT_EQ(feed(&srv, (const uint8_t *)big, sizeof(big)), (int64_t)sizeof(big));
    ASSERT_FALSE(srv.s->ops->mid_message(srv.s));
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_message(f, 7, NULL, "x", 1));
    expect_feed(&srv, f, (int64_t)f->len);
    ASSERT_EQ(last(&srv)->kind, ARPC__STREAM_MESSAGE);
    side_fini(&srv);
    arpc_buf_destroy(f);
}

/* Metadata that breaks the rules costs its stream only. */
static void test_bad_metadata(void)
{
    arpc_buf *f, *mdbuf;
    ASSERT_OK(arpc_buf_create(&f));
    ASSERT_OK(arpc_buf_create(&mdbuf));
    ASSERT_ERR(arpc__md_check("Bad", 3, "v", 1), ARPC_EINVAL);
    arpc__md md = {0};
    md_add(mdbuf, &md, "Bad", "v"); /* unchecked in memory; the receiver checks */
    pair p;

    /* An OPEN: the server's session ends it with END(EINVAL). */
    pair_init(&p, true, true, 0);
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_open(f, 1, 0, "/s", 2, &md));
    expect_feed(&p.srv, f, (int64_t)f->len);
    ASSERT_EQ(p.srv.n, 0);
    arpc__frame end;
    ASSERT_EQ(arpc__frame_decode(arpc__buf_data(p.srv.out), p.srv.out->len, 1 << 20, &end), 32);
    ASSERT_EQ(end.type, ARPC__FRAME_END);
    ASSERT_EQ(end.request_id, 1);
    ASSERT_EQ(end.status, ARPC_EINVAL);
    pair_fini(&p);

    /* A server's MESSAGE: the client's session ends the stream with EINVAL (raised as END)
     * and cancels it on the server. */
    pair_init(&p, true, true, 0);
    open_stream(&p, 1);
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_message(f, 1, &md, "x", 1));
    expect_feed(&p.cli, f, (int64_t)f->len);
    ASSERT_EQ(last(&p.cli)->kind, ARPC__STREAM_END);
    ASSERT_EQ(last(&p.cli)->status, ARPC_EINVAL);
    ASSERT_EQ(deliver(&p.cli, &p.srv), 32);
    ASSERT_EQ(last(&p.srv)->kind, EV_CANCEL);
    ASSERT_EQ(last(&p.srv)->id, 1);

    /* An END: the stream ends with EINVAL; nothing to cancel. */
    open_stream(&p, 2);
    arpc__buf_clear(f);
    ASSERT_OK(arpc__frame_encode_end(f, 2, 0, &md, NULL, 0));
    expect_feed(&p.cli, f, (int64_t)f->len);
    ASSERT_EQ(last(&p.cli)->kind, ARPC__STREAM_END);
    ASSERT_EQ(last(&p.cli)->status, ARPC_EINVAL);
    ASSERT_EQ(p.cli.out->len, 0);
    pair_fini(&p);
    arpc_buf_destroy(mdbuf);
    arpc_buf_destroy(f);
}

int main(void)
{
    RUN_TEST(test_settings_announce_streams);
    RUN_TEST(test_stream_round_trip);
    RUN_TEST(test_stream_metadata_withheld);
    RUN_TEST(test_cancel);
    RUN_TEST(test_window_coalesced);
    RUN_TEST(test_window_slots);
    RUN_TEST(test_split_at_every_position);
    RUN_TEST(test_wrong_direction);
    RUN_TEST(test_streams_not_announced);
    RUN_TEST(test_ids_never_opened);
    RUN_TEST(test_bad_lengths);
    RUN_TEST(test_oversized);
    RUN_TEST(test_bad_metadata);
    return 0;
}

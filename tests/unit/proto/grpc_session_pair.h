/*
 * A gRPC client session and a server session wired back to back in memory, with a test
 * "handler" on the server (echo at /test.Echo/Echo, UNIMPLEMENTED elsewhere) and a record
 * of every event on both sides.  Shared by test_grpc_session.c and
 * test_grpc_session_faults.c.
 */
#ifndef TEST_GRPC_SESSION_PAIR_H
#define TEST_GRPC_SESSION_PAIR_H

#include <stdlib.h>
#include <string.h>

#include <arpc/buf.h>
#include <arpc/err.h>

#include "base/buf.h"
#include "proto/grpc/session.h"
#include "proto/grpc/wire.h"
#include "test.h"

#define PAIR_MAX_STREAMS 4096
#define ECHO_PATH        "/test.Echo/Echo"

struct srv_stream {
    bool requested, half_closed, closed, canceled;
    int close_status;
    int64_t deadline_ns;
    arpc_buf msg;
    size_t messages;
    char md_copy[256]; /* "key=value;" of the request metadata */
};

struct cli_stream {
    bool headers, closed, refused, canceled;
    int grpc_status;
    char message[256];
    arpc_buf msg;
    size_t messages;
    char md_copy[256];  /* initial metadata */
    char trl_copy[256]; /* trailing metadata */
};

struct pair {
    arpc__grpc_session *cli, *srv;
    arpc_buf cout, sout; /* bytes each side flushed, not yet delivered */
    struct srv_stream ss[PAIR_MAX_STREAMS];
    struct cli_stream cs[PAIR_MAX_STREAMS];
    bool defer; /* the handler does not answer at half-close; the test does */
    size_t requests, srv_closes, cli_closes, ping_acks, goaways;
    uint64_t last_ping;
    int32_t goaway_last_id;
    uint32_t goaway_code;
    size_t chunk_max; /* 0: deliver whole; else random chunks of 1..chunk_max */
    int feed_err_cli, feed_err_srv;
    bool answer_failed, cancel_failed;
    size_t rounds; /* delivery rounds pair_pump ran (flow control: window-sized steps) */
    /* Streams (session.h, "streams"): ECHO_PATH requests become streams whose messages are
     * echoed as they come, consumed at once unless `hold`; OK at half-close. */
    bool streams, hold;
    size_t srv_held;   /* payload bytes the server holds unconsumed */
    size_t cli_credit; /* EV_CREDIT on the client */
};

static inline void md_append(char *dst, size_t cap, const arpc__grpc_md *md, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t at = strlen(dst);
        at += (size_t)snprintf(dst + at, cap - at, "%.*s=", (int)md[i].key_len, md[i].key);
        const uint8_t *v = md[i].value;
        bool bin = arpc__grpc_md_key_is_bin(md[i].key, md[i].key_len);
        for (size_t j = 0; j < md[i].value_len && at + 4 < cap; j++)
            at += (size_t)(bin ? snprintf(dst + at, cap - at, "%02x", v[j])
                               : snprintf(dst + at, cap - at, "%c", v[j]));
        if (at + 1 < cap)
            dst[at++] = ';', dst[at] = 0;
    }
}

static inline void answer_echo(struct pair *p, int32_t id)
{
    struct srv_stream *ss = &p->ss[id];
    const arpc__grpc_md hmd[] = {{"x-echo-h", 8, "hv", 2}, {"x-raw-bin", 9, "\x00\xff", 2}};
    const arpc__grpc_md tmd[] = {{"x-trailer", 9, "tv", 2}};
    if (arpc__grpc_session_send_headers(p->srv, id, hmd, 2) < 0 ||
        arpc__grpc_session_send_message(p->srv, id, arpc__buf_data(&ss->msg), ss->msg.len) < 0 ||
        arpc__grpc_session_send_status(p->srv, id, 0, NULL, 0, tmd, 1) < 0) {
        /* Only allocation failures get here (the fault test): give up on the stream. */
        p->answer_failed = true;
        if (arpc__grpc_session_cancel(p->srv, id) < 0)
            p->cancel_failed = true;
    }
}

static inline void srv_event(void *user, const arpc__grpc_event *ev)
{
    struct pair *p = user;
    struct srv_stream *ss =
        ev->stream_id > 0 && ev->stream_id < PAIR_MAX_STREAMS ? &p->ss[ev->stream_id] : NULL;
    switch (ev->type) {
    case ARPC__GRPC_EV_REQUEST:
        p->requests++;
        ss->requested = true;
        ss->deadline_ns = ev->deadline_ns;
        md_append(ss->md_copy, sizeof(ss->md_copy), ev->md, ev->md_count);
        if (ev->path_len != strlen(ECHO_PATH) || memcmp(ev->path, ECHO_PATH, ev->path_len) != 0)
            arpc__grpc_session_send_status(p->srv, ev->stream_id, ARPC__GRPC_UNIMPLEMENTED,
                                           "Method not found!", 17, NULL, 0);
        else if (p->streams)
            ASSERT_OK(arpc__grpc_session_stream(p->srv, ev->stream_id));
        break;
    case ARPC__GRPC_EV_MESSAGE:
        if (p->streams) {
            ss->messages++;
            ASSERT_OK(arpc__grpc_session_send_message(p->srv, ev->stream_id, ev->data, ev->len));
            if (p->hold)
                p->srv_held += ev->len;
            else
                ASSERT_OK(arpc__grpc_session_consume(p->srv, ev->stream_id, ev->len));
            break;
        }
        ss->messages++;
        if (arpc__buf_append(&ss->msg, ev->data, ev->len) < 0)
            arpc__grpc_session_send_status(p->srv, ev->stream_id, ARPC__GRPC_RESOURCE_EXHAUSTED,
                                           NULL, 0, NULL, 0);
        break;
    case ARPC__GRPC_EV_HALF_CLOSE:
        ss->half_closed = true;
        if (p->streams) {
            ASSERT_OK(arpc__grpc_session_send_status(p->srv, ev->stream_id, 0, NULL, 0, NULL, 0));
            break;
        }
        if (!p->defer)
            answer_echo(p, ev->stream_id);
        break;
    case ARPC__GRPC_EV_CLOSE:
        p->srv_closes++;
        ASSERT_FALSE(ss->closed);
        ss->closed = true;
        ss->canceled = ev->canceled;
        ss->close_status = ev->grpc_status;
        break;
    case ARPC__GRPC_EV_GOAWAY:
        p->goaways++;
        break;
    case ARPC__GRPC_EV_PING_ACK:
        p->ping_acks++;
        p->last_ping = ev->ping_data;
        break;
    default:
        break;
    }
}

static inline void cli_event(void *user, const arpc__grpc_event *ev)
{
    struct pair *p = user;
    struct cli_stream *cs =
        ev->stream_id > 0 && ev->stream_id < PAIR_MAX_STREAMS ? &p->cs[ev->stream_id] : NULL;
    switch (ev->type) {
    case ARPC__GRPC_EV_HEADERS:
        cs->headers = true;
        md_append(cs->md_copy, sizeof(cs->md_copy), ev->md, ev->md_count);
        break;
    case ARPC__GRPC_EV_MESSAGE:
        cs->messages++;
        if (arpc__buf_append(&cs->msg, ev->data, ev->len) < 0)
            arpc__grpc_session_cancel(p->cli, ev->stream_id);
        if (p->streams)
            ASSERT_OK(arpc__grpc_session_consume(p->cli, ev->stream_id, ev->len));
        break;
    case ARPC__GRPC_EV_CREDIT:
        p->cli_credit += ev->len;
        break;
    case ARPC__GRPC_EV_CLOSE:
        p->cli_closes++;
        ASSERT_FALSE(cs->closed);
        cs->closed = true;
        cs->refused = ev->refused;
        cs->canceled = ev->canceled;
        cs->grpc_status = ev->grpc_status;
        snprintf(cs->message, sizeof(cs->message), "%.*s", (int)ev->message_len,
                 ev->message ? ev->message : "");
        md_append(cs->trl_copy, sizeof(cs->trl_copy), ev->md, ev->md_count);
        break;
    case ARPC__GRPC_EV_PING_ACK:
        p->ping_acks++;
        p->last_ping = ev->ping_data;
        break;
    case ARPC__GRPC_EV_GOAWAY:
        p->goaways++;
        p->goaway_last_id = ev->last_stream_id;
        p->goaway_code = ev->error_code;
        break;
    default:
        break;
    }
}

static inline int pair_init(struct pair *p, const arpc__grpc_session_opts *srv_opts,
                            const arpc__grpc_session_opts *cli_opts)
{
    memset(p, 0, sizeof(*p));
    arpc__buf_init(&p->cout);
    arpc__buf_init(&p->sout);
    for (size_t i = 0; i < PAIR_MAX_STREAMS; i++) {
        arpc__buf_init(&p->ss[i].msg);
        arpc__buf_init(&p->cs[i].msg);
    }
    int rc = arpc__grpc_session_server_new(srv_opts, srv_event, p, &p->srv);
    if (rc < 0)
        return rc;
    rc = arpc__grpc_session_client_new(cli_opts, cli_event, p, &p->cli);
    if (rc < 0) {
        arpc__grpc_session_destroy(p->srv);
        p->srv = NULL;
    }
    return rc;
}

static inline void pair_fini(struct pair *p)
{
    arpc__grpc_session_destroy(p->cli);
    arpc__grpc_session_destroy(p->srv);
    arpc__buf_fini(&p->cout);
    arpc__buf_fini(&p->sout);
    for (size_t i = 0; i < PAIR_MAX_STREAMS; i++) {
        arpc__buf_fini(&p->ss[i].msg);
        arpc__buf_fini(&p->cs[i].msg);
    }
}

/* Delivers `from`'s bytes to `to`, whole or in random chunks.  @return feed's result. */
static inline int pair_deliver(struct pair *p, arpc_buf *from, arpc__grpc_session *to)
{
    const uint8_t *d = arpc__buf_data(from);
    size_t n = from->len, off = 0;
    int rc = 0;
    while (off < n && rc == 0) {
        size_t chunk = n - off;
        if (p->chunk_max && chunk > 1) {
            size_t c = 1 + (size_t)(test_rand() % p->chunk_max);
            chunk = c < chunk ? c : chunk;
        }
        rc = arpc__grpc_session_feed(to, d + off, chunk);
        off += chunk;
    }
    arpc__buf_clear(from);
    return rc;
}

/* Flushes and delivers both ways until neither side has anything to send (bounded).
 * @return 0, or the first error from a flush or feed. */
static inline int pair_pump(struct pair *p)
{
    for (int round = 0; round < 100000; round++) {
        int rc = arpc__grpc_session_flush(p->cli, &p->cout);
        if (rc < 0)
            return rc;
        rc = arpc__grpc_session_flush(p->srv, &p->sout);
        if (rc < 0)
            return rc;
        if (p->cout.len == 0 && p->sout.len == 0)
            return 0;
        p->rounds++;
        rc = pair_deliver(p, &p->cout, p->srv);
        if (rc < 0)
            return p->feed_err_srv = rc;
        rc = pair_deliver(p, &p->sout, p->cli);
        if (rc < 0)
            return p->feed_err_cli = rc;
    }
    return ARPC_EAGAIN;
}

static inline int pair_call(struct pair *p, const char *path, const void *msg, size_t len,
                            const arpc__grpc_md *md, size_t nmd, int64_t timeout_ns, int32_t *id)
{
    arpc__grpc_call_desc d = {.path = path,
                              .path_len = strlen(path),
                              .md = md,
                              .md_count = nmd,
                              .timeout_ns = timeout_ns,
                              .msg = msg,
                              .msg_len = len};
    return arpc__grpc_session_open_stream(p->cli, &d, NULL, id);
}

#endif

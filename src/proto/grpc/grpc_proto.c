/*
 * Design notes: gRPC behind the seam (docs/protocols.md, docs/grpc.md section 7).
 *
 * An adapter: the HTTP/2 state machine is session.c; this file turns its stream events into
 * the seam's message events and the seam's messages into stream submissions, so the rpc
 * layer (conn.c, channel.c, server.c) needs no edit for gRPC.
 *
 * - Ids.  Server: a request's id is its HTTP/2 stream id (odd, increasing, so the server's
 *   "highest id seen" is the GOAWAY's last stream id).  Client: the channel's call id rides
 *   as the stream's user pointer (a small per-stream record); nghttp2 picks the stream id.
 *   Both grow in submission order, which is how a GOAWAY's last stream id is turned into
 *   the channel's last call id.
 * - Unary calls: a server stream raises on_request at its one message (path and metadata
 *   kept from its HEADERS in the stream record); a client stream collects its initial
 *   metadata, its message and its trailers and raises on_response once, at its close.
 * - Streams (docs/grpc.md section 11): a server request whose method is_stream_method says
 *   is a stream raises on_stream(OPEN) at its HEADERS and is made a session stream (manual
 *   receive window); then MESSAGE per message, HALF_CLOSE, on_cancel at a reset.  A client
 *   stream (send_stream OPEN) raises MESSAGE per message, the initial metadata on the
 *   first, and END once at its close.  CREDIT both ways: the rpc layer's consumed bytes go
 *   to arpc__grpc_session_consume; session.c's EV_CREDIT (bytes nghttp2 took) comes back as
 *   on_stream(CREDIT), possibly from inside a send_* call or a feed.
 * - Answers the protocol gives by itself, without the rpc layer: grpc.health.v1.Health/Check
 *   (SERVING, NOT_SERVING once this connection sent its GOAWAY: the server is draining),
 *   DEADLINE_EXCEEDED for a request whose grpc-timeout expired before it could run, and
 *   what session.c answers itself (invalid headers, over-limit messages).
 * - Output: every submission is flushed into the caller's buffer at once, except while the
 *   session is inside nghttp2 (an event raised from feed may answer inline): feed flushes
 *   when nghttp2 returns.
 * - Heartbeats: grpcio's server closes a connection at the 5th PING with no HEADERS or DATA
 *   in between (docs/grpc-interop.md section 4).  A heartbeat over that budget (2 PINGs)
 *   is a health check stream instead: its HEADERS and DATA reset the count, and any answer
 *   (even UNIMPLEMENTED from a server without health) proves the peer alive.
 * - Held CANCELLED (docs/grpc.md section 7).  gRPC core's server turns away every stream
 *   that reaches it once its shutdown began with a Trailers-Only CANCELLED, without running
 *   it; its GOAWAY goes out only later (Server::ShutdownAndNotify first waits for the
 *   requests being matched and stops its listeners), so the first of those answers may
 *   come before any GOAWAY (measured: 1 to 3 of the 16 calls in flight, in 1 run of 40 of
 *   interop_grpc_goaway, more under load).  A handler's own CANCELLED looks the same on the wire.
 * So a unary call's Trailers-Only CANCELLED before any GOAWAY is held, not reported, until the
 * server shows which it was: a GOAWAY reports it never processed (ARPC_ESHUTDOWN, retried
 * elsewhere); response headers or any other answer on a stream opened after it (calls, or the
 * health check stream opened as a probe when it is held) show the server still admitting streams,
 * and it is reported as the CANCELLED it is.  The server decides admission stream by stream in the
 * order the streams arrive, and shutdown is not undone, so a later stream admitted means the
 * earlier one was not turned away. The channel's deadline still bounds a held call; a connection
 * that closes with it held fails it as a sent call.
 * - Stream records are kept on a free list with their buffers: steady state allocates
 *   nothing here.
 *
 * Threading: a session belongs to its connection's loop thread.
 */
#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/common.h"
#include "proto/grpc/session.h"
#include "proto/grpc/wire.h"
#include "proto/metadata.h"
#include "proto/proto.h"

/* A message's limit when the server leaves its own at the default: gRPC's 4 MiB. */
#define GRPC_DEFAULT_MAX_RECV (4u * 1024 * 1024)
/* PINGs a heartbeat may send with no HEADERS or DATA in between (grpcio punishes the 5th;
 * two leave room for nghttp2's and the peer's own). */
#define PING_BUDGET 2

#define HEALTH_PATH "/grpc.health.v1.Health/Check"

/* Server: answers that, once queued inside nghttp2, are handed to the connection's output
 * before the next request is decoded (session.h, early_answers).  Handlers answer inline,
 * from inside feed, where nghttp2 cannot send; without this a batch of requests decoded in
 * one feed kept all its answers until the end of the batch, so the server's early writes
 * (write_early_answers, counted per answer) found nothing to write.  Small against that 32,
 * so the early write carries most of the answers counted; large enough that one mem_send
 * serves several answers. */
#define EARLY_ANSWERS 8

typedef struct gstream {
    struct gstream *next; /* the free list or the live list */
    struct gstream *prev;
    uint64_t id;       /* server: the stream id; client: the call id (or the ping id) */
    int32_t stream_id; /* client */
    int64_t deadline_ns;
    arpc_buf path; /* server: the method, without its leading '/' */
    arpc_buf md_buf;
    arpc__md md;
    int md_err;       /* server: the metadata broke a rule: refused with it */
    arpc_buf payload; /* client: the answer's message */
    bool delivered;   /* server: on_request raised; client: a message arrived */
    bool health;      /* server: the built-in health check */
    bool canceled;    /* client: we reset it; its close is not reported */
    bool ping;        /* client: a heartbeat (health check stream) */
    bool stream;      /* a stream (include/arpc/stream.h), not a unary call */
    bool held;        /* client: a Trailers-Only CANCELLED not reported yet (design notes) */
    bool probe;       /* client: the health check stream that settles the held ones */
    int held_status;  /* client: the held answer's status */
} gstream;

typedef struct grpc_psession {
    arpc__proto_session base;
    arpc__proto_config cfg;
    arpc__grpc_session *h2;
    bool in_h2;       /* inside feed or flush of session.c: submit only */
    bool goaway_sent; /* server: draining */
    int err;          /* an event's error, ending the feed */
    gstream *free;
    gstream live;          /* streams open, in submission order (sentinel) */
    uint64_t last_sent_id; /* client: the highest call id sent */
    unsigned held;         /* client: held answers (design notes, "Held CANCELLED") */
    bool probing;          /* client: a probe stream is open */
    arpc_buf scratch;      /* the request's path with its '/' */
    arpc__grpc_md *md_tmp; /* metadata handed to session.c */
    size_t md_tmp_cap;
} grpc_psession;

extern const arpc__proto_ops arpc__proto_grpc;

/* ---- stream records --------------------------------------------------------------- */

static gstream *gs_get(grpc_psession *ps)
{
    gstream *gs = ps->free;
    if (gs != NULL) {
        ps->free = gs->next;
    } else {
        gs = arpc__calloc(1, sizeof(*gs));
        if (gs == NULL)
            return NULL;
        arpc__buf_init(&gs->path);
        arpc__buf_init(&gs->md_buf);
        arpc__buf_init(&gs->payload);
    }
    gs->next = gs->prev = NULL;
    gs->id = 0;
    gs->stream_id = 0;
    gs->deadline_ns = ARPC__NO_DEADLINE;
    arpc__buf_clear(&gs->path);
    arpc__buf_clear(&gs->md_buf);
    arpc__buf_clear(&gs->payload);
    memset(&gs->md, 0, sizeof(gs->md));
    gs->md_err = 0;
    gs->delivered = gs->health = gs->canceled = gs->ping = gs->stream = false;
    gs->held = gs->probe = false;
    gs->held_status = 0;
    return gs;
}

static void gs_free(gstream *gs)
{
    arpc__buf_fini(&gs->path);
    arpc__buf_fini(&gs->md_buf);
    arpc__buf_fini(&gs->payload);
    arpc__free(gs);
}

/* Back to the free list; a big answer's buffer is not kept. */
static void gs_put(grpc_psession *ps, gstream *gs)
{
    if (gs->prev != NULL) {
        gs->prev->next = gs->next;
        gs->next->prev = gs->prev;
    }
    if (gs->payload.cap > 64 * 1024)
        arpc__buf_release(&gs->payload);
    gs->next = ps->free;
    gs->prev = NULL;
    ps->free = gs;
}

static void live_push(grpc_psession *ps, gstream *gs)
{
    gs->prev = ps->live.prev;
    gs->next = &ps->live;
    ps->live.prev->next = gs;
    ps->live.prev = gs;
}

/* Appends session.c's entries to the record's metadata list (memory form). */
static int md_collect(gstream *gs, const arpc__grpc_md *md, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int rc = arpc__md_append(&gs->md_buf, &gs->md, md[i].key, md[i].key_len, md[i].value,
                                 md[i].value_len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The seam's metadata as session.c's entries, in ps->md_tmp. */
static int md_export(grpc_psession *ps, const arpc__md *md, const arpc__grpc_md **out)
{
    *out = NULL;
    if (md->count == 0)
        return 0;
    if (md->count > ps->md_tmp_cap) {
        arpc__grpc_md *tmp = arpc__realloc(ps->md_tmp, md->count * sizeof(*tmp));
        if (tmp == NULL)
            return ARPC_ENOMEM;
        ps->md_tmp = tmp;
        ps->md_tmp_cap = md->count;
    }
    size_t off = 0, key_len = 0, i = 0;
    arpc_metadata_entry e;
    while (i < md->count && arpc__md_next(md, &off, &e, &key_len)) {
        ps->md_tmp[i++] = (arpc__grpc_md){e.key, key_len, e.value, e.value_len};
    }
    *out = ps->md_tmp;
    return 0;
}

/* ---- output ------------------------------------------------------------------------ */

static int flush_into(grpc_psession *ps, arpc_buf *out)
{
    if (ps->in_h2)
        return 0; /* feed flushes when nghttp2 returns */
    ps->in_h2 = true;
    int rc = arpc__grpc_session_flush(ps->h2, out);
    ps->in_h2 = false;
    return rc;
}

/* ---- the built-in health check (grpc.health.v1) ------------------------------------ */

/* HealthCheckRequest{string service = 1}: the service's name, or "" without the field.
 * @return 0 or ARPC_EINVAL (not that message). */
static int health_service(const uint8_t *p, size_t len, const uint8_t **name, size_t *name_len)
{
    *name = p;
    *name_len = 0;
    size_t i = 0;
    while (i < len) {
        uint8_t tag = p[i++];
        uint64_t v = 0;
        for (int shift = 0;; shift += 7) {
            if (i >= len || shift > 63)
                return ARPC_EINVAL;
            v |= (uint64_t)(p[i] & 0x7f) << shift;
            if (!(p[i++] & 0x80))
                break;
        }
        if ((tag & 7) == 0)
            continue; /* a varint field: skipped */
        if ((tag & 7) != 2 || v > len - i)
            return ARPC_EINVAL;
        if (tag == 0x0a) {
            *name = p + i;
            *name_len = (size_t)v;
        }
        i += (size_t)v;
    }
    return 0;
}

static void answer_health(grpc_psession *ps, int32_t sid, const uint8_t *data, size_t len)
{
    const uint8_t *name;
    size_t name_len;
    if (health_service(data, len, &name, &name_len) < 0) {
        (void)arpc__grpc_session_send_status(ps->h2, sid, ARPC__GRPC_INTERNAL, "bad request", 11,
                                             NULL, 0);
        return;
    }
    if (name_len != 0) {
        (void)arpc__grpc_session_send_status(ps->h2, sid, ARPC__GRPC_NOT_FOUND, "unknown service",
                                             15, NULL, 0);
        return;
    }
    /* HealthCheckResponse{ServingStatus status = 1}: SERVING 1, NOT_SERVING 2. */
    const uint8_t rsp[2] = {0x08, ps->goaway_sent ? 2 : 1};
    if (arpc__grpc_session_send_message(ps->h2, sid, rsp, sizeof(rsp)) == 0)
        (void)arpc__grpc_session_send_status(ps->h2, sid, ARPC__GRPC_OK, NULL, 0, NULL, 0);
}

/* ---- server events ----------------------------------------------------------------- */

/* The time left of a request's grpc-timeout: 0 without one, < 0 once past. */
static int64_t time_left(const gstream *gs)
{
    if (gs->deadline_ns == ARPC__NO_DEADLINE)
        return 0;
    int64_t left = gs->deadline_ns - arpc__now_ns();
    return left > 0 ? left : -1;
}

/* A stream method's HEADERS: on_stream(OPEN) at once; its messages follow as they arrive. */
static void srv_open_stream(grpc_psession *ps, gstream *gs)
{
    int32_t sid = (int32_t)gs->id;
    if (arpc__grpc_session_stream(ps->h2, sid) < 0)
        return; /* answered already: it stays unary, and nothing more comes of it */
    gs->stream = true;
    gs->delivered = true; /* the rpc layer knows it: a reset is its on_cancel */
    if (gs->md_err < 0) {
        if (ps->cfg.events->on_refused != NULL)
            ps->err = ps->cfg.events->on_refused(ps->cfg.owner, gs->id, gs->md_err);
        return;
    }
    int64_t timeout_ns = time_left(gs);
    if (timeout_ns < 0) {
        gs->delivered = false;
        (void)arpc__grpc_session_send_status(ps->h2, sid, ARPC__GRPC_DEADLINE_EXCEEDED,
                                             "deadline exceeded", 17, NULL, 0);
        return;
    }
    arpc__msg msg = {.id = gs->id,
                     .method = (const char *)arpc__buf_data(&gs->path),
                     .method_len = gs->path.len,
                     .timeout_ns = timeout_ns,
                     .md = gs->md};
    ps->err = ps->cfg.events->on_stream(ps->cfg.owner, ARPC__STREAM_OPEN, &msg);
}

/* A stream's own frames (MESSAGE, HALF_CLOSE, CREDIT), with the stream's id. */
static void raise_stream(grpc_psession *ps, gstream *gs, arpc__stream_frame frame, const void *data,
                         size_t len)
{
    arpc__msg msg = {.id = gs->id, .payload = data, .payload_len = len};
    ps->err = ps->cfg.events->on_stream(ps->cfg.owner, frame, &msg);
}

static void srv_on_request(grpc_psession *ps, const arpc__grpc_event *ev)
{
    ps->base.messages_in++;
    gstream *gs = gs_get(ps);
    if (gs == NULL) {
        ps->err = ARPC_ENOMEM;
        return;
    }
    gs->id = (uint64_t)ev->stream_id;
    gs->deadline_ns = ev->deadline_ns;
    gs->health =
        ev->path_len == sizeof(HEALTH_PATH) - 1 && memcmp(ev->path, HEALTH_PATH, ev->path_len) == 0;
    const char *name = ev->path;
    size_t name_len = ev->path_len;
    if (name_len > 0 && name[0] == '/') {
        name++;
        name_len--;
    }
    int rc = arpc__buf_append(&gs->path, name, name_len);
    if (rc == 0) {
        gs->md_err = md_collect(gs, ev->md, ev->md_count);
        if (gs->md_err == ARPC_ENOMEM)
            rc = ARPC_ENOMEM;
    }
    if (rc == 0)
        rc = arpc__grpc_session_set_stream_user(ps->h2, ev->stream_id, gs);
    if (rc < 0) {
        gs_put(ps, gs);
        ps->err = rc == ARPC_ENOMEM ? rc : 0;
        return;
    }
    live_push(ps, gs); /* so destroy frees it */
    const arpc__proto_events *evs = ps->cfg.events;
    if (!gs->health && evs->is_stream_method != NULL && evs->on_stream != NULL &&
        evs->is_stream_method(ps->cfg.owner, (const char *)arpc__buf_data(&gs->path), gs->path.len))
        srv_open_stream(ps, gs);
}

static void srv_deliver(grpc_psession *ps, gstream *gs, const uint8_t *data, size_t len)
{
    gs->delivered = true;
    int32_t sid = (int32_t)gs->id;
    if (gs->health) {
        answer_health(ps, sid, data, len);
        return;
    }
    if (gs->md_err < 0) {
        if (ps->cfg.events->on_refused != NULL)
            ps->err = ps->cfg.events->on_refused(ps->cfg.owner, gs->id, gs->md_err);
        return;
    }
    int64_t timeout_ns = time_left(gs);
    if (timeout_ns < 0) {
        /* Expired before it could run: not run (docs/grpc.md). */
        (void)arpc__grpc_session_send_status(ps->h2, sid, ARPC__GRPC_DEADLINE_EXCEEDED,
                                             "deadline exceeded", 17, NULL, 0);
        return;
    }
    arpc__msg msg = {.id = gs->id,
                     .method = (const char *)arpc__buf_data(&gs->path),
                     .method_len = gs->path.len,
                     .timeout_ns = timeout_ns,
                     .md = gs->md,
                     .payload = data,
                     .payload_len = len};
    ps->err = ps->cfg.events->on_request(ps->cfg.owner, &msg);
}

/* A stream session.c ended by itself (docs/grpc.md, "Hostile peers"): the server counts it. */
static void srv_fault(grpc_psession *ps, const arpc__grpc_event *ev)
{
    int fault = ev->fault == ARPC__GRPC_FAULT_HEADERS_TOO_BIG  ? ARPC__PROTO_FAULT_HEADERS_TOO_BIG
                : ev->fault == ARPC__GRPC_FAULT_STREAM_TIMEOUT ? ARPC__PROTO_FAULT_STREAM_TIMEOUT
                                                               : ARPC__PROTO_FAULT_REFUSED_STREAM;
    if (ps->cfg.events->on_stream_fault != NULL)
        ps->cfg.events->on_stream_fault(ps->cfg.owner, (uint64_t)ev->stream_id, fault);
}

static void srv_event(grpc_psession *ps, const arpc__grpc_event *ev)
{
    gstream *gs = ev->stream_user;
    switch (ev->type) {
    case ARPC__GRPC_EV_REQUEST:
        srv_on_request(ps, ev);
        break;
    case ARPC__GRPC_EV_MESSAGE:
        ps->base.messages_in++;
        if (gs == NULL)
            break;
        if (gs->stream) {
            if (gs->md_err == 0 && gs->delivered)
                raise_stream(ps, gs, ARPC__STREAM_MESSAGE, ev->data, ev->len);
            break;
        }
        if (gs->delivered) {
            /* A second message on a unary method. */
            (void)arpc__grpc_session_cancel(ps->h2, ev->stream_id);
            break;
        }
        srv_deliver(ps, gs, ev->data, ev->len);
        break;
    case ARPC__GRPC_EV_HALF_CLOSE:
        if (gs != NULL && gs->stream) {
            if (gs->md_err == 0 && gs->delivered)
                raise_stream(ps, gs, ARPC__STREAM_HALF_CLOSE, NULL, 0);
        } else if (gs != NULL && !gs->delivered) {
            gs->delivered = true;
            (void)arpc__grpc_session_send_status(ps->h2, ev->stream_id, ARPC__GRPC_INTERNAL,
                                                 "a unary request without its message", 36, NULL,
                                                 0);
        }
        break;
    case ARPC__GRPC_EV_FAULT:
        srv_fault(ps, ev);
        break;
    case ARPC__GRPC_EV_CREDIT:
        if (gs != NULL && gs->stream && gs->delivered && gs->md_err == 0)
            raise_stream(ps, gs, ARPC__STREAM_CREDIT, NULL, ev->len);
        break;
    case ARPC__GRPC_EV_CLOSE:
        if (gs == NULL)
            break;
        if (gs->delivered && ev->canceled && !gs->health && gs->md_err == 0 &&
            ps->cfg.events->on_cancel != NULL)
            ps->cfg.events->on_cancel(ps->cfg.owner, gs->id);
        gs_put(ps, gs);
        break;
    default:
        break; /* PING_ACK: not ours; the client's GOAWAY: the connection closes anyway */
    }
}

/* ---- client events ----------------------------------------------------------------- */

/* The channel's last call id for a GOAWAY's last stream id: ids and stream ids grow in
 * submission order, so it is just below the first live stream above last_stream_id. */
static uint64_t last_call_id(const grpc_psession *ps, int32_t last_stream_id)
{
    for (const gstream *gs = ps->live.next; gs != &ps->live; gs = gs->next) {
        if (!gs->ping && !gs->probe && gs->stream_id > last_stream_id)
            return gs->id - 1;
    }
    return ps->last_sent_id;
}

/* The calls above a GOAWAY's last stream id leave with on_goaway, which the channel retries
 * at once; nghttp2 then closes their streams as refused, and those closes are not reported
 * again (the ids are gone or, worse, belong to the call's next attempt elsewhere). */
static void goaway_forget_above(grpc_psession *ps, int32_t last_stream_id)
{
    for (gstream *gs = ps->live.next; gs != &ps->live; gs = gs->next) {
        if (!gs->ping && gs->stream_id > last_stream_id)
            gs->canceled = true;
    }
}

/* A client stream's end: on_stream(END) with the status, the trailers (and the initial
 * metadata when no message carried it) and the error message. */
static void cli_stream_end(grpc_psession *ps, gstream *gs, const arpc__grpc_event *ev)
{
    arpc__msg msg = {.id = gs->id, .status = ev->refused ? ARPC_ESHUTDOWN : ev->status};
    int rc = ev->refused ? 0 : md_collect(gs, ev->md, ev->md_count);
    if (rc == ARPC_ENOMEM) {
        ps->err = rc;
        return;
    }
    if (rc < 0 && msg.status == 0)
        msg.status = rc;
    msg.md = gs->md;
    if (msg.status != 0) {
        msg.payload = ev->message;
        msg.payload_len = ev->message_len;
    }
    ps->err = ps->cfg.events->on_stream(ps->cfg.owner, ARPC__STREAM_END, &msg);
}

/* A client stream's message: the server's initial metadata rides on the first. */
static void cli_stream_message(grpc_psession *ps, gstream *gs, const arpc__grpc_event *ev)
{
    arpc__msg msg = {.id = gs->id, .payload = ev->data, .payload_len = ev->len};
    if (!gs->delivered)
        msg.md = gs->md;
    gs->delivered = true;
    ps->err = ps->cfg.events->on_stream(ps->cfg.owner, ARPC__STREAM_MESSAGE, &msg);
    if (gs->md.count > 0) {
        arpc__buf_clear(&gs->md_buf);
        memset(&gs->md, 0, sizeof(gs->md));
    }
}

/* Reports a held answer: never processed (refused) or the CANCELLED it was. */
static void held_report(grpc_psession *ps, gstream *gs, bool refused)
{
    gs->held = false;
    ps->held--;
    arpc__msg msg = {.id = gs->id, .status = refused ? ARPC_ESHUTDOWN : gs->held_status};
    if (!refused) {
        msg.md = gs->md;
        msg.payload = arpc__buf_data(&gs->payload);
        msg.payload_len = gs->payload.len;
    }
    bool canceled = gs->canceled; /* above a GOAWAY's last id: on_goaway retried it */
    gs_put(ps, gs);
    if (!canceled && ps->err == 0 && ps->cfg.events->on_response != NULL)
        ps->err = ps->cfg.events->on_response(ps->cfg.owner, &msg);
}

/* Settles the held answers of streams opened before `before` (INT32_MAX: all).  The walk
 * starts over after each report: on_response may send or cancel calls on this session. */
static void held_settle(grpc_psession *ps, int32_t before, bool refused)
{
    while (ps->held > 0) {
        gstream *gs = ps->live.next;
        while (gs != &ps->live && !(gs->held && gs->stream_id < before))
            gs = gs->next;
        if (gs == &ps->live)
            return;
        held_report(ps, gs, refused);
    }
}

/* A health check stream opened after the held answers: its answer settles them. */
static void held_probe(grpc_psession *ps)
{
    if (ps->probing)
        return;
    gstream *gs = gs_get(ps);
    int rc = ARPC_ENOMEM;
    if (gs != NULL) {
        gs->probe = true;
        arpc__grpc_call_desc desc = {
            .path = HEALTH_PATH, .path_len = sizeof(HEALTH_PATH) - 1, .timeout_ns = -1};
        rc = arpc__grpc_session_open_stream(ps->h2, &desc, gs, &gs->stream_id);
        if (rc < 0)
            gs_put(ps, gs);
    }
    if (rc < 0) {
        held_settle(ps, INT32_MAX, false); /* nothing more to learn: as answered */
        return;
    }
    live_push(ps, gs);
    ps->probing = true;
}

/* Holds a unary call's Trailers-Only CANCELLED that came before any GOAWAY (design notes).
 * @return true if the record is taken care of: held (it stays live), or reported. */
static bool held_keep(grpc_psession *ps, gstream *gs, const arpc__grpc_event *ev)
{
    if (!ev->suspect || gs->stream)
        return false;
    int rc = md_collect(gs, ev->md, ev->md_count);
    if (rc == 0 && ev->message_len > 0)
        rc = arpc__buf_append(&gs->payload, ev->message, ev->message_len);
    if (rc == ARPC_ENOMEM) {
        ps->err = rc;
        return false;
    }
    gs->held = true;
    gs->held_status = rc < 0 ? rc : ev->status;
    ps->held++;
    held_probe(ps); /* if it cannot probe, it reports (and frees) the record at once */
    return true;
}

/* @return true if the record stays live (a held answer). */
static bool cli_close(grpc_psession *ps, gstream *gs, const arpc__grpc_event *ev)
{
    const arpc__proto_events *evs = ps->cfg.events;
    if (gs->probe) {
        ps->probing = false;
        /* Turned away too (or refused): the GOAWAY settles them; no new probe, so a
         * server that cancels everything costs the held calls their deadline, not a loop. */
        if (ev->answered && !ev->suspect && !ev->refused) {
            held_settle(ps, gs->stream_id, false);
            if (ps->held > 0)
                held_probe(ps); /* for those held after this probe opened */
        }
        return false;
    }
    if (ps->held > 0 && ev->answered && !ev->suspect && !ev->refused)
        held_settle(ps, gs->stream_id, false);
    if (gs->ping) {
        if (evs->on_pong != NULL)
            evs->on_pong(ps->cfg.owner, gs->id, NULL);
        return false;
    }
    if (gs->canceled)
        return false;
    if (gs->stream) {
        cli_stream_end(ps, gs, ev);
        return false;
    }
    if (held_keep(ps, gs, ev))
        return true;
    if (ps->err < 0)
        return false;
    arpc__msg msg = {.id = gs->id, .status = ev->status};
    if (ev->refused) {
        /* Never processed (REFUSED_STREAM, above a GOAWAY): the channel retries it. */
        msg.status = ARPC_ESHUTDOWN;
    } else {
        int rc = md_collect(gs, ev->md, ev->md_count);
        if (rc < 0 && rc != ARPC_ENOMEM) {
            msg.status = rc;
        } else if (rc == ARPC_ENOMEM) {
            ps->err = rc;
            return false;
        }
        msg.md = gs->md;
        if (msg.status == 0) {
            msg.payload = arpc__buf_data(&gs->payload);
            msg.payload_len = gs->payload.len;
        } else {
            msg.payload = ev->message;
            msg.payload_len = ev->message_len;
        }
    }
    if (evs->on_response != NULL)
        ps->err = evs->on_response(ps->cfg.owner, &msg);
    return false;
}

static void cli_event(grpc_psession *ps, const arpc__grpc_event *ev)
{
    gstream *gs = ev->stream_user;
    const arpc__proto_events *evs = ps->cfg.events;
    switch (ev->type) {
    case ARPC__GRPC_EV_HEADERS:
        /* Response headers: the server admitted this stream, so the ones before it too. */
        if (gs != NULL && ps->held > 0)
            held_settle(ps, gs->stream_id, false);
        if (gs != NULL && !gs->ping && !gs->probe &&
            md_collect(gs, ev->md, ev->md_count) == ARPC_ENOMEM)
            ps->err = ARPC_ENOMEM;
        break;
    case ARPC__GRPC_EV_MESSAGE:
        ps->base.messages_in++;
        if (gs != NULL && gs->stream) {
            if (!gs->canceled)
                cli_stream_message(ps, gs, ev);
        } else if (gs != NULL && !gs->ping && !gs->probe && !gs->delivered) {
            gs->delivered = true;
            if (arpc__buf_append(&gs->payload, ev->data, ev->len) < 0)
                ps->err = ARPC_ENOMEM;
        }
        break;
    case ARPC__GRPC_EV_CLOSE:
        if (gs == NULL)
            break;
        if (!cli_close(ps, gs, ev))
            gs_put(ps, gs);
        break;
    case ARPC__GRPC_EV_CREDIT:
        if (gs != NULL && gs->stream && !gs->canceled)
            raise_stream(ps, gs, ARPC__STREAM_CREDIT, NULL, ev->len);
        break;
    case ARPC__GRPC_EV_PING_ACK:
        if (evs->on_pong != NULL)
            evs->on_pong(ps->cfg.owner, ev->ping_data, NULL);
        break;
    case ARPC__GRPC_EV_GOAWAY: {
        uint64_t last_id = last_call_id(ps, ev->last_stream_id);
        goaway_forget_above(ps, ev->last_stream_id);
        if (evs->on_goaway != NULL)
            evs->on_goaway(ps->cfg.owner, last_id, ARPC_ESHUTDOWN);
        /* After on_goaway, which takes the connection out of use: their retries go
         * elsewhere.  The server was turning streams away when it answered them. */
        held_settle(ps, INT32_MAX, true);
        break;
    }
    default:
        break;
    }
}

static void on_h2_event(void *user, const arpc__grpc_event *ev)
{
    grpc_psession *ps = user;
    if (ps->err < 0)
        return; /* the connection closes; nothing more is reported */
    if (ps->cfg.side == ARPC__PROTO_SERVER)
        srv_event(ps, ev);
    else
        cli_event(ps, ev);
}

/* ---- ops --------------------------------------------------------------------------- */

static int grpc_detect(const uint8_t *data, size_t len)
{
    switch (arpc__h2_preface_detect(data, len)) {
    case ARPC__H2_YES:
        return ARPC__DETECT_YES;
    case ARPC__H2_NEED_MORE:
        return ARPC__DETECT_MORE;
    default:
        return ARPC__DETECT_NO;
    }
}

/*
 * The receive windows (docs/grpc.md, "Streams"): every stream's, SETTINGS_INITIAL_WINDOW_SIZE,
 * is limits.stream_window (at least 64 KiB, HTTP/2's default), so a stream's unread messages
 * hold at most that; unary streams consume at once, so it only paces a large unary message
 * by WINDOW_UPDATEs.  The connection's is large enough that every stream may fill its window
 * unread and one more still flows: streams * stream_window, at least 16 MiB, at most 2^31-1.
 * Without stream_window (0) session.c's defaults stay (4 MiB and 16 MiB).
 */
#define MIN_STREAM_WINDOW   (64u * 1024)
#define CONN_WINDOW_FLOOR   (16u * 1024 * 1024)
#define CONN_WINDOW_STREAMS 256u /* a client does not know the server's stream limit */

static void stream_windows(const arpc__proto_limits *l, arpc__grpc_session_opts *o)
{
    if (l->stream_window == 0)
        return;
    o->stream_window = l->stream_window < MIN_STREAM_WINDOW ? MIN_STREAM_WINDOW : l->stream_window;
    uint64_t streams = l->max_in_flight != 0 ? l->max_in_flight : CONN_WINDOW_STREAMS;
    uint64_t conn = (streams + 1) * o->stream_window;
    if (conn < CONN_WINDOW_FLOOR)
        conn = CONN_WINDOW_FLOOR;
    o->conn_window = conn > INT32_MAX ? INT32_MAX : (uint32_t)conn;
}

static int grpc_create(const arpc__proto_config *cfg, arpc__proto_session **out)
{
    grpc_psession *ps = arpc__calloc(1, sizeof(*ps));
    if (ps == NULL)
        return ARPC_ENOMEM;
    ps->base.ops = &arpc__proto_grpc;
    ps->cfg = *cfg;
    ps->live.next = ps->live.prev = &ps->live;
    arpc__buf_init(&ps->scratch);
    uint32_t max = cfg->limits.max_message;
    arpc__grpc_session_opts opts = {
        .max_recv_msg =
            (max == 0 || max >= ARPC__PROTO_DEFAULT_MAX_MESSAGE) ? GRPC_DEFAULT_MAX_RECV : max,
        .max_concurrent_streams = cfg->limits.max_in_flight,
        .early_answers = cfg->side == ARPC__PROTO_SERVER ? EARLY_ANSWERS : 0,
    };
    stream_windows(&cfg->limits, &opts);
    int rc = cfg->side == ARPC__PROTO_SERVER
                 ? arpc__grpc_session_server_new(&opts, on_h2_event, ps, &ps->h2)
                 : arpc__grpc_session_client_new(&opts, on_h2_event, ps, &ps->h2);
    if (rc < 0) {
        arpc__free(ps);
        return rc;
    }
    *out = &ps->base;
    return 0;
}

static void grpc_destroy(arpc__proto_session *s)
{
    grpc_psession *ps = (grpc_psession *)s;
    arpc__grpc_session_destroy(ps->h2); /* reports nothing */
    while (ps->live.next != &ps->live) {
        gstream *gs = ps->live.next;
        ps->live.next = gs->next;
        gs_free(gs);
    }
    while (ps->free != NULL) {
        gstream *gs = ps->free;
        ps->free = gs->next;
        gs_free(gs);
    }
    arpc__buf_fini(&ps->scratch);
    arpc__free(ps->md_tmp);
    arpc__free(ps);
}

/* HTTP/2 flow control keeps a client's answers in the streams when it does not open its
 * windows, where the connection's read pause (out_limit) does not see them; and reading
 * must go on, or the WINDOW_UPDATE that lets them out is never read.  So while the output
 * and the held answers together reach out_limit, new streams are refused (REFUSED_STREAM:
 * never run, retried elsewhere) and the rest of the connection goes on. */
static void refuse_if_held(grpc_psession *ps, const arpc_buf *out)
{
    if (ps->cfg.side != ARPC__PROTO_SERVER || ps->cfg.out_limit == 0)
        return;
    size_t held = arpc__grpc_session_held_bytes(ps->h2) + out->len;
    arpc__grpc_session_refuse_streams(ps->h2, held >= ps->cfg.out_limit);
}

/* Fed in slices, so a paused input (arpc__proto_input_waits) stops within one. */
#define FEED_SLICE (16u * 1024)

static int64_t grpc_feed(arpc__proto_session *s, const uint8_t *data, size_t len, arpc_buf *out)
{
    grpc_psession *ps = (grpc_psession *)s;
    size_t done = 0;
    while (done < len && !arpc__proto_input_waits(&ps->cfg, out)) {
        size_t n = len - done < FEED_SLICE ? len - done : FEED_SLICE;
        refuse_if_held(ps, out);
        ps->in_h2 = true;
        int rc = arpc__grpc_session_feed_into(ps->h2, data + done, n, out);
        ps->in_h2 = false;
        if (rc < 0) {
            /* What nghttp2 queued on its way out (a GOAWAY with the error code) goes first. */
            (void)flush_into(ps, out);
            ps->base.close_reason = arpc__grpc_session_error_text(ps->h2);
            return rc;
        }
        if (ps->err < 0)
            return ps->err;
        done += n;
    }
    if (done == 0 && len == 0) {
        int frc = flush_into(ps, out);
        if (frc < 0)
            return frc;
    }
    return (int64_t)done;
}

static bool grpc_mid_message(const arpc__proto_session *s)
{
    (void)s;
    return false; /* nghttp2 holds partial frames itself */
}

/* gRPC's 5-byte message prefix, HTTP/2 frame headers, the header block's fixed part. */
#define GRPC_OVERHEAD 256

static uint64_t grpc_wire_size(const arpc__msg *msg, bool request)
{
    uint64_t n = GRPC_OVERHEAD + (uint64_t)msg->md.len + msg->payload_len;
    return request ? n + msg->method_len + 1 : n;
}

/* A unary request, or a stream's OPEN (HEADERS without END_STREAM). */
static int open_call(grpc_psession *ps, arpc_buf *out, const arpc__msg *msg, bool stream)
{
    arpc__buf_clear(&ps->scratch);
    int rc = 0;
    if (msg->method_len == 0 || msg->method[0] != '/')
        rc = arpc__buf_append(&ps->scratch, "/", 1);
    if (rc == 0)
        rc = arpc__buf_append(&ps->scratch, msg->method, msg->method_len);
    const arpc__grpc_md *md = NULL;
    if (rc == 0)
        rc = md_export(ps, &msg->md, &md);
    if (rc < 0)
        return rc;
    gstream *gs = gs_get(ps);
    if (gs == NULL)
        return ARPC_ENOMEM;
    gs->id = msg->id;
    arpc__grpc_call_desc desc = {.path = (const char *)arpc__buf_data(&ps->scratch),
                                 .path_len = ps->scratch.len,
                                 .md = md,
                                 .md_count = md != NULL ? msg->md.count : 0,
                                 .timeout_ns = msg->timeout_ns > 0 ? msg->timeout_ns : -1,
                                 .msg = msg->payload,
                                 .msg_len = msg->payload_len,
                                 .stream = stream};
    gs->stream = stream;
    rc = arpc__grpc_session_open_stream(ps->h2, &desc, gs, &gs->stream_id);
    if (rc < 0) {
        gs_put(ps, gs);
        return rc == ARPC_ENOMEM ? rc : ARPC_EINVAL;
    }
    live_push(ps, gs);
    if (msg->id > ps->last_sent_id)
        ps->last_sent_id = msg->id;
    return flush_into(ps, out);
}

static int grpc_send_request(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg)
{
    return open_call((grpc_psession *)s, out, msg, false);
}

static int grpc_send_response(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg)
{
    grpc_psession *ps = (grpc_psession *)s;
    int32_t sid = (int32_t)msg->id;
    const arpc__grpc_md *md = NULL;
    int rc = md_export(ps, &msg->md, &md);
    if (rc < 0)
        return rc;
    size_t md_count = md != NULL ? msg->md.count : 0;
    if (msg->status == 0) {
        if (md_count > 0)
            rc = arpc__grpc_session_send_headers(ps->h2, sid, md, md_count);
        if (rc == 0)
            rc = arpc__grpc_session_send_message(ps->h2, sid, msg->payload, msg->payload_len);
        if (rc == 0)
            rc = arpc__grpc_session_send_status(ps->h2, sid, ARPC__GRPC_OK, NULL, 0, NULL, 0);
    } else {
        const char *text = msg->payload;
        size_t text_len = msg->payload_len;
        if (text_len == 0 && msg->status < 0) {
            text = arpc_strerror(msg->status);
            text_len = strlen(text);
        }
        rc = arpc__grpc_session_send_status(ps->h2, sid, arpc__grpc_status_from_arpc(msg->status),
                                            text, text_len, md, md_count);
    }
    /* A stream the client reset is gone: its answer is dropped (ARPC_EINVAL). */
    if (rc == ARPC_ENOMEM)
        return rc;
    return flush_into(ps, out);
}

static int grpc_send_ping(arpc__proto_session *s, arpc_buf *out, uint64_t id, bool announce)
{
    (void)announce; /* HTTP/2 SETTINGS carry the limits */
    grpc_psession *ps = (grpc_psession *)s;
    /* A server's heartbeat: gRPC clients take any number of PINGs (grpc/grpc
     * chttp2/transport/frame_ping.cc polices PINGs on servers only). */
    if (ps->cfg.side == ARPC__PROTO_SERVER ||
        arpc__grpc_session_pings_without_data(ps->h2) < PING_BUDGET) {
        int rc = arpc__grpc_session_ping(ps->h2, id);
        return rc < 0 ? rc : flush_into(ps, out);
    }
    /* Over grpcio's budget: a health check stream is the probe (design notes). */
    gstream *gs = gs_get(ps);
    if (gs == NULL)
        return ARPC_ENOMEM;
    gs->id = id;
    gs->ping = true;
    arpc__grpc_call_desc desc = {
        .path = HEALTH_PATH, .path_len = sizeof(HEALTH_PATH) - 1, .timeout_ns = -1};
    int rc = arpc__grpc_session_open_stream(ps->h2, &desc, gs, &gs->stream_id);
    if (rc < 0) {
        gs_put(ps, gs);
        /* After a GOAWAY no stream opens: a PING is all that is left. */
        rc = arpc__grpc_session_ping(ps->h2, id);
        return rc < 0 ? rc : flush_into(ps, out);
    }
    live_push(ps, gs);
    return flush_into(ps, out);
}

static int grpc_send_goaway(arpc__proto_session *s, arpc_buf *out, uint64_t last_id, int reason)
{
    (void)last_id; /* nghttp2 knows the last stream it processed */
    (void)reason;
    grpc_psession *ps = (grpc_psession *)s;
    ps->goaway_sent = true;
    int rc = arpc__grpc_session_goaway(ps->h2);
    return rc < 0 ? rc : flush_into(ps, out);
}

static int grpc_send_cancel(arpc__proto_session *s, arpc_buf *out, uint64_t id)
{
    grpc_psession *ps = (grpc_psession *)s;
    for (gstream *gs = ps->live.next; gs != &ps->live; gs = gs->next) {
        if (gs->id == id && gs->held) {
            /* Its stream is closed: nothing to send; the answer is not reported. */
            gs->held = false;
            ps->held--;
            gs_put(ps, gs);
            return 0;
        }
        if (gs->id == id && !gs->ping && !gs->probe && !gs->canceled) {
            gs->canceled = true;
            int rc = arpc__grpc_session_cancel(ps->h2, gs->stream_id);
            if (rc == ARPC_ENOMEM)
                return rc;
            return flush_into(ps, out);
        }
    }
    return 0; /* answered already */
}

/* ---- streams ----------------------------------------------------------------------- */

/* A client's stream record by call id (a list walk: streams live long, calls are few). */
static gstream *cli_stream(grpc_psession *ps, uint64_t id)
{
    for (gstream *gs = ps->live.next; gs != &ps->live; gs = gs->next) {
        if (gs->id == id && gs->stream && !gs->ping && !gs->probe)
            return gs->canceled ? NULL : gs;
    }
    return NULL;
}

/* The server's END: trailers (or Trailers-Only when nothing went out before). */
static int srv_stream_end(grpc_psession *ps, int32_t sid, const arpc__msg *msg,
                          const arpc__grpc_md *md, size_t md_count)
{
    const char *text = msg->status != 0 ? msg->payload : NULL;
    size_t text_len = msg->status != 0 ? msg->payload_len : 0;
    if (text_len == 0 && msg->status < 0) {
        text = arpc_strerror(msg->status);
        text_len = strlen(text);
    }
    return arpc__grpc_session_send_status(ps->h2, sid, arpc__grpc_status_from_arpc(msg->status),
                                          text, text_len, md, md_count);
}

static int srv_send_stream(grpc_psession *ps, arpc__stream_frame frame, const arpc__msg *msg)
{
    int32_t sid = (int32_t)msg->id;
    const arpc__grpc_md *md = NULL;
    int rc = md_export(ps, &msg->md, &md);
    if (rc < 0)
        return rc;
    size_t md_count = md != NULL ? msg->md.count : 0;
    switch (frame) {
    case ARPC__STREAM_MESSAGE:
        /* The first message's md is the response HEADERS' (send_message sends bare ones). */
        if (md_count > 0)
            rc = arpc__grpc_session_send_headers(ps->h2, sid, md, md_count);
        if (rc == ARPC_EINVAL)
            rc = 0; /* HEADERS went already (or the stream is gone: send_message says so) */
        if (rc == 0)
            rc = arpc__grpc_session_send_message(ps->h2, sid, msg->payload, msg->payload_len);
        return rc;
    case ARPC__STREAM_END:
        return srv_stream_end(ps, sid, msg, md, md_count);
    case ARPC__STREAM_CREDIT:
        return arpc__grpc_session_consume(ps->h2, sid, msg->payload_len);
    default:
        return ARPC_EINVAL; /* not reached: grpc_send_stream sorts the frames */
    }
}

static int cli_send_stream(grpc_psession *ps, arpc__stream_frame frame, const arpc__msg *msg)
{
    gstream *gs = cli_stream(ps, msg->id);
    if (gs == NULL)
        return 0; /* ended or canceled: its END was raised, or never will be */
    if (frame == ARPC__STREAM_MESSAGE)
        return arpc__grpc_session_send_message(ps->h2, gs->stream_id, msg->payload,
                                               msg->payload_len);
    if (frame == ARPC__STREAM_HALF_CLOSE)
        return arpc__grpc_session_half_close(ps->h2, gs->stream_id);
    return arpc__grpc_session_consume(ps->h2, gs->stream_id, msg->payload_len);
}

static int grpc_send_stream(arpc__proto_session *s, arpc_buf *out, arpc__stream_frame frame,
                            const arpc__msg *msg)
{
    grpc_psession *ps = (grpc_psession *)s;
    bool server = ps->cfg.side == ARPC__PROTO_SERVER;
    if (frame == ARPC__STREAM_OPEN)
        return server ? ARPC_EINVAL : open_call(ps, out, msg, true);
    if ((server && frame == ARPC__STREAM_HALF_CLOSE) || (!server && frame == ARPC__STREAM_END))
        return ARPC_EINVAL; /* the other side's frames */
    int rc = server ? srv_send_stream(ps, frame, msg) : cli_send_stream(ps, frame, msg);
    /* A stream the peer reset (or that ended) is gone: its frame is dropped, as an answer
     * to a reset request is (ARPC_EINVAL from session.c). */
    if (rc == ARPC_ENOMEM)
        return rc;
    return flush_into(ps, out);
}

static int grpc_expire(arpc__proto_session *s, arpc_buf *out, int64_t now_ns, int64_t stall_ns)
{
    grpc_psession *ps = (grpc_psession *)s;
    ps->in_h2 = true;
    int rc = arpc__grpc_session_expire(ps->h2, now_ns, stall_ns);
    ps->in_h2 = false;
    int frc = flush_into(ps, out);
    return rc < 0 ? rc : frc;
}

const arpc__proto_ops arpc__proto_grpc = {
    .name = "grpc",
    .alpn = "h2",
    .caps = ARPC__PROTO_MULTIPLEXED | ARPC__PROTO_PING | ARPC__PROTO_GOAWAY | ARPC__PROTO_METADATA |
            ARPC__PROTO_STREAMS,
    .overhead = GRPC_OVERHEAD,
    .detect_len = ARPC__H2_PREFACE_LEN,
    .detect = grpc_detect,
    .create = grpc_create,
    .destroy = grpc_destroy,
    .feed = grpc_feed,
    .mid_message = grpc_mid_message,
    .wire_size = grpc_wire_size,
    .send_request = grpc_send_request,
    .send_response = grpc_send_response,
    .send_ping = grpc_send_ping,
    .send_goaway = grpc_send_goaway,
    .send_cancel = grpc_send_cancel,
    .send_stream = grpc_send_stream,
    .refusal = NULL,
    .expire = grpc_expire,
};

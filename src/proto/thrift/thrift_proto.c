/*
 * Design notes: Thrift's framed binary protocol behind the seam (docs/thrift.md).
 *
 * Thrift answers a connection's requests in order and its clients mostly ignore sequence
 * ids, so the wire has no ids the rpc layer could use.  The session keeps one FIFO of the
 * messages in flight (a ring that grows to the deepest pipeline seen and is reused, so
 * steady state allocates nothing) and presents ids to the rpc layer as every protocol
 * does (docs/protocols.md, "Capabilities"):
 *
 * - Server: each request gets the next id of the connection and an entry holding its
 *   method name and sequence id, which the reply repeats.  Handlers run side by side and
 *   answer in any order; an answer to the oldest entry is encoded straight into the
 *   output, any other waits in its entry (encoded, frame and all) until the ones before it
 *   have gone.  A ONEWAY request's answer is dropped.
 * - Client: each call takes the next sequence id; an answer must be for the oldest entry
 *   and carry its sequence id, or the connection is broken (closed: every later answer
 *   would be misread).  A call the channel gave up on (send_cancel: Thrift cannot cancel)
 *   keeps its place and its late answer is raised for the channel to drop.
 *
 * Thrift has no ping.  A probe stands in (send_ping): a call of a configurable method
 * with no arguments; any answer to it, a TApplicationException for an unknown method
 * included, is the PONG.  In order, a probe behind a slow call would time out although the
 * peer is well, so none goes while a call the channel still waits for is in flight
 * (ARPC_EAGAIN): that call's deadline bounds what a frozen peer costs, and once the
 * channel has given up on every call in flight the probe goes and finds out.  A server
 * cannot probe a Thrift client (ARPC_EAGAIN always).
 *
 * A frame over the limit closes its connection at its 4-byte header (ARPC_ETOOBIG): the
 * body is never buffered, and nothing else is lost, since every later answer on that
 * connection would have waited behind it anyway.
 *
 * Threading: a session belongs to its connection's loop thread.
 */
#include <stdio.h>
#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/common.h"
#include "proto/proto.h"
#include "proto/thrift/codec.h"

enum { KIND_CALL = 1, KIND_ONEWAY, KIND_PROBE };

/* One message in flight. */
typedef struct entry {
    uint64_t id;
    int32_t seqid;
    uint8_t kind;
    bool done;     /* server: its answer waits in `data` after the name */
    bool canceled; /* client: the channel gave up on it */
    uint32_t name_len;
    arpc_buf data; /* server: the method name, then a held answer */
} entry;

typedef struct thrift_session {
    arpc__proto_session base;
    arpc__proto_config cfg;
    entry *ring;
    uint32_t cap; /* a power of two, or 0 */
    uint32_t head;
    uint32_t count;
    uint32_t waiting;    /* client: calls in flight the channel still waits for */
    uint64_t next_id;    /* server: the id of the last request */
    int32_t next_seqid;  /* client: the sequence id of the next message */
    arpc_buf scratch;    /* an exception's struct, while it is framed */
    char reason[96];
} thrift_session;

/* The probe's method when the channel names none: unknown to every Thrift service, which
 * answers it with UNKNOWN_METHOD at the cost of a lookup. */
#define DEFAULT_PROBE "arpc.probe"

static bool is_server(const thrift_session *ts)
{
    return ts->cfg.side == ARPC__PROTO_SERVER;
}

/* The first 8 bytes of a framed message: a length below 1 GiB (so the first byte is below
 * 0x40, never an ASCII letter: the native magic, the HTTP/2 preface and HTTP/1.1 methods
 * all start with one) and then either a strict version word (0x80 0x01 0x00, a type 1..4)
 * or an old-style name length of 1..255 (0 0 0 n). */
static int thrift_detect(const uint8_t *data, size_t len)
{
    if (len > 0 && data[0] >= 0x40)
        return ARPC__DETECT_NO;
    if (len <= 4)
        return ARPC__DETECT_MORE;
    bool strict = data[4] == 0x80;
    if (!strict && data[4] != 0)
        return ARPC__DETECT_NO;
    if ((len > 5 && data[5] != (strict ? 0x01 : 0)) || (len > 6 && data[6] != 0))
        return ARPC__DETECT_NO;
    if (len < 8)
        return ARPC__DETECT_MORE;
    if (strict)
        return data[7] >= ARPC__THRIFT_CALL && data[7] <= ARPC__THRIFT_ONEWAY ? ARPC__DETECT_YES
                                                                             : ARPC__DETECT_NO;
    return data[7] != 0 ? ARPC__DETECT_YES : ARPC__DETECT_NO;
}

static int thrift_create(const arpc__proto_config *cfg, arpc__proto_session **out)
{
    thrift_session *ts = arpc__calloc(1, sizeof(*ts));
    if (ts == NULL)
        return ARPC_ENOMEM;
    ts->base.ops = &arpc__proto_thrift;
    ts->cfg = *cfg;
    if (ts->cfg.limits.max_message == 0 || ts->cfg.limits.max_message > INT32_MAX)
        ts->cfg.limits.max_message = INT32_MAX;
    if (ts->cfg.probe_method == NULL || ts->cfg.probe_method[0] == '\0')
        ts->cfg.probe_method = DEFAULT_PROBE;
    arpc__buf_init(&ts->scratch);
    *out = &ts->base;
    return 0;
}

static void thrift_destroy(arpc__proto_session *s)
{
    thrift_session *ts = (thrift_session *)s;
    for (uint32_t i = 0; i < ts->cap; i++)
        arpc__buf_fini(&ts->ring[i].data);
    arpc__free(ts->ring);
    arpc__buf_fini(&ts->scratch);
    arpc__free(ts);
}

/* ---- the FIFO ---- */

static entry *ring_at(const thrift_session *ts, uint32_t i)
{
    return &ts->ring[(ts->head + i) & (ts->cap - 1)];
}

/* Room for one more entry.  The entries move in order to a ring twice as large, with the
 * buffers of the free ones, which keep their memory for reuse. */
static int ring_reserve(thrift_session *ts)
{
    if (ts->count < ts->cap)
        return 0;
    uint32_t cap = ts->cap != 0 ? ts->cap * 2 : 8;
    entry *ring = arpc__calloc(cap, sizeof(*ring));
    if (ring == NULL)
        return ARPC_ENOMEM;
    for (uint32_t i = 0; i < ts->cap; i++)
        ring[i] = *ring_at(ts, i);
    arpc__free(ts->ring);
    ts->ring = ring;
    ts->cap = cap;
    ts->head = 0;
    return 0;
}

/* Appends an entry; ring_reserve must have succeeded. */
static entry *ring_push(thrift_session *ts, uint64_t id, int32_t seqid, uint8_t kind)
{
    entry *e = ring_at(ts, ts->count++);
    e->id = id;
    e->seqid = seqid;
    e->kind = kind;
    e->done = false;
    e->canceled = false;
    e->name_len = 0;
    arpc__buf_clear(&e->data);
    return e;
}

static void ring_pop(thrift_session *ts)
{
    ts->head = (ts->head + 1) & (ts->cap - 1);
    ts->count--;
}

static int fail(thrift_session *ts, int err, const char *what)
{
    snprintf(ts->reason, sizeof(ts->reason), "thrift: %s", what);
    ts->base.close_reason = ts->reason;
    return err;
}

/* ---- decoding ---- */

/* Requests a client may have in flight on one connection, answered or not: the
 * server's limit and as many again.  Past its limit a request is refused at once
 * (ARPC_EOVERLOAD), but its answer waits here behind the older ones; without a bound a
 * client that pipelines behind one slow call would make the server hold refusals
 * without end, so past this one the connection closes. */
static uint32_t pipeline_max(const thrift_session *ts)
{
    uint32_t limit = ts->cfg.limits.max_in_flight;
    return limit == 0 || limit > UINT32_MAX / 2 ? UINT32_MAX : 2 * limit + 64;
}

static int on_call(thrift_session *ts, const arpc__thrift_header *h, const uint8_t *body,
                   size_t body_len)
{
    if (h->type != ARPC__THRIFT_CALL && h->type != ARPC__THRIFT_ONEWAY)
        return fail(ts, ARPC_EFRAME, "a reply sent to a server");
    if (ts->count >= pipeline_max(ts))
        return fail(ts, ARPC_EOVERLOAD, "requests pipelined far past the server's limit");
    int rc = ring_reserve(ts);
    if (rc < 0)
        return rc;
    uint8_t kind = h->type == ARPC__THRIFT_ONEWAY ? KIND_ONEWAY : KIND_CALL;
    entry *e = ring_push(ts, ++ts->next_id, h->seqid, kind);
    if (kind == KIND_CALL) {
        rc = arpc__buf_append(&e->data, h->name, h->name_len);
        if (rc < 0) {
            ts->count--; /* never raised: it leaves as it came */
            return rc;
        }
        e->name_len = h->name_len;
    }
    arpc__msg msg = {
        .id = e->id,
        .method = h->name,
        .method_len = h->name_len,
        .payload = body,
        .payload_len = body_len,
    };
    return ts->cfg.events->on_request(ts->cfg.owner, &msg);
}

static int on_answer(thrift_session *ts, const arpc__thrift_header *h, const uint8_t *body,
                     size_t body_len)
{
    if (h->type != ARPC__THRIFT_REPLY && h->type != ARPC__THRIFT_EXCEPTION)
        return fail(ts, ARPC_EFRAME, "a call sent to a client");
    if (ts->count == 0)
        return fail(ts, ARPC_EFRAME, "an answer to no call");
    entry *e = ring_at(ts, 0);
    if (h->seqid != e->seqid)
        return fail(ts, ARPC_EFRAME, "an answer with the wrong sequence id");
    uint64_t id = e->id;
    uint8_t kind = e->kind;
    if (kind == KIND_CALL && !e->canceled)
        ts->waiting--;
    ring_pop(ts);
    if (kind == KIND_PROBE) {
        if (ts->cfg.events->on_pong != NULL)
            ts->cfg.events->on_pong(ts->cfg.owner, id, NULL);
        return 0;
    }
    arpc__msg msg = {.id = id, .payload = body, .payload_len = body_len};
    if (h->type == ARPC__THRIFT_EXCEPTION) {
        arpc__thrift_appex ex;
        if (arpc__thrift_appex_read(body, body_len, &ex) == 0) {
            msg.status = arpc__thrift_appex_status(&ex);
            msg.payload = ex.message;
            msg.payload_len = ex.message_len;
        } else {
            msg.status = ARPC_EFRAME; /* this call's answer is broken, not the stream */
            msg.payload = NULL;
            msg.payload_len = 0;
        }
    }
    return ts->cfg.events->on_response(ts->cfg.owner, &msg);
}

/* One complete frame's body. */
static int on_frame(thrift_session *ts, const uint8_t *p, size_t len)
{
    arpc__thrift_header h;
    int64_t n = arpc__thrift_header_decode(p, len, ARPC__PROTO_MAX_METHOD, &h);
    if (n == 0)
        return fail(ts, ARPC_EFRAME, "a frame shorter than its message header");
    if (n == ARPC_EVERSION)
        return fail(ts, ARPC_EVERSION, "a message header with a version other than 1");
    if (n < 0)
        return fail(ts, ARPC_EFRAME, "a malformed message header (type or name)");
    ts->base.messages_in++;
    if (is_server(ts))
        return on_call(ts, &h, p + n, len - (size_t)n);
    return on_answer(ts, &h, p + n, len - (size_t)n);
}

static int64_t thrift_feed(arpc__proto_session *s, const uint8_t *data, size_t len, arpc_buf *out)
{
    thrift_session *ts = (thrift_session *)s;
    size_t off = 0;
    while (len - off >= ARPC__THRIFT_FRAME_HEADER) {
        if (arpc__proto_input_waits(&ts->cfg, out))
            break;
        uint32_t flen = arpc__thrift_frame_len(data + off);
        if (flen > ts->cfg.limits.max_message) {
            if (flen > INT32_MAX)
                return fail(ts, ARPC_EFRAME, "a negative frame length");
            snprintf(ts->reason, sizeof(ts->reason), "thrift: a frame of %u bytes, over %u",
                     flen, ts->cfg.limits.max_message);
            ts->base.close_reason = ts->reason;
            return ARPC_ETOOBIG;
        }
        if (flen < ARPC__THRIFT_MIN_MESSAGE)
            return fail(ts, ARPC_EFRAME, "a frame shorter than any message");
        if (len - off - ARPC__THRIFT_FRAME_HEADER < flen)
            break;
        int rc = on_frame(ts, data + off + ARPC__THRIFT_FRAME_HEADER, flen);
        off += ARPC__THRIFT_FRAME_HEADER + (size_t)flen;
        if (rc < 0)
            return rc;
    }
    return (int64_t)off;
}

static bool thrift_mid_message(const arpc__proto_session *s)
{
    (void)s;
    return false; /* an oversized frame closes; none is ever skipped */
}

/* A response's header repeats the request's name, which the message does not carry: the
 * longest name bounds it. */
static uint64_t thrift_wire_size(const arpc__msg *msg, bool request)
{
    size_t name = request ? msg->method_len : ARPC__PROTO_MAX_METHOD;
    return ARPC__THRIFT_FRAME_HEADER + arpc__thrift_header_size(name) + msg->payload_len;
}

/* ---- encoding ---- */

static int32_t take_seqid(thrift_session *ts)
{
    int32_t seqid = ts->next_seqid;
    ts->next_seqid = seqid == INT32_MAX ? 0 : seqid + 1;
    return seqid;
}

static int thrift_send_request(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg)
{
    thrift_session *ts = (thrift_session *)s;
    if (is_server(ts) || msg->method_len > ARPC__PROTO_MAX_METHOD)
        return ARPC_EINVAL;
    int rc = ring_reserve(ts);
    if (rc < 0)
        return rc;
    int32_t seqid = ts->next_seqid;
    rc = arpc__thrift_encode(out, msg->method, (uint32_t)msg->method_len, ARPC__THRIFT_CALL,
                             seqid, msg->payload, msg->payload_len);
    if (rc < 0)
        return rc;
    take_seqid(ts);
    ring_push(ts, msg->id, seqid, KIND_CALL);
    ts->waiting++;
    return 0;
}

/* The longest message of an exception we send: what it says, not a transport for data. */
#define ANSWER_TEXT_MAX 160
/* What a TApplicationException adds around its message: the message field's header and
 * length (7), the type field (7) and the struct's stop (1), rounded up. */
#define ANSWER_FRAMING_MAX 16

/* Encodes entry e's answer to `dst`: a REPLY with the result struct, or an EXCEPTION. */
static int encode_answer(thrift_session *ts, arpc_buf *dst, const entry *e, const arpc__msg *msg)
{
    /* An empty buffer may have no memory yet: head() of it is no pointer to offset. */
    const char *name = e->name_len > 0 ? (const char *)arpc__buf_head(&e->data) : "";
    if (msg->status == 0)
        return arpc__thrift_encode(dst, name, e->name_len, ARPC__THRIFT_REPLY, e->seqid,
                                   msg->payload, msg->payload_len);
    char text[ANSWER_TEXT_MAX];
    int n;
    if (msg->status > 0)
        n = snprintf(text, sizeof(text), "%d: %.*s", msg->status, (int)msg->payload_len,
                     (const char *)msg->payload);
    else if (msg->status == ARPC_ENOMETHOD)
        n = snprintf(text, sizeof(text), "ENOMETHOD: unknown method %.*s", (int)e->name_len,
                     name);
    else if (msg->payload_len > 0)
        n = snprintf(text, sizeof(text), "%s: %.*s", arpc_err_name(msg->status),
                     (int)msg->payload_len, (const char *)msg->payload);
    else
        n = snprintf(text, sizeof(text), "%s: %s", arpc_err_name(msg->status),
                     arpc_strerror(msg->status));
    size_t text_len = n < 0 ? 0 : (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
    arpc__buf_clear(&ts->scratch);
    int rc = arpc__thrift_appex_write(&ts->scratch, arpc__thrift_appex_type(msg->status), text,
                                      text_len);
    if (rc < 0)
        return rc;
    return arpc__thrift_encode(dst, name, e->name_len, ARPC__THRIFT_EXCEPTION, e->seqid,
                               arpc__buf_head(&ts->scratch), ts->scratch.len);
}

/* Writes the held answers that are next in order, dropping ONEWAY ones. */
static int flush_held(thrift_session *ts, arpc_buf *out)
{
    while (ts->count > 0 && ring_at(ts, 0)->done) {
        entry *e = ring_at(ts, 0);
        if (e->data.len > e->name_len) {
            int rc = arpc__buf_append(out, arpc__buf_head(&e->data) + e->name_len,
                                      e->data.len - e->name_len);
            if (rc < 0)
                return rc;
        }
        ring_pop(ts);
    }
    return 0;
}

static int thrift_send_response(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg)
{
    thrift_session *ts = (thrift_session *)s;
    if (!is_server(ts) || ts->count == 0 || msg->id < ring_at(ts, 0)->id ||
        msg->id - ring_at(ts, 0)->id >= ts->count)
        return ARPC_EINVAL;
    uint32_t pos = (uint32_t)(msg->id - ring_at(ts, 0)->id); /* ids are consecutive */
    entry *e = ring_at(ts, pos);
    if (e->done)
        return ARPC_EINVAL;
    if (e->kind == KIND_ONEWAY) {
        e->done = true; /* nobody waits for it: only its place in the order goes */
    } else if (pos > 0) {
        /* Room first: the name the encoder reads lives in the buffer it writes. */
        size_t name_len = e->name_len;
        int rc = arpc__buf_ensure(&e->data, thrift_wire_size(msg, false) + ANSWER_TEXT_MAX +
                                                ANSWER_FRAMING_MAX);
        if (rc == 0)
            rc = encode_answer(ts, &e->data, e, msg);
        if (rc < 0) {
            e->data.len = name_len;
            return rc;
        }
        e->done = true;
        return 0;
    } else {
        int rc = encode_answer(ts, out, e, msg);
        if (rc < 0)
            return rc;
        e->done = true;
    }
    if (pos == 0)
        return flush_held(ts, out);
    return 0;
}

static int thrift_send_ping(arpc__proto_session *s, arpc_buf *out, uint64_t id, bool announce)
{
    (void)announce; /* Thrift announces no limits */
    thrift_session *ts = (thrift_session *)s;
    if (is_server(ts) || ts->waiting > 0)
        return ARPC_EAGAIN; /* see the design notes */
    int rc = ring_reserve(ts);
    if (rc < 0)
        return rc;
    static const uint8_t no_args = 0; /* an empty argument struct: its STOP */
    const char *name = ts->cfg.probe_method;
    int32_t seqid = ts->next_seqid;
    rc = arpc__thrift_encode(out, name, (uint32_t)strlen(name), ARPC__THRIFT_CALL, seqid, &no_args,
                             1);
    if (rc < 0)
        return rc;
    take_seqid(ts);
    ring_push(ts, id, seqid, KIND_PROBE);
    return 0;
}

/* Thrift cannot cancel: the call keeps its place in the order, and no longer holds back a
 * probe.  @return ARPC_EINVAL, so the channel knows the server was not told. */
static int thrift_send_cancel(arpc__proto_session *s, arpc_buf *out, uint64_t id)
{
    (void)out;
    thrift_session *ts = (thrift_session *)s;
    for (uint32_t i = 0; i < ts->count && !is_server(ts); i++) {
        entry *e = ring_at(ts, i);
        if (e->id == id && e->kind == KIND_CALL && !e->canceled) {
            e->canceled = true;
            ts->waiting--;
            break;
        }
    }
    return ARPC_EINVAL;
}

const arpc__proto_ops arpc__proto_thrift = {
    .name = "thrift",
    .caps = ARPC__PROTO_PING,
    /* The frame length and a strict header with the longest name (a response's). */
    .overhead = ARPC__THRIFT_FRAME_HEADER + ARPC__THRIFT_HEADER_FIXED + ARPC__PROTO_MAX_METHOD,
    .detect_len = 8,
    .detect = thrift_detect,
    .create = thrift_create,
    .destroy = thrift_destroy,
    .feed = thrift_feed,
    .mid_message = thrift_mid_message,
    .wire_size = thrift_wire_size,
    .send_request = thrift_send_request,
    .send_response = thrift_send_response,
    .send_ping = thrift_send_ping,
    .send_cancel = thrift_send_cancel,
};

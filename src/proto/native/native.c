/*
 * Design notes: the native protocol behind the seam (docs/protocol.md is the spec).
 *
 * The session is a thin stateful shell around the stateless codec (proto/codec.c): feed
 * decodes every complete frame of its input with arpc__frame_decode and raises one event per
 * frame.  Its only state is what the wire needs between frames: the bytes of an oversized
 * frame still to skip (its header said where it ends, so the stream stays in sync and the
 * body is never buffered), the highest request id a server has seen (ids must increase,
 * section 4), and our limits, announced as settings in the payload of a PING or PONG.
 *
 * Control frames are the session's own business: a PING is answered with a PONG at once
 * (carrying our settings if the PING carried the peer's), and the rpc layer only hears that
 * the peer pinged (on_ping) or that one of its PINGs came back (on_pong).
 *
 * Encoders write straight into the connection's output buffer: header, method and payload
 * in one append, no intermediate copy.
 *
 * Streams (docs/protocol.md section 13) keep the session almost stateless: which streams are
 * open is the rpc layer's knowledge (a frame for a stream that ended is raised, and it
 * ignores it).  The session checks only what the wire alone decides: the frame's direction,
 * that the peer may send stream frames at all (we announced STREAMS = 1), lengths, and that
 * the id is one that was opened (not above the highest request id a server saw, or above the
 * highest stream a client opened).  Each of those is a protocol error.
 *
 * Window credit is coalesced: the rpc layer gives back each message's bytes as its
 * application reads it (send_stream(CREDIT)), and a WINDOW frame (36 bytes) per message read
 * would double the frames of a stream of small messages.  The session adds credit up per
 * stream in a few slots and sends a WINDOW once half of the window we announced has added up
 * (as HTTP/2 implementations commonly do).  That never stalls a writer: a writer waits only
 * once it has a whole window unacknowledged, and when the reader has read that much, at
 * least half a window is pending, so a WINDOW goes.  A slot is freed when its stream ends
 * (END, CANCEL) and, when all are taken, the oldest is sent early: one stale slot at worst
 * sends a WINDOW for a stream that ended, which the peer ignores.
 *
 * Threading: a session belongs to its connection's loop thread.
 */
#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/common.h"
#include "proto/frame.h"
#include "proto/frame_inline.h"
#include "proto/metadata.h"
#include "proto/proto.h"

/* Credit of one stream not yet sent as a WINDOW (id 0: free). */
typedef struct credit_slot {
    uint64_t id;
    uint32_t bytes;
} credit_slot;

/* Streams whose credit adds up at once: enough for the streams a connection usually runs
 * side by side; more only send their WINDOWs earlier. */
#define CREDIT_SLOTS 8

/* The window a peer reads from the STREAM_WINDOW we announce (codec.c reads it so). */
static uint32_t window_announced(uint32_t v)
{
    if (v == 0)
        return ARPC__DEFAULT_STREAM_WINDOW;
    return v < ARPC__MIN_STREAM_WINDOW ? ARPC__MIN_STREAM_WINDOW : v;
}

typedef struct native_session {
    arpc__proto_session base;
    arpc__proto_config cfg;
    uint64_t skip;            /* bytes of an oversized frame still to discard */
    uint64_t last_request_id; /* server: the highest request id so far */
    bool peer_metadata;       /* the peer's settings said METADATA = 1: send it metadata */
    bool peer_streams;        /* the peer's settings said STREAMS = 1: it reads CANCEL */
    uint64_t last_stream_id;  /* client: the highest stream id opened (send_stream(OPEN)) */
    uint32_t credit_flush;    /* credit pending on a stream is sent from this many bytes */
    unsigned credit_next;     /* the slot sent early when all are taken */
    credit_slot credit[CREDIT_SLOTS];
    arpc_buf md;              /* the metadata of the message being raised, in memory form */
} native_session;

static int native_detect(const uint8_t *data, size_t len)
{
    if (len > 0 && data[0] != MAGIC0)
        return ARPC__DETECT_NO;
    if (len > 1 && data[1] != MAGIC1)
        return ARPC__DETECT_NO;
    return len >= 2 ? ARPC__DETECT_YES : ARPC__DETECT_MORE;
}

static int native_create(const arpc__proto_config *cfg, arpc__proto_session **out)
{
    native_session *ns = arpc__calloc(1, sizeof(*ns));
    if (ns == NULL)
        return ARPC_ENOMEM;
    ns->base.ops = &arpc__proto_native;
    ns->cfg = *cfg;
    arpc__buf_init(&ns->md);
    if (ns->cfg.limits.max_message == 0)
        ns->cfg.limits.max_message = UINT32_MAX;
    ns->credit_flush = window_announced(ns->cfg.limits.stream_window) / 2;
    *out = &ns->base;
    return 0;
}

static void native_destroy(arpc__proto_session *s)
{
    native_session *ns = (native_session *)s;
    arpc__buf_fini(&ns->md);
    arpc__free(ns);
}

static arpc__settings settings_of(const arpc__proto_limits *limits)
{
    arpc__settings st = {.max_frame_size = limits->max_message,
                         .max_in_flight = limits->max_in_flight,
                         .metadata = limits->metadata ? 1 : 0,
                         .streams = limits->streams ? 1 : 0,
                         .stream_window = limits->streams ? limits->stream_window : 0};
    return st;
}

static arpc__proto_limits limits_of(const arpc__settings *st)
{
    arpc__proto_limits limits = {.max_message = st->max_frame_size,
                                 .max_in_flight = st->max_in_flight,
                                 .metadata = st->metadata == 1,
                                 .streams = st->streams == 1,
                                 .stream_window = st->stream_window};
    return limits;
}

static bool is_server(const native_session *ns)
{
    return ns->cfg.side == ARPC__PROTO_SERVER;
}

/* Request ids are never 0 and strictly increasing on a connection (protocol.md 4): anything
 * else is a protocol error. */
static int check_request_id(native_session *ns, uint64_t id)
{
    if (id <= ns->last_request_id)
        return ARPC_EFRAME;
    ns->last_request_id = id;
    return 0;
}

/*
 * The metadata block of a frame (its `count` entries in wire form at `p`) in memory form,
 * checked entry by entry (the decoder checked only the block's structure), into the
 * session's buffer, which `md` then views.  Not the frame: a pointer to it would keep the
 * decoded frame in memory on the path of every message.
 * @return 0; ARPC_EINVAL or ARPC_EMETADATA (the call fails alone); ARPC_ENOMEM.
 */
static arpc__noinline int read_metadata_block(native_session *ns, const uint8_t *p, uint32_t count,
                                              arpc__md *md)
{
    arpc__buf_clear(&ns->md);
    for (uint32_t i = 0; i < count; i++) {
        size_t key_len = (size_t)p[0] | (size_t)p[1] << 8;
        size_t value_len = (size_t)p[2] | (size_t)p[3] << 8;
        const char *key = (const char *)p + ARPC__MD_WIRE_ENTRY;
        int rc = arpc__md_check(key, key_len, key + key_len, value_len);
        if (rc == 0)
            rc = arpc__md_append(&ns->md, md, key, key_len, key + key_len, value_len);
        if (rc < 0)
            return rc;
        p += ARPC__MD_WIRE_ENTRY + key_len + value_len;
    }
    return 0;
}

/* Inline: a frame without metadata, the usual one, costs a test. */
static inline int read_metadata(native_session *ns, const arpc__frame *f, arpc__md *md)
{
    md->data = NULL;
    md->len = 0;
    md->count = 0;
    return arpc__unlikely(f->md != NULL) ? read_metadata_block(ns, f->md, f->md_count, md) : 0;
}

/* A message whose metadata cannot be taken fails alone; out of memory closes. */
static int refuse(native_session *ns, uint64_t id, int err)
{
    if (err == ARPC_ENOMEM || ns->cfg.events->on_refused == NULL)
        return err;
    return ns->cfg.events->on_refused(ns->cfg.owner, id, err);
}

static arpc__noinline int on_open(native_session *ns, arpc__frame f, arpc_buf *out);

static int on_request(native_session *ns, const arpc__frame *f, arpc_buf *out)
{
    const arpc__proto_events *ev = ns->cfg.events;
    if (!is_server(ns))
        return ARPC_EFRAME; /* a REQUEST towards a client */
    if (arpc__unlikely(f->flags & ARPC__FLAG_STREAM))
        return on_open(ns, *f, out);
    int rc = check_request_id(ns, f->request_id);
    if (rc < 0)
        return rc;
    arpc__md md;
    rc = read_metadata(ns, f, &md);
    if (rc < 0)
        return refuse(ns, f->request_id, rc);
    arpc__msg msg = {
        .id = f->request_id,
        .method = f->method,
        .method_len = f->method_len,
        .timeout_ns = (int64_t)f->timeout_ms * 1000000,
        .flags = (f->flags & ARPC__FLAG_IDEMPOTENT) ? ARPC__MSG_IDEMPOTENT : 0,
        .md = md,
        .payload = f->payload,
        .payload_len = f->payload_len,
    };
    return ev->on_request(ns->cfg.owner, &msg);
}

static int on_response(native_session *ns, const arpc__frame *f)
{
    if (is_server(ns))
        return ARPC_EFRAME; /* a RESPONSE towards a server */
    arpc__md md;
    int rc = read_metadata(ns, f, &md);
    if (rc < 0)
        return refuse(ns, f->request_id, rc);
    arpc__msg msg = {
        .id = f->request_id,
        .status = f->status,
        .md = md,
        .payload = f->payload,
        .payload_len = f->payload_len,
    };
    return ns->cfg.events->on_response(ns->cfg.owner, &msg);
}

/* A PING with settings (a client's first) is answered with ours; any other with a bare
 * PONG, as version 1 always did. */
static int on_ping(native_session *ns, const arpc__frame *f, arpc_buf *out)
{
    const arpc__proto_events *ev = ns->cfg.events;
    int rc;
    if (f->payload_len > 0) {
        arpc__settings peer;
        arpc__settings_decode(f->payload, f->payload_len, &peer);
        arpc__proto_limits limits = limits_of(&peer);
        ns->peer_metadata = limits.metadata;
        ns->peer_streams = limits.streams;
        if (is_server(ns) && ev->on_peer_limits != NULL)
            ev->on_peer_limits(ns->cfg.owner, &limits);
        arpc__settings mine = settings_of(&ns->cfg.limits);
        rc = arpc__frame_encode_settings(out, ARPC__FRAME_PONG, f->request_id, &mine);
    } else {
        rc = arpc__frame_encode_control(out, ARPC__FRAME_PONG, f->request_id, 0);
    }
    if (rc == 0 && ev->on_ping != NULL)
        ev->on_ping(ns->cfg.owner);
    return rc;
}

static int on_pong(native_session *ns, const arpc__frame *f)
{
    const arpc__proto_events *ev = ns->cfg.events;
    if (is_server(ns) || ev->on_pong == NULL)
        return 0; /* a server sends no PING of its own yet: nothing to match */
    if (f->payload_len == 0) {
        ev->on_pong(ns->cfg.owner, f->request_id, NULL);
        return 0;
    }
    arpc__settings peer;
    arpc__settings_decode(f->payload, f->payload_len, &peer);
    arpc__proto_limits limits = limits_of(&peer);
    ns->peer_metadata = limits.metadata;
    ns->peer_streams = limits.streams;
    ev->on_pong(ns->cfg.owner, f->request_id, &limits);
    return 0;
}

static int on_goaway(native_session *ns, const arpc__frame *f)
{
    if (is_server(ns))
        return ARPC_EFRAME; /* GOAWAY travels towards clients only */
    /* The reason travels in the status: ARPC_ESHUTDOWN for a server going away,
     * ARPC_ETOOMANYCONNS for a connection over the server's cap. */
    int reason = f->status < 0 ? f->status : ARPC_ESHUTDOWN;
    ns->cfg.events->on_goaway(ns->cfg.owner, f->request_id, reason);
    return 0;
}

/* ---- streams (docs/protocol.md section 13) ---- */

static void credit_drop(native_session *ns, uint64_t id);

/* May the peer send us stream frames at all?  Only if we announced STREAMS = 1 and the rpc
 * layer takes them. */
static bool streams_accepted(const native_session *ns)
{
    return ns->cfg.limits.streams && ns->cfg.events->on_stream != NULL;
}

/* The id of a stream frame from the peer: a stream (or, for CANCEL, a request) that was
 * opened: not 0, and not above the highest request id a server saw or the highest stream
 * a client opened.  An id at or below it whose stream ended is raised all the same: the rpc
 * layer ignores it. */
static int check_stream_id(const native_session *ns, uint64_t id)
{
    uint64_t highest = is_server(ns) ? ns->last_request_id : ns->last_stream_id;
    return id != 0 && id <= highest ? 0 : ARPC_EFRAME;
}

/* A server refuses an OPEN it cannot take (its metadata, or its size) by ending the stream
 * with `err` itself: the rpc layer never saw it, so it would answer with a RESPONSE, which
 * a stream's client does not read. */
static int refuse_open(native_session *ns, uint64_t id, int err, arpc_buf *out)
{
    if (err == ARPC_ENOMEM)
        return err;
    int rc = arpc__frame_encode_end(out, id, err, NULL, NULL, 0);
    if (rc == 0 && err != ARPC_EINVAL && ns->cfg.events->on_stream_fault != NULL)
        ns->cfg.events->on_stream_fault(ns->cfg.owner, id, ARPC__PROTO_FAULT_HEADERS_TOO_BIG);
    return rc;
}

/* A REQUEST with the STREAM flag: its payload is the metadata block alone.  The frame comes
 * by value, as to dispatch_stream: a pointer would keep the decoded frame of every message
 * in memory instead of registers (callgrind: +25 instructions per call). */
static arpc__noinline int on_open(native_session *ns, arpc__frame frame, arpc_buf *out)
{
    const arpc__frame *f = &frame;
    if (!streams_accepted(ns) || f->payload_len != 0)
        return ARPC_EFRAME;
    int rc = check_request_id(ns, f->request_id);
    if (rc < 0)
        return rc;
    arpc__md md;
    rc = read_metadata(ns, f, &md);
    if (rc < 0)
        return refuse_open(ns, f->request_id, rc, out);
    arpc__msg msg = {
        .id = f->request_id,
        .method = f->method,
        .method_len = f->method_len,
        .timeout_ns = (int64_t)f->timeout_ms * 1000000,
        .md = md,
    };
    return ns->cfg.events->on_stream(ns->cfg.owner, ARPC__STREAM_OPEN, &msg);
}

/* A client whose stream's MESSAGE or END it cannot take (its metadata) ends that stream
 * with `err`, and cancels it on the server if it was still going. */
static int fail_stream(native_session *ns, const arpc__frame *f, int err, arpc_buf *out)
{
    if (err == ARPC_ENOMEM)
        return err;
    if (f->type == ARPC__FRAME_MESSAGE) {
        int rc = arpc__frame_encode_control(out, ARPC__FRAME_CANCEL, f->request_id, 0);
        if (rc < 0)
            return rc;
    }
    credit_drop(ns, f->request_id);
    arpc__msg msg = {.id = f->request_id, .status = err};
    return ns->cfg.events->on_stream(ns->cfg.owner, ARPC__STREAM_END, &msg);
}

/* MESSAGE, either way (metadata only from the server), and END, towards a client. */
static int on_stream_data(native_session *ns, const arpc__frame *f, arpc_buf *out)
{
    bool end = f->type == ARPC__FRAME_END;
    if (!streams_accepted(ns) || (end && is_server(ns)) || (is_server(ns) && f->md != NULL) ||
        check_stream_id(ns, f->request_id) < 0)
        return ARPC_EFRAME;
    arpc__md md;
    int rc = read_metadata(ns, f, &md);
    if (rc < 0)
        return fail_stream(ns, f, rc, out);
    if (end)
        credit_drop(ns, f->request_id);
    arpc__msg msg = {
        .id = f->request_id,
        .status = f->status,
        .md = md,
        .payload = f->payload,
        .payload_len = f->payload_len,
    };
    return ns->cfg.events->on_stream(ns->cfg.owner, end ? ARPC__STREAM_END : ARPC__STREAM_MESSAGE,
                                     &msg);
}

/* HALF_CLOSE and CANCEL: client to server, no payload.  CANCEL is for a request too. */
static int on_client_control(native_session *ns, const arpc__frame *f)
{
    if (!streams_accepted(ns) || !is_server(ns) || f->payload_len != 0 ||
        check_stream_id(ns, f->request_id) < 0)
        return ARPC_EFRAME;
    if (f->type == ARPC__FRAME_HALF_CLOSE) {
        arpc__msg msg = {.id = f->request_id};
        return ns->cfg.events->on_stream(ns->cfg.owner, ARPC__STREAM_HALF_CLOSE, &msg);
    }
    credit_drop(ns, f->request_id);
    if (ns->cfg.events->on_cancel != NULL)
        ns->cfg.events->on_cancel(ns->cfg.owner, f->request_id);
    return 0;
}

/* WINDOW, either way: a u32 LE, not 0 (a grant of nothing is no grant). */
static int on_window(native_session *ns, const arpc__frame *f)
{
    if (!streams_accepted(ns) || f->payload_len != ARPC__WINDOW_PAYLOAD ||
        check_stream_id(ns, f->request_id) < 0)
        return ARPC_EFRAME;
    uint32_t bytes = load_le32(f->payload);
    if (bytes == 0)
        return ARPC_EFRAME;
    arpc__msg msg = {.id = f->request_id, .payload_len = bytes};
    return ns->cfg.events->on_stream(ns->cfg.owner, ARPC__STREAM_CREDIT, &msg);
}

/* The stream types (section 13), from dispatch_other. */
static int dispatch_stream(native_session *ns, const arpc__frame *f, arpc_buf *out)
{
    switch (f->type) {
    case ARPC__FRAME_MESSAGE:
    case ARPC__FRAME_END:
        return on_stream_data(ns, f, out);
    case ARPC__FRAME_HALF_CLOSE:
    case ARPC__FRAME_CANCEL:
        return on_client_control(ns, f);
    default:
        return on_window(ns, f);
    }
}

/* PING, PONG, GOAWAY and the stream types: out of line, the frame by value (see on_open). */
static arpc__noinline int dispatch_other(native_session *ns, arpc__frame frame, arpc_buf *out)
{
    const arpc__frame *f = &frame;
    switch (f->type) {
    case ARPC__FRAME_PING:
        return on_ping(ns, f, out);
    case ARPC__FRAME_PONG:
        return on_pong(ns, f);
    case ARPC__FRAME_GOAWAY:
        return on_goaway(ns, f);
    default:
        return dispatch_stream(ns, f, out);
    }
}

/* REQUEST and RESPONSE first, by two compares: a switch over ten types would be a jump
 * table, a few instructions more for every message (callgrind, bench-alloc). */
static int dispatch(native_session *ns, const arpc__frame *f, arpc_buf *out)
{
    if (f->type == ARPC__FRAME_REQUEST)
        return on_request(ns, f, out);
    if (f->type == ARPC__FRAME_RESPONSE)
        return on_response(ns, f);
    return dispatch_other(ns, *f, out);
}

/* An oversized frame: its call fails, and its bytes (header and body) are skipped as they
 * arrive.  An oversized stream frame other than an OPEN is a protocol error (section 13).
 * @return 0 or the error that closes. */
static int start_skip(native_session *ns, const arpc__frame *f, arpc_buf *out)
{
    const arpc__proto_events *ev = ns->cfg.events;
    if (!arpc__frame_skippable(f->type) || ev->on_refused == NULL)
        return ARPC_ETOOBIG;
    if ((f->type == ARPC__FRAME_REQUEST) != is_server(ns))
        return ARPC_EFRAME; /* a REQUEST towards a client, a RESPONSE towards a server */
    bool open = f->type == ARPC__FRAME_REQUEST && (f->flags & ARPC__FLAG_STREAM);
    if (open && !streams_accepted(ns))
        return ARPC_EFRAME;
    int rc = is_server(ns) ? check_request_id(ns, f->request_id) : 0;
    if (rc == 0)
        rc = open ? refuse_open(ns, f->request_id, ARPC_ETOOBIG, out)
                  : ev->on_refused(ns->cfg.owner, f->request_id, ARPC_ETOOBIG);
    if (rc == 0) {
        ns->skip = arpc__frame_total(f);
        ns->base.messages_in++; /* a new frame began: its time limit starts afresh */
    }
    return rc;
}

static int64_t native_feed(arpc__proto_session *s, const uint8_t *data, size_t len, arpc_buf *out)
{
    native_session *ns = (native_session *)s;
    size_t off = 0;
    while (off < len) {
        if (arpc__unlikely(ns->skip > 0)) {
            size_t n = ns->skip < len - off ? (size_t)ns->skip : len - off;
            off += n;
            ns->skip -= n;
            continue;
        }
        if (arpc__proto_input_waits(&ns->cfg, out))
            break;
        /* Inline (proto/frame_inline.h): no call per message, and `f` stays in registers. */
        arpc__frame f;
        int64_t n =
            arpc__frame_decode_inline(data + off, len - off, ns->cfg.limits.max_message, &f);
        if (n == 0)
            break;
        if (n == ARPC_ETOOBIG) {
            int rc = start_skip(ns, &f, out);
            if (rc < 0)
                return rc;
            continue;
        }
        if (n < 0)
            return n;
        ns->base.messages_in++;
        int rc = dispatch(ns, &f, out);
        off += (size_t)n;
        if (rc < 0)
            return rc;
    }
    return (int64_t)off;
}

static bool native_mid_message(const arpc__proto_session *s)
{
    return ((const native_session *)s)->skip > 0;
}

static uint64_t native_wire_size(const arpc__msg *msg, bool request)
{
    return (uint64_t)ARPC__FRAME_HEADER_SIZE + (request ? msg->method_len : 0) +
           arpc__frame_md_size(&msg->md) + msg->payload_len;
}

/* Metadata goes only to a peer that said it reads it; an older peer gets the message
 * without it (docs/protocol.md section 10). */
static const arpc__md *md_for_peer(const native_session *ns, const arpc__msg *msg)
{
    return arpc__unlikely(msg->md.count > 0) && ns->peer_metadata ? &msg->md : NULL;
}

static int native_send_request(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg)
{
    const native_session *ns = (const native_session *)s;
    uint32_t timeout_ms = msg->timeout_ns > 0 ? arpc__frame_timeout_ms(msg->timeout_ns) : 0;
    uint16_t flags = (msg->flags & ARPC__MSG_IDEMPOTENT) ? ARPC__FLAG_IDEMPOTENT : 0;
    const arpc__md *md = md_for_peer(ns, msg);
    if (arpc__likely(md == NULL))
        return arpc__frame_encode_request_inline(out, msg->id, timeout_ms, flags, msg->method,
                                                 msg->method_len, NULL, msg->payload,
                                                 msg->payload_len);
    return arpc__frame_encode_request_md(out, msg->id, timeout_ms, flags, msg->method,
                                         msg->method_len, md, msg->payload, msg->payload_len);
}

static int native_send_response(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg)
{
    const native_session *ns = (const native_session *)s;
    const arpc__md *md = md_for_peer(ns, msg);
    if (arpc__likely(md == NULL))
        return arpc__frame_encode_response_inline(out, msg->id, msg->status, NULL, msg->payload,
                                                  msg->payload_len);
    return arpc__frame_encode_response_md(out, msg->id, msg->status, md, msg->payload,
                                          msg->payload_len);
}

static int native_send_ping(arpc__proto_session *s, arpc_buf *out, uint64_t id, bool announce)
{
    native_session *ns = (native_session *)s;
    if (!announce)
        return arpc__frame_encode_control(out, ARPC__FRAME_PING, id, 0);
    arpc__settings mine = settings_of(&ns->cfg.limits);
    return arpc__frame_encode_settings(out, ARPC__FRAME_PING, id, &mine);
}

static int native_send_goaway(arpc__proto_session *s, arpc_buf *out, uint64_t last_id, int reason)
{
    (void)s;
    return arpc__frame_encode_control(out, ARPC__FRAME_GOAWAY, last_id, reason);
}

/* ---- sending stream frames ---- */

static void credit_drop(native_session *ns, uint64_t id)
{
    for (unsigned i = 0; i < CREDIT_SLOTS; i++)
        if (ns->credit[i].id == id)
            ns->credit[i].id = 0;
}

/* Adds `bytes` consumed on stream `id` to its pending credit and sends a WINDOW once it
 * reaches credit_flush (see the design notes).  `out` and the slots are unchanged on
 * error. */
static int send_credit(native_session *ns, arpc_buf *out, uint64_t id, size_t bytes)
{
    if (bytes == 0)
        return 0; /* a WINDOW of 0 is a protocol error (section 13): never send one */
    credit_slot *slot = NULL;
    for (unsigned i = 0; i < CREDIT_SLOTS && slot == NULL; i++)
        if (ns->credit[i].id == id)
            slot = &ns->credit[i];
    uint64_t total = (uint64_t)bytes + (slot != NULL ? slot->bytes : 0);
    if (total >= ns->credit_flush) {
        /* One message is at most 4 GiB; what a u32 cannot carry waits for the next. */
        uint32_t grant = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
        int rc = arpc__frame_encode_window(out, id, grant);
        if (rc < 0)
            return rc;
        if (slot != NULL)
            slot->bytes = (uint32_t)(total - grant);
        if (slot != NULL && slot->bytes == 0)
            slot->id = 0;
        return 0;
    }
    if (slot != NULL) {
        slot->bytes = (uint32_t)total;
        return 0;
    }
    for (unsigned i = 0; i < CREDIT_SLOTS && slot == NULL; i++)
        if (ns->credit[i].id == 0)
            slot = &ns->credit[i];
    if (slot == NULL) {
        slot = &ns->credit[ns->credit_next];
        int rc = arpc__frame_encode_window(out, slot->id, slot->bytes);
        if (rc < 0)
            return rc;
        ns->credit_next = (ns->credit_next + 1) % CREDIT_SLOTS;
    }
    slot->id = id;
    slot->bytes = (uint32_t)total;
    return 0;
}

static int native_send_stream(arpc__proto_session *s, arpc_buf *out, arpc__stream_frame frame,
                              const arpc__msg *msg)
{
    native_session *ns = (native_session *)s;
    /* A frame its side never sends (section 13) would close the connection at the peer. */
    bool from_client = frame == ARPC__STREAM_OPEN || frame == ARPC__STREAM_HALF_CLOSE;
    if ((from_client && is_server(ns)) || (frame == ARPC__STREAM_END && !is_server(ns)))
        return ARPC_EINVAL;
    int rc;
    switch (frame) {
    case ARPC__STREAM_OPEN: {
        uint32_t timeout_ms = msg->timeout_ns > 0 ? arpc__frame_timeout_ms(msg->timeout_ns) : 0;
        rc = arpc__frame_encode_open(out, msg->id, timeout_ms, msg->method, msg->method_len,
                                     md_for_peer(ns, msg));
        if (rc == 0 && msg->id > ns->last_stream_id)
            ns->last_stream_id = msg->id;
        return rc;
    }
    case ARPC__STREAM_MESSAGE:
        return arpc__frame_encode_message(out, msg->id, md_for_peer(ns, msg), msg->payload,
                                          msg->payload_len);
    case ARPC__STREAM_HALF_CLOSE:
        return arpc__frame_encode_control(out, ARPC__FRAME_HALF_CLOSE, msg->id, 0);
    case ARPC__STREAM_END:
        rc = arpc__frame_encode_end(out, msg->id, msg->status, md_for_peer(ns, msg), msg->payload,
                                    msg->payload_len);
        if (rc == 0)
            credit_drop(ns, msg->id);
        return rc;
    case ARPC__STREAM_CREDIT:
        return send_credit(ns, out, msg->id, msg->payload_len);
    default:
        return ARPC_EINVAL;
    }
}

/* CANCEL goes only to a server that announced STREAMS = 1 (an older one would close the
 * connection on type 9): for another the rpc layer learns it was not told. */
static int native_send_cancel(arpc__proto_session *s, arpc_buf *out, uint64_t id)
{
    native_session *ns = (native_session *)s;
    if (!ns->peer_streams)
        return ARPC_EINVAL;
    int rc = arpc__frame_encode_control(out, ARPC__FRAME_CANCEL, id, 0);
    if (rc == 0)
        credit_drop(ns, id);
    return rc;
}

static size_t native_refusal(uint8_t *buf, size_t cap, int reason)
{
    if (cap < ARPC__FRAME_HEADER_SIZE)
        return 0;
    arpc__frame f;
    memset(&f, 0, sizeof(f));
    f.type = ARPC__FRAME_GOAWAY;
    f.status = reason;
    arpc__frame_write_header(buf, &f);
    return ARPC__FRAME_HEADER_SIZE;
}

const arpc__proto_ops arpc__proto_native = {
    .name = "native",
    .alpn = "arpc",
    .caps = ARPC__PROTO_MULTIPLEXED | ARPC__PROTO_PING | ARPC__PROTO_GOAWAY | ARPC__PROTO_METADATA |
            ARPC__PROTO_STREAMS,
    /* The header and the block's length; a block's entries are smaller on the wire than in
     * memory (no NULs). */
    .overhead = ARPC__FRAME_HEADER_SIZE + ARPC__MD_BLOCK_HEADER,
    .detect_len = 2,
    .detect = native_detect,
    .create = native_create,
    .destroy = native_destroy,
    .feed = native_feed,
    .mid_message = native_mid_message,
    .wire_size = native_wire_size,
    .send_request = native_send_request,
    .send_response = native_send_response,
    .send_ping = native_send_ping,
    .send_goaway = native_send_goaway,
    .send_cancel = native_send_cancel,
    .send_stream = native_send_stream,
    .refusal = native_refusal,
};

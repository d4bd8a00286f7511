/*
 * The protocol seam: one ops table per wire protocol (docs/protocols.md).
 *
 * A protocol turns bytes into message events and messages into bytes; it knows nothing of
 * calls, pools or handlers.  The rpc layer (conn.c, channel.c, server.c) holds no frame
 * layout: it creates one session per connection, hands the session every byte it reads
 * (feed), receives what the session decodes through a small event interface it implements
 * (arpc__proto_events), and asks the session to encode its messages straight into the
 * connection's output buffer (send_*).  What a protocol can do is declared in `caps`, and
 * heartbeats, retries and GOAWAY-drain are written once against those flags.
 *
 * Adding a protocol is one folder beside its siblings (src/proto/native/, later
 * src/proto/grpc/, src/proto/thrift/) that fills in an arpc__proto_ops and is named in the
 * server's list of protocols to detect (server.c) or chosen by a channel option.
 *
 * Threading: a session belongs to its connection's loop thread; an ops table is immutable.
 */
#ifndef ARPC_PROTO_PROTO_H
#define ARPC_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/buf.h>

#include "base/buf.h"

/* Which end of the connection a session is. */
typedef enum arpc__proto_side { ARPC__PROTO_CLIENT = 0, ARPC__PROTO_SERVER = 1 } arpc__proto_side;

/* Capability flags (arpc__proto_ops.caps). */
enum {
    /* Answers carry the request's id and may come in any order; without it the protocol
     * answers in request order (Thrift) and the session maps answers to ids itself. */
    ARPC__PROTO_MULTIPLEXED = 1u << 0,
    /* send_ping exists and the peer answers it (on_pong): heartbeats run.  Without it the
     * channel sends none (docs/protocols.md, "Capabilities", says what stands in). */
    ARPC__PROTO_PING = 1u << 1,
    /* The peer says goodbye with the last id it will answer (on_goaway): calls above it never
     * ran and may be retried even when not idempotent, and the server drains with
     * send_goaway.  Without it a lost connection retries only idempotent calls. */
    ARPC__PROTO_GOAWAY = 1u << 2,
    /* Messages carry metadata (arpc__msg.md) to peers that accept it. */
    ARPC__PROTO_METADATA = 1u << 3,
    /* Streams (include/arpc/stream.h, docs/streams.md): send_stream and on_stream exist.
     * Natively only toward a peer that announced streams (arpc__proto_limits.streams). */
    ARPC__PROTO_STREAMS = 1u << 4,
};

/* Request flags (arpc__msg.flags). */
enum {
    /* The caller allows the request to run more than once (retried after a lost
     * connection). */
    ARPC__MSG_IDEMPOTENT = 1u << 0,
};

/*
 * The frames of a stream, as the rpc layer sends them (send_stream) and a session raises
 * them (on_stream).  The arpc__msg fields each one uses:
 *   OPEN        client to server: id, method, timeout_ns, md (request metadata).  No payload.
 *   MESSAGE     either way: id, payload (one message).  md: the server's initial metadata,
 *               on its first MESSAGE only (gRPC: the response HEADERS; native: the METADATA
 *               flag), count 0 otherwise.
 *   HALF_CLOSE  client to server: id.  The client sends no more messages.
 *   END         server to client: id, status, md (trailing metadata; initial metadata too
 *               when no MESSAGE went before), payload (an application error's message).
 *               Ends the stream.  A client's cancel is send_cancel / on_cancel, as for a
 *               unary request.
 *   CREDIT      the flow-control window (docs/streams.md).  Sent by the rpc layer: its
 *               application consumed payload_len more bytes of stream id's messages (native
 *               sends a WINDOW frame once enough has added up; gRPC tells nghttp2, which
 *               sends WINDOW_UPDATE).  Raised by a session: the rpc layer may queue
 *               payload_len more bytes of messages on stream id (native: the peer's WINDOW;
 *               gRPC: bytes nghttp2 took out of the session's held output for that stream).
 *               Each side starts with the peer's announced stream_window as its credit.
 */
typedef enum arpc__stream_frame {
    ARPC__STREAM_OPEN = 1,
    ARPC__STREAM_MESSAGE,
    ARPC__STREAM_HALF_CLOSE,
    ARPC__STREAM_END,
    ARPC__STREAM_CREDIT,
} arpc__stream_frame;

/*
 * A metadata list as every protocol passes it: `count` entries packed in data[0, len), each
 * key_len (u16 LE), value_len (u16 LE), key bytes, value bytes (src/proto/metadata.h reads
 * and writes it).  A view: valid while whatever holds the bytes is.
 */
typedef struct arpc__md {
    const uint8_t *data;
    uint32_t len;
    uint32_t count;
} arpc__md;

/*
 * One message, to encode or as decoded: the call object carries these fields, not bytes.
 * Every pointer is a view, valid during the call that passes it.
 */
typedef struct arpc__msg {
    uint64_t id;        /* the request's id on this connection (> 0) */
    const char *method; /* request: the method name; not NUL-terminated */
    size_t method_len;
    int32_t status;     /* response: 0, an arpc_err code or an application code */
    int64_t timeout_ns; /* request: time left when sent; 0: no deadline */
    uint32_t flags;     /* request: ARPC__MSG_* */
    arpc__md md;        /* count 0: none */
    const void *payload;
    size_t payload_len;
} arpc__msg;

/* What one side accepts; announced to the peer where the protocol can (native settings). */
typedef struct arpc__proto_limits {
    uint32_t max_message;   /* the largest message received, on the wire (0: no limit) */
    uint32_t max_in_flight; /* server: requests one connection may have running (0: none) */
    bool metadata;          /* messages may carry metadata to us */
    bool streams;           /* we read stream frames (native: the STREAMS setting) */
    uint32_t stream_window; /* bytes of messages a stream may send us before our CREDIT */
} arpc__proto_limits;

typedef struct arpc__proto_session arpc__proto_session;
typedef struct arpc__proto_ops arpc__proto_ops;

/*
 * The events a session raises while it is fed; the rpc layer implements them.  `owner` is
 * the pointer given to create.  An int-returning event returns 0, or a negative error that
 * ends the feed and closes the connection with it.  Any event may be NULL where it cannot
 * occur on that side (a client gets no requests: the session treats one as a protocol
 * error).
 */
typedef struct arpc__proto_events {
    /* Server: a complete request.  Its views are valid during the call only. */
    int (*on_request)(void *owner, const arpc__msg *msg);
    /* Client: a complete answer to request `msg->id`. */
    int (*on_response)(void *owner, const arpc__msg *msg);
    /* A request (server) or an answer (client) for `id` that fails on its own, while the
     * connection lives on: `err` is ARPC_ETOOBIG (over max_message; the session skips its
     * body), ARPC_EMETADATA (its metadata over ARPC_METADATA_MAX_BYTES) or ARPC_EINVAL (an
     * entry that breaks the metadata rules). */
    int (*on_refused)(void *owner, uint64_t id, int err);
    /* Client: the PING `id` was answered; `peer` holds the limits it announced, or is NULL
     * when it announced none. */
    void (*on_pong)(void *owner, uint64_t id, const arpc__proto_limits *peer);
    /* The peer pinged us; the session has answered it already. */
    void (*on_ping)(void *owner);
    /* Server: the client announced its limits. */
    void (*on_peer_limits)(void *owner, const arpc__proto_limits *peer);
    /* Client: the server goes away; requests above `last_id` will not be answered (they
     * never ran).  `reason`: ARPC_ESHUTDOWN, ARPC_ETOOMANYCONNS, ... */
    void (*on_goaway)(void *owner, uint64_t last_id, int reason);
    /* Server: the client canceled request `id` (HTTP/2 RST_STREAM). */
    void (*on_cancel)(void *owner, uint64_t id);
    /* Server: the session ended or refused request (stream) `id` by itself because the peer
     * broke a rule that costs that request only (an arpc__proto_fault); it has answered it
     * already.  The rpc layer counts and logs it. */
    void (*on_stream_fault)(void *owner, uint64_t id, int fault);
    /* ARPC__PROTO_STREAMS: a stream frame (arpc__stream_frame) for stream `msg->id`. */
    int (*on_stream)(void *owner, arpc__stream_frame frame, const arpc__msg *msg);
    /* Server, for a protocol whose wire does not say whether a call is a stream (gRPC): is
     * `method` registered as a stream?  Asked once per request, when its headers arrive: a
     * stream is then raised as on_stream(OPEN) at once, a unary request as on_request when
     * it is complete. */
    bool (*is_stream_method)(void *owner, const char *method, size_t method_len);
} arpc__proto_events;

/* What a request broke (on_stream_fault). */
enum arpc__proto_fault {
    ARPC__PROTO_FAULT_HEADERS_TOO_BIG = 1, /* its header block is over the announced limit */
    ARPC__PROTO_FAULT_STREAM_TIMEOUT,      /* it did not arrive in time (expire) */
    ARPC__PROTO_FAULT_REFUSED_STREAM,      /* refused unseen: the connection's output is full */
};

/* Everything a session is created with. */
typedef struct arpc__proto_config {
    arpc__proto_side side;
    arpc__proto_limits limits; /* ours */
    const arpc__proto_events *events;
    void *owner;
    /* Input waits (the session stops before its next message and reports what it consumed)
     * while *stop is true (the connection closed) or the output given to feed holds
     * out_limit bytes or more (0: no bound; conn.c's read pause).  Data, not a callback:
     * it is checked before every message. */
    const bool *stop;
    size_t out_limit;
    /* Client, for a protocol without a ping of its own (Thrift): the method its send_ping
     * calls as the probe (arpc_channel_opts.probe_method), or NULL for its default. */
    const char *probe_method;
} arpc__proto_config;

/* True when a session must not decode its next message (arpc__proto_config.stop and
 * out_limit).  Inline: every protocol asks before every message. */
static inline bool arpc__proto_input_waits(const arpc__proto_config *cfg, const arpc_buf *out)
{
    return *cfg->stop || (cfg->out_limit != 0 && out->len >= cfg->out_limit);
}

/* The part of every session the rpc layer reads; a protocol's session struct begins with it. */
struct arpc__proto_session {
    const arpc__proto_ops *ops;
    /* Messages received, counting an oversized one when it begins: a frame-arrival time
     * limit restarts with each. */
    uint64_t messages_in;
    /* Why the last feed failed, for the log line that closes the connection (text the
     * session owns, valid until its next feed or destroy), or NULL. */
    const char *close_reason;
};

/* The result of a detector. */
enum { ARPC__DETECT_NO = -1, ARPC__DETECT_MORE = 0, ARPC__DETECT_YES = 1 };

struct arpc__proto_ops {
    const char *name;
    /* The name a client offers in TLS's ALPN ("h2" for gRPC); NULL: none.  A server
     * detects the protocol on the first bytes either way. */
    const char *alpn;
    unsigned caps; /* ARPC__PROTO_* */
    /* The most bytes a message takes on the wire beyond its method, its metadata (in memory
     * form) and its payload: when those plus this fit a limit, the message does, without
     * asking wire_size. */
    uint32_t overhead;
    /* Server: bytes `detect` needs at most to decide (the first bytes are held until every
     * registered protocol has decided). */
    size_t detect_len;
    /* Server: judges a new connection's first `len` bytes: ARPC__DETECT_YES (this protocol),
     * _NO, or _MORE (needs more, only while len < detect_len).  Thread: any. */
    int (*detect)(const uint8_t *data, size_t len);
    /* @return 0 and *out, or ARPC_ENOMEM. */
    int (*create)(const arpc__proto_config *cfg, arpc__proto_session **out);
    void (*destroy)(arpc__proto_session *s);
    /*
     * Decodes what it can of data[0, len), raising events, writing what the protocol answers
     * by itself (PONGs, HTTP/2 SETTINGS ACKs) to `out`.
     * @return bytes consumed (the rest, an incomplete message, is offered again with more
     *         bytes behind it); or a negative error that closes the connection after a last
     *         write of `out` (ARPC_EFRAME, ARPC_EVERSION, ARPC_ETOOBIG: protocol errors;
     *         ARPC_EOVERLOAD: the peer flooded frames over their budget; both logged, with
     *         close_reason, and counted).
     */
    int64_t (*feed)(arpc__proto_session *s, const uint8_t *data, size_t len, arpc_buf *out);
    /* True while the session is inside a message it consumed part of (an oversized body it
     * skips).  Bytes the caller still holds count separately. */
    bool (*mid_message)(const arpc__proto_session *s);
    /* The size `msg` takes on the wire, to check it against the peer's max_message (see
     * arpc__proto_fits). */
    uint64_t (*wire_size)(const arpc__msg *msg, bool request);
    /* Encoders: append one message to `out`.  @return 0, ARPC_ENOMEM or ARPC_EINVAL (`out`
     * unchanged).  The peer's limits are the caller's to check (wire_size). */
    int (*send_request)(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg);
    int (*send_response)(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg);
    /* ARPC__PROTO_PING: a PING with id `id`; `announce`: carry our limits too (until the
     * peer's have arrived).  ARPC_EAGAIN: no PING can go now, and nothing was written or is
     * outstanding; the caller asks again an interval later.  An in-order protocol says so
     * while answers the caller waits for are in flight (a PING would wait behind them:
     * their deadlines stand in), and on a side that cannot ping (a Thrift server). */
    int (*send_ping)(arpc__proto_session *s, arpc_buf *out, uint64_t id, bool announce);
    /* ARPC__PROTO_GOAWAY: no request above `last_id` will be answered. */
    int (*send_goaway)(arpc__proto_session *s, arpc_buf *out, uint64_t last_id, int reason);
    /* Optional: tells the server to stop working on request `id` (HTTP/2 RST_STREAM). */
    int (*send_cancel)(arpc__proto_session *s, arpc_buf *out, uint64_t id);
    /* ARPC__PROTO_STREAMS: one stream frame (see arpc__stream_frame for the fields each
     * reads).  @return 0, ARPC_ENOMEM or ARPC_EINVAL (`out` unchanged). */
    int (*send_stream)(arpc__proto_session *s, arpc_buf *out, arpc__stream_frame frame,
                       const arpc__msg *msg);
    /* Optional, server: what to write to a connection refused before its first byte (over
     * the connection cap), so its client learns why.  @return bytes written to buf[cap]. */
    size_t (*refusal)(uint8_t *buf, size_t cap, int reason);
    /* Optional, server, for a multiplexed protocol whose requests arrive side by side: ends
     * the requests still incomplete past their deadline, or `stall_ns` (> 0) after they
     * began, raising on_stream_fault(STREAM_TIMEOUT) for each (a stream that never ends
     * costs that stream only; a native frame that stalls holds its whole connection, which
     * the server's frame_timeout_ms closes).  Called by the server's periodic sweep.
     * @return 0 or ARPC_ENOMEM (close the connection). */
    int (*expire)(arpc__proto_session *s, arpc_buf *out, int64_t now_ns, int64_t stall_ns);
};

/* True if `msg` takes at most `limit` bytes on the wire (0: no limit).  Inline: the sum
 * decides almost every message without the indirect wire_size call. */
static inline bool arpc__proto_fits(const arpc__proto_ops *ops, const arpc__msg *msg, bool request,
                                    uint64_t limit)
{
    uint64_t bound =
        (uint64_t)ops->overhead + (request ? msg->method_len : 0) + msg->md.len + msg->payload_len;
    return limit == 0 || bound <= limit || ops->wire_size(msg, request) <= limit;
}

/* The longest method name a call may have, on every protocol. */
#define ARPC__PROTO_MAX_METHOD 255

/* The default limit on one message received (the max_frame_size options), and the smallest
 * limit accepted: every protocol can carry a request with the longest method name under it
 * (the native header is 32 bytes). */
#define ARPC__PROTO_DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)
#define ARPC__PROTO_MIN_MAX_MESSAGE     (32u + ARPC__PROTO_MAX_METHOD)

/* The native protocol (src/proto/native/, docs/protocol.md). */
extern const arpc__proto_ops arpc__proto_native;

/* gRPC over HTTP/2 (src/proto/grpc/grpc_proto.c, docs/grpc.md section 7); only in builds
 * with nghttp2. */
extern const arpc__proto_ops arpc__proto_grpc;

/* Thrift's framed binary protocol (src/proto/thrift/, docs/thrift.md). */
extern const arpc__proto_ops arpc__proto_thrift;

/*
 * The protocols arpc speaks (proto/registry.c): `id` is an arpc_protocol value
 * (include/arpc/client.h).  @return its ops, or NULL for an unknown id.
 * Thread: any.
 */
const arpc__proto_ops *arpc__proto_by_id(int id);

/* The arpc_protocol value of `ops`, or -1 for one the registry does not list (a test's).
 * Thread: any. */
int arpc__proto_id(const arpc__proto_ops *ops);

/* The protocols a server detects on a new connection's first bytes, in the order tried.
 * Thread: any. */
const arpc__proto_ops *const *arpc__proto_detectable(unsigned *count);

#endif

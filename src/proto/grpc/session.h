/*
 * gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md) as a pure state machine on nghttp2:
 * one arpc__grpc_session per connection, server or client side.  Bytes come in through
 * arpc__grpc_session_feed (nghttp2_session_mem_recv) and go out through
 * arpc__grpc_session_flush (nghttp2_session_mem_send, appended to the caller's arpc_buf).
 * No threads, no sockets, no blocking, no clock of its own beyond arpc__now_ns() for a
 * request's deadline.  What happens is reported through one event callback, synchronously,
 * from inside feed or flush.  Every allocation (nghttp2's included, through nghttp2_mem)
 * goes through src/base/alloc.h.
 *
 * Stream lifecycle, server side: EV_REQUEST (headers valid; the session answered invalid
 * ones itself, Trailers-Only or HTTP 415, and reports nothing), then EV_MESSAGE per
 * message, EV_HALF_CLOSE at the client's END_STREAM, and exactly one EV_CLOSE once the
 * stream is gone (answered, reset by the peer, or answered by the session itself because a
 * message broke a rule after EV_REQUEST).  The answer: send_headers (optional), send_message,
 * send_status.  Client side: open_stream, then EV_HEADERS, EV_MESSAGE, and exactly one
 * EV_CLOSE with the status.  After EV_CLOSE the stream id is dead for every call.
 * Streams (below, "streams"): the same events, with any number of messages each way, the
 * client's half_close, manual receive windows (consume) and EV_CREDIT for what is sent.
 *
 * Design notes:
 * - The event callback may submit (send_*, open_stream, cancel, ping, shutdown) but must not
 *   feed, flush or destroy: nghttp2 forbids re-entering mem_recv/mem_send from its callbacks.
 * - Errors that belong to one stream (over-limit message, compressed flag without an
 *   encoding, bad metadata, an oversized header list) cost that stream only.  feed returns
 *   an error only when the connection must go: a protocol violation (nghttp2 then queues a
 *   GOAWAY that a last flush may still deliver) or ARPC_ENOMEM (nghttp2's state may be
 *   half-updated: close the connection, do not feed again).
 * - The response data provider defers (NGHTTP2_ERR_DEFERRED) while a stream's queued output
 *   is empty and its status not yet set; send_message/send_status resume it, so a handler
 *   answers whenever it is ready.
 *
 * Unless a comment says otherwise: Thread: the connection's loop thread (one session is
 * used by one thread at a time).  Suspends: no.
 */
#ifndef ARPC_PROTO_GRPC_SESSION_H
#define ARPC_PROTO_GRPC_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/buf.h>

typedef struct arpc__grpc_session arpc__grpc_session;

/* ---- HTTP/2 client preface detector (server side, a connection's first bytes) ---------- */

#define ARPC__H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define ARPC__H2_PREFACE_LEN 24

enum arpc__h2_detect {
    ARPC__H2_NO = -1,       /* the bytes are not an HTTP/2 client preface */
    ARPC__H2_NEED_MORE = 0, /* a proper prefix of it (or nothing yet) */
    ARPC__H2_YES = 1        /* the whole preface is there */
};

/* Classifies a connection's first `len` bytes.  @return an arpc__h2_detect value.
 * Thread: any.  Suspends: no. */
int arpc__h2_preface_detect(const void *data, size_t len);

/* ---- metadata and events ---------------------------------------------------------------- */

/* One custom metadata entry.  Values of "-bin" keys are the decoded bytes here and are
 * base64-encoded on the wire by the session. */
typedef struct arpc__grpc_md {
    const char *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} arpc__grpc_md;

enum arpc__grpc_event_type {
    ARPC__GRPC_EV_REQUEST = 1, /* server: path, md, deadline_ns of a new stream */
    ARPC__GRPC_EV_HEADERS,     /* client: the response's initial metadata (md) */
    ARPC__GRPC_EV_MESSAGE,     /* both: one complete message (data, len) */
    ARPC__GRPC_EV_HALF_CLOSE,  /* server: the client's END_STREAM, after its last message */
    ARPC__GRPC_EV_CLOSE,       /* both: the stream is gone; see the fields below */
    ARPC__GRPC_EV_PING_ACK,    /* both: the ACK of a PING sent with arpc__grpc_session_ping */
    ARPC__GRPC_EV_GOAWAY,      /* both: the peer's GOAWAY (last_stream_id, error_code) */
    ARPC__GRPC_EV_FAULT,       /* server: a stream the session ended for a broken rule (fault) */
    ARPC__GRPC_EV_CREDIT       /* both, streams only: nghttp2 took `len` message bytes of the
                                * stream's queued output toward the wire (reported from flush
                                * and feed, after nghttp2's send loop) */
};

/* What a server stream broke (EV_FAULT); the session answered it already and the
 * connection lives on (docs/grpc.md, "Hostile peers"). */
enum arpc__grpc_fault {
    ARPC__GRPC_FAULT_HEADERS_TOO_BIG = 1, /* header list over max_header_list: RESOURCE_EXHAUSTED */
    ARPC__GRPC_FAULT_STREAM_TIMEOUT,      /* its request did not arrive in time (expire) */
    ARPC__GRPC_FAULT_REFUSED_STREAM       /* refused while refuse_streams is on: REFUSED_STREAM */
};

typedef struct arpc__grpc_event {
    int type;
    int32_t stream_id; /* 0 for PING_ACK and GOAWAY */
    void *stream_user; /* the pointer given to open_stream or set_stream_user */
    /* REQUEST */
    const char *path; /* "/pkg.Service/Method", not NUL-terminated */
    size_t path_len;
    int64_t deadline_ns; /* arpc__now_ns() clock; ARPC__NO_DEADLINE without grpc-timeout */
    /* REQUEST, HEADERS; CLOSE on the client: trailing metadata */
    const arpc__grpc_md *md;
    size_t md_count;
    /* MESSAGE; CREDIT: len only */
    const uint8_t *data; /* valid during the callback only */
    size_t len;
    /* CLOSE.  Client: the call's result; grpc_status from the trailers (or Trailers-Only,
     * or mapped from the HTTP status or the reset), status = arpc__grpc_status_to_arpc of
     * it, message the decoded grpc-message.  Server: grpc_status is what was sent, and
     * canceled is true if the stream ended before the handler's status went out (a reset
     * from the client, or the session's own answer to a broken rule). */
    int grpc_status;
    int status;
    const char *message;
    size_t message_len;
    bool canceled;
    bool refused; /* client: the server never processed the stream (REFUSED_STREAM, above
                   * a GOAWAY's last stream id, or a Trailers-Only CANCELLED after a GOAWAY,
                   * gRPC core's answer to streams that reach a server shutting down):
                   * safe to retry elsewhere */
    /* Client: the status is the server's own grpc-status (trailers or Trailers-Only). */
    bool answered;
    /* Client: a Trailers-Only CANCELLED before any GOAWAY, which gRPC core also answers to
     * streams that reach it after its shutdown began but before its GOAWAY went out
     * (grpc_proto.c, "Held CANCELLED"). */
    bool suspect;
    /* PING_ACK */
    uint64_t ping_data;
    /* GOAWAY */
    int32_t last_stream_id;
    uint32_t error_code;
    /* FAULT: an arpc__grpc_fault */
    int fault;
} arpc__grpc_event;

typedef void (*arpc__grpc_event_fn)(void *user, const arpc__grpc_event *ev);

/* Limits; 0 in any field means its default. */
typedef struct arpc__grpc_session_opts {
    uint32_t max_recv_msg;           /* a message's payload limit (4 MiB) */
    uint32_t max_concurrent_streams; /* server: SETTINGS_MAX_CONCURRENT_STREAMS (256) */
    uint32_t max_header_list;        /* a header block's size, RFC 9113 counting (16 KiB) */
    uint32_t stream_window;          /* SETTINGS_INITIAL_WINDOW_SIZE (4 MiB); also the half
                                      * window a message over it waits for (grant ahead) */
    uint32_t conn_window;            /* the connection's receive window (16 MiB) */
    /* Server: once this many answers are queued, feed stops decoding before the next request's
     * headers and appends what is queued to its output, then goes on (0, the default: the
     * answers go out when the bytes given to feed are decoded).  The answers then reach the
     * connection's buffer while the batch is still being decoded, so an early write (the
     * server's write_early_answers) carries them. */
    uint32_t early_answers;
} arpc__grpc_session_opts;

/*
 * Creates a session and queues its SETTINGS (and the window update); the first flush sends
 * them (a client's first flush the preface too).  A server session expects the client's
 * preface as the first bytes fed.
 * @param opts  may be NULL (defaults).
 * @param cb    called for every event with `user`; never NULL.
 * @return 0 or ARPC_ENOMEM (nothing allocated); *out owned by the caller (destroy).
 */
int arpc__grpc_session_server_new(const arpc__grpc_session_opts *opts, arpc__grpc_event_fn cb,
                                  void *user, arpc__grpc_session **out);
int arpc__grpc_session_client_new(const arpc__grpc_session_opts *opts, arpc__grpc_event_fn cb,
                                  void *user, arpc__grpc_session **out);

/* Frees the session and every stream it holds, reporting nothing.  NULL is a no-op. */
void arpc__grpc_session_destroy(arpc__grpc_session *s);

/*
 * Feeds `len` received bytes; events are reported before it returns.
 * @return 0; ARPC_EFRAME (the peer broke HTTP/2: close the connection after a last flush);
 *         ARPC_EOVERLOAD (server: the peer flooded frames over their budget, GOAWAY
 *         (ENHANCE_YOUR_CALM) queued: close after a last flush); ARPC_ENOMEM (close the
 *         connection).
 */
int arpc__grpc_session_feed(arpc__grpc_session *s, const void *data, size_t len);

/* feed, with what the session sends meanwhile (answers submitted from events, ACKs, window
 * updates) appended to `out` instead of being kept for the next flush: the caller need not
 * flush after it.  Same returns as feed; `out` may hold part of the output on ARPC_ENOMEM. */
int arpc__grpc_session_feed_into(arpc__grpc_session *s, const void *data, size_t len,
                                 arpc_buf *out);

/*
 * Appends everything the session has to send to `out` (may report EV_CLOSE for streams
 * whose last frame went out).
 * @return 0 or ARPC_ENOMEM (out may hold part of it; close the connection).
 */
int arpc__grpc_session_flush(arpc__grpc_session *s, arpc_buf *out);

/* True once the session neither reads nor writes any more (after a GOAWAY both ways, or a
 * fatal error): the caller closes the connection after its last flush. */
bool arpc__grpc_session_done(const arpc__grpc_session *s);

/* Sets the pointer reported with the stream's events (server side, usually on EV_REQUEST).
 * @return 0 or ARPC_EINVAL (no such stream). */
int arpc__grpc_session_set_stream_user(arpc__grpc_session *s, int32_t stream_id, void *user);

/* ---- server answers --------------------------------------------------------------------- */

/* Queues the response headers (:status 200, content-type application/grpc, md).
 * Optional: send_message and send_status send them when they were not.
 * @return 0; ARPC_EINVAL (no such open stream, headers already sent, a bad md entry);
 *         ARPC_ENOMEM. */
int arpc__grpc_session_send_headers(arpc__grpc_session *s, int32_t stream_id,
                                    const arpc__grpc_md *md, size_t md_count);

/* Queues one message (copied); also on a client stream (desc->stream) not half-closed.
 * @return 0; ARPC_EINVAL (no such stream, status already set, len > UINT32_MAX);
 * ARPC_ENOMEM. */
int arpc__grpc_session_send_message(arpc__grpc_session *s, int32_t stream_id, const void *data,
                                    size_t len);

/*
 * Ends the stream with trailers: grpc-status `grpc_status`, grpc-message `message`
 * (percent-encoded here; may be NULL) and trailing md.  Without headers or messages sent,
 * this is a Trailers-Only response.  @return 0; ARPC_EINVAL (no such stream, status
 * already set, a bad md entry); ARPC_ENOMEM.
 */
int arpc__grpc_session_send_status(arpc__grpc_session *s, int32_t stream_id, int grpc_status,
                                   const char *message, size_t message_len, const arpc__grpc_md *md,
                                   size_t md_count);

/* Graceful shutdown, step 1: a GOAWAY with the largest stream id (new streams still
 * accepted for a round trip).  @return 0 or ARPC_ENOMEM. */
int arpc__grpc_session_shutdown_notice(arpc__grpc_session *s);

/* Graceful shutdown, step 2 (or the client's goodbye): GOAWAY(NO_ERROR) with the last
 * stream id processed; streams above it are refused.  @return 0 or ARPC_ENOMEM. */
int arpc__grpc_session_goaway(arpc__grpc_session *s);

/* ---- client calls ----------------------------------------------------------------------- */

/* What a client stream sends: a unary request. */
typedef struct arpc__grpc_call_desc {
    const char *path; /* "/pkg.Service/Method" */
    size_t path_len;
    const char *authority; /* :authority; NULL for "localhost" */
    const arpc__grpc_md *md;
    size_t md_count;
    int64_t timeout_ns; /* < 0: no grpc-timeout */
    const void *msg;    /* the one message (copied); NULL with msg_len 0 sends an empty one */
    size_t msg_len;
    /* A stream (arpc__grpc_session_stream): HEADERS only, no message and no END_STREAM;
     * send_message and half_close follow.  msg is ignored. */
    bool stream;
} arpc__grpc_call_desc;

/*
 * Opens a stream carrying one message and END_STREAM.  Streams beyond the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS wait inside nghttp2 for a free slot.
 * @param stream_id  on success the new stream's id (EV_CLOSE comes exactly once for it).
 * @return 0; ARPC_EINVAL (a bad md entry or path); ARPC_ESHUTDOWN (a GOAWAY was received or
 *         sent, or stream ids ran out); ARPC_ENOMEM.
 */
int arpc__grpc_session_open_stream(arpc__grpc_session *s, const arpc__grpc_call_desc *desc,
                                   void *stream_user, int32_t *stream_id);

/* ---- streams (docs/grpc.md, "Streams") ------------------------------------------------ *
 *
 * A stream is a client stream opened with desc->stream, or a server stream made one with
 * arpc__grpc_session_stream on EV_REQUEST.  Its received DATA is not granted back to the
 * peer by itself: the bytes of each delivered message's 5-byte prefix are, at once; its
 * payload bytes only when the application says it consumed them (consume).  What it sends
 * is reported as EV_CREDIT as nghttp2 takes it out of the stream (payload bytes; prefixes
 * are not counted), so a writer that waits for credit holds at most its window in the
 * session.  Bytes of a stream that ended, failed or was reset are granted back at once. */

/* Server: makes stream `stream_id` (on EV_REQUEST) a stream as above; it is no longer an
 * incomplete request for expire (a stream may idle).  @return 0 or ARPC_EINVAL. */
int arpc__grpc_session_stream(arpc__grpc_session *s, int32_t stream_id);

/* Both: the application consumed `n` payload bytes of the stream's messages; WINDOW_UPDATE
 * follows once half a window has added up (nghttp2).  A gone stream is ignored.
 * @return 0 or ARPC_ENOMEM. */
int arpc__grpc_session_consume(arpc__grpc_session *s, int32_t stream_id, size_t n);

/* Client stream: no more messages (END_STREAM after the queued ones).  @return 0, or
 * ARPC_EINVAL (no such open stream, not a stream, already half-closed); ARPC_ENOMEM. */
int arpc__grpc_session_half_close(arpc__grpc_session *s, int32_t stream_id);

/* Resets a stream with RST_STREAM(CANCEL) (either side); its EV_CLOSE follows from a flush
 * with canceled set.  @return 0 or ARPC_EINVAL (no such open stream); ARPC_ENOMEM. */
int arpc__grpc_session_cancel(arpc__grpc_session *s, int32_t stream_id);

/* ---- PINGs, for heartbeats ------------------------------------------------------------- */

/* Queues a PING carrying `data`; its ACK is reported as EV_PING_ACK.  Counts against
 * pings_without_data.  @return 0 or ARPC_ENOMEM. */
int arpc__grpc_session_ping(arpc__grpc_session *s, uint64_t data);

/* PINGs sent since the last HEADERS or DATA frame sent or received on the connection.
 * grpcio's server punishes the 5th (docs/grpc-interop.md section 4): a heartbeat keeps
 * this below 3. */
uint32_t arpc__grpc_session_pings_without_data(const arpc__grpc_session *s);

/* Streams open (not yet EV_CLOSE'd) on the session. */
size_t arpc__grpc_session_stream_count(const arpc__grpc_session *s);

/* ---- hostile peers (server side; docs/grpc.md, "Hostile peers") ------------------------- */

/*
 * Ends the server streams whose request message has not arrived completely (a stream that
 * never ends): past the request's grpc-timeout, with DEADLINE_EXCEEDED; `stall_ns` (> 0)
 * or longer after its HEADERS began, with RST_STREAM(CANCEL).  Each is reported as
 * EV_FAULT (STREAM_TIMEOUT) and, if the handler saw EV_REQUEST, EV_CLOSE with canceled set.
 * Cheap when no request is incomplete.  @return 0 or ARPC_ENOMEM.
 */
int arpc__grpc_session_expire(arpc__grpc_session *s, int64_t now_ns, int64_t stall_ns);

/* While `on`, a server session refuses new streams with RST_STREAM(REFUSED_STREAM) (never
 * run: the client may retry them), reporting each as EV_FAULT (REFUSED_STREAM); control
 * frames and the streams open already go on.  The caller turns it on while the
 * connection's unwritten output, with held_bytes, is over its bound. */
void arpc__grpc_session_refuse_streams(arpc__grpc_session *s, bool on);

/* Answer bytes queued in the streams and not yet taken by nghttp2: what HTTP/2 flow control
 * holds back from a client that does not open its windows. */
size_t arpc__grpc_session_held_bytes(const arpc__grpc_session *s);

/* Why feed failed, for the log line that closes the connection ("GOAWAY(PROTOCOL_ERROR):
 * nghttp2's reason", "PING flood: GOAWAY(ENHANCE_YOUR_CALM)"), or NULL.  Valid until the
 * next feed or destroy. */
const char *arpc__grpc_session_error_text(const arpc__grpc_session *s);

#endif

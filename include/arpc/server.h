/**
 * The arpc server.  It listens on every loop of a runtime (SO_REUSEPORT) and
 * runs each request in its own coroutine, so a handler may suspend, for
 * instance to call other arpc services, without holding up anything else.
 */
#ifndef ARPC_SERVER_H
#define ARPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/arena.h>
#include <arpc/buf.h>
#include <arpc/export.h>
#include <arpc/metadata.h>
#include <arpc/runtime.h>
#include <arpc/tls.h>

ARPC_BEGIN_DECLS

typedef struct arpc_server arpc_server;

/**
 * One request being served; valid from the handler's start until its answer
 * is sent (or, canceled, would have been: arpc_request_is_canceled()).  Owned
 * by the server.  The arpc_request_* accessors below are called by whoever
 * holds the request: the handler's coroutine, or, for a deferred request, the
 * one thread that will answer it; none suspends.
 */
typedef struct arpc_request arpc_request;

/**
 * A method handler.  It runs in its own coroutine on the loop of the
 * connection that carried the request.  It returns:
 *  - 0: success; the answer is what the handler wrote to arpc_request_response();
 *  - a positive application error code: the client's call returns that code,
 *    with the text given to arpc_request_set_error() as the answer;
 *  - a negative arpc_err code (e.g. ARPC_EINTERNAL), passed to the client as is;
 *  - ARPC_DEFERRED: the handler keeps `req` and answers later, from any thread,
 *    with arpc_request_respond().
 */
typedef int (*arpc_handler_fn)(arpc_request *req, void *user_data);

/** Returned by a handler that will answer later with arpc_request_respond(). */
#define ARPC_DEFERRED 1000000000

typedef struct arpc_server_opts {
    /** Requests in progress on the whole server; one more is answered at once
     *  with ARPC_EOVERLOAD.  Default 10000: each request in progress holds a
     *  coroutine stack, which is two memory mappings, and Linux's default
     *  vm.max_map_count (65530) caps a process near 30000 of them. */
    uint32_t max_in_flight;
    /** Requests in progress on one connection; one more is answered at once with
     *  ARPC_EOVERLOAD, so a client that holds many slow requests takes at most
     *  this share of max_in_flight and cannot lock the other clients out.  It
     *  is announced to the client when the connection starts (the settings of
     *  docs/protocol.md section 4), and an arpc channel keeps at most this many
     *  calls in flight on the connection, queueing the rest locally (within
     *  their deadlines) instead of having them refused.  Default 2500, a quarter
     *  of the default max_in_flight: one connection at its share leaves three
     *  quarters of the server to the others, and it is far above a pipelined
     *  client's depth (64 in the benchmarks).  0 = no per-connection limit. */
    uint32_t max_in_flight_per_connection;
    /** Largest frame accepted (header + method + payload).  Default 16 MiB.  It
     *  is announced to the client, whose calls over it then fail locally with
     *  ARPC_ETOOBIG; a request over it that arrives anyway (from a client that
     *  did not know it) is answered ARPC_ETOOBIG and its body skipped, and the
     *  connection lives on.  An answer over this limit, or over the client's
     *  announced one, is replaced by an ARPC_ETOOBIG answer to that request. */
    uint32_t max_frame_size;
    /** Connections open at once; over it a new connection is sent GOAWAY
     *  (ARPC_ETOOMANYCONNS) and closed at once, and counted in
     *  refused_connections.  Default: from RLIMIT_NOFILE's soft limit at
     *  arpc_server_opts_init(), leaving an eighth of it (at least 16, at most
     *  1024 descriptors) to the rest of the process, so a flood of connections
     *  meets the cap before the process runs out of descriptors (1024 -> 896;
     *  no limit -> 1048576).  0 = no limit. */
    uint32_t max_connections;
    /** A connection with nothing received, nothing written and no request in
     *  progress for this long is closed (idle_timeouts).  Default 60000 (60 s);
     *  0 = never.  A channel's heartbeats (a PING every 500 ms of silence by
     *  default) keep its connections open. */
    int64_t idle_timeout_ms;
    /** A connection that has not sent one complete frame this long after it
     *  was accepted is closed (first_frame_timeouts): a flood of connections
     *  that never speak holds the cap for at most this long.  A channel sends
     *  its first PING at once.  Default 10000 (10 s); 0 = never. */
    int64_t first_frame_timeout_ms;
    /** A frame whose first byte arrived this long ago and which is still
     *  incomplete closes its connection (frame_timeouts): a peer that stalls
     *  in the middle of a frame holds its socket for at most this long.  Not
     *  counted while reading is paused (max_unwritten_bytes).  Default 30000
     *  (30 s: 16 MiB at 560 KB/s); 0 = never. */
    int64_t frame_timeout_ms;
    /** Unwritten output of one connection (answers its peer has not taken
     *  yet) at which the server stops reading from it and starts none of its
     *  requests (counted in read_pauses), until the peer has taken half of it.
     *  It only holds back new requests: an answer is never refused for its
     *  size, so one answer of max_frame_size always fits.  Default 4 MiB;
     *  0 = no limit (a client that never reads makes the server buffer every
     *  answer). */
    uint64_t max_unwritten_bytes;
    /** Answers are written once per loop iteration, all those ready in one
     *  write, except that a connection that has queued this many frames
     *  (answers, PONGs) since its last write writes them at once: on a
     *  pipelined connection the client then starts on the first answers of a
     *  burst while the server still runs the rest.  It costs a write per this
     *  many frames, which pays on a connection whose client waits for the
     *  batch and costs a CPU-bound server with several deep pipelines (both
     *  measured in bench/RESULTS.md).  Default 32; 0 = once per iteration. */
    uint32_t write_early_answers;
    /** Heartbeats toward clients: a connection with requests in progress or
     *  answers unwritten that has received nothing for this long is sent a
     *  PING (native PING or HTTP/2 PING; every client answers one), and one
     *  that then receives nothing for heartbeat_timeout_ms more is closed
     *  (heartbeat_closes): a frozen client (SIGSTOP: the kernel still ACKs)
     *  is noticed in about 1.5 s instead of holding its requests' answers
     *  until idle_timeout_ms, which never comes while requests run.  A
     *  connection with nothing outstanding is left to idle_timeout_ms.
     *  Default 500; 0 = no heartbeats. */
    int64_t heartbeat_interval_ms;
    /** See heartbeat_interval_ms.  Default 1000. */
    int64_t heartbeat_timeout_ms;
    /** Flow-control window of each stream (include/arpc/stream.h,
     *  docs/streams.md): bytes of messages a client may send one stream
     *  before its handler has read them.  Announced to the client
     *  (limits.stream_window).  Default 256 KiB; at least 64 KiB (ARPC_EINVAL
     *  below). */
    uint32_t stream_window_bytes;
    /** A TLS listener's connection is closed when its handshake has not
     *  completed this long after accept (counted in tls_handshake_timeouts).
     *  Default 10000; 0 = no limit of its own (first_frame_timeout_ms still
     *  applies). */
    int64_t tls_handshake_timeout_ms;
} arpc_server_opts;

/** TLS of a listener (arpc_server_listen_tls, docs/tls.md); arpc_server_tls_opts_init
 *  sets the defaults.  The files are read when listening starts and again by
 *  arpc_server_reload_tls(). */
typedef struct arpc_server_tls_opts {
    const char *cert_file; /**< PEM certificate chain, the server's first (required) */
    const char *key_file;  /**< PEM private key of that certificate (required) */
    /** NULL (default): no client certificate is asked for.  Else mutual TLS: a client
     *  must present a certificate that chains to a CA in this PEM file, or its
     *  handshake fails (its connection counted in tls_handshake_failures). */
    const char *client_ca_file;
    /** With client_ca_file: verify a certificate the client sends, but accept a
     *  client without one (a handler sees no peer subject then).  Default false. */
    bool client_cert_optional;
    int min_version; /**< ARPC_TLS_1_2 (default) or ARPC_TLS_1_3 */
    int max_version; /**< 0 (default): the newest, TLS 1.3 */
} arpc_server_tls_opts;

/** Counters of a server; a snapshot, each read atomically. */
typedef struct arpc_server_stats {
    uint64_t requests;           /**< requests received */
    uint64_t overloaded;         /**< answered ARPC_EOVERLOAD (server or connection limit) */
    uint64_t expired;            /**< not run: their deadline passed before they started */
    uint64_t unknown_method;     /**< answered ARPC_ENOMETHOD */
    uint64_t connections;        /**< connections open now */
    uint64_t refused_connections; /**< closed at once: over max_connections */
    uint64_t protocol_errors;     /**< connections closed for a malformed frame (including a
                                       request id that is 0 or not above the previous one) */
    uint64_t idle_timeouts;      /**< connections closed by idle_timeout_ms */
    uint64_t first_frame_timeouts; /**< closed by first_frame_timeout_ms: no frame yet */
    uint64_t frame_timeouts;       /**< closed by frame_timeout_ms: stalled inside a frame */
    uint64_t read_pauses;          /**< times a connection stopped reading: max_unwritten_bytes */
    uint64_t canceled; /**< requests canceled while they ran (arpc_request_is_canceled): their
                            client's cancel or their connection's close dropped the answer, or
                            their deadline passed and a bare ARPC_ETIMEDOUT replaced it; streams
                            too: ended under their handler by the client's cancel, the
                            connection's close or their deadline */
    /* Hostile and frozen peers (docs/grpc.md, "Hostile peers"). */
    uint64_t heartbeat_closes;  /**< connections closed: silent with work outstanding
                                     (heartbeat_interval_ms + heartbeat_timeout_ms) */
    uint64_t flood_closes;      /**< connections closed for a flood of frames (PING, SETTINGS,
                                     PRIORITY, CONTINUATION, empty DATA, RST_STREAM):
                                     GOAWAY(ENHANCE_YOUR_CALM) */
    uint64_t stream_timeouts;   /**< gRPC requests ended because they did not arrive whole:
                                     past grpc-timeout (DEADLINE_EXCEEDED) or frame_timeout_ms
                                     after their HEADERS (RST_STREAM(CANCEL)) */
    uint64_t refused_streams;   /**< gRPC streams refused (REFUSED_STREAM, never run) while
                                     the connection's answers, flow-controlled ones included,
                                     were over max_unwritten_bytes */
    uint64_t oversized_headers; /**< requests refused for their headers: metadata over
                                     ARPC_METADATA_MAX_BYTES (ARPC_EMETADATA) or an HTTP/2
                                     header list over SETTINGS_MAX_HEADER_LIST_SIZE */
    /* TLS listeners (docs/tls.md). */
    uint64_t tls_handshakes;         /**< handshakes completed */
    uint64_t tls_handshake_failures; /**< connections closed by a failed handshake (garbage,
                                          plaintext, an untrusted client certificate) */
    uint64_t tls_handshake_timeouts; /**< closed by tls_handshake_timeout_ms */
} arpc_server_stats;

/** Fills `opts` with defaults.  Thread: any. */
ARPC_EXPORT void arpc_server_opts_init(arpc_server_opts *opts);

/**
 * Creates a server on `rt` (which must outlive it).
 * @param opts  borrowed; NULL means defaults.
 * @param out   on success the server, owned by the caller (arpc_server_destroy()).
 * @return 0, ARPC_EINVAL or ARPC_ENOMEM.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_server_create(arpc_runtime *rt, const arpc_server_opts *opts,
                                   arpc_server **out);

/**
 * Registers `handler` for `method` (1..255 bytes).  Register every method before
 * arpc_server_listen(): the table is read without locks afterwards.
 * @return 0, ARPC_EINVAL (bad name, already listening, or a duplicate) or ARPC_ENOMEM.
 * Thread: any, before listening.  Suspends: no.
 */
ARPC_EXPORT int arpc_server_register(arpc_server *srv, const char *method,
                                     arpc_handler_fn handler, void *user_data);

/**
 * Starts listening on `address` ("HOST:PORT", "[::1]:PORT"; port 0 picks one)
 * on every loop of the runtime.
 * @return 0, ARPC_EBADADDR, ARPC_EADDRINUSE, ARPC_EINVAL (already listening),
 *         ARPC_ENOTCORO (a loop thread outside a coroutine: it waits for every
 *         loop) or -errno.
 * Thread: any; on a loop thread only in a coroutine.  Suspends: yes (briefly).
 */
ARPC_EXPORT int arpc_server_listen(arpc_server *srv, const char *address);

/** The port the server listens on (its first listener's: plaintext when it
 *  has both), or a negative error.  Thread: any. */
ARPC_EXPORT int arpc_server_port(const arpc_server *srv);

/** Fills `opts` with defaults (no files).  Thread: any. */
ARPC_EXPORT void arpc_server_tls_opts_init(arpc_server_tls_opts *opts);

/**
 * Starts a TLS listener on `address`, like arpc_server_listen(): every
 * protocol the server speaks is detected on the first bytes inside TLS, and
 * ALPN agrees on "h2" (gRPC) or "arpc" (native) when the client offers one.
 * A server has at most one plaintext and one TLS listener, in either order.
 * @param tls borrowed; the file names are copied (arpc_server_reload_tls()
 *            reads them again).
 * @return 0, ARPC_EINVAL (already a TLS listener, or a file that does not
 *         load or a key that does not match: the reason is logged),
 *         ARPC_EBADADDR, ARPC_EADDRINUSE, ARPC_ENOTCORO, ARPC_ENOMEM, -errno.
 * Thread: any; on a loop thread only in a coroutine.  Suspends: yes (briefly).
 */
ARPC_EXPORT int arpc_server_listen_tls(arpc_server *srv, const char *address,
                                       const arpc_server_tls_opts *tls);

/** The TLS listener's port, or ARPC_EINVAL without one.  Thread: any. */
ARPC_EXPORT int arpc_server_tls_port(const arpc_server *srv);

/**
 * Reads the TLS listener's certificate, key and client CA files again; new
 * connections use them, open ones keep what they negotiated.  On failure the
 * certificates in use stay (the reason is logged).
 * @return 0, ARPC_EINVAL (no TLS listener, or files that do not load).
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_server_reload_tls(arpc_server *srv);

/**
 * Graceful shutdown: stops accepting connections, sends GOAWAY on every
 * connection, lets the requests in progress finish for up to
 * `drain_timeout_ms` (<= 0: no drain time), then closes every connection.
 * Requests that arrive after the GOAWAY are answered ARPC_ESHUTDOWN, so no
 * accepted request is lost silently.  A second call returns 0 at once.
 * Never allocates.
 * @return 0; ARPC_ETIMEDOUT if requests were still running at the drain
 *         deadline (their connections are closed anyway); ARPC_EINVAL (NULL);
 *         ARPC_ENOTCORO on a loop thread outside a coroutine, where the wait
 *         would stall the loop (nothing was done).
 * Thread: any; on a loop thread only in a coroutine (one of its own runtime's
 * loops then waits for the drain deadline if the caller is a handler).
 * Suspends: yes (blocks a plain thread).
 */
ARPC_EXPORT int arpc_server_shutdown(arpc_server *srv, int64_t drain_timeout_ms);

/**
 * Shuts the server down (with no drain time if it still runs), waits for the
 * handlers still running (a deferred request holds the server until
 * arpc_request_respond()) and frees it.  NULL is a no-op.  Never allocates.
 * On a loop thread outside a coroutine it returns at once and finishes in a
 * new coroutine of that loop (that loop's runtime waits for it in
 * arpc_runtime_destroy()); if no coroutine stack can be mapped it logs an
 * error and leaks the server rather than free it under its handlers.
 * Thread: any.  Suspends: yes (blocks a plain thread).
 */
ARPC_EXPORT void arpc_server_destroy(arpc_server *srv);

/** Reads the server's counters.  Thread: any.  Suspends: no. */
ARPC_EXPORT void arpc_server_get_stats(const arpc_server *srv, arpc_server_stats *out);

/** The request's payload; borrowed until the answer is sent. */
ARPC_EXPORT const void *arpc_request_data(const arpc_request *req);

/** The request payload's length in bytes. */
ARPC_EXPORT size_t arpc_request_len(const arpc_request *req);

/** The method name, NUL-terminated; borrowed until the answer is sent. */
ARPC_EXPORT const char *arpc_request_method(const arpc_request *req);
/** The protocol the request came in (an arpc_protocol value of include/arpc/client.h), so
 *  one handler serves a method over protocols whose payloads differ (a Thrift call's is
 *  its argument struct, docs/thrift.md); -1 for a protocol only a test registered. */
ARPC_EXPORT int arpc_request_protocol(const arpc_request *req);

/** True when the request came over TLS.  Thread: the request's handler. */
ARPC_EXPORT bool arpc_request_is_tls(const arpc_request *req);

/** The subject of the client's verified certificate (RFC 2253, "CN=client,O=x"),
 *  or NULL (no TLS, or no client certificate); borrowed for the request's life.
 *  Thread: the request's handler. */
ARPC_EXPORT const char *arpc_request_peer_subject(const arpc_request *req);

/** The subjectAltNames of the client's verified certificate, comma-separated
 *  ("DNS:client.test,URI:spiffe://x/y,IP:127.0.0.1"), or NULL; borrowed as
 *  arpc_request_peer_subject().  Thread: the request's handler. */
ARPC_EXPORT const char *arpc_request_peer_san(const arpc_request *req);

/** The protocol TLS's ALPN agreed on ("h2", "arpc"), or NULL.  Thread: the
 *  request's handler. */
ARPC_EXPORT const char *arpc_request_alpn(const arpc_request *req);

/**
 * The caller's remaining time in milliseconds, from the deadline the request
 * carried.  -1 when the caller set no deadline; 0 when it has passed.  To pass
 * the deadline on to downstream calls, set arpc_call_opts.parent to the
 * request rather than copying this number into arpc_call_opts.timeout_ms,
 * where 0 and -1 mean "no deadline" and "the channel's default".
 */
ARPC_EXPORT int64_t arpc_request_remaining_ms(const arpc_request *req);

/**
 * The buffer that becomes the answer's payload.  Owned by the request: write
 * to it, do not free it.
 */
ARPC_EXPORT arpc_buf *arpc_request_response(arpc_request *req);

/**
 * The request's arena (include/arpc/arena.h): memory for the handler's
 * answer and whatever else it needs while it runs, freed all at once after
 * the answer is sent (a stream's: after its handler returns), kept for the
 * loop's next request so that steady traffic allocates nothing.  Typed
 * handlers (include/arpc/protobuf.h) get their request unpacked into it.
 * Owned by the request: allocate from it, never reset or destroy it.
 * @return the arena, or NULL when its first block cannot be allocated.
 * Thread: whoever holds the request.  Suspends: no.
 */
ARPC_EXPORT arpc_arena *arpc_request_arena(arpc_request *req);

/**
 * The request's metadata (include/arpc/metadata.h): how many entries, the
 * entry at `index` (0-based, in the order sent; a walk), and the value of the
 * first entry with `key` (NULL if none; `value_len` may be NULL).  Entries
 * point into the request and are valid until its answer is sent; keys and
 * values are NUL-terminated.  arpc_request_metadata_at returns 0 or
 * ARPC_EINVAL (index out of range).
 * Thread: whoever holds the request.  Suspends: no.
 */
ARPC_EXPORT size_t arpc_request_metadata_count(const arpc_request *req);
ARPC_EXPORT int arpc_request_metadata_at(const arpc_request *req, size_t index,
                                         arpc_metadata_entry *out);
ARPC_EXPORT const void *arpc_request_metadata_get(const arpc_request *req, const char *key,
                                                  size_t *value_len);

/**
 * Adds one entry (copied) to the answer's metadata, which travels with the
 * answer whatever its status.  A native client older than metadata gets the
 * answer without it.
 * @return 0; ARPC_EINVAL (the rules of include/arpc/metadata.h);
 *         ARPC_EMETADATA (the answer's metadata would exceed
 *         ARPC_METADATA_MAX_BYTES); ARPC_ENOMEM.  Nothing is added on error.
 * Thread: whoever holds the request.  Suspends: no.
 */
ARPC_EXPORT int arpc_request_add_metadata(arpc_request *req, const char *key, const void *value,
                                          size_t value_len);

/**
 * Sets the message of an application error (the handler then returns a
 * positive code).  Replaces the response payload with `message` (copied).
 * @return 0 or ARPC_ENOMEM.
 */
ARPC_EXPORT int arpc_request_set_error(arpc_request *req, const char *message);

/**
 * True once the request is canceled: its client canceled it (gRPC: the
 * client's RST_STREAM, which grpcio sends for future.cancel() and at its
 * deadline), its connection closed while it ran (the client went away, a
 * heartbeat or idle close, a protocol error, the end of a shutdown's drain),
 * or its deadline passed.  Nobody waits for its answer any more: the handler
 * may stop early and return anything.  Its answer is not sent (after its
 * deadline a bare ARPC_ETIMEDOUT is, in its place) and counted in
 * arpc_server_stats.canceled.  A cancel ends nothing by itself: the handler
 * still returns, and a deferred request must still be answered with
 * arpc_request_respond() (safe, and required, after a cancel: it frees the
 * request).
 * Calls made with the request as arpc_call_opts.parent are canceled with it:
 * those in flight complete at once with ARPC_ECANCELED (their protocol tells
 * their server when it can: gRPC's RST_STREAM), new ones fail at once with
 * ARPC_ECANCELED (after the deadline: ARPC_ETIMEDOUT).  So a handler parked
 * in such a call wakes up; one parked on anything else can be woken by
 * arpc_request_on_cancel().  docs/connections.md section 10.
 * Thread: whoever holds the request.  Suspends: no.
 */
ARPC_EXPORT bool arpc_request_is_canceled(const arpc_request *req);

/**
 * Called once when a request is canceled; `req` is the canceled request,
 * still held by its handler.  Runs on the request's loop thread, outside any
 * coroutine (from the protocol's event, the connection's close or a timer):
 * it must not suspend.  It may signal an arpc_event, wake a coroutine, or
 * answer a deferred request with arpc_request_respond() (then it must not
 * touch `req` afterwards).
 */
typedef void (*arpc_request_cancel_cb)(arpc_request *req, void *user_data);

/**
 * Asks for `cb` when the request is canceled: by its client, by its
 * connection's close, or at its deadline (a timer, armed only for requests
 * that ask).  It runs at most once, and never after the request was answered.
 * A second call replaces the first callback.
 * @return 0; ARPC_ECANCELED if the request is canceled already (cb will not
 *         run: check arpc_request_is_canceled() after registering, or rely on
 *         this code); ARPC_EINVAL (NULL, or not on the request's loop
 *         thread); ARPC_ENOMEM (the timer).
 * Thread: the request's loop thread (the handler's coroutine, or a task on
 * its loop).  Suspends: no.
 */
ARPC_EXPORT int arpc_request_on_cancel(arpc_request *req, arpc_request_cancel_cb cb,
                                       void *user_data);

/**
 * Answers a deferred request with `status` (0, an application code > 0, or a
 * negative arpc_err) and the contents of arpc_request_response().  `req` is
 * invalid after this call.  Must be called exactly once per deferred request.
 * From another thread the answer is handed to the request's loop in a task
 * node inside the request: nothing is allocated, so the answer cannot be lost
 * for want of memory.  If that loop has been stopped (its runtime is being
 * destroyed), the call waits until the loop's thread has finished and then
 * completes the request on the calling thread.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT void arpc_request_respond(arpc_request *req, int status);

ARPC_END_DECLS

#endif

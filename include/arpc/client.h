/**
 * The arpc client.  A channel targets one or more endpoints and keeps a small
 * pool of multiplexed connections to each: any number of calls share a
 * connection, matched by request id and answered in any order.  Three call
 * styles share this one engine:
 *  - arpc_call(): synchronous on a plain thread; inside an arpc coroutine it
 *    suspends only that coroutine;
 *  - arpc_call_async(): a completion callback, from any thread;
 *  - coroutines: spawn them on the runtime and call arpc_call() in each, or
 *    start many arpc_call_async() and wait with an arpc_wg (fan-out).
 * Every call has a deadline and completes exactly once: with its answer, an
 * error, or ARPC_ETIMEDOUT at its deadline (a late answer is then discarded).
 */
#ifndef ARPC_CLIENT_H
#define ARPC_CLIENT_H

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

typedef struct arpc_channel arpc_channel;

/** How a channel picks the endpoint of a call. */
typedef enum arpc_lb_policy {
    ARPC_LB_ROUND_ROBIN = 0, /**< default */
    ARPC_LB_RANDOM = 1,
    ARPC_LB_LEAST_IN_FLIGHT = 2,
    ARPC_LB_CONSISTENT_HASH = 3 /**< on arpc_call_opts.hash_key */
} arpc_lb_policy;

/** The wire protocol of a channel's connections (docs/protocols.md). */
typedef enum arpc_protocol {
    ARPC_PROTOCOL_NATIVE = 0, /**< arpc's own frame (docs/protocol.md); the default */
    /** gRPC over plaintext HTTP/2 (h2c, docs/grpc.md): a method "pkg.S/M" is sent as
     *  :path "/pkg.S/M"; statuses map through docs/grpc.md's table. */
    ARPC_PROTOCOL_GRPC = 1,
    /** Thrift's framed transport with the binary protocol (docs/thrift.md): a call's
     *  payload is its argument struct (include/arpc/thrift.h), the answer its result
     *  struct; calls are pipelined in order on each connection; max_frame_size is the
     *  frame limit; probe_method stands in for the ping Thrift lacks. */
    ARPC_PROTOCOL_THRIFT = 2
} arpc_protocol;

/**
 * The name of the gRPC code ("UNIMPLEMENTED", "DEADLINE_EXCEEDED", ...) that
 * arpc status `status` (0, an arpc_err, or an application code) stands for
 * over gRPC (docs/grpc.md section 5).  A static string, never NULL.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT const char *arpc_grpc_status_name(int status);

/** TLS of a channel's connections (docs/tls.md).  Every string is copied by
 *  arpc_channel_create(); the files are read there. */
typedef struct arpc_channel_tls_opts {
    /** Off (default): plaintext. */
    bool enabled;
    /** PEM file of the CAs the server's certificate must chain to; NULL (default):
     *  the system's bundle. */
    const char *ca_file;
    /** The name sent as SNI and that the server's certificate must carry (a DNS
     *  name, or an IP address matched against its IP SANs).  NULL (default): each
     *  endpoint's host. */
    const char *server_name;
    /** Mutual TLS: this PEM certificate chain and its key are presented when the
     *  server asks.  Both or neither (ARPC_EINVAL). */
    const char *cert_file;
    const char *key_file;
    int min_version; /**< ARPC_TLS_1_2 (default) or ARPC_TLS_1_3 */
    int max_version; /**< 0 (default): the newest */
    /** A handshake not complete this long after connect() completed fails with
     *  ARPC_ETLSTIMEOUT.  Default 5000 ms. */
    int64_t handshake_timeout_ms;
} arpc_channel_tls_opts;

typedef struct arpc_channel_opts {
    /** Connections per endpoint, spread over the runtime's loops.  Default 1. */
    uint32_t connections_per_endpoint;
    /** Timeout of one connection attempt.  Default 1000 ms. */
    int64_t connect_timeout_ms;
    /** Timeout of calls made without arpc_call_opts.  Default 1000 ms. */
    int64_t default_timeout_ms;
    /** Largest frame accepted from the server, and sent to it.  Default 16 MiB.
     *  Announced to the server when a connection starts (docs/protocol.md
     *  section 4), which then answers ARPC_ETOOBIG instead of an answer over
     *  it; an oversized answer that arrives anyway fails only its own call.
     *  Likewise the server's announced limit: a call over it fails with
     *  ARPC_ETOOBIG and is not sent, and calls beyond the server's
     *  per-connection limit of requests in progress wait in the channel, within
     *  their deadlines, until answers make room. */
    uint32_t max_frame_size;
    /** A connection that received nothing for this long sends PING.  Default 500 ms;
     *  0 disables heartbeats (a server's idle limit, 60 s by default, may then
     *  close an idle connection; the next call reconnects). */
    int64_t heartbeat_interval_ms;
    /** No frame within this long after a PING: the connection is declared dead.
     *  Default 1000 ms, so a dead peer is noticed within about 1.5 s. */
    int64_t heartbeat_timeout_ms;
    /** Reconnect backoff: first delay and cap; each failure doubles the delay,
     *  with up to 50% jitter.  Defaults 50 ms and 2000 ms. */
    int64_t reconnect_backoff_min_ms;
    int64_t reconnect_backoff_max_ms;
    /** Consecutive connection failures after which an endpoint is ejected from
     *  load balancing until a probe connection succeeds.  Default 3. */
    uint32_t eject_after_failures;
    /** Retries of a call that failed without reaching a server (or is
     *  idempotent), within its deadline.  Default 2. */
    uint32_t max_retries;
    arpc_lb_policy lb_policy;
    /** Unwritten request bytes on one connection (a server that does not
     *  read them) at which the connection takes no new call: the call goes to
     *  another usable endpoint (a retry; it was never sent) or fails at once
     *  with ARPC_EQUEUEFULL, so a caller cannot buffer without bound.  A
     *  request is never refused for its size: one of max_frame_size always
     *  fits below the limit.  Default 64 MiB; 0 = no limit. */
    uint64_t max_unwritten_bytes;
    /** The protocol spoken on every connection.  Default ARPC_PROTOCOL_NATIVE;
     *  an unknown value makes arpc_channel_create fail with ARPC_EINVAL. */
    arpc_protocol protocol;
    /** Flow-control window of each stream (include/arpc/stream.h,
     *  docs/streams.md): bytes of messages a server may send one stream of
     *  this channel before the application has read them.  Announced to the
     *  server (limits.stream_window).  Default 256 KiB; at least 64 KiB
     *  (ARPC_EINVAL below). */
    uint32_t stream_window_bytes;
    /** For a protocol without a ping of its own (ARPC_PROTOCOL_THRIFT): the method called,
     *  with no arguments, as the probe when a connection starts and as the heartbeat;
     *  any answer counts, an unknown-method exception included (docs/thrift.md section
     *  6).  Borrowed: must outlive the channel.  Default NULL: "arpc.probe", which no
     *  service has and every Thrift server answers. */
    const char *probe_method;
    /** Calls one connection carries at once; more wait in the channel, within their
     *  deadlines, until answers make room (as for a server's announced limit, which
     *  applies too when lower).  1: one call per connection in flight, for a peer that
     *  cannot take pipelined requests (docs/thrift.md section 6).  Default 0: no limit
     *  of our own. */
    uint32_t max_in_flight_per_connection;
    /** TLS on every connection (off by default).  A handshake that fails ends the
     *  connection's calls with ARPC_ETLSUNTRUSTED, ARPC_ETLSEXPIRED, ARPC_ETLSHOST,
     *  ARPC_ETLSPLAINTEXT (the server does not speak TLS), ARPC_ETLSREFUSED (the
     *  server refused us, e.g. our certificate), ARPC_ETLSTIMEOUT or ARPC_ETLS;
     *  OpenSSL's reason is logged with the connection. */
    arpc_channel_tls_opts tls;
} arpc_channel_opts;

typedef struct arpc_call_opts {
    /** Deadline of the call, from now; 0 means no deadline, < 0 (the default)
     *  the channel's default_timeout_ms.  It travels with the request so the
     *  server skips work nobody waits for: the time left when the request is
     *  sent, rounded up to whole ms, at most 2^32-1 ms (about 49.7 days). */
    int64_t timeout_ms;
    /** Key for ARPC_LB_CONSISTENT_HASH: equal keys reach the same healthy endpoint. */
    uint64_t hash_key;
    /** The call may run twice without harm: it may then be retried on another
     *  connection even after it was sent. */
    bool idempotent;
    /** The request being served on whose behalf the call is made, or NULL (the
     *  default).  The call then ends no later than that request's caller waits:
     *  its deadline is the earlier of its own (timeout_ms) and the request's, so
     *  a handler passes its caller's remaining time on without arithmetic, and
     *  a request whose deadline has passed makes the call fail at once with
     *  ARPC_ETIMEDOUT.  Borrowed: read only while the call starts, so it must be
     *  a request whose answer has not been sent yet. */
    const struct arpc_request *parent;
    /** Request metadata: `metadata_count` entries, borrowed, checked and copied
     *  before the call returns (ARPC_EINVAL for an entry that breaks the rules
     *  of include/arpc/metadata.h, ARPC_EMETADATA over ARPC_METADATA_MAX_BYTES;
     *  the call is then not made).  Default none.  A native server older than
     *  metadata gets the request without it. */
    const arpc_metadata_entry *metadata;
    size_t metadata_count;
    /** Optional out: a list the caller owns, which the call empties when it is
     *  made and fills with the answer's metadata before it completes (before
     *  arpc_call returns, before the arpc_call_async callback runs, on the
     *  thread that completes it).  It holds the metadata of the server's
     *  answer, an error answer too; it stays empty when no answer came.  The
     *  caller must not touch it until the call has completed.  Default NULL. */
    arpc_metadata *response_metadata;
    /** Typed calls only (include/arpc/protobuf.h): the arena their answer is
     *  unpacked into; it must outlive the call and the answer, and, as an
     *  arena has one user at a time, no other call in flight may use it.
     *  NULL (the default): the heap.  arpc_call() ignores it. */
    arpc_arena *arena;
    /** Optional out: a buffer the caller owns, which the call empties when it
     *  is made and fills with an application error's message (the handler's
     *  arpc_request_set_error()) before it completes; it stays empty
     *  otherwise.  arpc_call() also appends that message to `rsp`.  The caller
     *  must not touch it until the call has completed.  Default NULL. */
    arpc_buf *error_message;
} arpc_call_opts;

/** Counters of a channel; a snapshot. */
typedef struct arpc_channel_stats {
    uint64_t calls;        /**< calls started */
    uint64_t retries;      /**< calls sent again after a connection failure */
    uint64_t reconnects;   /**< connections (re)established */
    uint64_t heartbeat_failures; /**< connections declared dead by heartbeat */
    uint64_t late_answers; /**< answers discarded: their call already completed */
    uint64_t goaways;      /**< GOAWAY frames received (a server shutting down or full) */
} arpc_channel_stats;

/** Fills `opts` with defaults.  Thread: any. */
ARPC_EXPORT void arpc_channel_opts_init(arpc_channel_opts *opts);

/** Fills `opts` with defaults.  Thread: any. */
ARPC_EXPORT void arpc_call_opts_init(arpc_call_opts *opts);

/**
 * Creates a channel to `target`: "HOST:PORT[,HOST:PORT...]".  Connections are
 * opened lazily, by the first call that needs them.
 * @param rt    the runtime whose loops carry the connections; must outlive the channel.
 * @param opts  borrowed; NULL means defaults.
 * @param out   on success the channel, owned by the caller (arpc_channel_destroy()).
 * @return 0, ARPC_EBADADDR, ARPC_EINVAL or ARPC_ENOMEM.
 * Thread: any.  Suspends: no (but a host name is resolved here, which may block).
 */
ARPC_EXPORT int arpc_channel_create(arpc_runtime *rt, const char *target,
                                    const arpc_channel_opts *opts, arpc_channel **out);

/**
 * Closes every connection and frees the channel.  Calls still in flight
 * complete with ARPC_ECANCELED first; new calls get ARPC_ESTOPPED.  NULL is a
 * no-op.  On a plain thread it blocks and inside a coroutine it suspends
 * until the channel is freed.  On a loop thread outside a coroutine (an
 * arpc_call_async() callback, a task), where waiting would stall the loop, it
 * returns at once and finishes in a new coroutine of that loop (the loop's
 * runtime waits for it in arpc_runtime_destroy()); if no coroutine stack can
 * be mapped, it logs an error and the channel is leaked rather than freed
 * under its calls.  Never allocates.
 * Thread: any.  Suspends: yes (in a coroutine; see above elsewhere).
 */
ARPC_EXPORT void arpc_channel_destroy(arpc_channel *ch);

/**
 * Calls `method` and waits for the answer.
 * @param req   borrowed; copied before the call suspends.
 * @param opts  borrowed; NULL means defaults.
 * @param rsp   out: the answer is appended (on success, or the error message of an
 *              application error); owned by the caller, who may reuse it.  May be
 *              NULL to drop the answer.
 * @return 0; a positive application error code from the handler; the errors of
 *         arpc_call_async(); or ARPC_ETIMEDOUT, ARPC_ECONNREFUSED, ARPC_ECONNRESET,
 *         ARPC_ECLOSED, ARPC_ENOMETHOD, ARPC_EOVERLOAD, ARPC_ESHUTDOWN,
 *         ARPC_ETOOMANYCONNS, ARPC_EHEARTBEAT, ARPC_EFRAME, ARPC_ETOOBIG,
 *         ARPC_ENOENDPOINT, ARPC_EQUEUEFULL (the connection's unwritten
 *         output is over max_unwritten_bytes and no other endpoint could take it),
 *         ARPC_ECANCELED (the channel was destroyed), ARPC_ENOMEM
 *         (also when the answer could not be appended to `rsp`), a negative code
 *         the handler returned; or ARPC_ENOTCORO, at once, on a loop thread outside
 *         a coroutine (an arpc_call_async() callback, an arpc_loop_submit() task):
 *         blocking there would stall that loop, and deadlock when the call's own
 *         connection lives on it.  Use arpc_call_async() there, or spawn a coroutine.
 * Thread: any but a loop thread outside a coroutine.  Suspends: yes (inside a
 * coroutine only the coroutine; on a plain thread it blocks).
 */
ARPC_EXPORT int arpc_call(arpc_channel *ch, const char *method, const void *req, size_t req_len,
                          const arpc_call_opts *opts, arpc_buf *rsp);

/**
 * Completion of an asynchronous call.  `status` is as arpc_call()'s return;
 * `rsp` (the answer, or an application error's message) is borrowed for the
 * duration of the callback.  Runs on the loop thread of the connection that
 * carried the call (for a call that fails before reaching one: on a loop thread
 * of the runtime), never inside arpc_call_async() itself.
 */
typedef void (*arpc_call_cb)(int status, const void *rsp, size_t rsp_len, void *user_data);

/**
 * Starts a call; `cb` runs exactly once when it completes.  Once accepted, the
 * call's hand-offs between loops allocate nothing, so it cannot be lost for
 * want of memory: every failure reaches `cb` as a status.
 * @param req   borrowed; copied before this function returns.
 * @return 0 (the callback will run), or (it will not): ARPC_EINVAL (NULL
 *         channel, method or cb; an empty or over-long method name), ARPC_ETOOBIG
 *         (the request exceeds the channel's max_frame_size), ARPC_ETIMEDOUT
 *         (opts->parent's deadline has passed already), ARPC_ENOMEM, or
 *         ARPC_ESTOPPED (the channel is being destroyed, or its runtime's loops
 *         are stopped).
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_call_async(arpc_channel *ch, const char *method, const void *req,
                                size_t req_len, const arpc_call_opts *opts, arpc_call_cb cb,
                                void *user_data);

/** Reads the channel's counters.  Thread: any.  Suspends: no. */
ARPC_EXPORT void arpc_channel_get_stats(const arpc_channel *ch, arpc_channel_stats *out);

ARPC_END_DECLS

#endif

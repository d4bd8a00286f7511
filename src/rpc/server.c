/*
 * Design notes.
 *
 * Threading: the server owns one `srv_loop` per runtime loop.  Each listens on
 * the same port (SO_REUSEPORT, so the kernel spreads connections) and keeps
 * its connections, its request pool and its counters to itself.  The only
 * state shared across loops is the admission count for max_in_flight (which
 * loops reserve from in batches, see "admission"), the connection count, and
 * flags.
 *
 * A request: its payload is copied out of the read buffer into a pooled
 * arpc_request (the read buffer is reused as soon as decoding ends, and a
 * handler that parks must still see its payload then), and a coroutine is
 * spawned for it and run at once, from the read loop itself
 * (arpc__coro_spawn_run): a handler that does not park has answered before
 * the next frame is decoded, and its request and stack go back to their pools
 * for that frame to reuse.  The answer is appended to the connection's
 * output, which is flushed once per loop iteration.  The request holds a
 * reference on its connection: if the peer goes away first, the answer is
 * dropped and nothing dangles.
 *
 * Per connection (docs/protocol.md sections 4 and 7): a PING with settings
 * tells the server the client's frame limit, and its PONG tells the client
 * the server's frame limit and max_in_flight_per_connection, the share of
 * max_in_flight one connection may hold, so one client's slow requests cannot
 * lock the others out.  Request ids must increase; an oversized REQUEST is
 * answered ARPC_ETOOBIG while conn.c skips its body; an answer over either
 * frame limit becomes an ARPC_ETOOBIG answer.
 *
 * Limits (docs/connections.md, section 8): the defaults protect a server
 * that nobody configured.  The connection cap is checked at accept; the
 * first-frame, frame and idle time limits by one sweep per loop over the
 * timestamps conn.c keeps; and a connection whose answers its client does
 * not read stops being read (conn.c's out_limit), so it costs at most its
 * limit, not every answer it asked for.
 *
 * Shutdown: stop listening, GOAWAY on every connection (with the last request
 * id it will answer), wait for the in-flight count to reach zero or the drain
 * deadline, then close every connection (one whose last answers are not
 * written yet only once they are, or at the drain deadline).  Requests that
 * arrive after the GOAWAY are answered ARPC_ESHUTDOWN.  The server memory is
 * freed only once every request has ended, so a handler that outlives the
 * drain cannot touch freed memory.
 */
#include "rpc/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpc/err.h>
#include <arpc/io.h>
#include <arpc/server.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "transport/tls.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "proto/metadata.h"
#include "rpc/conn.h"
#include "rpc/pending.h"
#include "rpc/request.h"
#include "rpc/stream.h"
#include "runtime/addr.h"
#include "runtime/coro.h"
#include "runtime/loop.h"
#include "runtime/sock.h"

#define REQUEST_POOL_MAX 4096
#define BUF_KEEP_SIZE    (64 * 1024)
#define LISTEN_BACKLOG   4096
#define DEFAULT_CONNS_CEILING (1u << 20)
#define MIN_SWEEP_NS          (5 * ARPC__NS_PER_MS)
#define MAX_SWEEP_MS          (3600 * 1000)
#define ARPC__SERVER_MAX_PROTOCOLS 8

typedef struct method_entry {
    arpc_handler_fn fn;
    arpc_stream_handler_fn stream_fn; /* a stream method (arpc_server_register_stream) */
    void *user_data;
    size_t name_len;
    char name[ARPC__PROTO_MAX_METHOD + 1];
} method_entry;

typedef struct srv_loop srv_loop;

/* A per-loop step of listen and shutdown, kept in the srv_loop itself so
 * running one allocates nothing (see run_on_every_loop). */
typedef struct loop_job {
    srv_loop *sl;
    arpc_wg *wg;
    arpc__task task;
    int fd;
    unsigned kind; /* start_listening_task: which listener (LSN_PLAIN, LSN_TLS) */
    int result;
    bool force; /* close_all_task: close even connections with unwritten output */
} loop_job;

/* Per-loop counters: written by the loop thread only, read by anyone. */
typedef struct srv_counters {
    _Atomic uint64_t requests;
    _Atomic uint64_t overloaded;
    _Atomic uint64_t expired;
    _Atomic uint64_t unknown_method;
    _Atomic uint64_t refused_connections;
    _Atomic uint64_t protocol_errors;
    _Atomic uint64_t idle_timeouts;
    _Atomic uint64_t first_frame_timeouts;
    _Atomic uint64_t frame_timeouts;
    _Atomic uint64_t read_pauses;
    _Atomic uint64_t canceled;
    _Atomic uint64_t heartbeat_closes;
    _Atomic uint64_t flood_closes;
    _Atomic uint64_t stream_timeouts;
    _Atomic uint64_t refused_streams;
    _Atomic uint64_t oversized_headers;
    _Atomic uint64_t tls_handshakes;
    _Atomic uint64_t tls_handshake_failures;
    _Atomic uint64_t tls_handshake_timeouts;
} srv_counters;

/* A server has a plaintext and a TLS listener, each on every loop. */
enum { LSN_PLAIN, LSN_TLS, LSN_COUNT };

typedef struct srv_listener {
    arpc__io_watcher watcher;
    srv_loop *sl;
    unsigned kind;
} srv_listener;

struct srv_loop {
    arpc_server *srv;
    arpc_loop *loop;
    srv_listener listeners[LSN_COUNT];
    arpc__list conns;
    arpc__list free_requests;
    size_t free_request_count;
    arpc__timer idle_sweep; /* the connection time limits: idle, first frame, frame */
    srv_counters counters;
    /* Requests of this loop not yet answered: written by the loop thread
     * only (no locked instruction), summed by the shutdown thread. */
    _Atomic uint32_t in_flight;
    uint32_t credits; /* admissions reserved from srv->admitted, unused yet */
    bool draining;    /* shutdown waits for in_flight to reach 0 */
    loop_job job;     /* the listen or shutdown step in progress */
    /* Log lines about one peer's requests (stream faults): a few a second per loop. */
    int64_t log_second;
    uint32_t log_lines;
    uint64_t log_dropped;
};

typedef struct srv_conn {
    arpc__conn conn;
    srv_loop *sl;
    arpc__list link;
    const arpc__proto_ops *proto;    /* its protocol, once its first bytes told */
    uint64_t last_request_id;        /* the highest so far: the GOAWAY's last id */
    /* The largest answer the client takes: our max_frame_size, or the client's announced
     * message limit where lower.  Kept, not computed per answer. */
    uint32_t answer_limit;
    const method_entry *last_method; /* a connection usually calls one method */
    bool goaway_sent;
    bool close_when_flushed; /* shutting down: close once the output is written */
    uint32_t running;        /* requests in progress: the connection is not idle */
    /* Those a cancel must find (arpc_request.link): all of them with
     * track_requests, else those watched ("cancellation"). */
    arpc__list requests;
    bool track_requests; /* the protocol can cancel (it has send_cancel) */
    _Atomic bool gone;   /* closed: its requests are canceled */
    int64_t last_done_ns;    /* when the last of them was answered */
    int64_t hb_ping_ns;      /* heartbeat: when the PING for the silence since hb_rx_ns went */
    int64_t hb_rx_ns;        /* heartbeat: last_rx_ns when that PING went; 0: none sent */
    uint64_t hb_ping_id;
    arpc__pending streams;       /* open streams: id -> arpc_stream (docs/streams.md) */
    uint32_t peer_stream_window; /* the client's announced window; 0: none */
    /* The request request_finish ended last: start_request tells by it whether the one
     * it spawned finished inside the spawn (compared, never dereferenced). */
    const arpc_request *last_finished;
} srv_conn;

struct arpc_request {
    arpc__list link; /* in its connection's requests while it runs; else in the pool */
    srv_loop *sl;
    srv_conn *sc;
    const arpc__proto_ops *proto; /* its connection's protocol (arpc_request_protocol) */
    const method_entry *method;
    uint64_t id;
    int64_t deadline_ns;
    arpc_buf payload;
    arpc_buf response;
    arpc_buf md_buf;     /* the request's metadata, in memory form (proto/metadata.h) */
    arpc__md md;         /* views md_buf */
    arpc_buf rsp_md_buf; /* the answer's metadata (arpc_request_add_metadata) */
    arpc__md rsp_md;
    int deferred_status;
    arpc__task task; /* arpc_request_respond's hand-off to the request's loop */
    /* Cancellation ("cancellation" below).  `canceled` is written by the
     * loop thread and read by whoever holds the request. */
    _Atomic bool canceled;
    arpc__list watchers; /* arpc__cancel_node of calls made with it as parent */
    arpc_request_cancel_cb cancel_cb; /* arpc_request_on_cancel; NULL: none */
    void *cancel_user_data;
    arpc__timer cancel_timer; /* the deadline, for cancel_cb only */
    arpc_stream *stream;      /* a stream method's stream; NULL for a unary handler */
    /* arpc_request_arena's, created on first use and kept with the pooled request,
     * emptied when the request is put back: a loop's typed requests reuse it. */
    arpc_arena *arena;
    /* Canceled, watched or with a cancel_cb: its answer takes the slow path (listed alone
     * is not enough: a protocol that can cancel lists every request). */
    bool flagged;
};

struct arpc_server {
    arpc_runtime *rt;
    arpc_server_opts opts;
    /* The protocols detected on a connection's first bytes, in the order tried. */
    const arpc__proto_ops *protocols[ARPC__SERVER_MAX_PROTOCOLS];
    unsigned protocol_count;
    arpc__map methods;
    unsigned loop_count;
    srv_loop *loops;
    int port;
    int tls_port;
    arpc__tls_ctx *tls; /* the TLS listener's certificates; NULL: none */
    bool listening;     /* either listener: the method table is fixed */
    bool listening_on[LSN_COUNT];
    bool shut_down;
    /* Admissions reserved by the loops, in batches of credit_batch: their
     * in_flight plus their credits.  Never above opts.max_in_flight. */
    _Atomic uint32_t admitted;
    uint32_t credit_batch;
    _Atomic uint64_t connections;
    _Atomic uint32_t flushing; /* connections closing once their last answers are written */
    arpc_event drained; /* signalled when draining and a loop's in_flight or flushing reaches 0 */
    /* The protobuf layer's registry (arpc__server_set_registry), opaque here. */
    void *registry;
    void (*registry_free)(void *registry);
    arpc__server_owned *owned; /* arpc__server_register_all's blocks, freed at destroy */
};

static void on_idle_sweep(arpc__timer *timer);

/* Admissions a loop reserves at a time (see "admission" below). */
static uint32_t pick_credit_batch(uint32_t max_in_flight, unsigned loops)
{
    uint32_t batch = max_in_flight / (16 * loops);
    return batch < 1 ? 1 : batch > 32 ? 32 : batch;
}

/* The default connection cap: the soft RLIMIT_NOFILE less a reserve for the
 * rest of the process (listeners, epoll and event fds, client connections,
 * files), an eighth of it within [16, 1024].  Refusing a connection at the
 * cap costs a GOAWAY and a close; running out of descriptors instead makes
 * accept() fail for everyone, including the clients the cap lets in later. */
static uint32_t default_max_connections(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > DEFAULT_CONNS_CEILING)
        return DEFAULT_CONNS_CEILING;
    uint64_t soft = rl.rlim_cur;
    uint64_t reserve = soft / 8 < 16 ? 16 : soft / 8 > 1024 ? 1024 : soft / 8;
    uint64_t cap = soft > 2 * reserve ? soft - reserve : soft / 2;
    return cap > 0 ? (uint32_t)cap : 1;
}

void arpc_server_opts_init(arpc_server_opts *opts)
{
    opts->max_in_flight = 10000;
    opts->max_in_flight_per_connection = 2500;
    opts->max_frame_size = ARPC__PROTO_DEFAULT_MAX_MESSAGE;
    opts->max_connections = default_max_connections();
    opts->idle_timeout_ms = 60 * 1000;
    opts->first_frame_timeout_ms = 10 * 1000;
    opts->frame_timeout_ms = 30 * 1000;
    opts->max_unwritten_bytes = 4 * 1024 * 1024;
    opts->write_early_answers = 32;
    opts->heartbeat_interval_ms = 500;
    opts->heartbeat_timeout_ms = 1000;
    opts->stream_window_bytes = ARPC__STREAM_DEFAULT_WINDOW;
    opts->tls_handshake_timeout_ms = 10 * 1000;
}

void arpc_server_tls_opts_init(arpc_server_tls_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->min_version = ARPC_TLS_1_2;
}

int arpc_server_create(arpc_runtime *rt, const arpc_server_opts *opts, arpc_server **out)
{
    if (rt == NULL || out == NULL)
        return ARPC_EINVAL;
    arpc_server *srv = arpc__calloc(1, sizeof(*srv));
    if (srv == NULL)
        return ARPC_ENOMEM;
    if (opts != NULL)
        srv->opts = *opts;
    else
        arpc_server_opts_init(&srv->opts);
    if (srv->opts.max_frame_size < ARPC__PROTO_MIN_MAX_MESSAGE ||
        srv->opts.stream_window_bytes < ARPC__STREAM_MIN_WINDOW ||
        (uint64_t)(size_t)srv->opts.max_unwritten_bytes != srv->opts.max_unwritten_bytes) {
        arpc__free(srv);
        return ARPC_EINVAL;
    }
    srv->rt = rt;
    unsigned count;
    const arpc__proto_ops *const *protocols = arpc__proto_detectable(&count);
    for (unsigned i = 0; i < count && i < ARPC__SERVER_MAX_PROTOCOLS; i++)
        srv->protocols[srv->protocol_count++] = protocols[i];
    srv->loop_count = arpc_runtime_loop_count(rt);
    srv->credit_batch = pick_credit_batch(srv->opts.max_in_flight, srv->loop_count);
    srv->loops = arpc__calloc(srv->loop_count, sizeof(*srv->loops));
    if (srv->loops == NULL) {
        arpc__free(srv);
        return ARPC_ENOMEM;
    }
    for (unsigned i = 0; i < srv->loop_count; i++) {
        srv_loop *sl = &srv->loops[i];
        sl->srv = srv;
        sl->loop = arpc_runtime_loop(rt, i);
        for (unsigned k = 0; k < LSN_COUNT; k++) {
            sl->listeners[k].watcher.fd = -1;
            sl->listeners[k].sl = sl;
            sl->listeners[k].kind = k;
        }
        arpc__list_init(&sl->conns);
        arpc__list_init(&sl->free_requests);
        /* Here, not when listening: shutdown disarms it even if listen failed. */
        arpc__timer_init(&sl->idle_sweep, on_idle_sweep);
    }
    arpc__map_init(&srv->methods);
    arpc_event_init(&srv->drained);
    srv->port = ARPC_EINVAL;
    srv->tls_port = ARPC_EINVAL;
    *out = srv;
    return 0;
}

/* A method's entry, not yet registered.  @return 0, ARPC_EINVAL or ARPC_ENOMEM. */
static int method_new(const char *method, arpc_handler_fn handler,
                      arpc_stream_handler_fn stream_handler, void *user_data, method_entry **out)
{
    if (method == NULL || (handler == NULL && stream_handler == NULL))
        return ARPC_EINVAL;
    size_t len = strlen(method);
    if (len == 0 || len > ARPC__PROTO_MAX_METHOD)
        return ARPC_EINVAL;
    method_entry *entry = arpc__calloc(1, sizeof(*entry));
    if (entry == NULL)
        return ARPC_ENOMEM;
    entry->fn = handler;
    entry->stream_fn = stream_handler;
    entry->user_data = user_data;
    entry->name_len = len;
    memcpy(entry->name, method, len + 1);
    *out = entry;
    return 0;
}

static int register_method(arpc_server *srv, const char *method, arpc_handler_fn handler,
                           arpc_stream_handler_fn stream_handler, void *user_data)
{
    if (srv == NULL || srv->listening)
        return ARPC_EINVAL;
    method_entry *entry;
    int rc = method_new(method, handler, stream_handler, user_data, &entry);
    if (rc < 0)
        return rc;
    rc = arpc__map_insert(&srv->methods, method, entry->name_len, entry);
    if (rc < 0)
        arpc__free(entry);
    return rc;
}

static int serve_unary_on_stream(arpc_request *req, void *user_data);

/* Frees the entries of `next` that `old` does not hold, then `next` itself. */
static void map_drop_new(arpc__map *next, const arpc__map *old)
{
    for (size_t i = 0; i < next->cap; i++) {
        const arpc__map_slot *slot = &next->slots[i];
        if (slot->key != NULL && arpc__map_find(old, slot->key, slot->key_len) == NULL)
            arpc__free(slot->value);
    }
    arpc__map_fini(next);
}

/* `next` = the methods of `old` and those of `defs`.  @return 0 or an error,
 * `next` then emptied and freed (the new entries too). */
static int map_with(arpc__map *next, const arpc__map *old, const arpc__method_def *defs,
                    size_t count)
{
    arpc__map_init(next);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < old->cap; i++) {
        const arpc__map_slot *slot = &old->slots[i];
        if (slot->key != NULL)
            rc = arpc__map_insert(next, slot->key, slot->key_len, slot->value);
    }
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const arpc__method_def *d = &defs[i];
        arpc_handler_fn fn = d->stream_fn != NULL ? serve_unary_on_stream : d->fn;
        method_entry *entry;
        rc = method_new(d->name, fn, d->stream_fn, d->user_data, &entry);
        if (rc == 0 && (rc = arpc__map_insert(next, d->name, entry->name_len, entry)) < 0)
            arpc__free(entry);
    }
    if (rc < 0)
        map_drop_new(next, old);
    return rc;
}

int arpc__server_register_all(arpc_server *srv, const arpc__method_def *defs, size_t count,
                              arpc__server_owned *owned)
{
    if (srv == NULL || srv->listening || (defs == NULL && count > 0))
        return ARPC_EINVAL;
    arpc__map next;
    int rc = map_with(&next, &srv->methods, defs, count);
    if (rc < 0)
        return rc;
    arpc__map_fini(&srv->methods); /* its keys and slots; the entries live on in `next` */
    srv->methods = next;
    if (owned != NULL) {
        owned->next = srv->owned;
        srv->owned = owned;
    }
    return 0;
}

int arpc_server_register(arpc_server *srv, const char *method, arpc_handler_fn handler,
                         void *user_data)
{
    return handler == NULL ? ARPC_EINVAL : register_method(srv, method, handler, NULL, user_data);
}

int arpc_server_register_stream(arpc_server *srv, const char *method,
                                arpc_stream_handler_fn handler, void *user_data)
{
    /* A unary request to it runs serve_unary_on_stream, as any unary handler runs. */
    return handler == NULL
               ? ARPC_EINVAL
               : register_method(srv, method, serve_unary_on_stream, handler, user_data);
}

void *arpc__server_registry(const arpc_server *srv)
{
    return srv->registry;
}

int arpc__server_set_registry(arpc_server *srv, void *registry, void (*free_fn)(void *registry))
{
    if (srv->listening || srv->registry != NULL)
        return ARPC_EINVAL;
    srv->registry = registry;
    srv->registry_free = free_fn;
    return 0;
}

int arpc__server_add_protocol(arpc_server *srv, const arpc__proto_ops *proto)
{
    if (srv == NULL || proto == NULL || srv->listening ||
        srv->protocol_count >= ARPC__SERVER_MAX_PROTOCOLS)
        return ARPC_EINVAL;
    srv->protocols[srv->protocol_count++] = proto;
    return 0;
}

/* ---- requests ---------------------------------------------------------- */

/* Adds one to a counter only its loop writes: a relaxed load and store, not a
 * locked read-modify-write, which costs tens of cycles per request. */
static inline void counter_inc(_Atomic uint64_t *counter)
{
    uint64_t v = atomic_load_explicit(counter, memory_order_relaxed);
    atomic_store_explicit(counter, v + 1, memory_order_relaxed);
}

static void on_cancel_deadline(arpc__timer *timer);

/* Inline (also below): the request path's own; streams call them too. */
static inline __attribute__((always_inline)) arpc_request *request_get(srv_loop *sl)
{
    arpc__list *node = arpc__list_pop_front(&sl->free_requests);
    if (node != NULL) {
        sl->free_request_count--;
        return arpc__container_of(node, arpc_request, link);
    }
    arpc_request *req = arpc__calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    arpc__list_init(&req->link);
    arpc__buf_init(&req->payload);
    arpc__buf_init(&req->response);
    arpc__buf_init(&req->md_buf);
    arpc__buf_init(&req->rsp_md_buf);
    arpc__list_init(&req->watchers);
    arpc__timer_init(&req->cancel_timer, on_cancel_deadline);
    req->sl = sl;
    return req;
}

static void request_free(arpc_request *req)
{
    arpc_arena_destroy(req->arena);
    arpc__buf_fini(&req->payload);
    arpc__buf_fini(&req->response);
    arpc__buf_fini(&req->md_buf);
    arpc__buf_fini(&req->rsp_md_buf);
    arpc__free(req);
}

/* Inline: every request ends here, and the call cost it a dozen instructions. */
static inline __attribute__((always_inline)) void request_put(srv_loop *sl, arpc_request *req)
{
    if (sl->free_request_count >= REQUEST_POOL_MAX) {
        request_free(req);
        return;
    }
    arpc__buf_clear(&req->payload);
    arpc__buf_clear(&req->response);
    if (arpc__unlikely(req->md.count > 0 || req->rsp_md.count > 0)) {
        arpc__buf_clear(&req->md_buf);
        arpc__buf_clear(&req->rsp_md_buf);
        memset(&req->md, 0, sizeof(req->md));
        memset(&req->rsp_md, 0, sizeof(req->rsp_md));
    }
    arpc__buf_shrink_if_idle(&req->payload, BUF_KEEP_SIZE);
    arpc__buf_shrink_if_idle(&req->response, BUF_KEEP_SIZE);
    arpc__list_push_front(&sl->free_requests, &req->link);
    sl->free_request_count++;
    /* Last: an untyped request pays one test, and no spill around the call. */
    if (req->arena != NULL)
        arpc__arena_reset_keep(req->arena, BUF_KEEP_SIZE);
}

/* The largest answer frame this connection may carry: the server's own limit, and the
 * client's once it has announced one. */
static uint32_t answer_limit(const srv_conn *sc)
{
    return sc->answer_limit;
}

static void send_response(srv_conn *sc, uint64_t id, int status, const arpc_buf *payload,
                          const arpc__md *md)
{
    if (sc->conn.closed)
        return;
    arpc__msg msg = {.id = id, .status = status};
    if (md != NULL)
        msg.md = *md;
    if (payload != NULL && payload->len > 0) {
        msg.payload = arpc__buf_head(payload);
        msg.payload_len = payload->len;
    }
    if (arpc__unlikely(!arpc__proto_fits(sc->proto, &msg, false, answer_limit(sc)))) {
        /* The client would refuse it: fail this request alone (protocol.md 7). */
        msg.status = ARPC_ETOOBIG;
        msg.payload = NULL;
        msg.payload_len = 0;
        memset(&msg.md, 0, sizeof(msg.md));
    }
    arpc__proto_session *proto = sc->conn.proto;
    int rc = sc->proto->send_response(proto, &sc->conn.out, &msg);
    if (rc == ARPC_ENOMEM) {
        /* Better a short error than silence: the client must hear back. */
        arpc__msg refusal = {.id = id, .status = ARPC_ENOMEM};
        rc = sc->proto->send_response(proto, &sc->conn.out, &refusal);
    }
    if (rc < 0) {
        arpc__conn_close(&sc->conn, rc);
        return;
    }
    arpc__conn_flush_soon(&sc->conn);
}

/* ---- admission --------------------------------------------------------
 *
 * max_in_flight bounds the requests in progress on all loops together.  A
 * shared counter touched twice per request would cost two locked
 * instructions per request (and a contended cache line with several loops),
 * so each loop reserves admissions from srv->admitted in batches (credits)
 * and counts its requests in progress in its own in_flight.  The limit is
 * never exceeded; a request may be refused while other loops hold unused
 * credits, at most 2 * credit_batch - 1 each, and credit_batch is at most
 * 1/16 of the limit per loop (1 for small limits, so those stay exact on one
 * loop).  Shutdown sums the loops' in_flight.
 */

/* Reserves a batch of admissions, or what is left of the limit.  @return
 * false if nothing is left. */
static bool take_credits(srv_loop *sl)
{
    arpc_server *srv = sl->srv;
    uint32_t max = srv->opts.max_in_flight;
    uint32_t want = srv->credit_batch;
    uint32_t before = atomic_fetch_add(&srv->admitted, want);
    if ((uint64_t)before + want > max) {
        uint32_t fit = before < max ? max - before : 0;
        atomic_fetch_sub(&srv->admitted, want - fit);
        want = fit;
    }
    sl->credits = want;
    return want > 0;
}

static void loop_count_add(_Atomic uint32_t *count, uint32_t delta)
{
    uint32_t v = atomic_load_explicit(count, memory_order_relaxed);
    atomic_store_explicit(count, v + delta, memory_order_relaxed);
}

static inline __attribute__((always_inline)) bool request_admit(srv_loop *sl)
{
    if (sl->credits == 0 && !take_credits(sl))
        return false;
    sl->credits--;
    loop_count_add(&sl->in_flight, 1);
    return true;
}

static uint32_t in_flight_total(const arpc_server *srv)
{
    uint32_t total = 0;
    for (unsigned i = 0; i < srv->loop_count; i++)
        total += atomic_load(&srv->loops[i].in_flight);
    return total;
}

static void request_leave(srv_loop *sl)
{
    arpc_server *srv = sl->srv;
    loop_count_add(&sl->in_flight, (uint32_t)-1);
    if (++sl->credits >= 2 * srv->credit_batch) {
        atomic_fetch_sub(&srv->admitted, srv->credit_batch);
        sl->credits -= srv->credit_batch;
    }
    /* `draining` is the loop's own copy, set by begin_drain_task before the
     * shutdown thread first sums the counts: no fence needed here. */
    if (sl->draining && atomic_load_explicit(&sl->in_flight, memory_order_relaxed) == 0)
        arpc_event_signal(&srv->drained); /* the waiter sums all loops again */
}

/* ---- cancellation --------------------------------------------------------
 *
 * A request is canceled by its client (a protocol's on_cancel: gRPC's
 * RST_STREAM), by its connection's close while it runs (the peer vanished, an
 * idle or heartbeat close, a protocol error, the end of a shutdown's drain),
 * or by its deadline passing.  The first two set `canceled` on the request's
 * loop and tell the request's watchers (calls made with it as parent:
 * rpc/request.h; channel.c completes them with ARPC_ECANCELED), then its
 * cancel_cb.  A deadline needs no event: arpc_request_is_canceled compares it
 * with the clock, calls made for the request carry it already and fail at it,
 * and only a cancel_cb asks for a timer.
 *
 * Nothing here ends the request: the handler still returns, or a deferred
 * request is still answered, exactly once, and that frees the request and its
 * coroutine as always.  Only the answer changes: a canceled request's answer
 * is dropped (the client asked for none, or cannot hear it), and one that ends
 * past its deadline becomes a bare ARPC_ETIMEDOUT (gRPC's DEADLINE_EXCEEDED):
 * its client has given up, but a native client counts that answer to free
 * the share of the connection the call held.  Both count in `canceled`.
 *
 * Finding a request to cancel costs the requests that are never canceled
 * little.  A connection whose protocol can cancel (it has send_cancel, so its
 * peer may send the same: gRPC, native since streams, docs/protocol.md 13)
 * keeps its running requests on `requests`, where on_cancel finds one by id.
 * Only those that park need to be there: while a handler runs inside the
 * spawn no frame is decoded, so no cancel can come for it; start_request lists
 * a request once its spawn returns with it still running (`last_finished`
 * tells, without touching the request), which costs the request that answers
 * at once a compare, and the answer stays on the fast path unless the
 * request is `flagged` (canceled, watched, with a cancel_cb).  On
 * any other a request joins that list only when something watches it (a call
 * made with it as parent, a cancel_cb); the others learn of a close from the
 * connection's `gone`, which arpc_request_is_canceled reads.  So a protocol
 * that adds a cancel frame only fills in send_cancel and raises on_cancel.
 * Streams are always listed (a close or a cancel must reach one that waits).
 */

/* Whether the answer needs a closer look: a flagged request (canceled, watched,
 * with a cancel_cb), nobody to send it to, or past the deadline by the loop's
 * clock of this iteration (no clock read; ARPC__NO_DEADLINE is never reached).
 * Every answer asks: three loads. */
static inline bool request_needs_look(const arpc_request *req, const srv_conn *sc)
{
    return req->flagged || sc->conn.closed || req->sl->loop->now_ns >= req->deadline_ns;
}

/* The request ends: off its connection's list; the calls that watch it watch
 * no more (they run on with their own deadlines); its cancel_cb is dropped
 * unrun. */
static arpc__noinline void request_untrack(arpc_request *req)
{
    arpc__list_remove(&req->link);
    arpc__list *node;
    while ((node = arpc__list_pop_front(&req->watchers)) != NULL)
        arpc__list_init(node);
    if (req->cancel_cb != NULL) {
        req->cancel_cb = NULL;
        arpc__loop_timer_disarm(req->sl->loop, &req->cancel_timer);
    }
    atomic_store_explicit(&req->canceled, false, memory_order_relaxed);
    req->flagged = false;
}

/* Puts a request on its connection's list, where a cancel finds it. */
static void request_track(arpc_request *req)
{
    req->flagged = true;
    if (!arpc__list_linked(&req->link))
        arpc__list_push_back(&req->sc->requests, &req->link);
}

/* Runs the cancel callback, once.  Last: it may end the request. */
static void request_run_cancel_cb(arpc_request *req)
{
    arpc_request_cancel_cb cb = req->cancel_cb;
    if (cb == NULL)
        return;
    req->cancel_cb = NULL;
    arpc__loop_timer_disarm(req->sl->loop, &req->cancel_timer);
    cb(req, req->cancel_user_data);
}

/* Cancels a running request (its client's cancel, its connection's close).
 * Loop thread; idempotent. */
static void request_cancel(arpc_request *req)
{
    if (atomic_load_explicit(&req->canceled, memory_order_relaxed))
        return;
    atomic_store_explicit(&req->canceled, true, memory_order_relaxed);
    req->flagged = true;
    if (req->stream != NULL)
        arpc__stream_fail(req->stream, ARPC_ECANCELED, false); /* the peer asked for no END */
    arpc__list *node;
    while ((node = arpc__list_pop_front(&req->watchers)) != NULL) {
        arpc__cancel_node *watcher = arpc__container_of(node, arpc__cancel_node, link);
        watcher->fn(watcher);
    }
    request_run_cancel_cb(req);
}

static void on_cancel_deadline(arpc__timer *timer)
{
    request_run_cancel_cb(arpc__container_of(timer, arpc_request, cancel_timer));
}

/* Cancels the listed requests of a connection that closed.  They are taken
 * off the list first and put back one by one, so a callback that ends any of
 * them (or another) leaves the walk intact. */
static void cancel_connection_requests(srv_conn *sc)
{
    atomic_store_explicit(&sc->gone, true, memory_order_relaxed);
    arpc__list pending;
    arpc__list_move_all(&sc->requests, &pending);
    arpc__list *node;
    while ((node = arpc__list_pop_front(&pending)) != NULL) {
        arpc__list_push_back(&sc->requests, node);
        request_cancel(arpc__container_of(node, arpc_request, link));
    }
}

/* request_finish's slow half: the answer of a request that may be canceled
 * (none, or a bare ARPC_ETIMEDOUT past its deadline, counted), then the end
 * of its listing. */
static arpc__noinline void answer_looked_at(arpc_request *req, srv_conn *sc, int status)
{
    bool canceled = atomic_load_explicit(&req->canceled, memory_order_relaxed);
    if (canceled || sc->conn.closed || req->sl->loop->now_ns >= req->deadline_ns) {
        counter_inc(&req->sl->counters.canceled);
        if (!canceled)
            send_response(sc, req->id, ARPC_ETIMEDOUT, NULL, NULL);
    } else {
        send_response(sc, req->id, status, &req->response, &req->rsp_md);
    }
    if (arpc__list_linked(&req->link))
        request_untrack(req);
}

/* Sends the answer and returns everything the request held.  Loop thread. */
static void request_finish(arpc_request *req, int status)
{
    srv_loop *sl = req->sl;
    srv_conn *sc = req->sc;
    if (status >= ARPC_DEFERRED)
        status = ARPC_EINTERNAL; /* not a valid application code */
    if (arpc__likely(!request_needs_look(req, sc))) {
        send_response(sc, req->id, status, &req->response, &req->rsp_md);
        /* Listed only if it parked on a connection whose protocol can cancel. */
        if (arpc__unlikely(arpc__list_linked(&req->link)))
            arpc__list_remove(&req->link);
    } else {
        answer_looked_at(req, sc, status);
    }
    req->sc = NULL;
    sc->running--;
    sc->last_done_ns = sl->loop->now_ns;
    sc->last_finished = req;
    arpc__conn_unref(&sc->conn);
    request_put(sl, req);
    request_leave(sl);
}

/*
 * The monotonic clock at tick resolution (a few ms): the same clock as
 * arpc__now_ns, never ahead of it, and about a third of its cost, which is
 * paid on every request that carries a deadline.  Skipping a caller's
 * abandoned work is best effort, so a request may run up to one tick after
 * its deadline, but never is dropped before it.
 */
static int64_t coarse_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void run_request(void *arg)
{
    arpc_request *req = arg;
    if (req->deadline_ns != ARPC__NO_DEADLINE && coarse_now_ns() >= req->deadline_ns) {
        /* The caller has given up already: do not spend work on it. */
        counter_inc(&req->sl->counters.expired);
        /* Answered as expired (never run), not as canceled. */
        req->deadline_ns = ARPC__NO_DEADLINE;
        request_finish(req, ARPC_ETIMEDOUT);
        return;
    }
    int status = req->method->fn(req, req->method->user_data);
    if (status == ARPC_DEFERRED)
        return;
    request_finish(req, status);
}

static void finish_deferred_task(void *req, void *unused)
{
    arpc_request *r = req;
    request_finish(r, r->deferred_status);
}

void arpc_request_respond(arpc_request *req, int status)
{
    req->deferred_status = status;
    if (arpc_loop_current() == req->sl->loop) {
        request_finish(req, status);
        return;
    }
    /* The node is the request's own: the hand-off cannot fail for want of
     * memory.  A stopped loop runs it here once its thread has finished. */
    arpc__task_set(&req->task, finish_deferred_task, req, NULL);
    arpc__loop_post_or_run(req->sl->loop, &req->task);
}

const void *arpc_request_data(const arpc_request *req)
{
    return arpc__buf_data(&req->payload);
}

size_t arpc_request_len(const arpc_request *req)
{
    return req->payload.len;
}

const char *arpc_request_method(const arpc_request *req)
{
    return req->method->name;
}

int arpc_request_protocol(const arpc_request *req)
{
    return arpc__proto_id(req->proto);
}

bool arpc_request_is_tls(const arpc_request *req)
{
    return req->sc->conn.tp->secure;
}

const char *arpc_request_peer_subject(const arpc_request *req)
{
    return req->sc->conn.tp->peer_subject;
}

const char *arpc_request_peer_san(const arpc_request *req)
{
    return req->sc->conn.tp->peer_san;
}

const char *arpc_request_alpn(const arpc_request *req)
{
    return req->sc->conn.tp->alpn;
}

int64_t arpc__request_deadline_ns(const arpc_request *req)
{
    return req->deadline_ns;
}

arpc_loop *arpc__request_loop(const arpc_request *req)
{
    return req->sl->loop;
}

/* Canceled by its client or its connection's close (not by its deadline). */
static bool request_dropped(const arpc_request *req)
{
    return atomic_load_explicit(&req->canceled, memory_order_relaxed) ||
           atomic_load_explicit(&req->sc->gone, memory_order_relaxed);
}

int arpc__request_watch(arpc_request *req, arpc__cancel_node *node)
{
    if (request_dropped(req))
        return ARPC_ECANCELED;
    request_track(req);
    arpc__list_push_back(&req->watchers, &node->link);
    return 0;
}

bool arpc_request_is_canceled(const arpc_request *req)
{
    if (request_dropped(req))
        return true;
    return req->deadline_ns != ARPC__NO_DEADLINE && arpc__now_ns() >= req->deadline_ns;
}

int arpc_request_on_cancel(arpc_request *req, arpc_request_cancel_cb cb, void *user_data)
{
    if (req == NULL || cb == NULL || arpc_loop_current() != req->sl->loop)
        return ARPC_EINVAL;
    if (arpc_request_is_canceled(req))
        return ARPC_ECANCELED;
    if (req->cancel_cb == NULL && req->deadline_ns != ARPC__NO_DEADLINE) {
        int rc = arpc__loop_timer_arm(req->sl->loop, &req->cancel_timer, req->deadline_ns);
        if (rc < 0)
            return rc;
    }
    request_track(req);
    req->cancel_cb = cb;
    req->cancel_user_data = user_data;
    return 0;
}

int64_t arpc_request_remaining_ms(const arpc_request *req)
{
    if (req->deadline_ns == ARPC__NO_DEADLINE)
        return -1;
    int64_t left = req->deadline_ns - arpc__now_ns();
    return left > 0 ? left / ARPC__NS_PER_MS : 0;
}

arpc_buf *arpc_request_response(arpc_request *req)
{
    return &req->response;
}

arpc_arena *arpc_request_arena(arpc_request *req)
{
    if (req->arena == NULL && arpc_arena_create(&req->arena) < 0)
        return NULL;
    return req->arena;
}

size_t arpc_request_metadata_count(const arpc_request *req)
{
    return req->md.count;
}

int arpc_request_metadata_at(const arpc_request *req, size_t index, arpc_metadata_entry *out)
{
    if (out == NULL)
        return ARPC_EINVAL;
    return arpc__md_at(&req->md, index, out);
}

const void *arpc_request_metadata_get(const arpc_request *req, const char *key, size_t *value_len)
{
    if (key == NULL)
        return NULL;
    return arpc__md_find(&req->md, key, strlen(key), value_len);
}

int arpc_request_add_metadata(arpc_request *req, const char *key, const void *value,
                              size_t value_len)
{
    if (key == NULL)
        return ARPC_EINVAL;
    size_t key_len = strlen(key);
    int rc = arpc__md_check(key, key_len, value, value_len);
    if (rc < 0)
        return rc;
    return arpc__md_append(&req->rsp_md_buf, &req->rsp_md, key, key_len, value, value_len);
}

int arpc_request_set_error(arpc_request *req, const char *message)
{
    arpc_buf_clear(&req->response);
    return arpc_buf_append(&req->response, message, strlen(message));
}

/* ---- connections ------------------------------------------------------- */

static void reject(srv_conn *sc, uint64_t id, int status, _Atomic uint64_t *counter)
{
    if (counter != NULL)
        counter_inc(counter);
    send_response(sc, id, status, NULL, NULL);
}

static int start_request(srv_conn *sc, const arpc__msg *msg, const method_entry *method)
{
    srv_loop *sl = sc->sl;
    uint32_t per_conn = sl->srv->opts.max_in_flight_per_connection;
    /* The connection's share first: a client that ignores the share it was told
     * (settings) is refused its excess, not the other connections their calls. */
    if ((per_conn != 0 && sc->running >= per_conn) || !request_admit(sl)) {
        reject(sc, msg->id, ARPC_EOVERLOAD, &sl->counters.overloaded);
        return 0;
    }
    arpc_request *req = request_get(sl);
    int rc = req ? arpc__buf_append(&req->payload, msg->payload, msg->payload_len) : ARPC_ENOMEM;
    if (rc == 0 && msg->md.count > 0) {
        rc = arpc__buf_append(&req->md_buf, msg->md.data, msg->md.len);
        req->md.data = arpc__buf_head(&req->md_buf);
        req->md.len = msg->md.len;
        req->md.count = msg->md.count;
    }
    if (rc == 0) {
        req->sc = sc;
        req->proto = sc->proto;
        req->method = method;
        req->id = msg->id;
        req->deadline_ns =
            msg->timeout_ns <= 0 ? ARPC__NO_DEADLINE : sl->loop->now_ns + msg->timeout_ns;
        /* Taken before the spawn: the handler usually finishes inside it. */
        arpc__conn_ref(&sc->conn);
        sc->running++;
        sc->last_finished = NULL;
        rc = arpc__coro_spawn_run(sl->loop, run_request, req);
        if (rc < 0) {
            sc->running--;
            arpc__conn_unref(&sc->conn);
        } else if (sc->track_requests && sc->last_finished != req) {
            /* It parked (or was deferred): from now on a frame may cancel it, so on_cancel
             * must find it.  One that finished inside the spawn (the pointer compare
             * reads nothing of it: it may be freed) never could. */
            if (!arpc__list_linked(&req->link))
                arpc__list_push_back(&sc->requests, &req->link);
        }
    }
    if (rc < 0) {
        if (req)
            request_put(sl, req);
        request_leave(sl);
        reject(sc, msg->id, rc, NULL);
    }
    return 0;
}

/* Looks the method up, trying the connection's previous one first: a short
 * compare instead of hashing the name on every request.  Inline: every request asks, and
 * with streams it has three callers, which made the compiler call it. */
static inline __attribute__((always_inline)) const method_entry *
find_method(srv_conn *sc, const char *name, size_t len)
{
    const method_entry *last = sc->last_method;
    if (last != NULL && last->name_len == len && memcmp(last->name, name, len) == 0)
        return last;
    const method_entry *method = arpc__map_find(&sc->sl->srv->methods, name, len);
    if (method != NULL)
        sc->last_method = method;
    return method;
}

/* The protocol's events; the owner is the connection. */
static srv_conn *conn_of(void *owner)
{
    return arpc__container_of((arpc__conn *)owner, srv_conn, conn);
}

/* The protocol checked the id (native: increasing); the GOAWAY carries the highest. */
static void saw_request_id(srv_conn *sc, uint64_t id)
{
    if (id > sc->last_request_id)
        sc->last_request_id = id;
}

/* At most this many stream-fault lines a second per loop: one peer can cause thousands. */
#define FAULT_LOG_PER_SEC 5

static bool fault_log_allowed(srv_loop *sl)
{
    int64_t second = sl->loop->now_ns / (1000 * ARPC__NS_PER_MS);
    if (second != sl->log_second) {
        if (sl->log_dropped > 0)
            ARPC_LOG_WARNF("%llu more request faults not logged",
                           (unsigned long long)sl->log_dropped);
        sl->log_second = second;
        sl->log_lines = 0;
        sl->log_dropped = 0;
    }
    if (sl->log_lines >= FAULT_LOG_PER_SEC) {
        sl->log_dropped++;
        return false;
    }
    sl->log_lines++;
    return true;
}

/* A request the protocol ended or refused by itself (docs/grpc.md, "Hostile peers"). */
static void stream_fault(srv_conn *sc, uint64_t id, int fault)
{
    srv_counters *c = &sc->sl->counters;
    const char *what;
    if (fault == ARPC__PROTO_FAULT_HEADERS_TOO_BIG) {
        counter_inc(&c->oversized_headers);
        what = "headers over the limit, answered RESOURCE_EXHAUSTED";
    } else if (fault == ARPC__PROTO_FAULT_STREAM_TIMEOUT) {
        counter_inc(&c->stream_timeouts);
        what = "incomplete past its deadline or frame_timeout_ms, ended";
    } else {
        counter_inc(&c->refused_streams);
        what = "refused (REFUSED_STREAM): answers unwritten over max_unwritten_bytes";
    }
    if (fault_log_allowed(sc->sl))
        ARPC_LOG_WARNF("connection %llu to %s: request %llu: %s", (unsigned long long)sc->conn.id,
                       sc->conn.peer, (unsigned long long)id, what);
}

static int ev_request(void *owner, const arpc__msg *msg)
{
    srv_conn *sc = conn_of(owner);
    srv_loop *sl = sc->sl;
    saw_request_id(sc, msg->id);
    counter_inc(&sl->counters.requests);
    if (sc->goaway_sent) {
        reject(sc, msg->id, ARPC_ESHUTDOWN, NULL);
        return 0;
    }
    const method_entry *method = find_method(sc, msg->method, msg->method_len);
    if (method == NULL) {
        reject(sc, msg->id, ARPC_ENOMETHOD, &sl->counters.unknown_method);
        return 0;
    }
    return start_request(sc, msg, method);
}

/* A request that fails on its own: over max_frame_size (a client that did not
 * know the limit; the session skips its body) or with metadata that breaks the
 * rules.  Answered with `err`; the connection lives on. */
static int ev_refused(void *owner, uint64_t id, int err)
{
    srv_conn *sc = conn_of(owner);
    saw_request_id(sc, id);
    counter_inc(&sc->sl->counters.requests);
    if (err == ARPC_EMETADATA)
        stream_fault(sc, id, ARPC__PROTO_FAULT_HEADERS_TOO_BIG);
    reject(sc, id, sc->goaway_sent ? ARPC_ESHUTDOWN : err, NULL);
    return 0;
}

static void ev_peer_limits(void *owner, const arpc__proto_limits *peer)
{
    srv_conn *sc = conn_of(owner);
    uint32_t limit = sc->sl->srv->opts.max_frame_size;
    sc->answer_limit =
        peer->max_message != 0 && peer->max_message < limit ? peer->max_message : limit;
    sc->peer_stream_window = peer->stream_window;
}

/* A client's cancel of one request (HTTP/2 RST_STREAM; the native protocol has
 * none yet).  A walk of the connection's running requests: cancels are rare,
 * and the walk costs the requests that are not canceled nothing. */
static void ev_cancel(void *owner, uint64_t id)
{
    srv_conn *sc = conn_of(owner);
    arpc_stream *st = arpc__pending_find(&sc->streams, id);
    if (st != NULL) {
        request_cancel(st->req);
        return;
    }
    arpc__list *it;
    arpc_list_foreach(it, &sc->requests)
    {
        arpc_request *req = arpc__container_of(it, arpc_request, link);
        if (req->id == id) {
            request_cancel(req);
            return;
        }
    }
}

static void ev_stream_fault(void *owner, uint64_t id, int fault)
{
    stream_fault(conn_of(owner), id, fault);
}

static int ev_stream(void *owner, arpc__stream_frame frame, const arpc__msg *msg);
static bool ev_is_stream_method(void *owner, const char *method, size_t method_len);

static const arpc__proto_events srv_events = {
    .on_stream = ev_stream,
    .is_stream_method = ev_is_stream_method,
    .on_request = ev_request,
    .on_refused = ev_refused,
    .on_peer_limits = ev_peer_limits,
    .on_cancel = ev_cancel,
    .on_stream_fault = ev_stream_fault,
};

/* ---- streams: the server half (docs/streams.md) ---------------------------------------
 *
 * An OPEN becomes a request (admitted, counted and canceled like any other, with its
 * metadata and deadline) that holds a stream and runs the stream handler in its own
 * coroutine; the connection's `streams` table finds the stream for every frame after it.
 * The request is always on its connection's `requests`, so a close or the client's
 * cancel reaches it.  The handler's return sends END (status, trailing metadata, error
 * message) unless the stream ended already (the client canceled, the connection went, the
 * deadline passed, or the handler canceled it: those send what they must themselves).
 * A unary request to a stream method runs the same handler on a `unary` stream: one
 * message queued, the half-close behind it, and its first write is the answer, sent as
 * an ordinary response by request_finish.
 */

/* An END for stream `id`, outside any stream (refused before it ran). */
static void send_end(srv_conn *sc, uint64_t id, int status, const arpc__md *md,
                     const arpc_buf *message)
{
    if (sc->conn.closed)
        return;
    arpc__msg msg = {.id = id, .status = status};
    if (md != NULL)
        msg.md = *md;
    if (message != NULL && message->len > 0 && status != 0) {
        msg.payload = arpc__buf_head(message);
        msg.payload_len = message->len;
    }
    int rc = sc->proto->send_stream(sc->conn.proto, &sc->conn.out, ARPC__STREAM_END, &msg);
    if (rc == ARPC_ENOMEM) {
        arpc__msg bare = {.id = id, .status = ARPC_ENOMEM};
        rc = sc->proto->send_stream(sc->conn.proto, &sc->conn.out, ARPC__STREAM_END, &bare);
    }
    if (rc < 0) {
        arpc__conn_close(&sc->conn, rc);
        return;
    }
    arpc__conn_flush_soon(&sc->conn);
}

static int server_send(arpc_stream *st, arpc__stream_frame frame, arpc__msg *msg)
{
    arpc_request *req = st->req;
    srv_conn *sc = st->sc;
    if (st->unary) {
        /* The answer goes with the response (request_finish); no credit to return. */
        if (frame != ARPC__STREAM_MESSAGE)
            return 0;
        arpc__buf_clear(&req->response);
        return arpc__buf_append(&req->response, msg->payload, msg->payload_len);
    }
    if (sc->conn.closed)
        return ARPC_ECLOSED;
    bool first = frame == ARPC__STREAM_MESSAGE && !st->md_sent;
    if (first)
        msg->md = req->rsp_md; /* what was added before the first write leads it */
    if (frame == ARPC__STREAM_MESSAGE && !arpc__proto_fits(sc->proto, msg, false, answer_limit(sc)))
        return ARPC_ETOOBIG;
    int rc = sc->proto->send_stream(sc->conn.proto, &sc->conn.out, frame, msg);
    if (rc < 0)
        return rc;
    if (first) {
        st->md_sent = true;
        arpc__buf_clear(&req->rsp_md_buf); /* later entries travel with the END */
        memset(&req->rsp_md, 0, sizeof(req->rsp_md));
    }
    arpc__conn_flush_soon(&sc->conn);
    return 0;
}

static void server_ended(arpc_stream *st, int status, bool tell)
{
    srv_conn *sc = st->sc;
    arpc__loop_timer_disarm(sc->sl->loop, &st->deadline);
    if (st->unary)
        return;
    arpc__pending_remove(&sc->streams, st->id);
    if (tell)
        send_end(sc, st->id, status, &st->req->rsp_md, &st->req->response);
}

static const arpc__stream_transport server_transport = {
    .send = server_send,
    .ended = server_ended,
};

static void on_stream_deadline(arpc__timer *timer)
{
    arpc__stream_fail(arpc__container_of(timer, arpc_stream, deadline), ARPC_ETIMEDOUT, true);
}

/* The handler returned: the stream ends (if it has not), then the request's bookkeeping
 * as request_finish does it, without an answer of its own. */
static void stream_request_done(arpc_request *req, int status)
{
    srv_loop *sl = req->sl;
    srv_conn *sc = req->sc;
    arpc_stream *st = req->stream;
    if (status >= ARPC_DEFERRED)
        status = ARPC_EINTERNAL; /* not a valid application code */
    /* Counted in `canceled` as a unary request is (answer_looked_at): its client's cancel
     * or its connection's close (request_cancel), or its deadline, ended it under the
     * handler.  A handler's own arpc_stream_cancel is its status, not counted. */
    if (atomic_load_explicit(&req->canceled, memory_order_relaxed) ||
        (st->ended && st->end_status == ARPC_ETIMEDOUT))
        counter_inc(&sl->counters.canceled);
    arpc__stream_handler_returned(st, status);
    req->stream = NULL;
    arpc__stream_release(st);
    if (arpc__list_linked(&req->link))
        request_untrack(req);
    req->sc = NULL;
    sc->running--;
    sc->last_done_ns = sl->loop->now_ns;
    arpc__conn_unref(&sc->conn);
    request_put(sl, req);
    request_leave(sl);
}

static void run_stream(void *arg)
{
    arpc_request *req = arg;
    arpc_stream *st = req->stream;
    int status;
    if (req->deadline_ns != ARPC__NO_DEADLINE && coarse_now_ns() >= req->deadline_ns) {
        counter_inc(&req->sl->counters.expired);
        status = ARPC_ETIMEDOUT; /* its caller gave up before it started */
    } else {
        status = req->method->stream_fn(st, req->method->user_data);
    }
    stream_request_done(req, status);
}

/* A unary request to a stream method: the stream handler runs in the request's coroutine
 * (the unary path's, which pays nothing for it) on a `unary` stream, with the request's
 * payload queued as its one message and the half-close behind it.  Its first write lands
 * in the request's response (server_send); request_finish sends it, or the error. */
static int serve_unary_on_stream(arpc_request *req, void *user_data)
{
    srv_loop *sl = req->sl;
    arpc_stream *st =
        arpc__stream_new(&server_transport, sl->loop, true, sl->srv->opts.stream_window_bytes);
    if (st == NULL)
        return ARPC_ENOMEM;
    st->req = req;
    st->sc = req->sc;
    st->id = req->id;
    st->unary = true;
    arpc__timer_init(&st->deadline, on_stream_deadline);
    req->stream = st;
    arpc__stream_opened(st, UINT32_MAX, 0);
    (void)arpc__stream_on_message(st, arpc__buf_head(&req->payload), req->payload.len);
    arpc__buf_clear(&req->payload); /* a stream request's data is its messages */
    arpc__stream_on_half_close(st);
    int status = req->method->stream_fn(st, user_data);
    if (status >= ARPC_DEFERRED)
        status = ARPC_EINTERNAL;               /* a stream is not deferred */
    arpc__stream_handler_returned(st, status); /* no END: server_ended knows */
    req->stream = NULL;
    arpc__stream_release(st);
    return status;
}

/* The request and the stream of an OPEN, running from the start: on its connection's
 * list (a close or a cancel must reach a stream that waits), in its streams table, with
 * its deadline armed.  @return 0 or ARPC_ENOMEM (nothing taken). */
static int stream_request_start(srv_conn *sc, const arpc__msg *msg, const method_entry *method,
                                arpc_request *req, arpc_stream *st)
{
    srv_loop *sl = sc->sl;
    if (msg->md.count > 0) {
        if (arpc__buf_append(&req->md_buf, msg->md.data, msg->md.len) < 0)
            return ARPC_ENOMEM;
        req->md.data = arpc__buf_head(&req->md_buf);
        req->md.len = msg->md.len;
        req->md.count = msg->md.count;
    }
    if (arpc__pending_insert(&sc->streams, msg->id, st) < 0)
        return ARPC_ENOMEM;
    req->sc = sc;
    req->proto = sc->proto;
    req->method = method;
    req->id = msg->id;
    req->deadline_ns =
        msg->timeout_ns <= 0 ? ARPC__NO_DEADLINE : sl->loop->now_ns + msg->timeout_ns;
    req->stream = st;
    st->req = req;
    st->sc = sc;
    st->id = msg->id;
    arpc__timer_init(&st->deadline, on_stream_deadline);
    uint32_t window = sc->peer_stream_window ? sc->peer_stream_window : ARPC__STREAM_DEFAULT_WINDOW;
    arpc__stream_opened(st, window, answer_limit(sc));
    if (req->deadline_ns != ARPC__NO_DEADLINE)
        (void)arpc__loop_timer_arm(sl->loop, &st->deadline, req->deadline_ns);
    arpc__conn_ref(&sc->conn);
    sc->running++;
    arpc__list_push_back(&sc->requests, &req->link);
    return 0;
}

/* A stream for request `msg->id` (an OPEN): admitted like a request, its handler run in a
 * coroutine of its own. */
static int start_stream(srv_conn *sc, const arpc__msg *msg, const method_entry *method)
{
    srv_loop *sl = sc->sl;
    uint32_t per_conn = sl->srv->opts.max_in_flight_per_connection;
    if ((per_conn != 0 && sc->running >= per_conn) || !request_admit(sl)) {
        counter_inc(&sl->counters.overloaded);
        send_end(sc, msg->id, ARPC_EOVERLOAD, NULL, NULL);
        return 0;
    }
    arpc_request *req = request_get(sl);
    arpc_stream *st =
        req ? arpc__stream_new(&server_transport, sl->loop, true, sl->srv->opts.stream_window_bytes)
            : NULL;
    int rc = st != NULL ? stream_request_start(sc, msg, method, req, st) : ARPC_ENOMEM;
    if (rc == 0) {
        rc = arpc__coro_spawn_run(sl->loop, run_stream, req);
        if (rc < 0) {
            arpc__list_remove(&req->link);
            sc->running--;
            arpc__conn_unref(&sc->conn);
            arpc__loop_timer_disarm(sl->loop, &st->deadline);
            arpc__pending_remove(&sc->streams, msg->id);
            req->stream = NULL;
        }
    }
    if (rc < 0) {
        arpc__stream_free(st);
        if (req)
            request_put(sl, req);
        request_leave(sl);
        send_end(sc, msg->id, rc, NULL, NULL);
    }
    return 0;
}

static int ev_stream_open(srv_conn *sc, const arpc__msg *msg)
{
    srv_loop *sl = sc->sl;
    saw_request_id(sc, msg->id);
    counter_inc(&sl->counters.requests);
    if (sc->goaway_sent) {
        send_end(sc, msg->id, ARPC_ESHUTDOWN, NULL, NULL);
        return 0;
    }
    const method_entry *method = find_method(sc, msg->method, msg->method_len);
    if (method == NULL || method->stream_fn == NULL) {
        /* Unknown, or a unary method (include/arpc/stream.h). */
        counter_inc(&sl->counters.unknown_method);
        send_end(sc, msg->id, ARPC_ENOMETHOD, NULL, NULL);
        return 0;
    }
    return start_stream(sc, msg, method);
}

static int ev_stream(void *owner, arpc__stream_frame frame, const arpc__msg *msg)
{
    srv_conn *sc = conn_of(owner);
    if (frame == ARPC__STREAM_OPEN)
        return ev_stream_open(sc, msg);
    arpc_stream *st = arpc__pending_find(&sc->streams, msg->id);
    if (st == NULL)
        return 0; /* it ended already */
    switch (frame) {
    case ARPC__STREAM_MESSAGE:
        return arpc__stream_on_message(st, msg->payload, msg->payload_len);
    case ARPC__STREAM_HALF_CLOSE:
        arpc__stream_on_half_close(st);
        return 0;
    case ARPC__STREAM_CREDIT:
        arpc__stream_on_credit(st, msg->payload_len);
        return 0;
    default:
        return 0; /* END goes the other way: the session would not raise it */
    }
}

static bool ev_is_stream_method(void *owner, const char *method, size_t method_len)
{
    const method_entry *entry = find_method(conn_of(owner), method, method_len);
    return entry != NULL && entry->stream_fn != NULL;
}

/* The first bytes chose `proto`: its session, with the server's limits. */
static int srv_on_protocol(arpc__conn *conn, const arpc__proto_ops *proto)
{
    srv_conn *sc = arpc__container_of(conn, srv_conn, conn);
    const arpc_server_opts *opts = &sc->sl->srv->opts;
    arpc__proto_limits mine = {.max_message = opts->max_frame_size,
                               .max_in_flight = opts->max_in_flight_per_connection,
                               .metadata = true,
                               .streams = true,
                               .stream_window = opts->stream_window_bytes};
    int rc = arpc__conn_open_proto(conn, proto, ARPC__PROTO_SERVER, &mine, &srv_events, NULL);
    if (rc == 0) {
        sc->proto = proto;
        sc->track_requests = proto->send_cancel != NULL;
    }
    return rc;
}

static void srv_on_connected(arpc__conn *conn)
{
}

static void srv_on_close(arpc__conn *conn, int err)
{
    srv_conn *sc = arpc__container_of(conn, srv_conn, conn);
    if (conn->handshaking && err != ARPC_ETIMEDOUT && err != ARPC_ESHUTDOWN)
        counter_inc(&sc->sl->counters.tls_handshake_failures);
    else if (err == ARPC_EFRAME || err == ARPC_ETOOBIG || err == ARPC_EVERSION)
        counter_inc(&sc->sl->counters.protocol_errors);
    else if (err == ARPC_EOVERLOAD)
        counter_inc(&sc->sl->counters.flood_closes);
    arpc__list_remove(&sc->link);
    cancel_connection_requests(sc);
    arpc_server *srv = sc->sl->srv;
    atomic_fetch_sub(&srv->connections, 1);
    if (sc->close_when_flushed) {
        /* Written out, or lost with the peer: either way nothing is left to wait for.
         * The shutdown thread runs a task on this loop after its wait, so the
         * server outlives this signal. */
        sc->close_when_flushed = false;
        if (atomic_fetch_sub(&srv->flushing, 1) == 1)
            arpc_event_signal(&srv->drained);
    }
}

static int srv_on_secured(arpc__conn *conn)
{
    srv_conn *sc = arpc__container_of(conn, srv_conn, conn);
    counter_inc(&sc->sl->counters.tls_handshakes);
    return 0;
}

static void srv_on_flushed(arpc__conn *conn)
{
    srv_conn *sc = arpc__container_of(conn, srv_conn, conn);
    if (sc->close_when_flushed)
        arpc__conn_close(conn, ARPC_ESHUTDOWN);
}

static void srv_on_free(arpc__conn *conn)
{
    srv_conn *sc = arpc__container_of(conn, srv_conn, conn);
    arpc__pending_fini(&sc->streams);
    arpc__free(sc);
}

static void srv_on_read_paused(arpc__conn *conn)
{
    counter_inc(&arpc__container_of(conn, srv_conn, conn)->sl->counters.read_pauses);
}

static const arpc__conn_ops srv_conn_ops = {
    .on_protocol = srv_on_protocol,
    .on_connected = srv_on_connected,
    .on_close = srv_on_close,
    .on_secured = srv_on_secured,
    .on_free = srv_on_free,
    .on_flushed = srv_on_flushed,
    .on_read_paused = srv_on_read_paused,
};

/* Closes a connection over max_connections, telling the client why first: a
 * GOAWAY with ARPC_ETOOMANYCONNS (and no accepted request), so its calls fail
 * with that code, or go to another endpoint, instead of with a bare reset.
 * The 32-byte frame goes into an empty socket buffer, so a non-blocking send
 * takes it whole; input already sent is read away, so the close is a FIN that
 * follows the frame rather than a reset that could overtake it. */
static void refuse_connection(srv_loop *sl, int fd)
{
    counter_inc(&sl->counters.refused_connections);
    /* The protocol is not known yet: the first one's refusal (native: GOAWAY). */
    const arpc__proto_ops *proto = sl->srv->protocols[0];
    uint8_t refusal[64];
    size_t n =
        proto->refusal != NULL ? proto->refusal(refusal, sizeof(refusal), ARPC_ETOOMANYCONNS) : 0;
    if (n > 0) {
        ssize_t sent = send(fd, refusal, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)sent;
    }
    char discard[4096];
    for (int i = 0; i < 16 && recv(fd, discard, sizeof(discard), MSG_DONTWAIT) > 0; i++)
        ;
    close(fd);
}

static void accept_one(srv_loop *sl, int fd, bool tls)
{
    arpc_server *srv = sl->srv;
    uint64_t open = atomic_fetch_add(&srv->connections, 1);
    if (srv->opts.max_connections != 0 && open >= srv->opts.max_connections) {
        atomic_fetch_sub(&srv->connections, 1);
        if (tls) {
            /* No TLS yet to carry a GOAWAY: a plain close. */
            counter_inc(&sl->counters.refused_connections);
            close(fd);
        } else {
            refuse_connection(sl, fd);
        }
        return;
    }
    arpc__transport *tp = NULL;
    srv_conn *sc = arpc__calloc(1, sizeof(*sc));
    if (sc != NULL && tls && arpc__tls_transport_create(srv->tls, fd, NULL, NULL, &tp) < 0) {
        arpc__free(sc);
        sc = NULL;
    }
    if (sc == NULL) {
        atomic_fetch_sub(&srv->connections, 1);
        close(fd);
        return;
    }
    sc->sl = sl;
    sc->answer_limit = srv->opts.max_frame_size;
    arpc__list_init(&sc->requests);
    arpc__pending_init(&sc->streams);
    arpc__conn_init(&sc->conn, sl->loop, fd, &srv_conn_ops, false);
    sc->conn.detect = srv->protocols;
    sc->conn.detect_count = srv->protocol_count;
    sc->conn.write_early_frames = srv->opts.write_early_answers;
    sc->conn.out_limit = (size_t)srv->opts.max_unwritten_bytes; /* checked by create */
    if (tp != NULL)
        arpc__conn_set_transport(&sc->conn, tp);
    arpc__list_push_back(&sl->conns, &sc->link);
    if (arpc__conn_start(&sc->conn) == 0) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
            arpc__addr_format((struct sockaddr *)&ss, sc->conn.peer, sizeof(sc->conn.peer));
    }
    arpc__conn_unref(&sc->conn); /* the loop registration keeps it */
}

static void on_listener_event(arpc__io_watcher *watcher, uint32_t events)
{
    srv_listener *lsn = arpc__container_of(watcher, srv_listener, watcher);
    srv_loop *sl = lsn->sl;
    for (;;) {
        int fd = accept4(watcher->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            arpc__sock_set_nodelay(fd);
            accept_one(sl, fd, lsn->kind == LSN_TLS);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN)
            ARPC_LOG_WARNF("accept on port %d: %s",
                           lsn->kind == LSN_TLS ? sl->srv->tls_port : sl->srv->port,
                           arpc_strerror(-errno));
        return;
    }
}

/* ---- per-loop tasks: listen, drain, close ------------------------------ */

/* Runs `fn` on every loop of the server and waits until all have run it.
 * Each job is the srv_loop's own, so nothing is allocated and nothing can be
 * refused (a stopped loop's job runs here once the loop has finished).  Not
 * on a loop thread outside a coroutine: the wait would stall the loop. */
static int run_on_every_loop(arpc_server *srv, void (*fn)(void *a, void *b))
{
    arpc_wg wg;
    arpc_wg_init(&wg, srv->loop_count);
    for (unsigned i = 0; i < srv->loop_count; i++) {
        loop_job *job = &srv->loops[i].job;
        job->sl = &srv->loops[i];
        job->wg = &wg;
        job->result = 0;
        arpc__task_set(&job->task, fn, job, NULL);
        arpc__loop_post_or_run(srv->loops[i].loop, &job->task);
    }
    arpc_wg_wait(&wg, -1);
    for (unsigned i = 0; i < srv->loop_count; i++) {
        if (srv->loops[i].job.result < 0)
            return srv->loops[i].job.result;
    }
    return 0;
}

static void on_idle_sweep(arpc__timer *timer);

/*
 * Connection time limits: one sweep per loop, not a timer per connection, so
 * no frame or request touches the timer heap.  It runs every quarter of the
 * shortest limit, so a connection is closed between 1 and 1.25 times its
 * limit after the event the limit counts from, never before.  A frame that
 * completes or a byte that arrives only updates the connection's timestamps
 * (conn.c), which the sweep reads.
 */
static int64_t sweep_period_ns(const arpc_server_opts *o)
{
    int64_t limits[] = {o->idle_timeout_ms,  o->first_frame_timeout_ms, o->frame_timeout_ms,
                        o->tls_handshake_timeout_ms,
                        o->heartbeat_interval_ms > 0 ? o->heartbeat_interval_ms : 0,
                        o->heartbeat_interval_ms > 0 ? o->heartbeat_timeout_ms : 0};
    int64_t shortest = 0;
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        if (limits[i] > 0 && (shortest == 0 || limits[i] < shortest))
            shortest = limits[i];
    }
    if (shortest == 0)
        return 0;
    /* A limit of days needs no closer look than every hour (and must not
     * overflow the nanoseconds). */
    if (shortest > 4 * MAX_SWEEP_MS)
        shortest = 4 * MAX_SWEEP_MS;
    int64_t period = shortest * ARPC__NS_PER_MS / 4;
    return period < MIN_SWEEP_NS ? MIN_SWEEP_NS : period;
}

static void arm_idle_sweep(srv_loop *sl)
{
    int64_t period = sweep_period_ns(&sl->srv->opts);
    if (period <= 0)
        return;
    arpc__loop_timer_arm(sl->loop, &sl->idle_sweep, arpc__now_ns() + period);
}

/* Whether `limit_ms` (> 0: on) has passed since `since`: whole milliseconds,
 * never early, and no overflow for a limit of any size. */
static bool passed(int64_t now, int64_t since, int64_t limit_ms)
{
    return limit_ms > 0 && (now - since) / ARPC__NS_PER_MS >= limit_ms;
}

/* The counter of the time limit `sc` has passed at `now`, or NULL. */
static _Atomic uint64_t *limit_passed(srv_conn *sc, int64_t now)
{
    const arpc__conn *c = &sc->conn;
    const arpc_server_opts *o = &sc->sl->srv->opts;
    srv_counters *counters = &sc->sl->counters;
    if (c->handshaking && passed(now, c->opened_ns, o->tls_handshake_timeout_ms))
        return &counters->tls_handshake_timeouts;
    if (c->frames_in == 0 && passed(now, c->opened_ns, o->first_frame_timeout_ms))
        return &counters->first_frame_timeouts;
    /* While reading is paused the frame waits for us, not for the peer. */
    if (c->partial_since_ns != 0 && !c->read_paused &&
        passed(now, c->partial_since_ns, o->frame_timeout_ms))
        return &counters->frame_timeouts;
    /* Idle: nothing received, nothing written and nothing running.  A
     * request in progress keeps its connection, or its answer would be lost. */
    int64_t last = c->last_rx_ns > sc->last_done_ns ? c->last_rx_ns : sc->last_done_ns;
    last = c->last_tx_ns > last ? c->last_tx_ns : last;
    if (sc->running == 0 && passed(now, last, o->idle_timeout_ms))
        return &counters->idle_timeouts;
    return NULL;
}

/*
 * Heartbeats toward clients (heartbeat_interval_ms): only while the connection owes its
 * client something (a request in progress, an answer unwritten), because only then is a
 * frozen client a cost: idle_timeout_ms never fires while requests run, and their answers
 * would wait for TCP to give up.  Every protocol with the PING capability can ping from the
 * server (docs/protocol.md section 3: either side MAY send a PING; HTTP/2 likewise), and any
 * byte received, the PONG included, counts as life (last_rx_ns).  The PING goes once per
 * silence, at the sweep after heartbeat_interval_ms of it; the close comes at the sweep
 * heartbeat_timeout_ms after the PING with nothing received since: 1.5 to 1.75 s with
 * the defaults and the 125 ms sweep they set.
 */
static bool owes_peer(const srv_conn *sc)
{
    return sc->running > 0 || sc->conn.out.len > 0;
}

static void heartbeat_dead(srv_conn *sc, int64_t now)
{
    counter_inc(&sc->sl->counters.heartbeat_closes);
    ARPC_LOG_WARNF("connection %llu to %s: nothing received for %lld ms with %u requests "
                   "running and %zu bytes unwritten (heartbeat), closing it",
                   (unsigned long long)sc->conn.id, sc->conn.peer,
                   (long long)((now - sc->conn.last_rx_ns) / ARPC__NS_PER_MS), sc->running,
                   sc->conn.out.len);
    arpc__conn_close(&sc->conn, ARPC_EHEARTBEAT);
}

static void heartbeat_check(srv_conn *sc, int64_t now)
{
    const arpc_server_opts *o = &sc->sl->srv->opts;
    arpc__conn *c = &sc->conn;
    if (o->heartbeat_interval_ms <= 0 || sc->proto == NULL || !(sc->proto->caps & ARPC__PROTO_PING))
        return;
    if (!owes_peer(sc) || !passed(now, c->last_rx_ns, o->heartbeat_interval_ms)) {
        sc->hb_rx_ns = 0;
        return;
    }
    if (sc->hb_rx_ns != c->last_rx_ns) {
        /* A new silence: PING once. */
        sc->hb_rx_ns = c->last_rx_ns;
        sc->hb_ping_ns = now;
        int rc = sc->proto->send_ping(c->proto, &c->out, ++sc->hb_ping_id, false);
        if (rc == ARPC_EAGAIN)
            sc->hb_rx_ns = 0; /* no PING can go (a Thrift client takes none): no verdict */
        else if (rc < 0)
            arpc__conn_close(c, rc);
        else
            arpc__conn_flush_soon(c);
        return;
    }
    if (passed(now, sc->hb_ping_ns, o->heartbeat_timeout_ms))
        heartbeat_dead(sc, now);
}

/* Requests a multiplexed protocol holds incomplete past their time (ops->expire). */
static void expire_requests(srv_conn *sc, int64_t now)
{
    if (sc->proto == NULL || sc->proto->expire == NULL || sc->conn.closed)
        return;
    int64_t stall = sc->sl->srv->opts.frame_timeout_ms;
    int rc = sc->proto->expire(sc->conn.proto, &sc->conn.out, now,
                               stall > 0 ? stall * ARPC__NS_PER_MS : 0);
    if (rc < 0)
        arpc__conn_close(&sc->conn, rc);
    else if (sc->conn.out.len > 0)
        arpc__conn_flush_soon(&sc->conn);
}

/* The sweep's look at what the peer owes us and we owe it. */
static void sweep_peer(srv_conn *sc, int64_t now)
{
    arpc__conn_ref(&sc->conn);
    expire_requests(sc, now);
    if (!sc->conn.closed)
        heartbeat_check(sc, now);
    arpc__conn_unref(&sc->conn);
}

static void on_idle_sweep(arpc__timer *timer)
{
    srv_loop *sl = arpc__container_of(timer, srv_loop, idle_sweep);
    int64_t now = arpc__now_ns();
    arpc__list *it;
    arpc__list *tmp;
    arpc_list_foreach_safe(it, tmp, &sl->conns)
    {
        srv_conn *sc = arpc__container_of(it, srv_conn, link);
        _Atomic uint64_t *counter = limit_passed(sc, now);
        if (counter != NULL) {
            counter_inc(counter);
            arpc__conn_close(&sc->conn, ARPC_ETIMEDOUT);
            continue;
        }
        sweep_peer(sc, now);
    }
    arm_idle_sweep(sl);
}

static void start_listening_task(void *job_arg, void *unused)
{
    loop_job *job = job_arg;
    srv_loop *sl = job->sl;
    srv_listener *lsn = &sl->listeners[job->kind];
    lsn->watcher.fd = job->fd;
    lsn->watcher.on_event = on_listener_event;
    job->result = arpc__loop_watch(sl->loop, &lsn->watcher);
    if (job->result == 0)
        on_listener_event(&lsn->watcher, 0); /* connections that queued already */
    arm_idle_sweep(sl);
    arpc_wg_done(job->wg);
}

static int open_listeners(arpc_server *srv, const char *address, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = arpc__addr_parse(address, &ss, &len);
    if (rc < 0)
        return rc;
    char bound[128];
    for (unsigned i = 0; i < srv->loop_count; i++) {
        /* The first socket picks the port (maybe 0 -> ephemeral); the others
         * join it through SO_REUSEPORT. */
        rc = arpc_io_listen(i == 0 ? address : bound, LISTEN_BACKLOG, 1, &srv->loops[i].job.fd);
        if (rc < 0) {
            while (i-- > 0)
                close(srv->loops[i].job.fd);
            return rc;
        }
        if (i == 0) {
            *port = arpc_io_local_port(srv->loops[0].job.fd);
            if (ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)*port);
            else
                ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)*port);
            arpc__addr_format((struct sockaddr *)&ss, bound, sizeof(bound));
        }
    }
    return 0;
}

/* Opens listener `kind` on every loop.  The plaintext listener's port is the
 * server's port (arpc_server_port), else the first one's. */
static int listen_kind(arpc_server *srv, const char *address, unsigned kind)
{
    int port;
    int rc = open_listeners(srv, address, &port);
    if (rc < 0)
        return rc;
    if (kind == LSN_TLS)
        srv->tls_port = port;
    if (!srv->listening || kind == LSN_PLAIN)
        srv->port = port;
    srv->listening = true;
    srv->listening_on[kind] = true;
    for (unsigned i = 0; i < srv->loop_count; i++)
        srv->loops[i].job.kind = kind;
    return run_on_every_loop(srv, start_listening_task);
}

int arpc_server_listen(arpc_server *srv, const char *address)
{
    if (srv == NULL || address == NULL || srv->listening_on[LSN_PLAIN] || srv->shut_down)
        return ARPC_EINVAL;
    if (arpc__on_loop_outside_coro())
        return ARPC_ENOTCORO;
    return listen_kind(srv, address, LSN_PLAIN);
}

static arpc__tls_config server_tls_config(const arpc_server_tls_opts *tls)
{
    return (arpc__tls_config){.server = true,
                              .cert_file = tls->cert_file,
                              .key_file = tls->key_file,
                              .ca_file = tls->client_ca_file,
                              .client_cert_optional = tls->client_cert_optional,
                              .min_version = tls->min_version,
                              .max_version = tls->max_version};
}

int arpc_server_listen_tls(arpc_server *srv, const char *address, const arpc_server_tls_opts *tls)
{
    if (srv == NULL || address == NULL || tls == NULL || tls->cert_file == NULL ||
        tls->key_file == NULL || srv->tls != NULL || srv->shut_down)
        return ARPC_EINVAL;
    if (arpc__on_loop_outside_coro())
        return ARPC_ENOTCORO;
    arpc__tls_config cfg = server_tls_config(tls);
    char why[256] = "";
    int rc = arpc__tls_ctx_create(&cfg, &srv->tls, why, sizeof(why));
    if (rc < 0) {
        ARPC_LOG_WARNF("TLS listener on %s: %s: %s", address, arpc_strerror(rc), why);
        return rc;
    }
    return listen_kind(srv, address, LSN_TLS);
}

int arpc_server_reload_tls(arpc_server *srv)
{
    if (srv == NULL || srv->tls == NULL)
        return ARPC_EINVAL;
    char why[256] = "";
    int rc = arpc__tls_ctx_reload(srv->tls, why, sizeof(why));
    if (rc < 0)
        ARPC_LOG_WARNF("TLS reload on port %d: %s: %s (the certificates in use stay)",
                       srv->tls_port, arpc_strerror(rc), why);
    return rc;
}

int arpc_server_port(const arpc_server *srv)
{
    return srv->port;
}

int arpc_server_tls_port(const arpc_server *srv)
{
    return srv->tls_port;
}

/* Drain: from now on requests are refused (ARPC_ESHUTDOWN, never run), and a
 * protocol that can say so tells the client the last id it will answer.  One
 * that cannot (no GOAWAY) just refuses them: its client retries only
 * idempotent calls after the connection closes. */
static void send_goaway(srv_conn *sc)
{
    if (sc->goaway_sent || sc->conn.closed)
        return;
    sc->goaway_sent = true;
    if (sc->proto == NULL || !(sc->proto->caps & ARPC__PROTO_GOAWAY))
        return;
    if (sc->proto->send_goaway(sc->conn.proto, &sc->conn.out, sc->last_request_id,
                               ARPC_ESHUTDOWN) == 0)
        arpc__conn_flush_soon(&sc->conn);
}

static void stop_listening_task(void *job_arg, void *unused)
{
    loop_job *job = job_arg;
    srv_loop *sl = job->sl;
    for (unsigned k = 0; k < LSN_COUNT; k++) {
        srv_listener *lsn = &sl->listeners[k];
        if (lsn->watcher.fd < 0)
            continue;
        /* Connections the kernel has queued already would be reset by the
         * close: take them, so they get a GOAWAY like the others. */
        on_listener_event(&lsn->watcher, 0);
        arpc__loop_unwatch(sl->loop, &lsn->watcher);
        close(lsn->watcher.fd);
        lsn->watcher.fd = -1;
    }
    arpc__loop_timer_disarm(sl->loop, &sl->idle_sweep);
    arpc_wg_done(job->wg);
}

static void begin_drain_task(void *job_arg, void *unused)
{
    loop_job *job = job_arg;
    srv_loop *sl = job->sl;
    arpc__list *it;
    arpc_list_foreach(it, &sl->conns)
    {
        send_goaway(arpc__container_of(it, srv_conn, link));
    }
    sl->draining = true;
    arpc_wg_done(job->wg);
}

static void close_all_task(void *job_arg, void *unused)
{
    loop_job *job = job_arg;
    srv_loop *sl = job->sl;
    arpc__list *it;
    arpc__list *tmp;
    arpc_list_foreach_safe(it, tmp, &sl->conns)
    {
        srv_conn *sc = arpc__container_of(it, srv_conn, link);
        /* A failed flush closes the connection, which may free it: hold it. */
        arpc__conn_ref(&sc->conn);
        arpc__conn_flush_now(&sc->conn); /* the GOAWAY and the last answers */
        if (!job->force && !sc->conn.closed && sc->conn.out.len > 0) {
            /* Answers the socket could not take yet: closing now would lose
             * them.  srv_on_flushed closes it once they are written; the
             * shutdown's forced round, at the drain deadline, at the latest. */
            if (!sc->close_when_flushed) {
                sc->close_when_flushed = true;
                atomic_fetch_add(&sl->srv->flushing, 1);
            }
        } else {
            arpc__conn_close(&sc->conn, ARPC_ESHUTDOWN);
        }
        arpc__conn_unref(&sc->conn);
    }
    arpc_wg_done(job->wg);
}

static void free_pool_task(void *job_arg, void *unused)
{
    loop_job *job = job_arg;
    srv_loop *sl = job->sl;
    arpc__list *node;
    while ((node = arpc__list_pop_front(&sl->free_requests)) != NULL)
        request_free(arpc__container_of(node, arpc_request, link));
    sl->free_request_count = 0;
    arpc_wg_done(job->wg);
}

int arpc_server_shutdown(arpc_server *srv, int64_t drain_timeout_ms)
{
    if (srv == NULL)
        return ARPC_EINVAL;
    if (arpc__on_loop_outside_coro())
        return ARPC_ENOTCORO;
    if (srv->shut_down)
        return 0;
    srv->shut_down = true;
    /* Every loop stops listening before any sends GOAWAY: a client that
     * reconnects after a GOAWAY must be refused (never sent: safe to retry),
     * not queued on a busy loop's listener and reset when that one closes. */
    run_on_every_loop(srv, stop_listening_task);
    run_on_every_loop(srv, begin_drain_task);
    int rc = 0;
    int64_t deadline = arpc__now_ns() + drain_timeout_ms * ARPC__NS_PER_MS;
    while (in_flight_total(srv) > 0) {
        int64_t left_ms = (deadline - arpc__now_ns()) / ARPC__NS_PER_MS;
        if (left_ms <= 0 || arpc_event_wait(&srv->drained, left_ms) == ARPC_ETIMEDOUT) {
            rc = in_flight_total(srv) > 0 ? ARPC_ETIMEDOUT : 0;
            break;
        }
    }
    /* A finished request's answer may still sit in its connection's output
     * (the socket was full): those connections close once it is written. */
    run_on_every_loop(srv, close_all_task);
    while (atomic_load(&srv->flushing) > 0) {
        int64_t left_ms = (deadline - arpc__now_ns()) / ARPC__NS_PER_MS;
        if (left_ms <= 0 || arpc_event_wait(&srv->drained, left_ms) == ARPC_ETIMEDOUT) {
            if (atomic_load(&srv->flushing) > 0)
                rc = ARPC_ETIMEDOUT;
            break;
        }
    }
    /* The deadline: close what is left.  This round also runs after any
     * on_close that signalled `drained`, so nothing touches the server later. */
    for (unsigned i = 0; i < srv->loop_count; i++)
        srv->loops[i].job.force = true;
    run_on_every_loop(srv, close_all_task);
    return rc;
}

static void destroy_coro(void *srv)
{
    arpc_server_destroy(srv);
    arpc__loop_release_runtime(arpc__loop_current());
}

/* On a loop thread outside a coroutine the destroy cannot wait for the
 * loops: it continues in a coroutine of this loop. */
static void destroy_later(arpc_server *srv)
{
    arpc_loop *loop = arpc__loop_current();
    arpc__loop_hold_runtime(loop);
    if (arpc_coro_spawn(loop, destroy_coro, srv) == 0)
        return;
    arpc__loop_release_runtime(loop);
    ARPC_LOG_ERRORF("arpc_server_destroy: no coroutine to finish it on this loop; leaked");
}

void arpc_server_destroy(arpc_server *srv)
{
    if (srv == NULL)
        return;
    if (arpc__on_loop_outside_coro()) {
        destroy_later(srv);
        return;
    }
    arpc_server_shutdown(srv, 0);
    /* Handlers still running hold pointers into the server: wait for them. */
    while (in_flight_total(srv) > 0)
        arpc_event_wait(&srv->drained, 100);
    run_on_every_loop(srv, free_pool_task);
    for (size_t i = 0; i < srv->methods.cap; i++)
        arpc__free(srv->methods.slots[i].value);
    arpc__map_fini(&srv->methods);
    if (srv->registry != NULL)
        srv->registry_free(srv->registry);
    while (srv->owned != NULL) {
        arpc__server_owned *next = srv->owned->next;
        arpc__free(srv->owned);
        srv->owned = next;
    }
    arpc__free(srv->loops);
    arpc__tls_ctx_destroy(srv->tls);
    arpc__free(srv);
}

static void get_peer_stats(const srv_counters *c, arpc_server_stats *out)
{
    out->heartbeat_closes += atomic_load_explicit(&c->heartbeat_closes, memory_order_relaxed);
    out->flood_closes += atomic_load_explicit(&c->flood_closes, memory_order_relaxed);
    out->stream_timeouts += atomic_load_explicit(&c->stream_timeouts, memory_order_relaxed);
    out->refused_streams += atomic_load_explicit(&c->refused_streams, memory_order_relaxed);
    out->oversized_headers += atomic_load_explicit(&c->oversized_headers, memory_order_relaxed);
}

void arpc_server_get_stats(const arpc_server *srv, arpc_server_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < srv->loop_count; i++) {
        const srv_counters *c = &srv->loops[i].counters;
        out->requests += atomic_load_explicit(&c->requests, memory_order_relaxed);
        out->overloaded += atomic_load_explicit(&c->overloaded, memory_order_relaxed);
        out->expired += atomic_load_explicit(&c->expired, memory_order_relaxed);
        out->unknown_method += atomic_load_explicit(&c->unknown_method, memory_order_relaxed);
        out->refused_connections +=
            atomic_load_explicit(&c->refused_connections, memory_order_relaxed);
        out->protocol_errors += atomic_load_explicit(&c->protocol_errors, memory_order_relaxed);
        out->idle_timeouts += atomic_load_explicit(&c->idle_timeouts, memory_order_relaxed);
        out->first_frame_timeouts +=
            atomic_load_explicit(&c->first_frame_timeouts, memory_order_relaxed);
        out->frame_timeouts += atomic_load_explicit(&c->frame_timeouts, memory_order_relaxed);
        out->read_pauses += atomic_load_explicit(&c->read_pauses, memory_order_relaxed);
        out->canceled += atomic_load_explicit(&c->canceled, memory_order_relaxed);
        out->tls_handshakes += atomic_load_explicit(&c->tls_handshakes, memory_order_relaxed);
        out->tls_handshake_failures +=
            atomic_load_explicit(&c->tls_handshake_failures, memory_order_relaxed);
        out->tls_handshake_timeouts +=
            atomic_load_explicit(&c->tls_handshake_timeouts, memory_order_relaxed);
        get_peer_stats(c, out);
    }
    out->connections = atomic_load(&((arpc_server *)srv)->connections);
}

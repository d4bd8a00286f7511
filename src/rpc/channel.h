/*
 * Internal structure of a channel: endpoints, connection slots, links (one
 * physical connection each) and calls.  See channel.c for the design notes
 * and docs/connections.md for the life cycle.
 */
#ifndef ARPC_RPC_CHANNEL_H
#define ARPC_RPC_CHANNEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <arpc/client.h>

#include "base/list.h"
#include "rpc/conn.h"
#include "rpc/pending.h"
#include "rpc/request.h"
#include "runtime/inbox.h"

typedef struct cli_endpoint cli_endpoint;
typedef struct cli_slot cli_slot;
typedef struct cli_link cli_link;
typedef struct cli_call cli_call;

/* What a call sends as its payload: `len` bytes, which `pack` writes straight
 * into the call's own buffer (a typed request: include/arpc/protobuf.h) or,
 * with `pack` NULL, the bytes at `data`.  `pack` writes exactly `len` bytes. */
typedef struct arpc__payload {
    const void *data;
    size_t len;
    void (*pack)(const void *data, uint8_t *out);
} arpc__payload;

/* Room inside a call for its initiator's context, copied in by
 * arpc__call_start (typed calls: the method, the typed callback, its
 * user_data, the arena). */
typedef struct arpc__call_ctx {
    const void *p[3];
    void (*fn)(void);
} arpc__call_ctx;

struct cli_call {
    arpc__list deadline_link; /* in its loop's deadline queue (channel.c) */
    arpc__list link;          /* in a slot's waiting list, or the loop's pool */
    arpc_channel *ch;
    cli_endpoint *ep;
    cli_link *lnk; /* the link it was sent on; NULL while not sent */
    uint64_t id;
    int64_t deadline_ns;
    uint64_t hash_key;
    bool idempotent;
    bool fresh;        /* not delayed yet: its whole timeout still remains */
    uint32_t timeout_ms; /* as requested (0: no deadline), sent while `fresh` */
    uint32_t attempts;
    int last_error; /* why the previous attempt failed */
    arpc_call_cb cb;
    void *user_data;
    arpc__task task; /* its hand-off to another loop, or a deferred completion */
    /* What the call sends, not encoded bytes: the method name at
     * [0, method_len), the payload after it, copied once by arpc_call_async.
     * The link's protocol encodes them when the call is sent (again after a
     * retry). */
    arpc_buf data;
    uint16_t method_len;
    /* Request metadata, in memory form (proto/metadata.h), between the method
     * and the payload in `data`: md_len bytes, md_count entries. */
    uint32_t md_len;
    uint32_t md_count;
    arpc_metadata *rsp_md; /* the caller's list for the answer's metadata, or NULL */
    arpc_buf *err_msg;     /* arpc_call_opts.error_message, or NULL */
    /* The initiator's context (arpc__call_start), held here so that a typed
     * completion allocates nothing: the callback gets &ctx as its user_data. */
    arpc__call_ctx ctx;
    /* Recycled after its callback, not before: it has a context or a parent. */
    bool late_put;
    /* The parent request's loop (arpc_call_opts.parent), or NULL: no parent,
     * and none of the fields below is used ("Parents" in channel.c). */
    arpc_loop *parent_loop;
    arpc__cancel_node cancel;       /* in the parent's watchers; parent_loop only */
    arpc__task cancel_task;         /* the parent's cancel, to the loop holding the call */
    _Atomic(arpc_loop *) holder;    /* the loop whose slot holds it; NULL in transit or done */
    _Atomic bool cancel_requested;  /* the parent was canceled */
    _Atomic uint32_t refs;          /* the call's own, and a cancel task's in flight */
};

struct cli_link {
    arpc__conn conn;
    const arpc__proto_ops *proto; /* the protocol of conn's session */
    cli_slot *slot; /* NULL once detached (GOAWAY) or the slot is gone */
    arpc_channel *ch;
    cli_endpoint *ep;
    arpc__pending pending;
    uint64_t next_id; /* the last request id sent */
    uint64_t ping_id; /* the last PING id sent: PINGs have an id space of their own */
    uint64_t pong_id; /* the last PING id answered */
    /* The server's settings (docs/protocol.md section 4): until the PONG of the
     * first PING brings them, one call at a time and no frame limit. */
    uint32_t peer_max_frame;     /* 0: not announced */
    uint32_t peer_max_in_flight; /* calls in flight allowed on this link; 0: no limit */
    /* What that share leaves calls: peer_max_in_flight less the open streams, UINT32_MAX
     * for no limit (link_set_room), so a call's check is one compare. */
    uint32_t room;
    uint32_t abandoned; /* timed-out calls the server has not answered yet: still its work */
    arpc__timer heartbeat;
    int64_t ping_sent_ns;
    bool ping_outstanding;
    bool settings_known;
    bool heard_from_peer; /* a frame arrived: the endpoint is healthy */
    bool goaway;
    arpc__list draining_link; /* in its former slot's `draining` after GOAWAY */
    /* Streams open on the link (id -> arpc_stream, docs/streams.md); they share the ids
     * and the server's per-connection share with calls. */
    arpc__pending streams;
    bool peer_streams;           /* the server takes streams (its settings, or the protocol) */
    uint32_t peer_stream_window; /* the credit a new stream starts with */
};

struct cli_slot {
    cli_endpoint *ep;
    arpc_loop *loop;
    cli_link *lnk;        /* connecting or connected; NULL if none */
    arpc__list waiting;   /* calls waiting for the link */
    arpc__list draining;  /* links detached by GOAWAY that still owe answers */
    arpc__list streams;   /* streams waiting for the link (arpc_stream.link) */
    arpc__timer backoff;  /* reconnect delay */
    arpc__task task;      /* arpc_channel_destroy's jobs on the slot's loop */
    int64_t backoff_ms;
    bool in_backoff;
    bool closed;
};

struct cli_endpoint {
    arpc_channel *ch;
    char address[128];
    char host[128]; /* address without its port: TLS's server name by default */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    cli_slot *slots;
    unsigned slot_count;
    _Atomic unsigned next_slot;
    _Atomic uint32_t failures; /* consecutive */
    _Atomic int last_error;    /* of the latest failure */
    _Atomic bool ejected;
    _Atomic int64_t in_flight;
};

typedef struct ring_point {
    uint64_t hash;
    unsigned endpoint;
} ring_point;

struct arpc_channel {
    arpc_runtime *rt;
    arpc_channel_opts opts;
    const arpc__proto_ops *proto; /* opts.protocol */
    struct arpc__tls_ctx *tls;    /* opts.tls.enabled: every link's TLS; else NULL */
    char *tls_server_name;        /* opts.tls.server_name, copied; NULL: each host */
    cli_endpoint *eps;
    unsigned ep_count;
    ring_point *ring; /* consistent hashing */
    unsigned ring_len;
    _Atomic unsigned next_ep;
    _Atomic int64_t active_calls;
    _Atomic bool closing;
    arpc_event idle; /* signalled when closing and active_calls reaches 0 */
    _Atomic uint64_t calls;
    _Atomic uint64_t retries;
    _Atomic uint64_t reconnects;
    _Atomic uint64_t heartbeat_failures;
    _Atomic uint64_t late_answers;
    _Atomic uint64_t goaways;
};

/*
 * arpc_call_async() with a payload that may be packed in place, and, when
 * `ctx` is not NULL, a context copied into the call: `cb` then gets a pointer
 * to that copy as its user_data (`user_data` is ignored), valid for the
 * callback's duration.  Returns and the callback contract as
 * arpc_call_async().
 * Thread: any.  Suspends: no.
 */
int arpc__call_start(arpc_channel *ch, const char *method, const arpc__payload *payload,
                     const arpc_call_opts *opts, arpc_call_cb cb, void *user_data,
                     const arpc__call_ctx *ctx);

/* Consumes a synchronous call's answer on the thread that completes it (a
 * loop thread), while its caller waits: `status` and the borrowed answer as
 * arpc_call_cb gets them.  @return what arpc__call_wait returns. */
typedef int (*arpc__answer_fn)(int status, const void *rsp, size_t rsp_len, void *arg);

/*
 * arpc_call() with a payload that may be packed in place, whose answer is
 * handed to `fn` (with `arg`) instead of being appended to a buffer.
 * @return the errors of arpc_call() before the call is made, else what `fn`
 *         returned.
 * Thread and Suspends: as arpc_call().
 */
int arpc__call_wait(arpc_channel *ch, const char *method, const arpc__payload *payload,
                    const arpc_call_opts *opts, arpc__answer_fn fn, void *arg);

/* Makes the channel speak `proto`, a protocol of a test's own, instead of
 * opts.protocol (the client's half of arpc__server_add_protocol: tests that
 * prove the seam).  Before the channel's first call or stream.  Thread: the
 * creator's. */
void arpc__channel_use_protocol(arpc_channel *ch, const arpc__proto_ops *proto);

#endif

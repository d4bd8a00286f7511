/*
 * The stream object (include/arpc/stream.h) as the rpc layer shares it: stream.c owns its
 * queue of received messages, its flow-control credit and its waiting operations;
 * channel.c (client) and server.c (server) carry its frames over their connections through
 * the protocol seam (ops->send_stream, events->on_stream) and tell stream.c what arrived.
 * docs/streams.md describes the model.
 *
 * Threading: everything below runs on the stream's loop (its connection's), except the
 * fields marked atomic, which the public functions read on the caller's thread.
 */
#ifndef ARPC_RPC_STREAM_INTERNAL_H
#define ARPC_RPC_STREAM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <arpc/client.h>
#include <arpc/coro.h>
#include <arpc/metadata.h>
#include <arpc/server.h>
#include <arpc/stream.h>

#include "base/buf.h"
#include "base/list.h"
#include "proto/proto.h"
#include "rpc/request.h"
#include "runtime/loop.h"

/* The default window (arpc_channel_opts / arpc_server_opts.stream_window_bytes), and the
 * smallest accepted: a protocol may refuse to announce less (native: docs/protocol.md 13). */
#define ARPC__STREAM_DEFAULT_WINDOW (256u * 1024)
#define ARPC__STREAM_MIN_WINDOW     (64u * 1024)

enum { ARPC__STREAM_OP_READ = 0, ARPC__STREAM_OP_WRITE, ARPC__STREAM_OP_FINISH, ARPC__STREAM_OPS };

typedef struct arpc__stream_sync arpc__stream_sync;

/* One operation of a kind (read, write, finish), waiting form or callback form; a stream
 * has one of each, so a second outstanding one of a kind is refused, never allocated. */
typedef struct arpc__stream_op {
    arpc__task task; /* its hand-off to the stream's loop */
    _Atomic bool busy;
    bool waiting;            /* parked in the stream until it can complete (loop thread) */
    arpc__stream_sync *sync; /* the waiting form's rendezvous, or NULL: the callback form */
    arpc_stream_done_cb done_cb;
    arpc_stream_read_cb read_cb;
    void *user_data;
    const void *data; /* write: the message (the caller's, or `copy`) */
    size_t len;
    arpc_buf copy; /* write_async: its own copy of the message */
} arpc__stream_op;

/* What carries a stream's frames: the channel's link or the server's connection. */
typedef struct arpc__stream_transport {
    /* Sends MESSAGE (msg->payload, and msg->md where the transport adds it), HALF_CLOSE or
     * CREDIT (msg->payload_len) on the stream.  @return 0, ARPC_ETOOBIG (over the peer's
     * limit), ARPC_ENOMEM, or ARPC_ECLOSED (the connection is gone). */
    int (*send)(arpc_stream *st, arpc__stream_frame frame, arpc__msg *msg);
    /* The stream ended with `status`; runs once, last thing stream.c does with the
     * connection.  `tell`: the end is local (cancel, deadline, a failure), so the peer
     * is told (client: send_cancel; server: END with `status`); else the peer ended it or
     * its connection is gone. */
    void (*ended)(arpc_stream *st, int status, bool tell);
} arpc__stream_transport;

typedef struct arpc__stream_msg {
    arpc__list link;
    size_t len;
    unsigned char data[];
} arpc__stream_msg;

struct arpc_stream {
    const arpc__stream_transport *tp;
    arpc_loop *loop;
    bool server;
    bool unary;  /* server: a unary request served by a stream handler */
    bool opened; /* the OPEN went (client) or arrived (server): frames may flow */
    bool ended;
    bool send_closed; /* client: half-closed; server (unary): the answer was written */
    bool half_close_sent;
    bool peer_closed; /* server: the client half-closed; client: the END arrived */
    bool discard;     /* client finish: messages arriving now are dropped (and credited) */
    bool sent_message;
    bool md_sent;   /* server: its initial metadata went */
    int end_status; /* once ended */
    /* A failure the caller's thread may read (close_send), 0 while none. */
    _Atomic int public_status;
    _Atomic bool public_ended;
    _Atomic bool close_requested;
    _Atomic bool cancel_requested;
    uint64_t id;
    /* Flow control (docs/streams.md). */
    int64_t credit;   /* bytes we may still send; a write waits while <= 0 */
    uint32_t window;  /* what we granted the peer */
    uint64_t unacked; /* bytes received and not yet credited back */
    uint32_t peer_max_frame;
    arpc__list queue; /* arpc__stream_msg received, unread */
    uint64_t queued_bytes;
    _Atomic uint64_t peak_queued; /* tests: the most queued_bytes ever held */
    _Atomic uint64_t write_waits; /* tests: writes that waited for credit */
    _Atomic bool write_suspended; /* tests: a write waits for credit now */
    arpc__stream_op ops[ARPC__STREAM_OPS];
    arpc__task close_task;
    arpc__task cancel_task;
    arpc__task destroy_task;
    arpc_buf error_message;
    /* Client. */
    arpc_channel *ch;
    void *ep;        /* cli_endpoint */
    void *slot;      /* cli_slot that holds it */
    void *lnk;       /* cli_link it was opened on, NULL when not on one */
    arpc__list link; /* in its slot's waiting streams */
    arpc__task open_task;
    arpc__timer deadline;
    int64_t deadline_ns;
    uint32_t timeout_ms;
    uint32_t attempts;
    arpc_buf open_data; /* method, then request metadata in memory form */
    uint16_t method_len;
    uint32_t md_len;
    uint32_t md_count;
    arpc_metadata *rsp_md;
    /* arpc_call_opts.parent: the request's loop (NULL: none), where `parent_node` is
     * linked into its watchers and unlinked again (rpc/request.h). */
    arpc_loop *parent_loop;
    arpc__cancel_node parent_node;
    arpc__task parent_task;
    /* The owner's reference, and one per parent cancel in flight to the stream's loop:
     * the last one frees it. */
    _Atomic uint32_t refs;
    /* Server. */
    arpc_request *req;
    void *sc; /* srv_conn */
};

/* A new stream for `tp` on `loop` with our window `window`.  @return it, or NULL. */
arpc_stream *arpc__stream_new(const arpc__stream_transport *tp, arpc_loop *loop, bool server,
                              uint32_t window);
void arpc__stream_free(arpc_stream *st);
/* Server: frees an ended stream once the operations already handed to its loop have run.
 * Loop thread. */
void arpc__stream_release(arpc_stream *st);

/* The transport has opened the stream: frames may flow, `credit` bytes may be sent, and
 * messages over `peer_max_frame` (0: no limit) fail with ARPC_ETOOBIG.  Loop thread. */
void arpc__stream_opened(arpc_stream *st, uint32_t credit, uint32_t peer_max_frame);

/* The peer's frames.  @return 0, or a negative error that closes the connection (a peer
 * over the window it was granted: ARPC_EFRAME). */
int arpc__stream_on_message(arpc_stream *st, const void *data, size_t len);
void arpc__stream_on_half_close(arpc_stream *st);
void arpc__stream_on_credit(arpc_stream *st, uint64_t bytes);
/* Client: the END (the transport took the stream off its connection already). */
void arpc__stream_on_end(arpc_stream *st, int status, const void *msg, size_t len);
/* The stream fails with `err` (local cancel or deadline with `tell`; a lost connection or
 * the peer's cancel without).  A no-op once ended. */
void arpc__stream_fail(arpc_stream *st, int err, bool tell);
/* The stream fails with `err` (typed streams: a message that did not unpack,
 * ARPC_EBADMSG) as arpc_stream_cancel() fails it with ARPC_ECANCELED; a stream the
 * peer ended with status 0 has its unread messages dropped and ends with `err` instead.
 * Thread: any. */
void arpc__stream_abort(arpc_stream *st, int err);
/* Server: the handler returned `status`.  Ends the stream if it has not ended. */
void arpc__stream_handler_returned(arpc_stream *st, int status);

/* Client, on the parent request's loop: watches `parent` (arpc_call_opts.parent), so its
 * cancel cancels the stream.  @return 0 or ARPC_ECANCELED (canceled already). */
int arpc__stream_watch_parent(arpc_stream *st, arpc_request *parent);

/* Adds the list `src` to the caller's metadata list `dst`.  @return 0 or ARPC_ENOMEM. */
int arpc__stream_md_add(arpc_metadata *dst, const arpc__md *src);

/* Tests: the most bytes the stream's queue held, and the writes that waited for credit. */
uint64_t arpc__stream_peak_queued(const arpc_stream *st);
uint64_t arpc__stream_write_waits(const arpc_stream *st);
/* Tests: a write waits for credit now; the writer has half-closed (or finished). */
bool arpc__stream_write_suspended(const arpc_stream *st);
bool arpc__stream_close_requested(const arpc_stream *st);

/* Client half, in channel.c: routes a new stream to a slot (sets st->loop, posts its open).
 * @return 0 or ARPC_ESTOPPED. */
int arpc__channel_stream_route(arpc_stream *st);

#endif

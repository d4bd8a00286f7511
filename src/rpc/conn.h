/*
 * A connection: the I/O half shared by server and client connections, with
 * no knowledge of any wire format.  It reads in large chunks, hands the bytes
 * to its protocol session (proto/proto.h), which raises message events to the
 * owner, and gathers everything written during one loop iteration into one
 * write just before the loop polls -- or, if the owner sets
 * write_early_frames, into one write per that many messages of a long burst,
 * so the peer can start on the first ones.  A server connection starts
 * without a session: its first bytes choose the protocol (`detect`).  Loop
 * thread only.
 */
#ifndef ARPC_RPC_CONN_H
#define ARPC_RPC_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/buf.h"
#include "base/list.h"
#include "proto/proto.h"
#include "runtime/loop.h"
#include "transport/transport.h"

typedef struct arpc__conn arpc__conn;

typedef struct arpc__conn_ops {
    /* A connection without a session: its first bytes chose `proto` among
     * `detect`.  The owner creates the session (arpc__conn_set_proto); a
     * negative return closes the connection with that error. */
    int (*on_protocol)(arpc__conn *conn, const arpc__proto_ops *proto);
    /* A client connection's connect() completed. */
    void (*on_connected)(arpc__conn *conn);
    /* The connection closed; `err` says why (ARPC_ECLOSED for an orderly end
     * by the peer).  Runs exactly once. */
    void (*on_close)(arpc__conn *conn, int err);
    /* The last reference is gone: free the owner. */
    void (*on_free)(arpc__conn *conn);
    /* Optional: the output buffer has been written out completely (the
     * server closes a draining connection only then).  The caller of the
     * flush holds a reference, so it may close the connection. */
    void (*on_flushed)(arpc__conn *conn);
    /* Optional: reading has paused, the unwritten output reached out_limit
     * (the server counts it). */
    void (*on_read_paused)(arpc__conn *conn);
    /* Optional: the transport's handshake begins (a client: its connect()
     * completed; the channel's timer then counts the handshake's time). */
    void (*on_handshake_start)(arpc__conn *conn);
    /* Optional: a server connection's handshake completed; a negative return
     * closes the connection with that error. */
    int (*on_secured)(arpc__conn *conn);
} arpc__conn_ops;

struct arpc__conn {
    arpc__io_watcher watcher;
    arpc_loop *loop;
    const arpc__conn_ops *ops;
    arpc__transport *tp;        /* the byte stream: arpc__tcp_transport unless set */
    arpc__proto_session *proto; /* the wire protocol; NULL until detected */
    /* Server: the protocols a connection without a session may speak, tried in
     * order on its first bytes; unknown bytes close it (ARPC_EFRAME). */
    const arpc__proto_ops *const *detect;
    unsigned detect_count;
    arpc_buf in;  /* an incomplete message carried over between reads */
    arpc_buf out; /* encoded messages not yet written */
    arpc__deferred flush;
    arpc__deferred resume; /* reading again once the output drained */
    uint32_t refs;
    uint32_t queued_frames;      /* frames queued since the last write */
    uint32_t write_early_frames; /* write at once at this many; 0: never (the default) */
    bool connecting;  /* a client: until connect() and the handshake complete */
    bool handshaking; /* the transport's handshake is under way */
    bool write_blocked; /* the socket buffer is full: wait for EPOLLOUT */
    bool read_paused;   /* unwritten output reached out_limit: input waits */
    bool closed;
    /* Unwritten output at which the connection stops reading and decoding
     * (what is read already waits in `in`) until the peer has taken half of
     * it; 0: never.  Set by the owner before arpc__conn_start. */
    size_t out_limit;
    int64_t last_rx_ns;       /* when bytes last arrived */
    int64_t last_tx_ns;       /* when the peer last took bytes */
    int64_t opened_ns;        /* when the connection was set up */
    int64_t partial_since_ns; /* first byte of the incomplete frame in `in`; 0: none */
    uint64_t frames_in;       /* messages received (the session's count) */
    uint64_t id;
    char peer[136];
};

/* Prepares a connection on `fd` (non-blocking) with one reference, held by the
 * caller; `connecting` means connect() is in progress. */
void arpc__conn_init(arpc__conn *conn, arpc_loop *loop, int fd, const arpc__conn_ops *ops,
                     bool connecting);

/* Gives the connection a transport other than plain TCP, which it destroys
 * when freed; before arpc__conn_start.  One with a handshake runs it first:
 * a server's on the first events, a client's once connect() completes. */
static inline void arpc__conn_set_transport(arpc__conn *conn, arpc__transport *tp)
{
    conn->tp = tp;
    conn->handshaking = !conn->connecting && tp->ops->handshake != NULL;
}

/* Gives the connection its protocol session, which it destroys when freed.
 * For the events of `cfg`, the owner pointer is the connection. */
static inline void arpc__conn_set_proto(arpc__conn *conn, arpc__proto_session *proto)
{
    conn->proto = proto;
}

/* Creates the session of protocol `ops` for `conn` (owner: the connection;
 * input waits while the connection is closed or its output at out_limit,
 * which the owner sets before) and sets it.  `probe_method`: arpc__proto_config's (a
 * client's, or NULL).  @return 0 or ARPC_ENOMEM. */
int arpc__conn_open_proto(arpc__conn *conn, const arpc__proto_ops *ops, arpc__proto_side side,
                          const arpc__proto_limits *limits, const arpc__proto_events *events,
                          const char *probe_method);

/* The protocol of a connection that has one, else NULL. */
static inline const arpc__proto_ops *arpc__conn_proto_ops(const arpc__conn *conn)
{
    return conn->proto != NULL ? conn->proto->ops : NULL;
}

/* Registers the connection with its loop.  @return 0 or an error (the
 * connection is then closed with it). */
int arpc__conn_start(arpc__conn *conn);

/* The slow half of arpc__conn_flush_soon: schedules the flush. */
void arpc__conn_flush_schedule(arpc__conn *conn);

/* Writes what the socket takes of the output buffer now, as part of
 * arpc__conn_flush_soon; a write error is left to the scheduled flush, which
 * meets it again and closes the connection outside the caller's encoding. */
void arpc__conn_write_early(arpc__conn *conn);

/* Call after queueing one message in `out`: asks for the output buffer to be
 * written before the loop's next poll, and writes at once if the burst has
 * reached write_early_frames.  Inline: every request and every answer asks,
 * and all but the first of an iteration find the flush scheduled already.
 * Never closes the connection. */
static inline void arpc__conn_flush_soon(arpc__conn *conn)
{
    if (conn->write_early_frames != 0 && ++conn->queued_frames >= conn->write_early_frames)
        arpc__conn_write_early(conn);
    if (!arpc__list_linked(&conn->flush.link))
        arpc__conn_flush_schedule(conn);
}

/* True while the connection is inside a message: an incomplete one buffered,
 * or one the session is still consuming (an oversized one being skipped).  (A
 * limit on how long a message may take to arrive must count both.) */
static inline bool arpc__conn_mid_frame(const arpc__conn *conn)
{
    return conn->in.len > 0 || (conn->proto != NULL && conn->proto->ops->mid_message(conn->proto));
}

/* True when the unwritten output has reached out_limit: reading pauses. */
static inline bool arpc__conn_out_full(const arpc__conn *conn)
{
    return conn->out_limit != 0 && conn->out.len >= conn->out_limit;
}

/* Writes what it can of the output buffer now. */
void arpc__conn_flush_now(arpc__conn *conn);

/* Closes the socket, then tells the owner (on_close).  Idempotent. */
void arpc__conn_close(arpc__conn *conn, int err);

/* The last reference is gone: frees the buffers, then the owner (on_free). */
void arpc__conn_free(arpc__conn *conn);

/* Inline: a request takes and drops one, and so does every event. */
static inline void arpc__conn_ref(arpc__conn *conn)
{
    conn->refs++;
}

static inline void arpc__conn_unref(arpc__conn *conn)
{
    ARPC_CHECK(conn->refs > 0);
    if (--conn->refs == 0)
        arpc__conn_free(conn);
}

#endif

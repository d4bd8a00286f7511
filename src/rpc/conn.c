/*
 * Design notes.
 *
 * No wire format here: the connection's protocol session (proto/proto.h)
 * decodes, raises the owner's events and encodes; the connection reads,
 * writes, bounds its output and keeps the timestamps the owner's time limits
 * read.  A server connection has no session until its first bytes name one
 * of the protocols in `detect` (detect_protocol).
 *
 * Reading: the socket is read into the loop's shared 64 KiB buffer and the
 * session is fed from there; only the trailing bytes it did not consume (an
 * incomplete message) are copied into the connection's own buffer, which the
 * next read then extends until the message completes.  So a connection that
 * is idle between messages owns no input memory, and a busy one costs one
 * read per 64 KiB.
 * With edge-triggered epoll, a read shorter than the space offered means the
 * socket is drained: data that arrives later raises a new edge.
 *
 * Writing: encoders append to `out`; the connection schedules one flush per
 * loop iteration (arpc__deferred), so all answers produced in an iteration
 * leave in one write -- unless a burst reaches write_early_frames (a server
 * option), which are written at once so the peer can start on them.
 * On EAGAIN the flush waits for EPOLLOUT; the interest set never changes.
 *
 * Oversized messages are the session's: it raises on_oversized for that one
 * call and consumes the body as it arrives (native: the header says where
 * the frame ends), so the body is never buffered here; arpc__conn_mid_frame
 * asks the session whether it is inside such a message.
 *
 * Bounded output: a peer that sends requests but never reads the answers
 * would make `out` grow without bound.  Once `out` holds out_limit bytes the
 * session stops before its next message (arpc__proto_config.stop and
 * out_limit; the bytes read already wait in `in`, at most
 * one read's worth plus a frame) and stops reading, so the kernel's buffers
 * fill and TCP pushes back on the peer.  A frame already being handled still
 * appends its whole answer, so one answer of any size always fits.  When
 * writing has brought `out` down to half the limit (hysteresis: not one
 * pause per frame), a deferred resume decodes what waits in `in` and reads
 * the socket again: with edge-triggered epoll the data that arrived while
 * paused raised its edge already, so nothing else would read it.  Only the
 * server sets a limit: a client that stopped reading answers because its
 * requests are not taken would deadlock with a server doing the same, so
 * the client refuses new calls instead (channel.c) and always reads.
 *
 * Lifetime: references count the loop's registration and every owner (a
 * request in progress, a pending call); on_free runs when the last goes.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/err.h>

#include "base/assert.h"
#include "base/clock.h"
#include "base/log.h"
#include "rpc/conn.h"

#define READ_CHUNK    (64 * 1024)
#define OUT_KEEP_SIZE (256 * 1024)

static uint64_t next_conn_id;

static void on_flush_deferred(arpc__deferred *deferred)
{
    arpc__conn *conn = arpc__container_of(deferred, arpc__conn, flush);
    arpc__conn_flush_now(conn);
    arpc__conn_unref(conn); /* taken by arpc__conn_flush_soon */
}

static void on_resume_deferred(arpc__deferred *deferred);

static void on_event(arpc__io_watcher *watcher, uint32_t events);

void arpc__conn_init(arpc__conn *conn, arpc_loop *loop, int fd, const arpc__conn_ops *ops,
                     bool connecting)
{
    conn->watcher.fd = fd;
    conn->watcher.on_event = on_event;
    conn->loop = loop;
    conn->ops = ops;
    arpc__buf_init(&conn->in);
    arpc__buf_init(&conn->out);
    arpc__list_init(&conn->flush.link);
    conn->flush.run = on_flush_deferred;
    arpc__list_init(&conn->resume.link);
    conn->resume.run = on_resume_deferred;
    conn->tp = &arpc__tcp_transport;
    conn->proto = NULL;
    conn->detect = NULL;
    conn->detect_count = 0;
    conn->refs = 1;
    conn->queued_frames = 0;
    conn->write_early_frames = 0;
    conn->connecting = connecting;
    conn->handshaking = false;
    conn->write_blocked = false;
    conn->read_paused = false;
    conn->closed = false;
    conn->out_limit = 0;
    conn->last_rx_ns = arpc__now_ns();
    conn->last_tx_ns = conn->last_rx_ns;
    conn->opened_ns = conn->last_rx_ns;
    conn->partial_since_ns = 0;
    conn->frames_in = 0;
    conn->id = __atomic_add_fetch(&next_conn_id, 1, __ATOMIC_RELAXED);
    conn->peer[0] = '\0';
}

int arpc__conn_start(arpc__conn *conn)
{
    arpc__conn_ref(conn); /* held while registered with the loop */
    int rc = arpc__loop_watch(conn->loop, &conn->watcher);
    if (rc < 0) {
        close(conn->watcher.fd);
        conn->watcher.fd = -1;
        arpc__conn_close(conn, rc);
    }
    return rc;
}

void arpc__conn_free(arpc__conn *conn)
{
    arpc__buf_fini(&conn->in);
    arpc__buf_fini(&conn->out);
    if (conn->proto != NULL)
        conn->proto->ops->destroy(conn->proto);
    conn->proto = NULL;
    if (conn->tp->ops->destroy != NULL)
        conn->tp->ops->destroy(conn->tp);
    conn->tp = &arpc__tcp_transport;
    conn->ops->on_free(conn);
}

void arpc__conn_flush_schedule(arpc__conn *conn)
{
    if (conn->closed || conn->connecting || conn->write_blocked || conn->handshaking ||
        arpc__list_linked(&conn->flush.link))
        return;
    arpc__conn_ref(conn);
    arpc__loop_defer(conn->loop, &conn->flush);
}

/* Reading paused and the output has come down to half the limit: resume
 * before the next poll, outside whatever is writing now (an encoder may be
 * in the middle of the decode loop). */
static void resume_if_drained(arpc__conn *conn)
{
    if (!conn->read_paused || conn->out.len > conn->out_limit / 2 ||
        arpc__list_linked(&conn->resume.link))
        return;
    arpc__conn_ref(conn);
    arpc__loop_defer(conn->loop, &conn->resume);
}

/* Writes as much of `out` as the socket takes.
 * @return 0 (all written), ARPC_EAGAIN (the socket is full) or the error
 * that ends the connection. */
static int write_out(arpc__conn *conn)
{
    conn->queued_frames = 0;
    int rc = 0;
    while (conn->out.len > 0) {
        ssize_t n = conn->tp->ops->write(conn->tp, conn->watcher.fd, arpc__buf_head(&conn->out),
                                         conn->out.len);
        if (n > 0) {
            arpc__buf_consume(&conn->out, (size_t)n);
            conn->last_tx_ns = conn->loop->now_ns;
            continue;
        }
        if (n == ARPC_EAGAIN) {
            rc = ARPC_EAGAIN;
            break;
        }
        return n < 0 ? (int)n : ARPC_ECLOSED;
    }
    resume_if_drained(conn);
    return rc;
}

void arpc__conn_flush_now(arpc__conn *conn)
{
    /* While blocked, EPOLLOUT resumes the writing (on_event clears the flag
     * first); a send now would only meet the full socket again. */
    if (conn->closed || conn->write_blocked || conn->handshaking)
        return;
    int rc = write_out(conn);
    if (rc == ARPC_EAGAIN) {
        conn->write_blocked = true;
        return;
    }
    if (rc < 0) {
        arpc__conn_close(conn, rc);
        return;
    }
    arpc__buf_shrink_if_idle(&conn->out, OUT_KEEP_SIZE);
    if (conn->ops->on_flushed != NULL)
        conn->ops->on_flushed(conn);
}

void arpc__conn_write_early(arpc__conn *conn)
{
    if (conn->closed || conn->connecting || conn->write_blocked || conn->handshaking) {
        conn->queued_frames = 0;
        return;
    }
    if (write_out(conn) == ARPC_EAGAIN)
        conn->write_blocked = true;
}

void arpc__conn_close(arpc__conn *conn, int err)
{
    if (conn->closed)
        return;
    conn->closed = true;
    if (conn->watcher.fd >= 0) {
        arpc__loop_unwatch(conn->loop, &conn->watcher);
        if (conn->tp->ops->shutdown != NULL && !conn->handshaking && !conn->connecting)
            conn->tp->ops->shutdown(conn->tp, conn->watcher.fd);
        close(conn->watcher.fd);
        conn->watcher.fd = -1;
    }
    if (arpc__list_linked(&conn->flush.link)) {
        arpc__list_remove(&conn->flush.link);
        arpc__conn_unref(conn);
    }
    if (arpc__list_linked(&conn->resume.link)) {
        arpc__list_remove(&conn->resume.link);
        arpc__conn_unref(conn);
    }
    arpc__conn_ref(conn);
    conn->ops->on_close(conn, err);
    arpc__conn_unref(conn); /* the loop registration's reference */
    arpc__conn_unref(conn);
}

int arpc__conn_open_proto(arpc__conn *conn, const arpc__proto_ops *ops, arpc__proto_side side,
                          const arpc__proto_limits *limits, const arpc__proto_events *events,
                          const char *probe_method)
{
    arpc__proto_config cfg = {.side = side,
                              .limits = *limits,
                              .events = events,
                              .owner = conn,
                              .stop = &conn->closed,
                              .out_limit = conn->out_limit,
                              .probe_method = probe_method};
    arpc__proto_session *proto;
    int rc = ops->create(&cfg, &proto);
    if (rc == 0)
        arpc__conn_set_proto(conn, proto);
    return rc;
}

/* A connection without a session: its first bytes choose one of the
 * protocols it may speak.  Bounded: each detector decides within its
 * detect_len bytes, so "more" is asked for only that long, and the time
 * the bytes may take is the owner's first-frame limit.
 * @return 1 (a session now), 0 (more bytes needed) or an error. */
static int detect_protocol(arpc__conn *conn, const arpc_buf *buf)
{
    bool more = false;
    for (unsigned i = 0; i < conn->detect_count; i++) {
        const arpc__proto_ops *ops = conn->detect[i];
        int verdict = ops->detect(arpc__buf_head(buf), buf->len);
        if (verdict == ARPC__DETECT_YES) {
            int rc = conn->ops->on_protocol(conn, ops);
            return rc < 0 ? rc : conn->proto != NULL ? 1 : ARPC_EFRAME;
        }
        more |= verdict == ARPC__DETECT_MORE;
    }
    /* None: bytes of no protocol we speak (logged and counted as a protocol
     * error by the caller and the owner). */
    return more ? 0 : ARPC_EFRAME;
}

/* Hands what `buf` holds to the protocol session and consumes what it took.
 * The caller has set last_rx_ns for the read (the loop's time does not move
 * while an event is handled), so a message need not set it again.
 * @return 0 or an error. */
static int decode_frames(arpc__conn *conn, arpc_buf *buf)
{
    if (buf->len == 0 || conn->closed)
        return 0;
    if (arpc__unlikely(conn->proto == NULL)) {
        int rc = detect_protocol(conn, buf);
        if (rc <= 0)
            return rc;
    }
    arpc__proto_session *proto = conn->proto;
    int64_t n = proto->ops->feed(proto, arpc__buf_head(buf), buf->len, &conn->out);
    conn->frames_in = proto->messages_in;
    if (n < 0)
        return (int)n;
    arpc__buf_consume(buf, (size_t)n);
    if (buf->len > 0 && !conn->closed && arpc__conn_out_full(conn)) {
        /* The session stopped at the output bound: the rest waits in `in`. */
        conn->read_paused = true;
        if (conn->ops->on_read_paused != NULL)
            conn->ops->on_read_paused(conn);
    }
    /* What the session answered by itself (a PONG) goes out with the rest. */
    if (conn->out.len > 0)
        arpc__conn_flush_schedule(conn);
    return 0;
}

/* The peer broke the protocol (EFRAME, ETOOBIG, EVERSION) or flooded it (EOVERLOAD): the
 * errors a session's feed reports after queueing its goodbye (an HTTP/2 GOAWAY with the
 * error code). */
static bool peer_fault(int err)
{
    return err == ARPC_EFRAME || err == ARPC_ETOOBIG || err == ARPC_EVERSION ||
           err == ARPC_EOVERLOAD;
}

static void protocol_error(arpc__conn *conn, int err)
{
    const char *why = conn->proto != NULL ? conn->proto->close_reason : NULL;
    ARPC_LOG_WARNF("connection %llu to %s: %s%s%s, closing it", (unsigned long long)conn->id,
                   conn->peer, arpc_strerror(err), why != NULL ? ": " : "", why != NULL ? why : "");
    /* One last write, so the peer reads the goodbye the session queued (what the socket
     * takes now; a peer that does not read loses it). */
    if (!conn->write_blocked && conn->out.len > 0)
        (void)write_out(conn);
    arpc__conn_close(conn, err);
}

/* Ends the connection after a failed decode: a protocol error is logged. */
static void input_failed(arpc__conn *conn, int err)
{
    if (peer_fault(err))
        protocol_error(conn, err);
    else
        arpc__conn_close(conn, err);
}

/* Remembers when the incomplete frame left in `in` began to arrive (the
 * server's frame timeout): now, if it is a new one (nothing was waiting, or
 * frames completed since). */
static void track_partial(arpc__conn *conn, uint64_t frames_before)
{
    if (!arpc__conn_mid_frame(conn))
        conn->partial_since_ns = 0;
    else if (conn->partial_since_ns == 0 || conn->frames_in != frames_before)
        conn->partial_since_ns = conn->loop->now_ns;
}

/* One read into the shared buffer (or into `in` while a frame is incomplete).
 * @return bytes read, 0 for EOF, or a negative error (ARPC_EAGAIN: drained). */
static ssize_t read_once(arpc__conn *conn, size_t *offered)
{
    arpc_buf *buf = conn->in.len > 0 ? &conn->in : &conn->loop->read_buf;
    int rc = arpc__buf_ensure(buf, READ_CHUNK);
    if (rc < 0)
        return rc;
    *offered = arpc__buf_room(buf);
    ssize_t n = conn->tp->ops->read(conn->tp, conn->watcher.fd, arpc__buf_tail(buf), *offered);
    if (n < 0)
        return n;
    buf->len += (size_t)n;
    if (n == 0)
        return 0;
    /* Any byte proves the peer alive, even one of a large frame still
     * arriving: a PONG queued behind 16 MiB of answers must not make a busy
     * connection look dead. */
    conn->last_rx_ns = conn->loop->now_ns;
    uint64_t frames_before = conn->frames_in;
    rc = decode_frames(conn, buf);
    if (buf == &conn->loop->read_buf) {
        /* Keep the incomplete tail; the shared buffer is free for the next conn.
         * Cleared on a decode error too: bytes a bad peer left behind must not be
         * read as the start of another connection's input. */
        if (rc == 0 && buf->len > 0 && !conn->closed)
            rc = arpc_buf_append(&conn->in, arpc__buf_head(buf), buf->len);
        arpc_buf_clear(buf);
    }
    if (rc < 0)
        return rc;
    track_partial(conn, frames_before);
    return n;
}

/* The transport holds input (or its end) that the socket will not signal
 * again.  TCP holds none and costs no call. */
static bool transport_holds_input(const arpc__conn *conn)
{
    return conn->tp->buffers && conn->tp->ops->has_buffered(conn->tp);
}

/* `hup`: the event says the peer closed its side (EPOLLRDHUP).  The end of
 * the stream then raises no later edge, so a short read is not "drained":
 * read on until it shows. */
static void read_all(arpc__conn *conn, bool hup)
{
    while (!conn->closed && !conn->read_paused) {
        size_t offered = 0;
        ssize_t n = read_once(conn, &offered);
        if (n == ARPC_EAGAIN)
            return;
        if (n == 0) {
            arpc__conn_close(conn, ARPC_ECLOSED);
            return;
        }
        if (peer_fault((int)n)) {
            protocol_error(conn, (int)n);
            return;
        }
        if (n < 0) {
            arpc__conn_close(conn, (int)n);
            return;
        }
        if ((size_t)n < offered && !hup && !transport_holds_input(conn))
            return; /* drained: a later arrival raises a new edge */
    }
}

static void connected(arpc__conn *conn)
{
    conn->connecting = false;
    conn->ops->on_connected(conn);
    arpc__conn_flush_soon(conn);
}

/* Advances the transport's handshake; once done, a client is connected and
 * a server's connection is told (on_secured).  The handshake reads and writes
 * the socket until OpenSSL meets EAGAIN, so the next edge resumes it.
 * @return true when it completed on this event. */
static bool advance_handshake(arpc__conn *conn)
{
    int rc = conn->tp->ops->handshake(conn->tp, conn->watcher.fd);
    if (rc == ARPC_EAGAIN)
        return false;
    if (rc == 0) {
        conn->handshaking = false;
        if (conn->connecting) {
            connected(conn);
            return true;
        }
        rc = conn->ops->on_secured != NULL ? conn->ops->on_secured(conn) : 0;
        if (rc == 0)
            return true;
    }
    arpc__conn_close(conn, rc);
    return false;
}

/* @return true when a handshake completed too (see advance_handshake). */
static bool finish_connect(arpc__conn *conn)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(conn->watcher.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        arpc__conn_close(conn, -err);
        return false;
    }
    if (conn->tp->ops->handshake == NULL) {
        connected(conn);
        return false;
    }
    conn->handshaking = true;
    if (conn->ops->on_handshake_start != NULL)
        conn->ops->on_handshake_start(conn);
    return !conn->closed && advance_handshake(conn);
}

static void on_event(arpc__io_watcher *watcher, uint32_t events)
{
    arpc__conn *conn = arpc__container_of(watcher, arpc__conn, watcher);
    arpc__conn_ref(conn);
    bool secured = false;
    if (arpc__unlikely(conn->handshaking)) {
        secured = advance_handshake(conn);
    } else if (conn->connecting) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            secured = finish_connect(conn);
    } else if ((events & EPOLLOUT) && conn->write_blocked) {
        conn->write_blocked = false;
        arpc__conn_flush_now(conn);
    }
    /* After a handshake, or when a TLS read waited for the socket to take a
     * record of its own, plaintext may wait inside the transport: read it now,
     * the socket's edge has passed. */
    bool readable = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0 || secured ||
                    ((events & EPOLLOUT) && transport_holds_input(conn));
    if (!conn->closed && !conn->connecting && !conn->handshaking && !conn->read_paused &&
        readable)
        read_all(conn, secured || (events & (EPOLLRDHUP | EPOLLHUP)) != 0);
    arpc__conn_unref(conn);
}

/* The output has drained to half the limit: decode the frames that waited in
 * `in`, then read the socket, whose edge was raised while reading paused. */
static void on_resume_deferred(arpc__deferred *deferred)
{
    arpc__conn *conn = arpc__container_of(deferred, arpc__conn, resume);
    if (!conn->closed && conn->read_paused) {
        conn->read_paused = false;
        /* The peer could not send while we did not read: a frame that is
         * still incomplete gets its time limit afresh. */
        if (conn->partial_since_ns != 0)
            conn->partial_since_ns = conn->loop->now_ns;
        uint64_t frames_before = conn->frames_in;
        int rc = decode_frames(conn, &conn->in);
        if (rc < 0) {
            input_failed(conn, rc);
        } else if (!conn->closed) {
            track_partial(conn, frames_before);
            /* Read until EAGAIN: a FIN that arrived while paused raised
             * its edge already, and a short read would not see it. */
            read_all(conn, true);
        }
    }
    arpc__conn_unref(conn); /* taken by resume_if_drained */
}

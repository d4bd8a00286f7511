/**
 * Streaming calls (docs/streams.md).  A stream is a call that carries any
 * number of messages each way: the client opens it (method, metadata,
 * deadline), writes messages, half-closes with arpc_stream_close_send(), and
 * reads messages until the end, which carries the final status and the
 * trailing metadata (arpc_stream_finish()).  The handler side is the mirror
 * image: it reads the client's messages until the half-close, writes
 * messages, and returns a status.  gRPC's three streaming kinds (client,
 * server, bidirectional) are all this one object: the kind is only in how the
 * two sides use it.  Streams run over every protocol with
 * ARPC__PROTO_STREAMS: native (docs/protocol.md, section 13) and gRPC.
 *
 * One stream is one ordered conversation on one connection: it is never
 * retried once its first message may have reached the server, and it lives
 * on that connection's loop.  The functions below may be called from any
 * thread; the waiting ones suspend only the calling coroutine (a plain
 * thread blocks), and each has an _async form for code without coroutines.
 *
 * Flow control: each side grants the other a window of
 * `stream_window_bytes` (arpc_channel_opts / arpc_server_opts, default
 * 256 KiB) per stream; a writer whose peer does not read is suspended in
 * arpc_stream_write() once the window is used up, so nothing is buffered
 * without bound.  A single message larger than the window still goes through
 * (alone), so the window never limits message size; max_frame_size does.
 *
 * Every stream completes exactly once with a final status, including when
 * the peer vanishes, the deadline passes, or either side cancels.
 *
 * Return values of the message functions: 0; ARPC_EEOS, which is no error:
 * the peer will send no more (read: the client half-closed, or the server
 * ended the stream with status 0) or the stream takes no more (write after
 * close_send, or after the server finished with status 0); or the status the
 * stream failed with: ARPC_ECANCELED (this side or the peer canceled),
 * ARPC_ETIMEDOUT (its deadline), a connection error (ARPC_ECONNRESET,
 * ARPC_EHEARTBEAT, ...), the handler's status (a positive application code
 * or a negative arpc_err) on the client.  Once a function returned a failure,
 * every later one returns the same failure.
 */
#ifndef ARPC_STREAM_H
#define ARPC_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/buf.h>
#include <arpc/client.h>
#include <arpc/export.h>
#include <arpc/server.h>

ARPC_BEGIN_DECLS

typedef struct arpc_stream arpc_stream;

/* ---- client ---------------------------------------------------------------------------- */

/**
 * Opens a stream to `method` on one of the channel's endpoints (its load
 * balancing, its pool).  Returns at once: the stream is opened on its
 * connection's loop, and a failure to open (no endpoint, unknown method, a
 * server without streams: ARPC_ENOMETHOD) is returned by the first read,
 * write or finish.
 * @param opts  borrowed; NULL means defaults.  Its fields mean what they mean
 *              for arpc_call(), except: timeout_ms < 0 (the default) means no
 *              deadline (streams such as watches live long; heartbeats notice
 *              a dead peer), > 0 is a deadline for the whole stream;
 *              `idempotent` is ignored (a stream is never retried once
 *              sent); response_metadata receives the server's initial and
 *              trailing metadata, complete when arpc_stream_finish() returns.
 * @param out   on success the stream, owned by the caller
 *              (arpc_stream_destroy()).
 * @return 0, ARPC_EINVAL (NULL argument, bad method name, bad metadata),
 *         ARPC_EMETADATA, ARPC_ETIMEDOUT or ARPC_ECANCELED (opts->parent is
 *         past its deadline or canceled), ARPC_ESTOPPED, ARPC_ENOMEM.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_stream_open(arpc_channel *ch, const char *method, const arpc_call_opts *opts,
                                 arpc_stream **out);

/**
 * Half-closes the client's side: the server's reads return ARPC_EEOS after
 * the messages written before.  Waits for nothing (the half-close is queued
 * behind them).
 * @return 0, ARPC_EEOS (already half-closed), or the stream's failure.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_stream_close_send(arpc_stream *st);

/**
 * Half-closes if not done yet, discards messages the caller did not read,
 * and waits for the end of the stream.
 * @return the final status: 0, the handler's application code (> 0; its
 *         message appended to `error_message` when not NULL), or a negative
 *         arpc_err.
 * Thread: any (ARPC_ENOTCORO on a loop thread outside a coroutine: use
 * arpc_stream_finish_async()).  Suspends: yes.
 */
ARPC_EXPORT int arpc_stream_finish(arpc_stream *st, arpc_buf *error_message);

/**
 * Cancels the stream (from the client: the server's handler sees
 * arpc_request_is_canceled(), its reads and writes fail with ARPC_ECANCELED;
 * gRPC sends RST_STREAM(CANCEL)).  Waiting reads, writes and finish return
 * ARPC_ECANCELED.  A no-op on an ended stream.  On the server side it ends
 * the stream with ARPC_ECANCELED as the handler's status.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT void arpc_stream_cancel(arpc_stream *st);

/**
 * Frees a client stream, canceling it first if it has not ended.  NULL is a
 * no-op.  No read, write or callback of the stream may be outstanding on
 * another thread.  Never allocates.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT void arpc_stream_destroy(arpc_stream *st);

/* ---- server ---------------------------------------------------------------------------- */

/**
 * A stream handler.  Runs in its own coroutine on the loop of the connection
 * that opened the stream, like arpc_handler_fn, and returns the stream's
 * final status as that does (0; an application code > 0 with
 * arpc_request_set_error(); a negative arpc_err).  ARPC_DEFERRED is not
 * allowed (the stream ends with ARPC_EINTERNAL).  Returning ends the stream:
 * the client reads ARPC_EEOS (status 0) or that status, and messages it
 * still sends are discarded.  `st` belongs to the server and is valid until
 * the handler returns.
 */
typedef int (*arpc_stream_handler_fn)(arpc_stream *st, void *user_data);

/**
 * Registers a stream handler for `method`, as arpc_server_register().  A
 * unary call (arpc_call, or a gRPC client calling a unary method) to a
 * stream method runs the handler with one message followed by ARPC_EEOS;
 * its first message written is the answer (a second write returns
 * ARPC_EEOS).  A stream opened to a unary method fails with ARPC_ENOMETHOD.
 * @return 0, ARPC_EINVAL or ARPC_ENOMEM.
 * Thread: any, before listening.  Suspends: no.
 */
ARPC_EXPORT int arpc_server_register_stream(arpc_server *srv, const char *method,
                                            arpc_stream_handler_fn handler, void *user_data);

/**
 * The request behind a server-side stream: its method, metadata, deadline
 * and cancellation (arpc_request_remaining_ms, arpc_request_is_canceled,
 * arpc_request_on_cancel, arpc_call_opts.parent all work), and the place for
 * response metadata (arpc_request_add_metadata: entries added before the
 * first write travel ahead of the first message, later ones with the end)
 * and an error message (arpc_request_set_error).  arpc_request_data/len are
 * empty and arpc_request_response must not be used.  NULL on a client stream.
 * Thread: the handler's.  Suspends: no.
 */
ARPC_EXPORT arpc_request *arpc_stream_request(arpc_stream *st);

/* ---- both sides ------------------------------------------------------------------------ */

/**
 * Writes one message (copied before the function returns).  Waits while the
 * peer's window is used up; returns once the message is queued on the
 * connection, not when the peer has it.
 * @return 0, ARPC_EEOS, a failure (see the top of this file), ARPC_ETOOBIG
 *         (over the peer's max_frame_size: the stream fails with it),
 *         ARPC_ENOMEM, ARPC_ENOTCORO (a loop thread outside a coroutine).
 * Thread: any; one write at a time per stream.  Suspends: yes.
 */
ARPC_EXPORT int arpc_stream_write(arpc_stream *st, const void *data, size_t len);

/**
 * Reads the next message, appending it to `msg` (owned by the caller).
 * Reading returns window to the peer.
 * @return 0, ARPC_EEOS, a failure (see the top of this file), ARPC_ENOMEM
 *         (the message could not be appended; it is lost and the stream
 *         fails with ARPC_ENOMEM), ARPC_ENOTCORO.
 * Thread: any; one read at a time per stream.  Suspends: yes.
 */
ARPC_EXPORT int arpc_stream_read(arpc_stream *st, arpc_buf *msg);

/** Completion of an _async stream function: `status` as the waiting form returns. */
typedef void (*arpc_stream_done_cb)(int status, void *user_data);

/** Completion of arpc_stream_read_async(): `msg` is borrowed for the callback. */
typedef void (*arpc_stream_read_cb)(int status, const void *msg, size_t len, void *user_data);

/**
 * The callback forms.  Each returns 0 (its callback will run exactly once,
 * on the stream's loop thread, never inside the call) or an error (it will
 * not): ARPC_EINVAL (NULL, or another operation of the same kind is
 * outstanding), ARPC_ENOMEM.  write_async copies `data` before it returns.
 * finish_async's callback gets the final status; the error message, if any,
 * is arpc_stream_error_message()'s until the stream is destroyed.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_stream_write_async(arpc_stream *st, const void *data, size_t len,
                                        arpc_stream_done_cb cb, void *user_data);
ARPC_EXPORT int arpc_stream_read_async(arpc_stream *st, arpc_stream_read_cb cb, void *user_data);
ARPC_EXPORT int arpc_stream_finish_async(arpc_stream *st, arpc_stream_done_cb cb, void *user_data);

/** The application error message of an ended client stream ("" if none); valid until
 *  arpc_stream_destroy().  Thread: any, after the end.  Suspends: no. */
ARPC_EXPORT const char *arpc_stream_error_message(const arpc_stream *st);

ARPC_END_DECLS

#endif

/*
 * Typed streams (include/arpc/protobuf.h): arpc_pb_stream_open, _write, _read,
 * _close_and_recv, over the generic streams of include/arpc/stream.h.
 *
 * Design notes.  A message written is packed into a buffer on the writer's
 * stack when it is small (most are) and into one from the heap otherwise;
 * arpc_stream_write copies it into the connection's output before it
 * returns, so the buffer is the writer's only for the call.  A message read
 * is appended by arpc_stream_read to a buffer of the reader's, likewise on
 * the stack when it fits, then unpacked into the caller's arena or the heap.
 * A message that does not unpack fails the stream with ARPC_EBADMSG: the
 * server's end answers it (gRPC INVALID_ARGUMENT), the client's cancels the
 * stream, and every later operation returns it.
 */
#include <stdbool.h>

#include <arpc/err.h>
#include <arpc/protobuf.h>
#include <arpc/stream.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "protobuf/pb.h"
#include "rpc/stream.h"

/* Messages up to this size are packed on the stack (a coroutine's stack is 64 KiB
 * at least; a plain thread's far more). */
#define STACK_MSG 512

int arpc_pb_stream_write(arpc_stream *st, const ProtobufCMessage *msg)
{
    if (st == NULL || msg == NULL)
        return ARPC_EINVAL;
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t small[STACK_MSG];
    uint8_t *out = len <= sizeof(small) ? small : arpc__malloc(len);
    if (out == NULL)
        return ARPC_ENOMEM;
    size_t packed = protobuf_c_message_pack(msg, out);
    int rc = arpc_stream_write(st, out, packed);
    if (out != small)
        arpc__free(out);
    return rc;
}

/* The stream fails with `err` (a message that did not unpack): the server's end
 * answers it, the client's cancels the stream with it. */
static int fail_stream(arpc_stream *st, int err)
{
    arpc__stream_abort(st, err);
    return err;
}

int arpc_pb_stream_read(arpc_stream *st, const ProtobufCMessageDescriptor *type, arpc_arena *arena,
                        ProtobufCMessage **msg)
{
    if (msg != NULL)
        *msg = NULL;
    if (st == NULL || type == NULL || msg == NULL)
        return ARPC_EINVAL;
    arpc_buf buf;
    arpc__buf_init(&buf);
    int rc = arpc_stream_read(st, &buf);
    if (rc == 0) {
        rc = arpc__pb_unpack(type, arena, arpc__buf_data(&buf), buf.len, msg);
        if (rc < 0)
            rc = fail_stream(st, rc);
    }
    arpc__buf_fini(&buf);
    return rc;
}

/* The first write of a server-streaming open has nobody to report to: a failure of
 * it fails the stream, whose reads and finish then return it. */
static void first_write_done(int status, void *user_data)
{
    (void)status;
    (void)user_data;
}

/* Queues `req` and the half-close without waiting (open never suspends):
 * write_async copies the message, and the half-close goes behind it. */
static int send_one_request(arpc_stream *st, const ProtobufCMessage *req)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t small[STACK_MSG];
    uint8_t *out = len <= sizeof(small) ? small : arpc__malloc(len);
    if (out == NULL)
        return ARPC_ENOMEM;
    size_t packed = protobuf_c_message_pack(req, out);
    int rc = arpc_stream_write_async(st, out, packed, first_write_done, NULL);
    if (out != small)
        arpc__free(out);
    return rc < 0 ? rc : arpc_stream_close_send(st);
}

int arpc_pb_stream_open(arpc_channel *ch, const arpc_pb_method *m, const ProtobufCMessage *req,
                        const arpc_call_opts *opts, arpc_stream **out)
{
    if (ch == NULL || m == NULL || out == NULL || m->kind == ARPC_PB_UNARY ||
        (unsigned)m->kind > ARPC_PB_BIDI_STREAM)
        return ARPC_EINVAL;
    bool one_request = m->kind == ARPC_PB_SERVER_STREAM;
    if (one_request != (req != NULL) || (req != NULL && req->descriptor != m->input))
        return ARPC_EINVAL;
    arpc_stream *st;
    int rc = arpc_stream_open(ch, m->name, opts, &st);
    if (rc < 0)
        return rc;
    if (one_request && (rc = send_one_request(st, req)) < 0) {
        arpc_stream_destroy(st);
        return rc;
    }
    *out = st;
    return 0;
}

int arpc_pb_stream_close_and_recv(arpc_stream *st, const ProtobufCMessageDescriptor *type,
                                  arpc_arena *arena, arpc_buf *error_message,
                                  ProtobufCMessage **rsp)
{
    if (rsp != NULL)
        *rsp = NULL;
    if (st == NULL || type == NULL || rsp == NULL)
        return ARPC_EINVAL;
    /* Its failure is the stream's, which the read and finish below return. */
    (void)arpc_stream_close_send(st);
    ProtobufCMessage *msg = NULL;
    int rc = arpc_pb_stream_read(st, type, arena, &msg);
    int status = arpc_stream_finish(st, error_message);
    if (status == 0 && rc == ARPC_EEOS)
        status = ARPC_EBADMSG; /* the server ended without its one answer */
    else if (status == 0 && rc < 0)
        status = rc;
    if (status == 0) {
        *rsp = msg;
        return 0;
    }
    if (msg != NULL && arena == NULL)
        protobuf_c_message_free_unpacked(msg, NULL);
    return status;
}

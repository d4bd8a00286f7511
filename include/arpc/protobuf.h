/**
 * Typed services from .proto files (docs/protobuf.md).  Messages are
 * protobuf-c's (protoc-c writes NAME.pb-c.h/.c); protoc-gen-arpc writes
 * NAME.arpc.h/.c beside them with, for each service, a handler table and a
 * register function for the server and, for each method, a typed sync call,
 * an async call with a typed callback, and typed stream reads and writes.
 *
 * This header is what that generated code calls.  Applications use the
 * generated names (docs/protobuf.md lists them); the functions below are
 * public so that the generated code needs nothing else, and so that a
 * message type known only at run time can be called too.
 *
 * The one public header that includes a non-standard one: protobuf-c's
 * (Debian libprotobuf-c-dev).  arpc.h does not include it.
 *
 * Memory: a message a call unpacks (an answer, a message read from a
 * stream) is allocated from an arpc_arena when one is given
 * (arpc_call_opts.arena, or the `arena` argument), and is then freed by that
 * arena's reset or destroy; without one it comes from the heap and the
 * caller frees it with protobuf_c_message_free_unpacked(msg, NULL) (the
 * generated NAME__free_unpacked(msg, NULL)).  A server's handler gets its
 * request unpacked into the request's arena (arpc_request_arena()), freed
 * by arpc after the answer is sent; the handler allocates what its answer
 * points to from that arena too.
 *
 * Errors: a request that does not unpack as its method's input type is
 * answered ARPC_EBADMSG (gRPC INVALID_ARGUMENT) without running the
 * handler; an answer that does not unpack as the output type fails the call
 * with ARPC_EBADMSG.
 */
#ifndef ARPC_PROTOBUF_H
#define ARPC_PROTOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include <arpc/arena.h>
#include <arpc/client.h>
#include <arpc/export.h>
#include <arpc/server.h>
#include <arpc/stream.h>

ARPC_BEGIN_DECLS

/** A generated function (a typed handler or callback) stored untyped; the
 *  method's own `invoke` or `complete` converts it back to its real type. */
typedef void (*arpc_pb_fn)(void);

/** The four shapes of a gRPC method. */
typedef enum arpc_pb_kind {
    ARPC_PB_UNARY = 0,         /**< one request, one answer */
    ARPC_PB_SERVER_STREAM = 1, /**< one request, a stream of answers */
    ARPC_PB_CLIENT_STREAM = 2, /**< a stream of requests, one answer */
    ARPC_PB_BIDI_STREAM = 3    /**< streams both ways */
} arpc_pb_kind;

/**
 * One method of a service, as protoc-gen-arpc describes it (a static const
 * object in NAME.arpc.c).
 */
typedef struct arpc_pb_method {
    /** "pkg.Service/Method": the method name arpc_call() takes; over gRPC the
     *  :path "/pkg.Service/Method". */
    const char *name;
    arpc_pb_kind kind;
    const ProtobufCMessageDescriptor *input;
    const ProtobufCMessageDescriptor *output;
    /**
     * Calls `handler` (this method's typed handler, stored as arpc_pb_fn)
     * with `user_data` and the arguments its kind takes, and returns its
     * status: UNARY (req, in, out); SERVER_STREAM (st, in); CLIENT_STREAM
     * (st, out); BIDI_STREAM (st).  The others are NULL.  `in` is the
     * unpacked request; `out` an initialized answer that is packed after it
     * returns 0.
     */
    int (*invoke)(arpc_pb_fn handler, arpc_request *req, arpc_stream *st,
                  const ProtobufCMessage *in, ProtobufCMessage *out, void *user_data);
    /** UNARY only (NULL otherwise): calls `cb` (this method's typed async
     *  callback, stored as arpc_pb_fn) with the status and the answer. */
    void (*complete)(arpc_pb_fn cb, int status, const ProtobufCMessage *rsp, void *user_data);
} arpc_pb_method;

/**
 * One .proto file as reflection serves it: its serialized
 * FileDescriptorProto and the names it defines.  protoc-gen-arpc embeds, in
 * each NAME.arpc.c, the file and every file it imports (directly or not),
 * so that a reflection client can resolve every type; files are told apart
 * by name, so the same import embedded in two generated files is served
 * once.
 */
typedef struct arpc_pb_file {
    /** As protoc names it: "calc.proto", "google/protobuf/timestamp.proto". */
    const char *name;
    const uint8_t *descriptor; /**< serialized FileDescriptorProto */
    size_t descriptor_len;
    /** Fully qualified names of what the file defines: messages (nested ones
     *  too), enums, services and methods ("pkg.Service.Method"). */
    const char *const *symbols;
    size_t symbol_count;
    /** The files it imports, directly. */
    const struct arpc_pb_file *const *deps;
    size_t dep_count;
} arpc_pb_file;

/** One service (a static const object in NAME.arpc.c). */
typedef struct arpc_pb_service {
    const char *name; /**< "pkg.Service" */
    const arpc_pb_method *methods;
    size_t method_count;
    /** The file that defines it; NULL for a service built by hand without a
     *  descriptor, which reflection then lists by name only. */
    const arpc_pb_file *file;
} arpc_pb_service;

/**
 * A protobuf-c allocator over `arena` (its free does nothing: the arena's
 * reset frees), or over the heap when `arena` is NULL (malloc and free
 * underneath, so what it allocates protobuf_c_message_free_unpacked(msg,
 * NULL) frees).
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT ProtobufCAllocator arpc_pb_allocator(arpc_arena *arena);

/* ---- client ---------------------------------------------------------------------------- */

/**
 * Calls a UNARY method: packs `req` (straight into the call's own buffer),
 * waits, and unpacks the answer into opts->arena, or the heap without one.
 * @param rsp   out: on success the answer (see "Memory" above); NULL on error.
 * @return as arpc_call(), and ARPC_EINVAL (`m` is not UNARY, `req` is not of
 *         its input type) or ARPC_EBADMSG (the answer does not unpack).  An
 *         application error's message goes to opts->error_message.
 * Thread: as arpc_call().  Suspends: yes.
 */
ARPC_EXPORT int arpc_pb_call(arpc_channel *ch, const arpc_pb_method *m,
                             const ProtobufCMessage *req, const arpc_call_opts *opts,
                             ProtobufCMessage **rsp);

/**
 * Starts a UNARY call; `m->complete` then runs `cb` exactly once, where
 * arpc_call_async() would run its callback, with the answer unpacked into
 * opts->arena, or, without one, into
 * memory freed after the callback returns (the answer is borrowed for the
 * callback).  The answer is unpacked on the loop thread that completes the
 * call, so opts->arena belongs to the call from its start until its
 * callback has run: it must outlive the call, and no other call (a fan-out
 * gives each call an arena of its own) nor thread may use it meanwhile.
 * opts->error_message, when set, receives an application error's message
 * before the callback runs.
 * @return as arpc_call_async(), and ARPC_EINVAL as arpc_pb_call().
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_pb_call_async(arpc_channel *ch, const arpc_pb_method *m,
                                   const ProtobufCMessage *req, const arpc_call_opts *opts,
                                   arpc_pb_fn cb, void *user_data);

/**
 * Opens a stream to a streaming method (arpc_stream_open()).  For a
 * SERVER_STREAM method `req` is the one request: it is written and the
 * client's side half-closed; for the others `req` must be NULL.
 * @return as arpc_stream_open(), and ARPC_EINVAL (`m` is UNARY, or `req`
 *         does not fit its kind).
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_pb_stream_open(arpc_channel *ch, const arpc_pb_method *m,
                                    const ProtobufCMessage *req, const arpc_call_opts *opts,
                                    arpc_stream **out);

/* ---- streams, both sides --------------------------------------------------------------- */

/**
 * Packs `msg` and writes it (arpc_stream_write()).
 * @return as arpc_stream_write().
 * Thread: as arpc_stream_write().  Suspends: yes.
 */
ARPC_EXPORT int arpc_pb_stream_write(arpc_stream *st, const ProtobufCMessage *msg);

/**
 * Reads the next message (arpc_stream_read()) and unpacks it as `type`
 * into `arena`, or the heap when NULL.
 * @param msg  out: the message on success, NULL otherwise.
 * @return as arpc_stream_read(), and ARPC_EBADMSG (the message does not
 *         unpack: the stream fails with it; over gRPC the peer sees
 *         INVALID_ARGUMENT from a server, INTERNAL from a client) or
 *         ARPC_ENOMEM (no memory to unpack it into: the message is lost, so
 *         the stream fails with it too, as arpc_stream_read's ENOMEM does).
 * On a long stream, read into an arena of your own and reset it as you go:
 * the request's arena (arpc_request_arena) is emptied only when the
 * stream's handler returns.
 * Thread: as arpc_stream_read().  Suspends: yes.
 */
ARPC_EXPORT int arpc_pb_stream_read(arpc_stream *st, const ProtobufCMessageDescriptor *type,
                                    arpc_arena *arena, ProtobufCMessage **msg);

/**
 * The client's end of a CLIENT_STREAM method: half-closes, reads the one
 * answer and waits for the end of the stream (arpc_stream_finish()).
 * @param rsp  out: the answer on success, NULL otherwise.
 * @return the final status as arpc_stream_finish() (an application error's
 *         message goes to `error_message` when not NULL), or ARPC_EBADMSG.
 * Thread: as arpc_stream_finish().  Suspends: yes.
 */
ARPC_EXPORT int arpc_pb_stream_close_and_recv(arpc_stream *st,
                                              const ProtobufCMessageDescriptor *type,
                                              arpc_arena *arena, arpc_buf *error_message,
                                              ProtobufCMessage **rsp);

/* ---- server ---------------------------------------------------------------------------- */

/**
 * Registers the methods of `svc` whose entry in `handlers` (svc->method_count
 * entries, in the order of svc->methods) is not NULL, each with `user_data`;
 * the others stay unknown to the server (ARPC_ENOMETHOD, gRPC UNIMPLEMENTED).
 * Also records the service and its files for reflection
 * (arpc_server_enable_reflection()).
 * A UNARY handler's request is unpacked into the request's arena; its
 * answer is packed straight into the response after it returns 0.  It may
 * not return ARPC_DEFERRED (the request then fails with ARPC_EINTERNAL).
 * @return 0, ARPC_EINVAL (as arpc_server_register(), or a method of `svc`
 *         is already registered) or ARPC_ENOMEM.  On error nothing of `svc`
 *         is registered.
 * Thread: any, before listening.  Suspends: no.
 */
ARPC_EXPORT int arpc_pb_register(arpc_server *srv, const arpc_pb_service *svc,
                                 const arpc_pb_fn *handlers, void *user_data);

/**
 * Serves gRPC server reflection (grpc.reflection.v1alpha.ServerReflection
 * and grpc.reflection.v1.ServerReflection, docs/protobuf.md): the services
 * registered with arpc_pb_register(), before or after this call, and the
 * files that define them.  Tools that list and call services by reflection
 * (grpcurl, grpc_cli, Python's grpc_reflection) then work against the server.
 * @return 0, ARPC_EINVAL (NULL, already listening, or enabled already) or
 *         ARPC_ENOMEM.
 * Thread: any, before listening.  Suspends: no.
 */
ARPC_EXPORT int arpc_server_enable_reflection(arpc_server *srv);

ARPC_END_DECLS

#endif

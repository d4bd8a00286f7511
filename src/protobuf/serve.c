/*
 * Typed handlers (include/arpc/protobuf.h): arpc_pb_register.
 *
 * Design notes.  Each method registered gets a binding (the method, its typed
 * handler, the user_data) in one block per arpc_pb_register call, which the
 * server owns and frees at its destroy (arpc__server_register_all, all the
 * service's methods or none).  The untyped handler registered for a method is
 * one of the four below, by kind; it unpacks the request into the request's
 * arena (arpc_request_arena, emptied when the request ends and kept with the
 * pooled request, so steady traffic allocates nothing), runs the method's
 * `invoke` and, for a unary or client-streaming method, packs the answer:
 * unary straight into the response buffer, client streaming as the one
 * message written.  A request that does not unpack is answered ARPC_EBADMSG
 * and the handler does not run.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <arpc/err.h>
#include <arpc/protobuf.h>
#include <arpc/stream.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "protobuf/pb.h"
#include "protobuf/registry.h"
#include "rpc/server.h"

typedef struct binding {
    const arpc_pb_method *m;
    arpc_pb_fn handler;
    void *user_data;
} binding;

typedef struct bindings {
    arpc__server_owned owned; /* first: the server frees the block */
    binding b[];
} bindings;

/* A handler may not defer a typed request: arpc packs its answer when it returns. */
static int handler_status(int rc)
{
    return rc == ARPC_DEFERRED ? ARPC_EINTERNAL : rc;
}

static int serve_unary(arpc_request *req, void *user_data)
{
    const binding *b = user_data;
    arpc_arena *arena = arpc_request_arena(req);
    if (arena == NULL)
        return ARPC_ENOMEM;
    ProtobufCMessage *in;
    int rc =
        arpc__pb_unpack(b->m->input, arena, arpc_request_data(req), arpc_request_len(req), &in);
    if (rc < 0)
        return rc;
    ProtobufCMessage *out = arpc__pb_new(b->m->output, arena);
    if (out == NULL)
        return ARPC_ENOMEM;
    rc = handler_status(b->m->invoke(b->handler, req, NULL, in, out, b->user_data));
    if (rc != 0)
        return rc;
    arpc_buf *rsp = arpc_request_response(req);
    arpc__buf_clear(rsp); /* the answer is `out`, not what the handler may have written */
    return arpc__pb_pack_append(rsp, out);
}

/* A stream's arena: its request's. */
static arpc_arena *stream_arena(arpc_stream *st)
{
    return arpc_request_arena(arpc_stream_request(st));
}

static int serve_server_stream(arpc_stream *st, void *user_data)
{
    const binding *b = user_data;
    arpc_arena *arena = stream_arena(st);
    if (arena == NULL)
        return ARPC_ENOMEM;
    ProtobufCMessage *in;
    int rc = arpc_pb_stream_read(st, b->m->input, arena, &in);
    if (rc == ARPC_EEOS)
        return ARPC_EBADMSG; /* a server-streaming call carries exactly one request */
    if (rc < 0)
        return rc;
    return handler_status(b->m->invoke(b->handler, NULL, st, in, NULL, b->user_data));
}

static int serve_client_stream(arpc_stream *st, void *user_data)
{
    const binding *b = user_data;
    arpc_arena *arena = stream_arena(st);
    ProtobufCMessage *out = arena != NULL ? arpc__pb_new(b->m->output, arena) : NULL;
    if (out == NULL)
        return ARPC_ENOMEM;
    int rc = handler_status(b->m->invoke(b->handler, NULL, st, NULL, out, b->user_data));
    if (rc != 0)
        return rc;
    rc = arpc_pb_stream_write(st, out);
    /* ARPC_EEOS: the stream took an answer already, which only a handler writing
     * one itself (arpc_stream_write) can have done; a client-streaming method has
     * one answer, `out`. */
    return rc == ARPC_EEOS ? ARPC_EINTERNAL : rc;
}

static int serve_bidi_stream(arpc_stream *st, void *user_data)
{
    const binding *b = user_data;
    return handler_status(b->m->invoke(b->handler, NULL, st, NULL, NULL, b->user_data));
}

static void def_for(arpc__method_def *d, const binding *b)
{
    d->name = b->m->name;
    d->user_data = (void *)b;
    d->fn = NULL;
    d->stream_fn = NULL;
    switch (b->m->kind) {
    case ARPC_PB_UNARY:
        d->fn = serve_unary;
        break;
    case ARPC_PB_SERVER_STREAM:
        d->stream_fn = serve_server_stream;
        break;
    case ARPC_PB_CLIENT_STREAM:
        d->stream_fn = serve_client_stream;
        break;
    case ARPC_PB_BIDI_STREAM:
        d->stream_fn = serve_bidi_stream;
        break;
    }
}

/* @return true if `svc` is described well enough to serve. */
static bool service_valid(const arpc_pb_service *svc)
{
    if (svc->name == NULL || svc->name[0] == '\0')
        return false;
    for (size_t i = 0; i < svc->method_count; i++) {
        const arpc_pb_method *m = &svc->methods[i];
        if (m->name == NULL || m->input == NULL || m->output == NULL || m->invoke == NULL ||
            (unsigned)m->kind > ARPC_PB_BIDI_STREAM)
            return false;
    }
    return true;
}

/* Fills the bindings and definitions of the non-NULL handlers.  @return how many. */
static size_t bind_all(bindings *bs, arpc__method_def *defs, const arpc_pb_service *svc,
                       const arpc_pb_fn *handlers, void *user_data)
{
    size_t n = 0;
    for (size_t i = 0; i < svc->method_count; i++) {
        if (handlers[i] == NULL)
            continue;
        bs->b[n] = (binding){.m = &svc->methods[i], .handler = handlers[i], .user_data = user_data};
        def_for(&defs[n], &bs->b[n]);
        n++;
    }
    return n;
}

int arpc_pb_register(arpc_server *srv, const arpc_pb_service *svc, const arpc_pb_fn *handlers,
                     void *user_data)
{
    if (srv == NULL || svc == NULL || (handlers == NULL && svc->method_count > 0) ||
        (svc->methods == NULL && svc->method_count > 0) || !service_valid(svc))
        return ARPC_EINVAL;
    size_t count = svc->method_count;
    if (count > (SIZE_MAX - sizeof(bindings)) / (sizeof(binding) + sizeof(arpc__method_def)))
        return ARPC_EINVAL;
    bindings *bs = arpc__malloc(sizeof(bindings) + count * sizeof(binding));
    arpc__method_def *defs = arpc__malloc(count > 0 ? count * sizeof(*defs) : 1);
    int rc = bs != NULL && defs != NULL ? 0 : ARPC_ENOMEM;
    size_t n = rc == 0 ? bind_all(bs, defs, svc, handlers, user_data) : 0;
    /* Reflection first, so that its failure leaves nothing registered; a later
     * failure (a method registered already, memory) takes the listing back. */
    bool listed_before = rc == 0 && arpc__pb_registry_lists(srv, svc->name);
    if (rc == 0)
        rc = arpc__pb_registry_add(srv, svc);
    if (rc == 0) {
        rc = arpc__server_register_all(srv, defs, n, &bs->owned);
        if (rc < 0 && !listed_before)
            arpc__pb_registry_forget(srv, svc);
    }
    arpc__free(defs);
    if (rc < 0)
        arpc__free(bs);
    return rc;
}

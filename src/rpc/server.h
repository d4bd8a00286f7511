/*
 * Internal server interface beyond include/arpc/server.h.
 */
#ifndef ARPC_RPC_SERVER_H
#define ARPC_RPC_SERVER_H

#include <arpc/server.h>
#include <arpc/stream.h>

#include "proto/proto.h"

/*
 * Adds a protocol to those the server detects on a new connection's first bytes, after the
 * built-in ones (proto/registry.c).  For tests that prove the seam with a protocol of their
 * own.
 *
 * @param proto  borrowed for the server's life.
 * @return 0, or ARPC_EINVAL (already listening, or too many protocols).
 * Thread: the creator's, before arpc_server_listen.  Suspends: no.
 */
int arpc__server_add_protocol(arpc_server *srv, const arpc__proto_ops *proto);

/*
 * The protobuf layer's per-server state (protobuf/registry.c: the services and files that
 * reflection serves), opaque to this layer, which only keeps it and frees it with `free_fn`
 * in arpc_server_destroy() once no handler runs any more.
 *
 * arpc__server_registry returns it, or NULL before one is set.
 * arpc__server_set_registry returns 0, or ARPC_EINVAL (listening already, or one is set).
 * Thread: the creator's, before arpc_server_listen (set); any (get).  Suspends: no.
 */
void *arpc__server_registry(const arpc_server *srv);
int arpc__server_set_registry(arpc_server *srv, void *registry, void (*free_fn)(void *registry));
/* A block the server frees (arpc__free) when it is destroyed: its first member. */
typedef struct arpc__server_owned {
    struct arpc__server_owned *next;
} arpc__server_owned;

/* One method for arpc__server_register_all: a unary handler (`fn`) or a stream
 * handler (`stream_fn`), as arpc_server_register() and
 * arpc_server_register_stream() take them. */
typedef struct arpc__method_def {
    const char *name;
    arpc_handler_fn fn;
    arpc_stream_handler_fn stream_fn;
    void *user_data;
} arpc__method_def;

/*
 * Registers `count` methods, all or none (typed services: arpc_pb_register).
 * On success the server also takes `owned` (may be NULL), freed at
 * arpc_server_destroy(); on error it stays the caller's.
 * @return 0, ARPC_EINVAL (as arpc_server_register(), or a name registered
 *         already or twice in `defs`) or ARPC_ENOMEM.
 * Thread: any, before listening.  Suspends: no.
 */
int arpc__server_register_all(arpc_server *srv, const arpc__method_def *defs, size_t count,
                              arpc__server_owned *owned);

#endif

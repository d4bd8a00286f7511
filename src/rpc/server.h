/*
 * Internal server interface beyond include/arpc/server.h.
 */
#ifndef ARPC_RPC_SERVER_H
#define ARPC_RPC_SERVER_H

#include <arpc/server.h>

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

#endif

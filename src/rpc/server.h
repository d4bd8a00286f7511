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

#endif

/*
 * The per-server registry of typed services behind reflection
 * (arpc_server_enable_reflection(), include/arpc/protobuf.h).
 */
#ifndef ARPC_PROTOBUF_REGISTRY_H
#define ARPC_PROTOBUF_REGISTRY_H

#include <arpc/protobuf.h>

/*
 * Records `svc` and its files (borrowed: static objects of generated code) for
 * reflection on `srv`.  Called by arpc_pb_register().
 * @return 0 or ARPC_ENOMEM.
 * Thread: any, before listening.  Suspends: no.
 */
int arpc__pb_registry_add(arpc_server *srv, const arpc_pb_service *svc);

#endif

/*
 * What the client half of the rpc layer may read of a request being served:
 * its deadline, for calls made on its behalf (arpc_call_opts.parent).
 */
#ifndef ARPC_RPC_REQUEST_H
#define ARPC_RPC_REQUEST_H

#include <stdint.h>

#include <arpc/server.h>

/* The request's deadline on this host's monotonic clock (arpc__now_ns), or
 * ARPC__NO_DEADLINE.  Fixed when the request arrives.  Any thread that holds
 * the request. */
int64_t arpc__request_deadline_ns(const arpc_request *req);

#endif

/*
 * What the client half of the rpc layer may read of a request being served,
 * for calls made on its behalf (arpc_call_opts.parent): its deadline, and its
 * cancellation.
 *
 * A call with a parent watches it: an arpc__cancel_node inside the call is
 * linked into the request's list of watchers, on the request's loop thread
 * only, and the request's cancel unlinks every node and runs its `fn` there.
 * The node costs the request nothing to hold (intrusive); a node's owner
 * unlinks it itself on that same loop when it no longer watches (the call
 * completed), and a request that ends unlinks the nodes left, so a node is
 * never linked into freed memory.  channel.c's design notes describe how a
 * call on another loop learns of the cancel.
 */
#ifndef ARPC_RPC_REQUEST_H
#define ARPC_RPC_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include <arpc/server.h>

#include "base/list.h"
#include "runtime/loop.h"

/* The request's deadline on this host's monotonic clock (arpc__now_ns), or
 * ARPC__NO_DEADLINE.  Fixed when the request arrives.  Any thread that holds
 * the request. */
int64_t arpc__request_deadline_ns(const arpc_request *req);

/* The loop the request runs on: where its watchers are linked and told. */
arpc_loop *arpc__request_loop(const arpc_request *req);

typedef struct arpc__cancel_node arpc__cancel_node;

struct arpc__cancel_node {
    arpc__list link; /* in the request's watchers; the request's loop thread only */
    /* Runs once on the request's loop thread when the request is canceled by
     * its client or its connection's close (not at its deadline), after the
     * node was unlinked.  It must not suspend, nor end the request. */
    void (*fn)(arpc__cancel_node *node);
};

/*
 * Links `node` (fn set, link self-linked) into the request's watchers.
 * @return 0, or ARPC_ECANCELED if the request is canceled already (not linked).
 * Thread: the request's loop thread.  Suspends: no.
 */
int arpc__request_watch(arpc_request *req, arpc__cancel_node *node);

/* Stops watching: unlinks `node`, a no-op if it is not linked (the request
 * was canceled or ended meanwhile).  Thread: the loop the request ran on, also
 * after the request ended. */
static inline void arpc__request_unwatch(arpc__cancel_node *node)
{
    arpc__list_remove(&node->link);
}

#endif

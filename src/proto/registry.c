/*
 * Design notes: the list of protocols.  The one place that names every protocol, so that
 * adding one is a folder beside its siblings plus a line here, and no edit above the seam:
 * a channel finds its protocol by the id of its arpc_channel_opts.protocol, a server tries
 * the detectable ones on each new connection's first bytes, in this order.  Immutable.
 */
#include <arpc/client.h>

#include "proto/proto.h"

static const arpc__proto_ops *const detectable[] = {&arpc__proto_native};

const arpc__proto_ops *arpc__proto_by_id(int id)
{
    switch (id) {
    case ARPC_PROTOCOL_NATIVE:
        return &arpc__proto_native;
    default:
        return NULL;
    }
}

const arpc__proto_ops *const *arpc__proto_detectable(unsigned *count)
{
    *count = (unsigned)(sizeof(detectable) / sizeof(detectable[0]));
    return detectable;
}

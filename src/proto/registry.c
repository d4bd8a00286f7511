/*
 * Design notes: the list of protocols.  The one place that names every protocol, so that
 * adding one is a folder beside its siblings plus a line here, and no edit above the seam:
 * a channel finds its protocol by the id of its arpc_channel_opts.protocol, a server tries
 * the detectable ones on each new connection's first bytes, in this order.  Immutable.
 */
#include <arpc/client.h>

#include "proto/proto.h"

/* ARPC_HAVE_GRPC: set by src/CMakeLists.txt when nghttp2 is there (a cross build without it
 * leaves gRPC out). */
#ifdef ARPC_HAVE_GRPC
static const arpc__proto_ops *const detectable[] = {&arpc__proto_native, &arpc__proto_grpc,
                                                    &arpc__proto_thrift};
#else
static const arpc__proto_ops *const detectable[] = {&arpc__proto_native, &arpc__proto_thrift};
#endif

const arpc__proto_ops *arpc__proto_by_id(int id)
{
    switch (id) {
    case ARPC_PROTOCOL_NATIVE:
        return &arpc__proto_native;
#ifdef ARPC_HAVE_GRPC
    case ARPC_PROTOCOL_GRPC:
        return &arpc__proto_grpc;
#endif
    case ARPC_PROTOCOL_THRIFT:
        return &arpc__proto_thrift;
    default:
        return NULL;
    }
}

int arpc__proto_id(const arpc__proto_ops *ops)
{
    static const int ids[] = {ARPC_PROTOCOL_NATIVE, ARPC_PROTOCOL_GRPC, ARPC_PROTOCOL_THRIFT};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (ops != NULL && arpc__proto_by_id(ids[i]) == ops)
            return ids[i];
    return -1;
}

const arpc__proto_ops *const *arpc__proto_detectable(unsigned *count)
{
    *count = (unsigned)(sizeof(detectable) / sizeof(detectable[0]));
    return detectable;
}

/*
 * A protocol of the stream tests only ("seam"), with streams: it fills in the ops table
 * of src/proto/proto.h and is given to a server with arpc__server_add_protocol and to a
 * channel with arpc__channel_use_protocol, so the stream tests run over a wire that is
 * not native and prove the rpc layer (src/rpc/stream.c) reads no frame layout.  A frame
 * is a 40-byte little-endian header (magic 0xA7, type, status, id, timeout_ns,
 * method_len, md_count, md_len, payload_len) and its body.  Every CREDIT is sent at once.
 */
#ifndef ARPC_TEST_SEAM_PROTO_H
#define ARPC_TEST_SEAM_PROTO_H

#include "proto/proto.h"

extern const arpc__proto_ops seam_proto;

#endif

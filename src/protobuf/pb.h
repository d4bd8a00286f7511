/*
 * What the typed runtime's files (call.c, serve.c, stream.c) share: unpacking
 * into an arena or the heap with the failure told apart (a malformed message
 * from a failed allocation), and packing into a buffer.
 */
#ifndef ARPC_PROTOBUF_PB_H
#define ARPC_PROTOBUF_PB_H

#include <stddef.h>

#include <arpc/arena.h>
#include <arpc/buf.h>
#include <arpc/protobuf.h>

/*
 * Unpacks `len` bytes at `data` as `type` into `arena`, or the heap when NULL.
 * @param out  on success the message (see include/arpc/protobuf.h "Memory").
 * @return 0, ARPC_EBADMSG (the bytes are not a `type`) or ARPC_ENOMEM.
 */
int arpc__pb_unpack(const ProtobufCMessageDescriptor *type, arpc_arena *arena, const void *data,
                    size_t len, ProtobufCMessage **out);

/* Appends `msg` packed to `buf`.  @return 0 or ARPC_ENOMEM. */
int arpc__pb_pack_append(arpc_buf *buf, const ProtobufCMessage *msg);

/* A new message of `type`, initialized, from `arena`.  @return it or NULL. */
ProtobufCMessage *arpc__pb_new(const ProtobufCMessageDescriptor *type, arpc_arena *arena);

#endif

/*
 * Unpack and pack for the typed runtime (pb.h).
 *
 * protobuf-c reports a failed unpack as NULL whether the bytes were malformed
 * or an allocation failed; the caller must answer the first with
 * ARPC_EBADMSG and the second with ARPC_ENOMEM, so the allocator used here
 * records its own failures.
 */
#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "protobuf/pb.h"

typedef struct unpack_state {
    arpc_arena *arena; /* NULL: the heap */
    bool failed;       /* an allocation failed */
} unpack_state;

static void *state_alloc(void *data, size_t size)
{
    unpack_state *st = data;
    void *p = st->arena != NULL ? arpc_arena_alloc(st->arena, size) : arpc__malloc(size);
    if (p == NULL)
        st->failed = true;
    return p;
}

static void state_free(void *data, void *pointer)
{
    unpack_state *st = data;
    if (st->arena == NULL)
        arpc__free(pointer);
}

int arpc__pb_unpack(const ProtobufCMessageDescriptor *type, arpc_arena *arena, const void *data,
                    size_t len, ProtobufCMessage **out)
{
    unpack_state st = {.arena = arena, .failed = false};
    ProtobufCAllocator allocator = {
        .alloc = state_alloc, .free = state_free, .allocator_data = &st};
    /* protobuf-c reads nothing at a NULL pointer of length 0, but says so nowhere. */
    static const uint8_t empty[1];
    ProtobufCMessage *msg =
        protobuf_c_message_unpack(type, &allocator, len, len > 0 ? data : empty);
    if (msg == NULL)
        return st.failed ? ARPC_ENOMEM : ARPC_EBADMSG;
    *out = msg;
    return 0;
}

int arpc__pb_pack_append(arpc_buf *buf, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (arpc__buf_ensure(buf, len) < 0)
        return ARPC_ENOMEM;
    size_t packed = protobuf_c_message_pack(msg, arpc__buf_tail(buf));
    buf->len += packed;
    return 0;
}

ProtobufCMessage *arpc__pb_new(const ProtobufCMessageDescriptor *type, arpc_arena *arena)
{
    ProtobufCMessage *msg = arpc_arena_alloc(arena, type->sizeof_message);
    if (msg != NULL)
        protobuf_c_message_init(type, msg);
    return msg;
}

/*
 * libFuzzer target for the typed unpack path (src/protobuf/pack.c): what a
 * typed handler does with a request's bytes and a typed call with an answer's.
 *
 * Input: byte 0 picks an allocation to fail (0: none, else the (byte 0)-th
 * allocation of the heap unpack); the rest, S, is unpacked as tpb.Num
 * (tests/integration/protobuf/tpb.proto: varints, a string, a packed repeated
 * field, a sub-message of its own type).  Properties:
 *   - into an arena and onto the heap, S unpacks the same way: both succeed or
 *     both give ARPC_EBADMSG, never anything else;
 *   - a message that unpacked packs again, and what it packs unpacks and packs
 *     to the same bytes (both from the arena and the heap copy);
 *   - with an allocation failing, the heap unpack gives ARPC_ENOMEM or the
 *     result it gives without (when the failure is past its allocations),
 *     and leaks nothing (ASan);
 *   - the arena, reset after each input, keeps serving.
 * A violated property aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arena.h>
#include <arpc/buf.h>
#include <arpc/err.h>

#include "base/alloc.h"
#include "fuzz_check.h"
#include "protobuf/pb.h"
#include "tpb.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static arpc_arena *arena;

/* Packs `m` into a new buffer (the caller frees it). */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *out = malloc(*len > 0 ? *len : 1);
    CHECK(out != NULL);
    CHECK(protobuf_c_message_pack(m, out) == *len);
    return out;
}

/* True if `m` or a message inside it kept unknown fields. */
static bool has_unknown(const Tpb__Num *m)
{
    for (; m != NULL; m = m->inner)
        if (m->base.n_unknown_fields > 0)
            return true;
    return false;
}

/* Packing is stable: pack(unpack(pack(m))) == pack(m).  protobuf-c keeps unknown
 * fields as it read them, also a field number 0 it accepted in an overlong tag
 * (80 00) and then writes as 00, which it refuses to read: with unknown fields the
 * repacked bytes need only be packable. */
static void check_repack(const ProtobufCMessage *m)
{
    size_t len;
    uint8_t *once = pack(m, &len);
    ProtobufCMessage *again;
    int rc = arpc__pb_unpack(&tpb__num__descriptor, arena, once, len, &again);
    if (has_unknown((const Tpb__Num *)m)) {
        CHECK(rc == 0 || rc == ARPC_EBADMSG);
        free(once);
        return;
    }
    CHECK(rc == 0);
    size_t len2;
    uint8_t *twice = pack(again, &len2);
    CHECK(len == len2 && memcmp(once, twice, len) == 0);
    free(once);
    free(twice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (arena == NULL)
        CHECK(arpc_arena_create(&arena) == 0);
    int fail_at = data[0];
    const uint8_t *s = data + 1;
    size_t len = size - 1;
    /* An exact copy, so ASan sees a read past the end. */
    uint8_t *copy = malloc(len > 0 ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, s, len);

    ProtobufCMessage *in_arena = NULL;
    int rc_arena = arpc__pb_unpack(&tpb__num__descriptor, arena, copy, len, &in_arena);
    ProtobufCMessage *on_heap = NULL;
    int rc_heap = arpc__pb_unpack(&tpb__num__descriptor, NULL, copy, len, &on_heap);
    CHECK(rc_arena == 0 || rc_arena == ARPC_EBADMSG);
    CHECK(rc_arena == rc_heap);
    if (rc_arena == 0) {
        check_repack(in_arena);
        check_repack(on_heap);
        protobuf_c_message_free_unpacked(on_heap, NULL);
    }
    if (fail_at > 0) {
        ProtobufCMessage *m = NULL;
        arpc__alloc_fail_after(fail_at - 1);
        int rc = arpc__pb_unpack(&tpb__num__descriptor, NULL, copy, len, &m);
        arpc__alloc_fail_after(-1);
        CHECK(rc == ARPC_ENOMEM || rc == rc_heap);
        if (rc == 0)
            protobuf_c_message_free_unpacked(m, NULL);
    }
    arpc_arena_reset(arena);
    free(copy);
    return 0;
}

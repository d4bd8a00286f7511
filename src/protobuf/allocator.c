/*
 * protobuf-c's allocator over an arpc_arena (include/arpc/protobuf.h).
 *
 * protobuf-c allocates while it unpacks: the message, then each string,
 * repeated field and sub-message.  Over an arena every one of those is a bump
 * of a pointer in memory the arena keeps across resets, and free does nothing
 * because the arena's reset frees the lot; that is how a typed call of a
 * fixed shape allocates nothing in steady state (bench/alloc).
 */
#include <arpc/arena.h>
#include <arpc/protobuf.h>

#include "base/alloc.h"

static void *arena_alloc(void *arena, size_t size)
{
    return arpc_arena_alloc(arena, size);
}

static void arena_free(void *arena, void *pointer)
{
    (void)arena;
    (void)pointer;
}

/* The heap through the library's hooks (counted, and failed by fault tests).
 * They are malloc and free underneath, so a message unpacked with them is
 * freed by protobuf_c_message_free_unpacked(msg, NULL) as the caller expects. */
static void *heap_alloc(void *unused, size_t size)
{
    (void)unused;
    return arpc__malloc(size);
}

static void heap_free(void *unused, void *pointer)
{
    (void)unused;
    arpc__free(pointer);
}

ProtobufCAllocator arpc_pb_allocator(arpc_arena *arena)
{
    if (arena == NULL)
        return (ProtobufCAllocator){.alloc = heap_alloc, .free = heap_free};
    ProtobufCAllocator allocator = {
        .alloc = arena_alloc,
        .free = arena_free,
        .allocator_data = arena,
    };
    return allocator;
}

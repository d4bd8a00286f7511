/**
 * A region allocator: many small allocations, freed all at once.  Typed calls
 * (include/arpc/protobuf.h) unpack messages into one, so that a steady stream
 * of calls allocates nothing: the arena keeps its memory across
 * arpc_arena_reset() and hands it out again.  A served request has one of its
 * own (arpc_request_arena(), include/arpc/server.h), emptied when its answer
 * has been sent.
 *
 * Thread-safety: an arena is used by one thread at a time (its owner), like
 * an arpc_buf.  No function here suspends.
 */
#ifndef ARPC_ARENA_H
#define ARPC_ARENA_H

#include <stddef.h>

#include <arpc/export.h>

ARPC_BEGIN_DECLS

typedef struct arpc_arena arpc_arena;

/**
 * Creates an empty arena.
 * @param out  on success the arena, owned by the caller (arpc_arena_destroy()).
 * @return 0 or ARPC_ENOMEM.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_arena_create(arpc_arena **out);

/** Frees the arena and everything allocated from it; NULL is a no-op.
 *  Thread: the owner's.  Suspends: no. */
ARPC_EXPORT void arpc_arena_destroy(arpc_arena *arena);

/**
 * Allocates `size` bytes aligned for any type (max_align_t), valid until the
 * next arpc_arena_reset() or arpc_arena_destroy().  A size of 0 returns a
 * valid unique pointer.
 * @return the memory, or NULL when out of memory (the arena is unchanged).
 * Thread: the owner's.  Suspends: no.
 */
ARPC_EXPORT void *arpc_arena_alloc(arpc_arena *arena, size_t size);

/**
 * Frees everything allocated from the arena at once, keeping memory for
 * reuse (what the last cycle needed, up to a bound), so that a cycle of
 * the same shape allocates nothing from the system.
 * Thread: the owner's.  Suspends: no.
 */
ARPC_EXPORT void arpc_arena_reset(arpc_arena *arena);

ARPC_END_DECLS

#endif

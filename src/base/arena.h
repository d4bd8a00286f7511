/*
 * The arena's internal side (include/arpc/arena.h has the public one).
 */
#ifndef ARPC_BASE_ARENA_H
#define ARPC_BASE_ARENA_H

#include <stddef.h>

#include <arpc/arena.h>

/* arpc_arena_reset(), keeping at most about `keep_max` bytes for the next cycle (at
 * least the first block's).  For arenas kept in pools (a server's requests), which
 * must not each pin what their largest cycle needed.  Thread: the owner's. */
void arpc__arena_reset_keep(arpc_arena *arena, size_t keep_max);

#endif

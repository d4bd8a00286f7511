/*
 * The pending-call table of a client connection: request id -> call.
 *
 * Request ids are sequential per connection and answers come back roughly in
 * order, so the table is a ring indexed by `id & ring_mask`: an insert or a
 * remove is one slot access, with no hashing and no probing.  The ring is kept
 * at least twice as large as the calls it holds.  A call still waiting when an
 * id one ring further on arrives (a straggler: a slow handler, a long
 * deadline) moves to `spill`, an open-addressing hash, and the new call takes
 * its slot; a remove that misses the ring looks there, but only while the
 * spill holds anything.  Loop thread only.
 */
#ifndef ARPC_RPC_PENDING_H
#define ARPC_RPC_PENDING_H

#include <stddef.h>
#include <stdint.h>

typedef struct arpc__pending_slot {
    uint64_t id; /* 0 = empty (request ids start at 1) */
    void *call;
} arpc__pending_slot;

/* Linear probing with backward-shift deletion (no tombstones). */
typedef struct arpc__pending_spill {
    arpc__pending_slot *slots;
    size_t mask;
    size_t len;
} arpc__pending_spill;

typedef struct arpc__pending {
    arpc__pending_slot *ring; /* NULL until the first insert */
    size_t ring_mask;
    size_t len; /* calls in the ring and the spill together */
    arpc__pending_spill spill;
} arpc__pending;

void arpc__pending_init(arpc__pending *table);
void arpc__pending_fini(arpc__pending *table);

/* `id` must not be 0 nor in the table already; `call` must not be NULL.
 * @return 0 or ARPC_ENOMEM (the table is unchanged). */
int arpc__pending_insert(arpc__pending *table, uint64_t id, void *call);

/* Removes and returns the call of `id`, or NULL if there is none (a late
 * answer, an id never sent, 0). */
void *arpc__pending_remove(arpc__pending *table, uint64_t id);

/* The call of `id`, left in the table, or NULL (streams: many frames find one entry). */
void *arpc__pending_find(const arpc__pending *table, uint64_t id);

/* Empties the table, then calls `fn` once for every call it held, in no
 * particular order.  Used to fail every call of a dead connection: whatever
 * `fn` does meanwhile sees an empty table (and may insert into it). */
void arpc__pending_drain(arpc__pending *table, void (*fn)(void *call, void *arg), void *arg);

#endif

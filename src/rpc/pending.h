/*
 * The pending-call table of a client connection: request id -> call.  Open
 * addressing with linear probing and backward-shift deletion (no tombstones),
 * so a table that sees millions of insert/remove pairs stays short-probed.
 * Request ids are sequential per connection; a multiplicative hash spreads
 * them.  Loop thread only.
 */
#ifndef ARPC_RPC_PENDING_H
#define ARPC_RPC_PENDING_H

#include <stddef.h>
#include <stdint.h>

typedef struct arpc__pending_slot {
    uint64_t id; /* 0 = empty (request ids start at 1) */
    void *call;
} arpc__pending_slot;

typedef struct arpc__pending {
    arpc__pending_slot *slots;
    size_t mask;
    size_t len;
} arpc__pending;

void arpc__pending_init(arpc__pending *table);
void arpc__pending_fini(arpc__pending *table);

/* @return 0 or ARPC_ENOMEM. */
int arpc__pending_insert(arpc__pending *table, uint64_t id, void *call);

/* Removes and returns the call of `id`, or NULL if there is none (a late answer). */
void *arpc__pending_remove(arpc__pending *table, uint64_t id);

/* Empties the table and hands its slot array (`*count` slots, empty ones have
 * id 0) to the caller, who frees it with arpc__free().  Used to fail every
 * call of a dead connection: callbacks that run meanwhile see an empty table. */
arpc__pending_slot *arpc__pending_take_all(arpc__pending *table, size_t *count);

#endif

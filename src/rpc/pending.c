/*
 * Design notes: see pending.h for the ring and its spill table.
 *
 * The ring never holds two calls in one slot, and growing it keeps that:
 * ids in different slots of a ring of size n differ in their low log2(n)
 * bits, so they differ in their low log2(2n) bits too, and every call moves
 * to a slot of its own.  The spill table is the general structure (a hash of
 * the id, linear probing); it only ever holds the stragglers, so it stays
 * small and is not touched at all while it is empty.
 */
#include "rpc/pending.h"

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/common.h"

#define RING_MIN  64
#define SPILL_MIN 16

/* ---- spill: open addressing for calls displaced from the ring ----------- */

static size_t spill_home(const arpc__pending_spill *spill, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 17) & spill->mask;
}

static void spill_place(arpc__pending_spill *spill, uint64_t id, void *call)
{
    size_t i = spill_home(spill, id);
    while (spill->slots[i].id != 0)
        i = (i + 1) & spill->mask;
    spill->slots[i].id = id;
    spill->slots[i].call = call;
}

static int spill_grow(arpc__pending_spill *spill)
{
    size_t old_cap = spill->slots ? spill->mask + 1 : 0;
    size_t cap = old_cap ? old_cap * 2 : SPILL_MIN;
    arpc__pending_slot *old = spill->slots;
    arpc__pending_slot *slots = arpc__calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return ARPC_ENOMEM;
    spill->slots = slots;
    spill->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].id != 0)
            spill_place(spill, old[i].id, old[i].call);
    }
    arpc__free(old);
    return 0;
}

static int spill_insert(arpc__pending_spill *spill, uint64_t id, void *call)
{
    /* Grow at 50% load: probes stay short even with clustered ids. */
    if (spill->slots == NULL || (spill->len + 1) * 2 > spill->mask + 1) {
        int rc = spill_grow(spill);
        if (rc < 0)
            return rc;
    }
    spill_place(spill, id, call);
    spill->len++;
    return 0;
}

/* Backward-shift deletion: pull later members of the probe run into the hole. */
static void spill_erase_at(arpc__pending_spill *spill, size_t hole)
{
    size_t i = hole;
    for (;;) {
        i = (i + 1) & spill->mask;
        if (spill->slots[i].id == 0)
            break;
        size_t want = spill_home(spill, spill->slots[i].id);
        /* Move the entry if its home does not lie cyclically in (hole, i]. */
        if (((i - want) & spill->mask) >= ((i - hole) & spill->mask)) {
            spill->slots[hole] = spill->slots[i];
            hole = i;
        }
    }
    spill->slots[hole].id = 0;
    spill->slots[hole].call = NULL;
    spill->len--;
}

static void *spill_remove(arpc__pending_spill *spill, uint64_t id)
{
    for (size_t i = spill_home(spill, id);; i = (i + 1) & spill->mask) {
        if (spill->slots[i].id == 0)
            return NULL;
        if (spill->slots[i].id == id) {
            void *call = spill->slots[i].call;
            spill_erase_at(spill, i);
            return call;
        }
    }
}

/* ---- the ring ------------------------------------------------------------ */

void arpc__pending_init(arpc__pending *table)
{
    table->ring = NULL;
    table->ring_mask = 0;
    table->len = 0;
    table->spill.slots = NULL;
    table->spill.mask = 0;
    table->spill.len = 0;
}

void arpc__pending_fini(arpc__pending *table)
{
    arpc__free(table->ring);
    arpc__free(table->spill.slots);
    arpc__pending_init(table);
}

static int ring_grow(arpc__pending *table)
{
    size_t old_cap = table->ring ? table->ring_mask + 1 : 0;
    size_t cap = old_cap ? old_cap * 2 : RING_MIN;
    arpc__pending_slot *ring = arpc__calloc(cap, sizeof(*ring));
    if (ring == NULL)
        return ARPC_ENOMEM;
    for (size_t i = 0; i < old_cap; i++) {
        if (table->ring[i].id != 0)
            ring[table->ring[i].id & (cap - 1)] = table->ring[i];
    }
    arpc__free(table->ring);
    table->ring = ring;
    table->ring_mask = cap - 1;
    return 0;
}

/* The rare half of an insert: the first insert, a ring at half load, or a
 * slot still taken.  Apart, so that the common half needs no stack frame. */
static arpc__noinline int insert_slow(arpc__pending *table, uint64_t id, void *call)
{
    size_t in_ring = table->len - table->spill.len;
    /* Grow at 50% load, so that only stragglers ever share a slot. */
    if (table->ring == NULL || (in_ring + 1) * 2 > table->ring_mask + 1) {
        int rc = ring_grow(table);
        if (rc < 0)
            return rc;
    }
    arpc__pending_slot *slot = &table->ring[id & table->ring_mask];
    if (slot->id != 0) {
        /* An older call, a whole ring of ids ago, still waits: it moves to
         * the spill, and the new call, likelier to be answered soon, takes
         * the slot. */
        int rc = spill_insert(&table->spill, slot->id, slot->call);
        if (rc < 0)
            return rc;
    }
    slot->id = id;
    slot->call = call;
    table->len++;
    return 0;
}

int arpc__pending_insert(arpc__pending *table, uint64_t id, void *call)
{
    ARPC_ASSERT(id != 0 && call != NULL);
    size_t in_ring = table->len - table->spill.len;
    if (arpc__unlikely(table->ring == NULL || (in_ring + 1) * 2 > table->ring_mask + 1))
        return insert_slow(table, id, call);
    arpc__pending_slot *slot = &table->ring[id & table->ring_mask];
    if (arpc__unlikely(slot->id != 0))
        return insert_slow(table, id, call);
    slot->id = id;
    slot->call = call;
    table->len++;
    return 0;
}

void *arpc__pending_remove(arpc__pending *table, uint64_t id)
{
    if (table->len == 0) /* also: no ring yet */
        return NULL;
    arpc__pending_slot *slot = &table->ring[id & table->ring_mask];
    if (arpc__likely(slot->id == id && id != 0)) {
        void *call = slot->call;
        slot->id = 0;
        slot->call = NULL;
        table->len--;
        return call;
    }
    if (table->spill.len == 0 || id == 0)
        return NULL;
    void *call = spill_remove(&table->spill, id);
    if (call != NULL)
        table->len--;
    return call;
}

void *arpc__pending_find(const arpc__pending *table, uint64_t id)
{
    if (table->len == 0 || id == 0)
        return NULL;
    const arpc__pending_slot *slot = &table->ring[id & table->ring_mask];
    if (slot->id == id)
        return slot->call;
    if (table->spill.len == 0)
        return NULL;
    const arpc__pending_spill *spill = &table->spill;
    for (size_t i = spill_home(spill, id);; i = (i + 1) & spill->mask) {
        if (spill->slots[i].id == 0)
            return NULL;
        if (spill->slots[i].id == id)
            return spill->slots[i].call;
    }
}

static void call_each(arpc__pending_slot *slots, size_t count, void (*fn)(void *call, void *arg),
                      void *arg)
{
    for (size_t i = 0; i < count; i++) {
        if (slots[i].id != 0)
            fn(slots[i].call, arg);
    }
}

void arpc__pending_drain(arpc__pending *table, void (*fn)(void *call, void *arg), void *arg)
{
    arpc__pending taken = *table;
    arpc__pending_init(table);
    call_each(taken.ring, taken.ring ? taken.ring_mask + 1 : 0, fn, arg);
    call_each(taken.spill.slots, taken.spill.slots ? taken.spill.mask + 1 : 0, fn, arg);
    arpc__pending_fini(&taken);
}

#include <arpc/err.h>

#include "base/alloc.h"
#include "rpc/pending.h"

static size_t home(const arpc__pending *table, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 17) & table->mask;
}

void arpc__pending_init(arpc__pending *table)
{
    table->slots = NULL;
    table->mask = 0;
    table->len = 0;
}

void arpc__pending_fini(arpc__pending *table)
{
    arpc__free(table->slots);
    arpc__pending_init(table);
}

static void place(arpc__pending *table, uint64_t id, void *call)
{
    size_t i = home(table, id);
    while (table->slots[i].id != 0)
        i = (i + 1) & table->mask;
    table->slots[i].id = id;
    table->slots[i].call = call;
}

static int grow(arpc__pending *table)
{
    size_t old_cap = table->slots ? table->mask + 1 : 0;
    size_t cap = old_cap ? old_cap * 2 : 64;
    arpc__pending_slot *old = table->slots;
    table->slots = arpc__calloc(cap, sizeof(*table->slots));
    if (table->slots == NULL) {
        table->slots = old;
        return ARPC_ENOMEM;
    }
    table->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].id != 0)
            place(table, old[i].id, old[i].call);
    }
    arpc__free(old);
    return 0;
}

int arpc__pending_insert(arpc__pending *table, uint64_t id, void *call)
{
    /* Grow at 50% load: probes stay short even with clustered ids. */
    if (table->slots == NULL || (table->len + 1) * 2 > table->mask + 1) {
        int rc = grow(table);
        if (rc < 0)
            return rc;
    }
    place(table, id, call);
    table->len++;
    return 0;
}

/* Backward-shift deletion: pull later members of the probe run into the hole. */
static void erase_at(arpc__pending *table, size_t hole)
{
    size_t i = hole;
    for (;;) {
        i = (i + 1) & table->mask;
        if (table->slots[i].id == 0)
            break;
        size_t want = home(table, table->slots[i].id);
        /* Move the entry if its home does not lie cyclically in (hole, i]. */
        if (((i - want) & table->mask) >= ((i - hole) & table->mask)) {
            table->slots[hole] = table->slots[i];
            hole = i;
        }
    }
    table->slots[hole].id = 0;
    table->slots[hole].call = NULL;
    table->len--;
}

void *arpc__pending_remove(arpc__pending *table, uint64_t id)
{
    if (table->len == 0 || id == 0)
        return NULL;
    for (size_t i = home(table, id);; i = (i + 1) & table->mask) {
        if (table->slots[i].id == 0)
            return NULL;
        if (table->slots[i].id == id) {
            void *call = table->slots[i].call;
            erase_at(table, i);
            return call;
        }
    }
}

arpc__pending_slot *arpc__pending_take_all(arpc__pending *table, size_t *count)
{
    arpc__pending_slot *slots = table->slots;
    *count = slots ? table->mask + 1 : 0;
    arpc__pending_init(table);
    return slots;
}

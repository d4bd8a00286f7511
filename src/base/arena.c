/*
 * The arena (include/arpc/arena.h): bump allocation in blocks.
 *
 * Design notes.  The point of an arena here is that a steady stream of calls
 * of one shape allocates nothing from the system: a typed call unpacks its
 * answer, a typed handler its request, into one, and it is reset after each.
 * So a reset keeps memory: when the cycle fitted in the first block, nothing
 * changes; when it spilled into further blocks, those are freed and the first
 * block is replaced by one as large as the whole cycle needed (up to
 * KEEP_MAX, or what arpc__arena_reset_keep is told: a pooled request keeps less),
 * so the next cycle of the same shape fits in it.  An allocation larger than
 * half the current block gets a block of its own, so that one large string does
 * not double the blocks small allocations come from.  Blocks come from the
 * library's hooks (base/alloc.h), so fault tests can fail them and benchmarks
 * count them.
 */
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/arena.h>
#include <arpc/err.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/common.h"

enum {
    ALIGN = alignof(max_align_t),
    FIRST_BLOCK = 2048,    /* the first block's usable bytes */
    KEEP_MAX = 1024 * 1024 /* a reset keeps at most this much */
};

typedef struct block {
    struct block *next; /* the block filled before this one */
    size_t size;        /* usable bytes after the header */
    size_t used;
    alignas(max_align_t) unsigned char data[];
} block;

struct arpc_arena {
    block *head;       /* the block allocations come from; older ones follow */
    size_t cycle_used; /* bytes handed out since the last reset, all blocks */
};

static size_t align_up(size_t n)
{
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

static block *block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(block))
        return NULL;
    block *b = arpc__malloc(sizeof(block) + size);
    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

int arpc_arena_create(arpc_arena **out)
{
    arpc_arena *arena = arpc__malloc(sizeof(*arena));
    if (arena == NULL)
        return ARPC_ENOMEM;
    arena->head = block_new(FIRST_BLOCK);
    if (arena->head == NULL) {
        arpc__free(arena);
        return ARPC_ENOMEM;
    }
    arena->cycle_used = 0;
    *out = arena;
    return 0;
}

static void free_blocks(block *b)
{
    while (b != NULL) {
        block *next = b->next;
        arpc__free(b);
        b = next;
    }
}

void arpc_arena_destroy(arpc_arena *arena)
{
    if (arena == NULL)
        return;
    free_blocks(arena->head);
    arpc__free(arena);
}

/* Room for `size` bytes in a new block: one of its own, behind the head, for an
 * allocation larger than half the head (so that it does not drive the doubling of the
 * blocks small allocations come from), else a new head twice the last one. */
static arpc__noinline void *alloc_slow(arpc_arena *arena, size_t size)
{
    block *head = arena->head;
    bool own = size > head->size / 2;
    size_t want = own ? size : head->size * 2;
    if (want < size)
        want = size;
    block *b = block_new(want);
    if (b == NULL)
        return NULL;
    if (own) {
        b->next = head->next;
        head->next = b;
    } else {
        b->next = head;
        arena->head = b;
    }
    b->used = size;
    arena->cycle_used += size;
    return b->data;
}

void *arpc_arena_alloc(arpc_arena *arena, size_t size)
{
    size = align_up(size == 0 ? 1 : size);
    if (arpc__unlikely(size == 0)) /* the rounding wrapped */
        return NULL;
    block *b = arena->head;
    if (arpc__likely(b->size - b->used >= size)) {
        void *p = b->data + b->used;
        b->used += size;
        arena->cycle_used += size;
        return p;
    }
    return alloc_slow(arena, size);
}

/* The oldest block of the chain (the one that was kept last time), unlinked; the
 * others are freed. */
static block *keep_oldest(block *b)
{
    while (b->next != NULL) {
        block *next = b->next;
        arpc__free(b);
        b = next;
    }
    return b;
}

void arpc__arena_reset_keep(arpc_arena *arena, size_t keep_max)
{
    block *b = arena->head;
    size_t needed = arena->cycle_used;
    arena->cycle_used = 0;
    size_t floor_max = keep_max > FIRST_BLOCK ? keep_max : FIRST_BLOCK;
    if (arpc__likely(b->next == NULL && b->size <= floor_max)) {
        b->used = 0;
        return;
    }
    /* The cycle spilled: one block as large as it needed (within keep_max) replaces
     * them all.  If that allocation fails, the oldest block stays. */
    size_t keep = needed < keep_max ? needed : keep_max;
    block *fresh = block_new(keep > FIRST_BLOCK ? keep : FIRST_BLOCK);
    if (fresh == NULL) {
        fresh = keep_oldest(b);
        fresh->used = 0;
    } else {
        free_blocks(b);
    }
    arena->head = fresh;
}

void arpc_arena_reset(arpc_arena *arena)
{
    arpc__arena_reset_keep(arena, KEEP_MAX);
}

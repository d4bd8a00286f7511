/*
 * The arena (include/arpc/arena.h): bump allocation in blocks.
 *
 * Design notes.  The point of an arena here is that a steady stream of calls
 * of one shape allocates nothing from the system: a typed call unpacks its
 * answer, a typed handler its request, into one, and it is reset after each.
 * So a reset keeps memory: when the cycle fitted in the first block, nothing
 * changes; when it spilled into further blocks, those are freed and the first
 * block is replaced by one as large as the whole cycle needed (up to
 * KEEP_MAX), so the next cycle of the same shape fits in it.  Allocations
 * larger than a block get a block of their own.  Blocks come from the
 * library's hooks (base/alloc.h), so fault tests can fail them and benchmarks
 * count them.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/arena.h>
#include <arpc/err.h>

#include "base/alloc.h"
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

/* A new head block with room for `size` bytes: twice the last one, or more. */
static arpc__noinline void *alloc_slow(arpc_arena *arena, size_t size)
{
    size_t want = arena->head->size * 2;
    if (want < size)
        want = size;
    block *b = block_new(want);
    if (b == NULL)
        return NULL;
    b->next = arena->head;
    arena->head = b;
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

void arpc_arena_reset(arpc_arena *arena)
{
    block *b = arena->head;
    size_t needed = arena->cycle_used;
    arena->cycle_used = 0;
    if (arpc__likely(b->next == NULL)) {
        b->used = 0;
        return;
    }
    /* The cycle spilled: one block as large as it needed replaces them all.
     * If that allocation fails, keep the newest block instead. */
    size_t keep = needed < KEEP_MAX ? needed : KEEP_MAX;
    block *fresh = block_new(keep > FIRST_BLOCK ? keep : FIRST_BLOCK);
    if (fresh == NULL) {
        fresh = b;
        b = b->next;
        fresh->next = NULL;
        fresh->used = 0;
    }
    free_blocks(fresh == arena->head ? b : arena->head);
    arena->head = fresh;
}

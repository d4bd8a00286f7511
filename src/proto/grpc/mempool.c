/*
 * Design notes: size classes over arpc__malloc (mempool.h).
 *
 * - Each block starts with a header of one max_align_t (so the caller's part keeps malloc's
 *   alignment) that records its class, or BIG and its size for one served by arpc__malloc
 *   directly: free and realloc need no size from the caller, as nghttp2_mem gives none.
 * - Why classes and not exact sizes: nghttp2's per-call allocations vary by a few bytes
 *   from call to call (header copies are sized by their names and values); a class absorbs
 *   that, at the cost of at most half a block.
 * - Bounded: a class keeps at most ARPC__GRPC_POOL_CLASS_BYTES of free blocks (and never
 *   fewer than MIN_KEEP), so what a session holds beyond its live memory is at most about
 *   ten times that, and only after it once needed that much at the same time.
 */
#include "proto/grpc/mempool.h"

#include <stdalign.h>
#include <stdbool.h>
#include <string.h>

#include "base/alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ASAN 1
#endif
#endif

#ifdef POOL_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define POISON(p, n)   __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define BIG      UINT32_MAX
#define MIN_KEEP 4u

struct arpc__grpc_pool_block {
    union {
        struct {
            arpc__grpc_pool_block *next; /* on a free list */
            size_t size;                 /* BIG: the caller's size */
            uint32_t cls;                /* a class index or BIG */
        } h;

        max_align_t align;
    } u;
};

#define HDR sizeof(arpc__grpc_pool_block)

static size_t class_size(uint32_t cls)
{
    return (size_t)1 << (ARPC__GRPC_POOL_MIN_SHIFT + cls);
}

/* The smallest class that holds `size` bytes (size <= ARPC__GRPC_POOL_MAX). */
static uint32_t class_of(size_t size)
{
    if (size <= class_size(0))
        return 0;
    /* ceil(log2(size)) - MIN_SHIFT */
    unsigned bits = 64u - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
    return (uint32_t)(bits - ARPC__GRPC_POOL_MIN_SHIFT);
}

static uint32_t keep_limit(uint32_t cls)
{
    size_t n = ARPC__GRPC_POOL_CLASS_BYTES / class_size(cls);
    return n < MIN_KEEP ? MIN_KEEP : (uint32_t)n;
}

static arpc__grpc_pool_block *block_of(void *ptr)
{
    return (arpc__grpc_pool_block *)ptr - 1;
}

/* The bytes the caller may use in the block of `ptr`. */
static size_t usable(void *ptr)
{
    arpc__grpc_pool_block *b = block_of(ptr);
    return b->u.h.cls == BIG ? b->u.h.size : class_size(b->u.h.cls);
}

void arpc__grpc_pool_init(arpc__grpc_pool *p)
{
    memset(p, 0, sizeof(*p));
}

void arpc__grpc_pool_fini(arpc__grpc_pool *p)
{
    for (uint32_t c = 0; c < ARPC__GRPC_POOL_CLASSES; c++) {
        while (p->free[c] != NULL) {
            arpc__grpc_pool_block *b = p->free[c];
            UNPOISON(b, HDR);
            p->free[c] = b->u.h.next;
            arpc__free(b);
        }
        p->nfree[c] = 0;
    }
}

void *arpc__grpc_pool_alloc(arpc__grpc_pool *p, size_t size)
{
    if (size == 0)
        size = 1;
    if (size > ARPC__GRPC_POOL_MAX) {
        if (size > SIZE_MAX - HDR)
            return NULL;
        arpc__grpc_pool_block *b = arpc__malloc(HDR + size);
        if (b == NULL)
            return NULL;
        b->u.h.cls = BIG;
        b->u.h.size = size;
        return b + 1;
    }
    uint32_t c = class_of(size);
    arpc__grpc_pool_block *b = p->free[c];
    if (b != NULL) {
        UNPOISON(b, HDR + class_size(c));
        p->free[c] = b->u.h.next;
        p->nfree[c]--;
    } else {
        b = arpc__malloc(HDR + class_size(c));
        if (b == NULL)
            return NULL;
        b->u.h.cls = c;
    }
    return b + 1;
}

void *arpc__grpc_pool_calloc(arpc__grpc_pool *p, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    void *ptr = arpc__grpc_pool_alloc(p, count * size);
    if (ptr != NULL)
        memset(ptr, 0, count * size);
    return ptr;
}

void arpc__grpc_pool_free(arpc__grpc_pool *p, void *ptr)
{
    if (ptr == NULL)
        return;
    arpc__grpc_pool_block *b = block_of(ptr);
    uint32_t c = b->u.h.cls;
    if (c == BIG || p->nfree[c] >= keep_limit(c)) {
        arpc__free(b);
        return;
    }
    b->u.h.next = p->free[c];
    p->free[c] = b;
    p->nfree[c]++;
    POISON(b, HDR + class_size(c));
}

void *arpc__grpc_pool_realloc(arpc__grpc_pool *p, void *ptr, size_t size)
{
    if (ptr == NULL)
        return arpc__grpc_pool_alloc(p, size);
    size_t have = usable(ptr);
    bool pooled = block_of(ptr)->u.h.cls != BIG;
    /* A pooled block that still fits stays; so does a big one that would stay big (it is
     * only resized, below). */
    if (pooled && size <= have && size > have / 2)
        return ptr;
    if (!pooled && size > ARPC__GRPC_POOL_MAX) {
        if (size > SIZE_MAX - HDR)
            return NULL;
        arpc__grpc_pool_block *b = arpc__realloc(block_of(ptr), HDR + size);
        if (b == NULL)
            return NULL;
        b->u.h.size = size;
        return b + 1;
    }
    void *fresh = arpc__grpc_pool_alloc(p, size);
    if (fresh == NULL)
        return NULL; /* ptr untouched, as realloc leaves it */
    memcpy(fresh, ptr, have < size ? have : size);
    arpc__grpc_pool_free(p, ptr);
    return fresh;
}

size_t arpc__grpc_pool_cached(const arpc__grpc_pool *p)
{
    size_t n = 0;
    for (uint32_t c = 0; c < ARPC__GRPC_POOL_CLASSES; c++)
        n += (size_t)p->nfree[c] * class_size(c);
    return n;
}

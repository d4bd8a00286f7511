/*
 * A small allocator for one gRPC session: nghttp2's memory (nghttp2_mem) comes from here, so
 * the per-stream state, the outbound items and the header copies nghttp2 makes for every
 * call reuse the blocks the previous calls freed instead of costing a malloc each (DESIGN.md:
 * no malloc per request in steady state).
 *
 * Blocks are sized in power-of-two classes from ARPC__GRPC_POOL_MIN to ARPC__GRPC_POOL_MAX
 * bytes; a freed block goes on its class's free list, at most ARPC__GRPC_POOL_CLASS_BYTES of
 * blocks per class (the rest are freed), and fini frees the lists.  Larger requests go
 * straight to arpc__malloc.  Every block the pool gets comes from src/base/alloc.h, so fault
 * tests still reach nghttp2's allocations (a fresh session's come through the hooks; only a
 * block reused from a free list never fails).
 *
 * Under ASan a block on a free list is poisoned: a use after free inside the pool is still
 * reported.
 *
 * Thread: the session's (a pool has no lock).  Suspends: no.
 */
#ifndef ARPC_PROTO_GRPC_MEMPOOL_H
#define ARPC_PROTO_GRPC_MEMPOOL_H

#include <stddef.h>
#include <stdint.h>

#define ARPC__GRPC_POOL_MIN_SHIFT   5  /* 32 bytes */
#define ARPC__GRPC_POOL_CLASSES     10 /* up to 16 KiB */
#define ARPC__GRPC_POOL_MAX         ((size_t)1 << (ARPC__GRPC_POOL_MIN_SHIFT + ARPC__GRPC_POOL_CLASSES - 1))
#define ARPC__GRPC_POOL_CLASS_BYTES (64u * 1024)

typedef struct arpc__grpc_pool_block arpc__grpc_pool_block;

typedef struct arpc__grpc_pool {
    arpc__grpc_pool_block *free[ARPC__GRPC_POOL_CLASSES];
    uint32_t nfree[ARPC__GRPC_POOL_CLASSES];
} arpc__grpc_pool;

/* An empty pool (no memory held). */
void arpc__grpc_pool_init(arpc__grpc_pool *p);

/* Frees the blocks on the free lists.  Blocks still handed out must have been freed first
 * (nghttp2_session_del before this). */
void arpc__grpc_pool_fini(arpc__grpc_pool *p);

/* malloc, calloc, realloc and free over the pool, with their usual contracts (NULL on a
 * failed allocation, free(NULL) a no-op); size 0 is served as 1. */
void *arpc__grpc_pool_alloc(arpc__grpc_pool *p, size_t size);
void *arpc__grpc_pool_calloc(arpc__grpc_pool *p, size_t count, size_t size);
void *arpc__grpc_pool_realloc(arpc__grpc_pool *p, void *ptr, size_t size);
void arpc__grpc_pool_free(arpc__grpc_pool *p, void *ptr);

/* Bytes held on the free lists (for tests). */
size_t arpc__grpc_pool_cached(const arpc__grpc_pool *p);

#endif

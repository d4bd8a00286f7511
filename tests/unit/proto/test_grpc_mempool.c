/*
 * The gRPC session's allocator (src/proto/grpc/mempool.c): freed blocks serve the next
 * allocation of their class without a malloc, realloc keeps contents, calloc zeroes a reused
 * block, the free lists are bounded, big blocks bypass them, and failed allocations return
 * NULL (through src/base/alloc.h's fault hook).
 */
#include <string.h>

#include "base/alloc.h"
#include "proto/grpc/mempool.h"
#include "test.h"

static void test_reuse_without_malloc(void)
{
    arpc__grpc_pool p;
    arpc__grpc_pool_init(&p);
    void *a = arpc__grpc_pool_alloc(&p, 100);
    void *b = arpc__grpc_pool_alloc(&p, 200);
    ASSERT_TRUE(a != NULL && b != NULL);
    memset(a, 1, 100);
    memset(b, 2, 200);
    arpc__grpc_pool_free(&p, a);
    arpc__grpc_pool_free(&p, b);
    ASSERT_EQ(arpc__grpc_pool_cached(&p), 128 + 256);
    uint64_t before = arpc__alloc_count();
    void *c = arpc__grpc_pool_alloc(&p, 120); /* 100 and 120 share the 128-byte class */
    void *d = arpc__grpc_pool_calloc(&p, 10, 20);
    ASSERT_EQ(arpc__alloc_count(), before);
    ASSERT_TRUE(c == a);
    ASSERT_TRUE(d == b);
    for (int i = 0; i < 200; i++)
        ASSERT_EQ(((unsigned char *)d)[i], 0);
    arpc__grpc_pool_free(&p, c);
    arpc__grpc_pool_free(&p, d);
    arpc__grpc_pool_free(&p, NULL);
    arpc__grpc_pool_fini(&p);
    ASSERT_EQ(arpc__grpc_pool_cached(&p), 0);
}

static void test_realloc_keeps_contents(void)
{
    arpc__grpc_pool p;
    arpc__grpc_pool_init(&p);
    unsigned char *a = arpc__grpc_pool_realloc(&p, NULL, 40);
    ASSERT_TRUE(a != NULL);
    for (int i = 0; i < 40; i++)
        a[i] = (unsigned char)i;
    ASSERT_TRUE(arpc__grpc_pool_realloc(&p, a, 60) == a); /* still fits its 64-byte class */
    unsigned char *b = arpc__grpc_pool_realloc(&p, a, 5000);
    ASSERT_TRUE(b != NULL);
    unsigned char *c = arpc__grpc_pool_realloc(&p, b, 100000); /* pooled -> big */
    ASSERT_TRUE(c != NULL);
    unsigned char *d = arpc__grpc_pool_realloc(&p, c, 200000); /* big -> big */
    ASSERT_TRUE(d != NULL);
    unsigned char *e = arpc__grpc_pool_realloc(&p, d, 50); /* big -> pooled */
    ASSERT_TRUE(e != NULL);
    for (int i = 0; i < 40; i++)
        ASSERT_EQ(e[i], i);
    arpc__grpc_pool_free(&p, e);
    arpc__grpc_pool_fini(&p);
}

static void test_free_lists_bounded(void)
{
    enum { N = 4096 };

    static void *blocks[N];
    arpc__grpc_pool p;
    arpc__grpc_pool_init(&p);
    for (int i = 0; i < N; i++) {
        blocks[i] = arpc__grpc_pool_alloc(&p, 32);
        ASSERT_TRUE(blocks[i] != NULL);
    }
    for (int i = 0; i < N; i++)
        arpc__grpc_pool_free(&p, blocks[i]);
    ASSERT_EQ(arpc__grpc_pool_cached(&p), ARPC__GRPC_POOL_CLASS_BYTES);
    void *big = arpc__grpc_pool_alloc(&p, ARPC__GRPC_POOL_MAX + 1);
    ASSERT_TRUE(big != NULL);
    arpc__grpc_pool_free(&p, big); /* not cached */
    ASSERT_EQ(arpc__grpc_pool_cached(&p), ARPC__GRPC_POOL_CLASS_BYTES);
    arpc__grpc_pool_fini(&p);
}

static void test_failed_allocation(void)
{
    arpc__grpc_pool p;
    arpc__grpc_pool_init(&p);
    void *a = arpc__grpc_pool_alloc(&p, 64);
    ASSERT_TRUE(a != NULL);
    arpc__alloc_fail_after(0);
    ASSERT_TRUE(arpc__grpc_pool_alloc(&p, 1000) == NULL);
    arpc__alloc_fail_after(0);
    ASSERT_TRUE(arpc__grpc_pool_realloc(&p, a, 1000) == NULL); /* a untouched */
    arpc__alloc_fail_after(0);
    ASSERT_TRUE(arpc__grpc_pool_alloc(&p, ARPC__GRPC_POOL_MAX * 2) == NULL);
    arpc__alloc_fail_after(-1);
    ASSERT_TRUE(arpc__grpc_pool_calloc(&p, SIZE_MAX / 2, 4) == NULL); /* overflow */
    arpc__grpc_pool_free(&p, a);
    arpc__grpc_pool_fini(&p);
}

int main(void)
{
    RUN_TEST(test_reuse_without_malloc);
    RUN_TEST(test_realloc_keeps_contents);
    RUN_TEST(test_free_lists_bounded);
    RUN_TEST(test_failed_allocation);
    return 0;
}

/*
 * Byte buffers: append/reserve/commit/clear keep the content and reuse memory,
 * consuming from the front is cheap and a later append compacts instead of
 * growing when most free space is at the front, and every failed allocation
 * (ENOMEM injected through arpc__alloc_fail_after) or size overflow leaves
 * the buffer exactly as it was.
 */
#include <stdint.h>
#include <string.h>

#include <arpc/buf.h>
#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "test.h"

/* A snapshot of a buffer's internals and content, to prove "unchanged". */
typedef struct snapshot {
    arpc_buf fields;
    uint8_t bytes[4096];
} snapshot;

static void take_snapshot(const arpc_buf *b, snapshot *s)
{
    ASSERT_LE(b->len, sizeof(s->bytes));
    s->fields = *b;
    memcpy(s->bytes, arpc_buf_data(b), b->len);
}

static void assert_unchanged(const arpc_buf *b, const snapshot *s)
{
    ASSERT_TRUE(b->data == s->fields.data);
    ASSERT_EQ(b->start, s->fields.start);
    ASSERT_EQ(b->len, s->fields.len);
    ASSERT_EQ(b->cap, s->fields.cap);
    ASSERT_MEMEQ(arpc_buf_data(b), s->bytes, b->len);
}

static void fill_pattern(uint8_t *p, size_t n, size_t from)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((from + i) * 131u + 7u);
}

static void assert_pattern(const arpc_buf *b, size_t from)
{
    const uint8_t *p = arpc_buf_data(b);
    for (size_t i = 0; i < arpc_buf_len(b); i++) {
        if (p[i] != (uint8_t)((from + i) * 131u + 7u))
            test_fail(__FILE__, __LINE__, "byte %zu differs", i);
    }
}

static arpc_buf *new_buf(void)
{
    arpc_buf *b = NULL;
    ASSERT_OK(arpc_buf_create(&b));
    ASSERT_TRUE(b != NULL);
    return b;
}

static void test_empty(void)
{
    arpc_buf *b = new_buf();
    ASSERT_EQ(arpc_buf_len(b), 0);
    ASSERT_TRUE(arpc_buf_data(b) != NULL);
    ASSERT_OK(arpc_buf_append(b, NULL, 0));
    ASSERT_EQ(arpc_buf_len(b), 0);
    arpc_buf_destroy(b);
    arpc_buf_destroy(NULL);
}

static void test_append_grows_and_keeps_content(void)
{
    arpc_buf *b = new_buf();
    uint8_t chunk[777];
    size_t total = 0;
    for (int i = 0; i < 200; i++) {
        size_t n = (size_t)(i * 37) % sizeof(chunk) + 1;
        fill_pattern(chunk, n, total);
        ASSERT_OK(arpc_buf_append(b, chunk, n));
        total += n;
        ASSERT_EQ(arpc_buf_len(b), total);
        ASSERT_GE(b->cap, b->start + b->len);
    }
    assert_pattern(b, 0);
    arpc_buf_destroy(b);
}

static void test_reserve_commit(void)
{
    arpc_buf *b = new_buf();
    ASSERT_OK(arpc_buf_append(b, "ab", 2));
    void *out = NULL;
    ASSERT_OK(arpc_buf_reserve(b, 1000, &out));
    ASSERT_TRUE(out == (uint8_t *)b->data + 2);
    ASSERT_GE(arpc__buf_room(b), 1000);
    /* Nothing is visible until committed, and only what is committed. */
    ASSERT_EQ(arpc_buf_len(b), 2);
    memset(out, 'x', 1000);
    arpc_buf_commit(b, 600);
    ASSERT_EQ(arpc_buf_len(b), 602);
    ASSERT_MEMEQ(arpc_buf_data(b), "abxxx", 5);
    void *again = NULL;
    ASSERT_OK(arpc_buf_reserve(b, 0, &again));
    ASSERT_TRUE(again == (uint8_t *)arpc_buf_data(b) + 602);
    arpc_buf_destroy(b);
}

static void test_clear_keeps_memory(void)
{
    arpc_buf *b = new_buf();
    uint8_t chunk[3000];
    fill_pattern(chunk, sizeof(chunk), 0);
    ASSERT_OK(arpc_buf_append(b, chunk, sizeof(chunk)));
    uint8_t *data = b->data;
    size_t cap = b->cap;
    uint64_t allocs = arpc__alloc_count();
    arpc_buf_clear(b);
    ASSERT_EQ(arpc_buf_len(b), 0);
    ASSERT_OK(arpc_buf_append(b, chunk, sizeof(chunk)));
    ASSERT_TRUE(b->data == data);
    ASSERT_EQ(b->cap, cap);
    ASSERT_EQ(arpc__alloc_count(), allocs);
    assert_pattern(b, 0);
    arpc_buf_destroy(b);
}

static void test_consume(void)
{
    arpc_buf *b = new_buf();
    uint8_t chunk[100];
    fill_pattern(chunk, sizeof(chunk), 0);
    ASSERT_OK(arpc_buf_append(b, chunk, sizeof(chunk)));
    arpc__buf_consume(b, 30);
    ASSERT_EQ(arpc_buf_len(b), 70);
    ASSERT_EQ(b->start, 30);
    assert_pattern(b, 30);
    /* Consuming everything rewinds to the front of the memory. */
    arpc__buf_consume(b, 70);
    ASSERT_EQ(arpc_buf_len(b), 0);
    ASSERT_EQ(b->start, 0);
    arpc_buf_destroy(b);
}

/* Fills a fresh buffer to exactly its capacity, then consumes `consumed` bytes. */
static arpc_buf *full_then_consumed(size_t consumed)
{
    arpc_buf *b = new_buf();
    uint8_t first = 0;
    ASSERT_OK(arpc_buf_append(b, &first, 1));
    size_t cap = b->cap;
    uint8_t rest[4096];
    ASSERT_LE(cap, sizeof(rest) + 1);
    fill_pattern(rest, cap - 1, 1);
    ASSERT_OK(arpc_buf_append(b, rest, cap - 1));
    ASSERT_EQ(arpc__buf_room(b), 0);
    arpc__buf_consume(b, consumed);
    return b;
}

static void test_compaction_instead_of_growth(void)
{
    /* Most free space is at the front: the append moves the content down. */
    arpc_buf *b = full_then_consumed(200);
    uint8_t *data = b->data;
    size_t cap = b->cap;
    size_t len = arpc_buf_len(b);
    uint8_t more[100];
    fill_pattern(more, sizeof(more), 200 + len);
    uint64_t allocs = arpc__alloc_count();
    ASSERT_OK(arpc_buf_append(b, more, sizeof(more)));
    ASSERT_EQ(arpc__alloc_count(), allocs);
    ASSERT_TRUE(b->data == data);
    ASSERT_EQ(b->cap, cap);
    ASSERT_EQ(b->start, 0);
    ASSERT_EQ(arpc_buf_len(b), len + sizeof(more));
    assert_pattern(b, 200);
    arpc_buf_destroy(b);
}

static void test_growth_when_front_space_is_small(void)
{
    /* Less consumed than remains: growing is cheaper than moving. */
    arpc_buf *b = full_then_consumed(10);
    size_t cap = b->cap;
    uint8_t more[50];
    fill_pattern(more, sizeof(more), cap);
    ASSERT_OK(arpc_buf_append(b, more, sizeof(more)));
    ASSERT_GT(b->cap, cap);
    ASSERT_EQ(b->start, 0);
    assert_pattern(b, 10);
    arpc_buf_destroy(b);
}

static void test_enomem_leaves_buffer_unchanged(void)
{
    arpc_buf *b = new_buf();
    uint8_t chunk[300];
    fill_pattern(chunk, sizeof(chunk), 0);
    ASSERT_OK(arpc_buf_append(b, chunk, sizeof(chunk)));
    arpc__buf_consume(b, 5);
    snapshot s;
    take_snapshot(b, &s);
    uint8_t big[2000];
    fill_pattern(big, sizeof(big), 1);
    void *out = (void *)&s;
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc_buf_append(b, big, sizeof(big)), ARPC_ENOMEM);
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc_buf_reserve(b, sizeof(big), &out), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    assert_unchanged(b, &s);
    ASSERT_TRUE(out == (void *)&s);
    /* Once memory is back, the same append succeeds. */
    ASSERT_OK(arpc_buf_append(b, big, sizeof(big)));
    ASSERT_EQ(arpc_buf_len(b), sizeof(chunk) - 5 + sizeof(big));
    arpc_buf_destroy(b);
}

static void test_enomem_on_create(void)
{
    arpc_buf *b = (arpc_buf *)&b;
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc_buf_create(&b), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    ASSERT_TRUE(b == (arpc_buf *)&b);
}

static void test_size_overflow_is_enomem(void)
{
    arpc_buf *b = new_buf();
    ASSERT_OK(arpc_buf_append(b, "hello", 5));
    snapshot s;
    take_snapshot(b, &s);
    void *out = NULL;
    ASSERT_ERR(arpc_buf_reserve(b, SIZE_MAX, &out), ARPC_ENOMEM);
    ASSERT_ERR(arpc_buf_reserve(b, SIZE_MAX - 4, &out), ARPC_ENOMEM);
    ASSERT_ERR(arpc_buf_reserve(b, SIZE_MAX / 2 + 2, &out), ARPC_ENOMEM);
    assert_unchanged(b, &s);
    ASSERT_TRUE(out == NULL);
    arpc_buf_destroy(b);
}

static void test_shrink_if_idle(void)
{
    arpc_buf *b = new_buf();
    uint8_t chunk[4096] = {0};
    ASSERT_OK(arpc_buf_append(b, chunk, sizeof(chunk)));
    /* Not idle: nothing happens. */
    arpc__buf_shrink_if_idle(b, 1024);
    ASSERT_GE(b->cap, sizeof(chunk));
    arpc_buf_clear(b);
    arpc__buf_shrink_if_idle(b, 1024);
    ASSERT_EQ(b->cap, 0);
    ASSERT_TRUE(arpc_buf_data(b) != NULL);
    ASSERT_OK(arpc_buf_append(b, "x", 1));
    ASSERT_MEMEQ(arpc_buf_data(b), "x", 1);
    arpc_buf_destroy(b);
}

int main(void)
{
    RUN_TEST(test_empty);
    RUN_TEST(test_append_grows_and_keeps_content);
    RUN_TEST(test_reserve_commit);
    RUN_TEST(test_clear_keeps_memory);
    RUN_TEST(test_consume);
    RUN_TEST(test_compaction_instead_of_growth);
    RUN_TEST(test_growth_when_front_space_is_small);
    RUN_TEST(test_enomem_leaves_buffer_unchanged);
    RUN_TEST(test_enomem_on_create);
    RUN_TEST(test_size_overflow_is_enomem);
    RUN_TEST(test_shrink_if_idle);
    return 0;
}

/*
 * The arena (include/arpc/arena.h) and the typed runtime's unpack and pack
 * (src/protobuf/pb.h), without sockets.  Proves:
 *  - arena allocations are aligned for any type, distinct, zero-size ones
 *    valid and unique; an allocation larger than half a block gets its own,
 *    and the small ones after it still fit the block they came from;
 *  - arpc__arena_reset_keep keeps no more than it is told;
 *  - a reset keeps memory: a cycle of the same shape allocates nothing from
 *    the hooks, also after a cycle that spilled over several blocks;
 *  - a failed block allocation returns NULL and leaves the arena usable;
 *    a failed arena_create returns ARPC_ENOMEM;
 *  - arpc_pb_allocator over an arena frees nothing, over the heap is
 *    malloc/free (protobuf_c_message_free_unpacked(msg, NULL) frees it);
 *  - unpack gives ARPC_EBADMSG for malformed bytes (every truncation of a
 *    valid message that is not itself valid, bad wire types, overlong
 *    varints) and ARPC_ENOMEM when an allocation fails, in an arena and on
 *    the heap, and round-trips a message with strings, repeated fields and a
 *    sub-message.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arena.h>
#include <arpc/buf.h>
#include <arpc/err.h>
#include <arpc/protobuf.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "protobuf/pb.h"
#include "test.h"
#include "tpb.pb-c.h"

static void test_alignment_and_distinct(void)
{
    arpc_arena *a;
    ASSERT_OK(arpc_arena_create(&a));
    uint8_t *prev = NULL;
    for (size_t size = 0; size < 300; size++) {
        uint8_t *p = arpc_arena_alloc(a, size);
        ASSERT_TRUE(p != NULL);
        ASSERT_EQ((uintptr_t)p % alignof(max_align_t), 0);
        ASSERT_TRUE(p != prev);
        memset(p, 0xab, size);
        prev = p;
    }
    void *big = arpc_arena_alloc(a, 1 << 20);
    ASSERT_TRUE(big != NULL);
    memset(big, 1, 1 << 20);
    ASSERT_TRUE(arpc_arena_alloc(a, SIZE_MAX) == NULL);
    ASSERT_TRUE(arpc_arena_alloc(a, SIZE_MAX - 8) == NULL);
    arpc_arena_destroy(a);
    arpc_arena_destroy(NULL);
}

/* Runs one cycle: `n` allocations of `size`, then a reset. */
static void cycle(arpc_arena *a, int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        void *p = arpc_arena_alloc(a, size);
        ASSERT_TRUE(p != NULL);
        memset(p, i, size);
    }
    arpc_arena_reset(a);
}

static void test_reset_keeps_memory(void)
{
    arpc_arena *a;
    ASSERT_OK(arpc_arena_create(&a));
    cycle(a, 10, 64); /* fits the first block */
    uint64_t before = arpc__alloc_count();
    for (int i = 0; i < 100; i++)
        cycle(a, 10, 64);
    ASSERT_EQ(arpc__alloc_count() - before, 0);
    /* A cycle that spills: the reset makes one block as large as it needed. */
    cycle(a, 100, 1000);
    before = arpc__alloc_count();
    for (int i = 0; i < 100; i++)
        cycle(a, 100, 1000);
    ASSERT_EQ(arpc__alloc_count() - before, 0);
    arpc_arena_destroy(a);
}

/* An allocation over half the block gets a block of its own: the small ones after it
 * still come from the block they came from, with no new block. */
static void test_large_allocation_does_not_grow_small_blocks(void)
{
    arpc_arena *a;
    ASSERT_OK(arpc_arena_create(&a));
    ASSERT_TRUE(arpc_arena_alloc(a, 16) != NULL);
    uint64_t before = arpc__alloc_count();
    ASSERT_TRUE(arpc_arena_alloc(a, 1 << 20) != NULL);
    ASSERT_EQ(arpc__alloc_count() - before, 1);
    for (int i = 0; i < 10; i++)
        ASSERT_TRUE(arpc_arena_alloc(a, 16) != NULL);
    ASSERT_EQ(arpc__alloc_count() - before, 1);
    arpc_arena_destroy(a);
}

/* arpc__arena_reset_keep (a pooled request's reset) keeps at most what it is told. */
static void test_reset_keep_bounds_what_stays(void)
{
    arpc_arena *a;
    ASSERT_OK(arpc_arena_create(&a));
    for (int i = 0; i < 64; i++) /* 64 x 16 KiB: a 1 MiB cycle */
        ASSERT_TRUE(arpc_arena_alloc(a, 16 * 1024) != NULL);
    arpc__arena_reset_keep(a, 64 * 1024);
    uint64_t before = arpc__alloc_count();
    for (int i = 0; i < 3; i++) /* 48 KiB fits what stayed */
        ASSERT_TRUE(arpc_arena_alloc(a, 16 * 1024) != NULL);
    ASSERT_EQ(arpc__alloc_count() - before, 0);
    for (int i = 0; i < 61; i++) /* the rest of 1 MiB does not */
        ASSERT_TRUE(arpc_arena_alloc(a, 16 * 1024) != NULL);
    ASSERT_GT(arpc__alloc_count() - before, 0);
    arpc_arena_destroy(a);
}

static void test_allocation_failures(void)
{
    arpc_arena *a = NULL;
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc_arena_create(&a), ARPC_ENOMEM);
    arpc__alloc_fail_after(1); /* the arena, not its first block */
    ASSERT_ERR(arpc_arena_create(&a), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    ASSERT_TRUE(a == NULL);
    ASSERT_OK(arpc_arena_create(&a));
    void *p = arpc_arena_alloc(a, 16);
    ASSERT_TRUE(p != NULL);
    arpc__alloc_fail_after(0);
    ASSERT_TRUE(arpc_arena_alloc(a, 1 << 16) == NULL); /* needs a block */
    arpc__alloc_fail_after(-1);
    ASSERT_TRUE(arpc_arena_alloc(a, 16) != NULL); /* still usable */
    ASSERT_TRUE(arpc_arena_alloc(a, 1 << 16) != NULL);
    /* A reset whose replacement block cannot be had keeps the newest block. */
    arpc__alloc_fail_after(0);
    arpc_arena_reset(a);
    arpc__alloc_fail_after(-1);
    ASSERT_TRUE(arpc_arena_alloc(a, 100) != NULL);
    arpc_arena_destroy(a);
}

/* ---- messages --------------------------------------------------------------------------- */

static Tpb__Num inner = TPB__NUM__INIT;
static int32_t tags[] = {1, -2, 300000, 7};

static Tpb__Num sample(void)
{
    Tpb__Num n = TPB__NUM__INIT;
    n.a = -5;
    n.b = 1234567890123;
    n.note = "a note of some length";
    n.n_tags = 4;
    n.tags = tags;
    inner.a = 9;
    inner.note = "inner";
    n.inner = &inner;
    return n;
}

static size_t pack(const Tpb__Num *n, uint8_t *out)
{
    return tpb__num__pack(n, out);
}

static void check_sample(const Tpb__Num *m)
{
    ASSERT_EQ(m->a, -5);
    ASSERT_EQ(m->b, 1234567890123);
    ASSERT_STREQ(m->note, "a note of some length");
    ASSERT_EQ(m->n_tags, 4);
    ASSERT_EQ(m->tags[2], 300000);
    ASSERT_TRUE(m->inner != NULL);
    ASSERT_EQ(m->inner->a, 9);
    ASSERT_STREQ(m->inner->note, "inner");
}

static void test_unpack_round_trip(void)
{
    Tpb__Num n = sample();
    uint8_t wire[256];
    size_t len = pack(&n, wire);
    arpc_arena *a;
    ASSERT_OK(arpc_arena_create(&a));
    ProtobufCMessage *m;
    ASSERT_OK(arpc__pb_unpack(&tpb__num__descriptor, a, wire, len, &m));
    check_sample((Tpb__Num *)m);
    ASSERT_OK(arpc__pb_unpack(&tpb__num__descriptor, NULL, wire, len, &m));
    check_sample((Tpb__Num *)m);
    protobuf_c_message_free_unpacked(m, NULL);
    /* Zero bytes are the default message. */
    ASSERT_OK(arpc__pb_unpack(&tpb__num__descriptor, a, NULL, 0, &m));
    ASSERT_EQ(((Tpb__Num *)m)->a, 0);
    /* Pack appends. */
    arpc_buf *buf;
    ASSERT_OK(arpc_buf_create(&buf));
    ASSERT_OK(arpc_buf_append(buf, "x", 1));
    ASSERT_OK(arpc__pb_pack_append(buf, &n.base));
    ASSERT_EQ(arpc_buf_len(buf), len + 1);
    ASSERT_MEMEQ((const uint8_t *)arpc_buf_data(buf) + 1, wire, len);
    arpc_buf_destroy(buf);
    arpc_arena_destroy(a);
}

/* Every prefix of a valid message: a valid message (cut between fields) or
 * ARPC_EBADMSG, never anything else; each in an arena and on the heap. */
static void test_every_truncation(void)
{
    Tpb__Num n = sample();
    uint8_t wire[256];
    size_t len = pack(&n, wire);
    arpc_arena *a;
    ASSERT_OK(arpc_arena_create(&a));
    int bad = 0;
    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly `cut` bytes, so that ASan sees any read past it. */
        uint8_t *copy = malloc(cut > 0 ? cut : 1);
        memcpy(copy, wire, cut);
        ProtobufCMessage *m;
        int rc = arpc__pb_unpack(&tpb__num__descriptor, a, copy, cut, &m);
        ASSERT_TRUE(rc == 0 || rc == ARPC_EBADMSG);
        bad += rc == ARPC_EBADMSG;
        rc = arpc__pb_unpack(&tpb__num__descriptor, NULL, copy, cut, &m);
        ASSERT_TRUE(rc == 0 || rc == ARPC_EBADMSG);
        if (rc == 0)
            protobuf_c_message_free_unpacked(m, NULL);
        arpc_arena_reset(a);
        free(copy);
    }
    ASSERT_GT(bad, 0);
    arpc_arena_destroy(a);
}

static void test_malformed(void)
{
    static const struct {
        uint8_t bytes[12];
        size_t len;
    } cases[] = {
        {{0x08}, 1}, /* no value */
        {{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 12}, /* long */
        {{0x0b}, 1},             /* start group */
        {{0x1a, 0x05, 'a'}, 3},  /* string past the end */
        {{0x2a, 0x02, 0x08}, 3}, /* sub-message cut */
        {{0x00}, 1},             /* field 0 */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ProtobufCMessage *m = NULL;
        ASSERT_ERR(arpc__pb_unpack(&tpb__num__descriptor, NULL, cases[i].bytes, cases[i].len, &m),
                   ARPC_EBADMSG);
        ASSERT_TRUE(m == NULL);
    }
}

/* Each allocation an unpack makes, failed in turn: ARPC_ENOMEM, never EBADMSG
 * or a leak; then it succeeds. */
static void test_unpack_allocation_failures(void)
{
    Tpb__Num n = sample();
    uint8_t wire[256];
    size_t len = pack(&n, wire);
    for (int heap = 0; heap < 2; heap++) {
        int failures = 0;
        for (int64_t k = 0;; k++) {
            arpc_arena *a = NULL;
            if (!heap)
                ASSERT_OK(arpc_arena_create(&a));
            /* A tiny first block would not exercise block failures: spill it. */
            if (!heap)
                ASSERT_TRUE(arpc_arena_alloc(a, 2000) != NULL);
            ProtobufCMessage *m = NULL;
            arpc__alloc_fail_after(k);
            int rc = arpc__pb_unpack(&tpb__num__descriptor, a, wire, len, &m);
            arpc__alloc_fail_after(-1);
            if (rc == 0) {
                check_sample((Tpb__Num *)m);
                if (heap)
                    protobuf_c_message_free_unpacked(m, NULL);
                arpc_arena_destroy(a);
                break;
            }
            arpc_arena_destroy(a);
            ASSERT_ERR(rc, ARPC_ENOMEM);
            failures++;
            ASSERT_LT(k, 100);
        }
        ASSERT_GT(failures, 0);
    }
}

static void test_allocator(void)
{
    arpc_arena *a;
    ASSERT_OK(arpc_arena_create(&a));
    ProtobufCAllocator over = arpc_pb_allocator(a);
    void *p = over.alloc(over.allocator_data, 100);
    ASSERT_TRUE(p != NULL);
    over.free(over.allocator_data, p); /* nothing: the arena frees */
    memset(p, 0, 100);
    Tpb__Num n = sample();
    uint8_t wire[256];
    size_t len = pack(&n, wire);
    Tpb__Num *m = tpb__num__unpack(&over, len, wire);
    ASSERT_TRUE(m != NULL);
    check_sample(m);
    ProtobufCAllocator heap = arpc_pb_allocator(NULL);
    Tpb__Num *h = tpb__num__unpack(&heap, len, wire);
    ASSERT_TRUE(h != NULL);
    check_sample(h);
    tpb__num__free_unpacked(h, NULL); /* malloc underneath */
    arpc_arena_destroy(a);
}

int main(void)
{
    RUN_TEST(test_alignment_and_distinct);
    RUN_TEST(test_reset_keeps_memory);
    RUN_TEST(test_large_allocation_does_not_grow_small_blocks);
    RUN_TEST(test_reset_keep_bounds_what_stays);
    RUN_TEST(test_allocation_failures);
    RUN_TEST(test_unpack_round_trip);
    RUN_TEST(test_every_truncation);
    RUN_TEST(test_malformed);
    RUN_TEST(test_unpack_allocation_failures);
    RUN_TEST(test_allocator);
    return 0;
}

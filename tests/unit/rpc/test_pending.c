/*
 * The pending-call table: ids far beyond the ring's size (index wrap-around),
 * stragglers displaced into the spill table by an id one ring later, growth
 * with calls in flight, removal of ids it does not hold (never inserted, 0,
 * already removed, or whose slot holds another id), drain, an allocation
 * failure leaving the table as it was, and a seeded random run against a
 * plain array as the reference.
 */
#include <stdint.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "rpc/pending.h"
#include "test.h"

/* Fake call pointers: distinct, never NULL, and recoverable from the id. */
static void *call_of(uint64_t id)
{
    return (void *)(uintptr_t)(id * 16 + 8);
}

static void test_empty_table(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    ASSERT_TRUE(arpc__pending_remove(&t, 1) == NULL);
    ASSERT_TRUE(arpc__pending_remove(&t, 0) == NULL);
    ASSERT_EQ(t.len, 0);
    arpc__pending_fini(&t);
}

static void test_insert_remove(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    for (uint64_t id = 1; id <= 10; id++)
        ASSERT_OK(arpc__pending_insert(&t, id, call_of(id)));
    ASSERT_EQ(t.len, 10);
    for (uint64_t id = 10; id >= 1; id--)
        ASSERT_TRUE(arpc__pending_remove(&t, id) == call_of(id));
    ASSERT_EQ(t.len, 0);
    ASSERT_TRUE(arpc__pending_remove(&t, 3) == NULL);
    arpc__pending_fini(&t);
}

/* A sliding window of calls in flight, for many times the ring's size. */
static void test_wrap_around(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    const uint64_t window = 40;
    uint64_t next = 1;
    for (; next <= window; next++)
        ASSERT_OK(arpc__pending_insert(&t, next, call_of(next)));
    size_t ring_mask = t.ring_mask;
    for (uint64_t done = 1; done <= 100000; done++) {
        ASSERT_TRUE(arpc__pending_remove(&t, done) == call_of(done));
        ASSERT_OK(arpc__pending_insert(&t, next, call_of(next)));
        next++;
    }
    ASSERT_EQ(t.len, window);
    ASSERT_EQ(t.spill.len, 0);         /* in order: nothing ever collided */
    ASSERT_EQ(t.ring_mask, ring_mask); /* and the ring did not grow */
    arpc__pending_fini(&t);
}

/* Ids near the top of the 64-bit range index the ring like any other. */
static void test_large_ids(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    uint64_t base = UINT64_MAX - 100;
    for (uint64_t i = 0; i <= 100; i++)
        ASSERT_OK(arpc__pending_insert(&t, base + i, call_of(i + 1)));
    for (uint64_t i = 0; i <= 100; i++)
        ASSERT_TRUE(arpc__pending_remove(&t, base + i) == call_of(i + 1));
    ASSERT_EQ(t.len, 0);
    arpc__pending_fini(&t);
}

/* One call stays while ids pass it by several rings: it is displaced into
 * the spill, stays findable, and its slot keeps serving newer ids. */
static void test_straggler_spills(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    ASSERT_OK(arpc__pending_insert(&t, 1, call_of(1)));
    uint64_t cap = 0;
    for (uint64_t id = 2; id < 2000; id++) {
        ASSERT_OK(arpc__pending_insert(&t, id, call_of(id)));
        cap = t.ring_mask + 1;
        ASSERT_TRUE(arpc__pending_remove(&t, id) == call_of(id));
    }
    ASSERT_EQ(t.len, 1);
    ASSERT_EQ(t.spill.len, 1);
    /* An id sharing the straggler's slot, not held: still NULL. */
    ASSERT_TRUE(arpc__pending_remove(&t, 1 + 5 * cap) == NULL);
    ASSERT_TRUE(arpc__pending_remove(&t, 1) == call_of(1));
    ASSERT_EQ(t.len, 0);
    ASSERT_EQ(t.spill.len, 0);
    ASSERT_TRUE(arpc__pending_remove(&t, 1) == NULL);
    arpc__pending_fini(&t);
}

/* Several stragglers on one slot, and stragglers on many slots. */
static void test_many_collisions(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    ASSERT_OK(arpc__pending_insert(&t, 5, call_of(5)));
    uint64_t cap = t.ring_mask + 1;
    for (uint64_t k = 1; k <= 50; k++)
        ASSERT_OK(arpc__pending_insert(&t, 5 + k * cap, call_of(5 + k * cap)));
    for (uint64_t id = 1000 * cap; id < 1000 * cap + 20; id++)
        ASSERT_OK(arpc__pending_insert(&t, id, call_of(id)));
    for (uint64_t id = 1000 * cap; id < 1000 * cap + 20; id++)
        ASSERT_OK(arpc__pending_insert(&t, id + 7 * cap, call_of(id + 7 * cap)));
    ASSERT_EQ(t.len, 91);
    ASSERT_GT(t.spill.len, 0);
    /* Every one comes back exactly once, in an order unlike the inserts. */
    for (int k = 50; k >= 1; k -= 2)
        ASSERT_TRUE(arpc__pending_remove(&t, 5 + k * cap) == call_of(5 + k * cap));
    ASSERT_TRUE(arpc__pending_remove(&t, 5) == call_of(5));
    for (int k = 49; k >= 1; k -= 2)
        ASSERT_TRUE(arpc__pending_remove(&t, 5 + k * cap) == call_of(5 + k * cap));
    for (uint64_t id = 1000 * cap; id < 1000 * cap + 20; id++) {
        ASSERT_TRUE(arpc__pending_remove(&t, id) == call_of(id));
        ASSERT_TRUE(arpc__pending_remove(&t, id) == NULL);
        ASSERT_TRUE(arpc__pending_remove(&t, id + 7 * cap) == call_of(id + 7 * cap));
    }
    ASSERT_EQ(t.len, 0);
    ASSERT_EQ(t.spill.len, 0);
    arpc__pending_fini(&t);
}

static void test_unknown_ids(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    for (uint64_t id = 1; id <= 20; id++)
        ASSERT_OK(arpc__pending_insert(&t, id, call_of(id)));
    uint64_t cap = t.ring_mask + 1;
    ASSERT_TRUE(arpc__pending_remove(&t, 0) == NULL);
    ASSERT_TRUE(arpc__pending_remove(&t, 21) == NULL);
    ASSERT_TRUE(arpc__pending_remove(&t, 3 + cap) == NULL); /* slot of 3, another id */
    ASSERT_TRUE(arpc__pending_remove(&t, cap) == NULL);     /* slot 0: empty */
    ASSERT_TRUE(arpc__pending_remove(&t, UINT64_MAX) == NULL);
    ASSERT_EQ(t.len, 20);
    /* With something spilled, a miss searches the spill too. */
    ASSERT_OK(arpc__pending_insert(&t, 4 + cap, call_of(4 + cap)));
    ASSERT_EQ(t.spill.len, 1);
    ASSERT_TRUE(arpc__pending_remove(&t, 0) == NULL);
    ASSERT_TRUE(arpc__pending_remove(&t, 4 + 2 * cap) == NULL);
    ASSERT_TRUE(arpc__pending_remove(&t, 999) == NULL);
    ASSERT_EQ(t.len, 21);
    for (uint64_t id = 1; id <= 20; id++)
        ASSERT_TRUE(arpc__pending_remove(&t, id) == call_of(id));
    ASSERT_TRUE(arpc__pending_remove(&t, 4 + cap) == call_of(4 + cap));
    ASSERT_EQ(t.len, 0);
    arpc__pending_fini(&t);
}

/* Thousands in flight: the ring grows and keeps every call. */
static void test_growth(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    for (uint64_t id = 1; id <= 5000; id++)
        ASSERT_OK(arpc__pending_insert(&t, id, call_of(id)));
    ASSERT_GE(t.ring_mask + 1, 2 * 5000);
    ASSERT_EQ(t.spill.len, 0);
    for (uint64_t id = 1; id <= 5000; id += 2)
        ASSERT_TRUE(arpc__pending_remove(&t, id) == call_of(id));
    for (uint64_t id = 2; id <= 5000; id += 2)
        ASSERT_TRUE(arpc__pending_remove(&t, id) == call_of(id));
    ASSERT_EQ(t.len, 0);
    arpc__pending_fini(&t);
}

typedef struct drained {
    arpc__pending *table;
    uint64_t sum;
    size_t count;
} drained;

static void on_drained(void *call, void *arg)
{
    drained *d = arg;
    /* The table is already empty, and usable, while the calls are handed out. */
    ASSERT_EQ(d->table->len, 0);
    ASSERT_TRUE(arpc__pending_remove(d->table, ((uintptr_t)call - 8) / 16) == NULL);
    d->sum += ((uintptr_t)call - 8) / 16;
    d->count++;
}

static void test_drain(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    uint64_t want = 0;
    for (uint64_t id = 1; id <= 30; id++) {
        ASSERT_OK(arpc__pending_insert(&t, id, call_of(id)));
        want += id;
    }
    uint64_t cap = t.ring_mask + 1;
    ASSERT_OK(arpc__pending_insert(&t, 2 + cap, call_of(2 + cap))); /* 2 spills */
    want += 2 + cap;
    ASSERT_EQ(t.spill.len, 1);
    drained d = {&t, 0, 0};
    arpc__pending_drain(&t, on_drained, &d);
    ASSERT_EQ(d.count, 31);
    ASSERT_EQ(d.sum, want);
    ASSERT_EQ(t.len, 0);
    ASSERT_OK(arpc__pending_insert(&t, 7, call_of(7)));
    ASSERT_TRUE(arpc__pending_remove(&t, 7) == call_of(7));
    d.count = 0;
    arpc__pending_drain(&t, on_drained, &d);
    ASSERT_EQ(d.count, 0);
    arpc__pending_fini(&t);
}

/* A failed allocation (first ring, ring growth, spill) changes nothing. */
static void test_enomem_leaves_table_unchanged(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__pending_insert(&t, 1, call_of(1)), ARPC_ENOMEM);
    ASSERT_EQ(t.len, 0);
    arpc__alloc_fail_after(-1);
    ASSERT_OK(arpc__pending_insert(&t, 1, call_of(1)));
    uint64_t cap = t.ring_mask + 1;
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__pending_insert(&t, 1 + cap, call_of(1 + cap)), ARPC_ENOMEM); /* spill */
    arpc__alloc_fail_after(-1);
    ASSERT_EQ(t.len, 1);
    ASSERT_TRUE(arpc__pending_remove(&t, 1 + cap) == NULL);
    uint64_t id = 2;
    while ((t.len + 1) * 2 <= t.ring_mask + 1) {
        ASSERT_OK(arpc__pending_insert(&t, id, call_of(id)));
        id++;
    }
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__pending_insert(&t, id, call_of(id)), ARPC_ENOMEM); /* growth */
    arpc__alloc_fail_after(-1);
    ASSERT_EQ(t.ring_mask + 1, cap);
    ASSERT_TRUE(arpc__pending_remove(&t, id) == NULL);
    for (uint64_t i = 1; i < id; i++)
        ASSERT_TRUE(arpc__pending_remove(&t, i) == call_of(i));
    ASSERT_EQ(t.len, 0);
    arpc__pending_fini(&t);
}

/* Random inserts of rising ids and removes of random ids (held or not),
 * checked against an array of what is held. */
/* find leaves the entry in place, in the ring and in the spill alike (streams look one up
 * for every frame). */
static void test_find(void)
{
    arpc__pending t;
    arpc__pending_init(&t);
    ASSERT_TRUE(arpc__pending_find(&t, 1) == NULL);
    ASSERT_OK(arpc__pending_insert(&t, 1, call_of(1)));
    /* A whole ring of ids later, while 1 still waits: 1 moves to the spill. */
    for (uint64_t id = 2; id <= 200; id++)
        ASSERT_OK(arpc__pending_insert(&t, id, call_of(id)));
    for (uint64_t id = 2; id <= 200; id++)
        ASSERT_TRUE(arpc__pending_remove(&t, id) == call_of(id));
    for (uint64_t id = 1000; id <= 1300; id++)
        ASSERT_OK(arpc__pending_insert(&t, id, call_of(id)));
    ASSERT_TRUE(t.spill.len > 0);
    for (int round = 0; round < 2; round++) {
        ASSERT_TRUE(arpc__pending_find(&t, 1) == call_of(1));
        for (uint64_t id = 1000; id <= 1300; id++)
            ASSERT_TRUE(arpc__pending_find(&t, id) == call_of(id));
    }
    ASSERT_TRUE(arpc__pending_find(&t, 0) == NULL);
    ASSERT_TRUE(arpc__pending_find(&t, 2) == NULL);
    ASSERT_TRUE(arpc__pending_find(&t, 1301) == NULL);
    ASSERT_EQ(t.len, 302);
    ASSERT_TRUE(arpc__pending_remove(&t, 1) == call_of(1));
    ASSERT_TRUE(arpc__pending_find(&t, 1) == NULL);
    arpc__pending_fini(&t);
}

static void test_random_against_reference(void)
{
    enum { MAX_HELD = 700 };

    static uint64_t held[MAX_HELD];
    size_t count = 0;
    size_t most_spilled = 0;
    uint64_t next = 1;
    arpc__pending t;
    arpc__pending_init(&t);
    test_seed();
    for (int step = 0; step < 300000; step++) {
        uint64_t r = test_rand();
        if (count < MAX_HELD && (count == 0 || r % 100 < 50)) {
            next += 1 + (r >> 20) % 3 % 2 * ((r >> 24) % 300); /* mostly sequential, gaps */
            ASSERT_OK(arpc__pending_insert(&t, next, call_of(next)));
            held[count++] = next;
        } else if (r % 100 < 97) {
            /* Mostly one of the first three held (swap-removal scrambles their
             * order, so not strictly the oldest), sometimes any. */
            size_t i = (r >> 8) % 4 == 0 ? (r >> 12) % count : (r >> 12) % (count < 3 ? count : 3);
            ASSERT_TRUE(arpc__pending_remove(&t, held[i]) == call_of(held[i]));
            held[i] = held[--count];
        } else {
            uint64_t id = (r >> 8) % (next + 5);
            bool is_held = false;
            for (size_t i = 0; i < count; i++)
                is_held |= held[i] == id;
            if (!is_held)
                ASSERT_TRUE(arpc__pending_remove(&t, id) == NULL);
        }
        ASSERT_EQ(t.len, count);
        most_spilled = t.spill.len > most_spilled ? t.spill.len : most_spilled;
    }
    ASSERT_GT(most_spilled, 0); /* the run reached the spill path */
    for (size_t i = 0; i < count; i++)
        ASSERT_TRUE(arpc__pending_remove(&t, held[i]) == call_of(held[i]));
    ASSERT_EQ(t.len, 0);
    arpc__pending_fini(&t);
}

int main(void)
{
    RUN_TEST(test_empty_table);
    RUN_TEST(test_insert_remove);
    RUN_TEST(test_wrap_around);
    RUN_TEST(test_large_ids);
    RUN_TEST(test_straggler_spills);
    RUN_TEST(test_many_collisions);
    RUN_TEST(test_unknown_ids);
    RUN_TEST(test_growth);
    RUN_TEST(test_drain);
    RUN_TEST(test_find);
    RUN_TEST(test_enomem_leaves_table_unchanged);
    RUN_TEST(test_random_against_reference);
    return 0;
}

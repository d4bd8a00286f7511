/*
 * The indexed timer heap against a reference model (an array kept sorted by
 * deadline, then insertion order): 100,000 seeded random pushes, removals,
 * re-arms and expiry pops must agree with the model at every step, and every
 * queued timer's heap_index must name its own slot (and unqueued ones
 * ARPC__TIMER_NOT_QUEUED).  Also: ties pop in insertion order, a failed grow
 * (ENOMEM) leaves the heap intact, and fini unqueues what is left.
 */
#include <arpc/err.h>

#include "base/alloc.h"
#include "runtime/timer_heap.h"
#include "test.h"

#define POOL 4096
#define OPS  100000

typedef struct model_entry {
    int64_t deadline;
    uint64_t order; /* the model's own insertion counter */
    arpc__timer *timer;
} model_entry;

typedef struct model {
    model_entry items[POOL];
    uint32_t len;
    uint64_t next_order;
} model;

static arpc__timer pool[POOL];
static model ref;

static void nop_fire(arpc__timer *timer)
{
    (void)timer;
}

static bool entry_before(const model_entry *a, const model_entry *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return a->order < b->order;
}

static void model_push(arpc__timer *timer, int64_t deadline)
{
    model_entry e = {deadline, ref.next_order++, timer};
    uint32_t i = ref.len;
    while (i > 0 && entry_before(&e, &ref.items[i - 1])) {
        ref.items[i] = ref.items[i - 1];
        i--;
    }
    ref.items[i] = e;
    ref.len++;
}

static void model_remove_at(uint32_t i)
{
    memmove(&ref.items[i], &ref.items[i + 1], (ref.len - i - 1) * sizeof(ref.items[0]));
    ref.len--;
}

static void model_remove(arpc__timer *timer)
{
    for (uint32_t i = 0; i < ref.len; i++) {
        if (ref.items[i].timer == timer) {
            model_remove_at(i);
            return;
        }
    }
    test_fail(__FILE__, __LINE__, "timer not in the model");
}

static void check_invariants(const arpc__timer_heap *heap)
{
    ASSERT_EQ(heap->len, ref.len);
    ASSERT_LE(heap->len, heap->cap);
    for (uint32_t i = 0; i < heap->len; i++) {
        const arpc__timer *t = heap->items[i];
        ASSERT_EQ(t->heap_index, i);
        if (i > 0) {
            const arpc__timer *parent = heap->items[(i - 1) / 2];
            bool ordered = parent->deadline_ns < t->deadline_ns ||
                           (parent->deadline_ns == t->deadline_ns && parent->seq < t->seq);
            ASSERT_TRUE(ordered);
        }
    }
    uint32_t queued = 0;
    for (uint32_t i = 0; i < POOL; i++) {
        if (arpc__timer_queued(&pool[i])) {
            queued++;
            ASSERT_TRUE(heap->items[pool[i].heap_index] == &pool[i]);
        }
    }
    ASSERT_EQ(queued, heap->len);
}

static void check_top(const arpc__timer_heap *heap)
{
    ASSERT_EQ(heap->len, ref.len);
    arpc__timer *top = arpc__timer_heap_peek(heap);
    ASSERT_TRUE(top == (ref.len ? ref.items[0].timer : NULL));
}

static arpc__timer *random_timer(void)
{
    return &pool[test_rand() % POOL];
}

static void op_push(arpc__timer_heap *heap)
{
    arpc__timer *t = random_timer();
    /* A small deadline range makes ties common, so insertion order matters. */
    int64_t deadline = (int64_t)(test_rand() % 2000);
    if (arpc__timer_queued(t)) {
        /* Re-arm, as the loop does: remove, then push. */
        arpc__timer_heap_remove(heap, t);
        model_remove(t);
    }
    ASSERT_OK(arpc__timer_heap_push(heap, t, deadline));
    ASSERT_EQ(t->deadline_ns, deadline);
    model_push(t, deadline);
}

static void op_remove(arpc__timer_heap *heap)
{
    arpc__timer *t = random_timer();
    bool queued = arpc__timer_queued(t);
    arpc__timer_heap_remove(heap, t); /* harmless when not queued */
    ASSERT_FALSE(arpc__timer_queued(t));
    if (queued)
        model_remove(t);
}

static void op_pop(arpc__timer_heap *heap)
{
    int64_t now = (int64_t)(test_rand() % 2200) - 100;
    /* Pop a few at the same `now`, as the loop does once per iteration. */
    for (int k = 0; k < 4; k++) {
        arpc__timer *got = arpc__timer_heap_pop_expired(heap, now);
        bool expect = ref.len > 0 && ref.items[0].deadline <= now;
        if (!expect) {
            ASSERT_TRUE(got == NULL);
            return;
        }
        ASSERT_TRUE(got == ref.items[0].timer);
        ASSERT_FALSE(arpc__timer_queued(got));
        model_remove_at(0);
    }
}

static void test_random_against_model(void)
{
    arpc__timer_heap heap;
    arpc__timer_heap_init(&heap);
    for (uint32_t i = 0; i < POOL; i++)
        arpc__timer_init(&pool[i], nop_fire);
    test_seed();
    for (int op = 0; op < OPS; op++) {
        /* Phases grow the heap large, then drain it, then mix. */
        unsigned push_pct = op < OPS / 3 ? 70 : op < 2 * OPS / 3 ? 30 : 50;
        unsigned r = (unsigned)(test_rand() % 100);
        if (r < push_pct)
            op_push(&heap);
        else if (r < push_pct + (100 - push_pct) / 2)
            op_remove(&heap);
        else
            op_pop(&heap);
        check_top(&heap);
        if (op % 997 == 0 || heap.len < 64)
            check_invariants(&heap);
    }
    check_invariants(&heap);
    arpc__timer_heap_fini(&heap);
    for (uint32_t i = 0; i < POOL; i++)
        ASSERT_FALSE(arpc__timer_queued(&pool[i]));
    ref.len = 0;
}

static void test_ties_pop_in_insertion_order(void)
{
    arpc__timer_heap heap;
    arpc__timer_heap_init(&heap);
    for (uint32_t i = 0; i < 500; i++) {
        arpc__timer_init(&pool[i], nop_fire);
        ASSERT_OK(arpc__timer_heap_push(&heap, &pool[i], 7));
    }
    ASSERT_TRUE(arpc__timer_heap_pop_expired(&heap, 6) == NULL);
    for (uint32_t i = 0; i < 500; i++)
        ASSERT_TRUE(arpc__timer_heap_pop_expired(&heap, 7) == &pool[i]);
    ASSERT_TRUE(arpc__timer_heap_pop_expired(&heap, INT64_MAX) == NULL);
    arpc__timer_heap_fini(&heap);
}

static void test_grow_failure_keeps_heap(void)
{
    arpc__timer_heap heap;
    arpc__timer_heap_init(&heap);
    uint32_t n = 0;
    do {
        arpc__timer_init(&pool[n], nop_fire);
        ASSERT_OK(arpc__timer_heap_push(&heap, &pool[n], (int64_t)(1000 - n)));
        n++;
    } while (heap.len < heap.cap);
    arpc__timer_init(&pool[n], nop_fire);
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__timer_heap_push(&heap, &pool[n], 0), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    ASSERT_FALSE(arpc__timer_queued(&pool[n]));
    ASSERT_EQ(heap.len, n);
    /* Still a valid heap: pops come out in deadline order. */
    for (uint32_t i = n; i-- > 0;)
        ASSERT_TRUE(arpc__timer_heap_pop_expired(&heap, INT64_MAX) == &pool[i]);
    arpc__timer_heap_fini(&heap);
}

static void test_fini_unqueues(void)
{
    arpc__timer_heap heap;
    arpc__timer_heap_init(&heap);
    for (uint32_t i = 0; i < 100; i++) {
        arpc__timer_init(&pool[i], nop_fire);
        ASSERT_OK(arpc__timer_heap_push(&heap, &pool[i], (int64_t)i));
    }
    arpc__timer_heap_fini(&heap);
    for (uint32_t i = 0; i < 100; i++)
        ASSERT_FALSE(arpc__timer_queued(&pool[i]));
    ASSERT_EQ(heap.len, 0);
}

int main(void)
{
    RUN_TEST(test_random_against_model);
    RUN_TEST(test_ties_pop_in_insertion_order);
    RUN_TEST(test_grow_failure_keeps_heap);
    RUN_TEST(test_fini_unqueues);
    return 0;
}

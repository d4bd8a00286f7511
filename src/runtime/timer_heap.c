/*
 * Design notes: the heap stores pointers; every move of a pointer updates the
 * timer's heap_index, which is the invariant cancel relies on (checked with
 * ARPC_CHECK, since a mismatch would corrupt the heap).  The array grows by
 * doubling and never shrinks, so a loop in steady state does not allocate.
 */
#include <arpc/err.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "runtime/timer_heap.h"

static bool timer_before(const arpc__timer *a, const arpc__timer *b)
{
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns;
    return a->seq < b->seq;
}

static void place(arpc__timer_heap *heap, uint32_t index, arpc__timer *timer)
{
    heap->items[index] = timer;
    timer->heap_index = index;
}

static void sift_up(arpc__timer_heap *heap, uint32_t index)
{
    arpc__timer *timer = heap->items[index];
    while (index > 0) {
        uint32_t parent = (index - 1) / 2;
        if (!timer_before(timer, heap->items[parent]))
            break;
        place(heap, index, heap->items[parent]);
        index = parent;
    }
    place(heap, index, timer);
}

static void sift_down(arpc__timer_heap *heap, uint32_t index)
{
    arpc__timer *timer = heap->items[index];
    for (;;) {
        uint32_t child = 2 * index + 1;
        if (child >= heap->len)
            break;
        if (child + 1 < heap->len && timer_before(heap->items[child + 1], heap->items[child]))
            child++;
        if (!timer_before(heap->items[child], timer))
            break;
        place(heap, index, heap->items[child]);
        index = child;
    }
    place(heap, index, timer);
}

void arpc__timer_heap_init(arpc__timer_heap *heap)
{
    heap->items = NULL;
    heap->len = 0;
    heap->cap = 0;
    heap->next_seq = 0;
}

void arpc__timer_heap_fini(arpc__timer_heap *heap)
{
    for (uint32_t i = 0; i < heap->len; i++)
        heap->items[i]->heap_index = ARPC__TIMER_NOT_QUEUED;
    arpc__free(heap->items);
    arpc__timer_heap_init(heap);
}

static int grow(arpc__timer_heap *heap)
{
    uint32_t cap = heap->cap ? heap->cap * 2 : 64;
    if (cap <= heap->cap)
        return ARPC_ENOMEM;
    arpc__timer **items = arpc__realloc(heap->items, (size_t)cap * sizeof(*items));
    if (items == NULL)
        return ARPC_ENOMEM;
    heap->items = items;
    heap->cap = cap;
    return 0;
}

int arpc__timer_heap_push(arpc__timer_heap *heap, arpc__timer *timer, int64_t deadline_ns)
{
    ARPC_CHECK(!arpc__timer_queued(timer));
    if (heap->len == heap->cap) {
        int rc = grow(heap);
        if (rc < 0)
            return rc;
    }
    timer->deadline_ns = deadline_ns;
    timer->seq = heap->next_seq++;
    heap->items[heap->len] = timer;
    timer->heap_index = heap->len;
    heap->len++;
    sift_up(heap, timer->heap_index);
    return 0;
}

void arpc__timer_heap_remove(arpc__timer_heap *heap, arpc__timer *timer)
{
    uint32_t index = timer->heap_index;
    if (index == ARPC__TIMER_NOT_QUEUED)
        return;
    ARPC_CHECK(index < heap->len && heap->items[index] == timer);
    timer->heap_index = ARPC__TIMER_NOT_QUEUED;
    heap->len--;
    if (index == heap->len)
        return;
    arpc__timer *last = heap->items[heap->len];
    place(heap, index, last);
    /* The moved timer may belong above or below its new slot. */
    if (index > 0 && timer_before(last, heap->items[(index - 1) / 2]))
        sift_up(heap, index);
    else
        sift_down(heap, index);
}

arpc__timer *arpc__timer_heap_pop_expired(arpc__timer_heap *heap, int64_t now_ns)
{
    if (heap->len == 0 || heap->items[0]->deadline_ns > now_ns)
        return NULL;
    arpc__timer *top = heap->items[0];
    arpc__timer_heap_remove(heap, top);
    return top;
}

/*
 * An indexed binary min-heap of intrusive timers.  Each timer knows its slot,
 * so cancel is O(log n) without a search.  Ties on the deadline are broken by
 * insertion order (`seq`), which makes firing order deterministic.
 */
#ifndef ARPC_RUNTIME_TIMER_HEAP_H
#define ARPC_RUNTIME_TIMER_HEAP_H

#include <stdbool.h>
#include <stdint.h>

#define ARPC__TIMER_NOT_QUEUED UINT32_MAX

typedef struct arpc__timer arpc__timer;

/* Runs on the loop thread after the timer left the heap; may re-arm it. */
typedef void (*arpc__timer_fire_fn)(arpc__timer *timer);

struct arpc__timer {
    int64_t deadline_ns;
    uint64_t seq;
    uint32_t heap_index;
    arpc__timer_fire_fn fire;
};

typedef struct arpc__timer_heap {
    arpc__timer **items;
    uint32_t len;
    uint32_t cap;
    uint64_t next_seq;
} arpc__timer_heap;

static inline void arpc__timer_init(arpc__timer *timer, arpc__timer_fire_fn fire)
{
    timer->deadline_ns = 0;
    timer->seq = 0;
    timer->heap_index = ARPC__TIMER_NOT_QUEUED;
    timer->fire = fire;
}

static inline bool arpc__timer_queued(const arpc__timer *timer)
{
    return timer->heap_index != ARPC__TIMER_NOT_QUEUED;
}

void arpc__timer_heap_init(arpc__timer_heap *heap);
void arpc__timer_heap_fini(arpc__timer_heap *heap);

/* Queues `timer` (which must not be queued) at `deadline_ns`.
 * @return 0 or ARPC_ENOMEM when the heap could not grow. */
int arpc__timer_heap_push(arpc__timer_heap *heap, arpc__timer *timer, int64_t deadline_ns);

/* Removes a queued timer; a timer that is not queued is left alone. */
void arpc__timer_heap_remove(arpc__timer_heap *heap, arpc__timer *timer);

/* The earliest timer, or NULL. */
static inline arpc__timer *arpc__timer_heap_peek(const arpc__timer_heap *heap)
{
    return heap->len ? heap->items[0] : NULL;
}

/* Removes and returns the earliest timer if its deadline is <= now_ns. */
arpc__timer *arpc__timer_heap_pop_expired(arpc__timer_heap *heap, int64_t now_ns);

#endif

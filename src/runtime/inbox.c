/*
 * Design notes: the ring follows Dmitry Vyukov's bounded queue.  Cell i holds
 * seq == position when free for the producer claiming `position`, and
 * seq == position + 1 once filled; the consumer frees it by storing
 * position + capacity.  Producers race on `tail` with a CAS; the single
 * consumer owns `head` outright.  The top bit of `tail` closes the ring:
 * positions never get near it, and a producer's CAS expects it clear.
 */
#include <arpc/err.h>

#include "base/alloc.h"
#include "runtime/inbox.h"

#define TAIL_CLOSED (((size_t)-1 >> 1) + 1)

typedef enum { RING_PUSHED, RING_FULL, RING_CLOSED } ring_result;

static size_t round_up_pow2(size_t n)
{
    size_t p = 2;
    while (p < n)
        p *= 2;
    return p;
}

int arpc__inbox_init(arpc__inbox *inbox, size_t capacity)
{
    size_t cap = round_up_pow2(capacity < 2 ? 2 : capacity);
    inbox->cells = arpc__malloc(cap * sizeof(*inbox->cells));
    if (inbox->cells == NULL)
        return ARPC_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        atomic_init(&inbox->cells[i].seq, i);
    inbox->mask = cap - 1;
    atomic_init(&inbox->tail, 0);
    inbox->head = 0;
    atomic_init(&inbox->overflow_count, 0);
    pthread_mutex_init(&inbox->overflow_lock, NULL);
    inbox->closed = false;
    inbox->overflow_head = NULL;
    inbox->overflow_tail = NULL;
    return 0;
}

void arpc__inbox_fini(arpc__inbox *inbox)
{
    arpc__overflow_task *task = inbox->overflow_head;
    while (task != NULL) {
        arpc__overflow_task *next = task->next;
        if (task->heap)
            arpc__free(task);
        task = next;
    }
    pthread_mutex_destroy(&inbox->overflow_lock);
    arpc__free(inbox->cells);
    inbox->cells = NULL;
}

static ring_result ring_try_push(arpc__inbox *inbox, arpc__task_fn fn, void *a, void *b)
{
    size_t pos = atomic_load_explicit(&inbox->tail, memory_order_relaxed);
    for (;;) {
        if (pos & TAIL_CLOSED)
            return RING_CLOSED;
        arpc__inbox_cell *cell = &inbox->cells[pos & inbox->mask];
        size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&inbox->tail, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                cell->fn = fn;
                cell->a = a;
                cell->b = b;
                atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
                return RING_PUSHED;
            }
        } else if (diff < 0) {
            return RING_FULL;
        } else {
            pos = atomic_load_explicit(&inbox->tail, memory_order_relaxed);
        }
    }
}

/* @return false if the inbox is closed and the push is not forced. */
static bool overflow_link(arpc__inbox *inbox, arpc__task *task, bool force)
{
    task->next = NULL;
    pthread_mutex_lock(&inbox->overflow_lock);
    if (inbox->closed && !force) {
        pthread_mutex_unlock(&inbox->overflow_lock);
        return false;
    }
    if (inbox->overflow_tail)
        inbox->overflow_tail->next = task;
    else
        inbox->overflow_head = task;
    inbox->overflow_tail = task;
    atomic_fetch_add_explicit(&inbox->overflow_count, 1, memory_order_release);
    pthread_mutex_unlock(&inbox->overflow_lock);
    return true;
}

/* The ring, unless the overflow holds tasks (they must run first). */
static ring_result ring_push_in_order(arpc__inbox *inbox, arpc__task_fn fn, void *a, void *b)
{
    if (atomic_load_explicit(&inbox->overflow_count, memory_order_acquire) != 0)
        return RING_FULL;
    return ring_try_push(inbox, fn, a, b);
}

static bool ring_closed(arpc__inbox *inbox)
{
    return (atomic_load_explicit(&inbox->tail, memory_order_relaxed) & TAIL_CLOSED) != 0;
}

int arpc__inbox_push(arpc__inbox *inbox, arpc__task_fn fn, void *a, void *b)
{
    ring_result r = ring_push_in_order(inbox, fn, a, b);
    if (r == RING_PUSHED)
        return 0;
    if (r == RING_CLOSED || ring_closed(inbox))
        return ARPC_ESTOPPED; /* before allocating: a refusal is not ENOMEM */
    arpc__task *task = arpc__malloc(sizeof(*task));
    if (task == NULL)
        return ARPC_ENOMEM;
    arpc__task_set(task, fn, a, b);
    task->heap = true;
    if (overflow_link(inbox, task, false))
        return 0;
    arpc__free(task);
    return ARPC_ESTOPPED;
}

int arpc__inbox_push_task(arpc__inbox *inbox, arpc__task *task, bool force)
{
    ring_result r = ring_push_in_order(inbox, task->fn, task->a, task->b);
    if (r == RING_PUSHED)
        return 0;
    if (r == RING_CLOSED && !force)
        return ARPC_ESTOPPED;
    return overflow_link(inbox, task, force) ? 0 : ARPC_ESTOPPED;
}

void arpc__inbox_close(arpc__inbox *inbox)
{
    /* The ring first: a producer that found it full and spills meets the
     * closed overflow, or links before it closes; either way it is decided. */
    atomic_fetch_or(&inbox->tail, TAIL_CLOSED);
    pthread_mutex_lock(&inbox->overflow_lock);
    inbox->closed = true;
    pthread_mutex_unlock(&inbox->overflow_lock);
}

bool arpc__inbox_settled(arpc__inbox *inbox)
{
    size_t tail = atomic_load_explicit(&inbox->tail, memory_order_acquire) & ~TAIL_CLOSED;
    return inbox->head == tail &&
           atomic_load_explicit(&inbox->overflow_count, memory_order_acquire) == 0;
}

static bool ring_try_pop(arpc__inbox *inbox, arpc__task_fn *fn, void **a, void **b)
{
    arpc__inbox_cell *cell = &inbox->cells[inbox->head & inbox->mask];
    size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
    if (seq != inbox->head + 1)
        return false;
    *fn = cell->fn;
    *a = cell->a;
    *b = cell->b;
    atomic_store_explicit(&cell->seq, inbox->head + inbox->mask + 1, memory_order_release);
    inbox->head++;
    return true;
}

static size_t run_overflow(arpc__overflow_task *task)
{
    size_t ran = 0;
    while (task != NULL) {
        /* Copied first: the task may push its own node again while it runs. */
        arpc__overflow_task copy = *task;
        if (task->heap)
            arpc__free(task);
        copy.fn(copy.a, copy.b);
        task = copy.next;
        ran++;
    }
    return ran;
}

/* Takes the overflow list once every ring task claimed before it has run.
 * A producer claims its ring cells before it spills, and the lock orders
 * its spill before our tail read, so the ring tasks that must run first are
 * exactly those below the tail read under the lock.  A claimed cell may not
 * be filled yet (its producer was preempted between claim and publish):
 * then the overflow waits for the next call rather than overtake it.
 * @return the number of tasks run. */
static size_t overflow_drain(arpc__inbox *inbox)
{
    size_t ran = 0;
    arpc__task_fn fn;
    void *a;
    void *b;
    for (;;) {
        pthread_mutex_lock(&inbox->overflow_lock);
        size_t tail = atomic_load_explicit(&inbox->tail, memory_order_relaxed) & ~TAIL_CLOSED;
        if (inbox->head == tail) {
            arpc__overflow_task *task = inbox->overflow_head;
            inbox->overflow_head = NULL;
            inbox->overflow_tail = NULL;
            /* Producers that see the count drop to zero go back to the ring,
             * at positions from `tail` on, after every task taken here. */
            atomic_store_explicit(&inbox->overflow_count, 0, memory_order_release);
            pthread_mutex_unlock(&inbox->overflow_lock);
            return ran + run_overflow(task);
        }
        pthread_mutex_unlock(&inbox->overflow_lock);
        /* Tasks run without the lock: they may submit to this inbox. */
        while (inbox->head != tail && ring_try_pop(inbox, &fn, &a, &b)) {
            fn(a, b);
            ran++;
        }
        if (inbox->head != tail)
            return ran;
    }
}

size_t arpc__inbox_drain(arpc__inbox *inbox, size_t budget)
{
    size_t ran = 0;
    arpc__task_fn fn;
    void *a;
    void *b;
    while (ran < budget && ring_try_pop(inbox, &fn, &a, &b)) {
        fn(a, b);
        ran++;
    }
    if (ran < budget && atomic_load_explicit(&inbox->overflow_count, memory_order_acquire) > 0)
        ran += overflow_drain(inbox);
    return ran;
}

bool arpc__inbox_nonempty(arpc__inbox *inbox)
{
    arpc__inbox_cell *cell = &inbox->cells[inbox->head & inbox->mask];
    return atomic_load_explicit(&cell->seq, memory_order_acquire) == inbox->head + 1 ||
           atomic_load_explicit(&inbox->overflow_count, memory_order_acquire) > 0;
}

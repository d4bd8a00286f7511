/*
 * The MPSC inbox of a loop: many threads push tasks, only the loop thread pops.
 * A bounded lock-free ring (Vyukov's sequence-numbered cells) carries the
 * traffic without allocation; if it is ever full, pushes spill into a
 * mutex-protected overflow list so no task is lost.  Once the overflow holds
 * anything, every push goes there until the loop drains it, which keeps each
 * producer's tasks in order.
 *
 * The overflow is a list of arpc__task nodes.  arpc__inbox_push() allocates
 * the node when it must spill (so it can fail with ARPC_ENOMEM); hand-offs
 * that must never fail (a call to its slot's loop, an answer to its
 * connection's loop, a wake-up) embed a node in the object handed off and use
 * arpc__inbox_push_task(), which never allocates: the ring copies the node's
 * fields, or the list links the node itself.
 *
 * Closing (a loop that stops): arpc__inbox_close() sets a bit in `tail`, so
 * the CAS every ring producer already makes fails from then on, and marks
 * the overflow closed under its lock.  A push either lands before the close,
 * and the consumer runs it (arpc__inbox_settled() tells when all have), or
 * is refused; the loop's own thread may still push with `force`, into the
 * overflow list.
 */
#ifndef ARPC_RUNTIME_INBOX_H
#define ARPC_RUNTIME_INBOX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

/* Internal tasks carry two arguments, so that e.g. a cross-thread spawn needs
 * no allocation to pass both the function and its argument. */
typedef void (*arpc__task_fn)(void *a, void *b);

typedef struct arpc__inbox_cell {
    _Atomic size_t seq;
    arpc__task_fn fn;
    void *a;
    void *b;
} arpc__inbox_cell;

/* A task in caller storage.  Between its push and the start of its run it
 * belongs to the inbox; it may be pushed again as soon as it starts running
 * (its fields are copied first). */
typedef struct arpc__task arpc__task;

struct arpc__task {
    arpc__task *next;
    arpc__task_fn fn;
    void *a;
    void *b;
    bool heap; /* allocated by arpc__inbox_push: freed once it has run */
};

static inline void arpc__task_set(arpc__task *task, arpc__task_fn fn, void *a, void *b)
{
    task->next = NULL;
    task->fn = fn;
    task->a = a;
    task->b = b;
    task->heap = false;
}

typedef struct arpc__task arpc__overflow_task;

typedef struct arpc__inbox {
    arpc__inbox_cell *cells;
    size_t mask;
    _Alignas(ARPC__CACHELINE) _Atomic size_t tail; /* producers */
    _Alignas(ARPC__CACHELINE) size_t head;         /* the consumer only */
    _Alignas(ARPC__CACHELINE) _Atomic size_t overflow_count;
    pthread_mutex_t overflow_lock;
    bool closed; /* under overflow_lock */
    arpc__overflow_task *overflow_head;
    arpc__overflow_task *overflow_tail;
} arpc__inbox;

int arpc__inbox_init(arpc__inbox *inbox, size_t capacity);
void arpc__inbox_fini(arpc__inbox *inbox);

/* Any thread.  @return 0, ARPC_ENOMEM (ring full and overflow allocation
 * failed) or ARPC_ESTOPPED (closed). */
int arpc__inbox_push(arpc__inbox *inbox, arpc__task_fn fn, void *a, void *b);

/* Any thread; never allocates.  `task` (fields set with arpc__task_set) must
 * stay valid until it runs.  `force` (the consumer's own thread) pushes even
 * into a closed inbox.  @return 0 or ARPC_ESTOPPED (closed, not forced). */
int arpc__inbox_push_task(arpc__inbox *inbox, arpc__task *task, bool force);

/* Any thread: refuses every later push that is not forced. */
void arpc__inbox_close(arpc__inbox *inbox);

/* The consumer: true when every task pushed so far has been taken (no claimed
 * ring cell is left, published or not, and the overflow is empty). */
bool arpc__inbox_settled(arpc__inbox *inbox);

/* The loop thread: runs every task queued so far (and those that arrive while
 * it runs, up to `budget`).  @return the number of tasks run. */
size_t arpc__inbox_drain(arpc__inbox *inbox, size_t budget);

/* The loop thread: true if a pop would find a task. */
bool arpc__inbox_nonempty(arpc__inbox *inbox);

#endif

/*
 * Design notes.
 *
 * Scheduling is asymmetric: the loop's own stack is the scheduler, and every
 * coroutine switches back to it when it parks or ends.  A resume therefore
 * costs two switches, which keeps the invariants simple: only the scheduler
 * frees a finished coroutine's stack (a coroutine cannot unmap the stack it
 * runs on).
 *
 * Memory: one mmap per stack, laid out as [guard page | stack ... | struct
 * arpc_coro].  Finished coroutines go back to a per-loop free list of at
 * most stack_pool_max entries, so steady-state spawning maps nothing.
 *
 * Starting at once: arpc__coro_spawn_run, called from the scheduler's own
 * stack (an I/O callback, a task), resumes the new coroutine right away
 * instead of queueing it; it returns when the coroutine first parks or ends.
 * The server uses it per request: no queue round trip, and a handler that
 * does not park hands its stack back to the pool before the next request
 * takes one, so a whole batch runs on one cache-warm stack.
 *
 * Spawning from another thread: the caller maps the stack (mmap is thread
 * safe; the pool is the loop's alone) and hands the ready coroutine over
 * with the task node embedded in it.  So the only failures, no stack or a
 * stopped loop, are returned to the caller, and the loop-side step cannot
 * fail.  Such a stack joins the loop's pool when the coroutine ends.
 *
 * Waking: a coroutine is parked exactly when it is neither running nor in
 * the ready queue.  arpc__coro_wake() on a ready coroutine is a no-op, and
 * a park deadline fires through the coroutine's embedded timer.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <arpc/err.h>

#include "base/assert.h"
#include "base/clock.h"
#include "runtime/coro.h"
#include "runtime/coro_san.h"
#include "runtime/loop.h"

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

static arpc_coro *stack_map(arpc_loop *loop)
{
    size_t page = page_size();
    size_t usable = round_up(loop->stack_size, page);
    size_t header = round_up(sizeof(arpc_coro), 64);
    size_t map_size = page + usable + round_up(header, page);
    void *base = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    /* The guard page sits below the stack, which grows down into it. */
    if (mprotect(base, page, PROT_NONE) != 0) {
        munmap(base, map_size);
        return NULL;
    }
    arpc_coro *coro = (arpc_coro *)((char *)base + map_size - header);
    coro->map_base = base;
    coro->map_size = map_size;
    coro->stack_lo = (char *)base + page;
    coro->stack_size = (size_t)((char *)coro - (char *)coro->stack_lo);
    return coro;
}

static void stack_unmap(arpc_coro *coro)
{
    munmap(coro->map_base, coro->map_size);
}

static arpc_coro *coro_alloc(arpc_loop *loop)
{
    arpc__list *node = arpc__list_pop_front(&loop->free_stacks);
    if (node != NULL) {
        loop->free_stack_count--;
        return arpc__container_of(node, arpc_coro, link);
    }
    return stack_map(loop);
}

static void coro_release(arpc_loop *loop, arpc_coro *coro)
{
    arpc__san_fiber_destroy(coro->tsan_fiber);
    loop->live_coros--;
    if (loop->free_stack_count < loop->stack_pool_max) {
        arpc__list_push_front(&loop->free_stacks, &coro->link);
        loop->free_stack_count++;
        return;
    }
    stack_unmap(coro);
}

void arpc__coro_pool_fini(arpc_loop *loop)
{
    arpc__list *node;
    while ((node = arpc__list_pop_front(&loop->free_stacks)) != NULL)
        stack_unmap(arpc__container_of(node, arpc_coro, link));
    loop->free_stack_count = 0;
}

arpc_coro *arpc__coro_self(void)
{
    arpc_loop *loop = arpc__loop_current();
    return loop ? loop->current : NULL;
}

bool arpc_coro_in(void)
{
    return arpc__coro_self() != NULL;
}

/* Switches from the running coroutine back to the scheduler. */
static void switch_to_scheduler(arpc_coro *coro, bool finishing)
{
    arpc_loop *loop = coro->loop;
    arpc__san_switch_begin(finishing ? NULL : &coro->asan_fake_stack, loop->sched_stack_bottom,
                           loop->sched_stack_size, loop->sched_fiber);
    arpc__ctx_switch(&coro->ctx, &loop->sched_ctx);
    arpc__san_switch_end(coro->asan_fake_stack, &loop->sched_stack_bottom,
                         &loop->sched_stack_size);
}

static void coro_main(void *arg)
{
    arpc_coro *coro = arg;
    arpc_loop *loop = coro->loop;
    arpc__san_switch_end(NULL, &loop->sched_stack_bottom, &loop->sched_stack_size);
    coro->fn(coro->arg);
    coro->finished = true;
    switch_to_scheduler(coro, true);
    ARPC_CHECK(!"a finished coroutine was resumed");
}

static void on_park_deadline(arpc__timer *timer)
{
    arpc_coro *coro = arpc__container_of(timer, arpc_coro, timer);
    coro->timed_out = true;
    arpc__coro_wake(coro);
}

/* Prepares a coroutine on a fresh or pooled stack to start `fn`.  Any thread:
 * it touches only the coroutine. */
static void coro_prepare(arpc_coro *coro, arpc_loop *loop, arpc_coro_fn fn, void *user_data)
{
    coro->loop = loop;
    coro->fn = fn;
    coro->arg = user_data;
    coro->timed_out = false;
    coro->finished = false;
    coro->asan_fake_stack = NULL;
    coro->tsan_fiber = arpc__san_fiber_create();
    arpc__timer_init(&coro->timer, on_park_deadline);
    arpc__list_init(&coro->link);
    arpc__ctx_make(&coro->ctx, coro->stack_lo, coro->stack_size, coro_main, coro);
}

/* Takes a stack from the pool and prepares a coroutine to start `fn`. */
static arpc_coro *coro_create(arpc_loop *loop, arpc_coro_fn fn, void *user_data)
{
    arpc_coro *coro = coro_alloc(loop);
    if (coro == NULL)
        return NULL;
    coro_prepare(coro, loop, fn, user_data);
    loop->live_coros++;
    return coro;
}

static int spawn_here(arpc_loop *loop, arpc_coro_fn fn, void *user_data)
{
    arpc_coro *coro = coro_create(loop, fn, user_data);
    if (coro == NULL)
        return ARPC_ENOMEM;
    arpc__list_push_back(&loop->ready, &coro->link);
    return 0;
}

/* On the loop: a coroutine prepared by another thread becomes ready. */
static void adopt_task(void *coro_arg, void *unused)
{
    arpc_coro *coro = coro_arg;
    coro->loop->live_coros++;
    arpc__list_push_back(&coro->loop->ready, &coro->link);
}

int arpc_coro_spawn(arpc_loop *loop, arpc_coro_fn fn, void *user_data)
{
    if (loop == NULL || fn == NULL)
        return ARPC_EINVAL;
    if (arpc__loop_current() == loop) {
        if (atomic_load_explicit(&loop->closed, memory_order_relaxed))
            return ARPC_ESTOPPED;
        return spawn_here(loop, fn, user_data);
    }
    if (atomic_load(&loop->closed))
        return ARPC_ESTOPPED; /* a cheap early answer; the post decides */
    arpc_coro *coro = stack_map(loop);
    if (coro == NULL)
        return ARPC_ENOMEM;
    coro_prepare(coro, loop, fn, user_data);
    arpc__task_set(&coro->task, adopt_task, coro, NULL);
    int rc = arpc__loop_post(loop, &coro->task);
    if (rc < 0) {
        arpc__san_fiber_destroy(coro->tsan_fiber);
        stack_unmap(coro);
    }
    return rc;
}

static void resume(arpc_loop *loop, arpc_coro *coro)
{
    loop->current = coro;
    if (loop->sched_fiber == NULL)
        loop->sched_fiber = arpc__san_fiber_current();
    arpc__san_switch_begin(&loop->sched_fake_stack, coro->stack_lo, coro->stack_size,
                           coro->tsan_fiber);
    arpc__ctx_switch(&loop->sched_ctx, &coro->ctx);
    arpc__san_switch_end(loop->sched_fake_stack, NULL, NULL);
    loop->current = NULL;
    if (coro->finished)
        coro_release(loop, coro);
}

void arpc__coro_run_ready(arpc_loop *loop)
{
    /* Run only what is ready now; coroutines woken meanwhile run in the next
     * pass, after I/O and timers had their turn. */
    arpc__list batch;
    arpc__list_move_all(&loop->ready, &batch);
    arpc__list *node;
    while ((node = arpc__list_pop_front(&batch)) != NULL)
        resume(loop, arpc__container_of(node, arpc_coro, link));
}

int arpc__coro_spawn_run(arpc_loop *loop, arpc_coro_fn fn, void *user_data)
{
    ARPC_ASSERT(arpc__loop_current() == loop);
    if (loop->current != NULL)
        return spawn_here(loop, fn, user_data); /* a coroutine cannot resume another */
    arpc_coro *coro = coro_create(loop, fn, user_data);
    if (coro == NULL)
        return ARPC_ENOMEM;
    resume(loop, coro);
    return 0;
}

int arpc__coro_park(int64_t deadline_ns)
{
    arpc_coro *coro = arpc__coro_self();
    ARPC_CHECK(coro != NULL);
    coro->timed_out = false;
    if (deadline_ns != ARPC__NO_DEADLINE) {
        int rc = arpc__loop_timer_arm(coro->loop, &coro->timer, deadline_ns);
        if (rc < 0)
            return rc;
    }
    switch_to_scheduler(coro, false);
    arpc__loop_timer_disarm(coro->loop, &coro->timer);
    return coro->timed_out ? ARPC_ETIMEDOUT : 0;
}

void arpc__coro_wake(arpc_coro *coro)
{
    ARPC_ASSERT(arpc__loop_current() == coro->loop);
    if (arpc__list_linked(&coro->link) || coro->loop->current == coro)
        return;
    arpc__list_push_back(&coro->loop->ready, &coro->link);
}

int arpc_coro_yield(void)
{
    arpc_coro *coro = arpc__coro_self();
    if (coro == NULL)
        return ARPC_ENOTCORO;
    arpc__list_push_back(&coro->loop->ready, &coro->link);
    switch_to_scheduler(coro, false);
    return 0;
}

int arpc_coro_sleep_ms(int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (arpc__on_loop_outside_coro())
        return ARPC_ENOTCORO;
    arpc_coro *coro = arpc__coro_self();
    if (coro == NULL) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0)
            ;
        return 0;
    }
    int64_t deadline = arpc__now_ns() + ms * ARPC__NS_PER_MS;
    while (arpc__now_ns() < deadline) {
        int rc = arpc__coro_park(deadline);
        if (rc < 0 && rc != ARPC_ETIMEDOUT)
            return rc;
    }
    return 0;
}

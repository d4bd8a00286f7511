/*
 * Design notes: a runtime is an array of loops started on their own threads.
 * Round-robin placement uses one relaxed atomic counter; it needs no
 * fairness stronger than "spreads evenly".
 *
 * Teardown: every loop is stopped (closed to other threads) before any is
 * joined, and every loop is joined before any is freed.  A task of one loop
 * that submits to another while the runtime goes down then finds that loop
 * closed (ARPC_ESTOPPED) but still in memory; the use-after-free of a submit
 * into a loop already freed cannot happen.  Teardowns that a loop thread
 * started in a coroutine (a channel or server destroyed there) hold the
 * runtime: it waits for them before it stops anything.
 */
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <arpc/err.h>
#include <arpc/runtime.h>

#include "base/alloc.h"
#include "base/log.h"
#include "runtime/loop.h"
#include "runtime/offload.h"

struct arpc_runtime {
    unsigned loop_count;
    _Atomic unsigned next;
    arpc_loop **loops;
    arpc__offload_pool offload;
    _Atomic unsigned teardowns; /* see arpc__loop_hold_runtime */
};

void arpc_runtime_opts_init(arpc_runtime_opts *opts)
{
    opts->loops = 0;
    arpc_loop_opts_init(&opts->loop);
    opts->offload_threads = 0;
}

static void destroy_loops(arpc_runtime *rt, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        arpc_loop_stop(rt->loops[i]);
    for (unsigned i = 0; i < count; i++)
        arpc_loop_join(rt->loops[i]);
    for (unsigned i = 0; i < count; i++)
        arpc_loop_destroy(rt->loops[i]);
}

int arpc_runtime_create(const arpc_runtime_opts *opts, arpc_runtime **out)
{
    arpc_runtime_opts defaults;
    if (opts == NULL) {
        arpc_runtime_opts_init(&defaults);
        opts = &defaults;
    }
    unsigned count = opts->loops;
    if (count == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        count = cpus > 0 ? (unsigned)cpus : 1;
    }
    arpc_runtime *rt = arpc__calloc(1, sizeof(*rt));
    if (rt == NULL)
        return ARPC_ENOMEM;
    rt->loops = arpc__calloc(count, sizeof(*rt->loops));
    if (rt->loops == NULL) {
        arpc__free(rt);
        return ARPC_ENOMEM;
    }
    for (unsigned i = 0; i < count; i++) {
        int rc = arpc_loop_create(&opts->loop, &rt->loops[i]);
        if (rc == 0) {
            rt->loops[i]->rt = rt;
            rc = arpc_loop_start(rt->loops[i]);
            if (rc < 0)
                arpc_loop_destroy(rt->loops[i]);
        }
        if (rc < 0) {
            destroy_loops(rt, i);
            arpc__free(rt->loops);
            arpc__free(rt);
            return rc;
        }
    }
    rt->loop_count = count;
    arpc__offload_init(&rt->offload, opts->offload_threads ? opts->offload_threads : count);
    *out = rt;
    return 0;
}

void arpc_runtime_destroy(arpc_runtime *rt)
{
    if (rt == NULL)
        return;
    arpc_loop *here = arpc_loop_current();
    if (here != NULL && here->rt == rt) {
        ARPC_LOG_ERRORF("arpc_runtime_destroy called on one of the runtime's own loops: ignored");
        return;
    }
    struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
    while (atomic_load(&rt->teardowns) > 0)
        nanosleep(&ms, NULL);
    /* Workers first: a worker that finished a job wakes its coroutine with a
     * submit to the coroutine's loop, which touches the loop after the push.
     * Joining them while the loops still run orders that before the free. */
    arpc__offload_fini(&rt->offload);
    destroy_loops(rt, rt->loop_count);
    arpc__free(rt->loops);
    arpc__free(rt);
}

unsigned arpc_runtime_loop_count(const arpc_runtime *rt)
{
    return rt->loop_count;
}

arpc_loop *arpc_runtime_loop(const arpc_runtime *rt, unsigned index)
{
    return index < rt->loop_count ? rt->loops[index] : NULL;
}

arpc_loop *arpc_runtime_next_loop(arpc_runtime *rt)
{
    unsigned n = atomic_fetch_add_explicit(&rt->next, 1, memory_order_relaxed);
    return rt->loops[n % rt->loop_count];
}

int arpc_runtime_spawn(arpc_runtime *rt, arpc_coro_fn fn, void *user_data)
{
    return arpc_coro_spawn(arpc_runtime_next_loop(rt), fn, user_data);
}

void arpc__loop_hold_runtime(arpc_loop *loop)
{
    if (loop->rt != NULL)
        atomic_fetch_add(&loop->rt->teardowns, 1);
}

void arpc__loop_release_runtime(arpc_loop *loop)
{
    if (loop->rt != NULL)
        atomic_fetch_sub(&loop->rt->teardowns, 1);
}

int arpc_runtime_offload(arpc_runtime *rt, arpc_task_cb fn, void *user_data)
{
    if (rt == NULL || fn == NULL)
        return ARPC_EINVAL;
    if (arpc__on_loop_outside_coro())
        return ARPC_ENOTCORO;
    return arpc__offload_run(&rt->offload, fn, user_data);
}

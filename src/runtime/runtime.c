/*
 * Design notes: a runtime is an array of loops started on their own threads.
 * Round-robin placement uses one relaxed atomic counter; it needs no
 * fairness stronger than "spreads evenly".
 */
#include <stdatomic.h>
#include <unistd.h>

#include <arpc/err.h>
#include <arpc/runtime.h>

#include "base/alloc.h"
#include "runtime/loop.h"
#include "runtime/offload.h"

struct arpc_runtime {
    unsigned loop_count;
    _Atomic unsigned next;
    arpc_loop **loops;
    arpc__offload_pool offload;
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

int arpc_runtime_offload(arpc_runtime *rt, arpc_task_cb fn, void *user_data)
{
    if (rt == NULL || fn == NULL)
        return ARPC_EINVAL;
    return arpc__offload_run(&rt->offload, fn, user_data);
}

/**
 * A runtime: N event loops, each on its own thread (shared-nothing), with
 * round-robin placement of coroutines and work.
 */
#ifndef ARPC_RUNTIME_H
#define ARPC_RUNTIME_H

#include <stddef.h>

#include <arpc/coro.h>
#include <arpc/export.h>
#include <arpc/loop.h>

ARPC_BEGIN_DECLS

typedef struct arpc_runtime arpc_runtime;

typedef struct arpc_runtime_opts {
    /** Number of loops; 0 means one per online CPU. */
    unsigned loops;
    /** Options of every loop (stack size, inbox size, stack pool). */
    arpc_loop_opts loop;
    /** Worker threads for arpc_runtime_offload(), started on first use;
     *  0 means one per online CPU. */
    unsigned offload_threads;
} arpc_runtime_opts;

/** Fills `opts` with defaults.  Thread: any. */
ARPC_EXPORT void arpc_runtime_opts_init(arpc_runtime_opts *opts);

/**
 * Creates the loops and starts their threads.
 * @param opts  borrowed; NULL means defaults.
 * @param out   on success the runtime, owned by the caller (arpc_runtime_destroy()).
 * @return 0, ARPC_EINVAL (a loop option is invalid, e.g. a coroutine stack
 *         under 16 KiB), ARPC_ENOMEM or an OS error (-errno).
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_runtime_create(const arpc_runtime_opts *opts, arpc_runtime **out);

/**
 * Stops every loop, joins its thread and frees the runtime.  Objects that use
 * the runtime (channels, servers) must be destroyed first; teardowns that a
 * loop thread of this runtime handed to a coroutine (arpc_channel_destroy()
 * or arpc_server_destroy() called there) are waited for.  Every loop is
 * stopped before any is joined, and joined before any is freed: a task that
 * submits to another loop meanwhile gets ARPC_ESTOPPED, and every task
 * accepted runs (see arpc_loop_stop()).  NULL is a no-op.  Called on one of
 * the runtime's own loop threads (or in one of its coroutines), where it
 * would join itself, it logs an error and returns without doing anything.
 * Thread: any (see above).  Blocks.
 */
ARPC_EXPORT void arpc_runtime_destroy(arpc_runtime *rt);

/** The number of loops.  Thread: any. */
ARPC_EXPORT unsigned arpc_runtime_loop_count(const arpc_runtime *rt);

/** Loop `index` (0 <= index < count), or NULL.  Thread: any. */
ARPC_EXPORT arpc_loop *arpc_runtime_loop(const arpc_runtime *rt, unsigned index);

/** The next loop in round-robin order.  Thread: any.  Suspends: no. */
ARPC_EXPORT arpc_loop *arpc_runtime_next_loop(arpc_runtime *rt);

/**
 * Spawns a coroutine on the next loop in round-robin order.
 * @return as arpc_coro_spawn(): 0, ARPC_ENOMEM or ARPC_ESTOPPED.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_runtime_spawn(arpc_runtime *rt, arpc_coro_fn fn, void *user_data);

/**
 * Runs `fn(user_data)` on the runtime's worker pool and waits for it to
 * return: CPU-heavy work (compression, crypto, parsing) that would otherwise
 * hold up every other coroutine of the loop.  Inside a coroutine only that
 * coroutine waits; on a plain thread the thread blocks.
 * @return 0 (fn ran), ARPC_EINVAL (NULL rt or fn), ARPC_ENOTCORO (on a loop
 *         thread outside a coroutine, which must not block), or ARPC_ENOMEM or
 *         -errno (the pool could not start); fn did not run on an error.
 * Thread: any; on a loop thread only in a coroutine.  Suspends: yes.
 */
ARPC_EXPORT int arpc_runtime_offload(arpc_runtime *rt, arpc_task_cb fn, void *user_data);

ARPC_END_DECLS

#endif

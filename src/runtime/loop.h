/*
 * Internal view of a loop.  Everything here is owned by the loop's thread,
 * except the inbox, the stop flag and the sleeping flag, which other threads
 * touch through atomics.
 */
#ifndef ARPC_RUNTIME_LOOP_H
#define ARPC_RUNTIME_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <arpc/loop.h>

#include "base/buf.h"
#include "base/list.h"
#include "runtime/arch/switch.h"
#include "runtime/coro.h"
#include "runtime/inbox.h"
#include "runtime/timer_heap.h"

/* A file descriptor's entry in the loop's fd -> handler table.  `on_event`
 * runs on the loop thread with the epoll event bits. */
typedef struct arpc__io_watcher arpc__io_watcher;
typedef void (*arpc__io_event_fn)(arpc__io_watcher *watcher, uint32_t events);

struct arpc__io_watcher {
    int fd;
    arpc__io_event_fn on_event;
};

/* Work that runs once just before the loop polls: output flushes gather all
 * the writes of one iteration into one system call. */
typedef struct arpc__deferred arpc__deferred;
typedef void (*arpc__deferred_fn)(arpc__deferred *deferred);

struct arpc__deferred {
    arpc__list link;
    arpc__deferred_fn run;
};

typedef struct arpc__user_timer arpc__user_timer;

/* Loop-local storage for the layers above the runtime (per-loop pools). */
enum { ARPC__LOCAL_CALL_POOL = 0, ARPC__LOCAL_PB_SCRATCH, ARPC__LOCAL_COUNT };

typedef struct arpc__loop_local {
    void *value;
    void (*fini)(void *value); /* runs when the loop is destroyed */
} arpc__loop_local;

/* arpc_loop.run_state */
enum { ARPC__LOOP_IDLE = 0, ARPC__LOOP_RUNNING = 1, ARPC__LOOP_DONE = 2 };

struct arpc_runtime;

struct arpc_loop {
    int epoll_fd;
    int wake_fd;
    _Atomic int sleeping;
    _Atomic bool stop_requested;
    /* Set by arpc_loop_stop, which also closes the inbox: submissions are
     * refused from then on (those of the loop's own hand-offs excepted). */
    _Atomic bool closed;
    _Atomic int run_state;   /* ARPC__LOOP_*, for threads that wait for its end */
    struct arpc_runtime *rt; /* the runtime that owns the loop, or NULL */
    bool running;
    bool thread_started;
    pthread_t thread;

    arpc__inbox inbox;
    arpc__timer_heap timers;
    int64_t now_ns;       /* refreshed every iteration */
    int64_t busy_poll_ns; /* arpc_loop_opts.busy_poll_us; 0: never spin */

    arpc__list ready;    /* coroutines ready to run */
    arpc__list deferred; /* arpc__deferred to run before polling */

    /* Shared read buffer of the loop's connections: a socket is read into it
     * and only an incomplete trailing frame is copied to the connection, so
     * idle connections hold no input buffer. */
    arpc_buf read_buf;

    arpc__loop_local locals[ARPC__LOCAL_COUNT];

    arpc__io_watcher **watchers; /* indexed by fd */
    size_t watchers_cap;

    /* Scheduler context and the coroutine running now. */
    arpc__ctx sched_ctx;
    arpc_coro *current;
    const void *sched_stack_bottom; /* for ASan */
    size_t sched_stack_size;
    void *sched_fiber; /* for TSan */
    void *sched_fake_stack;

    /* Stack pool. */
    arpc__list free_stacks;
    size_t free_stack_count;
    size_t stack_pool_max;
    size_t stack_size;
    size_t live_coros;

    /* Public timers (arpc_timer_add) live in chunks so their addresses are stable. */
    arpc__user_timer **user_timer_chunks;
    uint32_t user_timer_chunk_count;
    uint32_t user_timer_free; /* index of the first free slot, or UINT32_MAX */
};

/* The initial-exec model makes a thread-local read one instruction instead of
 * a __tls_get_addr() call; it is asked for on every call and every wake-up. */
#define ARPC__TLS_MODEL __attribute__((tls_model("initial-exec")))

extern _Thread_local arpc_loop *arpc__tls_loop ARPC__TLS_MODEL;

/* The loop of the calling thread, or NULL. */
static inline arpc_loop *arpc__loop_current(void)
{
    return arpc__tls_loop;
}

/* fd -> handler table.  Registers `watcher` for edge-triggered input and output
 * readiness (interest is set once; no epoll_ctl per operation).
 * @return 0, ARPC_ENOMEM or -errno. */
int arpc__loop_watch(arpc_loop *loop, arpc__io_watcher *watcher);
void arpc__loop_unwatch(arpc_loop *loop, arpc__io_watcher *watcher);
arpc__io_watcher *arpc__loop_watcher(arpc_loop *loop, int fd);

/* Internal tasks with two arguments; see inbox.h.  Any thread.
 * @return 0, ARPC_ENOMEM (the overflow could not grow) or ARPC_ESTOPPED. */
int arpc__loop_submit2(arpc_loop *loop, arpc__task_fn fn, void *a, void *b);

/* Hands `task` (caller storage, fields set with arpc__task_set) to the loop
 * without allocating.  From the loop's own thread it is always accepted, also
 * while the loop finishes after a stop (the loop runs its inbox dry before
 * arpc_loop_run returns); from another thread it is refused once the loop is
 * stopped.  @return 0 or ARPC_ESTOPPED.  Any thread. */
int arpc__loop_post(arpc_loop *loop, arpc__task *task);

/* As arpc__loop_post, but a stopped loop's task runs on the calling thread
 * once the loop's thread has finished (its objects are then the caller's).
 * For teardown jobs and answers of the layers above.  Never fails.  Any
 * thread; it blocks (briefly: the loop's last drain) only on a refusal, which
 * the loop's own thread never gets. */
void arpc__loop_post_or_run(arpc_loop *loop, arpc__task *task);

/* Teardowns started on a runtime's loop (a channel or server destroyed from
 * a loop thread continues in a coroutine): arpc_runtime_destroy waits for
 * them.  No-ops on a loop without a runtime.  Any thread. */
void arpc__loop_hold_runtime(arpc_loop *loop);
void arpc__loop_release_runtime(arpc_loop *loop);

/* True on a loop thread outside a coroutine, where a blocking wait would
 * stall the loop (and deadlock if the loop must run to end the wait). */
bool arpc__on_loop_outside_coro(void);

/* Runs `deferred` once before the next poll (no-op if already scheduled). */
void arpc__loop_defer(arpc_loop *loop, arpc__deferred *deferred);

/* Timer heap access for the layers above. */
int arpc__loop_timer_arm(arpc_loop *loop, arpc__timer *timer, int64_t deadline_ns);
void arpc__loop_timer_disarm(arpc_loop *loop, arpc__timer *timer);

void arpc__loop_user_timers_fini(arpc_loop *loop);

/* Poller backend (poller_epoll.c). */
int arpc__poller_open(arpc_loop *loop);
void arpc__poller_close(arpc_loop *loop);
/* Waits up to `timeout_ms` (-1: forever, 0: not at all) and runs the handlers
 * of the ready fds.  @return the number of events seen (0 on EINTR). */
int arpc__poller_poll(arpc_loop *loop, int timeout_ms);
void arpc__poller_wake(arpc_loop *loop);

#endif

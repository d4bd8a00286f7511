/*
 * alloc_bench: what bench_alloc.c and bench_alloc_pb.c share.  Linking
 * alloc_bench.c interposes malloc/calloc/realloc and counts every call; the
 * batch runs DEPTH calls in flight on one loop, in coroutines or as chains of
 * async calls, and alloc_bench_modes() prints one line of allocations per call
 * for each mode.  The programs supply the calls themselves (untyped echo or a
 * typed protobuf call).
 */
#ifndef ARPC_BENCH_ALLOC_BENCH_H
#define ARPC_BENCH_ALLOC_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <arpc/arpc.h>

#define ALLOC_DEPTH    64     /* calls in flight */
#define ALLOC_WARMUP   20000  /* calls before counting, per mode */
#define ALLOC_MEASURED 200000 /* calls counted, per mode */

typedef struct alloc_batch alloc_batch;

struct alloc_batch {
    arpc_channel *ch;
    _Atomic int64_t left; /* calls still to start */
    _Atomic int64_t errors;
    _Atomic int next_slot; /* hands each coroutine its own per-slot buffer or arena */
    arpc_wg done;
    arpc_coro_fn coro_worker; /* runs calls while alloc_batch_take() says so, then done */
    /* Starts one async call whose callback ends in alloc_batch_chain(b, ...);
     * returns 0 or the call's error. */
    int (*start_call)(alloc_batch *b);
};

/* Called on every counted allocation when set (bench_alloc's allocation sites);
 * set it before the measured runs only. */
extern void (*_Atomic alloc_hook)(void);

/* @return allocations so far, of every thread. */
uint64_t alloc_count(void);

/* @return the next slot in 0..ALLOC_DEPTH-1, one per coroutine of a batch. */
int alloc_batch_slot(alloc_batch *b);

/* @return true if the caller is to start one more call (and takes it). */
bool alloc_batch_take(alloc_batch *b);

/* Counts one failed call. */
void alloc_batch_error(alloc_batch *b);

/* The end of an async call's callback: counts it as failed unless ok, then
 * starts the next call of the chain or, when none is left, ends the chain. */
void alloc_batch_chain(alloc_batch *b, bool ok);

/* The end of a coroutine worker. */
void alloc_batch_worker_done(alloc_batch *b);

/*
 * Runs warm-up and measured batches in coroutine mode, then in async mode, on
 * LOOP and prints, per mode:
 *   NAME mode=M calls=N mallocs=K per_call=K/N errors=E[ protocol=grpc]
 * measuring(true/false), when not NULL, is called right before and right
 * after each measured batch; report(), when not NULL, after each line.
 * @return 0 if no call failed, 1 otherwise.
 */
int alloc_bench_modes(arpc_loop *loop, alloc_batch *b, const char *name, bool grpc,
                      void (*measuring)(bool on), void (*report)(void));

/*
 * Creates a one-loop runtime, a server on 127.0.0.1:0 with the services
 * reg() registers, and a channel to it (gRPC when grpc, else native) in
 * b->ch.  Prints "NAME: set-up failed" on failure.
 * @return 0, or -1 on failure.
 */
int alloc_bench_setup(const char *name, bool grpc, int (*reg)(arpc_server *srv), arpc_runtime **rt,
                      arpc_server **srv, alloc_batch *b);

/* Destroys what alloc_bench_setup() created. */
void alloc_bench_teardown(arpc_runtime *rt, arpc_server *srv, alloc_batch *b);

#endif

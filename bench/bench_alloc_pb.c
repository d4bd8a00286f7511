/*
 * bench_alloc_pb: allocations per typed call in steady state (include/arpc/
 * protobuf.h), as bench_alloc counts them for untyped calls: the process
 * interposes malloc/calloc/realloc, runs an in-process server and client on
 * one loop, warms up, then counts allocations over a fixed number of typed
 * unary calls (tpb.Calc/SumAdd, a fixed-size Num and Sum: two varints and a
 * 16-byte string each way) with 64 in flight, client and server together:
 *  - mode=coro: the typed sync call in 64 coroutines, each answer unpacked
 *    into the coroutine's own arena (opts.arena), reset after each call;
 *  - mode=async: the typed async call chained from its callbacks, without an
 *    arena (the answer borrowed for the callback: the loop's scratch arena).
 * The server's handler gets its request in the request's arena and answers
 * with a string from it.  Prints one line per mode:
 *   bench_alloc_pb mode=M calls=N mallocs=K per_call=K/N
 * With the argument `grpc` the channel speaks gRPC and the lines say so.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>
#include <arpc/protobuf.h>

#include "tpb_glue.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

/* The same counting interposer as bench_alloc.c's, without its allocation sites. */
static _Atomic uint64_t allocations;

void *malloc(size_t size)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_realloc(ptr, size);
}

#define DEPTH    64
#define WARMUP   20000
#define MEASURED 200000

typedef struct batch {
    arpc_channel *ch;
    _Atomic int64_t left; /* calls still to start */
    _Atomic int64_t errors;
    _Atomic int next_arena;
    arpc_arena *arenas[DEPTH]; /* created up front: set-up, not per call */
    arpc_wg done;
} batch;

static Tpb__Num request = TPB__NUM__INIT;

static int sum_add(arpc_request *req, const Tpb__Num *in, Tpb__Sum *out, void *user_data)
{
    char *note = arpc_arena_alloc(arpc_request_arena(req), 17);
    if (note == NULL)
        return ARPC_ENOMEM;
    memcpy(note, in->note, 17); /* the request's 16 characters and NUL */
    out->value = in->a + in->b;
    out->note = note;
    return 0;
}

static void coro_worker(void *arg)
{
    batch *b = arg;
    arpc_arena *arena = b->arenas[atomic_fetch_add(&b->next_arena, 1) % DEPTH];
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.arena = arena;
    while (atomic_fetch_sub(&b->left, 1) > 0) {
        Tpb__Sum *rsp;
        if (tpb__calc__arpc_sum_add(b->ch, &request, &opts, &rsp) != 0 || rsp->value != 3)
            atomic_fetch_add(&b->errors, 1);
        arpc_arena_reset(arena);
    }
    arpc_wg_done(&b->done);
}

static void on_sum(int status, const Tpb__Sum *rsp, void *user_data)
{
    batch *b = user_data;
    if (status != 0 || rsp->value != 3)
        atomic_fetch_add(&b->errors, 1);
    if (atomic_fetch_sub(&b->left, 1) > 0) {
        if (tpb__calc__arpc_sum_add_async(b->ch, &request, NULL, on_sum, b) == 0)
            return;
        atomic_fetch_add(&b->errors, 1);
    }
    arpc_wg_done(&b->done);
}

static void start_async_chain(void *arg)
{
    batch *b = arg;
    if (tpb__calc__arpc_sum_add_async(b->ch, &request, NULL, on_sum, b) != 0)
        arpc_wg_done(&b->done);
}

static void run_batch(arpc_loop *loop, batch *b, int64_t calls, int coro_mode)
{
    atomic_store(&b->left, calls);
    arpc_wg_init(&b->done, DEPTH);
    for (int i = 0; i < DEPTH; i++) {
        if (coro_mode)
            arpc_coro_spawn(loop, coro_worker, b);
        else
            arpc_loop_submit(loop, start_async_chain, b);
    }
    arpc_wg_wait(&b->done, -1);
}

int main(int argc, char **argv)
{
    int grpc = argc > 1 && strcmp(argv[1], "grpc") == 0;
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 1;
    arpc_runtime *rt;
    arpc_server *srv;
    batch b = {0};
    tpb__calc__arpc_handlers handlers = {.sum_add = sum_add};
    if (arpc_runtime_create(&opts, &rt) != 0 || arpc_server_create(rt, NULL, &srv) != 0 ||
        tpb__calc__arpc_register(srv, &handlers, NULL) != 0 ||
        arpc_server_listen(srv, "127.0.0.1:0") != 0) {
        fprintf(stderr, "bench_alloc_pb: set-up failed\n");
        return 1;
    }
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(srv));
    arpc_channel_opts ch_opts;
    arpc_channel_opts_init(&ch_opts);
    ch_opts.protocol = grpc ? ARPC_PROTOCOL_GRPC : ARPC_PROTOCOL_NATIVE;
    if (arpc_channel_create(rt, target, &ch_opts, &b.ch) != 0)
        return 1;
    request.a = 1;
    request.b = 2;
    request.note = "sixteen chars ok";
    for (int i = 0; i < DEPTH; i++) {
        if (arpc_arena_create(&b.arenas[i]) != 0)
            return 1;
    }
    arpc_loop *loop = arpc_runtime_loop(rt, 0);
    const char *modes[] = {"coro", "async"};
    int failed = 0;
    for (int m = 0; m < 2; m++) {
        run_batch(loop, &b, WARMUP, m == 0);
        uint64_t before = atomic_load(&allocations);
        run_batch(loop, &b, MEASURED, m == 0);
        uint64_t mallocs = atomic_load(&allocations) - before;
        printf("bench_alloc_pb mode=%s calls=%d mallocs=%llu per_call=%.4f errors=%lld%s\n",
               modes[m], MEASURED, (unsigned long long)mallocs, (double)mallocs / MEASURED,
               (long long)atomic_load(&b.errors), grpc ? " protocol=grpc" : "");
        failed |= atomic_load(&b.errors) != 0;
    }
    for (int i = 0; i < DEPTH; i++)
        arpc_arena_destroy(b.arenas[i]);
    arpc_channel_destroy(b.ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
    return failed;
}

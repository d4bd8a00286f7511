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
 * The interposer and the batches are alloc_bench.c's, shared with bench_alloc.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>
#include <arpc/protobuf.h>

#include "alloc_bench.h"
#include "tpb_glue.h"

static Tpb__Num request = TPB__NUM__INIT;
static arpc_arena *arenas[ALLOC_DEPTH]; /* created up front: set-up, not per call */

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

static int register_calc(arpc_server *srv)
{
    static const tpb__calc__arpc_handlers handlers = {.sum_add = sum_add};
    return tpb__calc__arpc_register(srv, &handlers, NULL);
}

static void coro_worker(void *arg)
{
    alloc_batch *b = arg;
    arpc_arena *arena = arenas[alloc_batch_slot(b)];
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.arena = arena;
    while (alloc_batch_take(b)) {
        Tpb__Sum *rsp;
        if (tpb__calc__arpc_sum_add(b->ch, &request, &opts, &rsp) != 0 || rsp->value != 3)
            alloc_batch_error(b);
        arpc_arena_reset(arena);
    }
    alloc_batch_worker_done(b);
}

static void on_sum(int status, const Tpb__Sum *rsp, void *user_data)
{
    alloc_batch_chain(user_data, status == 0 && rsp->value == 3);
}

static int start_call(alloc_batch *b)
{
    return tpb__calc__arpc_sum_add_async(b->ch, &request, NULL, on_sum, b);
}

int main(int argc, char **argv)
{
    bool grpc = argc > 1 && strcmp(argv[1], "grpc") == 0;
    arpc_runtime *rt;
    arpc_server *srv;
    alloc_batch b = {.coro_worker = coro_worker, .start_call = start_call};
    if (alloc_bench_setup("bench_alloc_pb", grpc, register_calc, &rt, &srv, &b) != 0)
        return 1;
    request.a = 1;
    request.b = 2;
    request.note = "sixteen chars ok";
    for (int i = 0; i < ALLOC_DEPTH; i++) {
        if (arpc_arena_create(&arenas[i]) != 0)
            return 1;
    }
    int failed =
        alloc_bench_modes(arpc_runtime_loop(rt, 0), &b, "bench_alloc_pb", grpc, NULL, NULL);
    for (int i = 0; i < ALLOC_DEPTH; i++)
        arpc_arena_destroy(arenas[i]);
    alloc_bench_teardown(rt, srv, &b);
    return failed;
}

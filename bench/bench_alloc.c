/*
 * bench_alloc: proves "no malloc per request in steady state".  The process
 * interposes malloc/calloc/realloc (every allocation of the library, of libc
 * and of the benchmark itself goes through the counters), runs an in-process
 * server and client on one loop, warms up, then counts allocations over a
 * fixed number of echo calls with 64 in flight, in coroutine and in callback
 * mode.  Prints one line per mode:
 *   bench_alloc mode=M calls=N mallocs=K per_call=K/N
 * With the argument `grpc` the channel speaks gRPC (ARPC_PROTOCOL_GRPC, the
 * same server port) and the lines say protocol=grpc.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

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

#define DEPTH       64
#define WARMUP      20000
#define MEASURED    200000
#define PAYLOAD_LEN 64

typedef struct batch {
    arpc_channel *ch;
    _Atomic int64_t left; /* calls still to start */
    _Atomic int64_t errors;
    _Atomic int next_buf;
    arpc_buf *rsp[DEPTH]; /* created up front: set-up, not per call */
    arpc_wg done;
} batch;

static char payload[PAYLOAD_LEN];

static int echo(arpc_request *req, void *user_data)
{
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

static void coro_worker(void *arg)
{
    batch *b = arg;
    arpc_buf *rsp = b->rsp[atomic_fetch_add(&b->next_buf, 1) % DEPTH];
    while (atomic_fetch_sub(&b->left, 1) > 0) {
        arpc_buf_clear(rsp);
        if (arpc_call(b->ch, "echo", payload, sizeof(payload), NULL, rsp) != 0)
            atomic_fetch_add(&b->errors, 1);
    }
    arpc_wg_done(&b->done);
}

static void on_async_done(int status, const void *rsp, size_t len, void *user_data)
{
    batch *b = user_data;
    if (status != 0)
        atomic_fetch_add(&b->errors, 1);
    if (atomic_fetch_sub(&b->left, 1) > 0) {
        if (arpc_call_async(b->ch, "echo", payload, sizeof(payload), NULL, on_async_done, b) == 0)
            return;
        atomic_fetch_add(&b->errors, 1);
    }
    arpc_wg_done(&b->done);
}

static void start_async_chain(void *arg)
{
    batch *b = arg;
    if (arpc_call_async(b->ch, "echo", payload, sizeof(payload), NULL, on_async_done, b) != 0)
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
    if (arpc_runtime_create(&opts, &rt) != 0 || arpc_server_create(rt, NULL, &srv) != 0 ||
        arpc_server_register(srv, "echo", echo, NULL) != 0 ||
        arpc_server_listen(srv, "127.0.0.1:0") != 0) {
        fprintf(stderr, "bench_alloc: set-up failed\n");
        return 1;
    }
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(srv));
    arpc_channel_opts ch_opts;
    arpc_channel_opts_init(&ch_opts);
    ch_opts.protocol = grpc ? ARPC_PROTOCOL_GRPC : ARPC_PROTOCOL_NATIVE;
    if (arpc_channel_create(rt, target, &ch_opts, &b.ch) != 0)
        return 1;
    memset(payload, 'x', sizeof(payload));
    for (int i = 0; i < DEPTH; i++) {
        if (arpc_buf_create(&b.rsp[i]) != 0)
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
        printf("bench_alloc mode=%s calls=%d mallocs=%llu per_call=%.4f errors=%lld%s\n", modes[m],
               MEASURED, (unsigned long long)mallocs, (double)mallocs / MEASURED,
               (long long)atomic_load(&b.errors), grpc ? " protocol=grpc" : "");
        failed |= atomic_load(&b.errors) != 0;
    }
    for (int i = 0; i < DEPTH; i++)
        arpc_buf_destroy(b.rsp[i]);
    arpc_channel_destroy(b.ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
    return failed;
}

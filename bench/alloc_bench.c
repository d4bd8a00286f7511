/* alloc_bench.c: the counting interposer and batch machinery of bench_alloc and
 * bench_alloc_pb (alloc_bench.h). */
#include "alloc_bench.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

static _Atomic uint64_t allocations;
void (*_Atomic alloc_hook)(void);

static void count_alloc(void)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    void (*hook)(void) = atomic_load_explicit(&alloc_hook, memory_order_relaxed);
    if (hook != NULL)
        hook();
}

void *malloc(size_t size)
{
    count_alloc();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    count_alloc();
    return __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size)
{
    count_alloc();
    return __libc_realloc(ptr, size);
}

uint64_t alloc_count(void)
{
    return atomic_load(&allocations);
}

int alloc_batch_slot(alloc_batch *b)
{
    return atomic_fetch_add(&b->next_slot, 1) % ALLOC_DEPTH;
}

bool alloc_batch_take(alloc_batch *b)
{
    return atomic_fetch_sub(&b->left, 1) > 0;
}

void alloc_batch_error(alloc_batch *b)
{
    atomic_fetch_add(&b->errors, 1);
}

void alloc_batch_chain(alloc_batch *b, bool ok)
{
    if (!ok)
        alloc_batch_error(b);
    if (alloc_batch_take(b)) {
        if (b->start_call(b) == 0)
            return;
        alloc_batch_error(b);
    }
    arpc_wg_done(&b->done);
}

void alloc_batch_worker_done(alloc_batch *b)
{
    arpc_wg_done(&b->done);
}

static void start_async_chain(void *arg)
{
    alloc_batch *b = arg;
    if (b->start_call(b) != 0)
        arpc_wg_done(&b->done);
}

static void run_batch(arpc_loop *loop, alloc_batch *b, int64_t calls, bool coro_mode)
{
    atomic_store(&b->left, calls);
    arpc_wg_init(&b->done, ALLOC_DEPTH);
    for (int i = 0; i < ALLOC_DEPTH; i++) {
        if (coro_mode)
            arpc_coro_spawn(loop, b->coro_worker, b);
        else
            arpc_loop_submit(loop, start_async_chain, b);
    }
    arpc_wg_wait(&b->done, -1);
}

int alloc_bench_modes(arpc_loop *loop, alloc_batch *b, const char *name, bool grpc,
                      void (*measuring)(bool on), void (*report)(void))
{
    const char *modes[] = {"coro", "async"};
    int failed = 0;
    for (int m = 0; m < 2; m++) {
        run_batch(loop, b, ALLOC_WARMUP, m == 0);
        uint64_t before = alloc_count();
        if (measuring != NULL)
            measuring(true);
        run_batch(loop, b, ALLOC_MEASURED, m == 0);
        if (measuring != NULL)
            measuring(false);
        uint64_t mallocs = alloc_count() - before;
        printf("%s mode=%s calls=%d mallocs=%llu per_call=%.4f errors=%lld%s\n", name, modes[m],
               ALLOC_MEASURED, (unsigned long long)mallocs, (double)mallocs / ALLOC_MEASURED,
               (long long)atomic_load(&b->errors), grpc ? " protocol=grpc" : "");
        failed |= atomic_load(&b->errors) != 0;
        if (report != NULL)
            report();
    }
    return failed;
}

int alloc_bench_setup(const char *name, bool grpc, int (*reg)(arpc_server *srv), arpc_runtime **rt,
                      arpc_server **srv, alloc_batch *b)
{
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 1;
    if (arpc_runtime_create(&opts, rt) != 0 || arpc_server_create(*rt, NULL, srv) != 0 ||
        reg(*srv) != 0 || arpc_server_listen(*srv, "127.0.0.1:0") != 0) {
        fprintf(stderr, "%s: set-up failed\n", name);
        return -1;
    }
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(*srv));
    arpc_channel_opts ch_opts;
    arpc_channel_opts_init(&ch_opts);
    ch_opts.protocol = grpc ? ARPC_PROTOCOL_GRPC : ARPC_PROTOCOL_NATIVE;
    return arpc_channel_create(*rt, target, &ch_opts, &b->ch) == 0 ? 0 : -1;
}

void alloc_bench_teardown(arpc_runtime *rt, arpc_server *srv, alloc_batch *b)
{
    arpc_channel_destroy(b->ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

/*
 * Coroutine switch cost.
 *
 *   raw:   two contexts ping-pong through arpc__ctx_switch() directly; one
 *          line per switch (the floor the backend sets).
 *   yield: N coroutines on one loop take turns with arpc_coro_yield(); each
 *          yield is two switches (coroutine -> scheduler -> next coroutine)
 *          plus the scheduler's bookkeeping, and every pass over the ready
 *          coroutines is one loop iteration (which polls epoll once).
 *
 * Usage: bench-coro-switch [iterations]   (default 10,000,000; ucontext 1,000,000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <arpc/coro.h>
#include <arpc/err.h>
#include <arpc/loop.h>

#include "runtime/arch/switch.h"
#include "runtime_bench.h"

#ifndef BENCH_BACKEND
#define BENCH_BACKEND "asm"
#endif

/* ---- raw context switch -------------------------------------------------------------- */

static arpc__ctx main_ctx;
static arpc__ctx peer_ctx;

static void peer_main(void *arg)
{
    for (;;)
        arpc__ctx_switch(&peer_ctx, &main_ctx);
}

static void bench_raw(long iterations)
{
    size_t size = 256 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    arpc__ctx_make(&peer_ctx, stack, size, peer_main, NULL);
    for (long i = 0; i < iterations / 10; i++) /* warm up */
        arpc__ctx_switch(&main_ctx, &peer_ctx);
    int64_t start = arpc__now_ns();
    for (long i = 0; i < iterations; i++)
        arpc__ctx_switch(&main_ctx, &peer_ctx);
    int64_t elapsed = arpc__now_ns() - start;
    printf("coro_switch backend=%s raw: %.1f ns/switch (%ld round trips)\n", BENCH_BACKEND,
           (double)elapsed / (2.0 * (double)iterations), iterations);
    munmap(stack, size);
}

/* ---- yield through the scheduler ----------------------------------------------------- */

typedef struct yield_bench {
    long yields_each;
    int coros;
    int finished;
    int64_t start;
    int64_t end;
} yield_bench;

static void yielder(void *arg)
{
    yield_bench *b = arg;
    if (b->start == 0)
        b->start = arpc__now_ns();
    for (long i = 0; i < b->yields_each; i++)
        arpc_coro_yield();
    if (++b->finished == b->coros) {
        b->end = arpc__now_ns();
        arpc_loop_stop(arpc_loop_current());
    }
}

static void bench_yield(int coros, long total_yields)
{
    arpc_loop *loop = NULL;
    yield_bench b = {total_yields / coros, coros, 0, 0, 0};
    check(arpc_loop_create(NULL, &loop), "arpc_loop_create");
    for (int i = 0; i < coros; i++)
        check(arpc_coro_spawn(loop, yielder, &b), "arpc_coro_spawn");
    check(arpc_loop_run(loop), "arpc_loop_run");
    arpc_loop_destroy(loop);
    double yields = (double)b.yields_each * coros;
    double per_yield = (double)(b.end - b.start) / yields;
    printf("coro_switch backend=%s yield (%d coroutines): %.1f ns/yield = %.1f ns/switch "
           "(%.0f yields)\n",
           BENCH_BACKEND, coros, per_yield, per_yield / 2, yields);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 0;
    if (iterations <= 0)
        iterations = strcmp(BENCH_BACKEND, "ucontext") == 0 ? 1000000 : 10000000;
    bench_raw(iterations);
    bench_yield(2, iterations);
    bench_yield(100, iterations);
    return 0;
}

/*
 * Timer add + cancel cost with 10,000 timers already in the loop's heap
 * (deadlines spread over 100-200 s, so none fires during the run).
 *
 *   immediate: add a timer and cancel it right away (a call that completes
 *              well before its deadline; the common case).
 *   fifo:      add a timer and cancel the oldest of the last 10,000 (every
 *              cancel removes from the middle of the heap).
 *
 * Usage: bench-timer [pairs]   (default 2,000,000)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <arpc/err.h>
#include <arpc/loop.h>
#include <arpc/timer.h>

#include "runtime_bench.h"

#define PRELOADED 10000

static long pairs = 2000000;
static uint64_t rng = 88172645463325252ull;

static int64_t random_delay_ms(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return 100000 + (int64_t)(rng % 100000);
}

static void never(void *arg)
{
    fprintf(stderr, "a benchmark timer fired\n");
    abort();
}

static void bench_immediate(arpc_loop *loop, bool print)
{
    arpc_timer_id id;
    int64_t start = arpc__now_ns();
    for (long i = 0; i < pairs; i++) {
        check(arpc_timer_add(loop, random_delay_ms(), never, NULL, &id), "arpc_timer_add");
        check(arpc_timer_cancel(loop, id), "arpc_timer_cancel");
    }
    int64_t elapsed = arpc__now_ns() - start;
    if (!print)
        return;
    printf("timer add+cancel immediate (%d in heap): %.1f ns/pair (%ld pairs)\n", PRELOADED,
           (double)elapsed / (double)pairs, pairs);
}

static void bench_fifo(arpc_loop *loop, arpc_timer_id *ring)
{
    int64_t start = arpc__now_ns();
    for (long i = 0; i < pairs; i++) {
        size_t slot = (size_t)i % PRELOADED;
        arpc_timer_id id;
        check(arpc_timer_add(loop, random_delay_ms(), never, NULL, &id), "arpc_timer_add");
        check(arpc_timer_cancel(loop, ring[slot]), "arpc_timer_cancel");
        ring[slot] = id;
    }
    int64_t elapsed = arpc__now_ns() - start;
    printf("timer add+cancel fifo (%d in heap): %.1f ns/pair (%ld pairs)\n", PRELOADED,
           (double)elapsed / (double)pairs, pairs);
}

/* Runs on the loop thread: timers belong to their loop. */
static void run(void *arg)
{
    arpc_loop *loop = arg;
    static arpc_timer_id ring[PRELOADED];
    for (int i = 0; i < PRELOADED; i++)
        check(arpc_timer_add(loop, random_delay_ms(), never, NULL, &ring[i]), "arpc_timer_add");
    bench_immediate(loop, false); /* warm up: slot chunks, heap array, caches */
    bench_immediate(loop, true);
    bench_fifo(loop, ring);
    arpc_loop_stop(loop);
}

int main(int argc, char **argv)
{
    if (argc > 1 && atol(argv[1]) > 0)
        pairs = atol(argv[1]);
    arpc_loop *loop = NULL;
    check(arpc_loop_create(NULL, &loop), "arpc_loop_create");
    check(arpc_loop_submit(loop, run, loop), "arpc_loop_submit");
    check(arpc_loop_run(loop), "arpc_loop_run");
    arpc_loop_destroy(loop);
    return 0;
}

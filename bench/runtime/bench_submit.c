/*
 * Cross-thread submission to a loop.
 *
 *   throughput: 1 and 2 producer threads submit as fast as they can to one
 *               running loop (default inbox ring); tasks/s counts from the
 *               start signal to the last task having run on the loop, and
 *               allocs/task shows how often the ring overflowed.
 *   wake-up:    a thread submits one task to a loop that sleeps in epoll_wait
 *               and measures until the task runs (one eventfd write, one
 *               wake-up); p50/p99 over 10,000 samples.
 *
 * Usage: bench-submit [tasks_per_producer]   (default 5,000,000)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <arpc/err.h>
#include <arpc/loop.h>

#include "base/alloc.h"
#include "runtime_bench.h"

#define SAMPLES 10000

static long per_producer = 5000000;

/* ---- throughput ---------------------------------------------------------------------- */

typedef struct flood {
    arpc_loop *loop;
    long total;
    long ran; /* loop thread only */
    _Atomic int64_t end_ns;
    _Atomic int go;
} flood;

static void flood_task(void *arg)
{
    flood *f = arg;
    if (++f->ran == f->total)
        atomic_store(&f->end_ns, arpc__now_ns());
}

static void *producer(void *arg)
{
    flood *f = arg;
    while (!atomic_load(&f->go))
        ;
    for (long i = 0; i < per_producer; i++)
        check(arpc_loop_submit(f->loop, flood_task, f), "arpc_loop_submit");
    return NULL;
}

static void bench_throughput(int producers)
{
    flood f = {0};
    pthread_t threads[8];
    f.total = per_producer * producers;
    check(arpc_loop_create(NULL, &f.loop), "arpc_loop_create");
    check(arpc_loop_start(f.loop), "arpc_loop_start");
    for (int i = 0; i < producers; i++)
        pthread_create(&threads[i], NULL, producer, &f);
    usleep(10000);
    uint64_t allocs = arpc__alloc_count();
    int64_t start = arpc__now_ns();
    atomic_store(&f.go, 1);
    for (int i = 0; i < producers; i++)
        pthread_join(threads[i], NULL);
    while (atomic_load(&f.end_ns) == 0)
        usleep(100);
    double seconds = (double)(atomic_load(&f.end_ns) - start) / 1e9;
    double per_task = (double)(arpc__alloc_count() - allocs) / (double)f.total;
    printf("submit throughput (%d producer%s): %.2f M tasks/s (%ld tasks, %.3f allocs/task)\n",
           producers, producers > 1 ? "s" : "", (double)f.total / seconds / 1e6, f.total, per_task);
    arpc_loop_destroy(f.loop);
}

/* ---- wake-up latency ----------------------------------------------------------------- */

typedef struct wake {
    _Atomic int64_t ran_ns;
} wake;

static void wake_task(void *arg)
{
    atomic_store(&((wake *)arg)->ran_ns, arpc__now_ns());
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void bench_wakeup(void)
{
    static int64_t samples[SAMPLES];
    arpc_loop *loop = NULL;
    wake w;
    check(arpc_loop_create(NULL, &loop), "arpc_loop_create");
    check(arpc_loop_start(loop), "arpc_loop_start");
    for (int i = -100; i < SAMPLES; i++) { /* the first 100 warm up */
        /* Give the loop time to fall asleep in epoll_wait again. */
        usleep(200);
        atomic_store(&w.ran_ns, 0);
        int64_t start = arpc__now_ns();
        check(arpc_loop_submit(loop, wake_task, &w), "arpc_loop_submit");
        int64_t ran;
        while ((ran = atomic_load(&w.ran_ns)) == 0)
            ;
        if (i >= 0)
            samples[i] = ran - start;
    }
    arpc_loop_destroy(loop);
    qsort(samples, SAMPLES, sizeof(samples[0]), compare_i64);
    printf("submit wake-up latency (sleeping loop): p50 %.1f us, p99 %.1f us, max %.1f us "
           "(%d samples)\n",
           (double)samples[SAMPLES / 2] / 1e3, (double)samples[SAMPLES * 99 / 100] / 1e3,
           (double)samples[SAMPLES - 1] / 1e3, SAMPLES);
}

int main(int argc, char **argv)
{
    if (argc > 1 && atol(argv[1]) > 0)
        per_producer = atol(argv[1]);
    bench_throughput(1);
    bench_throughput(2);
    bench_wakeup();
    return 0;
}

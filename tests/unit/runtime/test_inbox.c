/*
 * The MPSC inbox under load.  Proves: 4 producer threads each submitting
 * 100,000 tasks (arpc_loop_submit) to two running loops lose none, run none
 * twice, and every loop runs each producer's tasks in submission order; the
 * same holds when a 4-slot ring forces most submissions through the locked
 * overflow list, and for submissions queued before the loop starts.  A
 * white-box test stalls a producer between claiming a ring cell and filling
 * it while others spill to the overflow: the spilled tasks must still run
 * after the ring tasks that were claimed before them.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <arpc/err.h>
#include <arpc/loop.h>

#include "base/alloc.h"
#include "runtime/inbox.h"
#include "runtime/loop.h"
#include "test.h"

#define PRODUCERS 4
#define LOOPS     2
#if defined(__SANITIZE_THREAD__)
#define PER_PRODUCER 20000
#else
#define PER_PRODUCER 100000
#endif

typedef struct task_slot {
    uint16_t producer;
    uint32_t seq;
} task_slot;

/* Shared by the loops: each (producer, seq) is sent to one loop only, and
 * each loop owns its row of last_seq, so the task bodies need no locks. */
static task_slot slots[PRODUCERS][PER_PRODUCER];
static uint8_t counts[PRODUCERS][PER_PRODUCER];
static int64_t last_seq[LOOPS][PRODUCERS];
static arpc_loop *loops[LOOPS];
static int loop_count;
static _Atomic long total_run;
static _Atomic long order_violations;
static pthread_barrier_t start_line;

static int current_loop_index(void)
{
    arpc_loop *self = arpc_loop_current();
    for (int i = 0; i < loop_count; i++) {
        if (loops[i] == self)
            return i;
    }
    test_fail(__FILE__, __LINE__, "task ran outside the test loops");
}

static void count_task(void *arg)
{
    task_slot *s = arg;
    int l = current_loop_index();
    counts[s->producer][s->seq]++;
    if ((int64_t)s->seq <= last_seq[l][s->producer])
        atomic_fetch_add_explicit(&order_violations, 1, memory_order_relaxed);
    last_seq[l][s->producer] = s->seq;
    atomic_fetch_add_explicit(&total_run, 1, memory_order_release);
}

static void *producer_main(void *arg)
{
    int p = (int)(intptr_t)arg;
    pthread_barrier_wait(&start_line);
    for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
        task_slot *s = &slots[p][seq];
        ASSERT_OK(arpc_loop_submit(loops[seq % (uint32_t)loop_count], count_task, s));
    }
    return NULL;
}

static bool all_ran(void *arg)
{
    return atomic_load_explicit(&total_run, memory_order_acquire) == *(long *)arg;
}

static void reset_state(int nloops)
{
    memset(counts, 0, sizeof(counts));
    for (int l = 0; l < LOOPS; l++) {
        for (int p = 0; p < PRODUCERS; p++)
            last_seq[l][p] = -1;
    }
    for (int p = 0; p < PRODUCERS; p++) {
        for (uint32_t seq = 0; seq < PER_PRODUCER; seq++)
            slots[p][seq] = (task_slot){(uint16_t)p, seq};
    }
    atomic_store(&total_run, 0);
    atomic_store(&order_violations, 0);
    loop_count = nloops;
}

static void check_exactly_once(long expected)
{
    ASSERT_EQ(atomic_load(&total_run), expected);
    ASSERT_EQ(atomic_load(&order_violations), 0);
    for (int p = 0; p < PRODUCERS; p++) {
        for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
            if (counts[p][seq] != 1)
                test_fail(__FILE__, __LINE__, "task (%d, %u) ran %u times", p, seq, counts[p][seq]);
        }
    }
}

/* Runs PRODUCERS threads against `nloops` started loops with the given ring size. */
static void run_producers(int nloops, size_t inbox_capacity)
{
    arpc_loop_opts opts;
    pthread_t threads[PRODUCERS];
    long expected = (long)PRODUCERS * PER_PRODUCER;
    reset_state(nloops);
    arpc_loop_opts_init(&opts);
    opts.inbox_capacity = inbox_capacity;
    for (int i = 0; i < nloops; i++) {
        ASSERT_OK(arpc_loop_create(&opts, &loops[i]));
        ASSERT_OK(arpc_loop_start(loops[i]));
    }
    pthread_barrier_init(&start_line, NULL, PRODUCERS);
    for (int p = 0; p < PRODUCERS; p++)
        ASSERT_EQ(pthread_create(&threads[p], NULL, producer_main, (void *)(intptr_t)p), 0);
    for (int p = 0; p < PRODUCERS; p++)
        pthread_join(threads[p], NULL);
    pthread_barrier_destroy(&start_line);
    ASSERT_TRUE(wait_until(all_ran, &expected, 60000));
    for (int i = 0; i < nloops; i++)
        arpc_loop_destroy(loops[i]);
    check_exactly_once(expected);
}

static void test_four_producers_two_loops(void)
{
    run_producers(LOOPS, 65536);
}

static void test_four_producers_tiny_ring(void)
{
    /* Every spill allocates one overflow node, so the count proves the
     * overflow path carried part of the traffic. */
    uint64_t allocs = arpc__alloc_count();
    run_producers(1, 4);
    uint64_t spilled = arpc__alloc_count() - allocs;
    fprintf(stderr, "     %" PRIu64 " allocations (overflow nodes) for %d tasks\n", spilled,
            PRODUCERS * PER_PRODUCER);
    ASSERT_GT(spilled, 100);
    run_producers(LOOPS, 4);
}

/* ---- submissions before the loop runs ------------------------------------------------ */

#define N_EARLY 1000

static int early_order[N_EARLY];
static int early_ran;
static int early_index[N_EARLY];

static void early_task(void *arg)
{
    early_order[early_ran++] = *(int *)arg;
}

static void test_overflow_before_start(void)
{
    arpc_loop_opts opts;
    arpc_loop *loop = NULL;
    arpc_loop_opts_init(&opts);
    opts.inbox_capacity = 4;
    ASSERT_OK(arpc_loop_create(&opts, &loop));
    for (int i = 0; i < N_EARLY; i++) {
        early_index[i] = i;
        ASSERT_OK(arpc_loop_submit(loop, early_task, &early_index[i]));
    }
    ASSERT_EQ(loop->inbox.mask + 1, 4);
    ASSERT_EQ(atomic_load(&loop->inbox.overflow_count), N_EARLY - 4);
    /* Work queued before a stop still runs. */
    arpc_loop_stop(loop);
    ASSERT_OK(arpc_loop_run(loop));
    arpc_loop_destroy(loop);
    ASSERT_EQ(early_ran, N_EARLY);
    for (int i = 0; i < N_EARLY; i++)
        ASSERT_EQ(early_order[i], i);
}

/* ---- a producer stalled between claim and publish ------------------------------------ */

static char trace[16];
static int trace_len;

static void trace_task(void *a, void *b)
{
    trace[trace_len++] = (char)(intptr_t)a;
}

typedef struct stalled {
    arpc__inbox *inbox;
    size_t pos;
} stalled;

/* Fills the claimed cell late, as a producer preempted after its CAS would. */
static void *publish_late(void *arg)
{
    stalled *s = arg;
    usleep(20000);
    arpc__inbox_cell *cell = &s->inbox->cells[s->pos & s->inbox->mask];
    cell->fn = trace_task;
    cell->a = (void *)(intptr_t)'S';
    cell->b = NULL;
    atomic_store_explicit(&cell->seq, s->pos + 1, memory_order_release);
    return NULL;
}

static bool drained_all(void *arg)
{
    arpc__inbox_drain(arg, SIZE_MAX);
    return trace_len == 5;
}

static void test_spill_waits_for_stalled_claim(void)
{
    arpc__inbox inbox;
    pthread_t thread;
    ASSERT_OK(arpc__inbox_init(&inbox, 4));
    stalled s = {&inbox, atomic_fetch_add(&inbox.tail, 1)};
    ASSERT_OK(arpc__inbox_push(&inbox, trace_task, (void *)(intptr_t)'a', NULL));
    ASSERT_OK(arpc__inbox_push(&inbox, trace_task, (void *)(intptr_t)'b', NULL));
    ASSERT_OK(arpc__inbox_push(&inbox, trace_task, (void *)(intptr_t)'c', NULL));
    /* The ring is full: this one spills. */
    ASSERT_OK(arpc__inbox_push(&inbox, trace_task, (void *)(intptr_t)'d', NULL));
    ASSERT_EQ(atomic_load(&inbox.overflow_count), 1);
    ASSERT_EQ(pthread_create(&thread, NULL, publish_late, &s), 0);
    ASSERT_TRUE(wait_until(drained_all, &inbox, 10000));
    pthread_join(thread, NULL);
    trace[trace_len] = '\0';
    ASSERT_STREQ(trace, "Sabcd");
    arpc__inbox_fini(&inbox);
}

int main(void)
{
    RUN_TEST(test_four_producers_two_loops);
    RUN_TEST(test_four_producers_tiny_ring);
    RUN_TEST(test_overflow_before_start);
    RUN_TEST(test_spill_waits_for_stalled_claim);
    return 0;
}

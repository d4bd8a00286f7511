/*
 * bench_memory: resident memory per parked coroutine and per idle connection.
 *   1. 100,000 coroutines at the default stack size, each parked on its own
 *      arpc_event: RSS growth / 100,000 (target < 12 KiB).
 *   2. 10,000 idle connections, client and server in this one process (each
 *      channel made one call, so its connection is open, then stays idle with
 *      heartbeats on): RSS growth / 10,000 (target < 16 KiB, both sides).
 * Each stack is two memory mappings (guard page + stack), so 100,000
 * coroutines need vm.max_map_count above 200,000; as root the benchmark raises
 * it (and says so), otherwise it measures as many coroutines as fit.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <arpc/arpc.h>

#define COROUTINES  100000
#define CONNECTIONS 10000

static long rss_kib(void)
{
    long pages = 0;
    long resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long read_long(const char *path)
{
    long value = 0;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &value) != 1)
            value = 0;
        fclose(f);
    }
    return value;
}

static int coroutine_budget(void)
{
    const char *path = "/proc/sys/vm/max_map_count";
    long limit = read_long(path);
    long need = 2L * COROUTINES + 20000;
    if (limit < need) {
        FILE *f = fopen(path, "w");
        if (f != NULL) {
            fprintf(f, "%ld\n", need);
            fclose(f);
            printf("bench_memory: raised vm.max_map_count from %ld to %ld\n", limit, need);
            limit = read_long(path);
        }
    }
    long fit = (limit - 20000) / 2;
    return fit < COROUTINES ? (int)fit : COROUTINES;
}

typedef struct parked {
    arpc_event *events;
    arpc_wg parked;
    arpc_wg finished;
    _Atomic int next;
} parked;

static void park_body(void *arg)
{
    parked *p = arg;
    int index = atomic_fetch_add(&p->next, 1);
    arpc_wg_done(&p->parked);
    arpc_event_wait(&p->events[index], -1);
    arpc_wg_done(&p->finished);
}

static void measure_coroutines(void)
{
    int count = coroutine_budget();
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 1;
    arpc_runtime *rt;
    if (arpc_runtime_create(&opts, &rt) != 0)
        exit(1);
    parked p;
    p.events = calloc((size_t)count, sizeof(*p.events));
    for (int i = 0; i < count; i++)
        arpc_event_init(&p.events[i]);
    atomic_init(&p.next, 0);
    arpc_wg_init(&p.parked, count);
    arpc_wg_init(&p.finished, count);
    long before = rss_kib();
    for (int i = 0; i < count; i++) {
        if (arpc_runtime_spawn(rt, park_body, &p) != 0) {
            fprintf(stderr, "bench_memory: spawn %d failed\n", i);
            exit(1);
        }
    }
    arpc_wg_wait(&p.parked, -1);
    long after = rss_kib();
    printf("bench_memory coroutines=%d stack_kib=%zu rss_growth_kib=%ld per_coroutine_kib=%.2f\n",
           count, opts.loop.coro_stack_size / 1024, after - before,
           (double)(after - before) / count);
    for (int i = 0; i < count; i++)
        arpc_event_signal(&p.events[i]);
    arpc_wg_wait(&p.finished, -1);
    arpc_runtime_destroy(rt);
    free(p.events);
}

static int echo(arpc_request *req, void *user_data)
{
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

static void measure_connections(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int count = CONNECTIONS;
    if (rl.rlim_cur < 2 * CONNECTIONS + 100)
        count = (int)(rl.rlim_cur - 100) / 2;
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 2;
    arpc_runtime *rt;
    arpc_server *srv;
    if (arpc_runtime_create(&opts, &rt) != 0 || arpc_server_create(rt, NULL, &srv) != 0 ||
        arpc_server_register(srv, "echo", echo, NULL) != 0 ||
        arpc_server_listen(srv, "127.0.0.1:0") != 0)
        exit(1);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(srv));
    arpc_channel **channels = calloc((size_t)count, sizeof(*channels));
    arpc_buf *rsp;
    arpc_buf_create(&rsp);
    long before = rss_kib();
    for (int i = 0; i < count; i++) {
        arpc_buf_clear(rsp);
        if (arpc_channel_create(rt, target, NULL, &channels[i]) != 0 ||
            arpc_call(channels[i], "echo", "x", 1, NULL, rsp) != 0) {
            fprintf(stderr, "bench_memory: connection %d failed\n", i);
            exit(1);
        }
    }
    arpc_coro_sleep_ms(1500); /* a few heartbeat rounds on idle connections */
    long after = rss_kib();
    arpc_server_stats stats;
    arpc_server_get_stats(srv, &stats);
    printf("bench_memory connections=%d server_side_open=%llu rss_growth_kib=%ld "
           "per_connection_kib=%.2f (client and server together)\n",
           count, (unsigned long long)stats.connections, after - before,
           (double)(after - before) / count);
    for (int i = 0; i < count; i++)
        arpc_channel_destroy(channels[i]);
    free(channels);
    arpc_buf_destroy(rsp);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    measure_coroutines();
    measure_connections();
    return 0;
}

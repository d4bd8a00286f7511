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
 *
 * With ARPC_ALLOC_SITES=1 in the environment, every allocation of the
 * measured runs is also counted by its call stack (the SITE_DEPTH innermost
 * return addresses), and the busiest stacks are printed after each mode,
 * symbolized by addr2line: where the mallocs per call come from.
 */
#include <dlfcn.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

static _Atomic uint64_t allocations;

/* ---- allocation sites (ARPC_ALLOC_SITES=1) ---- */

#define SITE_DEPTH 8   /* frames kept: the hook, arpc__malloc, the callers */
#define SITE_SLOTS 512 /* distinct stacks; more are counted as "other" */

typedef struct site {
    void *pc[SITE_DEPTH];
    int depth;
    uint64_t count;
} site;

static site sites[SITE_SLOTS];
static uint64_t sites_other;
static _Atomic int sites_on;
static _Thread_local int in_hook;

/* Counts the current stack.  Called with sites_on set, which only the
 * single-loop measured runs do (the table is not locked: one loop thread
 * allocates; a rare allocation of the main thread may race, which only
 * blurs a count). */
static void site_note(void)
{
    void *pc[SITE_DEPTH];
    in_hook = 1;
    int n = backtrace(pc, SITE_DEPTH);
    in_hook = 0;
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++)
        h = (h ^ (uint64_t)(uintptr_t)pc[i]) * 1099511628211ull;
    for (unsigned probe = 0; probe < SITE_SLOTS; probe++) {
        site *s = &sites[(h + probe) % SITE_SLOTS];
        if (s->count == 0) {
            memcpy(s->pc, pc, sizeof(pc));
            s->depth = n;
        } else if (s->depth != n || memcmp(s->pc, pc, (size_t)n * sizeof(void *)) != 0) {
            continue;
        }
        s->count++;
        return;
    }
    sites_other++;
}

static void count_alloc(void)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    if (atomic_load_explicit(&sites_on, memory_order_relaxed) && !in_hook)
        site_note();
}

static int site_cmp(const void *a, const void *b)
{
    const site *x = a, *y = b;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

/* One frame as "function at file:line" through addr2line (PIE: the
 * address relative to the object it lies in). */
static void print_frame(void *pc)
{
    Dl_info info;
    if (dladdr(pc, &info) == 0 || info.dli_fname == NULL) {
        printf("      %p\n", pc);
        return;
    }
    uintptr_t off = (uintptr_t)pc - (uintptr_t)info.dli_fbase - 1; /* the call, not after it */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "addr2line -f -s -e '%s' 0x%llx 2>/dev/null | paste -sd' '",
             info.dli_fname, (unsigned long long)off);
    FILE *f = popen(cmd, "r");
    char line[512] = "";
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) == NULL)
            line[0] = '\0';
        pclose(f);
    }
    line[strcspn(line, "\n")] = '\0';
    printf("      %s\n", line[0] ? line : info.dli_fname);
}

/* Prints the stacks with at least 1/1000 of the measured calls' allocations. */
static void sites_report(int64_t calls)
{
    qsort(sites, SITE_SLOTS, sizeof(site), site_cmp);
    for (int i = 0; i < SITE_SLOTS && sites[i].count * 1000 >= (uint64_t)calls; i++) {
        printf("  site %d: %llu (%.4f per call)\n", i, (unsigned long long)sites[i].count,
               (double)sites[i].count / (double)calls);
        for (int d = 2; d < sites[i].depth; d++) /* skip site_note's and the hook's frames */
            print_frame(sites[i].pc[d]);
    }
    if (sites_other)
        printf("  other stacks: %llu\n", (unsigned long long)sites_other);
    memset(sites, 0, sizeof(sites));
    sites_other = 0;
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
    const char *want_sites = getenv("ARPC_ALLOC_SITES");
    bool by_site = want_sites != NULL && strcmp(want_sites, "1") == 0;
    if (by_site) {
        void *pc[SITE_DEPTH];
        (void)backtrace(pc, SITE_DEPTH); /* its first call loads libgcc_s: not in the count */
    }
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
        atomic_store(&sites_on, by_site);
        run_batch(loop, &b, MEASURED, m == 0);
        atomic_store(&sites_on, 0);
        uint64_t mallocs = atomic_load(&allocations) - before;
        printf("bench_alloc mode=%s calls=%d mallocs=%llu per_call=%.4f errors=%lld%s\n", modes[m],
               MEASURED, (unsigned long long)mallocs, (double)mallocs / MEASURED,
               (long long)atomic_load(&b.errors), grpc ? " protocol=grpc" : "");
        failed |= atomic_load(&b.errors) != 0;
        if (by_site)
            sites_report(MEASURED);
    }
    for (int i = 0; i < DEPTH; i++)
        arpc_buf_destroy(b.rsp[i]);
    arpc_channel_destroy(b.ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
    return failed;
}

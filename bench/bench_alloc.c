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

#include "alloc_bench.h"

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
static _Thread_local int in_hook;

/* Counts the current stack.  The allocation hook while measuring, which only
 * the single-loop measured runs do (the table is not locked: one loop thread
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

static void site_hook(void)
{
    if (!in_hook)
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

#define PAYLOAD_LEN 64

static char payload[PAYLOAD_LEN];
static arpc_buf *rsp_bufs[ALLOC_DEPTH]; /* created up front: set-up, not per call */
static bool by_site;

static int echo(arpc_request *req, void *user_data)
{
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

static int register_echo(arpc_server *srv)
{
    return arpc_server_register(srv, "echo", echo, NULL);
}

static void coro_worker(void *arg)
{
    alloc_batch *b = arg;
    arpc_buf *rsp = rsp_bufs[alloc_batch_slot(b)];
    while (alloc_batch_take(b)) {
        arpc_buf_clear(rsp);
        if (arpc_call(b->ch, "echo", payload, sizeof(payload), NULL, rsp) != 0)
            alloc_batch_error(b);
    }
    alloc_batch_worker_done(b);
}

static void on_async_done(int status, const void *rsp, size_t len, void *user_data)
{
    alloc_batch_chain(user_data, status == 0);
}

static int start_call(alloc_batch *b)
{
    return arpc_call_async(b->ch, "echo", payload, sizeof(payload), NULL, on_async_done, b);
}

static void measuring(bool on)
{
    atomic_store(&alloc_hook, on && by_site ? site_hook : NULL);
}

static void report(void)
{
    if (by_site)
        sites_report(ALLOC_MEASURED);
}

int main(int argc, char **argv)
{
    bool grpc = argc > 1 && strcmp(argv[1], "grpc") == 0;
    const char *want_sites = getenv("ARPC_ALLOC_SITES");
    by_site = want_sites != NULL && strcmp(want_sites, "1") == 0;
    if (by_site) {
        void *pc[SITE_DEPTH];
        (void)backtrace(pc, SITE_DEPTH); /* its first call loads libgcc_s: not in the count */
    }
    arpc_runtime *rt;
    arpc_server *srv;
    alloc_batch b = {.coro_worker = coro_worker, .start_call = start_call};
    if (alloc_bench_setup("bench_alloc", grpc, register_echo, &rt, &srv, &b) != 0)
        return 1;
    memset(payload, 'x', sizeof(payload));
    for (int i = 0; i < ALLOC_DEPTH; i++) {
        if (arpc_buf_create(&rsp_bufs[i]) != 0)
            return 1;
    }
    int failed =
        alloc_bench_modes(arpc_runtime_loop(rt, 0), &b, "bench_alloc", grpc, measuring, report);
    for (int i = 0; i < ALLOC_DEPTH; i++)
        arpc_buf_destroy(rsp_bufs[i]);
    alloc_bench_teardown(rt, srv, &b);
    return failed;
}

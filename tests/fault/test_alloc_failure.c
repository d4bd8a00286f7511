/*
 * Allocation failure injected everywhere a sequence of calls allocates, on
 * the client and on the server (both in this process).  For every N, the
 * N-th allocation through the library's hooks fails while a fresh server and
 * channel are set up and carry sync calls from a plain thread, async calls,
 * sync calls inside a coroutine, async calls started on a loop thread and
 * spread over the slots of both loops, and calls to a handler answered from
 * another loop (a deferred arpc_request_respond); then, separately, the N-th
 * allocation of the teardown (channel and server destroy) fails.  The loops'
 * inboxes have two ring slots, so the cross-thread hand-offs spill into the
 * overflow list, where they used to allocate and abort on failure.
 * Proves: nothing aborts;
 * every call that was started completes exactly once, with its payload or a
 * specific error; every refused start is ARPC_ENOMEM; once injection stops,
 * calls succeed again; nothing leaks (ASan).  N runs until a whole sequence
 * passes without reaching its N-th allocation.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <arpc/arpc.h>

#include "base/alloc.h"
#include "fault_util.h"
#include "test.h"

#define SYNC_CALLS   3
#define ASYNC_CALLS  6
#define CORO_CALLS   3
#define LOOP_CALLS   6
#define DEFER_CALLS  3
#define MAX_CALLS    (ASYNC_CALLS + LOOP_CALLS + DEFER_CALLS)
#define MAX_N        2000
#define CALL_TIMEOUT 3000

typedef struct call_rec {
    _Atomic int done;
    _Atomic int status;
    _Atomic int payload_ok;
    char payload[16];
} call_rec;

typedef struct round_state {
    arpc_runtime *srv_rt;
    arpc_runtime *cli_rt;
    arpc_server *srv;
    arpc_channel *ch;
    call_rec calls[MAX_CALLS];
    size_t started;
    _Atomic size_t completions;
    int sync_status[SYNC_CALLS + CORO_CALLS];
    size_t sync_count;
    _Atomic int coro_calls_done;
    arpc_event coro_done;
    arpc_event loop_done;
} round_state;

static _Atomic long unexpected_errors;

/* The errors an injected allocation failure may cause: the allocation's own
 * ARPC_ENOMEM, or a connection that was closed because of it. */
static bool allowed_error(int status)
{
    return status == ARPC_ENOMEM || status == ARPC_ECONNRESET || status == ARPC_ECLOSED ||
           status == ARPC_ECONNREFUSED || status == ARPC_EPIPE || status == ARPC_EHEARTBEAT;
}

static void check_status(int status, const char *what)
{
    if (status == 0 || allowed_error(status))
        return;
    fprintf(stderr, "unexpected %s status %d %s\n", what, status, arpc_err_name(status));
    atomic_fetch_add(&unexpected_errors, 1);
}

/* Two loops whose inbox rings hold two tasks: hand-offs overflow. */
static arpc_runtime *small_inbox_runtime(void)
{
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 2;
    opts.loop.inbox_capacity = 2;
    arpc_runtime *rt;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    return rt;
}

/* ---- server: echo, and echo answered from another loop ------------------- */

typedef struct deferred {
    arpc_request *req;
} deferred;

static void respond_task(void *arg)
{
    arpc_request *req = arg;
    int rc =
        arpc_buf_append(arpc_request_response(req), arpc_request_data(req), arpc_request_len(req));
    arpc_request_respond(req, rc);
}

static int handle_defer(arpc_request *req, void *user_data)
{
    arpc_runtime *rt = user_data;
    arpc_loop *here = arpc_loop_current();
    arpc_loop *other =
        arpc_runtime_loop(rt, 0) == here ? arpc_runtime_loop(rt, 1) : arpc_runtime_loop(rt, 0);
    if (arpc_loop_submit(other, respond_task, req) != 0)
        respond_task(req); /* answered here instead, still through respond */
    return ARPC_DEFERRED;
}

static int setup_server(round_state *st)
{
    int rc = arpc_server_create(st->srv_rt, NULL, &st->srv);
    if (rc < 0)
        return rc;
    rc = arpc_server_register(st->srv, "echo", fault_handle_echo, NULL);
    if (rc == 0)
        rc = arpc_server_register(st->srv, "defer", handle_defer, st->srv_rt);
    if (rc == 0)
        rc = arpc_server_listen(st->srv, "127.0.0.1:0");
    if (rc < 0) {
        arpc_server_destroy(st->srv);
        st->srv = NULL;
    }
    return rc;
}

static int setup_channel(round_state *st)
{
    char target[64];
    fault_addr(target, sizeof(target), arpc_server_port(st->srv));
    arpc_channel_opts opts;
    fault_channel_opts_init(&opts);
    opts.connections_per_endpoint = 2; /* one slot per client loop */
    opts.reconnect_backoff_min_ms = 1;
    opts.reconnect_backoff_max_ms = 20;
    return arpc_channel_create(st->cli_rt, target, &opts, &st->ch);
}

/* ---- calls --------------------------------------------------------------- */

static void on_done(int status, const void *rsp, size_t len, void *user_data)
{
    call_rec *c = user_data;
    atomic_store(&c->status, status);
    atomic_store(&c->payload_ok,
                 status != 0 || (len == strlen(c->payload) && memcmp(rsp, c->payload, len) == 0));
    atomic_fetch_add(&c->done, 1);
}

static arpc_call_opts call_opts(void)
{
    arpc_call_opts opts = fault_call_opts(CALL_TIMEOUT);
    return opts;
}

/* Starts one async call; a refused start must be ARPC_ENOMEM.  Any thread. */
static void start_async(round_state *st, size_t index, const char *method)
{
    call_rec *c = &st->calls[index];
    snprintf(c->payload, sizeof(c->payload), "p%zu", index);
    arpc_call_opts opts = call_opts();
    int rc = arpc_call_async(st->ch, method, c->payload, strlen(c->payload), &opts, on_done, c);
    if (rc == 0)
        return;
    atomic_store(&c->done, -1); /* not started: its callback must never run */
    check_status(rc == ARPC_ENOMEM ? 0 : rc, "refused start");
}

static int sync_echo(round_state *st, int index)
{
    char payload[16];
    snprintf(payload, sizeof(payload), "s%d", index);
    arpc_buf *rsp;
    if (arpc_buf_create(&rsp) < 0)
        return ARPC_ENOMEM;
    arpc_call_opts opts = call_opts();
    int rc = arpc_call(st->ch, "echo", payload, strlen(payload), &opts, rsp);
    if (rc == 0 && (arpc_buf_len(rsp) != strlen(payload) ||
                    memcmp(arpc_buf_data(rsp), payload, strlen(payload)) != 0))
        rc = 1; /* a wrong answer: not an allowed status */
    arpc_buf_destroy(rsp);
    return rc;
}

static void coro_body(void *arg)
{
    round_state *st = arg;
    for (int i = 0; i < CORO_CALLS; i++)
        st->sync_status[SYNC_CALLS + i] = sync_echo(st, SYNC_CALLS + i);
    atomic_store(&st->coro_calls_done, CORO_CALLS);
    arpc_event_signal(&st->coro_done);
}

static void loop_calls_task(void *arg)
{
    round_state *st = arg;
    for (size_t i = 0; i < LOOP_CALLS; i++)
        start_async(st, ASYNC_CALLS + i, "echo");
    arpc_event_signal(&st->loop_done);
}

static bool all_async_done(void *arg)
{
    round_state *st = arg;
    for (size_t i = 0; i < MAX_CALLS; i++) {
        if (atomic_load(&st->calls[i].done) == 0)
            return false;
    }
    return true;
}

static void run_calls(round_state *st)
{
    memset(st->calls, 0, sizeof(st->calls));
    for (int i = 0; i < SYNC_CALLS; i++)
        st->sync_status[i] = sync_echo(st, i);
    for (size_t i = 0; i < ASYNC_CALLS; i++)
        start_async(st, i, "echo");
    arpc_event_init(&st->coro_done);
    atomic_store(&st->coro_calls_done, 0);
    int rc = arpc_coro_spawn(arpc_runtime_loop(st->cli_rt, 0), coro_body, st);
    if (rc == 0)
        ASSERT_OK(arpc_event_wait(&st->coro_done, 30000));
    else
        check_status(rc, "coroutine spawn");
    arpc_event_init(&st->loop_done);
    rc = arpc_loop_submit(arpc_runtime_loop(st->cli_rt, 1), loop_calls_task, st);
    if (rc == 0)
        ASSERT_OK(arpc_event_wait(&st->loop_done, 30000));
    else
        loop_calls_task(st); /* from this thread instead */
    for (size_t i = 0; i < DEFER_CALLS; i++)
        start_async(st, ASYNC_CALLS + LOOP_CALLS + i, "defer");
    ASSERT_TRUE(wait_until(all_async_done, st, 30000));
}

/* Exactly once: a started call completed once, a refused one never. */
static void check_calls(round_state *st, bool coro_ran)
{
    for (size_t i = 0; i < MAX_CALLS; i++) {
        call_rec *c = &st->calls[i];
        int done = atomic_load(&c->done);
        ASSERT_TRUE(done == 1 || done == -1);
        if (done == 1) {
            check_status(atomic_load(&c->status), "async call");
            ASSERT_TRUE(atomic_load(&c->payload_ok));
        }
    }
    int sync_total = SYNC_CALLS + (coro_ran ? CORO_CALLS : 0);
    for (int i = 0; i < sync_total; i++)
        check_status(st->sync_status[i], "sync call");
}

static bool echo_ok(void *arg)
{
    round_state *st = arg;
    return sync_echo(st, 99) == 0;
}

/* Once injection stops, every style works again on the same objects. */
static void check_recovery(round_state *st)
{
    ASSERT_TRUE(wait_until(echo_ok, st, 10000));
    run_calls(st);
    for (size_t i = 0; i < MAX_CALLS; i++) {
        ASSERT_EQ(atomic_load(&st->calls[i].done), 1);
        ASSERT_OK(atomic_load(&st->calls[i].status));
    }
    for (int i = 0; i < SYNC_CALLS + CORO_CALLS; i++)
        ASSERT_OK(st->sync_status[i]);
}

/* One round: set-up and calls with the N-th allocation failing (N < 0: none).
 * @return true if the injected failure happened. */
static bool run_round(int64_t n)
{
    round_state *st = calloc(1, sizeof(*st));
    ASSERT_TRUE(st != NULL);
    st->srv_rt = small_inbox_runtime();
    st->cli_rt = small_inbox_runtime();
    uint64_t failures_before = arpc__alloc_failures();
    arpc__alloc_fail_after(n);
    int rc = setup_server(st);
    if (rc == 0)
        rc = setup_channel(st);
    if (rc == 0)
        run_calls(st);
    arpc__alloc_fail_after(-1);
    if (n < 0)
        ASSERT_OK(rc);
    bool hit = arpc__alloc_failures() != failures_before;
    if (rc == 0) {
        check_calls(st, true);
    } else {
        ASSERT_ERR(rc, ARPC_ENOMEM); /* only set-up can refuse, and only this way */
        if (st->srv == NULL)
            ASSERT_OK(setup_server(st));
        ASSERT_OK(setup_channel(st));
    }
    check_recovery(st);
    arpc_channel_destroy(st->ch);
    arpc_server_destroy(st->srv);
    arpc_runtime_destroy(st->cli_rt);
    arpc_runtime_destroy(st->srv_rt);
    free(st);
    return hit;
}

/* The teardown of a working server and channel with its N-th allocation
 * failing.  @return true if the injected failure happened. */
static bool run_teardown_round(int64_t n)
{
    round_state *st = calloc(1, sizeof(*st));
    ASSERT_TRUE(st != NULL);
    st->srv_rt = small_inbox_runtime();
    st->cli_rt = small_inbox_runtime();
    ASSERT_OK(setup_server(st));
    ASSERT_OK(setup_channel(st));
    check_recovery(st);
    /* Calls in flight while the channel goes: each completes once. */
    memset(st->calls, 0, sizeof(st->calls));
    for (size_t i = 0; i < ASYNC_CALLS; i++)
        start_async(st, i, "defer");
    uint64_t failures_before = arpc__alloc_failures();
    arpc__alloc_fail_after(n);
    arpc_channel_destroy(st->ch);
    arpc_server_destroy(st->srv);
    arpc__alloc_fail_after(-1);
    bool hit = arpc__alloc_failures() != failures_before;
    for (size_t i = 0; i < ASYNC_CALLS; i++) {
        ASSERT_EQ(atomic_load(&st->calls[i].done), 1);
        int status = atomic_load(&st->calls[i].status);
        ASSERT_TRUE(status == 0 || status == ARPC_ECANCELED || allowed_error(status));
    }
    arpc_runtime_destroy(st->cli_rt);
    arpc_runtime_destroy(st->srv_rt);
    free(st);
    return hit;
}

static void test_teardown_allocation_fails_once(void)
{
    int64_t n = 0;
    while (n < MAX_N && run_teardown_round(n))
        n++;
    fprintf(stderr, "injected a failure at each of %lld teardown allocations\n", (long long)n);
    ASSERT_LT(n, MAX_N);
}

static void test_every_allocation_fails_once(void)
{
    run_round(-1); /* warm: the library's one-time allocations (log, TLS) */
    int64_t n = 0;
    while (n < MAX_N && run_round(n))
        n++;
    fprintf(stderr, "injected a failure at each of %lld allocations\n", (long long)n);
    ASSERT_LT(n, MAX_N); /* the sequence ended without reaching allocation n */
    ASSERT_GT(n, 20);    /* and the injection did reach set-up and calls */
    ASSERT_EQ(atomic_load(&unexpected_errors), 0);
}

int main(void)
{
    arpc_log_set_level(ARPC_LOG_OFF); /* the injected failures are logged */
    RUN_TEST(test_every_allocation_fails_once);
    RUN_TEST(test_teardown_allocation_fails_once);
    return 0;
}

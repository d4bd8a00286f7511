/*
 * End-to-end echo in the three call styles, over real sockets on 127.0.0.1.
 * Proves:
 *  - arpc_call from a plain thread returns the exact bytes for payloads of 0,
 *    1, 64, 4096 bytes and 1 MiB, appending to the caller's buffer;
 *  - arpc_call_async (from a plain thread and from a loop thread) runs its
 *    callback exactly once, on a loop thread, never inside the initiating
 *    call, for answers and for a call that fails to connect; a call refused
 *    up front never runs its callback;
 *  - coroutines on the runtime: arpc_call suspends only the coroutine (many
 *    coroutines share one loop), and a fan-out of N async calls joined with
 *    an arpc_wg inside a coroutine gets every answer right;
 *  - an application error (handler returns 7 with arpc_request_set_error)
 *    reaches the client as 7 with its message; a negative code from a
 *    handler arrives as is (arpc's own, an errno, one in no table); an
 *    invalid one (ARPC_DEFERRED and above, other than ARPC_DEFERRED itself)
 *    becomes ARPC_EINTERNAL; an unknown method is ARPC_ENOMETHOD;
 *  - a handler may call another arpc server from its coroutine (nested
 *    call), on a one-loop runtime that also hosts the downstream server, so
 *    a handler that blocked its thread would deadlock;
 *  - a deferred handler (ARPC_DEFERRED) answered from another thread with
 *    arpc_request_respond, with success and with an application error;
 *  - arpc_runtime_offload from a handler runs the work on a worker thread
 *    and resumes the handler on its own loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "rpc_fixture.h"
#include "test.h"

#define CALL_TIMEOUT_MS 10000

static const size_t sizes[] = {0, 1, 64, 4096, 1u << 20};
#define SIZE_COUNT (sizeof(sizes) / sizeof(sizes[0]))

static arpc_runtime *srv_rt;
static arpc_runtime *cli_rt;
static arpc_server *srv;
static arpc_channel *ch;

/* ---- handlers ---------------------------------------------------------------------- */

static int handle_fail(arpc_request *req, void *user_data)
{
    ASSERT_OK(arpc_request_set_error(req, "bad input: 42"));
    return 7;
}

static int handle_internal(arpc_request *req, void *user_data)
{
    return ARPC_EINTERNAL;
}

/* Returns the status written in decimal in the payload. */
static int handle_status(arpc_request *req, void *user_data)
{
    char text[32];
    size_t len = arpc_request_len(req);
    ASSERT_LT(len, sizeof(text));
    memcpy(text, arpc_request_data(req), len);
    text[len] = '\0';
    return (int)strtol(text, NULL, 10);
}

/* Deferred requests go to a plain thread through this queue. */
typedef struct defer_queue {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    arpc_request *items[256];
    size_t head;
    size_t tail;
    bool stop;
    _Atomic int answered;
} defer_queue;

static defer_queue dq = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static int handle_defer(arpc_request *req, void *user_data)
{
    pthread_mutex_lock(&dq.lock);
    ASSERT_LT(dq.tail - dq.head, 256);
    dq.items[dq.tail++ % 256] = req;
    pthread_cond_signal(&dq.wake);
    pthread_mutex_unlock(&dq.lock);
    return ARPC_DEFERRED;
}

/* Answers the reversed payload, or application error 5 for "app-error". */
static void *defer_worker(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&dq.lock);
        while (dq.head == dq.tail && !dq.stop)
            pthread_cond_wait(&dq.wake, &dq.lock);
        if (dq.head == dq.tail) {
            pthread_mutex_unlock(&dq.lock);
            return NULL;
        }
        arpc_request *req = dq.items[dq.head++ % 256];
        pthread_mutex_unlock(&dq.lock);

        ASSERT_TRUE(arpc_loop_current() == NULL);
        const uint8_t *in = arpc_request_data(req);
        size_t len = arpc_request_len(req);
        int status = 0;
        if (len == 9 && memcmp(in, "app-error", 9) == 0) {
            ASSERT_OK(arpc_request_set_error(req, "deferred failure"));
            status = 5;
        } else {
            arpc_buf *out = arpc_request_response(req);
            for (size_t i = 0; i < len; i++)
                ASSERT_OK(arpc_buf_append(out, &in[len - 1 - i], 1));
        }
        atomic_fetch_add(&dq.answered, 1);
        arpc_request_respond(req, status);
    }
}

static uint64_t fnv1a(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

typedef struct digest_job {
    const void *data;
    size_t len;
    uint64_t hash;
    bool off_loop;
} digest_job;

static void digest_fn(void *arg)
{
    digest_job *job = arg;
    job->off_loop = arpc_loop_current() == NULL && !arpc_coro_in();
    job->hash = fnv1a(job->data, job->len);
}

/* Answers {hash, ran off the loop, resumed on the same loop}. */
static int handle_digest(arpc_request *req, void *user_data)
{
    arpc_loop *before = arpc_loop_current();
    digest_job job = {.data = arpc_request_data(req), .len = arpc_request_len(req)};
    int rc = arpc_runtime_offload(srv_rt, digest_fn, &job);
    if (rc < 0)
        return rc;
    uint8_t out[10];
    memcpy(out, &job.hash, 8);
    out[8] = job.off_loop;
    out[9] = arpc_loop_current() == before && before != NULL && arpc_coro_in();
    return arpc_buf_append(arpc_request_response(req), out, sizeof(out));
}

/* ---- sync calls from a plain thread ------------------------------------------------ */

static void test_sync_plain_thread(void)
{
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    for (size_t i = 0; i < SIZE_COUNT; i++) {
        size_t n = sizes[i];
        uint8_t *req = malloc(n + 1);
        fx_fill(req, n, (uint32_t)i + 1);
        arpc_buf_clear(rsp);
        ASSERT_OK(arpc_call(ch, "echo", req, n, &opts, rsp));
        ASSERT_EQ(arpc_buf_len(rsp), n);
        ASSERT_MEMEQ(arpc_buf_data(rsp), req, n);
        free(req);
    }
    /* The answer is appended to what the buffer holds. */
    arpc_buf_clear(rsp);
    ASSERT_OK(arpc_buf_append(rsp, "pre:", 4));
    ASSERT_OK(arpc_call(ch, "echo", "abc", 3, &opts, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 7);
    ASSERT_MEMEQ(arpc_buf_data(rsp), "pre:abc", 7);
    /* NULL opts means the channel's default timeout. */
    arpc_buf_clear(rsp);
    ASSERT_OK(arpc_call(ch, "echo", "x", 1, NULL, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 1);
    arpc_buf_destroy(rsp);
}

/* ---- async callbacks ----------------------------------------------------------------- */

/* Set on a thread while it is inside arpc_call_async(). */
static _Thread_local bool in_initiator;

typedef struct async_call {
    _Atomic int runs;
    int status;
    bool on_loop;
    bool inline_run; /* ran inside arpc_call_async on the same thread */
    bool bytes_ok;
    const uint8_t *expect;
    size_t expect_len;
    arpc_wg *wg;
} async_call;

static void on_async_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    async_call *c = user_data;
    c->status = status;
    c->on_loop = arpc_loop_current() != NULL;
    c->inline_run = in_initiator;
    c->bytes_ok =
        rsp_len == c->expect_len && (rsp_len == 0 || memcmp(rsp, c->expect, rsp_len) == 0);
    atomic_fetch_add(&c->runs, 1);
    arpc_wg_done(c->wg);
}

typedef struct async_batch {
    arpc_channel *ch;
    const char *method;
    uint8_t *payloads[SIZE_COUNT];
    async_call calls[SIZE_COUNT];
    arpc_wg wg;
} async_batch;

static void batch_prepare(async_batch *b, arpc_channel *c, const char *method)
{
    memset(b, 0, sizeof(*b));
    b->ch = c;
    b->method = method;
    arpc_wg_init(&b->wg, SIZE_COUNT);
    for (size_t i = 0; i < SIZE_COUNT; i++) {
        b->payloads[i] = malloc(sizes[i] + 1);
        fx_fill(b->payloads[i], sizes[i], 100 + (uint32_t)i);
        b->calls[i].expect = b->payloads[i];
        b->calls[i].expect_len = sizes[i];
        b->calls[i].wg = &b->wg;
    }
}

static void batch_start(void *arg)
{
    async_batch *b = arg;
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    for (size_t i = 0; i < SIZE_COUNT; i++) {
        in_initiator = true;
        int rc = arpc_call_async(b->ch, b->method, b->payloads[i], sizes[i], &opts, on_async_done,
                                 &b->calls[i]);
        in_initiator = false;
        ASSERT_OK(rc);
    }
}

static void batch_check(async_batch *b, int want_status, bool want_bytes)
{
    ASSERT_OK(arpc_wg_wait(&b->wg, 30000));
    for (size_t i = 0; i < SIZE_COUNT; i++) {
        async_call *c = &b->calls[i];
        ASSERT_EQ(atomic_load(&c->runs), 1);
        ASSERT_ERR(c->status, want_status);
        ASSERT_TRUE(c->on_loop);
        ASSERT_FALSE(c->inline_run);
        if (want_bytes)
            ASSERT_TRUE(c->bytes_ok);
        free(b->payloads[i]);
    }
}

static void test_async_from_plain_thread(void)
{
    static async_batch b;
    batch_prepare(&b, ch, "echo");
    batch_start(&b);
    batch_check(&b, 0, true);
}

static void test_async_from_loop_thread(void)
{
    static async_batch b;
    for (unsigned l = 0; l < arpc_runtime_loop_count(cli_rt); l++) {
        batch_prepare(&b, ch, "echo");
        fx_run_on_loop(arpc_runtime_loop(cli_rt, l), batch_start, &b);
        batch_check(&b, 0, true);
    }
}

/* A call that fails before it reaches any server completes on a loop thread,
 * and not inside arpc_call_async even when started on the loop that fails it. */
static void test_async_failure_not_inline(void)
{
    uint16_t port;
    int fd = test_listen_ephemeral(&port);
    ASSERT_GE(fd, 0);
    close(fd); /* nothing listens there now */
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%u", port);
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    copts.reconnect_backoff_min_ms = 1;
    copts.reconnect_backoff_max_ms = 2;
    arpc_channel *dead;
    ASSERT_OK(arpc_channel_create(cli_rt, target, &copts, &dead));

    static async_batch b;
    batch_prepare(&b, dead, "echo");
    fx_run_on_loop(arpc_runtime_loop(cli_rt, 0), batch_start, &b);
    batch_check(&b, ARPC_ECONNREFUSED, false);
    batch_prepare(&b, dead, "echo");
    batch_start(&b);
    batch_check(&b, ARPC_ECONNREFUSED, false);
    arpc_channel_destroy(dead);
}

static _Atomic int never_runs;

static void on_never(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    atomic_fetch_add(&never_runs, 1);
}

/* An async call refused up front returns its error and never runs its callback. */
static void test_async_refused_no_callback(void)
{
    ASSERT_ERR(arpc_call_async(ch, "", "x", 1, NULL, on_never, NULL), ARPC_EINVAL);
    ASSERT_ERR(arpc_call_async(ch, "echo", NULL, 5, NULL, on_never, NULL), ARPC_EINVAL);
    ASSERT_ERR(arpc_call_async(ch, "echo", "x", 1, NULL, NULL, NULL), ARPC_EINVAL);
    /* A completed call afterwards proves the loop ran past any stray callback. */
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    ASSERT_OK(arpc_call(ch, "echo", "y", 1, NULL, rsp));
    arpc_buf_destroy(rsp);
    ASSERT_EQ(atomic_load(&never_runs), 0);
}

/* ---- coroutines -------------------------------------------------------------------- */

#define CORO_COUNT 8

typedef struct coro_sync {
    arpc_wg done;
    _Atomic int ok;
    _Atomic int not_in_coro;
    arpc_loop *loops[CORO_COUNT];
    _Atomic int in_call[2];     /* per client loop: coroutines inside arpc_call now */
    _Atomic int max_in_call[2]; /* the most at once */
} coro_sync;

static coro_sync cs;

static int client_loop_index(void)
{
    arpc_loop *here = arpc_loop_current();
    for (unsigned i = 0; i < 2; i++) {
        if (arpc_runtime_loop(cli_rt, i) == here)
            return (int)i;
    }
    test_fail(__FILE__, __LINE__, "coroutine not on a client loop");
}

/* One arpc_call, counting the coroutines of this loop inside one at once: more
 * than one means a call suspended only its coroutine, not the loop's thread. */
static int counted_call(const void *req, size_t n, const arpc_call_opts *opts, arpc_buf *rsp)
{
    int loop = client_loop_index();
    int now = atomic_fetch_add(&cs.in_call[loop], 1) + 1;
    int seen = atomic_load(&cs.max_in_call[loop]);
    while (now > seen && !atomic_compare_exchange_weak(&cs.max_in_call[loop], &seen, now))
        ;
    int rc = arpc_call(ch, "echo", req, n, opts, rsp);
    atomic_fetch_sub(&cs.in_call[loop], 1);
    return rc;
}

static void coro_sync_body(void *arg)
{
    int index = (int)(intptr_t)arg;
    if (!arpc_coro_in())
        atomic_fetch_add(&cs.not_in_coro, 1);
    cs.loops[index] = arpc_loop_current();
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    int good = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < SIZE_COUNT; i++) {
            size_t n = sizes[i];
            uint8_t *req = malloc(n + 1);
            fx_fill(req, n, (uint32_t)(index * 1000 + round * 10 + (int)i));
            arpc_buf_clear(rsp);
            int rc = counted_call(req, n, &opts, rsp);
            if (rc == 0 && arpc_buf_len(rsp) == n && memcmp(arpc_buf_data(rsp), req, n) == 0)
                good++;
            free(req);
        }
    }
    /* The coroutine stays on its loop across its suspensions. */
    if (arpc_loop_current() == cs.loops[index] && good == 3 * (int)SIZE_COUNT)
        atomic_fetch_add(&cs.ok, 1);
    arpc_buf_destroy(rsp);
    arpc_wg_done(&cs.done);
}

static void test_coroutines_sync_call(void)
{
    arpc_wg_init(&cs.done, CORO_COUNT);
    for (int i = 0; i < CORO_COUNT; i++)
        ASSERT_OK(arpc_runtime_spawn(cli_rt, coro_sync_body, (void *)(intptr_t)i));
    ASSERT_OK(arpc_wg_wait(&cs.done, 60000));
    ASSERT_EQ(atomic_load(&cs.not_in_coro), 0);
    ASSERT_EQ(atomic_load(&cs.ok), CORO_COUNT);
    /* Several coroutines were inside arpc_call on one loop at once, so each
     * call suspended only its coroutine. */
    int most = atomic_load(&cs.max_in_call[0]) > atomic_load(&cs.max_in_call[1])
                   ? atomic_load(&cs.max_in_call[0])
                   : atomic_load(&cs.max_in_call[1]);
    fprintf(stderr, "  up to %d coroutines of one loop inside arpc_call at once\n", most);
    ASSERT_GE(most, 2);
}

#define FANOUT 64

typedef struct fanout {
    arpc_wg calls;
    uint8_t payloads[FANOUT][512];
    size_t lens[FANOUT];
    async_call results[FANOUT];
    _Atomic int done_runs;
    int waited;
    arpc_event finished;
} fanout;

static fanout fo;

static void fanout_body(void *arg)
{
    arpc_wg_init(&fo.calls, FANOUT);
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    for (int i = 0; i < FANOUT; i++) {
        fo.lens[i] = (size_t)(i * 7) % sizeof(fo.payloads[i]);
        fx_fill(fo.payloads[i], fo.lens[i], 5000 + (uint32_t)i);
        fo.results[i].expect = fo.payloads[i];
        fo.results[i].expect_len = fo.lens[i];
        fo.results[i].wg = &fo.calls;
        in_initiator = true;
        int rc = arpc_call_async(ch, "echo", fo.payloads[i], fo.lens[i], &opts, on_async_done,
                                 &fo.results[i]);
        in_initiator = false;
        ASSERT_OK(rc);
    }
    fo.waited = arpc_wg_wait(&fo.calls, 30000);
    arpc_event_signal(&fo.finished);
}

static void test_coroutine_fanout(void)
{
    arpc_event_init(&fo.finished);
    ASSERT_OK(arpc_runtime_spawn(cli_rt, fanout_body, NULL));
    ASSERT_OK(arpc_event_wait(&fo.finished, 60000));
    ASSERT_OK(fo.waited);
    for (int i = 0; i < FANOUT; i++) {
        ASSERT_EQ(atomic_load(&fo.results[i].runs), 1);
        ASSERT_OK(fo.results[i].status);
        ASSERT_TRUE(fo.results[i].bytes_ok);
        ASSERT_TRUE(fo.results[i].on_loop);
        ASSERT_FALSE(fo.results[i].inline_run);
    }
}

/* ---- errors -------------------------------------------------------------------------- */

static void test_application_error(void)
{
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    ASSERT_EQ(arpc_call(ch, "fail", "x", 1, &opts, rsp), 7);
    ASSERT_EQ(arpc_buf_len(rsp), strlen("bad input: 42"));
    ASSERT_MEMEQ(arpc_buf_data(rsp), "bad input: 42", arpc_buf_len(rsp));

    /* The same through a callback: status 7, the message as the answer. */
    static async_call c;
    static arpc_wg wg;
    memset(&c, 0, sizeof(c));
    arpc_wg_init(&wg, 1);
    c.expect = (const uint8_t *)"bad input: 42";
    c.expect_len = strlen("bad input: 42");
    c.wg = &wg;
    ASSERT_OK(arpc_call_async(ch, "fail", NULL, 0, &opts, on_async_done, &c));
    ASSERT_OK(arpc_wg_wait(&wg, 30000));
    ASSERT_EQ(c.status, 7);
    ASSERT_TRUE(c.bytes_ok);

    arpc_buf_clear(rsp);
    ASSERT_ERR(arpc_call(ch, "internal", "x", 1, &opts, rsp), ARPC_EINTERNAL);
    arpc_buf_destroy(rsp);
}

static int status_call(int status)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "%d", status);
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    return arpc_call(ch, "status", text, (size_t)len, &opts, NULL);
}

/* A negative code arrives as is, whether arpc's own (not the one the server
 * substitutes for invalid codes), an errno, or one in no table. */
static void test_negative_handler_codes_arrive_as_is(void)
{
    static const int codes[] = {ARPC_EBADADDR, ARPC_ENOTCORO, -EACCES, -1, -7777, -2000000000};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        ASSERT_EQ(status_call(codes[i]), codes[i]);
}

/* Codes from ARPC_DEFERRED up are no application code: ARPC_EINTERNAL. */
static void test_invalid_handler_code_becomes_einternal(void)
{
    ASSERT_ERR(status_call(ARPC_DEFERRED + 1), ARPC_EINTERNAL);
    ASSERT_ERR(status_call(2147483647), ARPC_EINTERNAL);
    ASSERT_EQ(status_call(ARPC_DEFERRED - 1), ARPC_DEFERRED - 1); /* the largest valid one */
}

static void test_unknown_method(void)
{
    arpc_server_stats before, after;
    arpc_server_get_stats(srv, &before);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    ASSERT_ERR(arpc_call(ch, "no.such.method", "x", 1, &opts, rsp), ARPC_ENOMETHOD);
    ASSERT_EQ(arpc_buf_len(rsp), 0);
    arpc_server_get_stats(srv, &after);
    ASSERT_EQ(after.unknown_method, before.unknown_method + 1);
    /* The connection is still good. */
    ASSERT_OK(arpc_call(ch, "echo", "ok", 2, &opts, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 2);
    arpc_buf_destroy(rsp);
}

/* ---- nested call from a handler ---------------------------------------------------- */

static arpc_channel *downstream;
static _Atomic int relay_not_in_coro;
static _Atomic int64_t relay_remaining_max;

/* Forwards to `echo` on the downstream server with the caller's remaining time. */
static int handle_relay(arpc_request *req, void *user_data)
{
    if (!arpc_coro_in())
        atomic_fetch_add(&relay_not_in_coro, 1);
    int64_t left = arpc_request_remaining_ms(req);
    int64_t seen = atomic_load(&relay_remaining_max);
    while (left > seen && !atomic_compare_exchange_weak(&relay_remaining_max, &seen, left))
        ;
    arpc_call_opts opts = fx_timeout(left > 0 ? left : 1);
    return arpc_call(downstream, "echo", arpc_request_data(req), arpc_request_len(req), &opts,
                     arpc_request_response(req));
}

static void test_nested_call(void)
{
    /* One loop carries the relay server, the downstream server and the
     * channel between them: a handler that blocked the thread would never
     * see its downstream answer. */
    arpc_runtime *nest_rt = fx_runtime(1);
    const fx_method down_methods[] = {{"echo", fx_handle_echo, NULL}, {NULL, NULL, NULL}};
    arpc_server *down = fx_server(nest_rt, NULL, down_methods);
    downstream = fx_channel(nest_rt, down, NULL);
    const fx_method relay_methods[] = {{"relay", handle_relay, NULL}, {NULL, NULL, NULL}};
    arpc_server *relay = fx_server(nest_rt, NULL, relay_methods);
    arpc_channel *to_relay = fx_channel(cli_rt, relay, NULL);

    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    for (size_t i = 0; i < SIZE_COUNT; i++) {
        size_t n = sizes[i];
        uint8_t *req = malloc(n + 1);
        fx_fill(req, n, 900 + (uint32_t)i);
        arpc_buf_clear(rsp);
        ASSERT_OK(arpc_call(to_relay, "relay", req, n, &opts, rsp));
        ASSERT_EQ(arpc_buf_len(rsp), n);
        ASSERT_MEMEQ(arpc_buf_data(rsp), req, n);
        free(req);
    }
    ASSERT_EQ(atomic_load(&relay_not_in_coro), 0);
    ASSERT_GT(atomic_load(&relay_remaining_max), 0);
    ASSERT_LE(atomic_load(&relay_remaining_max), CALL_TIMEOUT_MS);

    /* Many relayed calls at once: their handlers all wait on the one loop. */
    static async_batch b;
    batch_prepare(&b, to_relay, "relay");
    batch_start(&b);
    batch_check(&b, 0, true);

    arpc_buf_destroy(rsp);
    arpc_channel_destroy(to_relay);
    arpc_server_destroy(relay);
    arpc_channel_destroy(downstream);
    arpc_server_destroy(down);
    arpc_runtime_destroy(nest_rt);
}

/* ---- deferred answers and offloaded work -------------------------------------------- */

#define DEFERRED_CALLS 32

typedef struct deferred_call {
    uint8_t req[64];
    size_t len;
    uint8_t want[64];
    async_call c;
} deferred_call;

static void test_deferred_handler(void)
{
    pthread_t worker;
    ASSERT_EQ(pthread_create(&worker, NULL, defer_worker, NULL), 0);
    static deferred_call calls[DEFERRED_CALLS];
    static arpc_wg wg;
    arpc_wg_init(&wg, DEFERRED_CALLS);
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    for (int i = 0; i < DEFERRED_CALLS; i++) {
        deferred_call *d = &calls[i];
        memset(d, 0, sizeof(*d));
        d->len = 1 + (size_t)i;
        fx_fill(d->req, d->len, 7000 + (uint32_t)i);
        for (size_t k = 0; k < d->len; k++)
            d->want[k] = d->req[d->len - 1 - k];
        d->c.expect = d->want;
        d->c.expect_len = d->len;
        d->c.wg = &wg;
        ASSERT_OK(arpc_call_async(ch, "defer", d->req, d->len, &opts, on_async_done, &d->c));
    }
    ASSERT_OK(arpc_wg_wait(&wg, 30000));
    for (int i = 0; i < DEFERRED_CALLS; i++) {
        ASSERT_EQ(atomic_load(&calls[i].c.runs), 1);
        ASSERT_OK(calls[i].c.status);
        ASSERT_TRUE(calls[i].c.bytes_ok);
    }

    /* A deferred application error. */
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    ASSERT_EQ(arpc_call(ch, "defer", "app-error", 9, &opts, rsp), 5);
    ASSERT_EQ(arpc_buf_len(rsp), strlen("deferred failure"));
    ASSERT_MEMEQ(arpc_buf_data(rsp), "deferred failure", arpc_buf_len(rsp));
    arpc_buf_destroy(rsp);
    ASSERT_EQ(atomic_load(&dq.answered), DEFERRED_CALLS + 1);

    pthread_mutex_lock(&dq.lock);
    dq.stop = true;
    pthread_cond_signal(&dq.wake);
    pthread_mutex_unlock(&dq.lock);
    ASSERT_EQ(pthread_join(worker, NULL), 0);
}

static void test_offload_from_handler(void)
{
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    for (size_t i = 0; i < SIZE_COUNT; i++) {
        size_t n = sizes[i];
        uint8_t *req = malloc(n + 1);
        fx_fill(req, n, 300 + (uint32_t)i);
        arpc_buf_clear(rsp);
        ASSERT_OK(arpc_call(ch, "digest", req, n, &opts, rsp));
        ASSERT_EQ(arpc_buf_len(rsp), 10);
        const uint8_t *out = arpc_buf_data(rsp);
        uint64_t hash;
        memcpy(&hash, out, 8);
        ASSERT_TRUE(hash == fnv1a(req, n));
        ASSERT_EQ(out[8], 1); /* the work ran on a worker thread */
        ASSERT_EQ(out[9], 1); /* the handler resumed on its own loop */
        free(req);
    }
    arpc_buf_destroy(rsp);
}

int main(void)
{
    srv_rt = fx_runtime(2);
    cli_rt = fx_runtime(2);
    const fx_method methods[] = {
        {"echo", fx_handle_echo, NULL},
        {"fail", handle_fail, NULL},
        {"internal", handle_internal, NULL},
        {"defer", handle_defer, NULL},
        {"digest", handle_digest, NULL},
        {"status", handle_status, NULL},
        {NULL, NULL, NULL},
    };
    srv = fx_server(srv_rt, NULL, methods);
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    copts.connections_per_endpoint = 2; /* one per client loop */
    /* Not a test of heartbeats: a TSan build on a loaded machine once kept a loop from
     * answering a PING for more than the default 1 s (EHEARTBEAT in the fan-out), so it
     * gets the 5 s of fault_channel_opts_init. */
    copts.heartbeat_timeout_ms = 5000;
    ch = fx_channel(cli_rt, srv, &copts);

    RUN_TEST(test_sync_plain_thread);
    RUN_TEST(test_async_from_plain_thread);
    RUN_TEST(test_async_from_loop_thread);
    RUN_TEST(test_async_failure_not_inline);
    RUN_TEST(test_async_refused_no_callback);
    RUN_TEST(test_coroutines_sync_call);
    RUN_TEST(test_coroutine_fanout);
    RUN_TEST(test_application_error);
    RUN_TEST(test_negative_handler_codes_arrive_as_is);
    RUN_TEST(test_invalid_handler_code_becomes_einternal);
    RUN_TEST(test_unknown_method);
    RUN_TEST(test_nested_call);
    RUN_TEST(test_deferred_handler);
    RUN_TEST(test_offload_from_handler);

    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
    return 0;
}

/*
 * Call deadlines.  The slow calls go to `block`, whose handler answers only
 * once the test releases it, after the calls have timed out: every answer is
 * late by construction, however slow the machine (no race between a sleep on
 * the server and a deadline on the client).  Proves:
 *  - a call to `block` with a 50 ms timeout returns ARPC_ETIMEDOUT not
 *    before 50 ms (and within a generous bound), from a plain thread and from
 *    a coroutine, leaving the response buffer alone;
 *  - the connection stays usable: the next echo on the same channel succeeds
 *    over the same connection (no reconnect);
 *  - the server is told (native CANCEL, docs/protocol.md 13): once released,
 *    the handler's end is counted as canceled on the server, and its answer is
 *    dropped there, or, if the handler ended before the CANCEL arrived, sent as
 *    a bare ARPC_ETIMEDOUT that the client drops as late; either way the call
 *    does not complete a second time;
 *  - in a mix of fast calls and calls that time out, every call completes
 *    exactly once with the status its deadline implies, never early, and
 *    every late answer is counted.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

#include "rpc_fixture.h"
#include "test.h"

/* Slack for a loaded sanitizer build or qemu: the timeout must not fire
 * early, and must fire (the answer never comes before the release). */
#define LATE_SLACK_MS 2000

/* `block`: answers the payload once `released` is set (polled each
 * millisecond, suspending only the request's coroutine; 30 s at most). */
static _Atomic bool released;

static int handle_block(arpc_request *req, void *user_data)
{
    for (int i = 0; i < 30000 && !atomic_load(&released); i++)
        arpc_coro_sleep_ms(1);
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

static arpc_runtime *srv_rt;
static arpc_runtime *cli_rt;
static arpc_server *srv;

static arpc_channel *one_conn_channel(void)
{
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    copts.connections_per_endpoint = 1;
    return fx_channel(cli_rt, srv, &copts);
}

static void warm_up(arpc_channel *ch)
{
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(10000);
    ASSERT_OK(arpc_call(ch, "echo", "warm", 4, &opts, rsp));
    arpc_buf_destroy(rsp);
}

typedef struct stats_wait {
    arpc_channel *ch;
    uint64_t want;
} stats_wait;

/* Timed-out requests the server has ended: canceled by the client's CANCEL or
 * past their deadline while running (arpc_server_stats.canceled counts both),
 * or not run at all because their deadline had passed when they arrived
 * (`expired`: a slow sanitizer build). */
static uint64_t server_canceled(void)
{
    arpc_server_stats s;
    arpc_server_get_stats(srv, &s);
    return s.canceled + s.expired;
}

static bool server_canceled_reached(void *arg)
{
    stats_wait *w = arg;
    return server_canceled() >= w->want;
}

/* The client's late answers: a timed-out request whose handler answered before its
 * CANCEL reached the server (and before the server's copy of its deadline, which the
 * transit makes later than the client's) comes back late instead of counted there. */
static uint64_t late_answers(arpc_channel *ch)
{
    arpc_channel_stats s;
    arpc_channel_get_stats(ch, &s);
    return s.late_answers;
}

/* Every timed-out request accounted for: ended on the server, or answered late (or
 * both). */
static bool timeouts_accounted(void *arg)
{
    stats_wait *w = arg;
    return server_canceled() + late_answers(w->ch) >= w->want;
}

/* One 50 ms call to `block`; returns its elapsed time. */
static int64_t timed_out_call(arpc_channel *ch)
{
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(50);
    int64_t start = test_now_ms();
    int rc = arpc_call(ch, "block", "500", 3, &opts, rsp);
    int64_t elapsed = test_now_ms() - start;
    ASSERT_ERR(rc, ARPC_ETIMEDOUT);
    ASSERT_EQ(arpc_buf_len(rsp), 0);
    arpc_buf_destroy(rsp);
    return elapsed;
}

static void test_timeout_then_connection_usable(void)
{
    atomic_store(&released, false);
    arpc_channel *ch = one_conn_channel();
    warm_up(ch);
    uint64_t canceled_before = server_canceled();

    int64_t elapsed = timed_out_call(ch);
    fprintf(stderr, "  timed out after %lld ms\n", (long long)elapsed);
    ASSERT_GE(elapsed, 50);
    ASSERT_LE(elapsed, 50 + LATE_SLACK_MS);

    /* Same channel, same connection: the next call goes through. */
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(10000);
    ASSERT_OK(arpc_call(ch, "echo", "after", 5, &opts, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 5);
    ASSERT_MEMEQ(arpc_buf_data(rsp), "after", 5);

    /* Released, the handler ends; the server counts it canceled, and an
     * answer, if it sent one before the CANCEL arrived, finds no call. */
    atomic_store(&released, true);
    stats_wait w = {.ch = ch, .want = canceled_before + 1};
    ASSERT_TRUE(wait_until(server_canceled_reached, &w, 10000));
    arpc_channel_stats s;
    arpc_channel_get_stats(ch, &s);
    ASSERT_LE(s.late_answers, 1);
    uint64_t late = s.late_answers;
    ASSERT_EQ(s.reconnects, 1);
    ASSERT_EQ(s.calls, 3);

    /* Still usable after the late answer. */
    arpc_buf_clear(rsp);
    ASSERT_OK(arpc_call(ch, "echo", "again", 5, &opts, rsp));
    ASSERT_MEMEQ(arpc_buf_data(rsp), "again", 5);
    arpc_channel_get_stats(ch, &s);
    ASSERT_EQ(s.late_answers, late);
    ASSERT_EQ(s.reconnects, 1);
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
}

typedef struct coro_timeout {
    arpc_channel *ch;
    int64_t elapsed;
    arpc_event done;
} coro_timeout;

static void coro_timeout_body(void *arg)
{
    coro_timeout *ct = arg;
    ct->elapsed = timed_out_call(ct->ch);
    arpc_event_signal(&ct->done);
}

static void test_timeout_in_coroutine(void)
{
    static coro_timeout ct;
    atomic_store(&released, false);
    ct.ch = one_conn_channel();
    warm_up(ct.ch);
    uint64_t canceled_before = server_canceled();
    arpc_event_init(&ct.done);
    ASSERT_OK(arpc_runtime_spawn(cli_rt, coro_timeout_body, &ct));
    ASSERT_OK(arpc_event_wait(&ct.done, 10000));
    ASSERT_GE(ct.elapsed, 50);
    ASSERT_LE(ct.elapsed, 50 + LATE_SLACK_MS);
    atomic_store(&released, true);
    stats_wait w = {.ch = ct.ch, .want = canceled_before + 1};
    ASSERT_TRUE(wait_until(server_canceled_reached, &w, 10000));
    arpc_channel_destroy(ct.ch);
}

/* ---- a mix of fast and timing-out calls ------------------------------------------ */

#define MIX_CALLS 200

typedef struct mix_call {
    const char *method;
    const char *payload;
    int64_t timeout_ms;
    int want;
    int64_t started_ms;
    int64_t done_ms;
    _Atomic int runs;
    int status;
    arpc_wg *wg;
} mix_call;

static void on_mix_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    mix_call *c = user_data;
    c->done_ms = test_now_ms();
    c->status = status;
    if (status == 0 && (rsp_len != strlen(c->payload) || memcmp(rsp, c->payload, rsp_len) != 0))
        c->status = 12345; /* wrong bytes */
    atomic_fetch_add(&c->runs, 1);
    arpc_wg_done(c->wg);
}

static void test_mixed_calls_complete_once(void)
{
    atomic_store(&released, false);
    arpc_channel *ch = one_conn_channel();
    warm_up(ch);
    uint64_t canceled_before = server_canceled();
    static mix_call calls[MIX_CALLS];
    static arpc_wg wg;
    arpc_wg_init(&wg, MIX_CALLS);
    int timeouts = 0;
    for (int i = 0; i < MIX_CALLS; i++) {
        mix_call *c = &calls[i];
        memset(c, 0, sizeof(*c));
        c->wg = &wg;
        switch (i % 4) {
        case 0: /* answered after its deadline */
            c->method = "block", c->payload = "300", c->timeout_ms = 50;
            c->want = ARPC_ETIMEDOUT;
            break;
        case 1:
            c->method = "echo", c->payload = "fast", c->timeout_ms = 10000;
            break;
        case 2:
            c->method = "sleep", c->payload = "5", c->timeout_ms = 10000;
            break;
        default:
            c->method = "block", c->payload = "600", c->timeout_ms = 100;
            c->want = ARPC_ETIMEDOUT;
            break;
        }
        timeouts += c->want == ARPC_ETIMEDOUT;
        arpc_call_opts opts = fx_timeout(c->timeout_ms);
        c->started_ms = test_now_ms();
        ASSERT_OK(
            arpc_call_async(ch, c->method, c->payload, strlen(c->payload), &opts, on_mix_done, c));
    }
    ASSERT_OK(arpc_wg_wait(&wg, 30000));
    for (int i = 0; i < MIX_CALLS; i++) {
        mix_call *c = &calls[i];
        ASSERT_EQ(atomic_load(&c->runs), 1);
        ASSERT_ERR(c->status, c->want);
        if (c->want == ARPC_ETIMEDOUT)
            ASSERT_GE(c->done_ms - c->started_ms, c->timeout_ms);
    }
    /* Every timed-out call is ended on the server as canceled; an answer sent
     * before its CANCEL arrived is dropped as late. */
    atomic_store(&released, true);
    uint64_t late_before = late_answers(ch);
    stats_wait w = {.ch = ch, .want = canceled_before + late_before + (uint64_t)timeouts};
    ASSERT_TRUE(wait_until(timeouts_accounted, &w, 10000));
    /* One request may count twice (ended on the server at its deadline, whose bare
     * ETIMEDOUT then comes back late), none on the server more than once. */
    ASSERT_LE(server_canceled(), canceled_before + (uint64_t)timeouts);
    arpc_channel_stats s;
    arpc_channel_get_stats(ch, &s);
    ASSERT_LE(s.late_answers, late_before + (uint64_t)timeouts);
    ASSERT_EQ(s.reconnects, 1);
    arpc_channel_destroy(ch);
    /* The late answers completed nothing a second time. */
    for (int i = 0; i < MIX_CALLS; i++)
        ASSERT_EQ(atomic_load(&calls[i].runs), 1);
}

int main(void)
{
    srv_rt = fx_runtime(2);
    cli_rt = fx_runtime(2);
    const fx_method methods[] = {
        {"echo", fx_handle_echo, NULL},
        {"sleep", fx_handle_sleep, NULL},
        {"block", handle_block, NULL},
        {NULL, NULL, NULL},
    };
    srv = fx_server(srv_rt, NULL, methods);

    RUN_TEST(test_timeout_then_connection_usable);
    RUN_TEST(test_timeout_in_coroutine);
    RUN_TEST(test_mixed_calls_complete_once);

    arpc_server_destroy(srv);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
    return 0;
}

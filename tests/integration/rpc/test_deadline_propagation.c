/*
 * The deadline travels with the request.  Proves:
 *  - a request whose deadline passes while it waits in the server (its loop
 *    is held by a 300 ms busy handler that arrived in the same read) is not
 *    run: its handler's counter stays 0 even once the server is idle again,
 *    the server counts it in stats.expired, answers it ARPC_ETIMEDOUT (the
 *    client drops that answer as late), and the client's call has already
 *    completed with ARPC_ETIMEDOUT at its own deadline, before the busy call;
 *  - arpc_request_remaining_ms inside a handler is the client's timeout less
 *    the time on the way (<= the timeout, and within REMAINING_SLACK_MS of it:
 *    60 s does not arrive as 1 ms), and -1 when the client set no deadline;
 *  - a call made with arpc_call_opts.parent = the request ends no later than
 *    the request's caller waits: the downstream handler sees the caller's
 *    time (not the channel default), an own shorter timeout still wins, no
 *    deadline stays none, and a request whose deadline has passed makes the
 *    downstream call fail at once with ARPC_ETIMEDOUT, never sent.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <arpc/arpc.h>

#include "rpc_fixture.h"
#include "test.h"
#include "test_stats.h"

static _Atomic int count_runs;
static _Atomic int block_runs;

/* Holds the server's only loop for 300 ms without yielding. */
static int handle_block(arpc_request *req, void *user_data)
{
    atomic_fetch_add(&block_runs, 1);
    int64_t end = test_now_ms() + 300;
    while (test_now_ms() < end) {
    }
    return arpc_buf_append(arpc_request_response(req), "blocked", 7);
}

static int handle_count(arpc_request *req, void *user_data)
{
    atomic_fetch_add(&count_runs, 1);
    return 0;
}

static int handle_remaining(arpc_request *req, void *user_data)
{
    int64_t left = arpc_request_remaining_ms(req);
    return arpc_buf_append(arpc_request_response(req), &left, sizeof(left));
}

typedef struct result {
    _Atomic int runs;
    int status;
    int rank;
    int64_t done_ms;
    char rsp[16];
    size_t rsp_len;
} result;

typedef struct pair {
    arpc_channel *ch;
    result block;
    result count;
    _Atomic int finished;
    int64_t start_ms;
    arpc_wg wg;
} pair;

static pair p;

static void on_result(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    result *r = user_data;
    r->status = status;
    r->done_ms = test_now_ms();
    r->rsp_len = rsp_len < sizeof(r->rsp) ? rsp_len : sizeof(r->rsp);
    if (r->rsp_len > 0)
        memcpy(r->rsp, rsp, r->rsp_len);
    r->rank = atomic_fetch_add(&p.finished, 1);
    atomic_fetch_add(&r->runs, 1);
    arpc_wg_done(&p.wg);
}

/* Both calls leave in the same loop iteration, so in one write. */
static void issue_pair(void *arg)
{
    arpc_call_opts block_opts = fx_timeout(2000);
    arpc_call_opts count_opts = fx_timeout(100);
    p.start_ms = test_now_ms();
    ASSERT_OK(arpc_call_async(p.ch, "block", NULL, 0, &block_opts, on_result, &p.block));
    ASSERT_OK(arpc_call_async(p.ch, "count", NULL, 0, &count_opts, on_result, &p.count));
}

static bool server_canceled_one(void *srv)
{
    arpc_server_stats s;
    arpc_server_get_stats(srv, &s);
    return s.canceled + s.expired >= 1; /* expired: it arrived past its deadline */
}

static void test_expired_request_not_run(void)
{
    arpc_runtime *srv_rt = fx_runtime(1);
    arpc_runtime *cli_rt = fx_runtime(1);
    const fx_method methods[] = {{"echo", fx_handle_echo, NULL},
                                 {"block", handle_block, NULL},
                                 {"count", handle_count, NULL},
                                 {NULL, NULL, NULL}};
    arpc_server *srv = fx_server(srv_rt, NULL, methods);
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    copts.connections_per_endpoint = 1;
    p.ch = fx_channel(cli_rt, srv, &copts);

    /* Connect first, so the pair is written on an open connection at once. */
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(10000);
    ASSERT_OK(arpc_call(p.ch, "echo", "warm", 4, &opts, rsp));

    arpc_wg_init(&p.wg, 2);
    fx_run_on_loop(arpc_runtime_loop(cli_rt, 0), issue_pair, NULL);
    ASSERT_OK(arpc_wg_wait(&p.wg, 30000));

    ASSERT_EQ(atomic_load(&p.block.runs), 1);
    ASSERT_EQ(atomic_load(&p.count.runs), 1);
    ASSERT_OK(p.block.status);
    ASSERT_EQ(p.block.rsp_len, 7);
    ASSERT_MEMEQ(p.block.rsp, "blocked", 7);
    ASSERT_ERR(p.count.status, ARPC_ETIMEDOUT);
    /* The client timed out on its own clock, before the busy call returned. */
    ASSERT_GE(p.count.done_ms - p.start_ms, 100);
    ASSERT_EQ(p.count.rank, 0);
    ASSERT_GE(p.block.done_ms - p.start_ms, 300);

    /* The server is idle again: one more round trip proves it has handled
     * everything it received before. */
    arpc_buf_clear(rsp);
    ASSERT_OK(arpc_call(p.ch, "echo", "idle", 4, &opts, rsp));
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(srv, expired, 1, 10000));
    ASSERT_TRUE(WAIT_CHANNEL_STAT_GE(p.ch, late_answers, 1, 10000));

    arpc_server_stats s;
    arpc_server_get_stats(srv, &s);
    ASSERT_EQ(s.expired, 1);
    ASSERT_EQ(s.requests, 4);
    ASSERT_EQ(atomic_load(&block_runs), 1);
    ASSERT_EQ(atomic_load(&count_runs), 0);
    arpc_channel_stats cs;
    arpc_channel_get_stats(p.ch, &cs);
    ASSERT_EQ(cs.late_answers, 1);
    ASSERT_EQ(cs.reconnects, 1);

    arpc_buf_destroy(rsp);
    arpc_channel_destroy(p.ch);
    arpc_server_destroy(srv);
    ASSERT_EQ(atomic_load(&count_runs), 0);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
}

static int64_t remaining_seen(arpc_channel *ch, int64_t timeout_ms)
{
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(timeout_ms);
    ASSERT_OK(arpc_call(ch, "remaining", NULL, 0, &opts, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), sizeof(int64_t));
    int64_t left;
    memcpy(&left, arpc_buf_data(rsp), sizeof(left));
    arpc_buf_destroy(rsp);
    return left;
}

/* The time a call may spend between arpc_call() and its handler's start on
 * loopback, generously: a sanitizer build on a loaded machine. */
#define REMAINING_SLACK_MS 500

static void test_remaining_ms_in_handler(void)
{
    arpc_runtime *srv_rt = fx_runtime(2);
    arpc_runtime *cli_rt = fx_runtime(2);
    const fx_method methods[] = {{"remaining", handle_remaining, NULL}, {NULL, NULL, NULL}};
    arpc_server *srv = fx_server(srv_rt, NULL, methods);
    arpc_channel *ch = fx_channel(cli_rt, srv, NULL);

    const int64_t timeouts[] = {1000, 5000, 60000};
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        int64_t left = remaining_seen(ch, timeouts[i]);
        fprintf(stderr, "  timeout %lld ms: handler saw %lld ms left\n", (long long)timeouts[i],
                (long long)left);
        ASSERT_GE(left, timeouts[i] - REMAINING_SLACK_MS);
        ASSERT_LE(left, timeouts[i]);
    }
    /* timeout_ms 0: no deadline at all. */
    ASSERT_EQ(remaining_seen(ch, 0), -1);

    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
}

/* ---- arpc_call_opts.parent ------------------------------------------------ */

/* The server calls itself: "relay" calls "remaining" on behalf of its request. */
static arpc_channel *self_channel;
static _Atomic int downstream_runs;

typedef struct relay_args {
    int64_t own_timeout_ms; /* the downstream call's own timeout_ms */
    int64_t wait_ms;        /* sleep this long first (to let the parent expire) */
} relay_args;

static int handle_downstream(arpc_request *req, void *user_data)
{
    atomic_fetch_add(&downstream_runs, 1);
    return handle_remaining(req, user_data);
}

/* Answers: int32 status of the downstream call, then what it answered. */
static int handle_relay(arpc_request *req, void *user_data)
{
    relay_args args;
    ASSERT_EQ(arpc_request_len(req), sizeof(args));
    memcpy(&args, arpc_request_data(req), sizeof(args));
    if (args.wait_ms > 0)
        ASSERT_OK(arpc_coro_sleep_ms(args.wait_ms));
    arpc_call_opts opts = fx_timeout(args.own_timeout_ms);
    opts.parent = req;
    arpc_buf *down;
    ASSERT_OK(arpc_buf_create(&down));
    int64_t start = test_now_ms();
    int32_t status = arpc_call(self_channel, "downstream", NULL, 0, &opts, down);
    if (status == ARPC_ETIMEDOUT)
        ASSERT_LT(test_now_ms() - start, 100); /* failed at once, not at a deadline */
    arpc_buf *rsp = arpc_request_response(req);
    ASSERT_OK(arpc_buf_append(rsp, &status, sizeof(status)));
    ASSERT_OK(arpc_buf_append(rsp, arpc_buf_data(down), arpc_buf_len(down)));
    arpc_buf_destroy(down);
    return 0;
}

/* Calls "relay" with the caller's timeout; returns the downstream status and
 * sets *left to the remaining time the downstream handler saw. */
static int32_t relay_seen(arpc_channel *ch, int64_t caller_timeout_ms, relay_args args,
                          int64_t *left)
{
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(caller_timeout_ms);
    ASSERT_OK(arpc_call(ch, "relay", &args, sizeof(args), &opts, rsp));
    int32_t status;
    ASSERT_GE(arpc_buf_len(rsp), sizeof(status));
    memcpy(&status, arpc_buf_data(rsp), sizeof(status));
    *left = -2;
    if (status == 0) {
        ASSERT_EQ(arpc_buf_len(rsp), sizeof(status) + sizeof(*left));
        memcpy(left, (const char *)arpc_buf_data(rsp) + sizeof(status), sizeof(*left));
    }
    arpc_buf_destroy(rsp);
    return status;
}

static void test_parent_passes_the_deadline_on(void)
{
    arpc_runtime *rt = fx_runtime(2);
    const fx_method methods[] = {
        {"relay", handle_relay, NULL}, {"downstream", handle_downstream, NULL}, {NULL, NULL, NULL}};
    arpc_server *srv = fx_server(rt, NULL, methods);
    arpc_channel_opts co;
    arpc_channel_opts_init(&co);
    co.default_timeout_ms = 1000; /* what a copied -1 would have given */
    self_channel = fx_channel(rt, srv, &co);
    arpc_channel *ch = fx_channel(rt, srv, NULL);
    int64_t left;

    /* No own deadline: the caller's 5 s reach the downstream handler. */
    ASSERT_OK(relay_seen(ch, 5000, (relay_args){ARPC_NO_DEADLINE, 0}, &left));
    fprintf(stderr, "  caller 5000 ms, own none: downstream saw %lld ms\n", (long long)left);
    ASSERT_GE(left, 5000 - 2 * REMAINING_SLACK_MS);
    ASSERT_LE(left, 5000);
    /* The own timeout left at the channel default (1 s) is earlier than the caller's 5 s. */
    ASSERT_OK(relay_seen(ch, 5000, (relay_args){ARPC_TIMEOUT_DEFAULT, 0}, &left));
    ASSERT_LE(left, 1000);
    /* An own 300 ms is earlier than the caller's 5 s: it wins. */
    ASSERT_OK(relay_seen(ch, 5000, (relay_args){300, 0}, &left));
    ASSERT_LE(left, 300);
    ASSERT_GE(left, 300 - REMAINING_SLACK_MS < 0 ? 0 : 300 - REMAINING_SLACK_MS);
    /* Neither has a deadline: none downstream either. */
    ASSERT_OK(relay_seen(ch, ARPC_NO_DEADLINE, (relay_args){ARPC_NO_DEADLINE, 0}, &left));
    ASSERT_EQ(left, -1);

    /* The caller's 50 ms have passed when the relay calls, 150 ms in: the
     * downstream call fails at once with ARPC_ETIMEDOUT (checked inside
     * handle_relay) and is never sent.  The caller has given up by then, so
     * the relay's own answer arrives late and is dropped. */
    int before = atomic_load(&downstream_runs);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    relay_args late = {ARPC_NO_DEADLINE, 150};
    arpc_call_opts opts = fx_timeout(50);
    ASSERT_ERR(arpc_call(ch, "relay", &late, sizeof(late), &opts, rsp), ARPC_ETIMEDOUT);
    arpc_buf_destroy(rsp);
    /* The relay ran on (its deadline is checked at its start only) and ended,
     * canceled by the client's CANCEL or past its deadline (its answer dropped on
     * the server or as late by the client): wait for that end, then check the
     * downstream handler never ran. */
    ASSERT_TRUE(wait_until(server_canceled_one, srv, 10000));
    ASSERT_EQ(atomic_load(&downstream_runs), before);

    arpc_channel_destroy(ch);
    arpc_channel_destroy(self_channel);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    RUN_TEST(test_expired_request_not_run);
    RUN_TEST(test_remaining_ms_in_handler);
    RUN_TEST(test_parent_passes_the_deadline_on);
    return 0;
}

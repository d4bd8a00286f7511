/*
 * Many calls in flight on one connection.  Proves:
 *  - 10,000 calls (2,000 under TSan, see CALLS) started from one loop
 *    iteration on a channel with one connection are all in flight together
 *    (the loop cannot complete any of them before the issuing task returns),
 *    travel over that one connection
 *    (the server sees one connection; the channel connected once), and each
 *    gets its own answer (every payload is distinct and checked);
 *  - the same when the server answers out of order: each request sleeps a
 *    pseudo-random 0..20 ms (seeded; ARPC_TEST_SEED replays) before its echo,
 *    answers complete in an order different from the one they were sent in,
 *    and the request-id matching still routes every answer to its call.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

#include "rpc_fixture.h"
#include "test.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ARPC_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define ARPC_TEST_TSAN 1
#endif

/* Under TSan every coroutine is a TSan fiber whose context costs about a
 * megabyte and a millisecond or two to create, so 10,000 live at once
 * exhaust the process's mappings (vm.max_map_count); TSan runs a smaller
 * burst.  For the same reason the server needs seconds for one burst, and it
 * answers the connection's probe PING only at the end of the loop iteration
 * that runs the burst: TSan gets a heartbeat timeout to match. */
#ifdef ARPC_TEST_TSAN
#define CALLS                2000
#define HEARTBEAT_TIMEOUT_MS 60000
#else
#define CALLS                10000
#define HEARTBEAT_TIMEOUT_MS 1000 /* the default */
#endif
#define PAYLOAD 24

/* Payload: call index (4 bytes), delay ms (4 bytes), then index-dependent fill. */
typedef struct inflight inflight;

typedef struct inflight_call {
    inflight *owner;
    uint8_t req[PAYLOAD];
    _Atomic int runs;
    int status;
    bool bytes_ok;
    int order; /* completion rank */
} inflight_call;

struct inflight {
    arpc_channel *ch;
    const char *method;
    inflight_call calls[CALLS];
    _Atomic int completed;
    int issued_before_any_done; /* completions seen when the issuing task ended */
    arpc_wg done;
};

static int handle_jitter(arpc_request *req, void *user_data)
{
    if (arpc_request_len(req) != PAYLOAD)
        return ARPC_EINVAL;
    uint32_t delay;
    memcpy(&delay, (const uint8_t *)arpc_request_data(req) + 4, 4);
    if (delay > 0)
        arpc_coro_sleep_ms(delay);
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

static void on_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    inflight_call *c = user_data;
    inflight *f = c->owner;
    c->status = status;
    c->bytes_ok = rsp_len == PAYLOAD && memcmp(rsp, c->req, PAYLOAD) == 0;
    c->order = atomic_fetch_add(&f->completed, 1);
    atomic_fetch_add(&c->runs, 1);
    arpc_wg_done(&f->done);
}

static void issue_all(void *arg)
{
    inflight *f = arg;
    arpc_call_opts opts = fx_timeout(60000);
    for (int i = 0; i < CALLS; i++)
        ASSERT_OK(arpc_call_async(f->ch, f->method, f->calls[i].req, PAYLOAD, &opts, on_done,
                                  &f->calls[i]));
    f->issued_before_any_done = atomic_load(&f->completed);
}

static void run_inflight(const char *method, bool jitter)
{
    arpc_runtime *srv_rt = fx_runtime(2);
    arpc_runtime *cli_rt = fx_runtime(1);
    const fx_method methods[] = {
        {"echo", fx_handle_echo, NULL}, {"jitter", handle_jitter, NULL}, {NULL, NULL, NULL}};
    arpc_server *srv = fx_server(srv_rt, NULL, methods);
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    copts.connections_per_endpoint = 1;
    copts.heartbeat_timeout_ms = HEARTBEAT_TIMEOUT_MS;
    arpc_channel *ch = fx_channel(cli_rt, srv, &copts);

    inflight *f = calloc(1, sizeof(*f));
    ASSERT_TRUE(f != NULL);
    f->ch = ch;
    f->method = method;
    arpc_wg_init(&f->done, CALLS);
    for (uint32_t i = 0; i < CALLS; i++) {
        uint32_t delay = jitter ? (uint32_t)(test_rand() % 21) : 0;
        f->calls[i].owner = f;
        memcpy(f->calls[i].req, &i, 4);
        memcpy(f->calls[i].req + 4, &delay, 4);
        fx_fill(f->calls[i].req + 8, PAYLOAD - 8, i);
    }

    fx_run_on_loop(arpc_runtime_loop(cli_rt, 0), issue_all, f);
    /* All were started before the loop could run a single completion. */
    ASSERT_EQ(f->issued_before_any_done, 0);
    ASSERT_OK(arpc_wg_wait(&f->done, 60000));

    int out_of_order = 0;
    for (int i = 0; i < CALLS; i++) {
        inflight_call *c = &f->calls[i];
        ASSERT_EQ(atomic_load(&c->runs), 1);
        ASSERT_OK(c->status);
        ASSERT_TRUE(c->bytes_ok);
        out_of_order += c->order != i;
    }
    fprintf(stderr, "  %s: %d of %d answers completed out of send order\n", method, out_of_order,
            CALLS);
    if (jitter)
        ASSERT_GT(out_of_order, CALLS / 10);

    arpc_server_stats stats;
    arpc_server_get_stats(srv, &stats);
    ASSERT_EQ(stats.connections, 1);
    ASSERT_EQ(stats.requests, CALLS);
    arpc_channel_stats cstats;
    arpc_channel_get_stats(ch, &cstats);
    ASSERT_EQ(cstats.reconnects, 1);
    ASSERT_EQ(cstats.retries, 0);
    ASSERT_EQ(cstats.calls, CALLS);

    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
    free(f);
}

static void test_burst_in_flight_one_connection(void)
{
    run_inflight("echo", false);
}

static void test_burst_answered_out_of_order(void)
{
    run_inflight("jitter", true);
}

int main(void)
{
    test_seed();
    RUN_TEST(test_burst_in_flight_one_connection);
    RUN_TEST(test_burst_answered_out_of_order);
    return 0;
}

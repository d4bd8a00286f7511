/*
 * Server self-protection and frame limits.  Proves:
 *  - overload: with max_in_flight 4 and ten `block` calls arriving together
 *    (a handler that answers only once the test releases it), exactly 4
 *    succeed and 6 are answered ARPC_EOVERLOAD at once: while the accepted
 *    ones are still held, so before any of them finishes;
 *    stats.overloaded == 6; once the load is gone the server serves again;
 *  - an unknown method is answered ARPC_ENOMETHOD and counted;
 *  - a request exactly at the server's max_frame_size is served; one byte
 *    more fails locally with ARPC_ETOOBIG (the server announced its limit):
 *    nothing is sent, no protocol error, and both channels keep their
 *    connections;
 *  - client side: a request bigger than the channel's own max_frame_size is
 *    refused locally with ARPC_ETOOBIG (sync and async; no callback, nothing
 *    sent), one exactly at the limit goes through, and an answer bigger than
 *    the limit fails its call with ARPC_ETOOBIG without harming the channel.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

#include "rpc_fixture.h"
#include "test.h"

#define HEADER    32
#define LIMIT_64K (64u * 1024)

static arpc_runtime *srv_rt;
static arpc_runtime *cli_rt;

static arpc_channel *one_conn_channel(arpc_server *srv, uint32_t max_frame)
{
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    copts.connections_per_endpoint = 1;
    if (max_frame != 0)
        copts.max_frame_size = max_frame;
    return fx_channel(cli_rt, srv, &copts);
}

static void echo_ok(arpc_channel *ch, size_t len, uint32_t seed)
{
    uint8_t *req = malloc(len + 1);
    fx_fill(req, len, seed);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(10000);
    ASSERT_OK(arpc_call(ch, "echo", req, len, &opts, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), len);
    ASSERT_MEMEQ(arpc_buf_data(rsp), req, len);
    arpc_buf_destroy(rsp);
    free(req);
}

/* ---- overload ------------------------------------------------------------------------- */

#define BURST 10

typedef struct burst_call {
    _Atomic int runs;
    int status;
    int rank;
    int64_t done_ms;
} burst_call;

typedef struct burst {
    arpc_channel *ch;
    burst_call calls[BURST];
    _Atomic int finished;
    int64_t start_ms;
    arpc_wg wg;
} burst;

static burst bu;

/* `block`: answers once `released` is set (polled each millisecond, 30 s at most). */
static _Atomic bool released;

static int handle_block(arpc_request *req, void *user_data)
{
    for (int i = 0; i < 30000 && !atomic_load(&released); i++)
        arpc_coro_sleep_ms(1);
    return 0;
}

static bool six_finished(void *arg)
{
    return atomic_load(&bu.finished) >= BURST - 4;
}

static void on_burst_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    burst_call *c = user_data;
    c->status = status;
    c->done_ms = test_now_ms();
    c->rank = atomic_fetch_add(&bu.finished, 1);
    atomic_fetch_add(&c->runs, 1);
    arpc_wg_done(&bu.wg);
}

/* From one loop iteration: the ten requests reach the server together. */
static void issue_burst(void *arg)
{
    arpc_call_opts opts = fx_timeout(10000);
    bu.start_ms = test_now_ms();
    for (int i = 0; i < BURST; i++)
        ASSERT_OK(arpc_call_async(bu.ch, "block", "200", 3, &opts, on_burst_done, &bu.calls[i]));
}

static void test_overload(void)
{
    arpc_server_opts sopts;
    arpc_server_opts_init(&sopts);
    sopts.max_in_flight = 4;
    const fx_method methods[] = {{"echo", fx_handle_echo, NULL},
                                 {"sleep", fx_handle_sleep, NULL},
                                 {"block", handle_block, NULL},
                                 {NULL, NULL, NULL}};
    arpc_server *srv = fx_server(srv_rt, &sopts, methods);
    bu.ch = one_conn_channel(srv, 0);
    echo_ok(bu.ch, 4, 1); /* connected, and nothing in flight */

    atomic_store(&released, false);
    arpc_wg_init(&bu.wg, BURST);
    fx_run_on_loop(arpc_runtime_loop(cli_rt, 0), issue_burst, NULL);
    /* The six refused ones are answered while the four accepted are held. */
    ASSERT_TRUE(wait_until(six_finished, NULL, 10000));
    int64_t released_ms = test_now_ms();
    atomic_store(&released, true);
    ASSERT_OK(arpc_wg_wait(&bu.wg, 30000));

    int ok = 0, overloaded = 0;
    int64_t first_ok_ms = INT64_MAX;
    for (int i = 0; i < BURST; i++) {
        burst_call *c = &bu.calls[i];
        int64_t elapsed = c->done_ms - bu.start_ms;
        ASSERT_EQ(atomic_load(&c->runs), 1);
        if (c->status == 0) {
            ok++;
            ASSERT_GE(c->done_ms, released_ms); /* held until the release */
            if (c->done_ms < first_ok_ms)
                first_ok_ms = c->done_ms;
        } else {
            ASSERT_ERR(c->status, ARPC_EOVERLOAD);
            overloaded++;
            ASSERT_LT(elapsed, 5000);      /* at once, not after its 10 s deadline */
            ASSERT_LT(c->rank, BURST - 4); /* before any accepted call finished */
        }
    }
    ASSERT_EQ(ok, 4);
    ASSERT_EQ(overloaded, 6);
    arpc_server_stats s;
    arpc_server_get_stats(srv, &s);
    ASSERT_EQ(s.overloaded, 6);

    /* The limit counts requests in progress, not requests ever seen. */
    echo_ok(bu.ch, 16, 2);

    /* An unknown method is answered and counted. */
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(10000);
    ASSERT_ERR(arpc_call(bu.ch, "nope", "x", 1, &opts, rsp), ARPC_ENOMETHOD);
    arpc_server_get_stats(srv, &s);
    ASSERT_EQ(s.unknown_method, 1);
    ASSERT_EQ(s.overloaded, 6);
    arpc_buf_destroy(rsp);

    arpc_channel_destroy(bu.ch);
    arpc_server_destroy(srv);
}

/* ---- frame size limits ------------------------------------------------------------ */

static void test_server_max_frame(void)
{
    arpc_server_opts sopts;
    arpc_server_opts_init(&sopts);
    sopts.max_frame_size = LIMIT_64K;
    const fx_method methods[] = {{"echo", fx_handle_echo, NULL}, {NULL, NULL, NULL}};
    arpc_server *srv = fx_server(srv_rt, &sopts, methods);
    arpc_channel *victim = one_conn_channel(srv, 0);
    arpc_channel *bystander = one_conn_channel(srv, 0);
    echo_ok(victim, 8, 3);
    echo_ok(bystander, 8, 4);

    /* Header + "echo" + payload == the limit: accepted. */
    size_t fits = LIMIT_64K - HEADER - 4;
    echo_ok(victim, fits, 5);

    /* One byte more: the server announced its limit when the connection
     * started, so the call fails locally with ARPC_ETOOBIG, nothing is sent,
     * and the connection (and every other call on it) lives on. */
    uint8_t *req = malloc(fits + 1);
    fx_fill(req, fits + 1, 6);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(10000);
    arpc_server_stats s;
    arpc_server_get_stats(srv, &s);
    uint64_t requests = s.requests;
    ASSERT_ERR(arpc_call(victim, "echo", req, fits + 1, &opts, rsp), ARPC_ETOOBIG);
    ASSERT_EQ(arpc_buf_len(rsp), 0);
    free(req);
    arpc_server_get_stats(srv, &s);
    ASSERT_EQ(s.requests, requests);
    ASSERT_EQ(s.protocol_errors, 0);
    ASSERT_EQ(s.connections, 2);

    /* Neither channel's connection noticed. */
    echo_ok(bystander, 1000, 7);
    arpc_channel_stats cs;
    arpc_channel_get_stats(bystander, &cs);
    ASSERT_EQ(cs.reconnects, 1);
    echo_ok(victim, 1000, 8);
    arpc_channel_get_stats(victim, &cs);
    ASSERT_EQ(cs.reconnects, 1);

    arpc_buf_destroy(rsp);
    arpc_channel_destroy(victim);
    arpc_channel_destroy(bystander);
    arpc_server_destroy(srv);
}

static _Atomic int never_runs;

static void on_never(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    atomic_fetch_add(&never_runs, 1);
}

/* Answers `len` bytes, `len` given as decimal in the payload. */
static int handle_big(arpc_request *req, void *user_data)
{
    char text[32];
    size_t n = arpc_request_len(req);
    if (n == 0 || n >= sizeof(text))
        return ARPC_EINVAL;
    memcpy(text, arpc_request_data(req), n);
    text[n] = '\0';
    size_t len = strtoul(text, NULL, 10);
    void *out;
    int rc = arpc_buf_reserve(arpc_request_response(req), len, &out);
    if (rc < 0)
        return rc;
    memset(out, 'b', len);
    arpc_buf_commit(arpc_request_response(req), len);
    return 0;
}

static void test_client_max_frame(void)
{
    const fx_method methods[] = {
        {"echo", fx_handle_echo, NULL}, {"big", handle_big, NULL}, {NULL, NULL, NULL}};
    arpc_server *srv = fx_server(srv_rt, NULL, methods);
    arpc_channel *ch = one_conn_channel(srv, LIMIT_64K);
    echo_ok(ch, 8, 9);

    size_t fits = LIMIT_64K - HEADER - 4;
    uint8_t *req = calloc(1, LIMIT_64K);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(10000);
    arpc_server_stats before, after;
    arpc_server_get_stats(srv, &before);
    ASSERT_ERR(arpc_call(ch, "echo", req, fits + 1, &opts, rsp), ARPC_ETOOBIG);
    ASSERT_ERR(arpc_call(ch, "echo", req, LIMIT_64K, &opts, rsp), ARPC_ETOOBIG);
    ASSERT_ERR(arpc_call_async(ch, "echo", req, fits + 1, &opts, on_never, NULL), ARPC_ETOOBIG);
    ASSERT_EQ(arpc_buf_len(rsp), 0);
    /* Exactly at the limit: sent and answered (the answer is 4 bytes smaller). */
    echo_ok(ch, fits, 10);
    arpc_server_get_stats(srv, &after);
    ASSERT_EQ(after.requests, before.requests + 1);
    ASSERT_EQ(atomic_load(&never_runs), 0);

    /* An answer over the channel's limit fails its call, not the channel. */
    char text[32];
    snprintf(text, sizeof(text), "%u", LIMIT_64K);
    arpc_buf_clear(rsp);
    ASSERT_ERR(arpc_call(ch, "big", text, strlen(text), &opts, rsp), ARPC_ETOOBIG);
    ASSERT_EQ(arpc_buf_len(rsp), 0);
    snprintf(text, sizeof(text), "%u", LIMIT_64K - HEADER);
    ASSERT_OK(arpc_call(ch, "big", text, strlen(text), &opts, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), LIMIT_64K - HEADER);
    echo_ok(ch, 8, 11);

    free(req);
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
}

int main(void)
{
    srv_rt = fx_runtime(2);
    cli_rt = fx_runtime(1);
    RUN_TEST(test_overload);
    RUN_TEST(test_server_max_frame);
    RUN_TEST(test_client_max_frame);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
    return 0;
}

/*
 * Thrift interop (docs/thrift.md), both directions, against Debian's python3-thrift with
 * stubs generated from proto/arpc/echo.thrift (tests/interop/thrift/):
 *  - Python's generated client against arpc-echo-server: framed binary, strict and
 *    non-strict; four pipelined calls in one write whose handlers finish in another order
 *    (answers in request order, seqids kept, the handlers side by side); an unknown method
 *    (TApplicationException UNKNOWN_METHOD, the connection lives on); ONEWAY.
 *  - arpc's client (ARPC_PROTOCOL_THRIFT) against Python's TNonblockingServer and
 *    TThreadedServer: 1,000 concurrent calls on pooled connections (pipelined 250 deep on
 *    4 against the threaded server; at most 64 per connection on 16 against the
 *    nonblocking one, see test_nonblocking_server), each answer checked;
 *    a deadline shorter than the server's sleep (ETIMEDOUT in time, the connection still
 *    good after the late answer); a frozen server (SIGSTOP): the call's deadline, then the
 *    probe declares the connection dead; a killed server (SIGKILL): calls fail fast.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "interop_util.h"
#include "test.h"
#include "test_stats.h"

#define PEER INTEROP_THRIFT_SCRIPTS "/thrift_peer.py"

static arpc_runtime *rt;

static void require_thrift(void)
{
    FILE *f = fopen(INTEROP_THRIFT_STUBS "/MISSING", "r");
    if (f != NULL) {
        char why[256] = "";
        if (fgets(why, sizeof(why), f) == NULL)
            why[0] = '\0';
        fclose(f);
        fprintf(stderr, "SKIP: %s", why);
        exit(INTEROP_SKIP);
    }
    if (access(INTEROP_THRIFT_STUBS "/stamp", F_OK) != 0) {
        fprintf(stderr, "SKIP: no Thrift stubs in %s\n", INTEROP_THRIFT_STUBS);
        exit(INTEROP_SKIP);
    }
}

/* ---- Python's client against arpc's server ---- */

static void test_python_client(void)
{
    interop_proc srv;
    interop_start_echo_server(NULL, &srv);
    char target[64];
    interop_addr(target, sizeof(target), srv.port);
    const char *args[] = {PEER,      "--stubs",   INTEROP_THRIFT_STUBS, "--target", target,
                          "strict",  "nonstrict", "pipelined",          "unknown",  "oneway",
                          NULL};
    interop_proc cli;
    interop_start_python(args, NULL, &cli);
    const char *cases[] = {"strict ok", "nonstrict ok", "pipelined ok", "unknown ok", "oneway ok"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[512];
        ASSERT_TRUE(interop_wait_line(&cli, cases[i], line, sizeof(line), 20000));
    }
    ASSERT_EQ(interop_reap(&cli, 10000), 0);
    interop_kill(&srv);
}

/* ---- arpc's client against Python's servers ---- */

static void echo_args(arpc_buf *out, const void *data, size_t len)
{
    arpc_thrift_writer w;
    arpc_thrift_writer_init(&w, out);
    arpc_thrift_write_field(&w, ARPC_THRIFT_STRING, 1);
    arpc_thrift_write_binary(&w, data, len);
    arpc_thrift_write_stop(&w);
    ASSERT_OK(w.err);
}

static void sleep_args(arpc_buf *out, int32_t ms)
{
    arpc_thrift_writer w;
    arpc_thrift_writer_init(&w, out);
    arpc_thrift_write_field(&w, ARPC_THRIFT_I32, 1);
    arpc_thrift_write_i32(&w, ms);
    arpc_thrift_write_stop(&w);
    ASSERT_OK(w.err);
}

/* Field 0 of a result struct, a binary.  @return true if it is there and equals want. */
static bool result_is(const void *rsp, size_t len, const void *want, size_t want_len)
{
    arpc_thrift_reader r;
    arpc_thrift_reader_init(&r, rsp, len);
    arpc_thrift_type type;
    int16_t id;
    bool found = false;
    while (arpc_thrift_read_field(&r, &type, &id)) {
        if (id == 0 && type == ARPC_THRIFT_STRING) {
            size_t n;
            const void *p = arpc_thrift_read_binary(&r, &n);
            found = p != NULL && n == want_len && memcmp(p, want, n) == 0;
        } else {
            arpc_thrift_skip(&r, type);
        }
    }
    return found && r.err == 0;
}

static arpc_channel *thrift_channel(int port, uint32_t conns, uint32_t per_conn)
{
    char target[64];
    interop_addr(target, sizeof(target), port);
    arpc_channel_opts o;
    arpc_channel_opts_init(&o);
    o.protocol = ARPC_PROTOCOL_THRIFT;
    o.connections_per_endpoint = conns;
    o.max_in_flight_per_connection = per_conn;
    o.default_timeout_ms = 10000;
    o.max_retries = 0;
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &o, &ch));
    return ch;
}

#define CONCURRENT 1000

typedef struct pending_call {
    arpc_buf *args;
    char text[16];
} pending_call;

static atomic_int done_ok, done_all;

static void on_done(int status, const void *rsp, size_t rsp_len, void *arg)
{
    pending_call *pc = arg;
    if (status == 0 && result_is(rsp, rsp_len, pc->text, strlen(pc->text)))
        atomic_fetch_add(&done_ok, 1);
    else
        fprintf(stderr, "call %s: status %d (%s)\n", pc->text, status, arpc_err_name(status));
    atomic_fetch_add(&done_all, 1);
}

static bool all_done(void *arg)
{
    (void)arg;
    return atomic_load(&done_all) == CONCURRENT;
}

static void concurrent_calls(arpc_channel *ch)
{
    static pending_call pcs[CONCURRENT];
    atomic_store(&done_ok, 0);
    atomic_store(&done_all, 0);
    for (int i = 0; i < CONCURRENT; i++) {
        snprintf(pcs[i].text, sizeof(pcs[i].text), "call-%d", i);
        ASSERT_OK(arpc_buf_create(&pcs[i].args));
        echo_args(pcs[i].args, pcs[i].text, strlen(pcs[i].text));
    }
    for (int i = 0; i < CONCURRENT; i++)
        ASSERT_OK(arpc_call_async(ch, "echo", arpc_buf_data(pcs[i].args),
                                  arpc_buf_len(pcs[i].args), NULL, on_done, &pcs[i]));
    ASSERT_TRUE(wait_until(all_done, NULL, 30000));
    ASSERT_EQ(atomic_load(&done_ok), CONCURRENT);
    for (int i = 0; i < CONCURRENT; i++)
        arpc_buf_destroy(pcs[i].args);
}

static int call_sleep(arpc_channel *ch, int32_t ms, int64_t timeout_ms, arpc_buf *rsp)
{
    arpc_buf *args;
    ASSERT_OK(arpc_buf_create(&args));
    sleep_args(args, ms);
    arpc_call_opts co;
    arpc_call_opts_init(&co);
    co.timeout_ms = timeout_ms;
    int rc = arpc_call(ch, "sleep", arpc_buf_data(args), arpc_buf_len(args), &co, rsp);
    arpc_buf_destroy(args);
    return rc;
}

static void call_echo_ok(arpc_channel *ch, const char *text)
{
    arpc_buf *args, *rsp;
    ASSERT_OK(arpc_buf_create(&args));
    ASSERT_OK(arpc_buf_create(&rsp));
    echo_args(args, text, strlen(text));
    ASSERT_OK(arpc_call(ch, "echo", arpc_buf_data(args), arpc_buf_len(args), NULL, rsp));
    ASSERT_TRUE(result_is(arpc_buf_data(rsp), arpc_buf_len(rsp), text, strlen(text)));
    arpc_buf_destroy(args);
    arpc_buf_destroy(rsp);
}

/* One echo call; true when it succeeded (wait_until's predicate). */
static bool echo_succeeds(void *arg)
{
    arpc_channel *ch = arg;
    arpc_buf *args, *rsp;
    ASSERT_OK(arpc_buf_create(&args));
    ASSERT_OK(arpc_buf_create(&rsp));
    echo_args(args, "thawed", 6);
    int rc = arpc_call(ch, "echo", arpc_buf_data(args), arpc_buf_len(args), NULL, rsp);
    bool ok = rc == 0 && result_is(arpc_buf_data(rsp), arpc_buf_len(rsp), "thawed", 6);
    arpc_buf_destroy(args);
    arpc_buf_destroy(rsp);
    return ok;
}

static void start_peer(const char *kind, interop_proc *srv)
{
    const char *args[] = {PEER, "--stubs", INTEROP_THRIFT_STUBS, "--serve", kind, NULL};
    interop_start_python(args, "thrift_peer.py", srv);
}

static void against_server(const char *kind, uint32_t conns, uint32_t per_conn)
{
    interop_proc srv;
    start_peer(kind, &srv);
    arpc_channel *ch = thrift_channel(srv.port, conns, per_conn);
    call_echo_ok(ch, "first");
    concurrent_calls(ch);

    /* A deadline shorter than the sleep: ETIMEDOUT at it, and the connection, whose late
     * answer comes in its place in the order, still carries calls. */
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    int64_t t0 = test_now_ms();
    ASSERT_ERR(call_sleep(ch, 1500, 200, rsp), ARPC_ETIMEDOUT);
    int64_t took = test_now_ms() - t0;
    ASSERT_GE(took, 150);
    ASSERT_LT(took, 1200);
    ASSERT_OK(call_sleep(ch, 10, 5000, rsp));
    ASSERT_TRUE(result_is(arpc_buf_data(rsp), arpc_buf_len(rsp), "10", 2));
    call_echo_ok(ch, "after the deadline");

    /* Frozen: the call's deadline ends it; then, nothing left that the channel waits
     * for, the probe goes and its silence closes the connection (heartbeat). */
    arpc_channel_stats st0;
    arpc_channel_get_stats(ch, &st0);
    interop_freeze(&srv);
    t0 = test_now_ms();
    ASSERT_ERR(call_sleep(ch, 0, 300, rsp), ARPC_ETIMEDOUT);
    ASSERT_LT(test_now_ms() - t0, 1500);
    ASSERT_TRUE(WAIT_CHANNEL_STAT_GE(ch, heartbeat_failures, st0.heartbeat_failures + 1, 10000));
    interop_thaw(&srv);
    /* Thawed: the endpoint, ejected by the heartbeat's verdict, is probed back in. */
    ASSERT_TRUE(wait_until(echo_succeeds, ch, 10000));

    /* Killed: calls fail, fast, with a connection error. */
    interop_signal(&srv, SIGKILL);
    ASSERT_EQ(interop_reap(&srv, 5000), 128 + SIGKILL);
    t0 = test_now_ms();
    int rc = call_sleep(ch, 0, 3000, rsp);
    ASSERT_TRUE(rc != 0 && rc != ARPC_ETIMEDOUT);
    ASSERT_LT(test_now_ms() - t0, 2500);
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
    interop_kill(&srv);
}

static void test_nonblocking_server(void)
{
    /* Python's TNonblockingServer stops reading a connection whose one recv() filled its
     * 8 KiB buffer (it waits for frames it never reads): 16 connections of at most 64
     * calls each keep every connection's unread requests under that, all 1,000 in flight. */
    against_server("nonblocking", 16, 64);
}

static void test_threaded_server(void)
{
    against_server("threaded", 4, 0); /* 250 pipelined on each connection */
}

int main(void)
{
    require_thrift();
    arpc_runtime_opts ro;
    arpc_runtime_opts_init(&ro);
    ro.loops = 2;
    ASSERT_OK(arpc_runtime_create(&ro, &rt));
    RUN_TEST(test_python_client);
    RUN_TEST(test_nonblocking_server);
    RUN_TEST(test_threaded_server);
    arpc_runtime_destroy(rt);
    return 0;
}

/*
 * Allocation failure injected into typed calls (include/arpc/protobuf.h), on
 * the client and the server (both in this process).  For every N, a fresh
 * server (its requests' arenas not made yet) and channel are set up and
 * connected, then the N-th allocation through the library's hooks fails
 * while they carry a typed sync call answered on the heap, one answered into
 * an arena, an async call, a server-streaming call and a client-streaming
 * call.  Proves: nothing aborts or leaks (ASan); each call ends once, with
 * the right answer or a negative arpc_err (ARPC_ENOMEM from an unpack, never
 * ARPC_EBADMSG for well-formed bytes); once injection stops, typed calls
 * succeed again.  N runs until a whole round passes without reaching its
 * N-th allocation.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <arpc/arpc.h>
#include <arpc/protobuf.h>

#include "base/alloc.h"
#include "fault_util.h"
#include "test.h"
#include "tpb_glue.h"
#include "tpb_handlers.h"

#define CALL_TIMEOUT 3000

static int sum_add(arpc_request *req, const Tpb__Num *in, Tpb__Sum *out, void *user_data)
{
    out->value = in->a + in->b;
    out->note = in->note; /* points into the request's arena */
    return 0;
}

static const tpb__calc__arpc_handlers handlers = {
    .sum_add = sum_add, .count = tpb_handle_count, .total = tpb_handle_total};

/* A typed call's result: its answer right, or a failure that says why. */
static void check(int rc, bool right, const char *what)
{
    if (rc == 0 && !right) {
        fprintf(stderr, "FAIL %s: a wrong answer\n", what);
        abort();
    }
    if (rc > 0 || rc == ARPC_EBADMSG) {
        fprintf(stderr, "FAIL %s: %d %s\n", what, rc, arpc_err_name(rc));
        abort();
    }
}

static arpc_call_opts opts(arpc_arena *arena)
{
    arpc_call_opts o = fault_call_opts(CALL_TIMEOUT);
    o.arena = arena;
    return o;
}

static Tpb__Num num(int64_t a, int64_t b)
{
    Tpb__Num n = TPB__NUM__INIT;
    n.a = a;
    n.b = b;
    n.note = "some note";
    return n;
}

static void unary_calls(arpc_channel *ch, arpc_arena *arena)
{
    Tpb__Num req = num(2, 3);
    arpc_call_opts o = opts(NULL);
    Tpb__Sum *rsp = NULL;
    int rc = tpb__calc__arpc_sum_add(ch, &req, &o, &rsp);
    check(rc, rc == 0 && rsp->value == 5 && strcmp(rsp->note, "some note") == 0, "heap");
    if (rc == 0)
        tpb__sum__free_unpacked(rsp, NULL);
    o = opts(arena);
    rc = tpb__calc__arpc_sum_add(ch, &req, &o, &rsp);
    check(rc, rc == 0 && rsp->value == 5, "arena");
    arpc_arena_reset(arena);
}

typedef struct async_rec {
    arpc_event done;
    _Atomic int runs;
    int status;
    bool right;
} async_rec;

static void on_sum(int status, const Tpb__Sum *rsp, void *user_data)
{
    async_rec *r = user_data;
    r->status = status;
    r->right = status != 0 || (rsp != NULL && rsp->value == 5);
    atomic_fetch_add(&r->runs, 1);
    arpc_event_signal(&r->done);
}

static void async_call(arpc_channel *ch)
{
    async_rec r = {.runs = 0};
    arpc_event_init(&r.done);
    Tpb__Num req = num(2, 3);
    arpc_call_opts o = opts(NULL);
    int rc = tpb__calc__arpc_sum_add_async(ch, &req, &o, on_sum, &r);
    if (rc < 0) {
        ASSERT_ERR(rc, ARPC_ENOMEM);
        return;
    }
    ASSERT_OK(arpc_event_wait(&r.done, 2 * CALL_TIMEOUT));
    ASSERT_EQ(atomic_load(&r.runs), 1);
    check(r.status, r.right, "async");
}

static void stream_calls(arpc_channel *ch)
{
    Tpb__Num req = num(1, 4);
    arpc_call_opts o = opts(NULL);
    arpc_stream *st;
    int rc = tpb__calc__arpc_count_open(ch, &req, &o, &st);
    if (rc == 0) {
        Tpb__Sum *msg;
        int64_t want = 1;
        while ((rc = tpb__calc__arpc_count_read(st, NULL, &msg)) == 0) {
            check(0, msg->value == want++, "server stream");
            tpb__sum__free_unpacked(msg, NULL);
        }
        int end = arpc_stream_finish(st, NULL);
        check(end, rc == ARPC_EEOS && want == 5, "server stream end");
        arpc_stream_destroy(st);
    } else {
        check(rc, false, "server stream open");
    }
    rc = tpb__calc__arpc_total_open(ch, &o, &st);
    if (rc < 0) {
        check(rc, false, "client stream open");
        return;
    }
    for (int64_t v = 1; v <= 3; v++) {
        Tpb__Num n = num(v, 0);
        (void)tpb__calc__arpc_total_write(st, &n); /* a failure is the finish's too */
    }
    Tpb__Sum *rsp = NULL;
    rc = tpb__calc__arpc_total_close_and_recv(st, NULL, NULL, &rsp);
    check(rc, rc == 0 && rsp->value == 6, "client stream");
    if (rc == 0)
        tpb__sum__free_unpacked(rsp, NULL);
    arpc_stream_destroy(st);
}

static bool typed_call_works(void *ch)
{
    Tpb__Num req = num(2, 3);
    arpc_call_opts o = opts(NULL);
    Tpb__Sum *rsp;
    if (tpb__calc__arpc_sum_add(ch, &req, &o, &rsp) != 0)
        return false;
    bool right = rsp->value == 5;
    tpb__sum__free_unpacked(rsp, NULL);
    return right;
}

/* One round with the n-th allocation failing.  @return true if it failed one. */
static bool round_with(arpc_runtime *srv_rt, arpc_runtime *cli_rt, int64_t n)
{
    arpc_server *srv;
    ASSERT_OK(arpc_server_create(srv_rt, NULL, &srv));
    ASSERT_OK(tpb__calc__arpc_register(srv, &handlers, NULL));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    arpc_channel_opts co;
    fault_channel_opts_init(&co);
    co.reconnect_backoff_min_ms = 1;
    co.reconnect_backoff_max_ms = 20;
    arpc_channel *ch = fault_channel(cli_rt, arpc_server_port(srv), &co);
    ASSERT_EQ(fault_echo_call(ch, CALL_TIMEOUT), ARPC_ENOMETHOD); /* connected */
    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));

    uint64_t failed_before = arpc__alloc_failures();
    arpc__alloc_fail_after(n);
    unary_calls(ch, arena);
    async_call(ch);
    stream_calls(ch);
    arpc__alloc_fail_after(-1);
    bool failed = arpc__alloc_failures() != failed_before;

    ASSERT_TRUE(wait_until(typed_call_works, ch, 10000));
    arpc_arena_destroy(arena);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    return failed;
}

static void test_every_allocation_fails_once(void)
{
    arpc_runtime *srv_rt = fault_runtime(1);
    arpc_runtime *cli_rt = fault_runtime(1);
    int64_t n = 0;
    while (round_with(srv_rt, cli_rt, n))
        n++;
    printf("rounds: %lld\n", (long long)n + 1);
    ASSERT_GT(n, 10);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
}

int main(void)
{
    RUN_TEST(test_every_allocation_fails_once);
    return 0;
}

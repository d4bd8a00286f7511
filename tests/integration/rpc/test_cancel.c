/*
 * Cancellation, end to end (docs/connections.md section 10).  Proves:
 *  - a gRPC client's channel destroyed while its call runs cancels the
 *    request: the handler, parked on arpc_request_on_cancel's event, wakes
 *    and sees arpc_request_is_canceled, its answer is dropped and counted in
 *    stats.canceled;
 *  - a gRPC call that times out resets its stream (RST_STREAM): the handler
 *    is canceled and its answer never comes back (no late answer on the
 *    client, which a server that was not told would send at its deadline);
 *  - a native connection that closes while its request runs cancels it;
 *  - calls made with arpc_call_opts.parent are canceled with the parent: a
 *    gRPC call in flight from a handler, on a channel whose loop is another
 *    runtime's, completes once with ARPC_ECANCELED, its server sees the
 *    cancel while the connection lives on (no reconnect, and it keeps
 *    serving), and a new call with the canceled parent fails at once with
 *    ARPC_ECANCELED;
 *  - a deferred request held by another thread: a call made from that thread
 *    with the request as parent is canceled with it, the thread sees the
 *    cancel, a later call with it fails ARPC_ECANCELED through its callback,
 *    and arpc_request_respond on the canceled request frees it (ASan);
 *  - a request's deadline runs its cancel callback: the handler wakes at the
 *    deadline and a bare ARPC_ETIMEDOUT replaces its answer.
 */
#include <stdatomic.h>
#include <string.h>

#include <arpc/arpc.h>

#include "rpc_fixture.h"
#include "test.h"
#include "test_stats.h"

#define HOLD_MAX_MS 10000 /* a handler waits this long at most for its cancel */
#define WAIT_MS     10000

typedef struct counters {
    _Atomic int hold_started;
    _Atomic int hold_canceled;
    _Atomic int hold_finished;
    _Atomic int front_status;
    _Atomic int front_again;
    _Atomic int front_done;
    _Atomic(arpc_request *) deferred;
} counters;

static counters c;
static arpc_channel *ch_back; /* the front handler's downstream channel */

static void reset(void)
{
    memset(&c, 0, sizeof(c));
}

/* Waits for its cancel (bounded), then answers "held". */
static int handle_hold(arpc_request *req, void *user_data)
{
    (void)user_data;
    atomic_fetch_add(&c.hold_started, 1);
    if (test_wait_request_canceled(req, HOLD_MAX_MS))
        atomic_fetch_add(&c.hold_canceled, 1);
    atomic_fetch_add(&c.hold_finished, 1);
    return arpc_buf_append(arpc_request_response(req), "held", 4);
}

/* Calls `hold` downstream on its behalf, then once more. */
static int handle_front(arpc_request *req, void *user_data)
{
    (void)user_data;
    arpc_call_opts opts = fx_timeout(0);
    opts.parent = req;
    int rc = arpc_call(ch_back, "hold", NULL, 0, &opts, NULL);
    atomic_store(&c.front_status, rc);
    atomic_store(&c.front_again, arpc_call(ch_back, "echo", "x", 1, &opts, NULL));
    atomic_fetch_add(&c.front_done, 1);
    return 0;
}

static int handle_defer(arpc_request *req, void *user_data)
{
    (void)user_data;
    atomic_store(&c.deferred, req);
    return ARPC_DEFERRED;
}

static const fx_method methods[] = {{"echo", fx_handle_echo, NULL},
                                    {"hold", handle_hold, NULL},
                                    {"front", handle_front, NULL},
                                    {"defer", handle_defer, NULL},
                                    {NULL, NULL, NULL}};

static bool at_least(void *arg)
{
    _Atomic int *counter = ((void **)arg)[0];
    int want = (int)(intptr_t)((void **)arg)[1];
    return atomic_load(counter) >= want;
}

static void wait_for(_Atomic int *counter, int want)
{
    void *arg[2] = {counter, (void *)(intptr_t)want};
    ASSERT_TRUE(wait_until(at_least, arg, WAIT_MS));
}

static void wait_canceled(arpc_server *srv, uint64_t want)
{
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(srv, canceled, want, WAIT_MS));
    ASSERT_EQ(SERVER_STAT(srv, canceled), want);
}

typedef struct async_result {
    _Atomic int done;
    _Atomic int status;
} async_result;

static void on_async(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    (void)rsp;
    (void)rsp_len;
    async_result *r = user_data;
    atomic_store(&r->status, status);
    atomic_fetch_add(&r->done, 1);
}

static arpc_channel *grpc_channel(arpc_runtime *rt, arpc_server *srv)
{
    arpc_channel_opts opts;
    arpc_channel_opts_init(&opts);
    opts.protocol = ARPC_PROTOCOL_GRPC;
    return fx_channel(rt, srv, &opts);
}

/* The client goes away (its channel is destroyed) while the request runs. */
static void client_abandons(bool grpc)
{
    reset();
    arpc_runtime *rt = fx_runtime(1);
    arpc_server *srv = fx_server(rt, NULL, methods);
    arpc_channel *ch = grpc ? grpc_channel(rt, srv) : fx_channel(rt, srv, NULL);
    arpc_call_opts opts = fx_timeout(0);
    async_result r = {0};
    ASSERT_OK(arpc_call_async(ch, "hold", NULL, 0, &opts, on_async, &r));
    wait_for(&c.hold_started, 1);
    int64_t start = test_now_ms();
    arpc_channel_destroy(ch);
    ASSERT_EQ(atomic_load(&r.done), 1);
    ASSERT_EQ(atomic_load(&r.status), ARPC_ECANCELED);
    wait_for(&c.hold_finished, 1);
    ASSERT_TRUE(test_now_ms() - start < HOLD_MAX_MS / 2); /* woken, not timed out */
    ASSERT_EQ(atomic_load(&c.hold_canceled), 1);
    wait_canceled(srv, 1);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

static void test_grpc_client_gone_cancels_request(void)
{
    client_abandons(true);
}

static void test_native_connection_close_cancels_request(void)
{
    client_abandons(false);
}

static void test_grpc_timeout_resets_stream(void)
{
    reset();
    arpc_runtime *rt = fx_runtime(1);
    arpc_server *srv = fx_server(rt, NULL, methods);
    arpc_channel *ch = grpc_channel(rt, srv);
    arpc_call_opts opts = fx_timeout(150);
    ASSERT_ERR(arpc_call(ch, "hold", NULL, 0, &opts, NULL), ARPC_ETIMEDOUT);
    wait_for(&c.hold_finished, 1);
    ASSERT_EQ(atomic_load(&c.hold_canceled), 1);
    wait_canceled(srv, 1);
    /* Anything the server sent for the held call came before this answer, on
     * the same connection: a server not told of the cancel answers
     * DEADLINE_EXCEEDED, a late answer. */
    ASSERT_OK(arpc_call(ch, "echo", "x", 1, NULL, NULL));
    arpc_channel_stats cs;
    arpc_channel_get_stats(ch, &cs);
    ASSERT_EQ(cs.late_answers, 0);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

static void test_parent_cancel_cancels_downstream_call(void)
{
    reset();
    arpc_runtime *rt = fx_runtime(1);
    arpc_runtime *rt_back = fx_runtime(1); /* the downstream call's loop is another */
    arpc_server *srv = fx_server(rt, NULL, methods);
    ch_back = grpc_channel(rt_back, srv);
    arpc_channel *ch = fx_channel(rt, srv, NULL);
    arpc_call_opts opts = fx_timeout(0);
    async_result r = {0};
    ASSERT_OK(arpc_call_async(ch, "front", NULL, 0, &opts, on_async, &r));
    wait_for(&c.hold_started, 1);
    arpc_channel_destroy(ch); /* the native front request's connection closes */
    wait_for(&c.front_done, 1);
    ASSERT_EQ(atomic_load(&c.front_status), ARPC_ECANCELED);
    ASSERT_EQ(atomic_load(&c.front_again), ARPC_ECANCELED); /* at once, never sent */
    wait_for(&c.hold_finished, 1);
    ASSERT_EQ(atomic_load(&c.hold_canceled), 1); /* told by RST_STREAM */
    wait_canceled(srv, 2);                       /* front and hold */
    /* The stream was reset, not the connection: it serves on. */
    ASSERT_OK(arpc_call(ch_back, "echo", "x", 1, NULL, NULL));
    arpc_channel_stats cs;
    arpc_channel_get_stats(ch_back, &cs);
    ASSERT_EQ(cs.reconnects, 1);
    ASSERT_EQ(cs.late_answers, 0);
    arpc_channel_destroy(ch_back);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt_back);
    arpc_runtime_destroy(rt);
}

static bool deferred_arrived(void *arg)
{
    (void)arg;
    return atomic_load(&c.deferred) != NULL;
}

static bool deferred_canceled(void *arg)
{
    (void)arg;
    return arpc_request_is_canceled(atomic_load(&c.deferred));
}

static bool async_done(void *arg)
{
    return atomic_load(&((async_result *)arg)->done) >= 1;
}

static void test_deferred_request_canceled_then_answered(void)
{
    reset();
    arpc_runtime *rt = fx_runtime(1);
    arpc_runtime *rt_back = fx_runtime(1);
    arpc_server *srv = fx_server(rt, NULL, methods);
    ch_back = grpc_channel(rt_back, srv);
    arpc_channel *ch = grpc_channel(rt, srv);
    arpc_call_opts opts = fx_timeout(0);
    async_result front = {0};
    ASSERT_OK(arpc_call_async(ch, "defer", NULL, 0, &opts, on_async, &front));
    ASSERT_TRUE(wait_until(deferred_arrived, NULL, WAIT_MS));
    arpc_request *req = atomic_load(&c.deferred);
    ASSERT_FALSE(arpc_request_is_canceled(req));
    /* This thread holds the request: its downstream call watches it too. */
    opts.parent = req;
    async_result child = {0};
    ASSERT_OK(arpc_call_async(ch_back, "hold", NULL, 0, &opts, on_async, &child));
    wait_for(&c.hold_started, 1);
    arpc_channel_destroy(ch);
    ASSERT_TRUE(wait_until(deferred_canceled, NULL, WAIT_MS));
    ASSERT_TRUE(wait_until(async_done, &child, WAIT_MS));
    ASSERT_EQ(atomic_load(&child.status), ARPC_ECANCELED);
    async_result late = {0};
    ASSERT_OK(arpc_call_async(ch_back, "echo", "x", 1, &opts, on_async, &late));
    ASSERT_TRUE(wait_until(async_done, &late, WAIT_MS));
    ASSERT_EQ(atomic_load(&late.status), ARPC_ECANCELED);
    ASSERT_OK(arpc_buf_append(arpc_request_response(req), "late", 4));
    arpc_request_respond(req, 0); /* dropped, and the request freed */
    wait_for(&c.hold_finished, 1);
    ASSERT_EQ(atomic_load(&c.hold_canceled), 1);
    wait_canceled(srv, 2);
    ASSERT_EQ(atomic_load(&child.done), 1);
    ASSERT_EQ(atomic_load(&late.done), 1);
    arpc_channel_destroy(ch_back);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt_back);
    arpc_runtime_destroy(rt);
}

static void test_deadline_runs_cancel_callback(void)
{
    reset();
    arpc_runtime *rt = fx_runtime(1);
    arpc_server *srv = fx_server(rt, NULL, methods);
    arpc_channel *ch = fx_channel(rt, srv, NULL);
    arpc_call_opts opts = fx_timeout(200);
    int64_t start = test_now_ms();
    ASSERT_ERR(arpc_call(ch, "hold", NULL, 0, &opts, NULL), ARPC_ETIMEDOUT);
    wait_for(&c.hold_finished, 1);
    int64_t took = test_now_ms() - start;
    ASSERT_TRUE(took >= 200 && took < HOLD_MAX_MS / 2);
    ASSERT_EQ(atomic_load(&c.hold_canceled), 1);
    wait_canceled(srv, 1);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    RUN_TEST(test_grpc_client_gone_cancels_request);
    RUN_TEST(test_native_connection_close_cancels_request);
    RUN_TEST(test_grpc_timeout_resets_stream);
    RUN_TEST(test_parent_cancel_cancels_downstream_call);
    RUN_TEST(test_deferred_request_canceled_then_answered);
    RUN_TEST(test_deadline_runs_cancel_callback);
    return 0;
}

/*
 * The blocking RPC functions called on a loop thread outside a coroutine,
 * where blocking would stall (or deadlock) the very loop they wait on.
 * Proves: arpc_call() inside an arpc_call_async() completion callback and
 * inside an arpc_loop_submit() task returns ARPC_ENOTCORO at once (it used to
 * block the loop its own call needed: a deadlock), while inside a coroutine
 * it still works; arpc_server_shutdown() and arpc_server_listen() there
 * return ARPC_ENOTCORO;
 * arpc_channel_destroy() and arpc_server_destroy() there return at once and
 * finish the teardown in a coroutine of that loop: calls in flight complete
 * with ARPC_ECANCELED, and nothing leaks (ASan).
 */
#include <stdatomic.h>

#include <arpc/arpc.h>

#include "fault_util.h"
#include "test.h"

typedef struct nested {
    arpc_channel *ch;
    arpc_event done;
    _Atomic int outer_status;
    _Atomic int inner_status;
    _Atomic int callbacks;
    int64_t elapsed_ms;
} nested;

static void sync_call_inside(nested *n)
{
    arpc_call_opts opts = fault_call_opts(3000);
    int64_t start = test_now_ms();
    atomic_store(&n->inner_status, arpc_call(n->ch, "echo", "x", 1, &opts, NULL));
    n->elapsed_ms = test_now_ms() - start;
}

static void on_outer_done(int status, const void *rsp, size_t len, void *user_data)
{
    (void)rsp;
    (void)len;
    nested *n = user_data;
    atomic_store(&n->outer_status, status);
    atomic_fetch_add(&n->callbacks, 1);
    sync_call_inside(n);
    arpc_event_signal(&n->done);
}

static void test_call_in_callback_is_refused(arpc_channel *ch)
{
    nested n = {.ch = ch};
    arpc_event_init(&n.done);
    ASSERT_OK(arpc_call_async(ch, "echo", "y", 1, NULL, on_outer_done, &n));
    ASSERT_OK(arpc_event_wait(&n.done, 20000));
    ASSERT_OK(atomic_load(&n.outer_status));
    ASSERT_EQ(atomic_load(&n.callbacks), 1);
    ASSERT_ERR(atomic_load(&n.inner_status), ARPC_ENOTCORO);
    ASSERT_LT(n.elapsed_ms, 1000); /* refused at once, not after its 3 s deadline */
}

static void call_task(void *arg)
{
    nested *n = arg;
    sync_call_inside(n);
    arpc_event_signal(&n->done);
}

static void call_coro(void *arg)
{
    call_task(arg);
}

static void test_call_in_task_is_refused(arpc_runtime *rt, arpc_channel *ch)
{
    nested n = {.ch = ch};
    arpc_event_init(&n.done);
    ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(rt, 0), call_task, &n));
    ASSERT_OK(arpc_event_wait(&n.done, 20000));
    ASSERT_ERR(atomic_load(&n.inner_status), ARPC_ENOTCORO);
    ASSERT_LT(n.elapsed_ms, 1000);
    /* The same call from a coroutine of that loop works. */
    ASSERT_OK(arpc_coro_spawn(arpc_runtime_loop(rt, 0), call_coro, &n));
    ASSERT_OK(arpc_event_wait(&n.done, 20000));
    ASSERT_OK(atomic_load(&n.inner_status));
}

/* ---- teardown from a loop thread ----------------------------------------- */

typedef struct teardown {
    arpc_channel *ch;
    arpc_server *srv;
    arpc_runtime *rt;
    int shutdown_rc;
    int listen_rc;
    arpc_event done;
} teardown;

static void shutdown_task(void *arg)
{
    teardown *t = arg;
    t->shutdown_rc = arpc_server_shutdown(t->srv, 1000);
    /* Listening waits for every loop too. */
    arpc_server *extra;
    ASSERT_OK(arpc_server_create(t->rt, NULL, &extra));
    t->listen_rc = arpc_server_listen(extra, "127.0.0.1:0");
    arpc_server_destroy(extra); /* finishes in a coroutine of this loop */
    arpc_event_signal(&t->done);
}

static void destroy_task(void *arg)
{
    teardown *t = arg;
    arpc_channel_destroy(t->ch);
    arpc_server_destroy(t->srv);
    arpc_event_signal(&t->done);
}

static int hold_handler(arpc_request *req, void *user_data)
{
    (void)user_data;
    arpc_coro_sleep_ms(300);
    return fault_handle_echo(req, NULL);
}

static void test_teardown_on_loop_thread(void)
{
    arpc_runtime *srv_rt = fault_runtime(2);
    arpc_runtime *cli_rt = fault_runtime(2);
    teardown t;
    t.rt = srv_rt;
    arpc_event_init(&t.done);
    ASSERT_OK(arpc_server_create(srv_rt, NULL, &t.srv));
    ASSERT_OK(arpc_server_register(t.srv, "hold", hold_handler, NULL));
    ASSERT_OK(arpc_server_listen(t.srv, "127.0.0.1:0"));
    t.ch = fault_channel(cli_rt, arpc_server_port(t.srv), NULL);
    ASSERT_EQ(fault_echo_call(t.ch, 5000), ARPC_ENOMETHOD); /* connected */

    ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(srv_rt, 0), shutdown_task, &t));
    ASSERT_OK(arpc_event_wait(&t.done, 20000));
    ASSERT_ERR(t.shutdown_rc, ARPC_ENOTCORO);
    ASSERT_ERR(t.listen_rc, ARPC_ENOTCORO);

    fault_calls calls;
    fault_calls_init(&calls, 8);
    arpc_call_opts opts = fault_call_opts(10000);
    for (size_t i = 0; i < calls.count; i++)
        fault_call_start(&calls, i, t.ch, "hold", "z", &opts);
    /* Both destroys run on a client loop thread, outside any coroutine. */
    ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(cli_rt, 1), destroy_task, &t));
    ASSERT_OK(arpc_event_wait(&t.done, 20000));
    ASSERT_TRUE(wait_until(fault_calls_all_done, &calls, 20000));
    for (size_t i = 0; i < calls.count; i++) {
        ASSERT_EQ(atomic_load(&calls.calls[i].done), 1);
        int status = atomic_load(&calls.calls[i].status);
        /* The two destroys race (each finishes in its own coroutine): a call
         * is answered, canceled by the channel, refused by the draining
         * server, or loses its connection when the server closes it first. */
        if (!(status == 0 || status == ARPC_ECANCELED || status == ARPC_ESHUTDOWN ||
              status == ARPC_ECLOSED || status == ARPC_ECONNRESET))
            test_fail(__FILE__, __LINE__, "call %zu ended with %s", i, arpc_err_name(status));
    }
    /* Destroying the runtime whose loop runs the teardowns waits for them. */
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
    fault_calls_fini(&calls);
}

int main(void)
{
    arpc_runtime *srv_rt = fault_runtime(2);
    arpc_runtime *cli_rt = fault_runtime(2);
    arpc_server *srv = fault_echo_server(srv_rt, NULL);
    arpc_channel *ch = fault_channel(cli_rt, arpc_server_port(srv), NULL);

    fprintf(stderr, "RUN  test_call_in_callback_is_refused\n");
    test_call_in_callback_is_refused(ch);
    fprintf(stderr, "RUN  test_call_in_task_is_refused\n");
    test_call_in_task_is_refused(cli_rt, ch);

    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
    RUN_TEST(test_teardown_on_loop_thread);
    return 0;
}

/*
 * Graceful server shutdown (GOAWAY) seen from the client: calls accepted
 * before the GOAWAY are answered during the drain, calls started afterwards
 * go to the other server, and a link left behind by a GOAWAY is closed by the
 * client as soon as its last call is gone, even when that call ended at its
 * deadline, so destroying the channel right after leaves nothing that still
 * points at it; and destroying the channel while a call with no deadline
 * waits on a draining link (the server alive, answering PINGs, its handler
 * still running) completes that call with ARPC_ECANCELED at once instead of
 * waiting for the server.  Server and client run on separate runtimes, so "the client
 * loops have processed everything up to now" can be established with a
 * round trip through each client loop.
 */
#include <pthread.h>
#include <signal.h>

#include "fault_util.h"
#include "test.h"
#include "test_stats.h"

static int handle_sleep(arpc_request *req, void *user_data)
{
    (void)user_data;
    char text[16] = {0};
    size_t len = arpc_request_len(req);
    if (len == 0 || len >= sizeof(text))
        return 1;
    memcpy(text, arpc_request_data(req), len);
    arpc_coro_sleep_ms(atoi(text));
    return arpc_buf_append(arpc_request_response(req), text, len);
}

/* `block` answers only once the test signals `release` (or after 30 s). */
static arpc_event release;

static int handle_block(arpc_request *req, void *user_data)
{
    (void)req;
    (void)user_data;
    arpc_event_wait(&release, 30000);
    return 0;
}

/* `echo`, counting its runs in `*user_data` (an _Atomic int, or NULL). */
static int handle_counted_echo(arpc_request *req, void *user_data)
{
    if (user_data != NULL)
        atomic_fetch_add((_Atomic int *)user_data, 1);
    return fault_handle_echo(req, NULL);
}

static arpc_server *counting_server(arpc_runtime *rt, _Atomic int *echoes)
{
    arpc_server *srv;
    ASSERT_OK(arpc_server_create(rt, NULL, &srv));
    ASSERT_OK(arpc_server_register(srv, "echo", handle_counted_echo, (void *)echoes));
    ASSERT_OK(arpc_server_register(srv, "sleep", handle_sleep, NULL));
    ASSERT_OK(arpc_server_register(srv, "block", handle_block, NULL));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    return srv;
}

static arpc_server *sleep_server(arpc_runtime *rt)
{
    return counting_server(rt, NULL);
}

typedef struct shutdown_job {
    arpc_server *srv;
    int64_t drain_ms;
    int rc;
    pthread_t thread;
} shutdown_job;

static void *shutdown_main(void *arg)
{
    shutdown_job *job = arg;
    job->rc = arpc_server_shutdown(job->srv, job->drain_ms);
    return NULL;
}

static void shutdown_start(shutdown_job *job, arpc_server *srv, int64_t drain_ms)
{
    job->srv = srv;
    job->drain_ms = drain_ms;
    job->rc = -1;
    ASSERT_EQ(pthread_create(&job->thread, NULL, shutdown_main, job), 0);
}

static void nop_task(void *wg)
{
    arpc_wg_done(wg);
}

/* Returns once every loop of `rt` has run an iteration that started after
 * this call: events already delivered to their sockets have been handled. */
static void sync_loops(arpc_runtime *rt)
{
    unsigned n = arpc_runtime_loop_count(rt);
    arpc_wg wg;
    arpc_wg_init(&wg, n);
    for (unsigned i = 0; i < n; i++)
        ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(rt, i), nop_task, &wg));
    ASSERT_OK(arpc_wg_wait(&wg, 10000));
}

static void test_drain_answers_accepted_calls(void)
{
    arpc_runtime *srv_rt = fault_runtime(1);
    arpc_runtime *cli_rt = fault_runtime(2);
    static _Atomic int a_echoes, b_echoes;
    atomic_store(&a_echoes, 0);
    atomic_store(&b_echoes, 0);
    arpc_server *a = counting_server(srv_rt, &a_echoes);
    arpc_server *b = counting_server(srv_rt, &b_echoes);
    char target[128];
    snprintf(target, sizeof(target), "127.0.0.1:%d,127.0.0.1:%d", arpc_server_port(a),
             arpc_server_port(b));
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(cli_rt, target, &copts, &ch));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(fault_echo_call(ch, 5000)); /* both connected */

    arpc_server_stats before;
    arpc_server_get_stats(a, &before);
    arpc_call_opts opts = fault_call_opts(5000);
    fault_calls set;
    fault_calls_init(&set, 20);
    fault_calls_start_all(&set, ch, "sleep", "300", &opts);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(a, requests, before.requests + 10, 5000)); /* A holds its 10 */

    shutdown_job job;
    shutdown_start(&job, a, 5000);
    /* Once the client has A's GOAWAY (not before: that would race the
     * shutdown), calls made during the drain never run on A: refused by its
     * closed listener or answered ESHUTDOWN, both retried on B. */
    ASSERT_TRUE(WAIT_CHANNEL_STAT_GE(ch, goaways, 1, 5000));
    int a_before = atomic_load(&a_echoes);
    int b_before = atomic_load(&b_echoes);
    for (int i = 0; i < 20; i++)
        ASSERT_OK(fault_echo_call(ch, 5000));
    ASSERT_EQ(atomic_load(&a_echoes), a_before);
    ASSERT_EQ(atomic_load(&b_echoes), b_before + 20);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, 10000));
    for (size_t i = 0; i < 20; i++)
        ASSERT_OK(atomic_load(&set.calls[i].status));
    ASSERT_EQ(pthread_join(job.thread, NULL), 0);
    ASSERT_OK(job.rc);
    fault_calls_fini(&set);

    arpc_channel_destroy(ch);
    arpc_server_destroy(a);
    arpc_server_destroy(b);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
}

/* One server on its own runtime, a client channel on another, and one call
 * the server has accepted and is running. */
typedef struct accepted_call {
    arpc_runtime *srv_rt;
    arpc_runtime *cli_rt;
    arpc_server *srv;
    arpc_channel *ch;
    fault_calls set;
} accepted_call;

static void accepted_call_start(accepted_call *ac, const arpc_channel_opts *copts,
                                int64_t timeout_ms, const char *method, const char *payload)
{
    ac->srv_rt = fault_runtime(1);
    ac->cli_rt = fault_runtime(2);
    ac->srv = sleep_server(ac->srv_rt);
    char target[64];
    fault_addr(target, sizeof(target), arpc_server_port(ac->srv));
    ASSERT_OK(arpc_channel_create(ac->cli_rt, target, copts, &ac->ch));
    ASSERT_OK(fault_echo_call(ac->ch, 5000));
    arpc_call_opts opts = fault_call_opts(timeout_ms);
    fault_calls_init(&ac->set, 1);
    fault_call_start(&ac->set, 0, ac->ch, method, payload, &opts);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(ac->srv, requests, 2, 5000));
}

/* After the channel is destroyed and the server's shutdown has ended. */
static void accepted_call_finish(accepted_call *ac, shutdown_job *job)
{
    ASSERT_EQ(pthread_join(job->thread, NULL), 0);
    ASSERT_OK(job->rc);
    sync_loops(ac->cli_rt);
    sync_loops(ac->cli_rt);
    arpc_server_destroy(ac->srv);
    arpc_runtime_destroy(ac->cli_rt);
    arpc_runtime_destroy(ac->srv_rt);
}

static void test_deadline_on_goaway_link_then_destroy(void)
{
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    copts.heartbeat_interval_ms = 50; /* the link's timer fires often */
    /* A call the server accepted, which runs longer than the call waits. */
    accepted_call ac;
    accepted_call_start(&ac, &copts, 600, "sleep", "2000");

    /* GOAWAY now; the drain waits for the 2 s handler.  The link is detached
     * from its slot but must carry the accepted call to its end. */
    shutdown_job job;
    shutdown_start(&job, ac.srv, 5000);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &ac.set, 5000));
    ASSERT_ERR(atomic_load(&ac.set.calls[0].status), ARPC_ETIMEDOUT);
    fault_calls_fini(&ac.set);

    /* Its last call gone, the client closes the drained link itself, well
     * before the server's drain ends. */
    int64_t call_end = test_now_ms();
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(ac.srv, connections, 0, 1000));
    fprintf(stderr, "  drained link closed %lld ms after its last call ended\n",
            (long long)(test_now_ms() - call_end));

    /* Nothing may refer to the channel once it is destroyed: not the link's
     * heartbeat timer, not the server's close at the end of its drain. */
    arpc_channel_destroy(ac.ch);
    accepted_call_finish(&ac, &job);
}

static void test_destroy_cancels_calls_on_draining_link(void)
{
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    /* A call with no deadline that the server accepted and will not answer
     * until the test lets it. */
    arpc_event_init(&release);
    accepted_call ac;
    accepted_call_start(&ac, &copts, 0, "block", "");

    /* GOAWAY: the link drains, answering PINGs, with the call on it. */
    shutdown_job job;
    shutdown_start(&job, ac.srv, 10000);
    ASSERT_TRUE(WAIT_CHANNEL_STAT_EQ(ac.ch, goaways, 1, 5000));
    int64_t start = test_now_ms();
    arpc_channel_destroy(ac.ch);
    fprintf(stderr, "  destroy took %lld ms with a call on a draining link\n",
            (long long)(test_now_ms() - start));
    ASSERT_TRUE(fault_calls_all_done(&ac.set));
    ASSERT_ERR(atomic_load(&ac.set.calls[0].status), ARPC_ECANCELED);
    fault_calls_fini(&ac.set);
    /* The handler may finish now; the server's drain then ends. */
    arpc_event_signal(&release);
    accepted_call_finish(&ac, &job);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_drain_answers_accepted_calls);
    RUN_TEST(test_deadline_on_goaway_link_then_destroy);
    RUN_TEST(test_destroy_cancels_calls_on_draining_link);
    return 0;
}

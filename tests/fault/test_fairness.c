/*
 * Fairness between connections (docs/protocol.md section 4, "Settings";
 * arpc_server_opts.max_in_flight_per_connection).  A server with
 * max_in_flight 40 and a per-connection share of 20:
 *  - an arpc channel that starts 40 slow calls keeps only 20 of them at the
 *    server (the share it was told) and queues the rest locally: another
 *    client's calls all succeed meanwhile, nothing is refused, and all 40
 *    slow calls complete;
 *  - a raw client that ignores the share and sends 25 gets ARPC_EOVERLOAD at
 *    once for the 5 over it, while the other client is still served.
 * Before the share, the first client's 40 calls filled max_in_flight and every
 * other client's calls failed with ARPC_EOVERLOAD.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_util.h"
#include "raw_peer.h"
#include "test.h"

#define MAX_IN_FLIGHT 40
#define SHARE         20
#define WAIT_MS       15000

static _Atomic int running;
static _Atomic int most_running;

static int handle_slow(arpc_request *req, void *user_data)
{
    (void)user_data;
    char text[16];
    if (fault_request_text(req, text, sizeof(text)) < 0)
        return ARPC_EINVAL;
    int now = atomic_fetch_add(&running, 1) + 1;
    int most = atomic_load(&most_running);
    while (now > most && !atomic_compare_exchange_weak(&most_running, &most, now))
        ;
    arpc_coro_sleep_ms(atoi(text));
    atomic_fetch_sub(&running, 1);
    return 0;
}

static arpc_server *fair_server(arpc_runtime *rt)
{
    arpc_server_opts opts;
    arpc_server_opts_init(&opts);
    opts.max_in_flight = MAX_IN_FLIGHT;
    opts.max_in_flight_per_connection = SHARE;
    static const fault_method more[] = {{"slow", handle_slow}, {NULL, NULL}};
    return fault_server(rt, &opts, more);
}

static arpc_channel *fair_channel(arpc_runtime *rt, arpc_server *srv)
{
    return fault_channel(rt, arpc_server_port(srv), NULL);
}

static bool share_running(void *arg)
{
    (void)arg;
    return atomic_load(&running) == SHARE;
}

static void test_greedy_channel_keeps_to_its_share(void)
{
    arpc_runtime *rt = fault_runtime(1); /* one loop: admission is exact */
    arpc_server *srv = fair_server(rt);
    arpc_channel *greedy = fair_channel(rt, srv);
    arpc_channel *other = fair_channel(rt, srv);
    ASSERT_OK(fault_echo_call(greedy, 5000));
    ASSERT_OK(fault_echo_call(other, 5000));

    arpc_call_opts opts = fault_call_opts(WAIT_MS);
    fault_calls set;
    fault_calls_init(&set, MAX_IN_FLIGHT);
    fault_calls_start_all(&set, greedy, "slow", "1000", &opts);
    ASSERT_TRUE(wait_until(share_running, NULL, WAIT_MS));

    /* The server holds the greedy channel's share: the other client is served. */
    for (int i = 0; i < 10; i++)
        ASSERT_OK(fault_echo_call(other, 5000));
    ASSERT_EQ(atomic_load(&set.completed), 0);

    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, WAIT_MS));
    for (size_t i = 0; i < MAX_IN_FLIGHT; i++) {
        ASSERT_EQ(atomic_load(&set.calls[i].done), 1);
        ASSERT_OK(atomic_load(&set.calls[i].status));
    }
    ASSERT_EQ(atomic_load(&most_running), SHARE);
    arpc_server_stats s;
    arpc_server_get_stats(srv, &s);
    ASSERT_EQ(s.overloaded, 0); /* the excess waited at the client, it was not refused */
    fault_calls_fini(&set);
    arpc_channel_destroy(greedy);
    arpc_channel_destroy(other);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

static void test_client_ignoring_its_share_is_refused_the_excess(void)
{
    enum { SENT = SHARE + 5 };

    atomic_store(&most_running, 0);
    arpc_runtime *rt = fault_runtime(1);
    arpc_server *srv = fair_server(rt);
    arpc_channel *other = fair_channel(rt, srv);
    int fd = raw_connect(arpc_server_port(srv));
    for (uint64_t id = 1; id <= SENT; id++)
        raw_send_request(fd, id, 0, "slow", "300", 3);

    /* The excess is refused at once, before any accepted request ends. */
    for (int i = 0; i < SENT - SHARE; i++) {
        raw_frame rf;
        ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
        ASSERT_EQ(rf.f.type, ARPC__FRAME_RESPONSE);
        ASSERT_GT(rf.f.request_id, SHARE);
        ASSERT_ERR(rf.f.status, ARPC_EOVERLOAD);
        raw_frame_free(&rf);
    }
    ASSERT_TRUE(wait_until(share_running, NULL, WAIT_MS));
    ASSERT_OK(fault_echo_call(other, 5000));
    for (int i = 0; i < SHARE; i++) {
        raw_frame rf;
        ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
        ASSERT_LE(rf.f.request_id, SHARE);
        ASSERT_OK(rf.f.status);
        raw_frame_free(&rf);
    }
    arpc_server_stats s;
    arpc_server_get_stats(srv, &s);
    ASSERT_EQ(s.overloaded, SENT - SHARE);
    close(fd);
    arpc_channel_destroy(other);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_greedy_channel_keeps_to_its_share);
    RUN_TEST(test_client_ignoring_its_share_is_refused_the_excess);
    return 0;
}

/*
 * Server limits: max_connections refuses the connection over the cap with
 * ARPC_ETOOMANYCONNS (and only it, and only while the cap is reached);
 * idle_timeout_ms closes a
 * connection that sends nothing, not before the timeout, and never one that
 * the client keeps alive with heartbeats.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_util.h"
#include "test.h"
#include "test_stats.h"

#define IDLE_MS 200
/* Lateness allowed past the documented 1.5 timeouts on a loaded machine. */
#define IDLE_SLACK_MS 700

static arpc_channel *channel_to(arpc_runtime *rt, arpc_server *srv, int64_t hb_interval_ms)
{
    arpc_channel_opts opts;
    fault_channel_opts_init(&opts);
    opts.connections_per_endpoint = 1;
    opts.heartbeat_interval_ms = hb_interval_ms;
    return fault_channel(rt, arpc_server_port(srv), &opts);
}

static void test_max_connections_refuses_the_sixth(void)
{
    arpc_runtime *rt = fault_runtime(2);
    arpc_server_opts sopts;
    arpc_server_opts_init(&sopts);
    sopts.max_connections = 5;
    arpc_server *srv = fault_echo_server(rt, &sopts);
    arpc_channel *chs[6];
    for (int i = 0; i < 5; i++) {
        chs[i] = channel_to(rt, srv, 500);
        ASSERT_OK(fault_echo_call(chs[i], 5000));
    }
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, 5, 5000));

    /* The kernel completes the handshake; the server says GOAWAY with
     * ARPC_ETOOMANYCONNS and closes it at accept.  The call is retried (it
     * never ran) on fresh connections, each refused the same way, until its
     * retry budget is spent: 1 + max_retries refusals. */
    chs[5] = channel_to(rt, srv, 500);
    int64_t start = test_now_ms();
    int rc = fault_echo_call(chs[5], 5000);
    if (rc != ARPC_ETOOMANYCONNS)
        test_fail(__FILE__, __LINE__, "6th connection's call: %d %s, want ETOOMANYCONNS", rc,
                  arpc_err_name(rc));
    fprintf(stderr, "  6th connection's call failed with %s after %lld ms\n", arpc_err_name(rc),
            (long long)(test_now_ms() - start));
    ASSERT_LT(test_now_ms() - start, 2000);
    arpc_channel_opts defaults;
    fault_channel_opts_init(&defaults);
    uint64_t refused = 1 + defaults.max_retries;
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, refused_connections, refused, 5000));

    /* The first five are untouched. */
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 10; j++)
            ASSERT_OK(fault_echo_call(chs[i], 2000));
    }
    ASSERT_EQ(SERVER_STAT(srv, connections), 5);
    ASSERT_EQ(SERVER_STAT(srv, refused_connections), refused);

    /* The cap counts open connections: one leaves, the sixth gets in. */
    arpc_channel_destroy(chs[0]);
    chs[0] = NULL;
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, 4, 5000));
    ASSERT_OK(fault_echo_call(chs[5], 5000));
    ASSERT_EQ(SERVER_STAT(srv, connections), 5);
    ASSERT_EQ(SERVER_STAT(srv, refused_connections), refused);

    for (int i = 0; i < 6; i++)
        arpc_channel_destroy(chs[i]);
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, 0, 5000));
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

static arpc_server *idle_server(arpc_runtime *rt)
{
    arpc_server_opts sopts;
    arpc_server_opts_init(&sopts);
    sopts.idle_timeout_ms = IDLE_MS;
    return fault_echo_server(rt, &sopts);
}

static void test_idle_connection_closed_after_timeout(void)
{
    arpc_runtime *rt = fault_runtime(2);
    arpc_server *srv = idle_server(rt);
    arpc_channel *ch = channel_to(rt, srv, 0); /* heartbeats off */

    /* The last frame the server gets is the request, sent after `start`. */
    int64_t start = test_now_ms();
    ASSERT_OK(fault_echo_call(ch, 5000));
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, 0, 5000));
    int64_t closed = test_now_ms() - start;
    fprintf(stderr, "  idle client connection closed %lld ms after its call began\n",
            (long long)closed);
    ASSERT_GE(closed, IDLE_MS);
    ASSERT_LT(closed, IDLE_MS * 3 / 2 + IDLE_SLACK_MS); /* a sweep every half timeout */

    /* The channel reconnects by itself for the next call. */
    ASSERT_OK(fault_echo_call(ch, 5000));
    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    ASSERT_EQ(stats.reconnects, 2);
    arpc_channel_destroy(ch);
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, 0, 5000));

    /* A raw socket that sends not a byte. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)arpc_server_port(srv))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    start = test_now_ms();
    ASSERT_EQ(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char byte;
    ssize_t n;
    do {
        n = read(fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    closed = test_now_ms() - start;
    ASSERT_EQ(n, 0);
    fprintf(stderr, "  silent raw connection closed after %lld ms\n", (long long)closed);
    ASSERT_GE(closed, IDLE_MS);
    ASSERT_LT(closed, IDLE_MS * 3 / 2 + IDLE_SLACK_MS); /* a sweep every half timeout */
    close(fd);
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, 0, 5000));

    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

static void test_heartbeats_keep_connection_open(void)
{
    arpc_runtime *rt = fault_runtime(2);
    arpc_server *srv = idle_server(rt);
    arpc_channel *ch = channel_to(rt, srv, 50);
    ASSERT_OK(fault_echo_call(ch, 5000));
    /* Three idle timeouts without a call: the PINGs keep it open throughout. */
    int64_t until = test_now_ms() + 3 * IDLE_MS;
    while (test_now_ms() < until) {
        ASSERT_EQ(SERVER_STAT(srv, connections), 1);
        usleep(5 * 1000);
    }
    ASSERT_OK(fault_echo_call(ch, 5000));
    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    ASSERT_EQ(stats.reconnects, 1);
    ASSERT_EQ(stats.heartbeat_failures, 0);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

static int handle_sleep(arpc_request *req, void *user_data)
{
    (void)req;
    arpc_coro_sleep_ms(*(const int *)user_data);
    return 0;
}

/* A connection whose request is still running is not idle, even when the
 * client sends nothing while it waits (heartbeats off). */
static void test_request_in_progress_is_not_idle(void)
{
    static const int sleep_ms = 3 * IDLE_MS;
    arpc_runtime *rt = fault_runtime(2);
    arpc_server_opts sopts;
    arpc_server_opts_init(&sopts);
    sopts.idle_timeout_ms = IDLE_MS;
    arpc_server *srv;
    ASSERT_OK(arpc_server_create(rt, &sopts, &srv));
    ASSERT_OK(arpc_server_register(srv, "sleep", handle_sleep, (void *)&sleep_ms));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    arpc_channel *ch = channel_to(rt, srv, 0);
    arpc_call_opts opts = fault_call_opts(5000);
    ASSERT_OK(arpc_call(ch, "sleep", NULL, 0, &opts, NULL));
    /* Idle again once it is answered. */
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, 0, 5000));
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_max_connections_refuses_the_sixth);
    RUN_TEST(test_idle_connection_closed_after_timeout);
    RUN_TEST(test_heartbeats_keep_connection_open);
    RUN_TEST(test_request_in_progress_is_not_idle);
    return 0;
}

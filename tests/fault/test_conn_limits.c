/*
 * Connection floods: the server's defaults protect it, and each time limit
 * closes what it is meant to close, within its bound, and counts it.
 *  - the defaults: a connection cap below the descriptor limit, and a first
 *    frame, frame and idle time limit, all on;
 *  - connections that stall in the middle of a frame (even one that keeps
 *    trickling bytes of it) are closed between 1 and 1.25 frame limits
 *    after the frame's first byte, never before, and counted;
 *  - connections that never send a frame are closed within the first-frame
 *    limit, and counted;
 *  - a flood of silent connections up to the cap locks a legitimate client
 *    out for no longer than the first-frame limit;
 *  - a channel's heartbeats keep its idle connection open under short limits;
 *  - arpc-echo-server's flags set each limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "proto/frame.h"
#include "raw_peer.h"
#include "test.h"
#include "test_stats.h"

#define LIMIT_MS 300
#define PEERS    20
/* The sweep runs every quarter limit: closed by 1.25 limits, plus a
 * generous allowance for a loaded machine or a sanitizer build. */
#ifdef FAULT_SANITIZED
#define SLACK_MS 2000
#else
#define SLACK_MS 1000
#endif
#define LATE_MS (LIMIT_MS * 5 / 4 + SLACK_MS)

static void send_bytes(int fd, const void *data, size_t len)
{
    ASSERT_EQ(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_ping(int fd)
{
    arpc_buf *buf;
    ASSERT_OK(arpc_buf_create(&buf));
    ASSERT_OK(arpc__frame_encode_control(buf, ARPC__FRAME_PING, 1, 0));
    send_bytes(fd, arpc_buf_data(buf), arpc_buf_len(buf));
    arpc_buf_destroy(buf);
}

/* The first `len` bytes of a 100-byte echo request. */
static void send_request_prefix(int fd, size_t len)
{
    arpc_buf *buf;
    ASSERT_OK(arpc_buf_create(&buf));
    char body[100] = {0};
    ASSERT_OK(arpc__frame_encode_request(buf, 1, 0, 0, "echo", 4, body, sizeof(body)));
    ASSERT_LT(len, arpc_buf_len(buf));
    send_bytes(fd, arpc_buf_data(buf), len);
    arpc_buf_destroy(buf);
}

/* Waits for the server to close `fd` (reading away a PONG); @return when, or -1. */
static int64_t closed_at(int fd, int64_t deadline_ms)
{
    char chunk[256];
    while (test_now_ms() < deadline_ms) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 10) <= 0)
            continue;
        ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return test_now_ms();
    }
    return -1;
}

/* Every fd closed by the server no earlier than start + LIMIT_MS and no later
 * than start + LATE_MS. */
static void expect_closed_within_limit(const int *fds, int n, int64_t start_ms)
{
    for (int i = 0; i < n; i++) {
        int64_t at = closed_at(fds[i], start_ms + LATE_MS + 2000);
        if (at < 0)
            test_fail(__FILE__, __LINE__, "connection %d still open %d ms after its limit", i,
                      LATE_MS + 2000);
        ASSERT_GE(at - start_ms, LIMIT_MS);
        ASSERT_LE(at - start_ms, LATE_MS);
        close(fds[i]);
    }
}

static arpc_server_stats stats_of(arpc_server *srv)
{
    arpc_server_stats stats;
    arpc_server_get_stats(srv, &stats);
    return stats;
}

static void test_defaults_protect_a_server(void)
{
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    arpc_server_opts o;
    arpc_server_opts_init(&o);
    fprintf(stderr, "  RLIMIT_NOFILE %llu: max_connections %u\n", (unsigned long long)rl.rlim_cur,
            o.max_connections);
    ASSERT_GT(o.max_connections, 0);
    if (rl.rlim_cur != RLIM_INFINITY)
        ASSERT_LT(o.max_connections, rl.rlim_cur); /* descriptors left for the process */
    ASSERT_GT(o.first_frame_timeout_ms, 0);
    ASSERT_GT(o.frame_timeout_ms, 0);
    ASSERT_LT(o.frame_timeout_ms, 60000); /* the attack still held them after 60 s */
    ASSERT_GT(o.idle_timeout_ms, 0);
    ASSERT_GT(o.max_unwritten_bytes, 0);
    /* A channel's default heartbeat keeps its connections clear of every limit. */
    arpc_channel_opts c;
    arpc_channel_opts_init(&c);
    ASSERT_GT(c.heartbeat_interval_ms, 0);
    ASSERT_LT(c.heartbeat_interval_ms, o.idle_timeout_ms);
    ASSERT_GT(c.max_unwritten_bytes, 0);

    /* The cap follows the descriptor limit it is created under. */
    struct rlimit low = rl;
    low.rlim_cur = 1024 < rl.rlim_max ? 1024 : rl.rlim_max;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    arpc_server_opts_init(&o);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    if (low.rlim_cur == 1024)
        ASSERT_EQ(o.max_connections, 896);
}

static arpc_server *server_with(arpc_runtime *rt, int64_t first_ms, int64_t frame_ms,
                                int64_t idle_ms, uint32_t max_conns)
{
    arpc_server_opts o;
    arpc_server_opts_init(&o);
    o.first_frame_timeout_ms = first_ms;
    o.frame_timeout_ms = frame_ms;
    o.idle_timeout_ms = idle_ms;
    o.max_connections = max_conns;
    return fault_echo_server(rt, &o);
}

static void test_stalled_mid_frame_closed_within_frame_limit(void)
{
    arpc_runtime *rt = fault_runtime(2);
    arpc_server *srv = server_with(rt, 0, LIMIT_MS, 0, 0);
    int port = arpc_server_port(srv);
    int fds[PEERS];
    for (int i = 0; i < PEERS; i++) {
        fds[i] = raw_connect(port);
        send_ping(fds[i]); /* a first frame: only the frame limit applies */
    }
    /* Half a header, or a whole header and part of the body. */
    int64_t start = test_now_ms();
    for (int i = 0; i < PEERS; i++)
        send_request_prefix(fds[i], i % 2 ? 10 : ARPC__FRAME_HEADER_SIZE + 20);
    /* One more keeps trickling bytes of its frame: bytes are not frames. */
    int trickler = raw_connect(port);
    send_request_prefix(trickler, 1);
    int64_t trickle_start = test_now_ms();
    int64_t trickle_closed = -1;
    arpc_buf *req;
    ASSERT_OK(arpc_buf_create(&req));
    char body[100] = {0};
    ASSERT_OK(arpc__frame_encode_request(req, 1, 0, 0, "echo", 4, body, sizeof(body)));
    for (size_t off = 1; off + 1 < arpc_buf_len(req) && trickle_closed < 0; off++) {
        if (send(trickler, (const char *)arpc_buf_data(req) + off, 1, MSG_NOSIGNAL) != 1 ||
            closed_at(trickler, test_now_ms() + 20) >= 0)
            trickle_closed = test_now_ms();
    }
    arpc_buf_destroy(req);
    if (trickle_closed < 0)
        trickle_closed = closed_at(trickler, trickle_start + LATE_MS + 2000);
    ASSERT_GE(trickle_closed, 0);
    fprintf(stderr, "  a connection trickling its frame was closed after %lld ms\n",
            (long long)(trickle_closed - trickle_start));
    ASSERT_GE(trickle_closed - trickle_start, LIMIT_MS);
    ASSERT_LE(trickle_closed - trickle_start, LATE_MS);
    close(trickler);
    expect_closed_within_limit(fds, PEERS, start);

    arpc_server_stats st = stats_of(srv);
    ASSERT_EQ(st.frame_timeouts, PEERS + 1);
    ASSERT_EQ(st.first_frame_timeouts, 0);
    ASSERT_EQ(st.idle_timeouts, 0);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

static void test_silent_connections_closed_within_first_frame_limit(void)
{
    arpc_runtime *rt = fault_runtime(2);
    arpc_server *srv = server_with(rt, LIMIT_MS, 0, 0, 0);
    int fds[PEERS];
    int64_t start = test_now_ms();
    for (int i = 0; i < PEERS; i++)
        fds[i] = raw_connect(arpc_server_port(srv));
    /* Half of them start a first frame and stall: still no first frame. */
    for (int i = 0; i < PEERS; i += 2)
        send_request_prefix(fds[i], 5);
    expect_closed_within_limit(fds, PEERS, start);
    arpc_server_stats st = stats_of(srv);
    ASSERT_EQ(st.first_frame_timeouts, PEERS);
    ASSERT_EQ(st.frame_timeouts, 0);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

#define CAP      50
#define FLOOD_MS 500

static void test_idle_flood_locks_out_for_at_most_the_first_frame_limit(void)
{
    arpc_runtime *rt = fault_runtime(2);
    arpc_server *srv = server_with(rt, FLOOD_MS, LIMIT_MS, 0, CAP);
    int fds[CAP + 10];
    for (int i = 0; i < CAP + 10; i++)
        fds[i] = raw_connect(arpc_server_port(srv));
    int64_t flood_start = test_now_ms();
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, CAP, 5000));

    arpc_channel *ch = fault_channel(rt, arpc_server_port(srv), NULL);
    /* Refused (ARPC_ETOOMANYCONNS) while the flood holds the cap, served
     * once the first-frame limit has closed it. */
    fault_echo_wait ew = {.ch = ch};
    ASSERT_TRUE(wait_until(fault_echo_succeeds, &ew, 10000));
    int64_t locked_out = test_now_ms() - flood_start;
    fprintf(stderr, "  served %lld ms after the flood, after %d refused calls (last: %s)\n",
            (long long)locked_out, ew.failures, arpc_err_name(ew.last_error));
    ASSERT_LE(locked_out, FLOOD_MS * 5 / 4 + SLACK_MS);
    /* Each loop's sweep closes its own share of the flood. */
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, first_frame_timeouts, CAP, LATE_MS + 2000));
    ASSERT_GE(stats_of(srv).refused_connections, 10);
    for (int i = 0; i < CAP + 10; i++)
        close(fds[i]);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

static void test_heartbeats_keep_a_channel_open_under_short_limits(void)
{
    arpc_runtime *rt = fault_runtime(2);
    /* Far shorter than the defaults, but the idle limit above the default
     * heartbeat interval (500 ms), as the defaults are. */
    arpc_server *srv = server_with(rt, 200, 200, 1200, 0);
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    ASSERT_EQ(copts.heartbeat_interval_ms, 500); /* the default */
    arpc_channel *ch = fault_channel(rt, arpc_server_port(srv), &copts);
    ASSERT_OK(fault_echo_call(ch, 5000));
    /* Idle for 2.5 idle limits: only heartbeats cross the connection. */
    int64_t until = test_now_ms() + 3000;
    while (test_now_ms() < until) {
        arpc_server_stats st = stats_of(srv);
        ASSERT_EQ(st.idle_timeouts + st.first_frame_timeouts + st.frame_timeouts, 0);
        usleep(20 * 1000);
    }
    ASSERT_OK(fault_echo_call(ch, 5000));
    arpc_channel_stats cs;
    arpc_channel_get_stats(ch, &cs);
    ASSERT_EQ(cs.reconnects, 1);
    arpc_server_stats st = stats_of(srv);
    ASSERT_EQ(st.connections, 1);
    ASSERT_EQ(st.idle_timeouts + st.first_frame_timeouts + st.frame_timeouts, 0);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

/* ---- arpc-echo-server's flags --------------------------------------------- */

static void test_echo_server_flags_set_the_limits(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s", test_bin_path("arpc-echo-server"));
    char *argv[] = {path,          "--listen",
                    "127.0.0.1:0", "--threads",
                    "1",           "--max-conns",
                    "3",           "--first-frame-timeout-ms",
                    "300",         "--frame-timeout-ms",
                    "300",         "--idle-timeout-ms",
                    "5000",        "--max-unwritten-bytes",
                    "1048576",     NULL};
    fault_proc proc;
    fault_tool_start(argv, &proc);
    int port = proc.port;
    int silent[3];
    int64_t start = test_now_ms();
    for (int i = 0; i < 3; i++)
        silent[i] = raw_connect(port);
    /* The fourth is over --max-conns: GOAWAY, then closed at once. */
    int over = raw_connect(port);
    raw_frame goaway;
    ASSERT_TRUE(raw_read_frame(over, &goaway, 20000));
    ASSERT_EQ(goaway.len, ARPC__FRAME_HEADER_SIZE);
    ASSERT_EQ(goaway.f.type, ARPC__FRAME_GOAWAY);
    ASSERT_EQ(goaway.f.status, ARPC_ETOOMANYCONNS);
    raw_frame_free(&goaway);
    close(over);
    /* --first-frame-timeout-ms closes the silent ones. */
    expect_closed_within_limit(silent, 3, start);
    fault_proc_signal(&proc, SIGTERM);
    int status = fault_proc_reap(&proc, 20000);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_defaults_protect_a_server);
    RUN_TEST(test_stalled_mid_frame_closed_within_frame_limit);
    RUN_TEST(test_silent_connections_closed_within_first_frame_limit);
    RUN_TEST(test_idle_flood_locks_out_for_at_most_the_first_frame_limit);
    RUN_TEST(test_heartbeats_keep_a_channel_open_under_short_limits);
    if (access(test_bin_path("arpc-echo-server"), X_OK) == 0)
        RUN_TEST(test_echo_server_flags_set_the_limits);
    return 0;
}

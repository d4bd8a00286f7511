/*
 * Streams whose peer dies (SIGKILL) or freezes (SIGSTOP) mid-stream, from each side.  The
 * peer is this binary again in a child process: `--serve` runs the stream server of
 * stream_fixture.c and prints "listening on 127.0.0.1:PORT"; `--client PORT` opens an
 * S/Sink stream to PORT, writes one message, prints the same kind of line (so
 * fault_tool_start() can wait for it) and goes on writing every 10 ms.  The side that
 * stays must see its stream complete, once, with a connection error (client) or
 * ARPC_ECANCELED (the handler of a server), and leak nothing (ASan).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "fault_util.h"
#include "rpc_fixture.h"
#include "stream_fixture.h"
#include "test.h"
#include "test_stats.h"

static bool seam;
static bool grpc;

/* ---- the child processes --------------------------------------------------------------- */

_Noreturn static void child_serve(void)
{
    arpc_runtime *rt = fx_runtime(1);
    arpc_server *srv = sx_server(rt, NULL);
    printf("listening on 127.0.0.1:%d\n", arpc_server_port(srv));
    fflush(stdout);
    for (;;)
        pause(); /* until the parent kills it (or dies: PR_SET_PDEATHSIG) */
}

static int child_client(int port)
{
    arpc_runtime *rt = fx_runtime(1);
    arpc_channel *ch = sx_channel(rt, port, NULL);
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(ch, "S/Sink", NULL, &st));
    ASSERT_OK(arpc_stream_write(st, "abc", 3));
    printf("listening on client:1\n");
    fflush(stdout);
    for (int i = 0; i < 100000 && arpc_stream_write(st, "abc", 3) == 0; i++)
        usleep(10 * 1000);
    return 1;
}

static void start_child(fault_proc *out, const char *mode, int port)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    ASSERT_GT(n, 0);
    self[n] = '\0';
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    const char *flag = seam ? "--seam" : grpc ? "--grpc" : NULL;
    char *argv[] = {self, (char *)mode, port_text, (char *)flag, NULL};
    if (port == 0) {
        argv[2] = (char *)flag;
        argv[3] = NULL;
    }
    fault_tool_start(argv, out);
}

/* ---- the parent's side --------------------------------------------------------------- */

/* Reads until a read fails; returns that failure.  Bounded: the peer sends a message
 * every 20 ms at most. */
static int read_until_failure(arpc_stream *st, int *messages)
{
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    int rc;
    for (int i = 0; i < 100000; i++) {
        arpc_buf_clear(msg);
        rc = arpc_stream_read(st, msg);
        if (rc != 0)
            break;
        (*messages)++;
    }
    arpc_buf_destroy(msg);
    return rc;
}

static void test_server_killed(void)
{
    fault_proc child;
    start_child(&child, "--serve", 0);
    arpc_runtime *rt = fx_runtime(1);
    arpc_channel *ch = sx_channel(rt, child.port, NULL);
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(ch, "S/Ticker", NULL, &st));
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    for (int i = 0; i < 3; i++) {
        arpc_buf_clear(msg);
        ASSERT_OK(arpc_stream_read(st, msg));
    }
    arpc_buf_destroy(msg);
    fault_proc_signal(&child, SIGKILL);
    int messages = 0;
    int rc = read_until_failure(st, &messages);
    ASSERT_TRUE(fx_is_conn_error(rc));
    ASSERT_ERR(arpc_stream_write(st, "x", 1), rc);
    ASSERT_ERR(arpc_stream_finish(st, NULL), rc);
    arpc_stream_destroy(st);
    fault_proc_reap(&child, 10000);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
}

static void test_server_frozen(void)
{
    fault_proc child;
    start_child(&child, "--serve", 0);
    arpc_runtime *rt = fx_runtime(1);
    arpc_channel_opts opts;
    arpc_channel_opts_init(&opts);
    opts.heartbeat_interval_ms = 200;
    opts.heartbeat_timeout_ms = 500;
    arpc_channel *ch = sx_channel(rt, child.port, &opts);
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(ch, "S/Ticker", NULL, &st));
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    for (int i = 0; i < 3; i++) {
        arpc_buf_clear(msg);
        ASSERT_OK(arpc_stream_read(st, msg));
    }
    arpc_buf_destroy(msg);
    fault_proc_signal(&child, SIGSTOP);
    ASSERT_TRUE(fault_proc_wait_state(&child, 'T', false, 10000));
    int64_t stopped = test_now_ms();
    int messages = 0;
    ASSERT_ERR(read_until_failure(st, &messages), ARPC_EHEARTBEAT);
    ASSERT_LT(test_now_ms() - stopped, 10000);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_EHEARTBEAT);
    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    ASSERT_GE(stats.heartbeat_failures, 1);
    arpc_stream_destroy(st);
    fault_proc_signal(&child, SIGKILL);
    fault_proc_reap(&child, 10000);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
}

static void test_client_killed(void)
{
    arpc_runtime *rt = fx_runtime(1);
    arpc_server *srv = sx_server(rt, NULL);
    sx_sink_reset();
    uint64_t ends = sx_handler_ends();
    fault_proc child;
    start_child(&child, "--client", arpc_server_port(srv));
    ASSERT_TRUE(sx_wait_sink_read(3));
    fault_proc_signal(&child, SIGKILL);
    ASSERT_TRUE(sx_wait_sink_done());
    ASSERT_EQ(sx_sink_status(), ARPC_ECANCELED);
    ASSERT_TRUE(sx_sink_saw_canceled());
    ASSERT_TRUE(sx_wait_handler_ends(ends + 1));
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, 0, 10000));
    fault_proc_reap(&child, 10000);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

static void test_client_frozen(void)
{
    arpc_runtime *rt = fx_runtime(1);
    arpc_server_opts opts;
    arpc_server_opts_init(&opts);
    opts.heartbeat_interval_ms = 200;
    opts.heartbeat_timeout_ms = 500;
    arpc_server *srv = sx_server(rt, &opts);
    sx_sink_reset();
    fault_proc child;
    start_child(&child, "--client", arpc_server_port(srv));
    ASSERT_TRUE(sx_wait_sink_read(3));
    fault_proc_signal(&child, SIGSTOP);
    ASSERT_TRUE(fault_proc_wait_state(&child, 'T', false, 10000));
    /* The handler waits in a read: the server's heartbeat closes the silent connection,
     * which cancels the stream. */
    ASSERT_TRUE(sx_wait_sink_done());
    ASSERT_EQ(sx_sink_status(), ARPC_ECANCELED);
    arpc_server_stats stats;
    arpc_server_get_stats(srv, &stats);
    ASSERT_GE(stats.heartbeat_closes, 1);
    fault_proc_signal(&child, SIGKILL);
    fault_proc_reap(&child, 10000);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seam") == 0)
            seam = true;
        if (strcmp(argv[i], "--grpc") == 0)
            grpc = true;
    }
    sx_use_seam(seam);
    sx_use_grpc(grpc);
    if (argc > 1 && strcmp(argv[1], "--serve") == 0)
        child_serve();
    if (argc > 2 && strcmp(argv[1], "--client") == 0)
        return child_client(atoi(argv[2]));
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_server_killed);
    RUN_TEST(test_server_frozen);
    RUN_TEST(test_client_killed);
    RUN_TEST(test_client_frozen);
    return 0;
}

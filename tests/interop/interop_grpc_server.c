/*
 * grpcio's client against arpc's gRPC server: arpc-echo-server (a child
 * process, its one port serving native and gRPC) runs proto/arpc/echo.proto's
 * service, and grpc_peer_client.py runs its cases against it: unary, metadata,
 * deadline, unimplemented, overlimit, big, concurrent, health.  The same port
 * keeps answering native calls after the gRPC clients came and went.  And the
 * `shutdown` case against an in-process server: the Sleeps in flight when
 * arpc_server_shutdown begins finish, new calls get UNAVAILABLE.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "fault_util.h"
#include "interop_util.h"
#include "test.h"
#include "test_stats.h"

#define CLIENT_TIMEOUT_MS 25000

static void stop_server(fault_proc *srv)
{
    fault_proc_signal(srv, SIGTERM);
    int status = fault_proc_reap(srv, 10000);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

/* A native call on the same port: detection keeps both protocols apart. */
static void native_echo(int port)
{
    arpc_runtime *rt;
    ASSERT_OK(arpc_runtime_create(NULL, &rt));
    char target[64];
    interop_addr(target, sizeof(target), port);
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, NULL, &ch));
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    ASSERT_OK(arpc_call(ch, "echo", "hi", 2, NULL, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 2);
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
}

static void test_grpcio_cases(void)
{
    fault_proc srv;
    fault_echo_start("127.0.0.1:0", 2, &srv);
    char target[64];
    interop_addr(target, sizeof(target), srv.port);
    const char *args[] = {"unary",      "metadata", "deadline", "unimplemented", "overlimit", "big",
                          "concurrent", "health",   NULL};
    ASSERT_EQ(interop_run_grpc_client(target, args, CLIENT_TIMEOUT_MS), 0);
    native_echo(srv.port);
    /* The cases really fail when the server is not what they were told. */
    const char *wrong[] = {"--server-max-recv", "1024", "overlimit", NULL};
    ASSERT_EQ(interop_run_grpc_client(target, wrong, CLIENT_TIMEOUT_MS), 1);
    stop_server(&srv);
}

/* ---- shutdown with calls in flight, in process ---------------------------------- */

static atomic_int sleeping;

/* arpc.echo.Echo/Sleep: EchoMsg{data: ms} (tag 0x0a, a one-byte length here). */
static int handle_sleep(arpc_request *req, void *user_data)
{
    (void)user_data;
    const char *p = arpc_request_data(req);
    size_t len = arpc_request_len(req);
    char text[16];
    if (len < 3 || p[0] != 0x0a || (size_t)p[1] != len - 2 || len - 2 >= sizeof(text))
        return 3;
    memcpy(text, p + 2, len - 2);
    text[len - 2] = '\0';
    atomic_fetch_add(&sleeping, 1);
    arpc_coro_sleep_ms(atoi(text));
    return arpc_buf_append(arpc_request_response(req), p, len);
}

static int handle_echo(arpc_request *req, void *user_data)
{
    (void)user_data;
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

static bool four_sleeping(void *arg)
{
    (void)arg;
    return atomic_load(&sleeping) == 4;
}

/* True once the port refuses connections: the listener closed, the drain began. */
static bool port_closed(void *arg)
{
    int port = *(int *)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool refused = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == ECONNREFUSED;
    close(fd);
    return refused;
}

static arpc_server *shut_srv;
static int shut_rc = 1;

static void *shutdown_thread(void *arg)
{
    (void)arg;
    shut_rc = arpc_server_shutdown(shut_srv, 10000);
    return NULL;
}

static void test_shutdown_inflight(void)
{
    arpc_runtime *rt;
    ASSERT_OK(arpc_runtime_create(NULL, &rt));
    ASSERT_OK(arpc_server_create(rt, NULL, &shut_srv));
    ASSERT_OK(arpc_server_register(shut_srv, "arpc.echo.Echo/Sleep", handle_sleep, NULL));
    ASSERT_OK(arpc_server_register(shut_srv, "arpc.echo.Echo/Echo", handle_echo, NULL));
    ASSERT_OK(arpc_server_listen(shut_srv, "127.0.0.1:0"));
    int port = arpc_server_port(shut_srv);
    char target[64];
    interop_addr(target, sizeof(target), port);

    interop_proc cli;
    const char *args[] = {"--inflight", "4", "--sleep-ms", "1500", "shutdown", NULL};
    interop_start_grpc_client(target, args, &cli);
    ASSERT_TRUE(interop_wait_line(&cli, "shutdown started 4", NULL, 0, 20000));
    ASSERT_TRUE(wait_until(four_sleeping, NULL, 10000));
    pthread_t tid;
    ASSERT_EQ(pthread_create(&tid, NULL, shutdown_thread, NULL), 0);
    ASSERT_TRUE(wait_until(port_closed, &port, 5000));
    interop_send_line(&cli, "signaled");

    char line[256];
    ASSERT_TRUE(interop_wait_line(&cli, "shutdown ", line, sizeof(line), 20000));
    ASSERT_STREQ(line, "shutdown ok");
    ASSERT_EQ(interop_reap(&cli, 5000), 0);
    ASSERT_EQ(pthread_join(tid, NULL), 0);
    ASSERT_EQ(shut_rc, 0); /* drained: the four Sleeps were answered */
    arpc_server_destroy(shut_srv);
    arpc_runtime_destroy(rt);
}

/* ---- a frozen grpcio client, noticed by the server's heartbeat ---------------------- */

static atomic_int sleeps_done;
static arpc_server *frozen_srv;

static int handle_counted_sleep(arpc_request *req, void *user_data)
{
    int rc = handle_sleep(req, user_data);
    atomic_fetch_add(&sleeps_done, 1);
    return rc;
}

static bool five_sleeping(void *arg)
{
    (void)arg;
    return atomic_load(&sleeping) == 5; /* the first Sleep, then the four in flight */
}

static bool five_done(void *arg)
{
    (void)arg;
    return atomic_load(&sleeps_done) == 5;
}

static void test_frozen_client(void)
{
    atomic_store(&sleeping, 0);
    arpc_runtime *rt;
    ASSERT_OK(arpc_runtime_create(NULL, &rt));
    ASSERT_OK(arpc_server_create(rt, NULL, &frozen_srv)); /* heartbeats at their defaults */
    ASSERT_OK(arpc_server_register(frozen_srv, "arpc.echo.Echo/Sleep", handle_counted_sleep, NULL));
    ASSERT_OK(arpc_server_listen(frozen_srv, "127.0.0.1:0"));
    char target[64];
    interop_addr(target, sizeof(target), arpc_server_port(frozen_srv));

    interop_proc cli;
    const char *args[] = {"--inflight", "4", "--sleep-ms", "3000", "frozen", NULL};
    interop_start_grpc_client(target, args, &cli);
    /* The first Sleep(3000) passed with the server pinging the live client. */
    ASSERT_TRUE(interop_wait_line(&cli, "frozen started 4", NULL, 0, 20000));
    ASSERT_TRUE(wait_until(five_sleeping, NULL, 10000));
    arpc_server_stats st;
    arpc_server_get_stats(frozen_srv, &st);
    ASSERT_EQ(st.heartbeat_closes, 0);
    interop_freeze(&cli);
    int64_t t0 = test_now_ms();
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(frozen_srv, heartbeat_closes, 1, 2500));
    int64_t took = test_now_ms() - t0;
    fprintf(stderr, "  the frozen client's connection closed %lld ms after SIGSTOP\n",
            (long long)took);
    ASSERT_LE(took, 2000);
    /* The handlers finish; their answers go nowhere (the connection is gone). */
    ASSERT_TRUE(wait_until(five_done, NULL, 10000));
    interop_thaw(&cli);
    interop_send_line(&cli, "go");
    char line[256];
    ASSERT_TRUE(interop_wait_line(&cli, "frozen ", line, sizeof(line), 20000));
    ASSERT_STREQ(line, "frozen ok");
    ASSERT_EQ(interop_reap(&cli, 5000), 0);
    ASSERT_OK(arpc_server_shutdown(frozen_srv, 2000)); /* nothing left in flight */
    arpc_server_destroy(frozen_srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    interop_require_grpc();
    RUN_TEST(test_grpcio_cases);
    RUN_TEST(test_shutdown_inflight);
    RUN_TEST(test_frozen_client);
    return 0;
}

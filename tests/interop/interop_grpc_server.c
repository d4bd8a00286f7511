/*
 * grpcio's client against arpc's gRPC server: arpc-echo-server (a child
 * process, its one port serving native and gRPC) runs proto/arpc/echo.proto's
 * service, and grpc_peer_client.py runs its cases against it: unary, metadata,
 * deadline, unimplemented, overlimit, big, concurrent, health.  The same port
 * keeps answering native calls after the gRPC clients came and went.
 */
#include <signal.h>
#include <sys/wait.h>

#include <arpc/arpc.h>

#include "fault_util.h"
#include "interop_util.h"
#include "test.h"

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

int main(void)
{
    interop_require_grpc();
    RUN_TEST(test_grpcio_cases);
    return 0;
}

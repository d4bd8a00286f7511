/*
 * grpcio's client against grpcio's server, every case of grpc_peer_client.py
 * but the two that need a harness step (shutdown, stalled: their own tests).
 * It proves the peers and interop_util before arpc speaks gRPC; arpc's gRPC
 * server and client then take one side each with the same cases.
 */
#include <signal.h>

#include "interop_util.h"
#include "test.h"

#define CLIENT_TIMEOUT_MS 25000

static void stop_server(interop_proc *srv)
{
    interop_signal(srv, SIGTERM);
    ASSERT_TRUE(interop_wait_line(srv, "event stopped", NULL, 0, 10000));
    ASSERT_EQ(interop_reap(srv, 10000), 0);
}

/* Every case against a server with gRPC's default limits. */
static void test_all_cases(void)
{
    interop_proc srv;
    interop_start_grpc_peer(NULL, &srv);
    char target[64];
    interop_addr(target, sizeof(target), srv.port);
    const char *args[] = {"unary",      "metadata", "deadline", "unimplemented", "overlimit", "big",
                          "concurrent", "health",   NULL};
    ASSERT_EQ(interop_run_grpc_client(target, args, CLIENT_TIMEOUT_MS), 0);
    stop_server(&srv);
}

/* Echoed metadata in the trailers too, and a smaller receive limit obeyed. */
static void test_server_flags(void)
{
    interop_proc srv;
    const char *srv_args[] = {"--echo-metadata", "both", "--max-recv", "65536", NULL};
    interop_start_grpc_peer(srv_args, &srv);
    char target[64];
    interop_addr(target, sizeof(target), srv.port);
    const char *initial[] = {"metadata", NULL};
    ASSERT_EQ(interop_run_grpc_client(target, initial, CLIENT_TIMEOUT_MS), 0);
    const char *trailing[] = {
        "--metadata-from", "trailing", "--server-max-recv", "65536", "metadata", "overlimit", NULL};
    ASSERT_EQ(interop_run_grpc_client(target, trailing, CLIENT_TIMEOUT_MS), 0);
    /* The case really fails when the limit is not what it was told. */
    const char *wrong[] = {"--server-max-recv", "1024", "overlimit", NULL};
    ASSERT_EQ(interop_run_grpc_client(target, wrong, CLIENT_TIMEOUT_MS), 1);
    stop_server(&srv);
}

int main(void)
{
    interop_require_grpc();
    RUN_TEST(test_all_cases);
    RUN_TEST(test_server_flags);
    return 0;
}

/*
 * Shutdown with calls in flight, grpcio against itself: the protocol of
 * grpc_peer_client.py's `shutdown` case, driven from C the way arpc's tests
 * will drive it (with arpc's server, the SIGTERM becomes arpc's shutdown).
 */
#include <signal.h>

#include "interop_util.h"
#include "test.h"

static void test_inflight_finish_new_unavailable(void)
{
    interop_proc srv, cli;
    const char *srv_args[] = {"--grace", "10", NULL};
    interop_start_grpc_peer(srv_args, &srv);
    char target[64];
    interop_addr(target, sizeof(target), srv.port);
    const char *args[] = {"--inflight", "4", "--sleep-ms", "1500", "shutdown", NULL};
    interop_start_grpc_client(target, args, &cli);

    ASSERT_TRUE(interop_wait_line(&cli, "shutdown started 4", NULL, 0, 20000));
    ASSERT_TRUE(interop_wait_line(&srv, "event sleep-begin 4", NULL, 0, 10000));
    interop_signal(&srv, SIGTERM);
    ASSERT_TRUE(interop_wait_line(&srv, "event draining", NULL, 0, 5000));
    interop_send_line(&cli, "signaled");

    char line[256];
    ASSERT_TRUE(interop_wait_line(&cli, "shutdown ", line, sizeof(line), 20000));
    ASSERT_STREQ(line, "shutdown ok");
    ASSERT_EQ(interop_reap(&cli, 5000), 0);
    /* The server waited for its four Sleep calls, then exited cleanly. */
    ASSERT_TRUE(interop_wait_line(&srv, "event stopped", line, sizeof(line), 15000));
    ASSERT_EQ(interop_reap(&srv, 5000), 0);
}

int main(void)
{
    interop_require_grpc();
    RUN_TEST(test_inflight_finish_new_unavailable);
    return 0;
}

/*
 * The frozen peer helper: interop_freeze (SIGSTOP) makes grpc_peer_server.py
 * unresponsive while its socket stays open, the case arpc's heartbeats must
 * notice within 2 s ("a frozen gRPC server is noticed in about 1.5 s");
 * interop_thaw (SIGCONT) brings it back.  Checked here with a raw HTTP/2
 * connection (no answer to the preface while frozen, SETTINGS after) and
 * grpcio's client (a deadline is its only way to notice).
 */
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "interop_util.h"
#include "test.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                              "\x00\x00\x00\x04\x00\x00\x00\x00\x00"; /* + empty SETTINGS */

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1;
}

static void test_freeze_thaw(void)
{
    interop_proc srv;
    interop_start_grpc_peer(NULL, &srv);
    char target[64];
    interop_addr(target, sizeof(target), srv.port);
    const char *unary[] = {"unary", NULL};
    ASSERT_EQ(interop_run_grpc_client(target, unary, 20000), 0);

    interop_freeze(&srv);
    /* The kernel still accepts the connection; nothing answers the preface. */
    int fd = connect_local(srv.port);
    ASSERT_EQ(write(fd, preface, sizeof(preface) - 1), (ssize_t)(sizeof(preface) - 1));
    ASSERT_FALSE(readable(fd, 1000));
    const char *stalled[] = {"--timeout-ms", "500", "stalled", NULL};
    ASSERT_EQ(interop_run_grpc_client(target, stalled, 20000), 0);

    interop_thaw(&srv);
    ASSERT_TRUE(readable(fd, 10000)); /* the server's SETTINGS */
    unsigned char head[9];
    ASSERT_EQ(read(fd, head, sizeof(head)), (ssize_t)sizeof(head));
    ASSERT_EQ(head[3], 0x4); /* SETTINGS */
    close(fd);
    ASSERT_EQ(interop_run_grpc_client(target, unary, 20000), 0);

    interop_signal(&srv, SIGTERM);
    ASSERT_EQ(interop_reap(&srv, 15000), 0);
}

int main(void)
{
    interop_require_grpc();
    RUN_TEST(test_freeze_thaw);
    return 0;
}

/*
 * A call made while the process is out of file descriptors: the connection
 * cannot even get a socket, the endpoint is ejected at once
 * (eject_after_failures = 1), the retry fails at once too, and the call
 * fails with the socket error (EMFILE) through its callback -- after
 * arpc_call_async has returned, never inside it (the async contract), also on
 * this path where the retry runs inside the initiation.  Once descriptors
 * are free again, the channel works.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fault_util.h"
#include "test.h"

#define MAX_FDS 256

typedef struct fd_case {
    arpc_channel *ch;
    _Atomic bool initiating;     /* inside arpc_call_async on the loop thread */
    _Atomic int callback_inside; /* -1: no callback yet; else 1 if it ran inside */
    _Atomic int status;
    _Atomic int call_rc;
} fd_case;

static void on_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    (void)rsp;
    (void)rsp_len;
    fd_case *fc = user_data;
    atomic_store(&fc->status, status);
    atomic_store(&fc->callback_inside, atomic_load(&fc->initiating) ? 1 : 0);
}

/* On the loop thread: take every free descriptor, call, give them back. */
static void call_without_fds(void *arg)
{
    fd_case *fc = arg;
    static int held[MAX_FDS];
    int n = 0;
    int fd;
    while (n < MAX_FDS && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        held[n++] = fd;
    atomic_store(&fc->initiating, true);
    atomic_store(&fc->call_rc, arpc_call_async(fc->ch, "echo", "x", 1, NULL, on_done, fc));
    atomic_store(&fc->initiating, false);
    while (n > 0)
        close(held[--n]);
}

static bool callback_ran(void *arg)
{
    fd_case *fc = arg;
    return atomic_load(&fc->callback_inside) >= 0;
}

static void test_call_without_descriptors(void)
{
    struct rlimit saved;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    struct rlimit low = {.rlim_cur = MAX_FDS, .rlim_max = saved.rlim_max};
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

    arpc_runtime *srv_rt = fault_runtime(1);
    arpc_server *srv = fault_echo_server(srv_rt, NULL);
    arpc_runtime *cli_rt = fault_runtime(1);
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    copts.eject_after_failures = 1;
    copts.max_retries = 1;
    arpc_channel *ch = fault_channel(cli_rt, arpc_server_port(srv), &copts);

    fd_case fc = {.ch = ch, .callback_inside = -1};
    ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(cli_rt, 0), call_without_fds, &fc));
    ASSERT_TRUE(wait_until(callback_ran, &fc, 10000));
    ASSERT_OK(atomic_load(&fc.call_rc));
    ASSERT_EQ(atomic_load(&fc.callback_inside), 0);
    ASSERT_ERR(atomic_load(&fc.status), -EMFILE);

    /* Descriptors are back: the endpoint is probed and re-admitted (calls
     * fail fast with ARPC_ENOENDPOINT until then). */
    fault_echo_wait w = {.ch = ch};
    ASSERT_TRUE(wait_until(fault_echo_succeeds, &w, 10000));

    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

int main(void)
{
    RUN_TEST(test_call_without_descriptors);
    return 0;
}

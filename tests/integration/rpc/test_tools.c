/*
 * The command-line tools, run as real child processes.  Proves:
 *  - arpc-echo-server --listen 127.0.0.1:0 --threads 2 prints the port it
 *    picked ("listening on HOST:PORT") and serves it;
 *  - arpc-call ... echo hello prints "hello" and exits 0;
 *  - arpc-call --metadata KEY=VALUE sends metadata: the echo server answers
 *    the x-echo-* entries, printed on stderr ("-bin" in hex); a key that
 *    breaks the rules fails with EINVAL;
 *  - arpc-call ... --timeout-ms 50 sleep 500 reports "error: ETIMEDOUT: ..."
 *    on stderr and exits non-zero; an unknown method reports
 *    "error: ENOMETHOD: ..." and exits non-zero;
 *  - SIGTERM shuts the server down gracefully: it exits 0 within a few
 *    seconds and then refuses connections;
 *  - a smoke test of arpc-bench and of the tuning flags: against a server
 *    with --busy-poll-us 50 --write-early 0, itself with --busy-poll-us 50,
 *    in coroutine and callback modes, it prints its one result line with
 *    qps > 0 and errors=0 and exits 0 (that busy polling pays is shown by
 *    make bench, not here);
 *  - arpc-bench --stream, natively and over gRPC, 2 streams of depth 8 on
 *    arpc-echo-server's arpc.echo.Echo/Stream: one result line with
 *    msgs_per_s > 0 and errors=0, exit 0.
 * Only the processes this test spawns are ever signalled, by their pid; if
 * the test fails, the server is killed before the abort completes.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

extern char **environ;

#define STEP_TIMEOUT_MS 20000

static volatile pid_t server_pid = -1;
static volatile pid_t call_pid = -1;

/* A failed assert aborts: take our children down with us. */
static void on_abort(int sig)
{
    if (server_pid > 0)
        kill(server_pid, SIGKILL);
    if (call_pid > 0)
        kill(call_pid, SIGKILL);
    signal(SIGABRT, SIG_DFL);
    raise(SIGABRT);
}

/* Spawns `argv` with stdout to `out_fd` and stderr to `err_fd` (-1: inherit). */
static pid_t spawn(char *const argv[], int out_fd, int err_fd)
{
    posix_spawn_file_actions_t fa;
    ASSERT_EQ(posix_spawn_file_actions_init(&fa), 0);
    if (out_fd >= 0)
        ASSERT_EQ(posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO), 0);
    if (err_fd >= 0)
        ASSERT_EQ(posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO), 0);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    if (rc != 0)
        test_fail(__FILE__, __LINE__, "posix_spawn %s: %s", argv[0], strerror(rc));
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* Waits for `pid` to exit within `timeout_ms`; returns its wait status. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t end = test_now_ms() + timeout_ms;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        ASSERT_EQ(r, 0);
        if (test_now_ms() >= end)
            test_fail(__FILE__, __LINE__, "pid %d did not exit within %d ms", (int)pid, timeout_ms);
        usleep(5000);
    }
}

typedef struct output {
    char text[4096];
    size_t len;
    bool eof;
} output;

/* Reads what `fd` has into `o`; marks EOF. */
static void drain(int fd, output *o)
{
    for (;;) {
        ssize_t n = read(fd, o->text + o->len, sizeof(o->text) - 1 - o->len);
        if (n > 0) {
            o->len += (size_t)n;
            o->text[o->len] = '\0';
            if (o->len == sizeof(o->text) - 1)
                return;
            continue;
        }
        if (n == 0)
            o->eof = true;
        return; /* EAGAIN: later */
    }
}

/* Runs `tool --target TARGET args...`; collects stdout and stderr; returns the
 * wait status. */
static int run_tool(const char *tool, const char *target, const char *const args[], output *out,
                    output *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s", test_bin_path(tool));
    char *argv[24];
    int argc = 0;
    argv[argc++] = path;
    argv[argc++] = "--target";
    argv[argc++] = (char *)target;
    for (int i = 0; args[i] != NULL && argc < 23; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;

    int out_pipe[2], err_pipe[2];
    ASSERT_EQ(pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK), 0);
    ASSERT_EQ(pipe2(err_pipe, O_CLOEXEC | O_NONBLOCK), 0);
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    call_pid = spawn(argv, out_pipe[1], err_pipe[1]);
    close(out_pipe[1]);
    close(err_pipe[1]);

    int64_t end = test_now_ms() + STEP_TIMEOUT_MS;
    while (!out->eof || !err->eof) {
        struct pollfd fds[2] = {{.fd = out->eof ? -1 : out_pipe[0], .events = POLLIN},
                                {.fd = err->eof ? -1 : err_pipe[0], .events = POLLIN}};
        int left = (int)(end - test_now_ms());
        if (left <= 0)
            test_fail(__FILE__, __LINE__, "%s did not finish within %d ms", tool, STEP_TIMEOUT_MS);
        poll(fds, 2, left);
        if (!out->eof)
            drain(out_pipe[0], out);
        if (!err->eof)
            drain(err_pipe[0], err);
    }
    close(out_pipe[0]);
    close(err_pipe[0]);
    int status = wait_exit(call_pid, STEP_TIMEOUT_MS);
    call_pid = -1;
    return status;
}

static int run_call(const char *target, const char *const args[], output *out, output *err)
{
    return run_tool("arpc-call", target, args, out, err);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Starts the echo server with `extra` flags (NULL-terminated, at most 4) and
 * reads the address it announces. */
static void start_server(char *target, size_t len, char *const extra[])
{
    char path[4096];
    snprintf(path, sizeof(path), "%s", test_bin_path("arpc-echo-server"));
    char *argv[10] = {path, "--listen", "127.0.0.1:0", "--threads", "2"};
    for (int i = 0; extra[i] != NULL && i < 4; i++)
        argv[5 + i] = extra[i];
    int out_pipe[2];
    ASSERT_EQ(pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK), 0);
    server_pid = spawn(argv, out_pipe[1], -1);
    close(out_pipe[1]);

    output o;
    memset(&o, 0, sizeof(o));
    int64_t end = test_now_ms() + STEP_TIMEOUT_MS;
    while (strchr(o.text, '\n') == NULL) {
        ASSERT_FALSE(o.eof);
        int left = (int)(end - test_now_ms());
        if (left <= 0)
            test_fail(__FILE__, __LINE__, "no 'listening on' line within %d ms", STEP_TIMEOUT_MS);
        struct pollfd pfd = {.fd = out_pipe[0], .events = POLLIN};
        poll(&pfd, 1, left);
        drain(out_pipe[0], &o);
    }
    close(out_pipe[0]);
    fprintf(stderr, "  server %d: %s", (int)server_pid, o.text);
    ASSERT_TRUE(starts_with(o.text, "listening on 127.0.0.1:"));
    char *addr = o.text + strlen("listening on ");
    *strchr(addr, '\n') = '\0';
    int port = atoi(strrchr(addr, ':') + 1);
    ASSERT_GT(port, 0);
    ASSERT_LT(port, 65536);
    ASSERT_LT(strlen(addr), len);
    memcpy(target, addr, strlen(addr) + 1);
}

static void test_tools_end_to_end(void)
{
    char target[128];
    char *no_flags[] = {NULL};
    start_server(target, sizeof(target), no_flags);
    output out, err;

    const char *echo_args[] = {"echo", "hello", NULL};
    int status = run_call(target, echo_args, &out, &err);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_STREQ(out.text, "hello\n");

    /* Metadata: x-echo-* comes back, printed on stderr; others do not; a bad key
     * fails at the call. */
    const char *md_args[] = {"--metadata", "x-echo-trace=t1", "--metadata", "other=o",
                             "--metadata", "x-echo-k-bin=AB", "echo",       "hi",
                             NULL};
    status = run_call(target, md_args, &out, &err);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_STREQ(out.text, "hi\n");
    ASSERT_STREQ(err.text, "metadata: x-echo-trace: t1\nmetadata: x-echo-k-bin: 4142\n");
    const char *bad_md_args[] = {"--metadata", "Upper=x", "echo", "hi", NULL};
    status = run_call(target, bad_md_args, &out, &err);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 0);
    ASSERT_TRUE(starts_with(err.text, "error: EINVAL: "));

    const char *timeout_args[] = {"--timeout-ms", "50", "sleep", "500", NULL};
    status = run_call(target, timeout_args, &out, &err);
    fprintf(stderr, "  timeout: %s", err.text);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 0);
    ASSERT_TRUE(starts_with(err.text, "error: ETIMEDOUT: "));
    ASSERT_EQ(out.len, 0);

    const char *unknown_args[] = {"no.such.method", "x", NULL};
    status = run_call(target, unknown_args, &out, &err);
    fprintf(stderr, "  unknown method: %s", err.text);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 0);
    ASSERT_TRUE(starts_with(err.text, "error: ENOMETHOD: "));
    ASSERT_EQ(out.len, 0);

    /* The server is still fine after those. */
    const char *sleep_args[] = {"sleep", "1", NULL};
    status = run_call(target, sleep_args, &out, &err);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_STREQ(out.text, "1\n");

    /* SIGTERM: a graceful exit with status 0, within a few seconds. */
    ASSERT_EQ(kill(server_pid, SIGTERM), 0);
    status = wait_exit(server_pid, 10000);
    server_pid = -1;
    if (WIFSIGNALED(status))
        test_fail(__FILE__, __LINE__, "server died of signal %d", WTERMSIG(status));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);

    /* And it is gone: the port refuses connections. */
    status = run_call(target, echo_args, &out, &err);
    fprintf(stderr, "  after exit: %s", err.text);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 0);
    ASSERT_TRUE(starts_with(err.text, "error: ECONNREFUSED: "));
}

static void stop_server(void)
{
    ASSERT_EQ(kill(server_pid, SIGTERM), 0);
    int status = wait_exit(server_pid, 10000);
    server_pid = -1;
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

static void test_bench_with_busy_polling(void)
{
    char target[128];
    char *busy_poll[] = {"--busy-poll-us", "50", "--write-early", "0", NULL};
    start_server(target, sizeof(target), busy_poll);
    static const char *const modes[] = {"coro", "async"};
    for (int i = 0; i < 2; i++) {
        const char *args[] = {"--conns", "2",      "--depth",        "8",  "--secs",       "1",
                              "--mode",  modes[i], "--busy-poll-us", "50", "--timeout-ms", "10000",
                              NULL};
        output out, err;
        int status = run_tool("arpc-bench", target, args, &out, &err);
        fprintf(stderr, "  %s%s", out.text, err.text);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
        char want[64];
        snprintf(want, sizeof(want), "system=arpc mode=%s conns=2 depth=8 size=64 qps=", modes[i]);
        ASSERT_TRUE(starts_with(out.text, want));
        ASSERT_GT(atol(out.text + strlen(want)), 0);
        ASSERT_TRUE(strstr(out.text, " errors=0\n") != NULL);
    }
    stop_server();
}

static void test_bench_streams(void)
{
    char target[128];
    char *no_flags[] = {NULL};
    start_server(target, sizeof(target), no_flags);
    static const char *const protocols[] = {"native", "grpc"};
    for (int i = 0; i < 2; i++) {
        const char *args[] = {"--stream",   "--streams",    "2",     "--depth",
                              "8",          "--secs",       "1",     "--protocol",
                              protocols[i], "--timeout-ms", "10000", NULL};
        output out, err;
        int status = run_tool("arpc-bench", target, args, &out, &err);
        fprintf(stderr, "  %s%s", out.text, err.text);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
        char want[128];
        snprintf(want, sizeof(want),
                 "system=arpc mode=stream protocol=%s conns=1 streams=2 depth=8 size=64 "
                 "msgs_per_s=",
                 protocols[i]);
        ASSERT_TRUE(starts_with(out.text, want));
        ASSERT_GT(atol(out.text + strlen(want)), 0);
        ASSERT_TRUE(strstr(out.text, " errors=0\n") != NULL);
    }
    stop_server();
}

int main(void)
{
    signal(SIGABRT, on_abort);
    RUN_TEST(test_tools_end_to_end);
    RUN_TEST(test_bench_with_busy_polling);
    RUN_TEST(test_bench_streams);
    return 0;
}

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
 *    msgs_per_s > 0 and errors=0, exit 0;
 *  - with OpenSSL, TLS (docs/tls.md): arpc-echo-server --tls-cert/--tls-key/--tls-client-ca
 *    prints "tls listening on HOST:PORT" after its plaintext line; arpc-call and
 *    arpc-bench --tls-ca/--tls-cert/--tls-key/--tls-server-name call it natively and
 *    over gRPC; no certificate, another name or another CA fail with ETLSREFUSED,
 *    ETLSHOST, ETLSUNTRUSTED; a certificate without its key is a usage error.
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

/* The "127.0.0.1:PORT" after `prefix` on the first line of `line` into target.
 * @return the port. */
static int parse_listening(const char *line, const char *prefix, char *target, size_t len)
{
    ASSERT_TRUE(starts_with(line, prefix));
    const char *addr = line + strlen(prefix);
    ASSERT_TRUE(starts_with(addr, "127.0.0.1:"));
    const char *nl = strchr(addr, '\n');
    ASSERT_TRUE(nl != NULL);
    size_t n = (size_t)(nl - addr);
    ASSERT_LT(n, len);
    memcpy(target, addr, n);
    target[n] = '\0';
    int port = atoi(strrchr(target, ':') + 1);
    ASSERT_GT(port, 0);
    ASSERT_LT(port, 65536);
    return port;
}

/* Starts the echo server with `extra` flags (NULL-terminated, at most 6) and
 * reads the address it announces; with `tls_target`, also the TLS listener's
 * ("tls listening on HOST:PORT", the next line). */
static void start_server_tls(char *target, char *tls_target, size_t len, char *const extra[])
{
    char path[4096];
    snprintf(path, sizeof(path), "%s", test_bin_path("arpc-echo-server"));
    char *argv[12] = {path, "--listen", "127.0.0.1:0", "--threads", "2"};
    for (int i = 0; extra[i] != NULL && i < 6; i++)
        argv[5 + i] = extra[i];
    int out_pipe[2];
    ASSERT_EQ(pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK), 0);
    server_pid = spawn(argv, out_pipe[1], -1);
    close(out_pipe[1]);

    output o;
    memset(&o, 0, sizeof(o));
    int64_t end = test_now_ms() + STEP_TIMEOUT_MS;
    for (;;) {
        const char *nl = strchr(o.text, '\n');
        if (nl != NULL && (tls_target == NULL || strchr(nl + 1, '\n') != NULL))
            break;
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
    int port = parse_listening(o.text, "listening on ", target, len);
    if (tls_target != NULL) {
        const char *second = strchr(o.text, '\n') + 1;
        int tls_port = parse_listening(second, "tls listening on ", tls_target, len);
        ASSERT_NE(tls_port, port);
    }
}

static void start_server(char *target, size_t len, char *const extra[])
{
    start_server_tls(target, NULL, len, extra);
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

#ifdef ARPC_TLS_CERT_DIR
static char certs[1024];

static const char *cert(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", certs, name);
    return buf;
}

/* arpc-call over TLS with `args` (ending in METHOD PAYLOAD); checks the exit status is 0 and
 * stdout `want`, or (want NULL) a failure whose stderr starts with `err_prefix`. */
static void call_tls(const char *target, const char *const args[], const char *want,
                     const char *err_prefix)
{
    output out, err;
    int status = run_call(target, args, &out, &err);
    if (want == NULL)
        fprintf(stderr, "  refused: %s", err.text);
    ASSERT_TRUE(WIFEXITED(status));
    if (want != NULL) {
        ASSERT_EQ(WEXITSTATUS(status), 0);
        ASSERT_STREQ(out.text, want);
    } else {
        ASSERT_NE(WEXITSTATUS(status), 0);
        ASSERT_TRUE(starts_with(err.text, err_prefix));
        ASSERT_EQ(out.len, 0);
    }
}

/* arpc-echo-server --tls-cert/--tls-key/--tls-client-ca serves TLS beside plaintext;
 * arpc-call and arpc-bench reach it with --tls-ca/--tls-cert/--tls-key/--tls-server-name,
 * and are refused with the specific error without a certificate, with the wrong name
 * or another CA. */
static void test_tools_tls(void)
{
    snprintf(certs, sizeof(certs), "%s", ARPC_TLS_CERT_DIR);
    char cmd[2200];
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", ARPC_TLS_GEN_CERTS, certs);
    ASSERT_EQ(system(cmd), 0);
    char ca[1100], srv_pem[1100], srv_key[1100], cli_pem[1100], cli_key[1100], rogue[1100];
    cert(ca, sizeof(ca), "ca.pem");
    cert(srv_pem, sizeof(srv_pem), "server.pem");
    cert(srv_key, sizeof(srv_key), "server.key");
    cert(cli_pem, sizeof(cli_pem), "client.pem");
    cert(cli_key, sizeof(cli_key), "client.key");
    cert(rogue, sizeof(rogue), "rogue-ca.pem");

    char target[128], tls_target[128];
    char *flags[] = {"--tls-cert", srv_pem, "--tls-key", srv_key, "--tls-client-ca", ca, NULL};
    start_server_tls(target, tls_target, sizeof(target), flags);

    const char *plain[] = {"echo", "plain", NULL};
    call_tls(target, plain, "plain\n", NULL);
    const char *mtls[] = {"--tls-ca", ca,     "--tls-cert", cli_pem, "--tls-key",
                          cli_key,    "echo", "tls",        NULL};
    call_tls(tls_target, mtls, "tls\n", NULL);
    const char *named[] = {
        "--tls-ca",          ca,          "--tls-cert", cli_pem, "--tls-key", cli_key,
        "--tls-server-name", "localhost", "echo",       "named", NULL};
    call_tls(tls_target, named, "named\n", NULL);
    const char *grpc[] = {"--protocol",           "grpc",  "--tls-ca",  ca,
                          "--tls-cert",           cli_pem, "--tls-key", cli_key,
                          "/arpc.echo.Echo/Echo", "g",     NULL};
    call_tls(tls_target, grpc, "g\n", NULL); /* the raw message bytes: "g" as it is */

    /* TLS 1.3: the server's refusal of a missing certificate arrives on the first read. */
    const char *no_cert[] = {"--tls-ca", ca, "echo", "x", NULL};
    call_tls(tls_target, no_cert, NULL, "error: ETLSREFUSED: ");
    const char *wrong_name[] = {
        "--tls-ca",          ca,           "--tls-cert", cli_pem, "--tls-key", cli_key,
        "--tls-server-name", "other.test", "echo",       "x",     NULL};
    call_tls(tls_target, wrong_name, NULL, "error: ETLSHOST: ");
    const char *untrusted[] = {"--tls-ca", rogue,  "--tls-cert", cli_pem, "--tls-key",
                               cli_key,    "echo", "x",          NULL};
    call_tls(tls_target, untrusted, NULL, "error: ETLSUNTRUSTED: ");
    const char *half[] = {"--tls-ca", ca, "--tls-cert", cli_pem, "echo", "x", NULL};
    output out, err;
    int status = run_call(tls_target, half, &out, &err);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 2); /* usage: a certificate without its key */

    const char *bench[] = {"--conns",      "2",     "--depth",    "4",     "--secs",    "1",
                           "--tls-ca",     ca,      "--tls-cert", cli_pem, "--tls-key", cli_key,
                           "--timeout-ms", "10000", NULL};
    status = run_tool("arpc-bench", tls_target, bench, &out, &err);
    fprintf(stderr, "  %s%s", out.text, err.text);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    const char *want = "system=arpc mode=coro conns=2 depth=4 size=64 qps=";
    ASSERT_TRUE(starts_with(out.text, want));
    ASSERT_GT(atol(out.text + strlen(want)), 0);
    ASSERT_TRUE(strstr(out.text, " errors=0\n") != NULL);
    const char *bench_half[] = {"--secs", "1", "--tls-key", cli_key, NULL};
    status = run_tool("arpc-bench", tls_target, bench_half, &out, &err);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 2);
    stop_server();
}
#endif

int main(void)
{
    signal(SIGABRT, on_abort);
    RUN_TEST(test_tools_end_to_end);
    RUN_TEST(test_bench_with_busy_polling);
    RUN_TEST(test_bench_streams);
#ifdef ARPC_TLS_CERT_DIR
    RUN_TEST(test_tools_tls);
#endif
    return 0;
}

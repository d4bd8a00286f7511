#include "interop_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* Set by tests/interop/CMakeLists.txt. */
#ifndef INTEROP_GRPC_SCRIPTS
#error "INTEROP_GRPC_SCRIPTS (tests/interop/grpc) must be defined"
#endif
#ifndef INTEROP_GRPC_STUBS
#error "INTEROP_GRPC_STUBS (the generated stubs' directory) must be defined"
#endif

#define PYTHON           "/usr/bin/python3" /* Debian's: the one with python3-grpcio */
#define START_TIMEOUT_MS 20000              /* python and grpcio start slowly on a busy machine */
#define MAX_ARGS         64

const char *interop_grpc_missing(void)
{
    static char reason[512];
    if (access(PYTHON, X_OK) != 0)
        return "no " PYTHON;
    FILE *f = fopen(INTEROP_GRPC_STUBS "/MISSING", "r");
    if (f != NULL) {
        size_t n = fread(reason, 1, sizeof(reason) - 1, f);
        fclose(f);
        reason[n] = '\0';
        reason[strcspn(reason, "\n")] = '\0';
        return reason;
    }
    if (access(INTEROP_GRPC_STUBS "/stamp", R_OK) != 0)
        return "no generated stubs in " INTEROP_GRPC_STUBS " (build target interop_grpc_stubs)";
    return NULL;
}

void interop_require_grpc(void)
{
    const char *why = interop_grpc_missing();
    if (why == NULL)
        return;
    fprintf(stderr, "SKIP: grpcio interop peers unavailable: %s\n", why);
    exit(INTEROP_SKIP);
}

/* argv = python -B SCRIPT --stubs DIR head... args... */
static void build_argv(const char **argv, const char *script, const char *const *head,
                       const char *const *args)
{
    size_t n = 0;
    argv[n++] = PYTHON;
    argv[n++] = "-B"; /* no __pycache__ in the source tree */
    argv[n++] = script;
    argv[n++] = "--stubs";
    argv[n++] = INTEROP_GRPC_STUBS;
    for (size_t i = 0; head != NULL && head[i] != NULL; i++) {
        ASSERT_LT(n, MAX_ARGS - 1);
        argv[n++] = head[i];
    }
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        ASSERT_LT(n, MAX_ARGS - 1);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
}

/* Forks and execs argv[0] with pipes on stdin and stdout (and stderr on the
 * stdout pipe too, with `with_stderr`). */
static void spawn_with(const char **argv, bool with_stderr, interop_proc *out)
{
    int in[2], outp[2];
    ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
    ASSERT_EQ(pipe2(outp, O_CLOEXEC), 0);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec: the parent may
         * have loop threads running. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in[0], STDIN_FILENO);
        dup2(outp[1], STDOUT_FILENO);
        if (with_stderr)
            dup2(outp[1], STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(outp[1]);
    /* A child that exits early must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    *out = (interop_proc){.pid = pid, .port = 0, .out_fd = outp[0], .in_fd = in[1]};
}

static void spawn(const char **argv, interop_proc *out)
{
    spawn_with(argv, false, out);
}

/* Reads the "listening on HOST:PORT" line into out->port; fails the test without it. */
static void wait_listening(interop_proc *out, const char *who)
{
    char line[256];
    if (!interop_wait_line(out, "listening on ", line, sizeof(line), START_TIMEOUT_MS)) {
        interop_kill(out);
        test_fail(__FILE__, __LINE__, "%s printed no \"listening on\" line", who);
    }
    const char *colon = strrchr(line, ':');
    ASSERT_TRUE(colon != NULL);
    out->port = atoi(colon + 1);
    ASSERT_GT(out->port, 0);
}

void interop_start_echo_server(const char *const *args, interop_proc *out)
{
    const char *argv[MAX_ARGS];
    size_t n = 0;
    argv[n++] = test_bin_path("arpc-echo-server");
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        ASSERT_LT(n, MAX_ARGS - 1);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    spawn_with(argv, true, out);
    wait_listening(out, "arpc-echo-server");
}

void interop_start_grpc_peer(const char *const *args, interop_proc *out)
{
    const char *argv[MAX_ARGS];
    const char *head[] = {"--listen", "127.0.0.1:0", NULL};
    build_argv(argv, INTEROP_GRPC_SCRIPTS "/grpc_peer_server.py", head, args);
    spawn(argv, out);
    wait_listening(out, "grpc_peer_server.py");
}

void interop_start_python(const char *const *args, const char *who, interop_proc *out)
{
    const char *argv[MAX_ARGS];
    size_t n = 0;
    argv[n++] = PYTHON;
    argv[n++] = "-B"; /* no __pycache__ in the source tree */
    for (size_t i = 0; args[i] != NULL; i++) {
        ASSERT_LT(n, MAX_ARGS - 1);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    spawn(argv, out);
    if (who != NULL)
        wait_listening(out, who);
}

static void start_client(const char *script, const char *target, const char *const *args,
                         interop_proc *out)
{
    const char *argv[MAX_ARGS];
    const char *head[] = {"--target", target, NULL};
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", INTEROP_GRPC_SCRIPTS, script);
    build_argv(argv, path, head, args);
    spawn(argv, out);
}

void interop_start_grpc_client(const char *target, const char *const *args, interop_proc *out)
{
    start_client("grpc_peer_client.py", target, args, out);
}

int interop_run_grpc_client(const char *target, const char *const *args, int timeout_ms)
{
    return interop_run_client_script("grpc_peer_client.py", target, args, timeout_ms);
}

int interop_run_client_script(const char *script, const char *target, const char *const *args,
                              int timeout_ms)
{
    interop_proc c;
    start_client(script, target, args, &c);
    close(c.in_fd); /* nothing to say: a case waiting for stdin sees end of file */
    c.in_fd = -1;
    int64_t deadline = test_now_ms() + timeout_ms;
    /* "\x01" matches no line: copy every line to stderr until end of file. */
    while (interop_wait_line(&c, "\x01", NULL, 0, (int)(deadline - test_now_ms())))
        ;
    if (test_now_ms() >= deadline) {
        interop_kill(&c);
        test_fail(__FILE__, __LINE__, "%s took over %d ms", script, timeout_ms);
    }
    return interop_reap(&c, 5000);
}

bool interop_wait_line(interop_proc *p, const char *prefix, char *line, size_t size, int timeout_ms)
{
    int64_t deadline = test_now_ms() + timeout_ms;
    char buf[1024];
    for (;;) {
        int left = (int)(deadline - test_now_ms());
        if (left <= 0 || test_read_line(p->out_fd, buf, sizeof(buf), left) < 0)
            return false;
        fprintf(stderr, "  [%d] %s\n", (int)p->pid, buf);
        if (strncmp(buf, prefix, strlen(prefix)) == 0) {
            if (line != NULL && size > 0)
                snprintf(line, size, "%s", buf);
            return true;
        }
    }
}

void interop_send_line(interop_proc *p, const char *text)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "%s\n", text);
    ASSERT_TRUE(n > 0 && (size_t)n < sizeof(buf));
    ASSERT_EQ(write(p->in_fd, buf, (size_t)n), n);
}

void interop_signal(const interop_proc *p, int sig)
{
    ASSERT_GT(p->pid, 0);
    ASSERT_EQ(kill(p->pid, sig), 0);
}

typedef struct state_wait {
    pid_t pid;
    bool stopped;
} state_wait;

static bool state_reached(void *arg)
{
    state_wait *w = arg;
    return (test_proc_state(w->pid) == 'T') == w->stopped;
}

static void change_state(const interop_proc *p, int sig, bool stopped)
{
    interop_signal(p, sig);
    state_wait w = {.pid = p->pid, .stopped = stopped};
    if (!wait_until(state_reached, &w, 5000))
        test_fail(__FILE__, __LINE__, "child %d not %s 5 s after signal %d", (int)p->pid,
                  stopped ? "stopped" : "running", sig);
}

void interop_freeze(const interop_proc *p)
{
    change_state(p, SIGSTOP, true);
}

void interop_thaw(const interop_proc *p)
{
    change_state(p, SIGCONT, false);
}

typedef struct reap_wait {
    pid_t pid;
    int status;
} reap_wait;

static bool reaped(void *arg)
{
    reap_wait *w = arg;
    return waitpid(w->pid, &w->status, WNOHANG) == w->pid;
}

static void close_pipes(interop_proc *p)
{
    if (p->out_fd >= 0)
        close(p->out_fd);
    if (p->in_fd >= 0)
        close(p->in_fd);
    p->out_fd = p->in_fd = -1;
}

int interop_reap(interop_proc *p, int timeout_ms)
{
    ASSERT_GT(p->pid, 0);
    reap_wait w = {.pid = p->pid, .status = 0};
    if (!wait_until(reaped, &w, timeout_ms)) {
        pid_t pid = p->pid;
        interop_kill(p);
        test_fail(__FILE__, __LINE__, "child %d did not exit within %d ms", (int)pid, timeout_ms);
    }
    p->pid = -1;
    close_pipes(p);
    return WIFEXITED(w.status) ? WEXITSTATUS(w.status) : 128 + WTERMSIG(w.status);
}

void interop_kill(interop_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = -1;
    }
    close_pipes(p);
}

void interop_addr(char *buf, size_t size, int port)
{
    snprintf(buf, size, "127.0.0.1:%d", port);
}

size_t interop_echo_msg(uint8_t *buf, const void *data, size_t len)
{
    size_t n = 0;
    buf[n++] = 0x0a;
    size_t v = len;
    do {
        buf[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    memcpy(buf + n, data, len);
    return n + len;
}

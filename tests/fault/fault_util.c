#include "fault_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#define START_TIMEOUT_MS 20000 /* a sanitizer build starts slowly on a busy machine */

/* Forks and execs argv; the child's stdout goes to `stdout_fd` (-1: the
 * parent's) and it gets SIGKILL if the test process dies first. */
static pid_t spawn(char *const *argv, int stdout_fd)
{
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
        if (stdout_fd >= 0)
            dup2(stdout_fd, STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

void fault_self_start(char *const *args, fault_proc *out)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    ASSERT_GT(n, 0);
    self[n] = '\0';
    char *argv[16] = {self};
    size_t argc = 1;
    while (args != NULL && args[argc - 1] != NULL) {
        ASSERT_LT(argc, 15);
        argv[argc] = args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    out->pid = spawn(argv, -1);
    out->port = 0;
}

void fault_tool_start(char *const *argv, fault_proc *out)
{
    int pipe_fds[2];
    ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
    pid_t pid = spawn(argv, pipe_fds[1]);
    close(pipe_fds[1]);
    char line[256];
    int len = test_read_line(pipe_fds[0], line, sizeof(line), START_TIMEOUT_MS);
    close(pipe_fds[0]);
    if (len < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        test_fail(__FILE__, __LINE__, "%s printed no \"listening on\" line", argv[0]);
    }
    const char *colon = strrchr(line, ':');
    if (strncmp(line, "listening on ", 13) != 0 || colon == NULL)
        test_fail(__FILE__, __LINE__, "unexpected first line from %s: \"%s\"", argv[0], line);
    out->pid = pid;
    out->port = atoi(colon + 1);
    ASSERT_GT(out->port, 0);
}

void fault_echo_start(const char *listen, unsigned threads, fault_proc *out)
{
    char threads_text[16];
    snprintf(threads_text, sizeof(threads_text), "%u", threads);
    char path[4096];
    snprintf(path, sizeof(path), "%s", test_bin_path("arpc-echo-server"));
    char *argv[] = {path, "--listen", (char *)listen, "--threads", threads_text, NULL};
    fault_tool_start(argv, out);
}

void fault_proc_signal(const fault_proc *p, int sig)
{
    ASSERT_GT(p->pid, 0);
    ASSERT_EQ(kill(p->pid, sig), 0);
}

typedef struct state_wait {
    pid_t pid;
    char state;
    bool negate;
} state_wait;

static bool state_reached(void *arg)
{
    state_wait *w = arg;
    char s = test_proc_state(w->pid);
    return w->negate ? s != w->state : s == w->state;
}

bool fault_proc_wait_state(const fault_proc *p, char state, bool negate, int timeout_ms)
{
    state_wait w = {.pid = p->pid, .state = state, .negate = negate};
    return wait_until(state_reached, &w, timeout_ms);
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

int fault_proc_reap(fault_proc *p, int timeout_ms)
{
    reap_wait w = {.pid = p->pid, .status = 0};
    if (!wait_until(reaped, &w, timeout_ms))
        test_fail(__FILE__, __LINE__, "child %d did not exit within %d ms", (int)p->pid,
                  timeout_ms);
    p->pid = -1;
    return w.status;
}

void fault_calls_init(fault_calls *set, size_t count)
{
    set->calls = calloc(count, sizeof(*set->calls));
    ASSERT_TRUE(set->calls != NULL);
    set->count = count;
    atomic_init(&set->completed, 0);
}

void fault_calls_fini(fault_calls *set)
{
    free(set->calls);
    set->calls = NULL;
}

static void on_call_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    (void)rsp;
    (void)rsp_len;
    fault_call *call = user_data;
    atomic_store(&call->status, status);
    atomic_store(&call->end_ms, test_now_ms());
    atomic_fetch_add(&call->done, 1);
    atomic_fetch_add(&call->set->completed, 1);
}

void fault_call_start(fault_calls *set, size_t index, arpc_channel *ch, const char *method,
                      const char *payload, const arpc_call_opts *opts)
{
    ASSERT_LT(index, set->count);
    fault_call *call = &set->calls[index];
    call->set = set;
    call->start_ms = test_now_ms();
    ASSERT_OK(arpc_call_async(ch, method, payload, strlen(payload), opts, on_call_done, call));
}

void fault_calls_start_all(fault_calls *set, arpc_channel *ch, const char *method,
                           const char *payload, const arpc_call_opts *opts)
{
    for (size_t i = 0; i < set->count; i++)
        fault_call_start(set, i, ch, method, payload, opts);
}

arpc_call_opts fault_call_opts(int64_t timeout_ms)
{
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = timeout_ms;
    return opts;
}

bool fault_calls_all_done(void *arg)
{
    fault_calls *set = arg;
    return atomic_load(&set->completed) >= set->count;
}

int fault_handle_echo(arpc_request *req, void *user_data)
{
    (void)user_data;
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

arpc_server *fault_server(arpc_runtime *rt, const arpc_server_opts *opts, const fault_method *more)
{
    arpc_server *srv;
    ASSERT_OK(arpc_server_create(rt, opts, &srv));
    ASSERT_OK(arpc_server_register(srv, "echo", fault_handle_echo, NULL));
    for (const fault_method *m = more; m != NULL && m->name != NULL; m++)
        ASSERT_OK(arpc_server_register(srv, m->name, m->fn, NULL));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    ASSERT_GT(arpc_server_port(srv), 0);
    return srv;
}

arpc_server *fault_echo_server(arpc_runtime *rt, const arpc_server_opts *opts)
{
    return fault_server(rt, opts, NULL);
}

int fault_request_text(arpc_request *req, char *text, size_t size)
{
    size_t n = arpc_request_len(req);
    if (n == 0 || n >= size)
        return ARPC_EINVAL;
    memcpy(text, arpc_request_data(req), n);
    text[n] = '\0';
    return (int)n;
}

arpc_channel *fault_channel(arpc_runtime *rt, int port, const arpc_channel_opts *opts)
{
    arpc_channel_opts defaults;
    if (opts == NULL) {
        fault_channel_opts_init(&defaults);
        opts = &defaults;
    }
    char target[64];
    fault_addr(target, sizeof(target), port);
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, opts, &ch));
    return ch;
}

void fault_addr(char *buf, size_t size, int port)
{
    snprintf(buf, size, "127.0.0.1:%d", port);
}

bool fault_echo_succeeds(void *wait)
{
    fault_echo_wait *w = wait;
    int rc = fault_echo_call(w->ch, 1000);
    if (rc != 0) {
        w->failures++;
        w->last_error = rc;
    }
    return rc == 0;
}

int fault_echo_call(arpc_channel *ch, int64_t timeout_ms)
{
    arpc_call_opts opts = fault_call_opts(timeout_ms);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    int rc = arpc_call(ch, "echo", "ping", 4, &opts, rsp);
    if (rc == 0 && (arpc_buf_len(rsp) != 4 || memcmp(arpc_buf_data(rsp), "ping", 4) != 0))
        test_fail(__FILE__, __LINE__, "echo answered %zu wrong bytes", arpc_buf_len(rsp));
    arpc_buf_destroy(rsp);
    return rc;
}

arpc_runtime *fault_runtime(unsigned loops)
{
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = loops;
    arpc_runtime *rt;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    return rt;
}

void fault_channel_opts_init(arpc_channel_opts *opts)
{
    arpc_channel_opts_init(opts);
    opts->heartbeat_timeout_ms = 5000;
}

/*
 * A coroutine that overflows its stack hits the guard page below it and the
 * process dies by SIGSEGV, instead of silently writing over whatever lies
 * below.  Runs in a forked child.  In a normal build a SIGSEGV handler on an
 * alternate stack first checks that the faulting address is inside this
 * coroutine's guard page, then lets the signal kill the child.  Under ASan,
 * which owns SIGSEGV and reports the stack overflow itself, the child's
 * stderr goes to a pipe: the report must be ASan's stack-overflow (or SEGV)
 * report for an address inside the guard page, which the child sends first;
 * any other abnormal end (a leak report, a UBSan error, an abort) fails.
 */
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpc/coro.h>
#include <arpc/err.h>
#include <arpc/loop.h>

#include "runtime/coro.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define EXIT_WRONG_ADDRESS 3
#define EXIT_NO_OVERFLOW   4

static volatile int depth_limit = 1 << 30;
static char *guard_lo;
static char *guard_hi;
static int report_pipe[2]; /* the handler tells the parent it ran */
#ifdef UNDER_ASAN
static int stderr_pipe[2]; /* the child's stderr: ASan's report */
#endif

__attribute__((noinline)) static int recurse(int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[sizeof(frame) - 1] = (char)depth;
    if (depth >= depth_limit)
        return frame[0];
    return recurse(depth + 1) + frame[sizeof(frame) - 1];
}

#ifndef UNDER_ASAN
static void on_segv(int sig, siginfo_t *info, void *uctx)
{
    char *addr = info->si_addr;
    if (addr < guard_lo || addr >= guard_hi)
        _exit(EXIT_WRONG_ADDRESS);
    char mark = 'G';
    if (write(report_pipe[1], &mark, 1) != 1)
        _exit(EXIT_WRONG_ADDRESS);
    /* Die of the signal itself: the fault repeats with the default action. */
    signal(SIGSEGV, SIG_DFL);
}

static void install_handler(void)
{
    static char alt[64 * 1024];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof(alt), .ss_flags = 0};
    ASSERT_EQ(sigaltstack(&ss, NULL), 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGSEGV, &sa, NULL), 0);
}
#endif

static void overflowing(void *arg)
{
    arpc_coro *self = arpc__coro_self();
    guard_lo = self->map_base;
    guard_hi = (char *)self->stack_lo;
#ifdef UNDER_ASAN
    char *range[2] = {guard_lo, guard_hi};
    if (write(report_pipe[1], range, sizeof(range)) != (ssize_t)sizeof(range))
        _exit(EXIT_WRONG_ADDRESS);
#endif
    recurse(0);
}

static void child_main(void *arg)
{
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
#ifndef UNDER_ASAN
    install_handler();
#else
    dup2(stderr_pipe[1], STDERR_FILENO);
#endif
    arpc_loop *loop = NULL;
    ASSERT_OK(arpc_loop_create(NULL, &loop));
    ASSERT_OK(arpc_coro_spawn(loop, overflowing, NULL));
    arpc_loop_stop(loop);
    arpc_loop_run(loop);
    _exit(EXIT_NO_OVERFLOW);
}

#ifdef UNDER_ASAN
/* Reads the child's whole stderr (it has exited: the pipe holds it all). */
static void read_report(char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;
    while (len + 1 < size && (n = read(stderr_pipe[0], buf + len, size - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

/* ASan's report names the faulting address: it must lie in the guard page. */
static void check_asan_report(const char *report, char *lo, char *hi)
{
    static const char *const kinds[] = {"AddressSanitizer: stack-overflow on address ",
                                        "AddressSanitizer: SEGV on unknown address "};
    const char *at = NULL;
    for (size_t i = 0; i < 2 && at == NULL; i++) {
        at = strstr(report, kinds[i]);
        if (at != NULL)
            at += strlen(kinds[i]);
    }
    if (at == NULL)
        test_fail(__FILE__, __LINE__, "no ASan stack-overflow report in:\n%s", report);
    char *addr = (char *)(uintptr_t)strtoull(at, NULL, 16);
    fprintf(stderr, "     ASan: fault at %p, guard page [%p, %p)\n", (void *)addr, (void *)lo,
            (void *)hi);
    ASSERT_TRUE(addr >= lo && addr < hi);
}
#endif

static void test_overflow_hits_guard_page(void)
{
    ASSERT_EQ(pipe(report_pipe), 0);
#ifdef UNDER_ASAN
    ASSERT_EQ(pipe(stderr_pipe), 0);
#endif
    int status = test_run_in_child(child_main, NULL);
    close(report_pipe[1]);
#ifdef UNDER_ASAN
    close(stderr_pipe[1]);
    static char report[64 * 1024];
    read_report(report, sizeof(report));
    close(stderr_pipe[0]);
    char *range[2] = {NULL, NULL};
    ssize_t n = read(report_pipe[0], range, sizeof(range));
    ASSERT_EQ(n, (ssize_t)sizeof(range));
#else
    char mark = 0;
    ssize_t n = read(report_pipe[0], &mark, 1);
#endif
    close(report_pipe[0]);
    if (WIFEXITED(status))
        fprintf(stderr, "     child exited with %d\n", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        fprintf(stderr, "     child killed by signal %d\n", WTERMSIG(status));
#ifdef UNDER_ASAN
    ASSERT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == EXIT_NO_OVERFLOW);
    check_asan_report(report, range[0], range[1]);
#else
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGSEGV);
    /* The handler saw the fault inside the guard page. */
    ASSERT_EQ(n, 1);
    ASSERT_EQ(mark, 'G');
#endif
}

int main(void)
{
    RUN_TEST(test_overflow_hits_guard_page);
    return 0;
}

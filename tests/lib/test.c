#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    abort();
}

bool test_selected(const char *name)
{
    const char *only = getenv("ARPC_TEST_ONLY");
    return only == NULL || *only == '\0' || strstr(name, only) != NULL;
}

int64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int test_read_line(int fd, char *line, size_t size, int timeout_ms)
{
    int64_t deadline = test_now_ms() + timeout_ms;
    size_t len = 0;
    while (len + 1 < size) {
        int64_t left = deadline - test_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (c == '\n')
            break;
        line[len++] = c;
    }
    line[len] = '\0';
    return (int)len;
}

bool wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
    int64_t end = test_now_ms() + timeout_ms;
    for (;;) {
        if (pred(arg))
            return true;
        if (test_now_ms() >= end)
            return false;
        usleep(1000);
    }
}

static uint64_t rng_state;

uint64_t test_seed(void)
{
    const char *env = getenv("ARPC_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    if (seed == 0)
        seed = 1;
    rng_state = seed;
    fprintf(stderr, "seed: ARPC_TEST_SEED=%" PRIu64 "\n", seed);
    return seed;
}

uint64_t test_rand(void)
{
    if (rng_state == 0)
        test_seed();
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

int test_listen_ephemeral(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(addr);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &alen) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

int test_run_in_child(void (*fn)(void *arg), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

uint64_t test_raise_nofile(uint64_t want)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

const char *test_bin_path(const char *name)
{
    static char path[4096];
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        n = 0;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    if (snprintf(path, sizeof(path), "%s/%s", self, name) >= (int)sizeof(path))
        test_fail(__FILE__, __LINE__, "path too long");
    return path;
}

/* The fields of /proc/PID/stat after "pid (comm) " into buf, or NULL. */
static const char *proc_stat_fields(pid_t pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command may hold spaces and parentheses: the fields follow the last ')'. */
    const char *paren = strrchr(buf, ')');
    return paren != NULL && paren[1] == ' ' ? paren + 2 : NULL;
}

char test_proc_state(pid_t pid)
{
    char buf[512];
    const char *fields = proc_stat_fields(pid, buf, sizeof(buf));
    return fields != NULL ? fields[0] : '?';
}

int64_t test_proc_cpu_ms(pid_t pid)
{
    char buf[512];
    const char *fields = proc_stat_fields(pid, buf, sizeof(buf));
    unsigned long long utime;
    unsigned long long stime;
    /* state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (fields == NULL || sscanf(fields, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                 &utime, &stime) != 2)
        return -1;
    return (int64_t)((utime + stime) * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK));
}

int64_t test_proc_runq_wait_ms(pid_t pid)
{
    char path[320]; /* "/proc/PID/task/" and a d_name of up to 255 bytes */
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    if (tasks == NULL)
        return -1;
    unsigned long long total_ns = 0;
    struct dirent *e;
    while ((e = readdir(tasks)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long run_ns;
        unsigned long long wait_ns;
        /* "time on a CPU, time runnable on a run queue, timeslices" (ns) */
        if (f != NULL && fscanf(f, "%llu %llu", &run_ns, &wait_ns) == 2)
            total_ns += wait_ns;
        if (f != NULL)
            fclose(f);
    }
    closedir(tasks);
    return (int64_t)(total_ns / 1000000);
}

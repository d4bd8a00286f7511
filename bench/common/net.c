/*
 * Socket, framing and process helpers shared by the benchmark programs.
 *
 * Design notes: everything here is stateless and thread-safe; functions return
 * 0 or -errno like the rest of arpc, and write out-params only on success.
 */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int bench_addr_parse(const char *hostport, bench_addr *out)
{
    char host[256];
    const char *colon;
    const char *port;
    size_t host_len;
    struct addrinfo hints;
    struct addrinfo *res;
    char *end;
    long port_num;

    colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport || colon[1] == '\0')
        return -EINVAL;
    port = colon + 1;
    host_len = (size_t)(colon - hostport);
    if (hostport[0] == '[') {
        /* "[v6]:port": the bracket must close right before the colon. */
        if (host_len < 3 || hostport[host_len - 1] != ']')
            return -EINVAL;
        hostport++;
        host_len -= 2;
    }
    if (host_len >= sizeof(host))
        return -EINVAL;
    memcpy(host, hostport, host_len);
    host[host_len] = '\0';

    errno = 0;
    port_num = strtol(port, &end, 10);
    if (errno != 0 || *end != '\0' || port_num < 0 || port_num > 65535)
        return -EINVAL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -EINVAL;
    if (res->ai_addrlen > sizeof(out->ss)) {
        freeaddrinfo(res);
        return -EINVAL;
    }
    memset(&out->ss, 0, sizeof(out->ss));
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

void bench_addr_format(const bench_addr *addr, char *out, size_t out_len)
{
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];

    if (getnameinfo((const struct sockaddr *)&addr->ss, addr->len, host, sizeof(host), serv,
                    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, out_len, "?");
        return;
    }
    if (addr->ss.ss_family == AF_INET6)
        snprintf(out, out_len, "[%s]:%s", host, serv);
    else
        snprintf(out, out_len, "%s:%s", host, serv);
}

int bench_listen(const bench_addr *addr, int *fd_out, bench_addr *bound)
{
    bench_addr local;
    int one = 1;
    int fd;
    int err;

    fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    local.len = sizeof(local.ss);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0 ||
        listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&local.ss, &local.len) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    *fd_out = fd;
    *bound = local;
    return 0;
}

int bench_connect(const bench_addr *addr, int timeout_ms, int *fd_out)
{
    struct timeval tv;
    int fd;
    int err;

    fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (timeout_ms > 0) {
        /* On Linux SO_SNDTIMEO also bounds a blocking connect(). */
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
            goto fail;
    }
    while (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0) {
        if (errno != EINTR)
            goto fail;
    }
    if (bench_set_nodelay(fd) != 0)
        goto fail;
    *fd_out = fd;
    return 0;

fail:
    err = -errno;
    close(fd);
    return err;
}

int bench_set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return -errno;
    return 0;
}

int bench_set_nodelay(int fd)
{
    int one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return -errno;
    return 0;
}

int bench_send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    ssize_t n;

    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void bench_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void bench_ignore_sigpipe(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGPIPE, &sa, NULL);
}

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

void bench_block_stop_signals(void)
{
    sigset_t set;

    stop_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void bench_wait_stop_signal(void)
{
    sigset_t set;
    int sig;

    stop_signals(&set);
    while (sigwait(&set, &sig) != 0) {
    }
}

void bench_announce_listening(const bench_addr *bound)
{
    char name[128];

    bench_addr_format(bound, name, sizeof(name));
    printf("listening on %s\n", name);
    fflush(stdout);
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ms(unsigned ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void bench_fill_pattern(uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        p[i] = (uint8_t)('a' + i % 26);
}

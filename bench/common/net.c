/*
 * Socket, framing and signal helpers of the raw-socket baselines.
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

void bench_sleep_ms(unsigned ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

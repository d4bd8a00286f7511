/*
 * Design notes: a socket used through this API gets a watcher in its loop's
 * fd table on first use.  Each operation tries the system call first and
 * parks only on EAGAIN; with edge-triggered epoll a readiness edge that
 * happens after the failed call is still delivered, and nothing runs on
 * this thread between the call and the park, so no wake-up is missed.
 * A waiter's result lives on its own stack: closing the socket wakes it with
 * ARPC_ECANCELED and frees the watcher without the waiter touching it again.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/err.h>
#include <arpc/io.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "runtime/addr.h"
#include "runtime/coro.h"
#include "runtime/loop.h"
#include "runtime/sock.h"

typedef struct io_waiter {
    arpc_coro *coro;
    int result;
} io_waiter;

typedef struct coro_fd {
    arpc__io_watcher watcher;
    arpc_loop *loop;
    io_waiter *reader;
    io_waiter *writer;
} coro_fd;

static void wake_waiter(io_waiter **slot, int result)
{
    io_waiter *w = *slot;
    if (w == NULL)
        return;
    *slot = NULL;
    w->result = result;
    arpc__coro_wake(w->coro);
}

static void on_fd_event(arpc__io_watcher *watcher, uint32_t events)
{
    coro_fd *cfd = arpc__container_of(watcher, coro_fd, watcher);
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        wake_waiter(&cfd->reader, 0);
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        wake_waiter(&cfd->writer, 0);
}

static int lookup(int fd, coro_fd **out)
{
    arpc_loop *loop = arpc__loop_current();
    if (loop == NULL || arpc__coro_self() == NULL)
        return ARPC_ENOTCORO;
    arpc__io_watcher *watcher = arpc__loop_watcher(loop, fd);
    if (watcher != NULL) {
        if (watcher->on_event != on_fd_event)
            return ARPC_EINVAL; /* owned by another arpc component */
        *out = arpc__container_of(watcher, coro_fd, watcher);
        return 0;
    }
    coro_fd *cfd = arpc__calloc(1, sizeof(*cfd));
    if (cfd == NULL)
        return ARPC_ENOMEM;
    cfd->watcher.fd = fd;
    cfd->watcher.on_event = on_fd_event;
    cfd->loop = loop;
    int rc = arpc__loop_watch(loop, &cfd->watcher);
    if (rc < 0) {
        arpc__free(cfd);
        return rc;
    }
    *out = cfd;
    return 0;
}

static int64_t deadline_of(int64_t timeout_ms)
{
    return timeout_ms < 0 ? ARPC__NO_DEADLINE : arpc__now_ns() + timeout_ms * ARPC__NS_PER_MS;
}

/* Parks until the socket is ready in one direction, the deadline passes, or
 * the socket is closed. */
static int wait_ready(coro_fd *cfd, io_waiter **slot, int64_t deadline_ns)
{
    if (*slot != NULL)
        return ARPC_EINVAL; /* another coroutine already waits this way */
    io_waiter waiter = {.coro = arpc__coro_self(), .result = 0};
    *slot = &waiter;
    int rc = arpc__coro_park(deadline_ns);
    if (rc == ARPC_ETIMEDOUT && *slot == &waiter) {
        *slot = NULL;
        return ARPC_ETIMEDOUT;
    }
    return waiter.result;
}

int arpc_io_connect(const char *address, int64_t timeout_ms, int *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (arpc__coro_self() == NULL)
        return ARPC_ENOTCORO;
    int rc = arpc__addr_parse(address, &ss, &len);
    if (rc < 0)
        return rc;
    int fd;
    bool in_progress;
    rc = arpc__sock_connect_start(&ss, len, &fd, &in_progress);
    if (rc < 0)
        return rc;
    int64_t deadline = deadline_of(timeout_ms);
    if (in_progress) {
        coro_fd *cfd;
        rc = lookup(fd, &cfd);
        if (rc == 0)
            rc = wait_ready(cfd, &cfd->writer, deadline);
        if (rc == 0) {
            int err = 0;
            socklen_t elen = sizeof(err);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
            rc = -err;
        }
        if (rc < 0) {
            arpc_io_close(fd);
            return rc;
        }
    }
    *out = fd;
    return 0;
}

int arpc_io_listen(const char *address, int backlog, int reuse_port, int *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = arpc__addr_parse(address, &ss, &len);
    if (rc < 0)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuse_port)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

int arpc_io_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ARPC_EINVAL;
}

int arpc_io_accept(int listen_fd, int64_t timeout_ms, int *out)
{
    coro_fd *cfd;
    int rc = lookup(listen_fd, &cfd);
    if (rc < 0)
        return rc;
    int64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            arpc__sock_set_nodelay(fd);
            *out = fd;
            return 0;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN)
            return -errno;
        rc = wait_ready(cfd, &cfd->reader, deadline);
        if (rc < 0)
            return rc;
    }
}

ssize_t arpc_io_read(int fd, void *buf, size_t len, int64_t timeout_ms)
{
    coro_fd *cfd;
    int rc = lookup(fd, &cfd);
    if (rc < 0)
        return rc;
    int64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        rc = wait_ready(cfd, &cfd->reader, deadline);
        if (rc < 0)
            return rc;
    }
}

#define IOV_WINDOW 64

/* Copies up to IOV_WINDOW entries of iov[index..] into `window`, skipping
 * `offset` bytes already written from iov[index]. */
static int fill_window(struct iovec *window, const struct iovec *iov, int iovcnt, int index,
                       size_t offset)
{
    int n = 0;
    for (int i = index; i < iovcnt && n < IOV_WINDOW; i++, n++)
        window[n] = iov[i];
    window[0].iov_base = (char *)window[0].iov_base + offset;
    window[0].iov_len -= offset;
    return n;
}

ssize_t arpc_io_writev(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ms)
{
    coro_fd *cfd;
    int rc = lookup(fd, &cfd);
    if (rc < 0)
        return rc;
    if (iovcnt < 0)
        return ARPC_EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    int64_t deadline = deadline_of(timeout_ms);
    int index = 0;
    size_t offset = 0;
    while (index < iovcnt && iov[index].iov_len == 0)
        index++;
    while (index < iovcnt) {
        struct iovec window[IOV_WINDOW];
        struct msghdr msg = {.msg_iov = window};
        msg.msg_iovlen = (size_t)fill_window(window, iov, iovcnt, index, offset);
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            rc = wait_ready(cfd, &cfd->writer, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        size_t written = (size_t)n;
        while (index < iovcnt && written >= iov[index].iov_len - offset) {
            written -= iov[index].iov_len - offset;
            offset = 0;
            index++;
        }
        offset += written;
    }
    return (ssize_t)total;
}

ssize_t arpc_io_write(int fd, const void *buf, size_t len, int64_t timeout_ms)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return arpc_io_writev(fd, &iov, 1, timeout_ms);
}

int arpc_io_close(int fd)
{
    arpc_loop *loop = arpc__loop_current();
    arpc__io_watcher *watcher = loop ? arpc__loop_watcher(loop, fd) : NULL;
    if (watcher != NULL && watcher->on_event == on_fd_event) {
        coro_fd *cfd = arpc__container_of(watcher, coro_fd, watcher);
        arpc__loop_unwatch(loop, watcher);
        wake_waiter(&cfd->reader, ARPC_ECANCELED);
        wake_waiter(&cfd->writer, ARPC_ECANCELED);
        arpc__free(cfd);
    }
    return close(fd) < 0 ? -errno : 0;
}

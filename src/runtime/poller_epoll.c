/*
 * Design notes: the epoll backend of the loop, and the fd -> handler table.
 * Sockets are registered once, edge-triggered for both directions, so the
 * interest set never changes per request.  The epoll event carries the fd,
 * not a pointer: a watcher removed earlier in the same batch is simply not
 * found in the table, instead of being a dangling pointer.
 */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "runtime/loop.h"

#define MAX_EVENTS 256

int arpc__poller_open(arpc_loop *loop)
{
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epoll_fd < 0)
        return -errno;
    loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wake_fd < 0) {
        int err = -errno;
        close(loop->epoll_fd);
        return err;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = loop->wake_fd};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, loop->wake_fd, &ev) < 0) {
        int err = -errno;
        close(loop->wake_fd);
        close(loop->epoll_fd);
        return err;
    }
    return 0;
}

void arpc__poller_close(arpc_loop *loop)
{
    close(loop->wake_fd);
    close(loop->epoll_fd);
}

void arpc__poller_wake(arpc_loop *loop)
{
    uint64_t one = 1;
    ssize_t n = write(loop->wake_fd, &one, sizeof(one));
    (void)n; /* EAGAIN means the counter is already non-zero: awake anyway */
}

static int grow_table(arpc_loop *loop, int fd)
{
    size_t cap = loop->watchers_cap ? loop->watchers_cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    arpc__io_watcher **table = arpc__realloc(loop->watchers, cap * sizeof(*table));
    if (table == NULL)
        return ARPC_ENOMEM;
    for (size_t i = loop->watchers_cap; i < cap; i++)
        table[i] = NULL;
    loop->watchers = table;
    loop->watchers_cap = cap;
    return 0;
}

int arpc__loop_watch(arpc_loop *loop, arpc__io_watcher *watcher)
{
    int fd = watcher->fd;
    if (fd < 0)
        return ARPC_EINVAL;
    if ((size_t)fd >= loop->watchers_cap) {
        int rc = grow_table(loop, fd);
        if (rc < 0)
            return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    loop->watchers[fd] = watcher;
    return 0;
}

void arpc__loop_unwatch(arpc_loop *loop, arpc__io_watcher *watcher)
{
    int fd = watcher->fd;
    if (fd < 0 || (size_t)fd >= loop->watchers_cap || loop->watchers[fd] != watcher)
        return;
    loop->watchers[fd] = NULL;
    /* Failure means the fd is already closed, which removed it from epoll. */
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
}

arpc__io_watcher *arpc__loop_watcher(arpc_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->watchers_cap)
        return NULL;
    return loop->watchers[fd];
}

int arpc__poller_poll(arpc_loop *loop, int timeout_ms)
{
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(loop->epoll_fd, events, MAX_EVENTS, timeout_ms);
    /* The wait may have slept: handlers that timestamp arrivals need the
     * time after it, not the time the iteration began. */
    loop->now_ns = arpc__now_ns();
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        if (fd == loop->wake_fd) {
            uint64_t value;
            ssize_t r = read(loop->wake_fd, &value, sizeof(value));
            (void)r;
            continue;
        }
        arpc__io_watcher *watcher = arpc__loop_watcher(loop, fd);
        if (watcher != NULL)
            watcher->on_event(watcher, events[i].events);
    }
    return n > 0 ? n : 0;
}

/*
 * Plain TCP: read(2) and send(2) on the non-blocking socket.  Stateless, so
 * one shared object serves every plaintext connection, and a short read
 * means the socket is drained (nothing is buffered above the kernel).
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/transport.h"

static ssize_t tcp_read(arpc__transport *t, int fd, void *buf, size_t len)
{
    (void)t;
    ssize_t n;
    do {
        n = read(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t tcp_write(arpc__transport *t, int fd, const void *buf, size_t len)
{
    (void)t;
    ssize_t n;
    do {
        n = send(fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static bool tcp_has_buffered(const arpc__transport *t)
{
    (void)t;
    return false;
}

static const arpc__transport_ops tcp_ops = {
    .name = "tcp",
    .read = tcp_read,
    .write = tcp_write,
    .has_buffered = tcp_has_buffered,
};

arpc__transport arpc__tcp_transport = {.ops = &tcp_ops, .buffers = false};

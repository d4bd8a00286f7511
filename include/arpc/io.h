/**
 * Coroutine-aware sockets.  Each call suspends only its coroutine while the
 * socket would block, and resumes on readiness or at its deadline.  Sockets
 * are non-blocking and registered with the loop of the coroutine that first
 * uses them; use them from coroutines of that loop only (elsewhere, on a loop
 * thread outside a coroutine too, the waiting calls return ARPC_ENOTCORO).
 * Every `timeout_ms` follows the "Timeouts" rule of loop.h: ARPC_WAIT_FOREVER
 * (< 0) has no limit, 0 does not wait.  Addresses are "HOST:PORT" with an
 * IPv4 address, "[IPv6]:PORT", or a host name.
 *
 * Besides the errors each function lists, every call that may wait can
 * return ARPC_ENOMEM (the socket could not be registered with the loop on
 * its first use), ARPC_EINVAL (another coroutine already waits on the socket
 * in the same direction, or the descriptor belongs to another arpc component)
 * and ARPC_ECANCELED (arpc_io_close() closed it during the wait).  Out-params
 * are written only on success.
 */
#ifndef ARPC_IO_H
#define ARPC_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <arpc/export.h>
#include <arpc/loop.h>

ARPC_BEGIN_DECLS

/**
 * Connects a TCP socket (TCP_NODELAY set) to `address`.
 * @param timeout_ms  ARPC_WAIT_FOREVER (< 0) waits without limit.
 * @param out  on success the socket, owned by the caller (arpc_io_close()).
 * @return 0, ARPC_EBADADDR, ARPC_ETIMEDOUT, ARPC_ECONNREFUSED, ARPC_ENOTCORO or -errno.
 * Thread: a coroutine.  Suspends: yes.
 */
ARPC_EXPORT int arpc_io_connect(const char *address, int64_t timeout_ms, int *out);

/**
 * Creates a listening TCP socket on `address` (SO_REUSEADDR; with
 * `reuse_port` also SO_REUSEPORT, so every loop may listen on the same port).
 * Port 0 picks a free port; read it with arpc_io_local_port().
 * @param out  on success the socket, owned by the caller (arpc_io_close()).
 * @return 0, ARPC_EBADADDR, ARPC_EADDRINUSE or -errno.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_io_listen(const char *address, int backlog, int reuse_port, int *out);

/** The local port of a bound socket, or a negative error.  Thread: any. */
ARPC_EXPORT int arpc_io_local_port(int fd);

/**
 * Accepts one connection (non-blocking, TCP_NODELAY set).
 * @param out  on success the new socket, owned by the caller.
 * @return 0, ARPC_ETIMEDOUT, ARPC_ENOTCORO or -errno.
 * Thread: a coroutine.  Suspends: yes.
 */
ARPC_EXPORT int arpc_io_accept(int listen_fd, int64_t timeout_ms, int *out);

/**
 * Reads up to `len` bytes.
 * @return the number of bytes (> 0), 0 at end of stream, or ARPC_ETIMEDOUT,
 *         ARPC_ECONNRESET, ARPC_ENOTCORO, -errno.
 * Thread: a coroutine.  Suspends: yes.
 */
ARPC_EXPORT ssize_t arpc_io_read(int fd, void *buf, size_t len, int64_t timeout_ms);

/**
 * Writes all `len` bytes.
 * @return `len`, or ARPC_ETIMEDOUT (some bytes may have been written), ARPC_EPIPE,
 *         ARPC_ECONNRESET, ARPC_ENOTCORO, -errno.
 * Thread: a coroutine.  Suspends: yes.
 */
ARPC_EXPORT ssize_t arpc_io_write(int fd, const void *buf, size_t len, int64_t timeout_ms);

/**
 * Writes all bytes of `iov[0..iovcnt)` (the array is borrowed and not modified).
 * @return the total written or an error as arpc_io_write().
 * Thread: a coroutine.  Suspends: yes.
 */
ARPC_EXPORT ssize_t arpc_io_writev(int fd, const struct iovec *iov, int iovcnt,
                                   int64_t timeout_ms);

/**
 * Unregisters the socket from its loop and closes it.  A coroutine still
 * waiting on it is woken with ARPC_ECANCELED.
 * @return 0 or -errno from close().
 * Thread: the loop's that uses the socket, or any if it was never used.
 * Suspends: no.
 */
ARPC_EXPORT int arpc_io_close(int fd);

ARPC_END_DECLS

#endif

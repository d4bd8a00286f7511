/*
 * TCP socket set-up shared by the coroutine sockets (io.c), the server's
 * acceptor and the client's connections, so all three configure sockets
 * the same way.
 */
#ifndef ARPC_RUNTIME_SOCK_H
#define ARPC_RUNTIME_SOCK_H

#include <stdbool.h>
#include <sys/socket.h>

/* Disables Nagle's algorithm: RPC frames are small and must leave at once.
 * Best effort: a socket that is not TCP keeps its default. */
void arpc__sock_set_nodelay(int fd);

/* Opens a non-blocking TCP socket (TCP_NODELAY set) and starts connecting it
 * to `addr`.  On success `*out` is the socket and `*in_progress` (may be
 * NULL) says whether the connection is still being established.
 * @return 0 or -errno (nothing is left open). */
int arpc__sock_connect_start(const struct sockaddr_storage *addr, socklen_t addr_len, int *out,
                             bool *in_progress);

#endif

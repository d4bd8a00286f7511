/* "HOST:PORT" / "[IPv6]:PORT" parsing shared by sockets, servers and channels. */
#ifndef ARPC_RUNTIME_ADDR_H
#define ARPC_RUNTIME_ADDR_H

#include <sys/socket.h>

/* Parses a numeric address, falling back to a host name lookup (which may
 * block: call it at set-up time, not per request).
 * @return 0 or ARPC_EBADADDR. */
int arpc__addr_parse(const char *address, struct sockaddr_storage *out, socklen_t *out_len);

/* Formats an address as "HOST:PORT" or "[HOST]:PORT" into buf. */
void arpc__addr_format(const struct sockaddr *sa, char *buf, size_t len);

#endif

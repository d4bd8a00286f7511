/*
 * What a load generator needs from the system: HOST:PORT addresses, the
 * monotonic clock, the payload pattern, the fd limit and SIGPIPE.  Shared by
 * arpc-bench and the raw-socket baselines of bench/ (bench/common/net.h adds
 * their sockets and framing).
 */
#ifndef TOOLS_SYS_H
#define TOOLS_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/** Largest payload (--size) a load generator sends: 16 MiB.  The baselines treat a
 *  larger frame as a protocol error. */
#define BENCH_MAX_PAYLOAD (16u * 1024u * 1024u)

/** A resolved socket address. */
typedef struct bench_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} bench_addr;

/**
 * Resolves "HOST:PORT" (IPv6 as "[::1]:PORT") into an address.  HOST may be a
 * name; the first stream address getaddrinfo() returns is used.
 *
 * @param out  written only on success.
 * @return 0 or -EINVAL (malformed, unresolvable or port outside 0..65535).
 */
int bench_addr_parse(const char *hostport, bench_addr *out);

/** Writes "HOST:PORT" ("[HOST]:PORT" for IPv6), numeric, NUL-terminated, into `out`. */
void bench_addr_format(const bench_addr *addr, char *out, size_t out_len);

/** Raises the RLIMIT_NOFILE soft limit to the hard limit (best effort). */
void bench_raise_nofile(void);

/** Ignores SIGPIPE for the whole process. */
void bench_ignore_sigpipe(void);

/** Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/** Fills `n` payload bytes with the benchmark pattern. */
void bench_fill_pattern(uint8_t *p, size_t n);

#endif /* TOOLS_SYS_H */

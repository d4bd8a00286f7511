/*
 * Socket, framing and process helpers shared by the benchmark programs.
 *
 * Wire format of every baseline: a 4-byte little-endian payload length, then
 * that many payload bytes.  The server echoes each frame unchanged.
 */
#ifndef BENCH_NET_H
#define BENCH_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/** Size of the length prefix of a frame. */
#define BENCH_FRAME_HDR 4u

/** Largest payload a benchmark frame may carry (16 MiB); larger is a protocol error. */
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

/**
 * Opens a listening TCP socket (SO_REUSEADDR, close-on-exec, backlog SOMAXCONN).
 *
 * @param bound  out; the address actually bound (resolves port 0).
 * @return 0 or -errno; outputs written only on success.
 */
int bench_listen(const bench_addr *addr, int *fd_out, bench_addr *bound);

/**
 * Connects a blocking TCP socket with TCP_NODELAY set.  `timeout_ms` bounds the
 * connect and stays on the socket as SO_SNDTIMEO/SO_RCVTIMEO, so later blocking
 * calls cannot hang forever either (0 = no timeout).
 *
 * @return 0 or -errno; `*fd_out` written only on success.
 */
int bench_connect(const bench_addr *addr, int timeout_ms, int *fd_out);

/** Sets O_NONBLOCK.  @return 0 or -errno. */
int bench_set_nonblock(int fd);

/** Sets TCP_NODELAY.  @return 0 or -errno. */
int bench_set_nodelay(int fd);

/**
 * Sends all `len` bytes on a blocking socket, retrying short writes and EINTR.
 * Uses MSG_NOSIGNAL, so a closed peer yields -EPIPE rather than a signal.
 *
 * @return 0 or -errno.
 */
int bench_send_all(int fd, const void *buf, size_t len);

/** Raises the RLIMIT_NOFILE soft limit to the hard limit (best effort). */
void bench_raise_nofile(void);

/** Ignores SIGPIPE for the whole process. */
void bench_ignore_sigpipe(void);

/**
 * Blocks SIGINT and SIGTERM in the calling thread; threads it creates later
 * inherit the mask, so only bench_wait_stop_signal() receives them.  Call it
 * before starting any thread.
 */
void bench_block_stop_signals(void);

/** Waits for SIGINT or SIGTERM (blocked by bench_block_stop_signals()). */
void bench_wait_stop_signal(void);

/** Prints "listening on HOST:PORT" for `bound` and flushes stdout: a server's ready line. */
void bench_announce_listening(const bench_addr *bound);

/** Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/** Sleeps for `ms` milliseconds, resuming after signals. */
void bench_sleep_ms(unsigned ms);

/** Fills `n` payload bytes with the benchmark pattern. */
void bench_fill_pattern(uint8_t *p, size_t n);

/** Reads the little-endian length prefix at `p`. */
static inline uint32_t bench_frame_len(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/** Writes `len` as a little-endian length prefix at `p`. */
static inline void bench_frame_set_len(uint8_t *p, uint32_t len)
{
    p[0] = (uint8_t)len;
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 24);
}

#endif /* BENCH_NET_H */

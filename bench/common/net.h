/*
 * Socket, framing and signal helpers of the raw-socket baselines (addresses,
 * the clock and the payload pattern are in tools/common/sys.h, shared with
 * arpc-bench).
 *
 * Wire format of every baseline: a 4-byte little-endian payload length, then
 * that many payload bytes.  The server echoes each frame unchanged.
 */
#ifndef BENCH_NET_H
#define BENCH_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sys.h"

/** Size of the length prefix of a frame. */
#define BENCH_FRAME_HDR 4u

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

/** Sleeps for `ms` milliseconds, resuming after signals. */
void bench_sleep_ms(unsigned ms);

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

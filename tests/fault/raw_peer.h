/*
 * A scripted raw peer for the protocol tests: a blocking socket that reads and
 * writes whole native frames, so a test can play a client or server that does
 * exactly what it wants (ids, PONGs, settings, oversized frames) and read back
 * exactly what arpc sent.  A server peer accepts one connection and runs a
 * script on it in a thread of its own.  Every helper fails the test on error.
 */
#ifndef ARPC_RAW_PEER_H
#define ARPC_RAW_PEER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"

/* One frame read from the socket: `f`'s views point into `bytes`. */
typedef struct raw_frame {
    arpc__frame f;
    uint8_t *bytes;
    size_t len;
} raw_frame;

/* A blocking connection to 127.0.0.1:port. */
int raw_connect(int port);

/* Reads one whole frame within timeout_ms (any size the header announces).
 * @return false on EOF, timeout or a malformed header. */
bool raw_read_frame(int fd, raw_frame *out, int timeout_ms);
void raw_frame_free(raw_frame *f);

/* Writes all of `data` (a peer that closed is ignored). */
void raw_send(int fd, const void *data, size_t len);

/* A REQUEST, RESPONSE or bare control frame. */
void raw_send_request(int fd, uint64_t id, uint32_t timeout_ms, const char *method,
                      const void *payload, size_t len);
void raw_send_response(int fd, uint64_t id, int32_t status, const void *payload, size_t len);
void raw_send_control(int fd, uint8_t type, uint64_t id);
/* A PING or PONG whose payload carries the non-zero settings (ids 1 and 2). */
void raw_send_settings(int fd, uint8_t type, uint64_t id, uint32_t max_frame,
                       uint32_t max_in_flight);

/* The value of setting `id` in the payload of PING or PONG `f`; 0 if absent. */
uint32_t raw_settings_get(const arpc__frame *f, uint16_t id);

/* Reads until the peer closes.  @return true if it did within timeout_ms. */
bool raw_wait_closed(int fd, int timeout_ms);

/* A one-connection server peer: script(fd, arg) runs in its thread on the
 * accepted connection, which is closed when the script returns. */
typedef struct raw_server {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    void (*script)(int fd, void *arg);
    void *arg;
} raw_server;

void raw_server_start(raw_server *s, void (*script)(int fd, void *arg), void *arg);
void raw_server_join(raw_server *s);

#endif

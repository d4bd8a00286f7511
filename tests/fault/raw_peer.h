/*
 * Raw native-protocol peers for the fault tests: plain blocking sockets on
 * 127.0.0.1 that read and write whole native frames (docs/protocol.md,
 * sections 2 and 4), so that a test can play a client or a server that does exactly
 * what it wants (ids, PONGs, GOAWAYs, half or oversized frames, garbage) and
 * see exactly what arpc sent, and when.  Settings travel as the payload of a
 * PING or PONG (docs/protocol.md, section 4); they are written and read here
 * by hand from the document, not with the codec under test.
 *
 * Three layers:
 *  - frame I/O on any socket: raw_connect(), raw_read_frame(), raw_send*();
 *  - raw_server: accepts one connection and runs a blocking script on it;
 *  - raw_peer: a scripted server for many connections that decodes every
 *    frame the client sends and hands it to a callback, counts what it saw
 *    (accepts, PINGs, REQUESTs, EOFs) and timestamps every accept.
 *
 * Thread model: each server runs on one thread of its own, started by its
 * _start() and joined by its _join()/_stop(); its script or callbacks run
 * there and only there, so they need no locks.  The test thread reads the
 * raw_peer's counters (atomics) and runs anything else on the peer's thread
 * with raw_peer_run().  Frame I/O functions are blocking and fail the test
 * (test.h) on a local error; writes to a peer that closed are ignored.
 */
#ifndef ARPC_RAW_PEER_H
#define ARPC_RAW_PEER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"

/* ---- frame I/O ------------------------------------------------------------ */

/* One frame read from the socket: `f`'s views point into `bytes`. */
typedef struct raw_frame {
    arpc__frame f;
    uint8_t *bytes;
    size_t len;
} raw_frame;

/* A blocking connection to 127.0.0.1:port. */
int raw_connect(int port);

/* The same with SO_RCVBUF set to `rcvbuf` before connecting (so the window
 * stays small). */
int raw_connect_rcvbuf(int port, int rcvbuf);

/* Makes every blocking read on `fd` give up (EAGAIN) after timeout_ms. */
void raw_set_recv_timeout(int fd, int timeout_ms);

/* Reads one whole frame within timeout_ms (any size the header announces).
 * @return false on EOF, timeout or a malformed header. */
bool raw_read_frame(int fd, raw_frame *out, int timeout_ms);
void raw_frame_free(raw_frame *f);

/* Writes all of `data` (a peer that closed is ignored). */
void raw_send(int fd, const void *data, size_t len);

/* Writes the first `bytes` bytes of a header (ARPC__FRAME_HEADER_SIZE for all
 * of it) announcing `payload_len` bytes that the caller sends, or not. */
void raw_send_header(int fd, uint8_t type, uint64_t id, int32_t status, uint32_t payload_len,
                     size_t bytes);

/* A whole REQUEST, RESPONSE or bare control frame (PING, PONG, GOAWAY with status 0). */
void raw_send_request(int fd, uint64_t id, uint32_t timeout_ms, const char *method,
                      const void *payload, size_t len);
void raw_send_response(int fd, uint64_t id, int32_t status, const void *payload, size_t len);
void raw_send_control(int fd, uint8_t type, uint64_t id);
/* A PING or PONG whose payload carries the non-zero settings (ids 1 and 2). */
void raw_send_settings(int fd, uint8_t type, uint64_t id, uint32_t max_frame,
                       uint32_t max_in_flight);

/* The value of setting `id` in the payload of PING or PONG `f`; 0 if absent. */
uint32_t raw_settings_get(const arpc__frame *f, uint16_t id);

/* Reads frames from `fd` and hands each to fn(fd, f, arg), whose `f` lives
 * until fn returns, until fn returns false (@return true) or the peer closes
 * or sends nothing whole for idle_ms (@return false). */
typedef bool (*raw_frame_fn)(int fd, const arpc__frame *f, void *arg);
bool raw_serve(int fd, int idle_ms, raw_frame_fn fn, void *arg);

/* Reads until the peer closes.  @return true if it did within timeout_ms. */
bool raw_wait_closed(int fd, int timeout_ms);

/* ---- raw_server: one connection, one script --------------------------------- */

/* script(fd, arg) runs on the server's thread on the accepted connection,
 * which is closed when the script returns. */
typedef struct raw_server {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    void (*script)(int fd, void *arg);
    void *arg;
} raw_server;

void raw_server_start(raw_server *s, void (*script)(int fd, void *arg), void *arg);
/* Waits for the script to return, then closes the listener. */
void raw_server_join(raw_server *s);

/* ---- raw_peer: many connections, a callback per frame ------------------------- */

#define RAW_PEER_MAX_CONNS   64
#define RAW_PEER_MAX_ACCEPTS 256

typedef struct raw_peer raw_peer;

/* One accepted connection; `index` counts accepts from 0. */
typedef struct raw_peer_conn {
    int fd;
    int index;
    uint8_t *buf;
    size_t len;
    size_t cap;
} raw_peer_conn;

/* Runs on the peer's thread for every complete frame from the client. */
typedef void (*raw_peer_frame_fn)(raw_peer *p, raw_peer_conn *c, const arpc__frame *f);
/* Runs on the peer's thread after an accept; return false to close the connection at once. */
typedef bool (*raw_peer_accept_fn)(raw_peer *p, raw_peer_conn *c);

struct raw_peer {
    int listen_fd;
    uint16_t port;
    int wake[2];
    pthread_t thread;
    raw_peer_frame_fn on_frame;   /* NULL: read and ignore */
    raw_peer_accept_fn on_accept; /* NULL: keep every connection */
    void *user;
    raw_peer_conn *conns[RAW_PEER_MAX_CONNS];
    _Atomic int accepted;
    _Atomic int pings;    /* PINGs received */
    _Atomic int requests; /* REQUESTs received */
    _Atomic int eofs;     /* connections the client closed */
    _Atomic int64_t accept_ms[RAW_PEER_MAX_ACCEPTS];
    /* A command for the peer's thread (raw_peer_run). */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void (*cmd)(raw_peer *p, void *arg);
    void *cmd_arg;
    bool cmd_done;
};

/* Listens on 127.0.0.1:0 and starts the peer's thread; fails the test on error. */
void raw_peer_start(raw_peer *p, raw_peer_frame_fn on_frame, raw_peer_accept_fn on_accept,
                    void *user);

/* Stops the thread and closes every socket. */
void raw_peer_stop(raw_peer *p);

/* Runs `fn(p, arg)` on the peer's thread and waits until it has returned. */
void raw_peer_run(raw_peer *p, void (*fn)(raw_peer *p, void *arg), void *arg);

/* Closes every open connection (run on the peer's thread, or through raw_peer_run). */
void raw_peer_close_all(raw_peer *p, void *unused);

/* Answers PINGs with PONG and REQUESTs with their payload (a polite server). */
void raw_peer_polite(raw_peer *p, raw_peer_conn *c, const arpc__frame *f);

/* A wait_until() predicate on a raw_count: `*counter >= at_least`. */
typedef struct raw_count {
    _Atomic int *counter;
    int at_least;
} raw_count;

bool raw_count_reached(void *count);

#endif

/*
 * A scriptable raw server for client-side fault tests: a plain thread on a
 * blocking 127.0.0.1:0 listener that decodes the client's frames and hands
 * each to a callback, which answers (or not) with raw frames.  It counts what
 * it saw (connections, PINGs, requests) and timestamps every accept, so a
 * test can check what the client sent and when without guessing.
 */
#ifndef ARPC_FAULT_PEER_H
#define ARPC_FAULT_PEER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"

#define FAULT_PEER_MAX_CONNS   16
#define FAULT_PEER_MAX_ACCEPTS 256

typedef struct fault_peer fault_peer;

/* One accepted connection; `index` counts accepts from 0. */
typedef struct fault_peer_conn {
    int fd;
    int index;
    uint8_t *buf;
    size_t len;
    size_t cap;
} fault_peer_conn;

/* Runs on the peer's thread for every complete frame from the client. */
typedef void (*fault_peer_frame_fn)(fault_peer *p, fault_peer_conn *c, const arpc__frame *f);
/* Runs on the peer's thread after an accept; return false to close the connection at once. */
typedef bool (*fault_peer_accept_fn)(fault_peer *p, fault_peer_conn *c);

struct fault_peer {
    int listen_fd;
    uint16_t port;
    int wake[2];
    pthread_t thread;
    fault_peer_frame_fn on_frame;   /* NULL: read and ignore */
    fault_peer_accept_fn on_accept; /* NULL: keep every connection */
    void *user;
    fault_peer_conn *conns[FAULT_PEER_MAX_CONNS];
    _Atomic int accepted;
    _Atomic int pings;    /* PINGs received */
    _Atomic int requests; /* REQUESTs received */
    _Atomic int eofs;     /* connections the client closed */
    _Atomic int64_t accept_ms[FAULT_PEER_MAX_ACCEPTS];
    /* A command for the peer's thread (fault_peer_run). */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void (*cmd)(fault_peer *p, void *arg);
    void *cmd_arg;
    bool cmd_done;
};

/* Starts the peer's thread; fails the test on error. */
void fault_peer_start(fault_peer *p, fault_peer_frame_fn on_frame, fault_peer_accept_fn on_accept,
                      void *user);

/* Stops the thread and closes every socket. */
void fault_peer_stop(fault_peer *p);

/* Runs `fn(p, arg)` on the peer's thread and waits until it has returned. */
void fault_peer_run(fault_peer *p, void (*fn)(fault_peer *p, void *arg), void *arg);

/* Closes every open connection (run on the peer's thread, or through fault_peer_run). */
void fault_peer_close_all(fault_peer *p, void *unused);

/* Writes all of `data`; gives up quietly if the client closed. */
void fault_peer_write(int fd, const void *data, size_t len);

/* Writes the first `bytes` bytes of a header (ARPC__FRAME_HEADER_SIZE for all of it). */
void fault_peer_send_header(int fd, uint8_t type, uint64_t id, int32_t status, uint32_t payload_len,
                            size_t bytes);

/* A whole frame: PONG for a PING; RESPONSE with `status` and `payload`. */
void fault_peer_pong(int fd, uint64_t id);
void fault_peer_respond(int fd, uint64_t id, int32_t status, const void *payload, size_t len);

/* Answers PINGs with PONG and REQUESTs with their payload (a polite server). */
void fault_peer_polite(fault_peer *p, fault_peer_conn *c, const arpc__frame *f);

/* wait_until predicates on a fault_peer_count: `*counter >= at_least`. */
typedef struct fault_peer_count {
    _Atomic int *counter;
    int at_least;
} fault_peer_count;

bool fault_peer_count_reached(void *count);

#endif

/*
 * A transport: the byte stream under every protocol (DESIGN.md, "transport").
 * One small ops table -- read, write, handshake, shutdown, "has buffered
 * input" -- with plain TCP (tcp.c) and TLS (tls.c) beside each other.  The
 * connection (rpc/conn.c) owns the socket and its events; a transport only
 * moves bytes over the non-blocking socket it is handed, so the loop drives
 * a TLS handshake like any other read or write.  Loop thread only.
 */
#ifndef ARPC_TRANSPORT_TRANSPORT_H
#define ARPC_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct arpc__transport arpc__transport;

typedef struct arpc__transport_ops {
    const char *name;
    /* Reads up to `len` bytes into `buf`.  A read shorter than `len` means the
     * socket is drained (the edge-triggered loop waits for the next edge) unless
     * has_buffered says otherwise.
     * @return bytes read (> 0), 0 at the peer's orderly end, ARPC_EAGAIN
     * (nothing until the next edge) or the error that ends the connection. */
    ssize_t (*read)(arpc__transport *t, int fd, void *buf, size_t len);
    /* Writes what the socket takes of `len` bytes (> 0).  After ARPC_EAGAIN the
     * next write repeats the same bytes, possibly with more after them.
     * @return bytes taken (> 0), ARPC_EAGAIN or an error. */
    ssize_t (*write)(arpc__transport *t, int fd, const void *buf, size_t len);
    /* NULL: no handshake.  Advances the handshake with what the socket holds
     * and takes.  @return 0 (done), ARPC_EAGAIN (wait for the next edge) or
     * the error that ends the connection. */
    int (*handshake)(arpc__transport *t, int fd);
    /* Optional: an orderly goodbye just before the socket closes (TLS
     * close_notify); best effort, never waits. */
    void (*shutdown)(arpc__transport *t, int fd);
    /* True when read must be called again before waiting for the socket:
     * input (or its end) is held inside the transport, not in the kernel. */
    bool (*has_buffered)(const arpc__transport *t);
    /* Optional: frees the transport (NULL for a shared stateless one). */
    void (*destroy)(arpc__transport *t);
} arpc__transport_ops;

struct arpc__transport {
    const arpc__transport_ops *ops;
    /* The transport may hold input the kernel no longer signals (TLS records
     * read ahead): the connection asks has_buffered.  False for TCP, whose
     * hot path then makes no extra call. */
    bool buffers;
    /* What a handler may ask about the stream (NULL or false for TCP); set once the
     * handshake completes. */
    bool secure;              /* TLS */
    const char *peer_subject; /* the verified peer certificate's subject (RFC 2253) */
    const char *peer_san;     /* its subjectAltNames: "DNS:a,IP:127.0.0.1,URI:spiffe://x" */
    const char *alpn;         /* the protocol ALPN agreed on */
    const char *failure;      /* why the handshake or the stream failed: OpenSSL's reason */
};

/* Plain TCP: stateless, shared by every plaintext connection. */
extern arpc__transport arpc__tcp_transport;

#endif

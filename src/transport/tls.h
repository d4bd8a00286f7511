/*
 * TLS over a non-blocking socket (OpenSSL 3): contexts, shared by every
 * connection of a listener or channel and reloadable, and one transport per
 * connection.  See tls.c's design notes and docs/tls.md.
 */
#ifndef ARPC_TRANSPORT_TLS_H
#define ARPC_TRANSPORT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "transport/transport.h"

typedef struct arpc__tls_ctx arpc__tls_ctx;

typedef struct arpc__tls_config {
    bool server;
    const char *cert_file; /* PEM chain; a server's is required, a client's optional */
    const char *key_file;
    /* Server: the CA that client certificates must chain to (mutual TLS); NULL: none
     * asked for.  Client: the CA bundle; NULL: the system's default. */
    const char *ca_file;
    bool client_cert_optional; /* server with ca_file: verify one if sent, not require it */
    int min_version;           /* 0x0303 (TLS 1.2, also for 0) or 0x0304 */
    int max_version;           /* 0: the newest */
} arpc__tls_config;

/* Builds a context from `cfg`, whose strings it copies.  `why` (may be NULL)
 * receives OpenSSL's reason on failure.
 * @return 0, ARPC_EINVAL (a file that does not load, a key that does not match
 * its certificate), ARPC_ENOMEM. */
int arpc__tls_ctx_create(const arpc__tls_config *cfg, arpc__tls_ctx **out, char *why,
                         size_t why_len);

/* Reads the files again into a new OpenSSL context that new connections use;
 * those open keep theirs.  On error the current one stays.  Thread: any.
 * @return 0 or as arpc__tls_ctx_create. */
int arpc__tls_ctx_reload(arpc__tls_ctx *ctx, char *why, size_t why_len);

/* Frees the context; connections that use it keep OpenSSL's (refcounted). */
void arpc__tls_ctx_destroy(arpc__tls_ctx *ctx);

/* A TLS transport on `fd` (owned by the caller's connection).  Client:
 * `server_name` is sent as SNI (unless an IP address) and the certificate must
 * match it; `alpn` the protocol offered (NULL: none).  Server: both NULL.
 * Thread: any (the connection's loop from then on).
 * @return 0, ARPC_ENOMEM or ARPC_EINVAL. */
int arpc__tls_transport_create(arpc__tls_ctx *ctx, int fd, const char *server_name,
                               const char *alpn, arpc__transport **out);

#endif

/**
 * Error codes.  Every fallible arpc function returns 0 on success or a negative
 * code from this table.  OS failures are the negated errno (Linux); arpc's own
 * codes start at -1000.  One X-macro table generates the enum, arpc_strerror()
 * and arpc_err_name().
 */
#ifndef ARPC_ERR_H
#define ARPC_ERR_H

#include <errno.h>

#include <arpc/export.h>

ARPC_BEGIN_DECLS

/* X(NAME, value, text) */
#define ARPC_ERR_MAP(X)                                                         \
    X(ENOMEM, -ENOMEM, "out of memory")                                         \
    X(EINVAL, -EINVAL, "invalid argument")                                      \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable")                      \
    X(ETIMEDOUT, -ETIMEDOUT, "deadline exceeded")                               \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                        \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                      \
    X(ECANCELED, -ECANCELED, "operation canceled")                              \
    X(EADDRINUSE, -EADDRINUSE, "address already in use")                        \
    X(EMFILE, -EMFILE, "too many open files")                                   \
    X(EPIPE, -EPIPE, "broken pipe")                                             \
    X(EFRAME, -1001, "malformed frame from peer")                               \
    X(ETOOBIG, -1002, "frame exceeds configured limit")                         \
    X(ENOMETHOD, -1003, "method not registered on server")                      \
    X(EOVERLOAD, -1004, "server overloaded: too many requests in progress")     \
    X(ESHUTDOWN, -1005, "server is shutting down")                              \
    X(ECLOSED, -1006, "connection closed")                                      \
    X(EVERSION, -1007, "unsupported protocol version")                          \
    X(ENOENDPOINT, -1008, "no healthy endpoint available")                      \
    X(EHEARTBEAT, -1009, "peer stopped answering heartbeats")                   \
    X(EINTERNAL, -1010, "internal error in handler")                            \
    X(ETOOMANYCONNS, -1011, "server connection limit reached")                  \
    X(EBADADDR, -1012, "cannot parse or resolve address")                       \
    X(ENOTCORO, -1013, "operation needs an arpc coroutine")                     \
    X(ESTOPPED, -1014, "runtime or loop is stopped")                            \
    X(EQUEUEFULL, -1015, "connection overcrowded: unwritten output over limit") \
    X(EMETADATA, -1016, "metadata over its size limit")                         \
    X(EEOS, -1017, "end of stream")                                             \
    X(EBADMSG, -1018, "message does not parse as its protobuf type")            \
    X(ETLS, -1019, "TLS failed (OpenSSL's reason is logged)")                   \
    X(ETLSUNTRUSTED, -1020, "TLS peer certificate untrusted or missing")        \
    X(ETLSEXPIRED, -1021, "TLS peer certificate expired or not yet valid")      \
    X(ETLSHOST, -1022, "TLS peer certificate is for another host")              \
    X(ETLSPLAINTEXT, -1023, "peer does not speak TLS")                          \
    X(ETLSTIMEOUT, -1024, "TLS handshake timed out")                            \
    X(ETLSREFUSED, -1025, "TLS peer refused the handshake (alert)")

typedef enum arpc_err {

#define ARPC_ERR_ENUM(name, value, text) ARPC_##name = (value),
    ARPC_ERR_MAP(ARPC_ERR_ENUM)
#undef ARPC_ERR_ENUM
} arpc_err;

/**
 * Describes an error code in words.  Codes from ARPC_ERR_MAP get their text;
 * any other negative errno (above -1000) gets strerror()'s text; anything else
 * "unknown error".
 * @return a string that stays valid at least until the calling thread's next
 *         call (static for every code of ARPC_ERR_MAP), never NULL.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT const char *arpc_strerror(int err);

/**
 * The symbolic name of an error code without the prefix ("ETIMEDOUT"), or
 * "UNKNOWN" for a code that is not in the table.
 * @return a static string, never NULL.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT const char *arpc_err_name(int err);

ARPC_END_DECLS

#endif

/*
 * Design notes.
 *
 * OpenSSL runs over the connection's own non-blocking socket through a BIO of
 * ours (send with MSG_NOSIGNAL: OpenSSL's socket BIO uses write(2), and a peer
 * gone away would raise SIGPIPE in the whole process).  The loop drives
 * everything: the handshake advances on each edge until OpenSSL meets EAGAIN
 * (WANT_READ / WANT_WRITE), and the interest set (in and out, edge-triggered)
 * never changes, so either edge resumes it.
 *
 * Reading: with read-ahead on, OpenSSL takes what the socket holds in large
 * reads and hands out one record per SSL_read.  A short SSL_read therefore
 * says nothing about the socket.  tls_read calls SSL_read until the caller's
 * buffer is full or OpenSSL reports WANT_READ (it met EAGAIN on the socket),
 * so a short tls_read means what a short read(2) means: drained.  When the
 * buffer fills, plaintext may remain inside OpenSSL; the caller reads again
 * (a full read never counts as drained).  An end of stream or an error met
 * after some bytes is kept for the next call, and has_buffered says so, so
 * the connection asks again before it waits for an edge that will not come.
 * A read that needs to write (a TLS 1.3 key update's answer into a full
 * socket) waits for the out edge: has_buffered is true until then.
 *
 * Writing: partial writes and a moving buffer are allowed (the connection's
 * output grows and moves between retries; OpenSSL retries with the bytes at
 * its head, never fewer than before).
 *
 * Certificates reload without a restart: a new SSL_CTX replaces the current
 * one under a mutex that only connection set-up takes (once per connection,
 * never per request); an SSL holds a reference to the context it was made
 * from, so open connections are untouched.
 */
#include "transport/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/err.h>

#include "base/alloc.h"

#define FAILURE_LEN 256

struct arpc__tls_ctx {
    pthread_mutex_t lock;
    SSL_CTX *current;
    arpc__tls_config cfg; /* its strings are ctx-owned copies */
};

typedef struct tls_transport {
    arpc__transport base;
    SSL *ssl;
    int deferred;       /* 1: an end of stream, < 0: an error, kept for the next read */
    bool read_wants_io; /* a read waits for the socket to take a record of its own */
    char *subject;
    char *san;
    char alpn[32];
    char failure[FAILURE_LEN];
} tls_transport;

/* ---- the socket BIO ------------------------------------------------------ */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *bio, const char *data, int len)
{
    ssize_t n;
    do {
        n = send((int)(intptr_t)BIO_get_data(bio), data, (size_t)len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    BIO_clear_retry_flags(bio);
    if (n < 0 && errno == EAGAIN)
        BIO_set_retry_write(bio);
    return (int)n;
}

static int bio_read(BIO *bio, char *data, int len)
{
    ssize_t n;
    do {
        n = read((int)(intptr_t)BIO_get_data(bio), data, (size_t)len);
    } while (n < 0 && errno == EINTR);
    BIO_clear_retry_flags(bio);
    if (n < 0 && errno == EAGAIN)
        BIO_set_retry_read(bio);
    return (int)n;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)bio;
    (void)num;
    (void)ptr;
    /* A flush is a no-op (every write goes straight to the socket); nothing else
     * is asked of a sink. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "arpc socket");
    if (m == NULL)
        return;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    bio_method = m;
}

/* ---- contexts ------------------------------------------------------------ */

static void take_reason(char *why, size_t why_len)
{
    unsigned long e = ERR_peek_last_error();
    if (why != NULL && why_len > 0) {
        if (e != 0)
            ERR_error_string_n(e, why, why_len);
        else
            snprintf(why, why_len, "%s", strerror(errno));
    }
    ERR_clear_error();
}

/* The ALPN protocols a server agrees to, in its order of preference: the
 * client's offer decides among them (gRPC clients offer "h2"). */
static const unsigned char server_alpn[] = "\x02h2\x04"
                                           "arpc";

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                       const unsigned char *in, unsigned in_len, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *chosen;
    if (SSL_select_next_proto(&chosen, out_len, server_alpn, sizeof(server_alpn) - 1, in,
                              in_len) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* none in common: go on without, detect decides */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

static int load_files(SSL_CTX *sc, const arpc__tls_config *cfg)
{
    if (cfg->cert_file != NULL || cfg->key_file != NULL) {
        if (cfg->cert_file == NULL || cfg->key_file == NULL ||
            SSL_CTX_use_certificate_chain_file(sc, cfg->cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(sc, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(sc) != 1)
            return ARPC_EINVAL;
    } else if (cfg->server) {
        return ARPC_EINVAL;
    }
    if (cfg->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(sc, cfg->ca_file, NULL) != 1)
            return ARPC_EINVAL;
        if (cfg->server) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
            if (names == NULL)
                return ARPC_EINVAL;
            SSL_CTX_set_client_CA_list(sc, names);
        }
    } else if (!cfg->server && SSL_CTX_set_default_verify_paths(sc) != 1) {
        return ARPC_EINVAL;
    }
    return 0;
}

static void set_verify(SSL_CTX *sc, const arpc__tls_config *cfg)
{
    int mode = SSL_VERIFY_NONE;
    if (!cfg->server)
        mode = SSL_VERIFY_PEER;
    else if (cfg->ca_file != NULL)
        mode = SSL_VERIFY_PEER | (cfg->client_cert_optional ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    SSL_CTX_set_verify(sc, mode, NULL);
}

static int build_ssl_ctx(const arpc__tls_config *cfg, SSL_CTX **out, char *why, size_t why_len)
{
    ERR_clear_error();
    SSL_CTX *sc = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
    if (sc == NULL) {
        take_reason(why, why_len);
        return ARPC_ENOMEM;
    }
    int min = cfg->min_version != 0 ? cfg->min_version : TLS1_2_VERSION;
    if (min < TLS1_2_VERSION || SSL_CTX_set_min_proto_version(sc, min) != 1 ||
        SSL_CTX_set_max_proto_version(sc, cfg->max_version) != 1) {
        SSL_CTX_free(sc);
        if (why != NULL && why_len > 0)
            snprintf(why, why_len, "unsupported TLS version");
        return ARPC_EINVAL;
    }
    int rc = load_files(sc, cfg);
    if (rc < 0) {
        take_reason(why, why_len);
        SSL_CTX_free(sc);
        return rc;
    }
    set_verify(sc, cfg);
    SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Framed protocols need no close_notify to know a message is whole; a peer that
     * just closes reads as an end of stream, as on TCP. */
    SSL_CTX_set_options(sc, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_read_ahead(sc, 1);
    if (cfg->server) {
        /* Our clients keep their connections and do not resume sessions: no tickets
         * to write after every handshake. */
        SSL_CTX_set_num_tickets(sc, 0);
        SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_alpn_select_cb(sc, select_alpn, NULL);
    }
    *out = sc;
    return 0;
}

static char *dup_or_null(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t len = strlen(s) + 1;
    char *copy = arpc__malloc(len);
    if (copy != NULL)
        memcpy(copy, s, len);
    return copy;
}

static void free_config(arpc__tls_config *cfg)
{
    arpc__free((char *)cfg->cert_file);
    arpc__free((char *)cfg->key_file);
    arpc__free((char *)cfg->ca_file);
}

int arpc__tls_ctx_create(const arpc__tls_config *cfg, arpc__tls_ctx **out, char *why,
                         size_t why_len)
{
    pthread_once(&bio_once, make_bio_method);
    if (bio_method == NULL)
        return ARPC_ENOMEM;
    arpc__tls_ctx *ctx = arpc__calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return ARPC_ENOMEM;
    ctx->cfg = *cfg;
    ctx->cfg.cert_file = dup_or_null(cfg->cert_file);
    ctx->cfg.key_file = dup_or_null(cfg->key_file);
    ctx->cfg.ca_file = dup_or_null(cfg->ca_file);
    if ((cfg->cert_file != NULL && ctx->cfg.cert_file == NULL) ||
        (cfg->key_file != NULL && ctx->cfg.key_file == NULL) ||
        (cfg->ca_file != NULL && ctx->cfg.ca_file == NULL)) {
        free_config(&ctx->cfg);
        arpc__free(ctx);
        return ARPC_ENOMEM;
    }
    int rc = build_ssl_ctx(&ctx->cfg, &ctx->current, why, why_len);
    if (rc < 0) {
        free_config(&ctx->cfg);
        arpc__free(ctx);
        return rc;
    }
    pthread_mutex_init(&ctx->lock, NULL);
    *out = ctx;
    return 0;
}

int arpc__tls_ctx_reload(arpc__tls_ctx *ctx, char *why, size_t why_len)
{
    SSL_CTX *fresh;
    int rc = build_ssl_ctx(&ctx->cfg, &fresh, why, why_len);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&ctx->lock);
    SSL_CTX *old = ctx->current;
    ctx->current = fresh;
    pthread_mutex_unlock(&ctx->lock);
    SSL_CTX_free(old); /* connections made from it hold references of their own */
    return 0;
}

void arpc__tls_ctx_destroy(arpc__tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->current);
    pthread_mutex_destroy(&ctx->lock);
    free_config(&ctx->cfg);
    arpc__free(ctx);
}

/* ---- failures ------------------------------------------------------------ */

static int verify_error(long result)
{
    switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return ARPC_ETLSEXPIRED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return ARPC_ETLSHOST;
    default:
        return ARPC_ETLSUNTRUSTED;
    }
}

/* The arpc error for OpenSSL's reason `reason` (of the library SSL). */
static int reason_error(tls_transport *t, int reason)
{
    switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return verify_error(SSL_get_verify_result(t->ssl));
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return ARPC_ETLSUNTRUSTED;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return ARPC_ETLSPLAINTEXT;
    default:
        /* An alert from the peer: it refused us (our certificate, our versions). */
        return reason >= SSL_AD_REASON_OFFSET ? ARPC_ETLSREFUSED : ARPC_ETLS;
    }
}

/* Turns SSL_get_error's `code` for the call that returned `ret` into
 * ARPC_EAGAIN, 0 (end of stream) or an error, recording OpenSSL's reason. */
static int ssl_failure(tls_transport *t, int ret)
{
    int code = SSL_get_error(t->ssl, ret);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
        return ARPC_EAGAIN;
    if (code == SSL_ERROR_ZERO_RETURN)
        return 0;
    unsigned long e = ERR_peek_error();
    int rc;
    if (code == SSL_ERROR_SYSCALL) {
        rc = errno != 0 ? -errno : ARPC_ECLOSED;
        snprintf(t->failure, sizeof(t->failure), "%s",
                 errno != 0 ? strerror(errno) : "unexpected end of stream");
    } else {
        rc = ERR_GET_LIB(e) == ERR_LIB_SSL ? reason_error(t, ERR_GET_REASON(e)) : ARPC_ETLS;
        ERR_error_string_n(e, t->failure, sizeof(t->failure));
        long v = SSL_get_verify_result(t->ssl);
        if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK) {
            size_t len = strlen(t->failure);
            snprintf(t->failure + len, sizeof(t->failure) - len, " (%s)",
                     X509_verify_cert_error_string(v));
        }
    }
    t->base.failure = t->failure;
    ERR_clear_error();
    return rc;
}

/* ---- the peer's identity ------------------------------------------------- */

static char *bio_take_string(BIO *bio)
{
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *s = len >= 0 ? arpc__malloc((size_t)len + 1) : NULL;
    if (s != NULL) {
        memcpy(s, data, (size_t)len);
        s[len] = '\0';
    }
    BIO_free(bio);
    return s;
}

static void print_ip(BIO *bio, const ASN1_OCTET_STRING *ip)
{
    char text[INET6_ADDRSTRLEN] = "?";
    int len = ASN1_STRING_length(ip);
    const unsigned char *bytes = ASN1_STRING_get0_data(ip);
    if (len == 4 || len == 16)
        inet_ntop(len == 4 ? AF_INET : AF_INET6, bytes, text, sizeof(text));
    BIO_printf(bio, "IP:%s", text);
}

static char *format_san(X509 *cert)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    BIO *bio = names != NULL ? BIO_new(BIO_s_mem()) : NULL;
    if (bio == NULL) {
        GENERAL_NAMES_free(names);
        return NULL;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
        if (i > 0)
            BIO_puts(bio, ",");
        if (name->type == GEN_DNS || name->type == GEN_URI || name->type == GEN_EMAIL) {
            const char *kind = name->type == GEN_DNS ? "DNS" : name->type == GEN_URI ? "URI"
                                                                                   : "email";
            const ASN1_IA5STRING *v = name->d.ia5;
            BIO_printf(bio, "%s:%.*s", kind, ASN1_STRING_length(v),
                       (const char *)ASN1_STRING_get0_data(v));
        } else if (name->type == GEN_IPADD) {
            print_ip(bio, name->d.iPAddress);
        } else {
            BIO_puts(bio, "other");
        }
    }
    GENERAL_NAMES_free(names);
    return bio_take_string(bio);
}

static void take_identity(tls_transport *t)
{
    t->base.secure = true;
    const unsigned char *alpn;
    unsigned alpn_len;
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    if (alpn_len > 0 && alpn_len < sizeof(t->alpn)) {
        memcpy(t->alpn, alpn, alpn_len);
        t->alpn[alpn_len] = '\0';
        t->base.alpn = t->alpn;
    }
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (cert == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK)
        return;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio != NULL) {
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
        t->subject = bio_take_string(bio);
    }
    t->san = format_san(cert);
    t->base.peer_subject = t->subject;
    t->base.peer_san = t->san;
}

/* ---- the transport ------------------------------------------------------- */

static int tls_handshake(arpc__transport *base, int fd)
{
    (void)fd;
    tls_transport *t = (tls_transport *)base;
    ERR_clear_error();
    int ret = SSL_do_handshake(t->ssl);
    if (ret == 1) {
        take_identity(t);
        return 0;
    }
    int rc = ssl_failure(t, ret);
    if (rc == 0 || rc == ARPC_ECLOSED || rc == ARPC_ECONNRESET) {
        /* What a plaintext server does with a ClientHello it cannot parse. */
        snprintf(t->failure, sizeof(t->failure),
                 "peer closed the connection during the handshake (not a TLS port?)");
        t->base.failure = t->failure;
        return ARPC_ETLSPLAINTEXT;
    }
    return rc;
}

static ssize_t tls_read(arpc__transport *base, int fd, void *buf, size_t len)
{
    (void)fd;
    tls_transport *t = (tls_transport *)base;
    if (t->deferred != 0) {
        int rc = t->deferred;
        t->deferred = 0;
        return rc > 0 ? 0 : rc;
    }
    t->read_wants_io = false;
    size_t got = 0;
    while (got < len) {
        size_t n;
        ERR_clear_error();
        if (SSL_read_ex(t->ssl, (char *)buf + got, len - got, &n) == 1) {
            got += n;
            continue;
        }
        int rc = ssl_failure(t, 0);
        if (rc == ARPC_EAGAIN) {
            t->read_wants_io = SSL_want_write(t->ssl);
            break;
        }
        if (got == 0)
            return rc;
        t->deferred = rc == 0 ? 1 : rc; /* after the bytes already taken */
        break;
    }
    return got > 0 ? (ssize_t)got : ARPC_EAGAIN;
}

static ssize_t tls_write(arpc__transport *base, int fd, const void *buf, size_t len)
{
    (void)fd;
    tls_transport *t = (tls_transport *)base;
    size_t n;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    int rc = ssl_failure(t, 0);
    return rc == 0 ? ARPC_ECLOSED : rc;
}

static void tls_shutdown(arpc__transport *base, int fd)
{
    (void)fd;
    tls_transport *t = (tls_transport *)base;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* close_notify, if the socket takes it now */
    ERR_clear_error();
}

static bool tls_has_buffered(const arpc__transport *base)
{
    const tls_transport *t = (const tls_transport *)base;
    return t->deferred != 0 || t->read_wants_io || SSL_has_pending(t->ssl);
}

static void tls_destroy(arpc__transport *base)
{
    tls_transport *t = (tls_transport *)base;
    SSL_free(t->ssl);
    arpc__free(t->subject);
    arpc__free(t->san);
    arpc__free(t);
}

static const arpc__transport_ops tls_ops = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .handshake = tls_handshake,
    .shutdown = tls_shutdown,
    .has_buffered = tls_has_buffered,
    .destroy = tls_destroy,
};

/* Client: SNI for a name (never for an address, RFC 6066) and the name or
 * address the certificate must carry. */
static int set_peer_name(SSL *ssl, const char *name)
{
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    if (is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : ARPC_EINVAL;
    if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1)
        return ARPC_EINVAL;
    return 0;
}

static int configure_client(SSL *ssl, const char *server_name, const char *alpn)
{
    if (server_name != NULL && set_peer_name(ssl, server_name) < 0)
        return ARPC_EINVAL;
    if (alpn != NULL) {
        unsigned char wire[64];
        size_t len = strlen(alpn);
        if (len == 0 || len >= sizeof(wire))
            return ARPC_EINVAL;
        wire[0] = (unsigned char)len;
        memcpy(wire + 1, alpn, len);
        if (SSL_set_alpn_protos(ssl, wire, (unsigned)len + 1) != 0)
            return ARPC_ENOMEM;
    }
    SSL_set_connect_state(ssl);
    return 0;
}

int arpc__tls_transport_create(arpc__tls_ctx *ctx, int fd, const char *server_name,
                               const char *alpn, arpc__transport **out)
{
    tls_transport *t = arpc__calloc(1, sizeof(*t));
    BIO *bio = t != NULL ? BIO_new(bio_method) : NULL;
    if (bio == NULL) {
        arpc__free(t);
        return ARPC_ENOMEM;
    }
    BIO_set_data(bio, (void *)(intptr_t)fd);
    pthread_mutex_lock(&ctx->lock);
    t->ssl = SSL_new(ctx->current);
    pthread_mutex_unlock(&ctx->lock);
    if (t->ssl == NULL) {
        BIO_free(bio);
        arpc__free(t);
        ERR_clear_error();
        return ARPC_ENOMEM;
    }
    SSL_set_bio(t->ssl, bio, bio);
    int rc = ctx->cfg.server ? (SSL_set_accept_state(t->ssl), 0)
                             : configure_client(t->ssl, server_name, alpn);
    if (rc < 0) {
        ERR_clear_error();
        tls_destroy(&t->base);
        return rc;
    }
    t->base.ops = &tls_ops;
    t->base.buffers = true;
    *out = &t->base;
    return 0;
}

/*
 * TLS for a build without OpenSSL (a cross build without the target's, such as make
 * test-aarch64, which builds only the base and runtime tests): the same functions as
 * tls.c, each refusing with ARPC_ETLS, so that the rpc layer links and a TLS listener or
 * channel fails with a clear reason instead of the library failing to link.  CMake
 * compiles exactly one of tls.c and this file.
 */
#include <stdio.h>

#include <arpc/err.h>

#include "transport/tls.h"

static int not_built(char *why, size_t why_len)
{
    if (why != NULL && why_len > 0)
        snprintf(why, why_len, "TLS is not built in (no OpenSSL 3 for this target)");
    return ARPC_ETLS;
}

int arpc__tls_ctx_create(const arpc__tls_config *cfg, arpc__tls_ctx **out, char *why,
                         size_t why_len)
{
    (void)cfg;
    (void)out;
    return not_built(why, why_len);
}

int arpc__tls_ctx_reload(arpc__tls_ctx *ctx, char *why, size_t why_len)
{
    (void)ctx;
    return not_built(why, why_len);
}

void arpc__tls_ctx_destroy(arpc__tls_ctx *ctx)
{
    (void)ctx; /* none was ever made */
}

int arpc__tls_transport_create(arpc__tls_ctx *ctx, int fd, const char *server_name,
                               const char *alpn, arpc__transport **out)
{
    (void)ctx;
    (void)fd;
    (void)server_name;
    (void)alpn;
    (void)out;
    return ARPC_ETLS;
}

/*
 * TLS versions shared by the server's listeners (include/arpc/server.h,
 * arpc_server_tls_opts) and the client's channels (include/arpc/client.h,
 * arpc_channel_opts.tls).  docs/tls.md.
 */
#ifndef ARPC_TLS_H
#define ARPC_TLS_H

/** TLS 1.2 (the oldest arpc speaks). */
#define ARPC_TLS_1_2 0x0303
/** TLS 1.3. */
#define ARPC_TLS_1_3 0x0304

#endif

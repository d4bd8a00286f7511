/*
 * gRPC over TLS against grpcio both ways (issue #14, docs/tls.md), with the
 * certificates tests/integration/tls/gen_certs.sh makes.
 *
 * grpcio's client (grpc.ssl_channel_credentials, the test CA) against
 * arpc-echo-server's TLS listener (--tls-cert/--tls-key): unary, big, bidi,
 * client and server streaming.  Then mutual TLS (--tls-client-ca): grpcio
 * with the client certificate passes, without it its unary case fails; the
 * tool's TLS counters agree.
 *
 * arpc's client (ARPC_PROTOCOL_GRPC, arpc_channel_opts.tls) against
 * grpc_peer_server.py on grpc.ssl_server_credentials: a unary Echo and a
 * Count stream, then mutual TLS (require_client_auth): with arpc's client
 * certificate the call passes, without it the call fails (the connection closed);
 * with another CA the server is refused as untrusted (ETLSUNTRUSTED).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

#include "interop_util.h"
#include "test.h"

#define CLIENT_TIMEOUT_MS 60000
#define EVENT_TIMEOUT_MS  10000

static char certs[512];

/* certs/NAME into buf. */
static const char *cert(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", certs, name);
    return buf;
}

static char ca[600], srv_pem[600], srv_key[600], cli_pem[600], cli_key[600], rogue_ca[600];

static void make_certs(void)
{
    snprintf(certs, sizeof(certs), "%s", ARPC_TLS_CERT_DIR);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", ARPC_TLS_GEN_CERTS, certs);
    ASSERT_EQ(system(cmd), 0);
    cert(ca, sizeof(ca), "ca.pem");
    cert(srv_pem, sizeof(srv_pem), "server.pem");
    cert(srv_key, sizeof(srv_key), "server.key");
    cert(cli_pem, sizeof(cli_pem), "client.pem");
    cert(cli_key, sizeof(cli_key), "client.key");
    cert(rogue_ca, sizeof(rogue_ca), "rogue-ca.pem");
}

/* ---- grpcio's client against arpc-echo-server --------------------------------------- */

/* Starts the tool with a TLS listener (`client_ca` NULL: no client certificate asked) and
 * returns its TLS port, from the "tls listening on HOST:PORT" line after the plaintext one. */
static int start_tls_echo_server(const char *client_ca, interop_proc *srv)
{
    const char *plain[] = {"--threads", "2",  "--tls-cert", srv_pem, "--tls-key",
                           srv_key,     NULL, NULL,         NULL};
    if (client_ca != NULL) {
        plain[6] = "--tls-client-ca";
        plain[7] = client_ca;
    }
    interop_start_echo_server(plain, srv);
    char line[256];
    ASSERT_TRUE(interop_wait_line(srv, "tls listening on ", line, sizeof(line), EVENT_TIMEOUT_MS));
    const char *colon = strrchr(line, ':');
    ASSERT_TRUE(colon != NULL);
    int port = atoi(colon + 1);
    ASSERT_GT(port, 0);
    ASSERT_NE(port, srv->port);
    return port;
}

/* SIGTERM; returns the tool's "tls: H handshakes, F failed, T timed out" counters. */
static void stop_echo_server(interop_proc *srv, unsigned long *handshakes, unsigned long *failed)
{
    interop_signal(srv, SIGTERM);
    char line[256];
    ASSERT_TRUE(interop_wait_line(srv, "tls: ", line, sizeof(line), EVENT_TIMEOUT_MS));
    unsigned long timeouts;
    ASSERT_EQ(sscanf(line, "tls: %lu handshakes, %lu failed, %lu timed out", handshakes, failed,
                     &timeouts),
              3);
    ASSERT_EQ(timeouts, 0);
    ASSERT_EQ(interop_reap(srv, 10000), 0);
}

static void test_grpcio_client(void)
{
    interop_proc srv;
    int port = start_tls_echo_server(NULL, &srv);
    char target[64];
    interop_addr(target, sizeof(target), port);
    /* The certificate names localhost and 127.0.0.1; grpcio checks the override's name. */
    const char *args[] = {"--tls-ca",
                          ca,
                          "--tls-server-name",
                          "localhost",
                          "--stream-messages",
                          "50",
                          "--stream-bytes",
                          "65536",
                          "unary",
                          "big",
                          "bidi",
                          "clientstream",
                          "serverstream",
                          NULL};
    ASSERT_EQ(interop_run_grpc_client(target, args, CLIENT_TIMEOUT_MS), 0);
    /* Plaintext grpcio against the TLS port fails; the server counts a failed handshake. */
    const char *plain[] = {"--timeout-ms", "3000", "unary", NULL};
    ASSERT_NE(interop_run_grpc_client(target, plain, CLIENT_TIMEOUT_MS), 0);
    unsigned long handshakes, failed;
    stop_echo_server(&srv, &handshakes, &failed);
    fprintf(stderr, "  server: %lu handshakes, %lu failed\n", handshakes, failed);
    ASSERT_GE(handshakes, 1);
    ASSERT_GE(failed, 1);
}

static void test_grpcio_client_mtls(void)
{
    interop_proc srv;
    int port = start_tls_echo_server(ca, &srv);
    char target[64];
    interop_addr(target, sizeof(target), port);
    const char *with[] = {
        "--tls-ca", ca,      "--tls-server-name", "localhost", "--tls-cert", cli_pem, "--tls-key",
        cli_key,    "unary", "serverstream",      NULL};
    ASSERT_EQ(interop_run_grpc_client(target, with, CLIENT_TIMEOUT_MS), 0);
    const char *without[] = {
        "--tls-ca", ca, "--tls-server-name", "localhost", "--timeout-ms", "3000", "unary", NULL};
    ASSERT_NE(interop_run_grpc_client(target, without, CLIENT_TIMEOUT_MS), 0);
    unsigned long handshakes, failed;
    stop_echo_server(&srv, &handshakes, &failed);
    fprintf(stderr, "  server: %lu handshakes, %lu failed\n", handshakes, failed);
    ASSERT_GE(handshakes, 1);
    ASSERT_GE(failed, 1); /* the one without a certificate */
}

/* ---- arpc's client against grpcio's TLS server --------------------------------------- */

static void start_grpcio_server(const char *client_ca, interop_proc *peer)
{
    const char *args[] = {"--tls-cert", srv_pem, "--tls-key", srv_key, NULL, NULL, NULL};
    if (client_ca != NULL) {
        args[4] = "--tls-client-ca";
        args[5] = client_ca;
    }
    interop_start_grpc_peer(args, peer);
}

static void stop_grpcio_server(interop_proc *peer)
{
    interop_signal(peer, SIGTERM);
    ASSERT_TRUE(interop_wait_line(peer, "event stopped", NULL, 0, EVENT_TIMEOUT_MS));
    ASSERT_EQ(interop_reap(peer, 10000), 0);
}

/* A gRPC channel over TLS trusting `trust`, with the client certificate if `mtls`. */
static arpc_channel *tls_channel(arpc_runtime *rt, int port, const char *trust, bool mtls)
{
    char target[64];
    interop_addr(target, sizeof(target), port);
    arpc_channel_opts o;
    arpc_channel_opts_init(&o);
    o.protocol = ARPC_PROTOCOL_GRPC;
    o.tls.enabled = true;
    o.tls.ca_file = trust;
    if (mtls) {
        o.tls.cert_file = cli_pem;
        o.tls.key_file = cli_key;
    }
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &o, &ch));
    return ch;
}

/* Echo of `text`: 0 with the answer checked, or the call's error. */
static int echo(arpc_channel *ch, const char *text)
{
    uint8_t req[128];
    size_t n = interop_echo_msg(req, text, strlen(text));
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 5000;
    int rc = arpc_call(ch, "/arpc.echo.Echo/Echo", req, n, &opts, rsp);
    if (rc == 0) {
        ASSERT_EQ(arpc_buf_len(rsp), n);
        ASSERT_EQ(memcmp(arpc_buf_data(rsp), req, n), 0);
    }
    arpc_buf_destroy(rsp);
    return rc;
}

/* Count("100") over the stream API: "1".."100", then the end. */
static void count_stream(arpc_channel *ch)
{
    arpc_stream *st;
    ASSERT_OK(arpc_stream_open(ch, "arpc.echo.Echo/Count", NULL, &st));
    uint8_t buf[32];
    ASSERT_OK(arpc_stream_write(st, buf, interop_echo_msg(buf, "100", 3)));
    ASSERT_OK(arpc_stream_close_send(st));
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    for (int i = 1; i <= 100; i++) {
        char text[16];
        int len = snprintf(text, sizeof(text), "%d", i);
        arpc_buf_clear(msg);
        ASSERT_OK(arpc_stream_read(st, msg));
        ASSERT_EQ(arpc_buf_len(msg), interop_echo_msg(buf, text, (size_t)len));
        ASSERT_EQ(memcmp(arpc_buf_data(msg), buf, arpc_buf_len(msg)), 0);
    }
    arpc_buf_clear(msg);
    ASSERT_ERR(arpc_stream_read(st, msg), ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    arpc_buf_destroy(msg);
}

static void test_arpc_client(void)
{
    interop_proc peer;
    start_grpcio_server(NULL, &peer);
    arpc_runtime *rt;
    ASSERT_OK(arpc_runtime_create(NULL, &rt));
    arpc_channel *ch = tls_channel(rt, peer.port, ca, false);
    ASSERT_OK(echo(ch, "hello over TLS"));
    count_stream(ch);
    ASSERT_OK(echo(ch, "again, same connection"));
    arpc_channel_destroy(ch);
    /* grpcio's certificate does not chain to the rogue CA. */
    ch = tls_channel(rt, peer.port, rogue_ca, false);
    ASSERT_ERR(echo(ch, "x"), ARPC_ETLSUNTRUSTED);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    stop_grpcio_server(&peer);
}

static void test_arpc_client_mtls(void)
{
    interop_proc peer;
    start_grpcio_server(ca, &peer);
    arpc_runtime *rt;
    ASSERT_OK(arpc_runtime_create(NULL, &rt));
    arpc_channel *ch = tls_channel(rt, peer.port, ca, true);
    ASSERT_OK(echo(ch, "mutual"));
    count_stream(ch);
    arpc_channel_destroy(ch);
    /* Without a certificate grpcio's server fails the handshake ("peer did not return a
     * certificate").  Under TLS 1.3 our side has finished by then, and grpcio closes
     * the socket without sending its alert (its TSI drops the alert bytes), so the call
     * sees the connection end (ECLOSED); an OpenSSL server's alert would give
     * ETLSREFUSED (test_tls). */
    ch = tls_channel(rt, peer.port, ca, false);
    int rc = echo(ch, "x");
    fprintf(stderr, "  without a client certificate: %s\n", arpc_err_name(rc));
    if (rc != ARPC_ECLOSED && rc != ARPC_ETLSREFUSED)
        test_fail(__FILE__, __LINE__, "want ECLOSED or ETLSREFUSED, got %s", arpc_err_name(rc));
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    stop_grpcio_server(&peer);
}

int main(void)
{
    interop_require_grpc();
    make_certs();
    RUN_TEST(test_grpcio_client);
    RUN_TEST(test_grpcio_client_mtls);
    RUN_TEST(test_arpc_client);
    RUN_TEST(test_arpc_client_mtls);
    return 0;
}

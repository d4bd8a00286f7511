/*
 * TLS end to end (docs/tls.md): an arpc server with a plaintext and a TLS
 * listener, arpc channels with TLS on the native protocol and on gRPC, over
 * 127.0.0.1.  The certificates are made at start by gen_certs.sh (the openssl
 * command) in the build directory.  Covered: ALPN and the peer identity a
 * handler reads, mutual TLS accepted and refused, untrusted / expired /
 * wrong-host certificates refused with their codes, plaintext to a TLS port
 * and TLS to a plaintext port, a garbage ClientHello that costs only its
 * connection, the server's and the client's handshake timeouts, certificate
 * reload while calls run, and `openssl s_client` on ALPN and both versions.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "test.h"

static char certs[512];
static arpc_runtime *rt;

/* The path of `name` in the certificate directory (one of 8 rotating buffers:
 * copy a path kept across more calls). */
static const char *cert(const char *name)
{
    static char paths[8][600];
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof(paths[0]), "%s/%s", certs, name);
    return p;
}

/* The handler answers what it saw: "tls=1 alpn=h2 subject=... san=...". */
static int whoami(arpc_request *req, void *user_data)
{
    (void)user_data;
    char text[512];
    const char *alpn = arpc_request_alpn(req);
    const char *subject = arpc_request_peer_subject(req);
    const char *san = arpc_request_peer_san(req);
    int n = snprintf(text, sizeof(text), "tls=%d alpn=%s subject=%s san=%s",
                     arpc_request_is_tls(req), alpn ? alpn : "-", subject ? subject : "-",
                     san ? san : "-");
    return arpc_buf_append(arpc_request_response(req), text, (size_t)n);
}

static int echo(arpc_request *req, void *user_data)
{
    (void)user_data;
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

typedef struct server_setup {
    const char *cert;
    const char *key;
    const char *client_ca;
    int64_t handshake_timeout_ms;
} server_setup;

static arpc_server *server_start(const server_setup *s)
{
    arpc_server_opts opts;
    arpc_server_opts_init(&opts);
    if (s->handshake_timeout_ms != 0)
        opts.tls_handshake_timeout_ms = s->handshake_timeout_ms;
    arpc_server *srv;
    ASSERT_OK(arpc_server_create(rt, &opts, &srv));
    ASSERT_OK(arpc_server_register(srv, "whoami", whoami, NULL));
    ASSERT_OK(arpc_server_register(srv, "test.T/Whoami", whoami, NULL));
    ASSERT_OK(arpc_server_register(srv, "echo", echo, NULL));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    arpc_server_tls_opts tls;
    arpc_server_tls_opts_init(&tls);
    tls.cert_file = s->cert != NULL ? s->cert : cert("server.pem");
    tls.key_file = s->key != NULL ? s->key : cert("server.key");
    tls.client_ca_file = s->client_ca;
    ASSERT_OK(arpc_server_listen_tls(srv, "127.0.0.1:0", &tls));
    ASSERT_NE(arpc_server_port(srv), arpc_server_tls_port(srv));
    return srv;
}

typedef struct client_setup {
    arpc_protocol protocol;
    const char *ca;
    const char *server_name;
    const char *cert;
    const char *key;
    int64_t handshake_timeout_ms;
    bool plaintext;
} client_setup;

static arpc_channel *channel_to(int port, const client_setup *c)
{
    arpc_channel_opts opts;
    arpc_channel_opts_init(&opts);
    opts.protocol = c->protocol;
    opts.max_retries = 0; /* the first failure's own code */
    opts.tls.enabled = !c->plaintext;
    opts.tls.ca_file = c->ca != NULL ? c->ca : cert("ca.pem");
    opts.tls.server_name = c->server_name;
    opts.tls.cert_file = c->cert;
    opts.tls.key_file = c->key;
    if (c->handshake_timeout_ms != 0)
        opts.tls.handshake_timeout_ms = c->handshake_timeout_ms;
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &opts, &ch));
    return ch;
}

/* One call; on success its answer is in `text`.  @return the call's status. */
static int call_text(arpc_channel *ch, const char *method, char *text, size_t size)
{
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts co;
    arpc_call_opts_init(&co);
    co.timeout_ms = 5000;
    int rc = arpc_call(ch, method, "x", 1, &co, rsp);
    if (rc == 0) {
        size_t n = arpc_buf_len(rsp) < size - 1 ? arpc_buf_len(rsp) : size - 1;
        memcpy(text, arpc_buf_data(rsp), n);
        text[n] = '\0';
    }
    arpc_buf_destroy(rsp);
    return rc;
}

typedef struct stat_wait {
    arpc_server *srv;
    uint64_t handshakes;
    uint64_t failures;
} stat_wait;

static bool stats_reached(void *arg)
{
    stat_wait *w = arg;
    arpc_server_stats st;
    arpc_server_get_stats(w->srv, &st);
    return st.tls_handshakes >= w->handshakes && st.tls_handshake_failures >= w->failures;
}

/* The server counts a connection when it closes it, which its client may see
 * first: wait for the counts, then check they are exact. */
static void expect_handshakes(arpc_server *srv, uint64_t handshakes, uint64_t failures)
{
    stat_wait w = {srv, handshakes, failures};
    ASSERT_TRUE(wait_until(stats_reached, &w, 5000));
    arpc_server_stats st;
    arpc_server_get_stats(srv, &st);
    ASSERT_EQ(st.tls_handshakes, handshakes);
    ASSERT_EQ(st.tls_handshake_failures, failures);
}

static void test_native_and_grpc_over_tls(void)
{
    server_setup s = {0};
    arpc_server *srv = server_start(&s);
    char text[512];
    client_setup c = {.protocol = ARPC_PROTOCOL_NATIVE};
    arpc_channel *ch = channel_to(arpc_server_tls_port(srv), &c);
    ASSERT_OK(call_text(ch, "whoami", text, sizeof(text)));
    ASSERT_STREQ(text, "tls=1 alpn=arpc subject=- san=-");
    arpc_channel_destroy(ch);

    c.protocol = ARPC_PROTOCOL_GRPC;
    ch = channel_to(arpc_server_tls_port(srv), &c);
    ASSERT_OK(call_text(ch, "test.T/Whoami", text, sizeof(text)));
    ASSERT_STREQ(text, "tls=1 alpn=h2 subject=- san=-");
    arpc_channel_destroy(ch);

    /* The same server's plaintext listener, at the same time. */
    client_setup plain = {.protocol = ARPC_PROTOCOL_NATIVE, .plaintext = true};
    ch = channel_to(arpc_server_port(srv), &plain);
    ASSERT_OK(call_text(ch, "whoami", text, sizeof(text)));
    ASSERT_STREQ(text, "tls=0 alpn=- subject=- san=-");
    arpc_channel_destroy(ch);

    expect_handshakes(srv, 2, 0);
    arpc_server_destroy(srv);
}

/* Large answers: many records per read, plaintext left inside OpenSSL. */
static void test_large_payloads(void)
{
    server_setup s = {0};
    arpc_server *srv = server_start(&s);
    client_setup c = {.protocol = ARPC_PROTOCOL_NATIVE};
    arpc_channel *ch = channel_to(arpc_server_tls_port(srv), &c);
    size_t len = 3 * 1024 * 1024 + 17;
    char *big = malloc(len);
    ASSERT_TRUE(big != NULL);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)(i * 7 + 3);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    for (int round = 0; round < 3; round++) {
        arpc_buf_clear(rsp);
        ASSERT_OK(arpc_call(ch, "echo", big, len, NULL, rsp));
        ASSERT_EQ(arpc_buf_len(rsp), len);
        ASSERT_TRUE(memcmp(arpc_buf_data(rsp), big, len) == 0);
    }
    arpc_buf_destroy(rsp);
    free(big);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
}

static void test_mutual_tls(void)
{
    server_setup s = {.client_ca = cert("ca.pem")};
    arpc_server *srv = server_start(&s);
    char text[512];
    client_setup c = {.protocol = ARPC_PROTOCOL_NATIVE,
                      .cert = cert("client.pem"),
                      .key = cert("client.key")};
    arpc_channel *ch = channel_to(arpc_server_tls_port(srv), &c);
    ASSERT_OK(call_text(ch, "whoami", text, sizeof(text)));
    ASSERT_STREQ(text, "tls=1 alpn=arpc subject=CN=client,O=arpc tests "
                       "san=DNS:client.test,URI:spiffe://arpc.test/client");
    arpc_channel_destroy(ch);

    /* No certificate, then one from a CA the server does not trust. */
    client_setup none = {.protocol = ARPC_PROTOCOL_NATIVE};
    ch = channel_to(arpc_server_tls_port(srv), &none);
    ASSERT_ERR(call_text(ch, "whoami", text, sizeof(text)), ARPC_ETLSREFUSED);
    arpc_channel_destroy(ch);
    client_setup rogue = {.protocol = ARPC_PROTOCOL_GRPC,
                          .cert = cert("rogue-client.pem"),
                          .key = cert("rogue-client.key")};
    ch = channel_to(arpc_server_tls_port(srv), &rogue);
    ASSERT_ERR(call_text(ch, "test.T/Whoami", text, sizeof(text)), ARPC_ETLSREFUSED);
    arpc_channel_destroy(ch);

    expect_handshakes(srv, 1, 2);
    arpc_server_destroy(srv);
}

static void expect_refused(const char *srv_cert, const char *srv_key, const char *name, int want)
{
    server_setup s = {.cert = srv_cert, .key = srv_key};
    arpc_server *srv = server_start(&s);
    char text[64];
    client_setup c = {.protocol = ARPC_PROTOCOL_NATIVE, .server_name = name};
    arpc_channel *ch = channel_to(arpc_server_tls_port(srv), &c);
    ASSERT_ERR(call_text(ch, "whoami", text, sizeof(text)), want);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
}

static void test_bad_server_certificates(void)
{
    expect_refused(cert("untrusted.pem"), cert("untrusted.key"), NULL, ARPC_ETLSUNTRUSTED);
    expect_refused(cert("expired.pem"), cert("expired.key"), NULL, ARPC_ETLSEXPIRED);
    expect_refused(cert("wronghost.pem"), cert("wronghost.key"), "localhost", ARPC_ETLSHOST);
    expect_refused(NULL, NULL, "other.test", ARPC_ETLSHOST);
    /* The name verified, by SNI, and an IP address against IP SANs. */
    server_setup s = {0};
    arpc_server *srv = server_start(&s);
    char text[64];
    client_setup c = {.protocol = ARPC_PROTOCOL_NATIVE, .server_name = "localhost"};
    arpc_channel *ch = channel_to(arpc_server_tls_port(srv), &c);
    ASSERT_OK(call_text(ch, "whoami", text, sizeof(text)));
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
}

static void test_wrong_side_plaintext(void)
{
    server_setup s = {0};
    arpc_server *srv = server_start(&s);
    char text[64];
    /* TLS to the plaintext port: the server sees no protocol it speaks and closes. */
    client_setup c = {.protocol = ARPC_PROTOCOL_NATIVE};
    arpc_channel *ch = channel_to(arpc_server_port(srv), &c);
    ASSERT_ERR(call_text(ch, "whoami", text, sizeof(text)), ARPC_ETLSPLAINTEXT);
    arpc_channel_destroy(ch);
    /* Plaintext to the TLS port: a failed handshake on the server, a closed
     * connection for the client; nothing else is touched. */
    client_setup plain = {.protocol = ARPC_PROTOCOL_NATIVE, .plaintext = true};
    ch = channel_to(arpc_server_tls_port(srv), &plain);
    int rc = call_text(ch, "whoami", text, sizeof(text));
    ASSERT_TRUE(rc == ARPC_ECLOSED || rc == ARPC_ECONNRESET || rc == ARPC_ECONNREFUSED ||
                rc == ARPC_EFRAME);
    arpc_channel_destroy(ch);
    expect_handshakes(srv, 0, 1);
    ch = channel_to(arpc_server_tls_port(srv), &c);
    ASSERT_OK(call_text(ch, "whoami", text, sizeof(text)));
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
    return fd;
}

/* Reads until the peer closes (bounded).  @return true when it did. */
static bool closed_by_peer(int fd)
{
    char buf[4096];
    int64_t deadline = test_now_ms() + 5000;
    while (test_now_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
    return false;
}

static void test_garbage_client_hello(void)
{
    server_setup s = {0};
    arpc_server *srv = server_start(&s);
    (void)test_seed(); /* printed: the random bytes replay with ARPC_TEST_SEED */
    for (int i = 0; i < 20; i++) {
        /* A handshake record header, then random bytes. */
        uint8_t hello[300] = {0x16, 0x03, 0x01, 0x01, 0x20, 0x01};
        for (size_t j = 6; j < sizeof(hello); j++)
            hello[j] = (uint8_t)test_rand();
        int fd = raw_connect(arpc_server_tls_port(srv));
        ASSERT_EQ(send(fd, hello, sizeof(hello), MSG_NOSIGNAL), (ssize_t)sizeof(hello));
        ASSERT_TRUE(closed_by_peer(fd));
        close(fd);
    }
    expect_handshakes(srv, 0, 20);
    char text[64];
    client_setup c = {.protocol = ARPC_PROTOCOL_NATIVE};
    arpc_channel *ch = channel_to(arpc_server_tls_port(srv), &c);
    ASSERT_OK(call_text(ch, "whoami", text, sizeof(text)));
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
}

static bool timeout_counted(void *arg)
{
    arpc_server_stats st;
    arpc_server_get_stats(arg, &st);
    return st.tls_handshake_timeouts == 1;
}

static void test_handshake_timeouts(void)
{
    /* Server: a client that connects and says nothing is closed and counted. */
    server_setup s = {.handshake_timeout_ms = 200};
    arpc_server *srv = server_start(&s);
    int64_t start = test_now_ms();
    int fd = raw_connect(arpc_server_tls_port(srv));
    ASSERT_TRUE(wait_until(timeout_counted, srv, 5000));
    ASSERT_GE(test_now_ms() - start, 200);
    ASSERT_TRUE(closed_by_peer(fd));
    close(fd);
    arpc_server_destroy(srv);

    /* Client: a listener that accepts (the kernel does) and never answers. */
    uint16_t port;
    int lfd = test_listen_ephemeral(&port);
    ASSERT_GE(lfd, 0);
    client_setup c = {.protocol = ARPC_PROTOCOL_NATIVE, .handshake_timeout_ms = 200};
    arpc_channel *ch = channel_to(port, &c);
    char text[64];
    start = test_now_ms();
    ASSERT_ERR(call_text(ch, "whoami", text, sizeof(text)), ARPC_ETLSTIMEOUT);
    ASSERT_GE(test_now_ms() - start, 200);
    arpc_channel_destroy(ch);
    close(lfd);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s.tmp' && mv '%s.tmp' '%s'", from, to, to, to);
    ASSERT_EQ(system(cmd), 0);
}

typedef struct load {
    arpc_channel *ch;
    arpc_event done;
    _Atomic int outstanding;
    _Atomic int failures;
    _Atomic bool stop;
    _Atomic uint64_t ok;
} load;

static void on_load_answer(int status, const void *rsp, size_t len, void *user_data);

static void load_send(load *l)
{
    arpc_call_opts co;
    arpc_call_opts_init(&co);
    co.timeout_ms = 5000;
    if (arpc_call_async(l->ch, "echo", "load", 4, &co, on_load_answer, l) != 0) {
        atomic_fetch_add(&l->failures, 1);
        if (atomic_fetch_sub(&l->outstanding, 1) == 1)
            arpc_event_signal(&l->done);
    }
}

static void on_load_answer(int status, const void *rsp, size_t len, void *user_data)
{
    (void)rsp;
    load *l = user_data;
    if (status != 0 || len != 4)
        atomic_fetch_add(&l->failures, 1);
    else
        atomic_fetch_add(&l->ok, 1);
    if (!atomic_load(&l->stop)) {
        load_send(l);
        return;
    }
    if (atomic_fetch_sub(&l->outstanding, 1) == 1)
        arpc_event_signal(&l->done);
}

static void test_reload_under_load(void)
{
    char crt[600];
    char key[600];
    snprintf(crt, sizeof(crt), "%s", cert("live.pem"));
    snprintf(key, sizeof(key), "%s", cert("live.key"));
    copy_file(cert("server.pem"), crt);
    copy_file(cert("server.key"), key);
    server_setup s = {.cert = crt, .key = key};
    arpc_server *srv = server_start(&s);
    int port = arpc_server_tls_port(srv);
    client_setup c = {.protocol = ARPC_PROTOCOL_NATIVE, .server_name = "localhost"};
    load l = {.ch = channel_to(port, &c)};
    arpc_event_init(&l.done);
    atomic_store(&l.outstanding, 16);
    for (int i = 0; i < 16; i++)
        load_send(&l);

    char text[64];
    for (int round = 0; round < 5; round++) {
        /* To a certificate for another name: a new connection sees it at once. */
        copy_file(cert("wronghost.pem"), crt);
        copy_file(cert("wronghost.key"), key);
        ASSERT_OK(arpc_server_reload_tls(srv));
        arpc_channel *probe = channel_to(port, &c);
        ASSERT_ERR(call_text(probe, "whoami", text, sizeof(text)), ARPC_ETLSHOST);
        arpc_channel_destroy(probe);
        /* A file that does not load: refused, the certificate in use stays. */
        copy_file(cert("ca.srl"), crt);
        ASSERT_ERR(arpc_server_reload_tls(srv), ARPC_EINVAL);
        copy_file(cert("server.pem"), crt);
        copy_file(cert("server.key"), key);
        ASSERT_OK(arpc_server_reload_tls(srv));
        probe = channel_to(port, &c);
        ASSERT_OK(call_text(probe, "whoami", text, sizeof(text)));
        arpc_channel_destroy(probe);
    }
    atomic_store(&l.stop, true);
    ASSERT_OK(arpc_event_wait(&l.done, 10000));
    ASSERT_EQ(atomic_load(&l.failures), 0);
    ASSERT_GT(atomic_load(&l.ok), 100);
    arpc_channel_destroy(l.ch);
    arpc_server_destroy(srv);
}

/* `openssl s_client` against the TLS listener: what it printed. */
static void s_client(int port, const char *args, char *out, size_t size)
{
    char cmd[1400];
    snprintf(cmd, sizeof(cmd),
             "timeout 10 openssl s_client -connect 127.0.0.1:%d -CAfile '%s' %s </dev/null 2>&1",
             port, cert("ca.pem"), args);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    pclose(p);
}

static void test_s_client(void)
{
    server_setup s = {0};
    arpc_server *srv = server_start(&s);
    int port = arpc_server_tls_port(srv);
    static char out[65536];
    s_client(port, "-tls1_2 -alpn h2", out, sizeof(out));
    ASSERT_TRUE(strstr(out, "Protocol  : TLSv1.2") != NULL);
    ASSERT_TRUE(strstr(out, "ALPN protocol: h2") != NULL);
    ASSERT_TRUE(strstr(out, "Verify return code: 0 (ok)") != NULL);
    s_client(port, "-tls1_3 -alpn arpc", out, sizeof(out));
    ASSERT_TRUE(strstr(out, "TLSv1.3") != NULL);
    ASSERT_TRUE(strstr(out, "ALPN protocol: arpc") != NULL);
    s_client(port, "-tls1_3 -alpn spdy/3", out, sizeof(out));
    ASSERT_TRUE(strstr(out, "No ALPN negotiated") != NULL);
    /* TLS 1.1 is refused. */
    s_client(port, "-tls1_1", out, sizeof(out));
    ASSERT_TRUE(strstr(out, "Cipher is (NONE)") != NULL || strstr(out, "alert") != NULL);
    arpc_server_destroy(srv);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    snprintf(certs, sizeof(certs), "%s", ARPC_TLS_CERT_DIR);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", ARPC_TLS_GEN_CERTS, certs);
    ASSERT_EQ(system(cmd), 0);
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 2;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    RUN_TEST(test_native_and_grpc_over_tls);
    RUN_TEST(test_large_payloads);
    RUN_TEST(test_mutual_tls);
    RUN_TEST(test_bad_server_certificates);
    RUN_TEST(test_wrong_side_plaintext);
    RUN_TEST(test_garbage_client_hello);
    RUN_TEST(test_handshake_timeouts);
    RUN_TEST(test_reload_under_load);
    RUN_TEST(test_s_client);
    arpc_runtime_destroy(rt);
    return 0;
}

/*
 * arpc-echo-server: serves `echo` (answers the request bytes) and `sleep`
 * (payload: decimal milliseconds; answers after that long, suspending only
 * the request's coroutine), and the same two as the service of
 * proto/arpc/echo.proto, reachable over gRPC on the same port:
 * `arpc.echo.Echo/Echo` (the message as it came) and `arpc.echo.Echo/Sleep`
 * (EchoMsg.data: decimal milliseconds; answers the message after that long),
 * and two streams (include/arpc/stream.h): `arpc.echo.Echo/Stream` (every
 * message echoed as it comes, until the client half-closes; with the request
 * metadata "x-stream-mode: concat", as grpc_peer_server.py does, one answer
 * at the half-close holding every message's data: client streaming) and
 * `arpc.echo.Echo/Count` (one EchoMsg whose data is decimal N, answered with N
 * messages whose data are "1".."N").  `echo` and `sleep` are also proto/arpc/echo.thrift's
 * service over Thrift's framed binary protocol, on the same port (docs/thrift.md): the
 * same handlers read the argument struct and write the result struct when
 * arpc_request_protocol() says Thrift.
 * With --relay HOST:PORT, `echo` is forwarded to
 * another server through an arpc client, from inside the handler's
 * coroutine (the two-tier benchmark shape).  SIGINT/SIGTERM shut it down
 * gracefully.
 */
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>
#include <arpc/thrift.h>

#include "num.h" /* tools/common: the tools' number parser */

typedef struct options {
    const char *listen;
    const char *relay;
    unsigned threads;
    int64_t drain_ms;
    unsigned busy_poll_us;        /* arpc_loop_opts.busy_poll_us of every loop */
    unsigned write_early_answers; /* arpc_server_opts.write_early_answers */
    arpc_server_opts limits;      /* the connection limits of the flags below */
    const char *tls_listen;       /* --tls-listen; NULL: --listen's host, any port */
    arpc_server_tls_opts tls;     /* --tls-cert/--tls-key/--tls-client-ca */
} options;

static arpc_channel *relay_channel;

/* Copies every request metadata entry whose key starts with "x-echo-" into
 * the response metadata (what fits the 8 KiB bound). */
static void echo_metadata(arpc_request *req)
{
    size_t n = arpc_request_metadata_count(req);
    for (size_t i = 0; i < n; i++) {
        arpc_metadata_entry e;
        if (arpc_request_metadata_at(req, i, &e) == 0 && strncmp(e.key, "x-echo-", 7) == 0)
            (void)arpc_request_add_metadata(req, e.key, e.value, e.value_len);
    }
}

/* Thrift: the result struct of a `binary` method, {0: binary success}. */
static int thrift_result(arpc_request *req, const void *data, size_t len)
{
    arpc_thrift_writer w;
    arpc_thrift_writer_init(&w, arpc_request_response(req));
    arpc_thrift_write_field(&w, ARPC_THRIFT_STRING, 0);
    arpc_thrift_write_binary(&w, data, len);
    arpc_thrift_write_stop(&w);
    return w.err;
}

/* Thrift's Echo.echo(1: binary data): field 1 of the argument struct, the others skipped; a
 * missing one is empty, as Thrift's own servers read it. */
static int thrift_echo(arpc_request *req)
{
    arpc_thrift_reader r;
    arpc_thrift_reader_init(&r, arpc_request_data(req), arpc_request_len(req));
    arpc_thrift_type type;
    int16_t id;
    const void *data = NULL;
    size_t len = 0;
    while (arpc_thrift_read_field(&r, &type, &id)) {
        if (id == 1 && type == ARPC_THRIFT_STRING)
            data = arpc_thrift_read_binary(&r, &len);
        else
            arpc_thrift_skip(&r, type);
    }
    if (r.err != 0)
        return r.err; /* a PROTOCOL_ERROR TApplicationException */
    return thrift_result(req, data, len);
}

/* Thrift's Echo.sleep(1: i32 ms): answers the decimal text of ms after that long. */
static int thrift_sleep(arpc_request *req)
{
    arpc_thrift_reader r;
    arpc_thrift_reader_init(&r, arpc_request_data(req), arpc_request_len(req));
    arpc_thrift_type type;
    int16_t id;
    int32_t ms = 0;
    while (arpc_thrift_read_field(&r, &type, &id)) {
        if (id == 1 && type == ARPC_THRIFT_I32)
            ms = arpc_thrift_read_i32(&r);
        else
            arpc_thrift_skip(&r, type);
    }
    if (r.err != 0)
        return r.err;
    if (ms < 0 || ms > 3600 * 1000) {
        arpc_request_set_error(req, "sleep: ms must be 0..3600000");
        return ARPC_EINVAL;
    }
    arpc_coro_sleep_ms(ms);
    char text[16];
    int n = snprintf(text, sizeof(text), "%d", (int)ms);
    return thrift_result(req, text, (size_t)n);
}

/* Answers the payload as it came, with the x-echo-* metadata. */
static int handle_echo(arpc_request *req, void *user_data)
{
    if (arpc_request_protocol(req) == ARPC_PROTOCOL_THRIFT)
        return thrift_echo(req);
    echo_metadata(req);
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

static int handle_relay(arpc_request *req, void *user_data)
{
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = ARPC_NO_DEADLINE; /* the caller's deadline, through `parent` */
    opts.parent = req;
    int rc = arpc_call(relay_channel, "echo", arpc_request_data(req), arpc_request_len(req), &opts,
                       arpc_request_response(req));
    return rc;
}

static int handle_sleep(arpc_request *req, void *user_data)
{
    if (arpc_request_protocol(req) == ARPC_PROTOCOL_THRIFT)
        return thrift_sleep(req);
    char text[32];
    size_t len = arpc_request_len(req);
    if (len == 0 || len >= sizeof(text))
        goto bad;
    memcpy(text, arpc_request_data(req), len);
    text[len] = '\0';
    char *end;
    long ms = strtol(text, &end, 10);
    if (*end != '\0' || ms < 0 || ms > 3600 * 1000)
        goto bad;
    arpc_coro_sleep_ms(ms);
    return arpc_buf_append(arpc_request_response(req), text, len);
bad:
    arpc_request_set_error(req, "sleep: payload must be decimal milliseconds (0..3600000)");
    return 1;
}

/* EchoMsg{bytes data = 1}: the bytes of field 1 (tag 0x0a, a varint length),
 * the only field; an empty message has none.  @return 0 or -1 (not that). */
static int echo_msg_data(const uint8_t *p, size_t len, const uint8_t **data, size_t *data_len)
{
    *data = p;
    *data_len = 0;
    if (len == 0)
        return 0;
    if (p[0] != 0x0a)
        return -1;
    uint64_t n = 0;
    size_t i = 1;
    for (int shift = 0;; shift += 7) {
        if (i >= len || shift > 28)
            return -1;
        n |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i++] & 0x80))
            break;
    }
    if (n != len - i)
        return -1;
    *data = p + i;
    *data_len = (size_t)n;
    return 0;
}

/* arpc.echo.Echo/Sleep: Sleep with EchoMsg.data as the milliseconds, then the
 * message as it came. */
static int handle_echo_sleep(arpc_request *req, void *user_data)
{
    (void)user_data;
    const uint8_t *data;
    size_t len;
    char text[32];
    if (echo_msg_data(arpc_request_data(req), arpc_request_len(req), &data, &len) < 0 || len == 0 ||
        len >= sizeof(text))
        goto bad;
    memcpy(text, data, len);
    text[len] = '\0';
    char *end;
    long ms = strtol(text, &end, 10);
    if (*end != '\0' || ms < 0 || ms > 3600 * 1000)
        goto bad;
    arpc_coro_sleep_ms(ms);
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
bad:
    arpc_request_set_error(req, "Sleep: EchoMsg.data must be decimal milliseconds (0..3600000)");
    return 3; /* INVALID_ARGUMENT over gRPC */
}

/* Appends EchoMsg{data} to out.  @return 0 or ARPC_ENOMEM. */
static int echo_msg_append(arpc_buf *out, const void *data, size_t len)
{
    uint8_t head[11] = {0x0a};
    size_t n = 1;
    for (size_t v = len;; v >>= 7) {
        head[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f)
            break;
    }
    int rc = arpc_buf_append(out, head, n);
    return rc < 0 ? rc : arpc_buf_append(out, data, len);
}

/* Stream with "x-stream-mode: concat" (the client-streaming kind): one
 * EchoMsg at the half-close, its data every message's data in order. */
static int echo_stream_concat(arpc_stream *st, arpc_buf *msg)
{
    arpc_buf *all;
    int rc = arpc_buf_create(&all);
    if (rc < 0)
        return rc;
    while ((rc = arpc_stream_read(st, msg)) == 0) {
        const uint8_t *data;
        size_t len;
        if (echo_msg_data(arpc_buf_data(msg), arpc_buf_len(msg), &data, &len) < 0) {
            arpc_request_set_error(arpc_stream_request(st), "Stream: not an EchoMsg");
            rc = 3; /* INVALID_ARGUMENT over gRPC */
            break;
        }
        rc = arpc_buf_append(all, data, len);
        arpc_buf_clear(msg);
        if (rc < 0)
            break;
    }
    if (rc == ARPC_EEOS) {
        arpc_buf_clear(msg);
        rc = echo_msg_append(msg, arpc_buf_data(all), arpc_buf_len(all));
        if (rc == 0)
            rc = arpc_stream_write(st, arpc_buf_data(msg), arpc_buf_len(msg));
    }
    arpc_buf_destroy(all);
    return rc == ARPC_EEOS ? 0 : rc;
}

/* arpc.echo.Echo/Stream: each message back as it came, until the half-close
 * (with "x-stream-mode: concat", one answer at the half-close instead).  The
 * x-echo-* metadata goes ahead of the first message. */
static int handle_echo_stream(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_request *req = arpc_stream_request(st);
    echo_metadata(req);
    size_t mode_len = 0;
    const void *mode = arpc_request_metadata_get(req, "x-stream-mode", &mode_len);
    arpc_buf *msg;
    int rc = arpc_buf_create(&msg);
    if (rc < 0)
        return rc;
    if (mode != NULL && mode_len == 6 && memcmp(mode, "concat", 6) == 0) {
        rc = echo_stream_concat(st, msg);
        arpc_buf_destroy(msg);
        return rc;
    }
    while ((rc = arpc_stream_read(st, msg)) == 0) {
        rc = arpc_stream_write(st, arpc_buf_data(msg), arpc_buf_len(msg));
        arpc_buf_clear(msg);
        if (rc != 0)
            break;
    }
    arpc_buf_destroy(msg);
    return rc == ARPC_EEOS ? 0 : rc;
}

/* The largest N Count sends: enough for any test of flow control (a slow
 * reader stalls the writer long before), small enough to end by itself. */
#define COUNT_MAX 100000000L

/* EchoMsg{data: decimal n}, into buf; returns its length. */
static size_t count_msg(uint8_t buf[16], long n)
{
    int len = snprintf((char *)buf + 2, 14, "%ld", n);
    buf[0] = 0x0a;
    buf[1] = (uint8_t)len;
    return (size_t)len + 2;
}

/* arpc.echo.Echo/Count: one EchoMsg with decimal N, then N messages "1".."N". */
static int handle_echo_count(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_request *req = arpc_stream_request(st);
    arpc_buf *msg;
    int rc = arpc_buf_create(&msg);
    if (rc < 0)
        return rc;
    const uint8_t *data;
    size_t len;
    char text[16];
    long n = -1;
    if ((rc = arpc_stream_read(st, msg)) == 0 &&
        echo_msg_data(arpc_buf_data(msg), arpc_buf_len(msg), &data, &len) == 0 && len > 0 &&
        len < sizeof(text)) {
        memcpy(text, data, len);
        text[len] = '\0';
        char *end;
        n = strtol(text, &end, 10);
        if (*end != '\0' || n > COUNT_MAX)
            n = -1;
    }
    arpc_buf_destroy(msg);
    if (rc < 0 && rc != ARPC_EEOS)
        return rc;
    if (n < 0) {
        arpc_request_set_error(req, "Count: EchoMsg.data must be decimal N (0..100000000)");
        return 3; /* INVALID_ARGUMENT over gRPC */
    }
    for (long i = 1; i <= n; i++) {
        uint8_t out[16];
        if ((rc = arpc_stream_write(st, out, count_msg(out, i))) != 0)
            return rc == ARPC_EEOS ? 0 : rc;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: arpc-echo-server --listen HOST:PORT [--threads N] [--relay HOST:PORT]\n"
            "           [--drain-ms N] [--busy-poll-us N] [--write-early N] [--max-conns N]\n"
            "           [--first-frame-timeout-ms N] [--frame-timeout-ms N] [--idle-timeout-ms N]\n"
            "           [--max-unwritten-bytes N]\n"
            "           [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]\n"
            "            [--tls-listen HOST:PORT]]\n"
            "  --threads       event loops (default: one per CPU)\n"
            "  --drain-ms      graceful shutdown waits this long for requests (default 5000)\n"
            "  --busy-poll-us  each loop polls this long before it sleeps (0..1000000, default 0)\n"
            "  --write-early   write answers once this many are queued (default 32; 0: once\n"
            "                  per loop iteration)\n"
            "  --max-conns     connections open at once; more are refused with GOAWAY\n"
            "                  (default: from RLIMIT_NOFILE, leaving an eighth; 0: no limit)\n"
            "  --first-frame-timeout-ms  close a connection with no complete frame this long\n"
            "                  after it was accepted (default 10000; 0: never)\n"
            "  --frame-timeout-ms  close a connection whose frame stays incomplete this long\n"
            "                  after its first byte (default 30000; 0: never)\n"
            "  --idle-timeout-ms   close a connection with no traffic this long (default\n"
            "                  60000; 0: never)\n"
            "  --max-unwritten-bytes  stop reading a connection with this much unwritten\n"
            "                  output until its client reads (default 4194304; 0: no limit)\n"
            "  --tls-cert, --tls-key  also listen with TLS (PEM chain and key), beside the\n"
            "                  plaintext listener; prints \"tls listening on HOST:PORT\"\n"
            "  --tls-client-ca mutual TLS: clients need a certificate from a CA in FILE\n"
            "  --tls-listen    the TLS listener's address (default: --listen's host, any port)\n");
    exit(2);
}

/* A decimal integer in [0, max], or usage(). */
static uint64_t parse_count(const char *flag, const char *value, long long max)
{
    long long v;
    if (tool_parse_num(value, 0, max, 0, &v) != 0) {
        fprintf(stderr, "arpc-echo-server: %s must be 0..%lld, got '%s'\n", flag, max, value);
        usage();
    }
    return (uint64_t)v;
}

/* The connection-limit flags.  @return false if `flag` is none of them. */
static bool parse_limit(const char *flag, const char *value, arpc_server_opts *limits)
{
    const long long day_ms = 24LL * 3600 * 1000;
    if (strcmp(flag, "--max-conns") == 0)
        limits->max_connections = (uint32_t)parse_count(flag, value, UINT32_MAX);
    else if (strcmp(flag, "--first-frame-timeout-ms") == 0)
        limits->first_frame_timeout_ms = (int64_t)parse_count(flag, value, day_ms);
    else if (strcmp(flag, "--frame-timeout-ms") == 0)
        limits->frame_timeout_ms = (int64_t)parse_count(flag, value, day_ms);
    else if (strcmp(flag, "--idle-timeout-ms") == 0)
        limits->idle_timeout_ms = (int64_t)parse_count(flag, value, day_ms);
    else if (strcmp(flag, "--max-unwritten-bytes") == 0)
        limits->max_unwritten_bytes = parse_count(flag, value, LLONG_MAX);
    else
        return false;
    return true;
}

static void parse(int argc, char **argv, options *o)
{
    o->listen = NULL;
    o->relay = NULL;
    o->threads = 0;
    o->drain_ms = 5000;
    o->busy_poll_us = 0;
    arpc_server_opts defaults;
    arpc_server_opts_init(&defaults);
    o->write_early_answers = defaults.write_early_answers;
    o->limits = defaults;
    o->tls_listen = NULL;
    arpc_server_tls_opts_init(&o->tls);
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *flag = argv[i];
        const char *value = argv[++i];
        if (strcmp(flag, "--listen") == 0)
            o->listen = value;
        else if (strcmp(flag, "--threads") == 0)
            o->threads = (unsigned)parse_count(flag, value, 1024);
        else if (strcmp(flag, "--relay") == 0)
            o->relay = value;
        else if (strcmp(flag, "--drain-ms") == 0)
            o->drain_ms = (int64_t)parse_count(flag, value, 3600 * 1000);
        else if (strcmp(flag, "--busy-poll-us") == 0)
            o->busy_poll_us = (unsigned)parse_count(flag, value, 1000000);
        else if (strcmp(flag, "--write-early") == 0)
            o->write_early_answers = (unsigned)parse_count(flag, value, UINT32_MAX);
        else if (strcmp(flag, "--tls-cert") == 0)
            o->tls.cert_file = value;
        else if (strcmp(flag, "--tls-key") == 0)
            o->tls.key_file = value;
        else if (strcmp(flag, "--tls-client-ca") == 0)
            o->tls.client_ca_file = value;
        else if (strcmp(flag, "--tls-listen") == 0)
            o->tls_listen = value;
        else if (!parse_limit(flag, value, &o->limits))
            usage();
    }
    if (o->listen == NULL)
        usage();
    /* A certificate without its key (or the reverse) is a mistake, not plaintext. */
    bool tls = o->tls.cert_file != NULL || o->tls.key_file != NULL;
    if (tls && (o->tls.cert_file == NULL || o->tls.key_file == NULL))
        usage();
    if (!tls && (o->tls.client_ca_file != NULL || o->tls_listen != NULL))
        usage();
}

/* "WHAT HOST:PORT" on stdout with the bound port in place of the one asked for. */
static void print_listening(const char *what, const char *address, int port)
{
    char shown[300];
    snprintf(shown, sizeof(shown), "%s", address);
    char *colon = strrchr(shown, ':');
    if (colon != NULL)
        snprintf(colon + 1, sizeof(shown) - (size_t)(colon + 1 - shown), "%d", port);
    printf("%s %s\n", what, shown);
    fflush(stdout);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "error: %s: %s: %s\n", arpc_err_name(rc), what, arpc_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    options o;
    parse(argc, argv, &o);

    /* Loop threads inherit this mask, so only sigwait() below sees the signals. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    arpc_runtime_opts rt_opts;
    arpc_runtime_opts_init(&rt_opts);
    rt_opts.loops = o.threads;
    rt_opts.loop.busy_poll_us = o.busy_poll_us;
    arpc_runtime *rt;
    int rc = arpc_runtime_create(&rt_opts, &rt);
    if (rc < 0)
        return fail("runtime", rc);
    if (o.relay != NULL && (rc = arpc_channel_create(rt, o.relay, NULL, &relay_channel)) < 0)
        return fail(o.relay, rc);

    arpc_server *srv;
    arpc_server_opts srv_opts = o.limits;
    srv_opts.write_early_answers = o.write_early_answers;
    if ((rc = arpc_server_create(rt, &srv_opts, &srv)) < 0)
        return fail("server", rc);
    arpc_server_register(srv, "echo", o.relay ? handle_relay : handle_echo, NULL);
    arpc_server_register(srv, "sleep", handle_sleep, NULL);
    arpc_server_register(srv, "arpc.echo.Echo/Echo", handle_echo, NULL);
    arpc_server_register(srv, "arpc.echo.Echo/Sleep", handle_echo_sleep, NULL);
    arpc_server_register_stream(srv, "arpc.echo.Echo/Stream", handle_echo_stream, NULL);
    arpc_server_register_stream(srv, "arpc.echo.Echo/Count", handle_echo_count, NULL);
    if ((rc = arpc_server_listen(srv, o.listen)) < 0)
        return fail(o.listen, rc);

    char tls_listen[300];
    if (o.tls.cert_file != NULL) {
        /* The plaintext listener's host with port 0 unless --tls-listen says otherwise. */
        if (o.tls_listen == NULL) {
            snprintf(tls_listen, sizeof(tls_listen), "%s", o.listen);
            char *colon = strrchr(tls_listen, ':');
            if (colon != NULL)
                snprintf(colon + 1, sizeof(tls_listen) - (size_t)(colon + 1 - tls_listen), "0");
            o.tls_listen = tls_listen;
        }
        if ((rc = arpc_server_listen_tls(srv, o.tls_listen, &o.tls)) < 0)
            return fail(o.tls_listen, rc);
    }

    print_listening("listening on", o.listen, arpc_server_port(srv));
    if (o.tls.cert_file != NULL)
        print_listening("tls listening on", o.tls_listen, arpc_server_tls_port(srv));

    int sig = 0;
    sigwait(&signals, &sig);
    rc = arpc_server_shutdown(srv, o.drain_ms);
    arpc_server_stats stats;
    arpc_server_get_stats(srv, &stats);
    fprintf(stderr, "shutting down on signal %d: %llu requests served, %llu canceled%s\n", sig,
            (unsigned long long)stats.requests, (unsigned long long)stats.canceled,
            rc == ARPC_ETIMEDOUT ? " (drain deadline passed with requests running)" : "");
    fprintf(stderr,
            "connections closed by limits: %llu refused (max-conns), %llu first-frame timeouts, "
            "%llu frame timeouts, %llu idle timeouts; %llu read pauses (max-unwritten-bytes)\n",
            (unsigned long long)stats.refused_connections,
            (unsigned long long)stats.first_frame_timeouts,
            (unsigned long long)stats.frame_timeouts, (unsigned long long)stats.idle_timeouts,
            (unsigned long long)stats.read_pauses);
    if (o.tls.cert_file != NULL)
        fprintf(stderr, "tls: %llu handshakes, %llu failed, %llu timed out\n",
                (unsigned long long)stats.tls_handshakes,
                (unsigned long long)stats.tls_handshake_failures,
                (unsigned long long)stats.tls_handshake_timeouts);
    arpc_server_destroy(srv);
    arpc_channel_destroy(relay_channel);
    arpc_runtime_destroy(rt);
    return 0;
}

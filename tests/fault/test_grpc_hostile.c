/*
 * Hostile HTTP/2 clients against arpc's gRPC server (docs/grpc.md, "Hostile peers"): raw
 * sockets writing frames by hand.  Each case checks the HTTP/2 error code the peer gets
 * (GOAWAY for the connection, RST_STREAM for one stream), the server's counter, a log line,
 * and that a well-behaved gRPC call on another connection still succeeds.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "fault_util.h"
#include "test.h"
#include "test_stats.h"

enum { T_DATA = 0, T_HEADERS = 1, T_RST = 3, T_SETTINGS = 4, T_PING = 6, T_GOAWAY = 7 };

enum { F_END_STREAM = 1, F_ACK = 1, F_END_HEADERS = 4 };

enum {
    E_NO_ERROR = 0,
    E_PROTOCOL = 1,
    E_FLOW_CONTROL = 3,
    E_FRAME_SIZE = 6,
    E_REFUSED = 7,
    E_CANCEL = 8,
    E_CALM = 11
};

/* ---- log lines ------------------------------------------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];

static void on_log(arpc_log_level level, const char *message, void *user_data)
{
    (void)level;
    (void)user_data;
    pthread_mutex_lock(&log_mu);
    size_t used = strlen(log_text);
    snprintf(log_text + used, sizeof(log_text) - used, "%s\n", message);
    pthread_mutex_unlock(&log_mu);
}

static bool logged(const char *what)
{
    pthread_mutex_lock(&log_mu);
    bool found = strstr(log_text, what) != NULL;
    pthread_mutex_unlock(&log_mu);
    return found;
}

static void log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    log_text[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

/* ---- raw HTTP/2 ------------------------------------------------------------------------ */

typedef struct h2 {
    int fd;
    uint8_t in[1 << 16];
    size_t in_len;
    uint8_t out[1 << 20];
    size_t out_len;
} h2;

typedef struct frame {
    uint8_t type, flags;
    uint32_t sid;
    uint32_t len;
    uint8_t payload[64];
} frame;

static void put_frame(h2 *c, uint8_t type, uint8_t flags, uint32_t sid, const void *p, size_t len)
{
    ASSERT_TRUE(c->out_len + 9 + len <= sizeof(c->out));
    uint8_t *o = c->out + c->out_len;
    o[0] = (uint8_t)(len >> 16);
    o[1] = (uint8_t)(len >> 8);
    o[2] = (uint8_t)len;
    o[3] = type;
    o[4] = flags;
    o[5] = (uint8_t)(sid >> 24);
    o[6] = (uint8_t)(sid >> 16);
    o[7] = (uint8_t)(sid >> 8);
    o[8] = (uint8_t)sid;
    if (len)
        memcpy(o + 9, p, len);
    c->out_len += 9 + len;
}

static void send_out(h2 *c)
{
    size_t off = 0;
    while (off < c->out_len) {
        ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close first: what it sent is still readable */
        off += (size_t)n;
    }
    c->out_len = 0;
}

/* HPACK: an integer with an n-bit prefix, and a literal header without indexing. */
static size_t hpack_int(uint8_t *p, size_t v, int bits)
{
    size_t max = (1u << bits) - 1, n = 0;
    if (v < max) {
        p[n++] = (uint8_t)v;
        return n;
    }
    p[n++] = (uint8_t)max;
    for (v -= max; v >= 128; v >>= 7)
        p[n++] = (uint8_t)(v % 128 + 128);
    p[n++] = (uint8_t)v;
    return n;
}

static size_t hpack_lit(uint8_t *p, const char *k, const char *v, size_t vlen)
{
    size_t n = 0, kl = strlen(k);
    p[n++] = 0;
    n += hpack_int(p + n, kl, 7);
    memcpy(p + n, k, kl);
    n += kl;
    n += hpack_int(p + n, vlen, 7);
    memcpy(p + n, v, vlen);
    return n + vlen;
}

/* A gRPC request's HEADERS for /echo; `extra` (may be NULL) adds one more header. */
static void put_request(h2 *c, uint32_t sid, const char *timeout, size_t big, bool end)
{
    static uint8_t block[40000];
    static char value[30000];
    size_t n = 0;
    n += hpack_lit(block + n, ":method", "POST", 4);
    n += hpack_lit(block + n, ":scheme", "http", 4);
    n += hpack_lit(block + n, ":path", "/echo", 5);
    n += hpack_lit(block + n, ":authority", "x", 1);
    n += hpack_lit(block + n, "content-type", "application/grpc", 16);
    n += hpack_lit(block + n, "te", "trailers", 8);
    if (timeout)
        n += hpack_lit(block + n, "grpc-timeout", timeout, strlen(timeout));
    if (big) {
        memset(value, 'v', big);
        n += hpack_lit(block + n, "x-big", value, big);
    }
    /* One HEADERS frame: within the server's 16 KiB frame size only when small, so a big
     * block goes as HEADERS and CONTINUATION (type 9). */
    size_t first = n < 16384 ? n : 16384;
    put_frame(c, T_HEADERS, (uint8_t)((first == n ? F_END_HEADERS : 0) | (end ? F_END_STREAM : 0)),
              sid, block, first);
    for (size_t off = first; off < n; off += 16384) {
        size_t len = n - off < 16384 ? n - off : 16384;
        put_frame(c, 9, off + len == n ? F_END_HEADERS : 0, sid, block + off, len);
    }
}

/* One gRPC message of `len` bytes in DATA frames of at most 16 KiB. */
static void put_message(h2 *c, uint32_t sid, size_t len, bool end)
{
    static uint8_t msg[1 << 17];
    msg[0] = 0;
    msg[1] = (uint8_t)(len >> 24);
    msg[2] = (uint8_t)(len >> 16);
    msg[3] = (uint8_t)(len >> 8);
    msg[4] = (uint8_t)len;
    memset(msg + 5, 'm', len);
    size_t total = len + 5;
    for (size_t off = 0; off < total; off += 16384) {
        size_t n = total - off < 16384 ? total - off : 16384;
        put_frame(c, T_DATA, off + n == total && end ? F_END_STREAM : 0, sid, msg + off, n);
    }
}

static h2 *h2_open(int port, const uint8_t *settings, size_t settings_len)
{
    h2 *c = calloc(1, sizeof(*c));
    ASSERT_TRUE(c != NULL);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    memcpy(c->out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    c->out_len = 24;
    put_frame(c, T_SETTINGS, 0, 0, settings, settings_len);
    put_frame(c, T_SETTINGS, F_ACK, 0, NULL, 0); /* of the server's, which comes at once */
    send_out(c);
    return c;
}

static void h2_close(h2 *c)
{
    close(c->fd);
    free(c);
}

/* The next frame within `timeout_ms`.  @return false on timeout or end of stream. */
static bool next_frame(h2 *c, frame *f, int timeout_ms)
{
    for (;;) {
        if (c->in_len >= 9) {
            uint32_t len = (uint32_t)c->in[0] << 16 | (uint32_t)c->in[1] << 8 | c->in[2];
            if (c->in_len >= 9 + len) {
                f->type = c->in[3];
                f->flags = c->in[4];
                f->sid = ((uint32_t)c->in[5] << 24 | (uint32_t)c->in[6] << 16 |
                          (uint32_t)c->in[7] << 8 | c->in[8]) &
                         0x7fffffffu;
                f->len = len;
                memcpy(f->payload, c->in + 9, len < sizeof(f->payload) ? len : sizeof(f->payload));
                memmove(c->in, c->in + 9 + len, c->in_len - 9 - len);
                c->in_len -= 9 + len;
                return true;
            }
        }
        if (c->in_len == sizeof(c->in)) {
            c->in_len = 0; /* a big DATA frame not looked at: drop the bytes */
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            return false;
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
        if (n <= 0)
            return false;
        c->in_len += (size_t)n;
    }
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads until a GOAWAY: its error code, or -1 if none came within 5 s. */
static long wait_goaway(h2 *c)
{
    frame f;
    while (next_frame(c, &f, 5000)) {
        if (f.type == T_GOAWAY && f.len >= 8)
            return (long)be32(f.payload + 4);
    }
    return -1;
}

/* Reads until a RST_STREAM on `sid`: its error code, or -1 (none in `timeout_ms`). */
static long wait_rst(h2 *c, uint32_t sid, int timeout_ms)
{
    frame f;
    while (next_frame(c, &f, timeout_ms)) {
        if (f.type == T_RST && f.sid == sid && f.len >= 4)
            return (long)be32(f.payload);
    }
    return -1;
}

/* ---- the server and the well-behaved call ---------------------------------------------- */

typedef struct fixture {
    arpc_runtime *rt;
    arpc_server *srv;
    int port;
} fixture;

static void fixture_start(fixture *fx, const arpc_server_opts *opts)
{
    log_reset();
    fx->rt = fault_runtime(2);
    fx->srv = fault_echo_server(fx->rt, opts);
    fx->port = arpc_server_port(fx->srv);
}

static arpc_server_stats stats_of(const fixture *fx)
{
    arpc_server_stats st;
    arpc_server_get_stats(fx->srv, &st);
    return st;
}

/* A gRPC call on a connection of its own succeeds while the hostile one is served. */
static void good_call_succeeds(const fixture *fx)
{
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    o.protocol = ARPC_PROTOCOL_GRPC;
    arpc_channel *ch = fault_channel(fx->rt, fx->port, &o);
    ASSERT_OK(fault_echo_call(ch, 5000));
    arpc_channel_destroy(ch);
}

static void fixture_stop(fixture *fx)
{
    arpc_server_destroy(fx->srv);
    arpc_runtime_destroy(fx->rt);
}

/* ---- the cases ------------------------------------------------------------------------- */

static void test_garbage_after_the_preface(void)
{
    fixture fx;
    fixture_start(&fx, NULL);
    h2 *c = h2_open(fx.port, NULL, 0);
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\xff\xff\xff\xff\xff";
    memcpy(c->out, junk, sizeof(junk));
    c->out_len = sizeof(junk);
    send_out(c);
    good_call_succeeds(&fx);
    /* "GET " read as a frame header announces 4.6 MB: over SETTINGS_MAX_FRAME_SIZE. */
    ASSERT_EQ(wait_goaway(c), E_FRAME_SIZE);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(fx.srv, protocol_errors, 1, 5000));
    ASSERT_TRUE(logged("GOAWAY(FRAME_SIZE_ERROR)"));
    h2_close(c);
    fixture_stop(&fx);
}

static void test_bad_settings(void)
{
    fixture fx;
    fixture_start(&fx, NULL);
    /* SETTINGS_INITIAL_WINDOW_SIZE 2^31: over the largest window (RFC 9113 6.5.2). */
    static const uint8_t bad[6] = {0, 4, 0x80, 0, 0, 0};
    h2 *c = h2_open(fx.port, bad, sizeof(bad));
    good_call_succeeds(&fx);
    ASSERT_EQ(wait_goaway(c), E_FLOW_CONTROL);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(fx.srv, protocol_errors, 1, 5000));
    ASSERT_TRUE(logged("GOAWAY(FLOW_CONTROL_ERROR)"));
    h2_close(c);
    fixture_stop(&fx);
}

/* `kind` 0: PINGs, 1: SETTINGS, 2: empty DATA on an open stream, 3: HEADERS + RST_STREAM. */
static void flood(int kind, const char *log_kind)
{
    fixture fx;
    fixture_start(&fx, NULL);
    h2 *c = h2_open(fx.port, NULL, 0);
    static const uint8_t opaque[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t cancel[4] = {0, 0, 0, E_CANCEL};
    if (kind == 2)
        put_request(c, 1, NULL, 0, false);
    for (uint32_t i = 0; i < 3000; i++) {
        if (kind == 0)
            put_frame(c, T_PING, 0, 0, opaque, 8);
        else if (kind == 1)
            put_frame(c, T_SETTINGS, 0, 0, NULL, 0);
        else if (kind == 2)
            put_frame(c, T_DATA, 0, 1, NULL, 0);
        else {
            put_request(c, 2 * i + 1, NULL, 0, false);
            put_frame(c, T_RST, 0, 2 * i + 1, cancel, 4);
        }
    }
    send_out(c);
    ASSERT_EQ(wait_goaway(c), E_CALM);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(fx.srv, flood_closes, 1, 5000));
    ASSERT_TRUE(logged(log_kind));
    ASSERT_TRUE(logged("ENHANCE_YOUR_CALM"));
    ASSERT_EQ(stats_of(&fx).protocol_errors, 0);
    good_call_succeeds(&fx);
    h2_close(c);
    fixture_stop(&fx);
}

static void test_ping_flood(void)
{
    flood(0, "PING flood");
}

static void test_settings_flood(void)
{
    flood(1, "SETTINGS flood");
}

static void test_empty_data_flood(void)
{
    flood(2, "empty DATA flood");
}

static void test_rapid_reset(void)
{
    flood(3, "RST_STREAM flood");
}

static void test_oversized_header_block(void)
{
    fixture fx;
    fixture_start(&fx, NULL);
    h2 *c = h2_open(fx.port, NULL, 0);
    put_request(c, 1, NULL, 20000, false); /* over SETTINGS_MAX_HEADER_LIST_SIZE (16 KiB) */
    put_request(c, 3, NULL, 12000, false); /* over the 8 KiB metadata bound */
    put_message(c, 3, 2, true);
    send_out(c);
    /* Stream 1: Trailers-Only RESOURCE_EXHAUSTED, then RST_STREAM(NO_ERROR). */
    ASSERT_EQ(wait_rst(c, 1, 5000), E_NO_ERROR);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(fx.srv, oversized_headers, 2, 5000));
    ASSERT_TRUE(logged("headers over the limit"));
    good_call_succeeds(&fx);
    ASSERT_EQ(stats_of(&fx).protocol_errors, 0);
    h2_close(c);
    fixture_stop(&fx);
}

static void test_stream_that_never_ends(void)
{
    arpc_server_opts o;
    arpc_server_opts_init(&o);
    o.frame_timeout_ms = 400;
    fixture fx;
    fixture_start(&fx, &o);
    h2 *c = h2_open(fx.port, NULL, 0);
    put_request(c, 1, NULL, 0, false);
    /* Half of a message: its prefix announces 100 bytes, 50 come, never the rest. */
    uint8_t half[55] = {0, 0, 0, 0, 100};
    put_frame(c, T_DATA, 0, 1, half, sizeof(half));
    put_request(c, 3, "200m", 0, false); /* a deadline, no message at all */
    send_out(c);
    int64_t t0 = test_now_ms();
    ASSERT_EQ(wait_rst(c, 3, 5000), E_NO_ERROR); /* DEADLINE_EXCEEDED, then the reset */
    ASSERT_EQ(wait_rst(c, 1, 5000), E_CANCEL);
    ASSERT_GE(test_now_ms() - t0, 400);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(fx.srv, stream_timeouts, 2, 5000));
    ASSERT_TRUE(logged("incomplete past its deadline"));
    good_call_succeeds(&fx);
    ASSERT_EQ(stats_of(&fx).protocol_errors, 0);
    h2_close(c);
    fixture_stop(&fx);
}

static void test_over_max_concurrent_streams(void)
{
    arpc_server_opts o;
    arpc_server_opts_init(&o);
    o.max_in_flight_per_connection = 2; /* SETTINGS_MAX_CONCURRENT_STREAMS 2 */
    fixture fx;
    fixture_start(&fx, &o);
    h2 *c = h2_open(fx.port, NULL, 0);
    for (uint32_t sid = 1; sid <= 5; sid += 2)
        put_request(c, sid, NULL, 0, false);
    send_out(c);
    /* nghttp2 makes it a connection error once our SETTINGS are ACKed (RFC 9113 5.1.2
     * allows a stream error; see docs/grpc.md). */
    ASSERT_EQ(wait_goaway(c), E_PROTOCOL);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(fx.srv, protocol_errors, 1, 5000));
    ASSERT_TRUE(logged("GOAWAY(PROTOCOL_ERROR)"));
    good_call_succeeds(&fx);
    h2_close(c);
    fixture_stop(&fx);
}

static void test_window_zero_client(void)
{
    arpc_server_opts o;
    arpc_server_opts_init(&o);
    o.max_unwritten_bytes = 256 * 1024;
    fixture fx;
    fixture_start(&fx, &o);
    /* SETTINGS_INITIAL_WINDOW_SIZE 0: the server may send no DATA, answers stay held. */
    static const uint8_t zero[6] = {0, 4, 0, 0, 0, 0};
    h2 *c = h2_open(fx.port, zero, sizeof(zero));
    for (uint32_t i = 0; i < 24; i++) {
        put_request(c, 2 * i + 1, NULL, 0, false);
        put_message(c, 2 * i + 1, 32 * 1024, true); /* echoed: 32 KiB held each */
    }
    send_out(c);
    long code = -1;
    frame f;
    while (code != E_REFUSED && next_frame(c, &f, 5000)) {
        if (f.type == T_RST && f.len >= 4)
            code = (long)be32(f.payload);
    }
    ASSERT_EQ(code, E_REFUSED);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(fx.srv, refused_streams, 1, 5000));
    arpc_server_stats st = stats_of(&fx);
    /* 256 KiB / 32 KiB: about 8 answers held, the rest refused unseen. */
    ASSERT_LE(st.requests, 12);
    ASSERT_TRUE(logged("REFUSED_STREAM"));
    good_call_succeeds(&fx);
    h2_close(c);
    fixture_stop(&fx);
}

int main(void)
{
    arpc_log_set_handler(on_log, NULL);
    RUN_TEST(test_garbage_after_the_preface);
    RUN_TEST(test_bad_settings);
    RUN_TEST(test_ping_flood);
    RUN_TEST(test_settings_flood);
    RUN_TEST(test_empty_data_flood);
    RUN_TEST(test_rapid_reset);
    RUN_TEST(test_oversized_header_block);
    RUN_TEST(test_stream_that_never_ends);
    RUN_TEST(test_over_max_concurrent_streams);
    RUN_TEST(test_window_zero_client);
    arpc_log_set_handler(NULL, NULL);
    return 0;
}

/*
 * gRPC over HTTP/2 (src/proto/grpc/session.c): a client session and a server session back to
 * back in memory.  Unary calls with metadata both ways and a deadline, UNIMPLEMENTED, an
 * over-limit message then a normal call on the same connection, 4 MiB both ways in random
 * chunks, 1000 concurrent streams over a 100-stream limit, cancel, GOAWAY with a stream
 * above the last id, graceful shutdown, PING/ACK and the PING budget, the rules the server
 * enforces (415, compressed flag, grpc-encoding), a small exchange split at every byte, the
 * preface detector and hostile input (garbage after the preface, oversized header blocks);
 * no allocation per call in steady state, and answers handed out early (early_answers).
 */
#include <nghttp2/nghttp2.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "grpc_session_pair.h"

static struct pair *pair_new(const arpc__grpc_session_opts *so, const arpc__grpc_session_opts *co)
{
    struct pair *p = malloc(sizeof(*p));
    ASSERT_TRUE(p != NULL);
    ASSERT_OK(pair_init(p, so, co));
    return p;
}

static void pair_free(struct pair *p)
{
    pair_fini(p);
    free(p);
}

static void test_preface_detect(void)
{
    const char *pre = ARPC__H2_PREFACE;
    ASSERT_EQ(arpc__h2_preface_detect("", 0), ARPC__H2_NEED_MORE);
    for (size_t i = 1; i < ARPC__H2_PREFACE_LEN; i++)
        ASSERT_EQ(arpc__h2_preface_detect(pre, i), ARPC__H2_NEED_MORE);
    ASSERT_EQ(arpc__h2_preface_detect(pre, ARPC__H2_PREFACE_LEN), ARPC__H2_YES);
    ASSERT_EQ(arpc__h2_preface_detect("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nxyz", 27), ARPC__H2_YES);
    ASSERT_EQ(arpc__h2_preface_detect("PRX", 3), ARPC__H2_NO);
    ASSERT_EQ(arpc__h2_preface_detect("GET / HTTP/1.1\r\n", 16), ARPC__H2_NO);
    ASSERT_EQ(arpc__h2_preface_detect("\xa7\x01", 2), ARPC__H2_NO); /* not the native magic */
}

static void test_unary_metadata_deadline(void)
{
    struct pair *p = pair_new(NULL, NULL);
    const arpc__grpc_md md[] = {{"x-echo-a", 8, "va", 2}, {"x-id-bin", 8, "\x01\x00\x02", 3}};
    int32_t id;
    int64_t before = arpc__now_ns();
    ASSERT_OK(pair_call(p, ECHO_PATH, "hello", 5, md, 2, 2500 * 1000000LL, &id));
    ASSERT_OK(pair_pump(p));
    struct srv_stream *ss = &p->ss[id];
    struct cli_stream *cs = &p->cs[id];
    ASSERT_TRUE(ss->requested && ss->half_closed && ss->closed && !ss->canceled);
    ASSERT_STREQ(ss->md_copy, "x-echo-a=va;x-id-bin=010002;");
    ASSERT_GE(ss->deadline_ns, before + 2500 * 1000000LL);
    ASSERT_LE(ss->deadline_ns, arpc__now_ns() + 2500 * 1000000LL);
    ASSERT_TRUE(cs->headers && cs->closed && !cs->refused && !cs->canceled);
    ASSERT_EQ(cs->grpc_status, 0);
    ASSERT_EQ(cs->messages, 1);
    ASSERT_EQ(cs->msg.len, 5);
    ASSERT_MEMEQ(arpc__buf_data(&cs->msg), "hello", 5);
    ASSERT_STREQ(cs->md_copy, "x-echo-h=hv;x-raw-bin=00ff;");
    ASSERT_STREQ(cs->trl_copy, "x-trailer=tv;");
    ASSERT_EQ(arpc__grpc_session_stream_count(p->cli), 0);
    ASSERT_EQ(arpc__grpc_session_stream_count(p->srv), 0);

    /* No deadline: none reported. */
    ASSERT_OK(pair_call(p, ECHO_PATH, "", 0, NULL, 0, -1, &id));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->ss[id].deadline_ns, ARPC__NO_DEADLINE);
    ASSERT_TRUE(p->cs[id].closed);
    ASSERT_EQ(p->cs[id].grpc_status, 0);
    ASSERT_EQ(p->cs[id].msg.len, 0);
    ASSERT_EQ(p->cs[id].messages, 1);
    pair_free(p);
}

static void test_unimplemented_trailers_only(void)
{
    struct pair *p = pair_new(NULL, NULL);
    int32_t id;
    ASSERT_OK(pair_call(p, "/test.Echo/Nope", "x", 1, NULL, 0, -1, &id));
    ASSERT_OK(pair_pump(p));
    struct cli_stream *cs = &p->cs[id];
    ASSERT_TRUE(cs->closed);
    ASSERT_FALSE(cs->headers); /* Trailers-Only: no initial metadata event */
    ASSERT_EQ(cs->grpc_status, ARPC__GRPC_UNIMPLEMENTED);
    ASSERT_STREQ(cs->message, "Method not found!");
    ASSERT_TRUE(p->ss[id].closed);
    ASSERT_EQ(p->ss[id].close_status, ARPC__GRPC_UNIMPLEMENTED);
    ASSERT_FALSE(p->ss[id].canceled);
    pair_free(p);
}

static void test_status_message_percent_encoded(void)
{
    struct pair *p = pair_new(NULL, NULL);
    p->defer = true;
    int32_t id;
    ASSERT_OK(pair_call(p, ECHO_PATH, "x", 1, NULL, 0, -1, &id));
    ASSERT_OK(pair_pump(p));
    const char msg[] = "50% off\n\xc3\xa9";
    ASSERT_OK(arpc__grpc_session_send_message(p->srv, id, "ab", 2));
    ASSERT_OK(arpc__grpc_session_send_status(p->srv, id, ARPC__GRPC_ABORTED, msg, sizeof(msg) - 1,
                                             NULL, 0));
    ASSERT_ERR(arpc__grpc_session_send_message(p->srv, id, "ab", 2), ARPC_EINVAL);
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->cs[id].grpc_status, ARPC__GRPC_ABORTED);
    ASSERT_STREQ(p->cs[id].message, msg);
    ASSERT_TRUE(p->cs[id].headers);
    ASSERT_EQ(p->cs[id].msg.len, 2);
    pair_free(p);
}

static void test_over_limit_then_normal_call(void)
{
    struct pair *p = pair_new(NULL, NULL);
    size_t big = 5u * 1024 * 1024;
    uint8_t *data = malloc(big);
    ASSERT_TRUE(data != NULL);
    memset(data, 'z', big);
    int32_t id1, id2;
    ASSERT_OK(pair_call(p, ECHO_PATH, data, big, NULL, 0, -1, &id1));
    ASSERT_OK(pair_pump(p));
    ASSERT_TRUE(p->cs[id1].closed);
    ASSERT_EQ(p->cs[id1].grpc_status, ARPC__GRPC_RESOURCE_EXHAUSTED);
    ASSERT_TRUE(p->ss[id1].closed && p->ss[id1].canceled);
    ASSERT_EQ(p->ss[id1].close_status, ARPC__GRPC_RESOURCE_EXHAUSTED);
    ASSERT_EQ(p->ss[id1].messages, 0);
    /* The connection lives on. */
    ASSERT_OK(pair_call(p, ECHO_PATH, data, 1000, NULL, 0, -1, &id2));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->cs[id2].grpc_status, 0);
    ASSERT_EQ(p->cs[id2].msg.len, 1000);
    free(data);
    pair_free(p);
}

static void test_4mib_round_trip_random_chunks(void)
{
    struct pair *p = pair_new(NULL, NULL);
    p->chunk_max = 70000;
    size_t big = 4u * 1024 * 1024;
    uint8_t *data = malloc(big);
    ASSERT_TRUE(data != NULL);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 13));
    int32_t id;
    ASSERT_OK(pair_call(p, ECHO_PATH, data, big, NULL, 0, -1, &id));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->cs[id].grpc_status, 0);
    ASSERT_EQ(p->cs[id].msg.len, big);
    /* Windows well above 64 KiB: 4 MiB each way takes a few round trips, not the 64+ that
     * HTTP/2's default 65535-byte windows would need for each direction. */
    fprintf(stderr, "4 MiB round trip: %zu delivery rounds\n", p->rounds);
    ASSERT_LT(p->rounds, 16);
    ASSERT_MEMEQ(arpc__buf_data(&p->cs[id].msg), data, big);
    free(data);
    pair_free(p);
}

static void test_1000_concurrent_streams(void)
{
    arpc__grpc_session_opts so = {.max_concurrent_streams = 100};
    struct pair *p = pair_new(&so, NULL);
    p->chunk_max = 3000;
    int32_t ids[1000];
    char msg[16];
    ASSERT_OK(pair_pump(p)); /* SETTINGS both ways: the client learns the limit */
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(msg, sizeof(msg), "m%d", i);
        ASSERT_OK(pair_call(p, ECHO_PATH, msg, (size_t)n, NULL, 0, 10 * 1000000000LL, &ids[i]));
    }
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->cli_closes, 1000);
    ASSERT_EQ(p->srv_closes, 1000);
    for (int i = 0; i < 1000; i++) {
        struct cli_stream *cs = &p->cs[ids[i]];
        int n = snprintf(msg, sizeof(msg), "m%d", i);
        ASSERT_EQ(cs->grpc_status, 0);
        ASSERT_EQ(cs->msg.len, (size_t)n);
        ASSERT_MEMEQ(arpc__buf_data(&cs->msg), msg, (size_t)n);
    }
    pair_free(p);
}

static void test_concurrent_limit_held(void)
{
    /* The server never holds more than its limit at once. */
    arpc__grpc_session_opts so = {.max_concurrent_streams = 10};
    struct pair *p = pair_new(&so, NULL);
    p->defer = true;
    ASSERT_OK(pair_pump(p));
    int32_t ids[30];
    for (int i = 0; i < 30; i++)
        ASSERT_OK(pair_call(p, ECHO_PATH, "q", 1, NULL, 0, -1, &ids[i]));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->requests, 10);
    ASSERT_EQ(arpc__grpc_session_stream_count(p->srv), 10);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 30; i++)
            if (p->ss[ids[i]].half_closed && !p->ss[ids[i]].closed)
                answer_echo(p, ids[i]);
        ASSERT_OK(pair_pump(p));
    }
    ASSERT_EQ(p->cli_closes, 30);
    for (int i = 0; i < 30; i++)
        ASSERT_EQ(p->cs[ids[i]].grpc_status, 0);
    pair_free(p);
}

static void test_cancel(void)
{
    struct pair *p = pair_new(NULL, NULL);
    p->defer = true;
    int32_t id;
    ASSERT_OK(pair_call(p, ECHO_PATH, "x", 1, NULL, 0, -1, &id));
    ASSERT_OK(pair_pump(p));
    ASSERT_TRUE(p->ss[id].half_closed);
    ASSERT_OK(arpc__grpc_session_cancel(p->cli, id));
    ASSERT_OK(pair_pump(p));
    ASSERT_TRUE(p->cs[id].closed && p->cs[id].canceled);
    ASSERT_EQ(p->cs[id].grpc_status, ARPC__GRPC_CANCELLED);
    ASSERT_TRUE(p->ss[id].closed && p->ss[id].canceled);
    ASSERT_ERR(arpc__grpc_session_send_message(p->srv, id, "x", 1), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_session_cancel(p->cli, id), ARPC_EINVAL);

    /* A stream canceled before its HEADERS went out. */
    ASSERT_OK(pair_call(p, ECHO_PATH, "y", 1, NULL, 0, -1, &id));
    ASSERT_OK(arpc__grpc_session_cancel(p->cli, id));
    ASSERT_OK(pair_pump(p));
    ASSERT_TRUE(p->cs[id].closed);
    ASSERT_EQ(p->cs[id].grpc_status, ARPC__GRPC_CANCELLED);
    ASSERT_FALSE(p->ss[id].requested);
    ASSERT_EQ(arpc__grpc_session_stream_count(p->cli), 0);
    pair_free(p);
}

static void test_goaway_streams_above_last_id(void)
{
    struct pair *p = pair_new(NULL, NULL);
    p->defer = true;
    int32_t a, b;
    ASSERT_OK(pair_call(p, ECHO_PATH, "a", 1, NULL, 0, -1, &a));
    ASSERT_OK(pair_pump(p));
    ASSERT_TRUE(p->ss[a].half_closed);
    /* b reaches the client's output but the server sends GOAWAY before reading it. */
    ASSERT_OK(pair_call(p, ECHO_PATH, "b", 1, NULL, 0, -1, &b));
    ASSERT_OK(arpc__grpc_session_flush(p->cli, &p->cout));
    ASSERT_OK(arpc__grpc_session_goaway(p->srv));
    ASSERT_OK(arpc__grpc_session_flush(p->srv, &p->sout));
    ASSERT_OK(pair_deliver(p, &p->sout, p->cli));
    ASSERT_EQ(p->goaways, 1);
    ASSERT_EQ(p->goaway_last_id, a);
    ASSERT_EQ(p->goaway_code, 0);
    ASSERT_TRUE(p->cs[b].closed && p->cs[b].refused);
    ASSERT_EQ(p->cs[b].grpc_status, ARPC__GRPC_UNAVAILABLE);
    ASSERT_FALSE(p->cs[a].closed);
    int32_t c;
    ASSERT_ERR(pair_call(p, ECHO_PATH, "c", 1, NULL, 0, -1, &c), ARPC_ESHUTDOWN);
    /* a still finishes. */
    ASSERT_OK(pair_pump(p));
    ASSERT_FALSE(p->ss[b].requested);
    answer_echo(p, a);
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->cs[a].grpc_status, 0);
    ASSERT_MEMEQ(arpc__buf_data(&p->cs[a].msg), "a", 1);
    pair_free(p);
}

static void test_graceful_shutdown(void)
{
    struct pair *p = pair_new(NULL, NULL);
    p->defer = true;
    int32_t a, b;
    ASSERT_OK(pair_call(p, ECHO_PATH, "a", 1, NULL, 0, -1, &a));
    ASSERT_OK(pair_pump(p));
    ASSERT_OK(arpc__grpc_session_shutdown_notice(p->srv));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->goaways, 1);
    ASSERT_EQ(p->goaway_last_id, (1u << 31) - 1);
    ASSERT_ERR(pair_call(p, ECHO_PATH, "b", 1, NULL, 0, -1, &b), ARPC_ESHUTDOWN);
    ASSERT_OK(arpc__grpc_session_goaway(p->srv));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->goaways, 2);
    ASSERT_EQ(p->goaway_last_id, a);
    answer_echo(p, a);
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->cs[a].grpc_status, 0);
    ASSERT_TRUE(arpc__grpc_session_done(p->srv));
    pair_free(p);
}

static void test_ping_ack_and_budget(void)
{
    struct pair *p = pair_new(NULL, NULL);
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(arpc__grpc_session_pings_without_data(p->cli), 0);
    ASSERT_OK(arpc__grpc_session_ping(p->cli, 0x1122334455667788ull));
    ASSERT_EQ(arpc__grpc_session_pings_without_data(p->cli), 1);
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->ping_acks, 1);
    ASSERT_EQ(p->last_ping, 0x1122334455667788ull);
    ASSERT_OK(arpc__grpc_session_ping(p->cli, 2));
    ASSERT_OK(arpc__grpc_session_ping(p->cli, 3));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->ping_acks, 3);
    ASSERT_EQ(p->last_ping, 3);
    ASSERT_EQ(arpc__grpc_session_pings_without_data(p->cli), 3); /* ACKs do not reset it */
    int32_t id;
    ASSERT_OK(pair_call(p, ECHO_PATH, "x", 1, NULL, 0, -1, &id));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(arpc__grpc_session_pings_without_data(p->cli), 0);
    /* The server's PINGs are ACKed by the client too. */
    ASSERT_OK(arpc__grpc_session_ping(p->srv, 9));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->ping_acks, 4);
    pair_free(p);
}

/* ---- rules the server enforces, with hand-made requests ---------------------------------- */

/* Raw client bytes: the preface, an empty SETTINGS, and one HEADERS (+END_HEADERS) frame of
 * literal fields without indexing. */
struct raw {
    uint8_t b[200000];
    size_t n;
};

static void raw_put(struct raw *r, const void *p, size_t n)
{
    ASSERT_LE(r->n + n, sizeof(r->b));
    memcpy(r->b + r->n, p, n);
    r->n += n;
}

static void raw_frame_hdr(struct raw *r, size_t len, uint8_t type, uint8_t flags, uint32_t id)
{
    uint8_t h[9] = {
        (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len,       type,       flags,
        (uint8_t)(id >> 24),  (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    raw_put(r, h, 9);
}

static void raw_start(struct raw *r)
{
    r->n = 0;
    raw_put(r, ARPC__H2_PREFACE, ARPC__H2_PREFACE_LEN);
    raw_frame_hdr(r, 0, 4, 0, 0);
}

static void hpack_int(struct raw *blk, size_t v)
{
    uint8_t b;
    if (v < 127) {
        b = (uint8_t)v;
        raw_put(blk, &b, 1);
        return;
    }
    b = 127;
    raw_put(blk, &b, 1);
    v -= 127;
    while (v >= 128) {
        b = (uint8_t)(v % 128 + 128);
        raw_put(blk, &b, 1);
        v /= 128;
    }
    b = (uint8_t)v;
    raw_put(blk, &b, 1);
}

static void hpack_lit(struct raw *blk, const char *k, const char *v, size_t vl)
{
    uint8_t zero = 0;
    raw_put(blk, &zero, 1);
    hpack_int(blk, strlen(k));
    raw_put(blk, k, strlen(k));
    hpack_int(blk, vl);
    raw_put(blk, v, vl);
}

/* HEADERS (and CONTINUATIONs, 16 KiB each) for stream `id` with the block. */
static void raw_headers(struct raw *r, const struct raw *blk, uint32_t id, bool end_stream)
{
    size_t off = 0;
    bool first = true;
    do {
        size_t n = blk->n - off > 16384 ? 16384 : blk->n - off;
        uint8_t flags = (uint8_t)((off + n == blk->n ? 0x4 : 0) | (first && end_stream ? 0x1 : 0));
        raw_frame_hdr(r, n, first ? 1 : 9, flags, id);
        raw_put(r, blk->b + off, n);
        off += n;
        first = false;
    } while (off < blk->n);
}

static void raw_data(struct raw *r, const void *p, size_t n, uint32_t id, bool end_stream)
{
    raw_frame_hdr(r, n, 0, end_stream ? 1 : 0, id);
    raw_put(r, p, n);
}

static void request_block(struct raw *blk, const char *ctype, const char *encoding)
{
    blk->n = 0;
    hpack_lit(blk, ":method", "POST", 4);
    hpack_lit(blk, ":scheme", "http", 4);
    hpack_lit(blk, ":path", ECHO_PATH, strlen(ECHO_PATH));
    hpack_lit(blk, ":authority", "x", 1);
    hpack_lit(blk, "te", "trailers", 8);
    hpack_lit(blk, "content-type", ctype, strlen(ctype));
    if (encoding)
        hpack_lit(blk, "grpc-encoding", encoding, strlen(encoding));
}

/* Feeds raw bytes to a fresh server session; returns feed's result, the output kept. */
static int raw_to_server(struct pair *p, const struct raw *r)
{
    int rc = arpc__grpc_session_feed(p->srv, r->b, r->n);
    int frc = arpc__grpc_session_flush(p->srv, &p->sout);
    return rc < 0 ? rc : frc;
}

/* The header fields of every HEADERS frame the server wrote, as "name: value\n" lines
 * (HPACK decoded with nghttp2's inflater; the server's blocks fit in one frame). */
static bool output_has(const struct pair *p, const char *needle)
{
    static char text[65536];
    size_t at = 0;
    nghttp2_hd_inflater *inf;
    ASSERT_EQ(nghttp2_hd_inflate_new(&inf), 0);
    const uint8_t *d = arpc__buf_data(&p->sout);
    size_t off = 0;
    text[0] = 0;
    while (off + 9 <= p->sout.len) {
        size_t len = (size_t)d[off] << 16 | (size_t)d[off + 1] << 8 | d[off + 2];
        uint8_t type = d[off + 3];
        const uint8_t *in = d + off + 9;
        size_t left = len;
        while (type == 1 && left > 0) {
            nghttp2_nv nv;
            int flags = 0;
            ssize_t n = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, left, 1);
            ASSERT_GE(n, 0);
            in += n;
            left -= (size_t)n;
            if (flags & NGHTTP2_HD_INFLATE_EMIT)
                at += (size_t)snprintf(text + at, sizeof(text) - at, "%.*s: %.*s\n",
                                       (int)nv.namelen, nv.name, (int)nv.valuelen, nv.value);
            if (flags & NGHTTP2_HD_INFLATE_FINAL) {
                nghttp2_hd_inflate_end_headers(inf);
                break;
            }
        }
        off += 9 + len;
    }
    nghttp2_hd_inflate_del(inf);
    return strstr(text, needle) != NULL;
}

static void test_rules_content_type_compression_encoding(void)
{
    static struct raw r, blk;
    uint8_t compressed_msg[] = {1, 0, 0, 0, 1, 'x'};

    /* content-type not application/grpc: HTTP 415, no request reported. */
    struct pair *p = pair_new(NULL, NULL);
    raw_start(&r);
    request_block(&blk, "text/plain", NULL);
    raw_headers(&r, &blk, 1, true);
    ASSERT_OK(raw_to_server(p, &r));
    ASSERT_EQ(p->requests, 0);
    ASSERT_TRUE(output_has(p, ":status: 415\n"));
    pair_free(p);

    /* Compressed flag without grpc-encoding: INTERNAL, after the request was reported. */
    p = pair_new(NULL, NULL);
    raw_start(&r);
    request_block(&blk, "application/grpc", NULL);
    raw_headers(&r, &blk, 1, false);
    raw_data(&r, compressed_msg, sizeof(compressed_msg), 1, true);
    ASSERT_OK(raw_to_server(p, &r));
    ASSERT_EQ(p->requests, 1);
    ASSERT_EQ(p->ss[1].messages, 0);
    ASSERT_TRUE(output_has(p, "grpc-status: 13\n"));
    ASSERT_TRUE(p->ss[1].closed && p->ss[1].canceled);
    ASSERT_EQ(p->ss[1].close_status, ARPC__GRPC_INTERNAL);
    pair_free(p);

    /* An unsupported grpc-encoding: UNIMPLEMENTED with grpc-accept-encoding. */
    p = pair_new(NULL, NULL);
    raw_start(&r);
    request_block(&blk, "application/grpc+proto", "snappy");
    raw_headers(&r, &blk, 1, false);
    raw_data(&r, compressed_msg, sizeof(compressed_msg), 1, true);
    ASSERT_OK(raw_to_server(p, &r));
    ASSERT_EQ(p->requests, 0);
    ASSERT_TRUE(output_has(p, "grpc-accept-encoding: identity\n"));
    ASSERT_TRUE(output_has(p, "grpc-status: 12\n"));
    pair_free(p);
}

static void test_hostile_input(void)
{
    static struct raw r, blk;
    char *big = malloc(70000);
    ASSERT_TRUE(big != NULL);
    memset(big, 'a', 70000);

    /* Garbage after the preface: the connection's error, from feed. */
    struct pair *p = pair_new(NULL, NULL);
    r.n = 0;
    raw_put(&r, ARPC__H2_PREFACE, ARPC__H2_PREFACE_LEN);
    raw_put(&r, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    ASSERT_ERR(arpc__grpc_session_feed(p->srv, r.b, r.n), ARPC_EFRAME);
    ASSERT_OK(arpc__grpc_session_flush(p->srv, &p->sout)); /* a last GOAWAY, no crash */
    pair_free(p);

    /* Not even the preface. */
    p = pair_new(NULL, NULL);
    ASSERT_ERR(arpc__grpc_session_feed(p->srv, "GET / HTTP/1.1\r\n\r\n", 18), ARPC_EFRAME);
    pair_free(p);

    /* A header list over the limit, in small fields: that stream answered
     * RESOURCE_EXHAUSTED (Trailers-Only), the next one on the connection served. */
    p = pair_new(NULL, NULL);
    raw_start(&r);
    request_block(&blk, "application/grpc", NULL);
    for (int i = 0; i < 40; i++)
        hpack_lit(&blk, "x-filler", big, 1000);
    raw_headers(&r, &blk, 1, true);
    request_block(&blk, "application/grpc", NULL);
    raw_headers(&r, &blk, 3, false);
    uint8_t msg[] = {0, 0, 0, 0, 2, 'o', 'k'};
    raw_data(&r, msg, sizeof(msg), 3, true);
    ASSERT_OK(raw_to_server(p, &r));
    ASSERT_FALSE(p->ss[1].requested);
    ASSERT_TRUE(output_has(p, "grpc-status: 8\n"));
    ASSERT_TRUE(p->ss[3].requested && p->ss[3].closed);
    ASSERT_EQ(p->ss[3].close_status, 0);
    ASSERT_EQ(arpc__grpc_session_stream_count(p->srv), 0);
    pair_free(p);

    /* One 70000-byte field (in CONTINUATIONs), over HPACK's 64 KiB: nghttp2 ends the
     * connection (COMPRESSION_ERROR). */
    p = pair_new(NULL, NULL);
    raw_start(&r);
    request_block(&blk, "application/grpc", NULL);
    hpack_lit(&blk, "x-big", big, 70000);
    raw_headers(&r, &blk, 1, true);
    ASSERT_ERR(arpc__grpc_session_feed(p->srv, r.b, r.n), ARPC_EFRAME);
    ASSERT_OK(arpc__grpc_session_flush(p->srv, &p->sout));
    ASSERT_TRUE(arpc__grpc_session_done(p->srv));
    ASSERT_EQ(p->requests, 0);
    pair_free(p);

    /* A header block that never ends (CONTINUATIONs without END_HEADERS, 1 MiB): nghttp2
     * gives up on the connection. */
    p = pair_new(NULL, NULL);
    raw_start(&r);
    request_block(&blk, "application/grpc", NULL);
    raw_frame_hdr(&r, blk.n, 1, 0, 1);
    raw_put(&r, blk.b, blk.n);
    ASSERT_OK(arpc__grpc_session_feed(p->srv, r.b, r.n));
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++) {
        r.n = 0;
        raw_frame_hdr(&r, 16384, 9, 0, 1);
        uint8_t lit[4] = {0x40, 0x01, 'x', 0x7f}; /* a literal with a long value ... */
        raw_put(&r, lit, sizeof(lit));
        memset(r.b + r.n, 'a', 16384 - sizeof(lit));
        r.n += 16384 - sizeof(lit);
        rc = arpc__grpc_session_feed(p->srv, r.b, r.n);
    }
    ASSERT_ERR(rc, ARPC_EFRAME);
    ASSERT_EQ(p->requests, 0);
    pair_free(p);

    /* The client's side: a big header list is answered, the client hears RESOURCE_EXHAUSTED. */
    p = pair_new(NULL, NULL);
    arpc__grpc_md md[20];
    for (int i = 0; i < 20; i++)
        md[i] = (arpc__grpc_md){"x-filler", 8, big, 1000};
    int32_t id, id2;
    ASSERT_OK(pair_call(p, ECHO_PATH, "x", 1, md, 20, -1, &id));
    ASSERT_OK(pair_pump(p));
    ASSERT_TRUE(p->cs[id].closed);
    ASSERT_FALSE(p->cs[id].refused); /* a retry elsewhere would fail the same way */
    ASSERT_EQ(p->cs[id].grpc_status, ARPC__GRPC_RESOURCE_EXHAUSTED);
    ASSERT_FALSE(p->ss[id].requested);
    ASSERT_OK(pair_call(p, ECHO_PATH, "y", 1, NULL, 0, -1, &id2));
    ASSERT_OK(pair_pump(p));
    ASSERT_EQ(p->cs[id2].grpc_status, 0);
    free(big);
    pair_free(p);
}

/* ---- one small exchange split at every byte ----------------------------------------------- */

static void capture_exchange(arpc_buf *req, arpc_buf *resp)
{
    struct pair *p = pair_new(NULL, NULL);
    const arpc__grpc_md md[] = {{"x-echo-a", 8, "va", 2}};
    int32_t id;
    ASSERT_OK(pair_call(p, ECHO_PATH, "split", 5, md, 1, -1, &id));
    ASSERT_OK(arpc__grpc_session_flush(p->cli, &p->cout));
    ASSERT_OK(arpc__buf_append(req, arpc__buf_data(&p->cout), p->cout.len));
    ASSERT_OK(pair_deliver(p, &p->cout, p->srv));
    ASSERT_OK(arpc__grpc_session_flush(p->srv, &p->sout));
    ASSERT_OK(arpc__buf_append(resp, arpc__buf_data(&p->sout), p->sout.len));
    ASSERT_OK(pair_deliver(p, &p->sout, p->cli));
    ASSERT_EQ(p->cs[id].grpc_status, 0);
    pair_free(p);
}

static void test_split_at_every_point(void)
{
    arpc_buf req, resp;
    arpc__buf_init(&req);
    arpc__buf_init(&resp);
    capture_exchange(&req, &resp);
    const uint8_t *rq = arpc__buf_data(&req), *rs = arpc__buf_data(&resp);
    for (size_t cut = 0; cut <= req.len; cut++) {
        struct pair *p = pair_new(NULL, NULL);
        ASSERT_OK(arpc__grpc_session_feed(p->srv, rq, cut));
        ASSERT_OK(arpc__grpc_session_feed(p->srv, rq + cut, req.len - cut));
        ASSERT_EQ(p->requests, 1);
        ASSERT_TRUE(p->ss[1].half_closed);
        ASSERT_EQ(p->ss[1].messages, 1);
        ASSERT_MEMEQ(arpc__buf_data(&p->ss[1].msg), "split", 5);
        ASSERT_STREQ(p->ss[1].md_copy, "x-echo-a=va;");
        ASSERT_OK(arpc__grpc_session_flush(p->srv, &p->sout));
        ASSERT_EQ(p->sout.len, resp.len);
        pair_free(p);
    }
    for (size_t cut = 0; cut <= resp.len; cut++) {
        struct pair *p = pair_new(NULL, NULL);
        const arpc__grpc_md md[] = {{"x-echo-a", 8, "va", 2}};
        int32_t id;
        ASSERT_OK(pair_call(p, ECHO_PATH, "split", 5, md, 1, -1, &id));
        ASSERT_OK(arpc__grpc_session_flush(p->cli, &p->cout));
        ASSERT_OK(arpc__grpc_session_feed(p->cli, rs, cut));
        ASSERT_OK(arpc__grpc_session_feed(p->cli, rs + cut, resp.len - cut));
        ASSERT_TRUE(p->cs[id].closed);
        ASSERT_EQ(p->cs[id].grpc_status, 0);
        ASSERT_MEMEQ(arpc__buf_data(&p->cs[id].msg), "split", 5);
        ASSERT_STREQ(p->cs[id].md_copy, "x-echo-h=hv;x-raw-bin=00ff;");
        ASSERT_STREQ(p->cs[id].trl_copy, "x-trailer=tv;");
        pair_free(p);
    }
    arpc__buf_fini(&req);
    arpc__buf_fini(&resp);
}

static void test_bad_arguments(void)
{
    struct pair *p = pair_new(NULL, NULL);
    int32_t id;
    const arpc__grpc_md bad[] = {{"Upper", 5, "v", 1}};
    const arpc__grpc_md reserved[] = {{"grpc-status", 11, "0", 1}};
    ASSERT_ERR(pair_call(p, "nopath", "x", 1, NULL, 0, -1, &id), ARPC_EINVAL);
    ASSERT_ERR(pair_call(p, ECHO_PATH, "x", 1, bad, 1, -1, &id), ARPC_EINVAL);
    ASSERT_ERR(pair_call(p, ECHO_PATH, "x", 1, reserved, 1, -1, &id), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_session_send_message(p->srv, 1, "x", 1), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_session_send_status(p->srv, 1, 0, NULL, 0, NULL, 0), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_session_cancel(p->cli, 77), ARPC_EINVAL);
    ASSERT_EQ(arpc__grpc_session_stream_count(p->cli), 0);
    pair_free(p);
}

/* Runs `n` echo calls, `batch` at a time, on ids from `*next` on (their buffers reserved
 * first, so the test's own records allocate nothing). */
static void run_calls(struct pair *p, int n, int batch)
{
    static const char msg[64] = "0123456789abcdef0123456789abcdef0123456789abcdef012345678901234";
    for (int done = 0; done < n; done += batch) {
        int32_t ids[64];
        for (int i = 0; i < batch; i++) {
            ASSERT_OK(pair_call(p, ECHO_PATH, msg, sizeof(msg), NULL, 0, 1000000000, &ids[i]));
            ASSERT_LT(ids[i], PAIR_MAX_STREAMS);
        }
        ASSERT_OK(pair_pump(p));
        for (int i = 0; i < batch; i++) {
            ASSERT_TRUE(p->cs[ids[i]].closed);
            ASSERT_EQ(p->cs[ids[i]].grpc_status, 0);
            ASSERT_EQ(p->cs[ids[i]].msg.len, sizeof(msg));
        }
    }
}

/* DESIGN.md's "no malloc per request in steady state", on both sessions: nghttp2's memory
 * comes from each session's pool (mempool.h), whose free lists serve the next calls. */
static void test_steady_state_allocates_nothing(void)
{
    struct pair *p = pair_new(NULL, NULL);
    for (size_t i = 0; i < PAIR_MAX_STREAMS; i++) {
        ASSERT_OK(arpc__buf_ensure(&p->ss[i].msg, 64));
        ASSERT_OK(arpc__buf_ensure(&p->cs[i].msg, 64));
    }
    run_calls(p, 256, 16); /* warm-up: pools, spares, HPACK tables */
    uint64_t before = arpc__alloc_count();
    run_calls(p, 1024, 16);
    ASSERT_EQ(arpc__alloc_count() - before, 0);
    pair_free(p);
}

/* The server's out buffer while its handlers answer: early_answers hands the answers out
 * before the next request is decoded, so they are there at its EV_MESSAGE. */
static arpc_buf *early_out;
static size_t early_seen[8];

static void early_event(void *user, const arpc__grpc_event *ev)
{
    if (ev->type == ARPC__GRPC_EV_MESSAGE && ev->stream_id < 16)
        early_seen[ev->stream_id / 2] = early_out->len;
    srv_event(user, ev);
}

static void early_run(uint32_t early_answers, size_t seen[8])
{
    struct pair *p = pair_new(NULL, NULL);
    arpc__grpc_session_destroy(p->srv);
    arpc__grpc_session_opts so = {.early_answers = early_answers};
    ASSERT_OK(arpc__grpc_session_server_new(&so, early_event, p, &p->srv));
    arpc_buf out;
    arpc__buf_init(&out);
    early_out = &out;
    memset(early_seen, 0, sizeof(early_seen));
    int32_t ids[4];
    for (int i = 0; i < 4; i++)
        ASSERT_OK(pair_call(p, ECHO_PATH, "hi", 2, NULL, 0, -1, &ids[i]));
    ASSERT_OK(arpc__grpc_session_flush(p->cli, &p->cout));
    ASSERT_OK(arpc__grpc_session_feed_into(p->srv, arpc__buf_data(&p->cout), p->cout.len, &out));
    arpc__buf_clear(&p->cout);
    ASSERT_OK(arpc__buf_append(&p->sout, arpc__buf_data(&out), out.len));
    ASSERT_OK(pair_pump(p)); /* what went out early is whole: every call completes */
    for (int i = 0; i < 4; i++) {
        ASSERT_TRUE(p->cs[ids[i]].closed);
        ASSERT_EQ(p->cs[ids[i]].grpc_status, 0);
        ASSERT_MEMEQ(arpc__buf_data(&p->cs[ids[i]].msg), "hi", 2);
        ASSERT_FALSE(p->ss[ids[i]].canceled); /* no answer went out before its END_STREAM */
    }
    memcpy(seen, early_seen, sizeof(early_seen));
    arpc__buf_fini(&out);
    pair_free(p);
}

static void test_early_answers(void)
{
    size_t seen[8];
    early_run(0, seen);
    ASSERT_EQ(seen[3 / 2], 0); /* stream 3's message: nothing out yet */
    ASSERT_EQ(seen[7 / 2], 0);
    early_run(1, seen);
    ASSERT_GT(seen[3 / 2], 0); /* stream 1's answer (and the SETTINGS) went out first */
    ASSERT_GT(seen[7 / 2], seen[5 / 2]);
    ASSERT_GT(seen[5 / 2], seen[3 / 2]);
}

/* Streams on the session API: a client stream (desc->stream) with messages, half-close and
 * an echo of each; then a server that holds what it received: the client's writes stop at
 * the server's stream window (EV_CREDIT never beyond it), and go on when it consumes. */
static void test_stream_window(void)
{
    static struct pair p;
    const arpc__grpc_session_opts so = {.stream_window = 64 * 1024};
    ASSERT_OK(pair_init(&p, &so, NULL));
    p.streams = true;
    arpc__grpc_call_desc d = {
        .path = ECHO_PATH, .path_len = strlen(ECHO_PATH), .timeout_ns = -1, .stream = true};
    int32_t id;
    ASSERT_OK(arpc__grpc_session_open_stream(p.cli, &d, NULL, &id));
    ASSERT_OK(pair_pump(&p));
    ASSERT_TRUE(p.ss[id].requested);
    for (int i = 0; i < 3; i++)
        ASSERT_OK(arpc__grpc_session_send_message(p.cli, id, "abc", 3));
    ASSERT_OK(arpc__grpc_session_half_close(p.cli, id));
    ASSERT_EQ(arpc__grpc_session_half_close(p.cli, id), ARPC_EINVAL);
    ASSERT_EQ(arpc__grpc_session_send_message(p.cli, id, "x", 1), ARPC_EINVAL);
    ASSERT_OK(pair_pump(&p));
    ASSERT_EQ(p.ss[id].messages, 3);
    ASSERT_TRUE(p.ss[id].half_closed);
    ASSERT_EQ(p.cs[id].messages, 3);
    ASSERT_TRUE(p.cs[id].closed);
    ASSERT_EQ(p.cs[id].grpc_status, 0);
    ASSERT_EQ(p.cli_credit, 9);

    p.hold = true;
    p.cli_credit = 0;
    ASSERT_OK(arpc__grpc_session_open_stream(p.cli, &d, NULL, &id));
    static char m[16 * 1024];
    memset(m, 'm', sizeof(m));
    for (int i = 0; i < 10; i++)
        ASSERT_OK(arpc__grpc_session_send_message(p.cli, id, m, sizeof(m)));
    ASSERT_OK(pair_pump(&p));
    ASSERT_EQ(p.ss[id].messages, 3); /* 4 would be 65,556 bytes on the wire */
    ASSERT_LE(p.cli_credit, 64 * 1024);
    ASSERT_TRUE(p.cli_credit >= 3 * sizeof(m));
    ASSERT_OK(arpc__grpc_session_consume(p.srv, id, p.srv_held));
    p.hold = false;
    ASSERT_OK(pair_pump(&p));
    ASSERT_EQ(p.ss[id].messages, 10);
    ASSERT_EQ(p.cli_credit, 10 * sizeof(m));
    ASSERT_OK(arpc__grpc_session_half_close(p.cli, id));
    ASSERT_OK(pair_pump(&p));
    ASSERT_TRUE(p.cs[id].closed);
    ASSERT_EQ(p.cs[id].messages, 10);
    /* A consume of a gone stream is ignored. */
    ASSERT_OK(arpc__grpc_session_consume(p.srv, id, 100));
    pair_fini(&p);
}

int main(void)
{
    test_seed();
    RUN_TEST(test_preface_detect);
    RUN_TEST(test_unary_metadata_deadline);
    RUN_TEST(test_unimplemented_trailers_only);
    RUN_TEST(test_status_message_percent_encoded);
    RUN_TEST(test_over_limit_then_normal_call);
    RUN_TEST(test_4mib_round_trip_random_chunks);
    RUN_TEST(test_1000_concurrent_streams);
    RUN_TEST(test_concurrent_limit_held);
    RUN_TEST(test_cancel);
    RUN_TEST(test_goaway_streams_above_last_id);
    RUN_TEST(test_graceful_shutdown);
    RUN_TEST(test_ping_ack_and_budget);
    RUN_TEST(test_rules_content_type_compression_encoding);
    RUN_TEST(test_hostile_input);
    RUN_TEST(test_split_at_every_point);
    RUN_TEST(test_bad_arguments);
    RUN_TEST(test_steady_state_allocates_nothing);
    RUN_TEST(test_early_answers);
    RUN_TEST(test_stream_window);
    return 0;
}

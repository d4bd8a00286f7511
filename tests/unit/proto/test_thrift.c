/*
 * Thrift's framed binary protocol (src/proto/thrift/): the message codec (strict and
 * old-style headers, every prefix of each "need more", the malformed ones refused), the
 * TApplicationException struct and its status mapping, the public type reader and writer
 * (include/arpc/thrift.h: every type, skipping unknown fields of every type, truncation at
 * every byte, counts and nesting over their bounds), detection against the native magic,
 * the HTTP/2 preface and HTTP/1.1, and the session behind the seam: requests split at every
 * byte as conn.c feeds them, answers written in request order whatever order handlers
 * finish in, ONEWAY answers dropped, a frame over the limit closing, a client that checks
 * every sequence id, its probe and when it holds the probe back.
 */
#include <stdlib.h>
#include <string.h>

#include <arpc/buf.h>
#include <arpc/err.h>
#include <arpc/thrift.h>

#include "base/buf.h"
#include "proto/proto.h"
#include "proto/thrift/codec.h"
#include "test.h"

/* ---- golden bytes ---- */

/* A strict CALL "echo", seqid 7, then the args struct {1: binary "hi"}. */
static const uint8_t strict_call[] = {
    0x80, 0x01, 0x00, 0x01, 0, 0, 0, 4, 'e', 'c', 'h', 'o', 0, 0, 0, 7,
    0x0b, 0x00, 0x01, 0, 0, 0, 2, 'h', 'i', 0x00};
/* The same call, old style (name, type byte, seqid). */
static const uint8_t old_call[] = {0, 0, 0, 4, 'e', 'c', 'h', 'o', 0x01, 0, 0, 0, 7,
                                   0x0b, 0x00, 0x01, 0, 0, 0, 2, 'h', 'i', 0x00};
#define STRICT_HEADER 16
#define OLD_HEADER    13

static void test_header_decode(void)
{
    arpc__thrift_header h;
    ASSERT_EQ(arpc__thrift_header_decode(strict_call, sizeof(strict_call), 255, &h), STRICT_HEADER);
    ASSERT_TRUE(h.strict);
    ASSERT_EQ(h.type, ARPC__THRIFT_CALL);
    ASSERT_EQ(h.seqid, 7);
    ASSERT_EQ(h.name_len, 4);
    ASSERT_MEMEQ(h.name, "echo", 4);
    ASSERT_EQ(arpc__thrift_header_decode(old_call, sizeof(old_call), 255, &h), OLD_HEADER);
    ASSERT_FALSE(h.strict);
    ASSERT_EQ(h.type, ARPC__THRIFT_CALL);
    ASSERT_EQ(h.seqid, 7);
    ASSERT_MEMEQ(h.name, "echo", 4);
    /* Every prefix of either header needs more. */
    for (size_t n = 0; n < STRICT_HEADER; n++)
        ASSERT_EQ(arpc__thrift_header_decode(strict_call, n, 255, &h), 0);
    for (size_t n = 0; n < OLD_HEADER; n++)
        ASSERT_EQ(arpc__thrift_header_decode(old_call, n, 255, &h), 0);
}

static void test_header_malformed(void)
{
    arpc__thrift_header h;
    uint8_t b[sizeof(strict_call)];
    memcpy(b, strict_call, sizeof(b));
    b[1] = 0x02; /* version 2 */
    ASSERT_EQ(arpc__thrift_header_decode(b, sizeof(b), 255, &h), ARPC_EVERSION);
    ASSERT_EQ(arpc__thrift_header_decode(b, 2, 255, &h), ARPC_EVERSION); /* known at once */
    memcpy(b, strict_call, sizeof(b));
    b[3] = 5; /* no such type */
    ASSERT_EQ(arpc__thrift_header_decode(b, 4, 255, &h), ARPC_EFRAME);
    b[3] = 0;
    ASSERT_EQ(arpc__thrift_header_decode(b, sizeof(b), 255, &h), ARPC_EFRAME);
    memcpy(b, strict_call, sizeof(b));
    b[2] = 1; /* a version word's third byte is 0 */
    ASSERT_EQ(arpc__thrift_header_decode(b, sizeof(b), 255, &h), ARPC_EFRAME);
    memcpy(b, strict_call, sizeof(b));
    b[4] = 0x80; /* a negative name length */
    ASSERT_EQ(arpc__thrift_header_decode(b, 8, 255, &h), ARPC_EFRAME);
    ASSERT_EQ(arpc__thrift_header_decode(strict_call, sizeof(strict_call), 3, &h), ARPC_EFRAME);
    uint8_t o[sizeof(old_call)];
    memcpy(o, old_call, sizeof(o));
    o[8] = 9; /* old-style type byte */
    ASSERT_EQ(arpc__thrift_header_decode(o, 9, 255, &h), ARPC_EFRAME);
    ASSERT_EQ(arpc__thrift_header_decode(old_call, sizeof(old_call), 2, &h), ARPC_EFRAME);
}

static void test_encode(void)
{
    arpc_buf b;
    arpc__buf_init(&b);
    ASSERT_OK(arpc__thrift_encode(&b, "echo", 4, ARPC__THRIFT_CALL, 7, strict_call + STRICT_HEADER,
                                  sizeof(strict_call) - STRICT_HEADER));
    ASSERT_EQ(b.len, 4 + sizeof(strict_call));
    ASSERT_EQ(arpc__thrift_frame_len(arpc__buf_head(&b)), sizeof(strict_call));
    ASSERT_MEMEQ(arpc__buf_head(&b) + 4, strict_call, sizeof(strict_call));
    ASSERT_EQ(arpc__thrift_encode(&b, "x", 1, ARPC__THRIFT_REPLY, 0, "", (size_t)INT32_MAX),
              ARPC_EINVAL);
    ASSERT_EQ(b.len, 4 + sizeof(strict_call)); /* unchanged */
    arpc__buf_fini(&b);
}

static void appex_roundtrip(int status, const char *text, int want_type, int want_status)
{
    arpc_buf b;
    arpc__buf_init(&b);
    ASSERT_OK(arpc__thrift_appex_write(&b, arpc__thrift_appex_type(status), text, strlen(text)));
    arpc__thrift_appex ex;
    ASSERT_OK(arpc__thrift_appex_read(arpc__buf_head(&b), b.len, &ex));
    ASSERT_EQ(ex.type, want_type);
    ASSERT_EQ(ex.message_len, strlen(text));
    ASSERT_MEMEQ(ex.message, text, ex.message_len);
    ASSERT_EQ(arpc__thrift_appex_status(&ex), want_status);
    /* Every truncation is refused. */
    for (size_t n = 0; n < b.len; n++)
        ASSERT_EQ(arpc__thrift_appex_read(arpc__buf_head(&b), n, &ex), ARPC_EFRAME);
    arpc__buf_fini(&b);
}

static void test_appex(void)
{
    appex_roundtrip(ARPC_ENOMETHOD, "Unknown method foo", ARPC__THRIFT_APPEX_UNKNOWN_METHOD,
                    ARPC_ENOMETHOD);
    appex_roundtrip(ARPC_ESHUTDOWN, "ESHUTDOWN: server is shutting down",
                    ARPC__THRIFT_APPEX_INTERNAL_ERROR, ARPC_ESHUTDOWN);
    appex_roundtrip(ARPC_EFRAME, "bad args", ARPC__THRIFT_APPEX_PROTOCOL_ERROR, ARPC_EFRAME);
    appex_roundtrip(42, "42: not found", ARPC__THRIFT_APPEX_INTERNAL_ERROR, 42);
    appex_roundtrip(ARPC_EINTERNAL, "boom", ARPC__THRIFT_APPEX_INTERNAL_ERROR, ARPC_EINTERNAL);
    /* A peer's exception with fields we do not know, in any order. */
    static const uint8_t theirs[] = {0x08, 0, 2, 0, 0, 0, 4,          /* type BAD_SEQUENCE_ID */
                                     0x0a, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, /* unknown i64 */
                                     0x0b, 0, 1, 0, 0, 0, 1, 'x', 0};
    arpc__thrift_appex ex;
    ASSERT_OK(arpc__thrift_appex_read(theirs, sizeof(theirs), &ex));
    ASSERT_EQ(ex.type, ARPC__THRIFT_APPEX_BAD_SEQUENCE_ID);
    ASSERT_EQ(ex.message_len, 1);
    ASSERT_EQ(arpc__thrift_appex_status(&ex), ARPC_EINTERNAL);
}

/* ---- the public types ---- */

/* A struct with every type, a nested struct and each container. */
static void write_everything(arpc_thrift_writer *w)
{
    arpc_thrift_write_field(w, ARPC_THRIFT_BOOL, 1);
    arpc_thrift_write_bool(w, true);
    arpc_thrift_write_field(w, ARPC_THRIFT_BYTE, 2);
    arpc_thrift_write_byte(w, -3);
    arpc_thrift_write_field(w, ARPC_THRIFT_I16, 3);
    arpc_thrift_write_i16(w, -1234);
    arpc_thrift_write_field(w, ARPC_THRIFT_I32, 4);
    arpc_thrift_write_i32(w, -123456789);
    arpc_thrift_write_field(w, ARPC_THRIFT_I64, 5);
    arpc_thrift_write_i64(w, -1234567890123LL);
    arpc_thrift_write_field(w, ARPC_THRIFT_DOUBLE, 6);
    arpc_thrift_write_double(w, 2.5);
    arpc_thrift_write_field(w, ARPC_THRIFT_STRING, 7);
    arpc_thrift_write_string(w, "hello");
    arpc_thrift_write_field(w, ARPC_THRIFT_LIST, 8);
    arpc_thrift_write_list(w, ARPC_THRIFT_I32, 3);
    for (int i = 0; i < 3; i++)
        arpc_thrift_write_i32(w, i * 10);
    arpc_thrift_write_field(w, ARPC_THRIFT_SET, 9);
    arpc_thrift_write_set(w, ARPC_THRIFT_STRING, 2);
    arpc_thrift_write_string(w, "a");
    arpc_thrift_write_string(w, "bc");
    arpc_thrift_write_field(w, ARPC_THRIFT_MAP, 10);
    arpc_thrift_write_map(w, ARPC_THRIFT_STRING, ARPC_THRIFT_STRUCT, 1);
    arpc_thrift_write_string(w, "k");
    arpc_thrift_write_field(w, ARPC_THRIFT_I16, 1);
    arpc_thrift_write_i16(w, 5);
    arpc_thrift_write_stop(w);
    arpc_thrift_write_field(w, ARPC_THRIFT_STRUCT, 11);
    arpc_thrift_write_field(w, ARPC_THRIFT_LIST, 1);
    arpc_thrift_write_list(w, ARPC_THRIFT_LIST, 1);
    arpc_thrift_write_list(w, ARPC_THRIFT_DOUBLE, 1);
    arpc_thrift_write_double(w, -1.0);
    arpc_thrift_write_stop(w);
    arpc_thrift_write_field(w, ARPC_THRIFT_I32, 12);
    arpc_thrift_write_i32(w, 99);
    arpc_thrift_write_stop(w);
}

static void test_types_roundtrip(void)
{
    arpc_buf b;
    arpc__buf_init(&b);
    arpc_thrift_writer w;
    arpc_thrift_writer_init(&w, &b);
    write_everything(&w);
    ASSERT_OK(w.err);
    arpc_thrift_reader r;
    arpc_thrift_reader_init(&r, arpc__buf_head(&b), b.len);
    arpc_thrift_type t, k, v;
    int16_t id;
    uint32_t n;
    size_t len;
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && t == ARPC_THRIFT_BOOL && id == 1);
    ASSERT_TRUE(arpc_thrift_read_bool(&r));
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && id == 2);
    ASSERT_EQ(arpc_thrift_read_byte(&r), -3);
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && id == 3);
    ASSERT_EQ(arpc_thrift_read_i16(&r), -1234);
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && id == 4);
    ASSERT_EQ(arpc_thrift_read_i32(&r), -123456789);
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && id == 5);
    ASSERT_TRUE(arpc_thrift_read_i64(&r) == -1234567890123LL);
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && id == 6);
    ASSERT_TRUE(arpc_thrift_read_double(&r) == 2.5);
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && t == ARPC_THRIFT_STRING && id == 7);
    const void *s = arpc_thrift_read_binary(&r, &len);
    ASSERT_EQ(len, 5);
    ASSERT_MEMEQ(s, "hello", 5);
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && t == ARPC_THRIFT_LIST && id == 8);
    ASSERT_TRUE(arpc_thrift_read_list(&r, &k, &n) && k == ARPC_THRIFT_I32 && n == 3);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(arpc_thrift_read_i32(&r), i * 10);
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && t == ARPC_THRIFT_SET && id == 9);
    ASSERT_TRUE(arpc_thrift_read_set(&r, &k, &n) && k == ARPC_THRIFT_STRING && n == 2);
    ASSERT_OK(arpc_thrift_skip(&r, k));
    s = arpc_thrift_read_binary(&r, &len);
    ASSERT_TRUE(len == 2 && memcmp(s, "bc", 2) == 0);
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && t == ARPC_THRIFT_MAP && id == 10);
    ASSERT_TRUE(arpc_thrift_read_map(&r, &k, &v, &n) && k == ARPC_THRIFT_STRING &&
                v == ARPC_THRIFT_STRUCT && n == 1);
    ASSERT_OK(arpc_thrift_skip(&r, k));
    ASSERT_OK(arpc_thrift_skip(&r, v));
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && t == ARPC_THRIFT_STRUCT && id == 11);
    ASSERT_OK(arpc_thrift_skip(&r, t));
    ASSERT_TRUE(arpc_thrift_read_field(&r, &t, &id) && id == 12);
    ASSERT_EQ(arpc_thrift_read_i32(&r), 99);
    ASSERT_FALSE(arpc_thrift_read_field(&r, &t, &id));
    ASSERT_OK(r.err);
    ASSERT_TRUE(r.p == r.end);
    arpc__buf_fini(&b);
}

/* A reader that knows only field 12 skips everything before it; every truncation of the
 * struct fails without reading past its end. */
static void test_types_skip_and_truncate(void)
{
    arpc_buf b;
    arpc__buf_init(&b);
    arpc_thrift_writer w;
    arpc_thrift_writer_init(&w, &b);
    write_everything(&w);
    ASSERT_OK(w.err);
    for (size_t cut = 0; cut <= b.len; cut++) {
        uint8_t *copy = malloc(cut + 1); /* exactly cut bytes for ASan to police */
        memcpy(copy, arpc__buf_head(&b), cut);
        arpc_thrift_reader r;
        arpc_thrift_reader_init(&r, copy, cut);
        arpc_thrift_type t;
        int16_t id;
        int32_t found = 0;
        while (arpc_thrift_read_field(&r, &t, &id)) {
            if (id == 12 && t == ARPC_THRIFT_I32)
                found = arpc_thrift_read_i32(&r);
            else
                arpc_thrift_skip(&r, t);
        }
        if (cut == b.len) {
            ASSERT_OK(r.err);
            ASSERT_EQ(found, 99);
        } else {
            ASSERT_EQ(r.err, ARPC_EFRAME);
        }
        /* Once failed, reads give zero values and keep the first error. */
        ASSERT_EQ(arpc_thrift_read_i64(&r), 0);
        free(copy);
    }
    arpc__buf_fini(&b);
}

static void test_types_bounds(void)
{
    arpc_thrift_reader r;
    arpc_thrift_type t;
    uint32_t n;
    /* A list announcing 2^31 - 1 elements in five bytes: refused at its header. */
    static const uint8_t huge[] = {0x08, 0x7f, 0xff, 0xff, 0xff};
    arpc_thrift_reader_init(&r, huge, sizeof(huge));
    ASSERT_FALSE(arpc_thrift_read_list(&r, &t, &n));
    ASSERT_EQ(n, 0);
    arpc_thrift_reader_init(&r, huge, sizeof(huge));
    ASSERT_EQ(arpc_thrift_skip(&r, ARPC_THRIFT_LIST), ARPC_EFRAME);
    /* A negative string length. */
    static const uint8_t neg[] = {0xff, 0xff, 0xff, 0xfe, 'x'};
    size_t len;
    arpc_thrift_reader_init(&r, neg, sizeof(neg));
    ASSERT_TRUE(arpc_thrift_read_binary(&r, &len) == NULL && len == 0 && r.err == ARPC_EFRAME);
    /* An unknown type. */
    static const uint8_t odd[] = {0x07, 0, 1, 0};
    arpc_thrift_reader_init(&r, odd, sizeof(odd));
    ASSERT_EQ(arpc_thrift_skip(&r, ARPC_THRIFT_STRUCT), ARPC_EFRAME);
    /* Structs nested past the bound: refused, not followed. */
    uint8_t deep[3 * (ARPC_THRIFT_MAX_DEPTH + 2) + ARPC_THRIFT_MAX_DEPTH + 2];
    size_t at = 0;
    for (int i = 0; i < ARPC_THRIFT_MAX_DEPTH + 2; i++) {
        deep[at++] = ARPC_THRIFT_STRUCT;
        deep[at++] = 0;
        deep[at++] = 1;
    }
    for (int i = 0; i < ARPC_THRIFT_MAX_DEPTH + 2; i++)
        deep[at++] = 0;
    arpc_thrift_reader_init(&r, deep, at);
    ASSERT_EQ(arpc_thrift_skip(&r, ARPC_THRIFT_STRUCT), ARPC_EFRAME);
    arpc_thrift_reader_init(&r, deep + 3 * 4, at - 3 * 4 - 3); /* 63 deep: fine */
    ASSERT_OK(arpc_thrift_skip(&r, ARPC_THRIFT_STRUCT));
    /* A map of fixed-size entries skips in one step; one byte short fails. */
    static const uint8_t m[] = {0x08, 0x02, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0, 2, 0};
    arpc_thrift_reader_init(&r, m, sizeof(m));
    ASSERT_OK(arpc_thrift_skip(&r, ARPC_THRIFT_MAP));
    ASSERT_TRUE(r.p == r.end);
    arpc_thrift_reader_init(&r, m, sizeof(m) - 1);
    ASSERT_EQ(arpc_thrift_skip(&r, ARPC_THRIFT_MAP), ARPC_EFRAME);
    /* Writing a count the wire's i32 cannot carry fails the writer, writing nothing. */
    arpc_buf *b;
    ASSERT_OK(arpc_buf_create(&b));
    arpc_thrift_writer w;
    arpc_thrift_writer_init(&w, b);
    arpc_thrift_write_list(&w, ARPC_THRIFT_I32, (uint32_t)INT32_MAX + 1);
    ASSERT_ERR(w.err, ARPC_EINVAL);
    arpc_thrift_writer_init(&w, b);
    arpc_thrift_write_map(&w, ARPC_THRIFT_I32, ARPC_THRIFT_I32, UINT32_MAX);
    ASSERT_ERR(w.err, ARPC_EINVAL);
    ASSERT_EQ(arpc_buf_len(b), 0);
    arpc_buf_destroy(b);
}

/* ---- detection ---- */

static void test_detect(void)
{
    const arpc__proto_ops *t = &arpc__proto_thrift;
    uint8_t framed[4 + sizeof(strict_call)];
    framed[0] = framed[1] = framed[2] = 0;
    framed[3] = sizeof(strict_call);
    memcpy(framed + 4, strict_call, sizeof(strict_call));
    for (size_t n = 0; n < 8; n++)
        ASSERT_EQ(t->detect(framed, n), ARPC__DETECT_MORE);
    ASSERT_EQ(t->detect(framed, 8), ARPC__DETECT_YES);
    uint8_t old[4 + sizeof(old_call)] = {0, 0, 0, sizeof(old_call)};
    memcpy(old + 4, old_call, sizeof(old_call));
    for (size_t n = 0; n < 8; n++)
        ASSERT_EQ(t->detect(old, n), ARPC__DETECT_MORE);
    ASSERT_EQ(t->detect(old, 8), ARPC__DETECT_YES);
    /* The other protocols of the shared port are refused at their first byte. */
    ASSERT_EQ(t->detect((const uint8_t *)"AR", 1), ARPC__DETECT_NO);
    ASSERT_EQ(t->detect((const uint8_t *)"PRI * HTTP/2.0\r\n", 16), ARPC__DETECT_NO);
    ASSERT_EQ(t->detect((const uint8_t *)"GET / HTTP/1.1\r\n", 1), ARPC__DETECT_NO);
    ASSERT_EQ(t->detect((const uint8_t *)"POST", 1), ARPC__DETECT_NO);
    /* Neither a version word nor a short name length after the frame length. */
    static const uint8_t noise[][8] = {
        {0, 0, 0, 9, 0x80, 0x02, 0, 1}, {0, 0, 0, 9, 0x80, 0x01, 1, 1},
        {0, 0, 0, 9, 0x80, 0x01, 0, 7}, {0, 0, 0, 9, 0, 1, 0, 1},
        {0, 0, 0, 9, 0, 0, 0, 0},       {0, 0, 0, 9, 0x16, 3, 1, 0}};
    for (size_t i = 0; i < sizeof(noise) / sizeof(noise[0]); i++)
        ASSERT_EQ(t->detect(noise[i], 8), ARPC__DETECT_NO);
    /* And every detector of the port says no to a Thrift frame. */
    unsigned count;
    const arpc__proto_ops *const *all = arpc__proto_detectable(&count);
    unsigned yes = 0;
    for (unsigned i = 0; i < count; i++)
        if (all[i]->detect(framed, sizeof(framed)) == ARPC__DETECT_YES) {
            yes++;
            ASSERT_TRUE(all[i] == t);
        }
    ASSERT_EQ(yes, 1);
    ASSERT_TRUE(arpc__proto_by_id(2) == t);
}

/* ---- the session ---- */

#define MAX_EVENTS 64

typedef struct event {
    int kind;
    uint64_t id;
    int32_t status;
    char method[32];
    uint8_t payload[64];
    size_t payload_len;
} event;

enum { EV_REQUEST = 1, EV_RESPONSE, EV_PONG };

typedef struct side {
    arpc__proto_session *s;
    arpc_buf out;
    event ev[MAX_EVENTS];
    size_t n;
    bool stop;
} side;

static void record(side *sd, int kind, const arpc__msg *msg)
{
    ASSERT_LT(sd->n, MAX_EVENTS);
    event *e = &sd->ev[sd->n++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->id = msg->id;
    e->status = msg->status;
    ASSERT_LT(msg->method_len, sizeof(e->method));
    if (msg->method_len > 0) /* a pong has no method: NULL, which memcpy may not take */
        memcpy(e->method, msg->method, msg->method_len);
    ASSERT_LE(msg->payload_len, sizeof(e->payload));
    if (msg->payload_len > 0)
        memcpy(e->payload, msg->payload, msg->payload_len);
    e->payload_len = msg->payload_len;
}

static int ev_request(void *owner, const arpc__msg *msg)
{
    record(owner, EV_REQUEST, msg);
    return 0;
}

static int ev_response(void *owner, const arpc__msg *msg)
{
    record(owner, EV_RESPONSE, msg);
    return 0;
}

static void ev_pong(void *owner, uint64_t id, const arpc__proto_limits *peer)
{
    ASSERT_TRUE(peer == NULL);
    arpc__msg msg = {.id = id};
    record(owner, EV_PONG, &msg);
}

static const arpc__proto_events events = {
    .on_request = ev_request, .on_response = ev_response, .on_pong = ev_pong};

static void side_open_limited(side *sd, arpc__proto_side which, uint32_t max_message,
                              const char *probe, uint32_t max_in_flight)
{
    memset(sd, 0, sizeof(*sd));
    arpc__buf_init(&sd->out);
    arpc__proto_config cfg = {.side = which,
                              .limits = {.max_message = max_message,
                                         .max_in_flight = max_in_flight},
                              .events = &events,
                              .owner = sd,
                              .stop = &sd->stop,
                              .probe_method = probe};
    ASSERT_OK(arpc__proto_thrift.create(&cfg, &sd->s));
}

static void side_open(side *sd, arpc__proto_side which, uint32_t max_message, const char *probe)
{
    side_open_limited(sd, which, max_message, probe, 0);
}

static void side_close(side *sd)
{
    arpc__proto_thrift.destroy(sd->s);
    arpc__buf_fini(&sd->out);
}

/* Feeds data[0, len) in chunks of `chunk` bytes as conn.c does: what a feed leaves is
 * offered again with the next chunk behind it.  @return the last feed's result when it
 * failed, else 0 with everything consumed. */
static int64_t feed_split(side *sd, const uint8_t *data, size_t len, size_t chunk)
{
    arpc_buf in;
    arpc__buf_init(&in);
    int64_t rc = 0;
    for (size_t off = 0; off < len && rc >= 0; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        ASSERT_OK(arpc__buf_append(&in, data + off, n));
        rc = arpc__proto_thrift.feed(sd->s, arpc__buf_head(&in), in.len, &sd->out);
        if (rc >= 0) {
            ASSERT_LE((size_t)rc, in.len);
            arpc__buf_consume(&in, (size_t)rc);
        }
    }
    if (rc >= 0)
        ASSERT_EQ(in.len, 0);
    arpc__buf_fini(&in);
    return rc < 0 ? rc : 0;
}

static void frame(arpc_buf *b, const uint8_t *msg, size_t len)
{
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    ASSERT_OK(arpc__buf_append(b, h, 4));
    ASSERT_OK(arpc__buf_append(b, msg, len));
}

static void respond(side *srv, uint64_t id, int status, const void *payload, size_t len)
{
    arpc__msg m = {.id = id, .status = status, .payload = payload, .payload_len = len};
    ASSERT_OK(arpc__proto_thrift.send_response(srv->s, &srv->out, &m));
}

/* Reads the framed messages of `b` into headers and bodies. */
typedef struct parsed {
    arpc__thrift_header h;
    const uint8_t *body;
    size_t body_len;
} parsed;

static size_t parse_all(const arpc_buf *b, parsed *p, size_t max)
{
    size_t n = 0, off = 0;
    const uint8_t *d = arpc__buf_head(b);
    while (off < b->len) {
        ASSERT_LT(n, max);
        uint32_t flen = arpc__thrift_frame_len(d + off);
        ASSERT_LE(off + 4 + flen, b->len);
        int64_t hl = arpc__thrift_header_decode(d + off + 4, flen, 255, &p[n].h);
        ASSERT_GT(hl, 0);
        ASSERT_TRUE(p[n].h.strict); /* we write strict headers only */
        p[n].body = d + off + 4 + hl;
        p[n].body_len = flen - (size_t)hl;
        off += 4 + flen;
        n++;
    }
    return n;
}

/* Three pipelined calls (strict, old style, ONEWAY), split at every chunk size; answered
 * 3rd, 2nd, 1st, they leave in request order; the ONEWAY's answer is dropped. */
static void test_server_order(void)
{
    arpc_buf in;
    arpc__buf_init(&in);
    frame(&in, strict_call, sizeof(strict_call));
    frame(&in, old_call, sizeof(old_call));
    uint8_t oneway[sizeof(strict_call)];
    memcpy(oneway, strict_call, sizeof(oneway));
    oneway[3] = ARPC__THRIFT_ONEWAY;
    oneway[15] = 9;
    frame(&in, oneway, sizeof(oneway));
    uint8_t fourth[sizeof(strict_call)];
    memcpy(fourth, strict_call, sizeof(fourth));
    fourth[15] = 11;
    frame(&in, fourth, sizeof(fourth));
    for (size_t chunk = 1; chunk <= in.len; chunk++) {
        side srv;
        side_open(&srv, ARPC__PROTO_SERVER, 0, NULL);
        ASSERT_EQ(feed_split(&srv, arpc__buf_head(&in), in.len, chunk), 0);
        ASSERT_EQ(srv.n, 4);
        for (size_t i = 0; i < 4; i++) {
            ASSERT_EQ(srv.ev[i].kind, EV_REQUEST);
            ASSERT_EQ(srv.ev[i].id, i + 1);
            ASSERT_STREQ(srv.ev[i].method, "echo");
            ASSERT_EQ(srv.ev[i].payload_len, sizeof(strict_call) - STRICT_HEADER);
            ASSERT_MEMEQ(srv.ev[i].payload, strict_call + STRICT_HEADER, 10);
        }
        ASSERT_EQ(srv.out.len, 0);
        respond(&srv, 4, 0, "D", 1);
        respond(&srv, 3, 0, "C", 1);
        respond(&srv, 2, ARPC_ENOMETHOD, NULL, 0);
        ASSERT_EQ(srv.out.len, 0); /* all wait for the first */
        ASSERT_EQ(arpc__proto_thrift.send_response(srv.s, &srv.out,
                                                   &(arpc__msg){.id = 3, .status = 0}),
                  ARPC_EINVAL); /* answered twice */
        ASSERT_EQ(arpc__proto_thrift.send_response(srv.s, &srv.out, &(arpc__msg){.id = 9}),
                  ARPC_EINVAL); /* never asked */
        respond(&srv, 1, 0, "A", 1);
        parsed p[8];
        ASSERT_EQ(parse_all(&srv.out, p, 8), 3);
        ASSERT_EQ(p[0].h.type, ARPC__THRIFT_REPLY);
        ASSERT_EQ(p[0].h.seqid, 7);
        ASSERT_MEMEQ(p[0].h.name, "echo", 4);
        ASSERT_TRUE(p[0].body_len == 1 && p[0].body[0] == 'A');
        ASSERT_EQ(p[1].h.type, ARPC__THRIFT_EXCEPTION);
        ASSERT_EQ(p[1].h.seqid, 7);
        arpc__thrift_appex ex;
        ASSERT_OK(arpc__thrift_appex_read(p[1].body, p[1].body_len, &ex));
        ASSERT_EQ(ex.type, ARPC__THRIFT_APPEX_UNKNOWN_METHOD);
        ASSERT_EQ(p[2].h.seqid, 11);
        ASSERT_TRUE(p[2].body_len == 1 && p[2].body[0] == 'D');
        side_close(&srv);
    }
    arpc__buf_fini(&in);
}

/* Many requests answered in reverse order: the ring grows past its first size with
 * answers held, and they still leave in order. */
static void test_server_deep(void)
{
    side srv;
    side_open(&srv, ARPC__PROTO_SERVER, 0, NULL);
    arpc_buf in;
    arpc__buf_init(&in);
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        uint8_t m[sizeof(strict_call)];
        memcpy(m, strict_call, sizeof(m));
        m[15] = (uint8_t)i;
        frame(&in, m, sizeof(m));
    }
    for (int round = 0; round < 2; round++) {
        srv.n = 0;
        ASSERT_EQ(feed_split(&srv, arpc__buf_head(&in), in.len, 7), 0);
        ASSERT_EQ(srv.n, N);
        for (int i = N - 1; i >= 0; i--) {
            uint8_t v = (uint8_t)i;
            respond(&srv, srv.ev[i].id, 0, &v, 1);
        }
        parsed p[N];
        ASSERT_EQ(parse_all(&srv.out, p, N), N);
        for (int i = 0; i < N; i++) {
            ASSERT_EQ(p[i].h.seqid, i);
            ASSERT_EQ(p[i].body[0], i);
        }
        arpc__buf_clear(&srv.out);
    }
    arpc__buf_fini(&in);
    side_close(&srv);
}

/* A client that pipelines far past the server's limit (max_in_flight 4: 2 x 4 + 64
 * requests in flight, answered or not) loses its connection instead of making the server
 * hold answers without bound. */
static void test_server_pipeline_bound(void)
{
    side srv;
    side_open_limited(&srv, ARPC__PROTO_SERVER, 0, NULL, 4);
    arpc_buf in;
    arpc__buf_init(&in);
    enum { BOUND = 2 * 4 + 64 };
    for (int i = 0; i <= BOUND; i++)
        frame(&in, strict_call, sizeof(strict_call));
    size_t one = 4 + sizeof(strict_call);
    /* Nothing is answered: the requests pile up to the bound, which still goes. */
    for (int i = 0; i < BOUND; i++) {
        srv.n = 0;
        ASSERT_EQ(arpc__proto_thrift.feed(srv.s, arpc__buf_head(&in) + (size_t)i * one, one,
                                          &srv.out),
                  (int64_t)one);
    }
    ASSERT_ERR(arpc__proto_thrift.feed(srv.s, arpc__buf_head(&in) + (size_t)BOUND * one, one,
                                       &srv.out),
               ARPC_EOVERLOAD);
    arpc__buf_fini(&in);
    side_close(&srv);
}

static void test_server_errors(void)
{
    side srv;
    arpc_buf in;
    arpc__buf_init(&in);
    /* A frame over the limit closes at its header, before its body. */
    side_open(&srv, ARPC__PROTO_SERVER, 20, NULL);
    frame(&in, strict_call, sizeof(strict_call)); /* 26 bytes */
    ASSERT_EQ(arpc__proto_thrift.feed(srv.s, arpc__buf_head(&in), 4, &srv.out), ARPC_ETOOBIG);
    ASSERT_TRUE(srv.s->close_reason != NULL);
    side_close(&srv);
    /* A reply towards a server; a bad version; a frame too short for any message; a
     * negative length; a header longer than its frame. */
    uint8_t reply[sizeof(strict_call)];
    memcpy(reply, strict_call, sizeof(reply));
    reply[3] = ARPC__THRIFT_REPLY;
    uint8_t v2[sizeof(strict_call)];
    memcpy(v2, strict_call, sizeof(v2));
    v2[1] = 2;
    static const uint8_t tiny[] = {0, 0, 0, 3, 1, 2, 3};
    static const uint8_t neg[] = {0x80, 0, 0, 0};
    static const uint8_t cut[] = {0, 0, 0, 12, 0x80, 1, 0, 1, 0, 0, 0, 9, 'a', 'b', 'c', 'd'};
    struct {
        const uint8_t *d;
        size_t len;
        bool framed;
        int want;
    } bad[] = {{reply, sizeof(reply), true, ARPC_EFRAME},
               {v2, sizeof(v2), true, ARPC_EVERSION},
               {tiny, sizeof(tiny), false, ARPC_EFRAME},
               {neg, sizeof(neg), false, ARPC_EFRAME},
               {cut, sizeof(cut), false, ARPC_EFRAME}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        side_open(&srv, ARPC__PROTO_SERVER, 0, NULL);
        arpc__buf_clear(&in);
        if (bad[i].framed)
            frame(&in, bad[i].d, bad[i].len);
        else
            ASSERT_OK(arpc__buf_append(&in, bad[i].d, bad[i].len));
        ASSERT_EQ(feed_split(&srv, arpc__buf_head(&in), in.len, 1), bad[i].want);
        ASSERT_EQ(srv.n, 0);
        ASSERT_TRUE(srv.s->close_reason != NULL);
        side_close(&srv);
    }
    /* A server cannot probe a Thrift client. */
    side_open(&srv, ARPC__PROTO_SERVER, 0, NULL);
    ASSERT_EQ(arpc__proto_thrift.send_ping(srv.s, &srv.out, 1, false), ARPC_EAGAIN);
    ASSERT_EQ(srv.out.len, 0);
    /* Input waits while the connection is closed. */
    arpc__buf_clear(&in);
    frame(&in, strict_call, sizeof(strict_call));
    srv.stop = true;
    ASSERT_EQ(arpc__proto_thrift.feed(srv.s, arpc__buf_head(&in), in.len, &srv.out), 0);
    ASSERT_EQ(srv.n, 0);
    side_close(&srv);
    arpc__buf_fini(&in);
}

/* The client: its calls on the wire, answers raised with the calls' ids, split at every
 * byte; exceptions as statuses; the probe and when it is held back. */
static void test_client(void)
{
    side cli;
    side_open(&cli, ARPC__PROTO_CLIENT, 0, "ping");
    ASSERT_OK(arpc__proto_thrift.send_ping(cli.s, &cli.out, 1, true)); /* the connect probe */
    arpc__msg call = {.id = 10, .method = "echo", .method_len = 4, .payload = "\0", .payload_len = 1};
    ASSERT_OK(arpc__proto_thrift.send_request(cli.s, &cli.out, &call));
    call.id = 11;
    ASSERT_OK(arpc__proto_thrift.send_request(cli.s, &cli.out, &call));
    /* Calls in flight: the probe waits. */
    ASSERT_EQ(arpc__proto_thrift.send_ping(cli.s, &cli.out, 2, false), ARPC_EAGAIN);
    parsed p[4];
    ASSERT_EQ(parse_all(&cli.out, p, 4), 3);
    ASSERT_MEMEQ(p[0].h.name, "ping", 4);
    ASSERT_TRUE(p[0].body_len == 1 && p[0].body[0] == 0); /* no arguments */
    ASSERT_EQ(p[1].h.type, ARPC__THRIFT_CALL);
    ASSERT_EQ(p[1].h.seqid, p[0].h.seqid + 1);
    ASSERT_EQ(p[2].h.seqid, p[0].h.seqid + 2);
    /* Answers: the probe's (an unknown-method exception), a REPLY, an ESHUTDOWN. */
    arpc_buf in, ex;
    arpc__buf_init(&in);
    arpc__buf_init(&ex);
    ASSERT_OK(arpc__thrift_appex_write(&ex, 1, "Unknown method ping", 19));
    ASSERT_OK(arpc__thrift_encode(&in, "ping", 4, ARPC__THRIFT_EXCEPTION, p[0].h.seqid,
                                  arpc__buf_head(&ex), ex.len));
    ASSERT_OK(arpc__thrift_encode(&in, "echo", 4, ARPC__THRIFT_REPLY, p[1].h.seqid, "ok", 2));
    arpc__buf_clear(&ex);
    ASSERT_OK(arpc__thrift_appex_write(&ex, 6, "ESHUTDOWN: bye", 14));
    ASSERT_OK(arpc__thrift_encode(&in, "echo", 4, ARPC__THRIFT_EXCEPTION, p[2].h.seqid,
                                  arpc__buf_head(&ex), ex.len));
    /* Split at every byte: a fresh client each time, its messages sent the same way. */
    for (size_t chunk = 1; chunk <= in.len; chunk++) {
        side c;
        side_open(&c, ARPC__PROTO_CLIENT, 0, "ping");
        ASSERT_OK(arpc__proto_thrift.send_ping(c.s, &c.out, 1, true));
        call.id = 10;
        ASSERT_OK(arpc__proto_thrift.send_request(c.s, &c.out, &call));
        call.id = 11;
        ASSERT_OK(arpc__proto_thrift.send_request(c.s, &c.out, &call));
        ASSERT_EQ(feed_split(&c, arpc__buf_head(&in), in.len, chunk), 0);
        ASSERT_EQ(c.n, 3);
        ASSERT_TRUE(c.ev[0].kind == EV_PONG && c.ev[0].id == 1);
        ASSERT_TRUE(c.ev[1].kind == EV_RESPONSE && c.ev[1].id == 10 && c.ev[1].status == 0);
        ASSERT_TRUE(c.ev[1].payload_len == 2 && memcmp(c.ev[1].payload, "ok", 2) == 0);
        ASSERT_TRUE(c.ev[2].id == 11 && c.ev[2].status == ARPC_ESHUTDOWN);
        ASSERT_MEMEQ(c.ev[2].payload, "ESHUTDOWN: bye", 14);
        /* Nothing in flight: the probe may go again. */
        ASSERT_OK(arpc__proto_thrift.send_ping(c.s, &c.out, 2, false));
        side_close(&c);
    }
    side_close(&cli);
    arpc__buf_fini(&in);
    arpc__buf_fini(&ex);
}

static void test_client_errors(void)
{
    arpc__msg call = {.id = 1, .method = "echo", .method_len = 4, .payload = "\0", .payload_len = 1};
    arpc_buf in;
    arpc__buf_init(&in);
    /* A wrong sequence id breaks the connection. */
    side c;
    side_open(&c, ARPC__PROTO_CLIENT, 0, NULL);
    ASSERT_OK(arpc__proto_thrift.send_request(c.s, &c.out, &call));
    ASSERT_OK(arpc__thrift_encode(&in, "echo", 4, ARPC__THRIFT_REPLY, 5, "", 0));
    ASSERT_EQ(feed_split(&c, arpc__buf_head(&in), in.len, 3), ARPC_EFRAME);
    ASSERT_EQ(c.n, 0);
    side_close(&c);
    /* An answer to nothing; a CALL towards a client. */
    side_open(&c, ARPC__PROTO_CLIENT, 0, NULL);
    arpc__buf_clear(&in);
    ASSERT_OK(arpc__thrift_encode(&in, "echo", 4, ARPC__THRIFT_REPLY, 0, "", 0));
    ASSERT_EQ(feed_split(&c, arpc__buf_head(&in), in.len, 100), ARPC_EFRAME);
    side_close(&c);
    side_open(&c, ARPC__PROTO_CLIENT, 0, NULL);
    ASSERT_OK(arpc__proto_thrift.send_request(c.s, &c.out, &call));
    arpc__buf_clear(&in);
    ASSERT_OK(arpc__thrift_encode(&in, "echo", 4, ARPC__THRIFT_CALL, 0, "", 0));
    ASSERT_EQ(feed_split(&c, arpc__buf_head(&in), in.len, 100), ARPC_EFRAME);
    side_close(&c);
    /* A malformed exception fails its call alone; a canceled call lets the probe go, and
     * its late answer is still raised (the channel drops it). */
    side_open(&c, ARPC__PROTO_CLIENT, 0, NULL);
    ASSERT_OK(arpc__proto_thrift.send_request(c.s, &c.out, &call));
    call.id = 2;
    ASSERT_OK(arpc__proto_thrift.send_request(c.s, &c.out, &call));
    ASSERT_EQ(arpc__proto_thrift.send_ping(c.s, &c.out, 1, false), ARPC_EAGAIN);
    ASSERT_EQ(arpc__proto_thrift.send_cancel(c.s, &c.out, 1), ARPC_EINVAL);
    ASSERT_EQ(arpc__proto_thrift.send_ping(c.s, &c.out, 1, false), ARPC_EAGAIN);
    ASSERT_EQ(arpc__proto_thrift.send_cancel(c.s, &c.out, 2), ARPC_EINVAL);
    ASSERT_OK(arpc__proto_thrift.send_ping(c.s, &c.out, 1, false));
    arpc__buf_clear(&in);
    static const uint8_t broken[] = {0x0b, 0, 1, 0, 0, 0, 9, 'x'};
    ASSERT_OK(arpc__thrift_encode(&in, "echo", 4, ARPC__THRIFT_EXCEPTION, 0, broken,
                                  sizeof(broken)));
    ASSERT_OK(arpc__thrift_encode(&in, "echo", 4, ARPC__THRIFT_REPLY, 1, "r", 1));
    ASSERT_OK(arpc__thrift_encode(&in, "arpc.probe", 10, ARPC__THRIFT_REPLY, 2, "", 0));
    ASSERT_EQ(feed_split(&c, arpc__buf_head(&in), in.len, 1), 0);
    ASSERT_EQ(c.n, 3);
    ASSERT_TRUE(c.ev[0].id == 1 && c.ev[0].status == ARPC_EFRAME);
    ASSERT_TRUE(c.ev[1].id == 2 && c.ev[1].status == 0);
    ASSERT_TRUE(c.ev[2].kind == EV_PONG && c.ev[2].id == 1);
    /* An answer over the client's limit closes. */
    side_close(&c);
    side_open(&c, ARPC__PROTO_CLIENT, 16, NULL);
    ASSERT_OK(arpc__proto_thrift.send_request(c.s, &c.out, &call));
    arpc__buf_clear(&in);
    ASSERT_OK(arpc__thrift_encode(&in, "echo", 4, ARPC__THRIFT_REPLY, 0, "0123456789", 10));
    ASSERT_EQ(feed_split(&c, arpc__buf_head(&in), in.len, 1), ARPC_ETOOBIG);
    side_close(&c);
    arpc__buf_fini(&in);
}

int main(void)
{
    RUN_TEST(test_header_decode);
    RUN_TEST(test_header_malformed);
    RUN_TEST(test_encode);
    RUN_TEST(test_appex);
    RUN_TEST(test_types_roundtrip);
    RUN_TEST(test_types_skip_and_truncate);
    RUN_TEST(test_types_bounds);
    RUN_TEST(test_detect);
    RUN_TEST(test_server_order);
    RUN_TEST(test_server_deep);
    RUN_TEST(test_server_pipeline_bound);
    RUN_TEST(test_server_errors);
    RUN_TEST(test_client);
    RUN_TEST(test_client_errors);
    return 0;
}

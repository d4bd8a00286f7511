/*
 * The native frame codec: golden bytes for every frame type (and for the settings a PING
 * and a PONG carry), a stream split at every byte position and fed the way a connection
 * feeds it, inputs that end at a PROT_NONE page, every malformed header field, size limits
 * (and the header an oversized frame is reported with), the settings reader's leniency,
 * the timeout_ms encoding, encoder errors and a seeded random round trip; and metadata
 * (protocol.md section 10): golden REQUEST and RESPONSE frames with a block, the METADATA
 * setting, a stream of frames with and without blocks split at every position, every prefix
 * at a PROT_NONE page, and every malformed block rejected without reading past it; and
 * streams (section 13): golden OPEN, MESSAGE, HALF_CLOSE, END, CANCEL and WINDOW frames with
 * and without blocks, the STREAMS and STREAM_WINDOW settings (and the window's floor), and
 * stream frames in the split-at-every-position, one-byte-at-a-time and random streams.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <arpc/buf.h>
#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "proto/frame.h"
#include "proto/metadata.h"
#include "test.h"

#define MAX_FRAME ARPC__DEFAULT_MAX_FRAME

/* ---- helpers ---------------------------------------------------------------------- */

static void set_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void set_le32(uint8_t *p, uint32_t v)
{
    set_le16(p, (uint16_t)v);
    set_le16(p + 2, (uint16_t)(v >> 16));
}

static size_t frame_size(const arpc__frame *f)
{
    return ARPC__FRAME_HEADER_SIZE + (size_t)f->method_len + f->payload_len;
}

static void assert_frame_eq(const arpc__frame *got, const arpc__frame *want)
{
    ASSERT_EQ(got->type, want->type);
    ASSERT_EQ(got->flags, want->flags);
    ASSERT_TRUE(got->request_id == want->request_id);
    ASSERT_EQ(got->status, want->status);
    ASSERT_EQ(got->timeout_ms, want->timeout_ms);
    ASSERT_EQ(got->method_len, want->method_len);
    ASSERT_EQ(got->payload_len, want->payload_len);
    ASSERT_TRUE(got->method != NULL && got->payload != NULL);
    if (want->method_len > 0)
        ASSERT_MEMEQ(got->method, want->method, want->method_len);
    if (want->payload_len > 0)
        ASSERT_MEMEQ(got->payload, want->payload, want->payload_len);
}

/* Encodes `f` with the encoder its type calls for: a PING or PONG with a payload carries
 * settings, which must be in the canonical form the settings encoder writes. */
static int encode_frame(arpc_buf *b, const arpc__frame *f)
{
    arpc__settings settings;
    switch (f->type) {
    case ARPC__FRAME_REQUEST:
        if (f->flags & ARPC__FLAG_STREAM)
            return arpc__frame_encode_open(b, f->request_id, f->timeout_ms, f->method,
                                           f->method_len, NULL);
        return arpc__frame_encode_request(b, f->request_id, f->timeout_ms, f->flags, f->method,
                                          f->method_len, f->payload, f->payload_len);
    case ARPC__FRAME_MESSAGE:
        return arpc__frame_encode_message(b, f->request_id, NULL, f->payload, f->payload_len);
    case ARPC__FRAME_END:
        return arpc__frame_encode_end(b, f->request_id, f->status, NULL, f->payload,
                                      f->payload_len);
    case ARPC__FRAME_WINDOW:
        return arpc__frame_encode_window(b, f->request_id,
                                         (uint32_t)f->payload[0] | (uint32_t)f->payload[1] << 8 |
                                             (uint32_t)f->payload[2] << 16 |
                                             (uint32_t)f->payload[3] << 24);
    case ARPC__FRAME_RESPONSE:
        return arpc__frame_encode_response(b, f->request_id, f->status, f->payload, f->payload_len);
    case ARPC__FRAME_PING:
    case ARPC__FRAME_PONG:
        if (f->payload_len == 0)
            return arpc__frame_encode_control(b, f->type, f->request_id, f->status);
        arpc__settings_decode(f->payload, f->payload_len, &settings);
        return arpc__frame_encode_settings(b, f->type, f->request_id, &settings);
    default:
        return arpc__frame_encode_control(b, f->type, f->request_id, f->status);
    }
}

/* What a connection does with its input: append what arrived, decode every complete frame,
 * keep the rest for the next read. */
struct reader {
    arpc_buf *in;
    const arpc__frame *want;
    size_t nwant;
    size_t ngot;
};

static void reader_init(struct reader *r, const arpc__frame *want, size_t nwant)
{
    ASSERT_OK(arpc_buf_create(&r->in));
    r->want = want;
    r->nwant = nwant;
    r->ngot = 0;
}

static void reader_fini(struct reader *r)
{
    arpc_buf_destroy(r->in);
}

static void reader_feed(struct reader *r, const uint8_t *chunk, size_t n)
{
    ASSERT_OK(arpc_buf_append(r->in, chunk, n));
    /* An empty buffer may have no memory yet: do not form NULL + 0. */
    while (r->in->len > 0) {
        arpc__frame f;
        int64_t rc = arpc__frame_decode(arpc__buf_head(r->in), r->in->len, MAX_FRAME, &f);
        ASSERT_GE(rc, 0);
        if (rc == 0)
            break;
        ASSERT_LT(r->ngot, r->nwant);
        ASSERT_EQ(rc, frame_size(&r->want[r->ngot]));
        assert_frame_eq(&f, &r->want[r->ngot]);
        r->ngot++;
        arpc__buf_consume(r->in, (size_t)rc);
    }
}

/* All frames arrived and nothing is left over. */
static void reader_assert_done(const struct reader *r)
{
    ASSERT_EQ(r->ngot, r->nwant);
    ASSERT_EQ(r->in->len, 0);
}

/* ---- golden bytes ----------------------------------------------------------------- */

static const uint8_t golden_request[] = {
    0x41, 0x52, 0x01, 0x01,                         /* magic, version 1, REQUEST */
    0x01, 0x00,                                     /* flags: IDEMPOTENT */
    0x08, 0x00,                                     /* method_len 8 */
    0x03, 0x00, 0x00, 0x00,                         /* payload_len 3 */
    0x00, 0x00, 0x00, 0x00,                         /* status 0 */
    0xdc, 0x05, 0x00, 0x00,                         /* timeout_ms 1500 */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* request_id 0x0102030405060708 */
    'c',  'a',  'l',  'c',  '.',  'A',  'd',  'd',  /* method */
    0x01, 0x02, 0x03,                               /* payload */
};

static const uint8_t golden_response_ok[] = {
    0x41, 0x52, 0x01, 0x02,                         /* RESPONSE */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x02, 0x00, 0x00, 0x00,                         /* payload_len 2 */
    0x00, 0x00, 0x00, 0x00,                         /* status 0: ok */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* request_id */
    'h',  'i',
};

static const uint8_t golden_response_app_error[] = {
    0x41, 0x52, 0x01, 0x02,                              /* RESPONSE */
    0x00, 0x00, 0x00, 0x00,                              /* flags, method_len */
    0x09, 0x00, 0x00, 0x00,                              /* payload_len 9 */
    0x94, 0x01, 0x00, 0x00,                              /* status 404: an application code */
    0x00, 0x00, 0x00, 0x00,                              /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                              /* reserved */
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,      /* request_id 7 */
    'n',  'o',  't',  ' ',  'f',  'o',  'u',  'n',  'd', /* the error message */
};

static const uint8_t golden_response_arpc_error[] = {
    0x41, 0x52, 0x01, 0x02,                         /* RESPONSE */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x00, 0x00, 0x00, 0x00,                         /* payload_len 0 */
    0x15, 0xfc, 0xff, 0xff,                         /* status -1003: ARPC_ENOMETHOD */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* request_id UINT64_MAX */
};

static const uint8_t golden_ping[] = {
    0x41, 0x52, 0x01, 0x03,                         /* PING */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x00, 0x00, 0x00, 0x00,                         /* payload_len */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* request_id 0x1122334455667788 */
};

static const uint8_t golden_pong[] = {
    0x41, 0x52, 0x01, 0x04,                         /* PONG */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x00, 0x00, 0x00, 0x00,                         /* payload_len */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* echoes the PING's request_id */
};

/* The client's first PING: its settings (max frame 16 MiB). */
static const uint8_t golden_ping_settings[] = {
    0x41, 0x52, 0x01, 0x03,                         /* PING */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x08, 0x00, 0x00, 0x00,                         /* payload_len 8: one setting */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* PING id 1 */
    0x01, 0x00, 0x04, 0x00,                         /* MAX_FRAME_SIZE, 4 bytes: */
    0x00, 0x00, 0x00, 0x01,                         /*   16,777,216 */
};

/* The server's PONG to it: its settings (max frame 16 MiB, 2500 in flight per connection). */
static const uint8_t golden_pong_settings[] = {
    0x41, 0x52, 0x01, 0x04,                         /* PONG */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x10, 0x00, 0x00, 0x00,                         /* payload_len 16: two settings */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* echoes PING id 1 */
    0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, /* MAX_FRAME_SIZE 16,777,216 */
    0x02, 0x00, 0x04, 0x00, 0xc4, 0x09, 0x00, 0x00, /* MAX_IN_FLIGHT 2500 */
};

static const uint8_t golden_goaway[] = {
    0x41, 0x52, 0x01, 0x05,                         /* GOAWAY */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x00, 0x00, 0x00, 0x00,                         /* payload_len */
    0x13, 0xfc, 0xff, 0xff,                         /* status -1005: ARPC_ESHUTDOWN */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* last request_id answered: 41 */
};

/* Streams (protocol.md section 13).  A stream's OPEN: REQUEST with the STREAM flag, id 3,
 * 2000 ms, method "m.S", no metadata and no payload. */
static const uint8_t golden_open[] = {
    0x41, 0x52, 0x01, 0x01,                         /* REQUEST */
    0x04, 0x00,                                     /* flags: STREAM */
    0x03, 0x00,                                     /* method_len 3 */
    0x00, 0x00, 0x00, 0x00,                         /* payload_len 0 */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0xd0, 0x07, 0x00, 0x00,                         /* timeout_ms 2000 */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_id 3: the stream */
    'm',  '.',  'S',                                /* method */
};

static const uint8_t golden_message[] = {
    0x41, 0x52, 0x01, 0x06,                         /* MESSAGE */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x02, 0x00, 0x00, 0x00,                         /* payload_len 2 */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* stream 3 */
    'h',  'i',                                      /* one message */
};

static const uint8_t golden_half_close[] = {
    0x41, 0x52, 0x01, 0x07,                         /* HALF_CLOSE */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x00, 0x00, 0x00, 0x00,                         /* payload_len */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* stream 3 */
};

static const uint8_t golden_end[] = {
    0x41, 0x52, 0x01, 0x08,                         /* END */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x03, 0x00, 0x00, 0x00,                         /* payload_len 3 */
    0x05, 0x00, 0x00, 0x00,                         /* status 5: an application code */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* stream 3 */
    'b',  'a',  'd',                                /* the error message */
};

static const uint8_t golden_cancel[] = {
    0x41, 0x52, 0x01, 0x09,                         /* CANCEL */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x00, 0x00, 0x00, 0x00,                         /* payload_len */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* stream (or request) 3 */
};

static const uint8_t golden_window[] = {
    0x41, 0x52, 0x01, 0x0a,                         /* WINDOW */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x04, 0x00, 0x00, 0x00,                         /* payload_len 4 */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* stream 3 */
    0x00, 0x00, 0x02, 0x00,                         /* 131,072 bytes granted */
};

struct golden {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    arpc__frame frame;
};

static const struct golden goldens[] = {
    {"request",
     golden_request,
     sizeof(golden_request),
     {.type = ARPC__FRAME_REQUEST,
      .flags = ARPC__FLAG_IDEMPOTENT,
      .request_id = 0x0102030405060708u,
      .timeout_ms = 1500,
      .method = "calc.Add",
      .method_len = 8,
      .payload = (const uint8_t *)"\x01\x02\x03",
      .payload_len = 3}},
    {"response ok",
     golden_response_ok,
     sizeof(golden_response_ok),
     {.type = ARPC__FRAME_RESPONSE,
      .request_id = 0x0102030405060708u,
      .payload = (const uint8_t *)"hi",
      .payload_len = 2}},
    {"response application error",
     golden_response_app_error,
     sizeof(golden_response_app_error),
     {.type = ARPC__FRAME_RESPONSE,
      .request_id = 7,
      .status = 404,
      .payload = (const uint8_t *)"not found",
      .payload_len = 9}},
    {"response arpc error",
     golden_response_arpc_error,
     sizeof(golden_response_arpc_error),
     {.type = ARPC__FRAME_RESPONSE, .request_id = UINT64_MAX, .status = ARPC_ENOMETHOD}},
    {"ping",
     golden_ping,
     sizeof(golden_ping),
     {.type = ARPC__FRAME_PING, .request_id = 0x1122334455667788u}},
    {"pong",
     golden_pong,
     sizeof(golden_pong),
     {.type = ARPC__FRAME_PONG, .request_id = 0x1122334455667788u}},
    {"ping with settings",
     golden_ping_settings,
     sizeof(golden_ping_settings),
     {.type = ARPC__FRAME_PING,
      .request_id = 1,
      .payload = golden_ping_settings + 32,
      .payload_len = 8}},
    {"pong with settings",
     golden_pong_settings,
     sizeof(golden_pong_settings),
     {.type = ARPC__FRAME_PONG,
      .request_id = 1,
      .payload = golden_pong_settings + 32,
      .payload_len = 16}},
    {"goaway",
     golden_goaway,
     sizeof(golden_goaway),
     {.type = ARPC__FRAME_GOAWAY, .request_id = 41, .status = ARPC_ESHUTDOWN}},
    {"open",
     golden_open,
     sizeof(golden_open),
     {.type = ARPC__FRAME_REQUEST,
      .flags = ARPC__FLAG_STREAM,
      .request_id = 3,
      .timeout_ms = 2000,
      .method = "m.S",
      .method_len = 3}},
    {"message",
     golden_message,
     sizeof(golden_message),
     {.type = ARPC__FRAME_MESSAGE,
      .request_id = 3,
      .payload = (const uint8_t *)"hi",
      .payload_len = 2}},
    {"half_close",
     golden_half_close,
     sizeof(golden_half_close),
     {.type = ARPC__FRAME_HALF_CLOSE, .request_id = 3}},
    {"end",
     golden_end,
     sizeof(golden_end),
     {.type = ARPC__FRAME_END,
      .request_id = 3,
      .status = 5,
      .payload = (const uint8_t *)"bad",
      .payload_len = 3}},
    {"cancel", golden_cancel, sizeof(golden_cancel), {.type = ARPC__FRAME_CANCEL, .request_id = 3}},
    {"window",
     golden_window,
     sizeof(golden_window),
     {.type = ARPC__FRAME_WINDOW,
      .request_id = 3,
      .payload = golden_window + 32,
      .payload_len = 4}},
};

#define NGOLDENS (sizeof(goldens) / sizeof(goldens[0]))

static void test_golden_encode(void)
{
    arpc_buf *b;

    ASSERT_OK(arpc_buf_create(&b));
    for (size_t i = 0; i < NGOLDENS; i++) {
        const struct golden *g = &goldens[i];
        fprintf(stderr, "     %s\n", g->name);
        arpc_buf_clear(b);
        ASSERT_OK(encode_frame(b, &g->frame));
        ASSERT_EQ(arpc_buf_len(b), g->len);
        ASSERT_MEMEQ(arpc_buf_data(b), g->bytes, g->len);

        uint8_t header[ARPC__FRAME_HEADER_SIZE];
        arpc__frame_write_header(header, &g->frame);
        ASSERT_MEMEQ(header, g->bytes, sizeof(header));
    }
    arpc_buf_destroy(b);
}

static void test_golden_decode(void)
{
    for (size_t i = 0; i < NGOLDENS; i++) {
        const struct golden *g = &goldens[i];
        arpc__frame f;
        fprintf(stderr, "     %s\n", g->name);
        ASSERT_EQ(arpc__frame_decode(g->bytes, g->len, MAX_FRAME, &f), g->len);
        assert_frame_eq(&f, &g->frame);
        /* The views point into the input, right after the header. */
        ASSERT_TRUE(f.method == (const char *)g->bytes + ARPC__FRAME_HEADER_SIZE);
        ASSERT_TRUE(f.payload == g->bytes + ARPC__FRAME_HEADER_SIZE + f.method_len);
    }
}

/* ---- a stream of frames, split and fed incrementally ------------------------------ */

static uint8_t long_method[ARPC__MAX_METHOD_LEN];
static uint8_t pattern[4096];

static void fill_pattern(void)
{
    memset(long_method, 'm', sizeof(long_method));
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 31 + 7);
}

/* Every type, method lengths 1 and 255, payloads of 0, 1, 31, 32, 33 and 300 bytes. */
static size_t stream_frames(arpc__frame *out)
{
    const arpc__frame frames[] = {
        {.type = ARPC__FRAME_REQUEST, .request_id = 1, .method = "a", .method_len = 1},
        {.type = ARPC__FRAME_RESPONSE, .request_id = 1},
        {.type = ARPC__FRAME_PING, .request_id = 100},
        {.type = ARPC__FRAME_REQUEST,
         .flags = ARPC__FLAG_IDEMPOTENT,
         .request_id = 2,
         .timeout_ms = 250,
         .method = (const char *)long_method,
         .method_len = ARPC__MAX_METHOD_LEN,
         .payload = pattern,
         .payload_len = 300},
        {.type = ARPC__FRAME_PONG, .request_id = 100},
        {.type = ARPC__FRAME_RESPONSE,
         .request_id = 2,
         .status = 3,
         .payload = (const uint8_t *)"boom",
         .payload_len = 4},
        {.type = ARPC__FRAME_REQUEST,
         .request_id = 3,
         .timeout_ms = UINT32_MAX,
         .method = "calc.Add",
         .method_len = 8,
         .payload = pattern + 1,
         .payload_len = 1},
        {.type = ARPC__FRAME_RESPONSE, .request_id = 3, .status = ARPC_EOVERLOAD},
        {.type = ARPC__FRAME_REQUEST,
         .request_id = 4,
         .method = "x.y",
         .method_len = 3,
         .payload = pattern + 2,
         .payload_len = 31},
        {.type = ARPC__FRAME_RESPONSE, .request_id = 4, .payload = pattern + 3, .payload_len = 32},
        {.type = ARPC__FRAME_RESPONSE, .request_id = 4, .payload = pattern + 4, .payload_len = 33},
        {.type = ARPC__FRAME_PING,
         .request_id = 1,
         .payload = golden_ping_settings + 32,
         .payload_len = 8},
        {.type = ARPC__FRAME_PONG,
         .request_id = 1,
         .payload = golden_pong_settings + 32,
         .payload_len = 16},
        /* A stream (section 13): every stream frame, payloads around the header size. */
        {.type = ARPC__FRAME_REQUEST,
         .flags = ARPC__FLAG_STREAM,
         .request_id = 5,
         .timeout_ms = 9,
         .method = "s.S",
         .method_len = 3},
        {.type = ARPC__FRAME_MESSAGE, .request_id = 5, .payload = pattern + 5, .payload_len = 31},
        {.type = ARPC__FRAME_WINDOW,
         .request_id = 5,
         .payload = golden_window + 32,
         .payload_len = 4},
        {.type = ARPC__FRAME_MESSAGE, .request_id = 5},
        {.type = ARPC__FRAME_MESSAGE, .request_id = 5, .payload = pattern + 6, .payload_len = 300},
        {.type = ARPC__FRAME_HALF_CLOSE, .request_id = 5},
        {.type = ARPC__FRAME_CANCEL, .request_id = 4},
        {.type = ARPC__FRAME_END,
         .request_id = 5,
         .status = ARPC_ECANCELED,
         .payload = pattern + 7,
         .payload_len = 33},
        {.type = ARPC__FRAME_GOAWAY, .request_id = 4, .status = ARPC_ESHUTDOWN},
    };
    size_t n = sizeof(frames) / sizeof(frames[0]);
    memcpy(out, frames, sizeof(frames));
    return n;
}

static arpc_buf *encode_all(const arpc__frame *frames, size_t n)
{
    arpc_buf *b;

    ASSERT_OK(arpc_buf_create(&b));
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(encode_frame(b, &frames[i]));
    return b;
}

static void test_stream_split_at_every_position(void)
{
    arpc__frame frames[32];
    size_t n = stream_frames(frames);
    arpc_buf *stream = encode_all(frames, n);
    const uint8_t *bytes = arpc_buf_data(stream);
    size_t len = arpc_buf_len(stream);

    for (size_t split = 0; split <= len; split++) {
        struct reader r;
        reader_init(&r, frames, n);
        reader_feed(&r, bytes, split);
        reader_feed(&r, bytes + split, len - split);
        reader_assert_done(&r);
        reader_fini(&r);
    }
    arpc_buf_destroy(stream);
}

static void test_stream_one_byte_at_a_time(void)
{
    arpc__frame frames[32];
    size_t n = stream_frames(frames);
    arpc_buf *stream = encode_all(frames, n);
    const uint8_t *bytes = arpc_buf_data(stream);
    struct reader r;

    reader_init(&r, frames, n);
    for (size_t i = 0; i < arpc_buf_len(stream); i++)
        reader_feed(&r, bytes + i, 1);
    reader_assert_done(&r);
    reader_fini(&r);
    arpc_buf_destroy(stream);
}

/* ---- inputs that end at an unreadable page ---------------------------------------- */

struct guarded {
    uint8_t *map;
    size_t page;
};

/* Two pages, the second PROT_NONE: bytes placed right before it end at the guard. */
static void guarded_init(struct guarded *g)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->map = mmap(NULL, 2 * g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(g->map != MAP_FAILED);
    ASSERT_EQ(mprotect(g->map + g->page, g->page, PROT_NONE), 0);
}

static void guarded_fini(struct guarded *g)
{
    ASSERT_EQ(munmap(g->map, 2 * g->page), 0);
}

static const uint8_t *guarded_place(struct guarded *g, const uint8_t *bytes, size_t n)
{
    uint8_t *p = g->map + g->page - n;
    ASSERT_LE(n, g->page);
    if (n > 0)
        memcpy(p, bytes, n);
    return p;
}

/* Decodes every prefix of a frame placed against the guard page. */
static void decode_prefixes_at_guard(struct guarded *g, const uint8_t *bytes, size_t len,
                                     const arpc__frame *want)
{
    for (size_t n = 0; n <= len; n++) {
        const uint8_t *p = guarded_place(g, bytes, n);
        arpc__frame f;
        int64_t rc = arpc__frame_decode(p, n, MAX_FRAME, &f);
        if (n < len) {
            ASSERT_EQ(rc, 0);
            continue;
        }
        ASSERT_EQ(rc, len);
        assert_frame_eq(&f, want);
    }
}

static void test_decode_never_reads_past_end(void)
{
    struct guarded g;
    arpc__frame frames[32];
    size_t n = stream_frames(frames);

    guarded_init(&g);
    for (size_t i = 0; i < NGOLDENS; i++)
        decode_prefixes_at_guard(&g, goldens[i].bytes, goldens[i].len, &goldens[i].frame);
    for (size_t i = 0; i < n; i++) {
        arpc_buf *b = encode_all(&frames[i], 1);
        decode_prefixes_at_guard(&g, arpc_buf_data(b), arpc_buf_len(b), &frames[i]);
        arpc_buf_destroy(b);
    }

    /* Errors from a header that ends at the guard, its body absent. */
    uint8_t header[ARPC__FRAME_HEADER_SIZE];
    arpc__frame f;
    memcpy(header, golden_request, sizeof(header));
    set_le32(header + 8, MAX_FRAME);
    ASSERT_ERR(arpc__frame_decode(guarded_place(&g, header, 32), 32, MAX_FRAME, &f), ARPC_ETOOBIG);
    header[23] = 1;
    ASSERT_ERR(arpc__frame_decode(guarded_place(&g, header, 32), 32, MAX_FRAME, &f), ARPC_EFRAME);
    ASSERT_ERR(arpc__frame_decode(guarded_place(&g, (const uint8_t *)"GE", 2), 2, MAX_FRAME, &f),
               ARPC_EFRAME);
    guarded_fini(&g);
}

/* ---- malformed, truncated, oversize ----------------------------------------------- */

/* Decodes `bytes` with one header byte replaced, both with the whole frame and with the
 * header alone: an error must not wait for the body. */
static void expect_byte_error(const uint8_t *bytes, size_t len, size_t off, uint8_t value, int want)
{
    uint8_t copy[512];
    arpc__frame f;

    ASSERT_LE(len, sizeof(copy));
    memcpy(copy, bytes, len);
    copy[off] = value;
    ASSERT_ERR(arpc__frame_decode(copy, len, MAX_FRAME, &f), want);
    ASSERT_ERR(arpc__frame_decode(copy, ARPC__FRAME_HEADER_SIZE, MAX_FRAME, &f), want);
}

static void expect_method_len_error(const uint8_t *bytes, size_t len, uint16_t method_len)
{
    uint8_t copy[512];
    arpc__frame f;

    ASSERT_LE(len, sizeof(copy));
    memcpy(copy, bytes, len);
    set_le16(copy + 6, method_len);
    ASSERT_ERR(arpc__frame_decode(copy, len, MAX_FRAME, &f), ARPC_EFRAME);
    ASSERT_ERR(arpc__frame_decode(copy, ARPC__FRAME_HEADER_SIZE, MAX_FRAME, &f), ARPC_EFRAME);
}

static void test_malformed_header(void)
{
    const uint8_t *req = golden_request;
    size_t len = sizeof(golden_request);

    expect_byte_error(req, len, 0, 'B', ARPC_EFRAME);
    expect_byte_error(req, len, 0, 0x00, ARPC_EFRAME);
    expect_byte_error(req, len, 1, 0x53, ARPC_EFRAME);
    expect_byte_error(req, len, 3, 0, ARPC_EFRAME);
    expect_byte_error(req, len, 3, 6, ARPC_EFRAME);  /* a MESSAGE with a method name */
    expect_byte_error(req, len, 3, 11, ARPC_EFRAME); /* the first unknown type */
    expect_byte_error(req, len, 3, 0xff, ARPC_EFRAME);
    expect_byte_error(golden_window, sizeof(golden_window), 3, 11, ARPC_EFRAME);
    for (size_t off = 20; off < 24; off++) {
        expect_byte_error(req, len, off, 0x01, ARPC_EFRAME);
        expect_byte_error(req, len, off, 0x80, ARPC_EFRAME);
    }

    expect_method_len_error(req, len, 0);
    expect_method_len_error(req, len, ARPC__MAX_METHOD_LEN + 1);
    expect_method_len_error(req, len, 0x100 | 8); /* the low byte alone would look right */
    expect_method_len_error(req, len, UINT16_MAX);
    for (size_t i = 1; i < NGOLDENS; i++) {
        if (goldens[i].frame.type == ARPC__FRAME_REQUEST) { /* an OPEN: a method as REQUEST */
            expect_method_len_error(goldens[i].bytes, goldens[i].len, 0);
            continue;
        }
        expect_method_len_error(goldens[i].bytes, goldens[i].len, 1);
        expect_method_len_error(goldens[i].bytes, goldens[i].len, 256);
    }
}

static void test_unknown_version(void)
{
    const uint8_t *req = golden_request;
    size_t len = sizeof(golden_request);
    uint8_t copy[sizeof(golden_request)];
    arpc__frame f;

    expect_byte_error(req, len, 2, 2, ARPC_EVERSION);
    expect_byte_error(req, len, 2, 0, ARPC_EVERSION);
    expect_byte_error(req, len, 2, 0xff, ARPC_EVERSION);

    /* The version is judged before anything a future version may redefine... */
    memcpy(copy, req, len);
    copy[2] = 2;
    copy[3] = 99;
    copy[20] = 1;
    set_le16(copy + 6, 4000);
    ASSERT_ERR(arpc__frame_decode(copy, len, MAX_FRAME, &f), ARPC_EVERSION);
    /* ...but only once the magic says this is arpc at all. */
    copy[1] = 'X';
    ASSERT_ERR(arpc__frame_decode(copy, len, MAX_FRAME, &f), ARPC_EFRAME);
}

/* A bad magic, version or type is reported before the header is complete. */
static void test_early_rejection(void)
{
    static const char http[] = "GET / HTTP/1.1\r\n\r\n";
    const uint8_t v2[] = {0x41, 0x52, 0x02};
    const uint8_t type0[] = {0x41, 0x52, 0x01, 0x00};
    arpc__frame f;

    ASSERT_EQ(arpc__frame_decode(NULL, 0, MAX_FRAME, &f), 0);
    for (size_t n = 1; n < sizeof(http); n++)
        ASSERT_ERR(arpc__frame_decode((const uint8_t *)http, n, MAX_FRAME, &f), ARPC_EFRAME);
    ASSERT_EQ(arpc__frame_decode(v2, 2, MAX_FRAME, &f), 0);
    ASSERT_ERR(arpc__frame_decode(v2, 3, MAX_FRAME, &f), ARPC_EVERSION);
    ASSERT_EQ(arpc__frame_decode(type0, 3, MAX_FRAME, &f), 0);
    ASSERT_ERR(arpc__frame_decode(type0, 4, MAX_FRAME, &f), ARPC_EFRAME);
}

static void test_truncated_needs_more(void)
{
    for (size_t i = 0; i < NGOLDENS; i++) {
        for (size_t n = 0; n < goldens[i].len; n++) {
            arpc__frame f, untouched;
            memset(&f, 0xa5, sizeof(f));
            memcpy(&untouched, &f, sizeof(f));
            ASSERT_EQ(arpc__frame_decode(goldens[i].bytes, n, MAX_FRAME, &f), 0);
            ASSERT_MEMEQ(&f, &untouched, sizeof(f));
        }
    }
}

static void test_oversize(void)
{
    uint8_t h[ARPC__FRAME_HEADER_SIZE];
    arpc__frame f;

    /* A request of exactly the limit is fine (it waits for its body); one byte more is not,
     * and that is known from the header alone. */
    memcpy(h, golden_request, sizeof(h));
    set_le32(h + 8, MAX_FRAME - ARPC__FRAME_HEADER_SIZE - 8);
    ASSERT_EQ(arpc__frame_decode(h, sizeof(h), MAX_FRAME, &f), 0);
    set_le32(h + 8, MAX_FRAME - ARPC__FRAME_HEADER_SIZE - 8 + 1);
    ASSERT_ERR(arpc__frame_decode(h, sizeof(h), MAX_FRAME, &f), ARPC_ETOOBIG);

    /* The largest sizes the fields can express: 32 + 255 + UINT32_MAX overflows 32 bits. */
    set_le16(h + 6, ARPC__MAX_METHOD_LEN);
    set_le32(h + 8, UINT32_MAX);
    ASSERT_ERR(arpc__frame_decode(h, sizeof(h), UINT32_MAX, &f), ARPC_ETOOBIG);
    set_le16(h + 6, 1);
    set_le32(h + 8, UINT32_MAX - ARPC__FRAME_HEADER_SIZE - 1);
    ASSERT_EQ(arpc__frame_decode(h, sizeof(h), UINT32_MAX, &f), 0);

    /* A response with a 16 MiB payload is over the default limit. */
    memcpy(h, golden_response_ok, sizeof(h));
    set_le32(h + 8, 16u * 1024 * 1024);
    ASSERT_ERR(arpc__frame_decode(h, sizeof(h), MAX_FRAME, &f), ARPC_ETOOBIG);

    /* An oversized frame is reported with its header, so a connection can skip it. */
    memset(&f, 0xa5, sizeof(f));
    ASSERT_ERR(arpc__frame_decode(h, sizeof(h), MAX_FRAME, &f), ARPC_ETOOBIG);
    ASSERT_EQ(f.type, ARPC__FRAME_RESPONSE);
    ASSERT_TRUE(f.request_id == 0x0102030405060708u);
    ASSERT_EQ(f.method_len, 0);
    ASSERT_EQ(f.payload_len, 16u * 1024 * 1024);
    ASSERT_TRUE(f.method == NULL && f.payload == NULL);
    ASSERT_TRUE(arpc__frame_total(&f) == 32 + 16u * 1024 * 1024);
    ASSERT_TRUE(arpc__frame_skippable(f.type));
    memcpy(h, golden_request, sizeof(h));
    set_le16(h + 6, ARPC__MAX_METHOD_LEN);
    set_le32(h + 8, UINT32_MAX);
    ASSERT_ERR(arpc__frame_decode(h, sizeof(h), MAX_FRAME, &f), ARPC_ETOOBIG);
    ASSERT_EQ(f.type, ARPC__FRAME_REQUEST);
    ASSERT_EQ(f.flags, ARPC__FLAG_IDEMPOTENT);
    ASSERT_EQ(f.timeout_ms, 1500);
    ASSERT_TRUE(arpc__frame_total(&f) == 32 + 255 + (uint64_t)UINT32_MAX);
    ASSERT_FALSE(arpc__frame_skippable(ARPC__FRAME_PING));
    ASSERT_FALSE(arpc__frame_skippable(ARPC__FRAME_PONG));
    ASSERT_FALSE(arpc__frame_skippable(ARPC__FRAME_GOAWAY));

    /* A tiny configured limit admits a bare control frame but no request. */
    ASSERT_EQ(arpc__frame_decode(golden_ping, sizeof(golden_ping), 32, &f), 32);
    ASSERT_ERR(arpc__frame_decode(golden_request, sizeof(golden_request), 42, &f), ARPC_ETOOBIG);
    ASSERT_EQ(arpc__frame_decode(golden_request, sizeof(golden_request), 43, &f), 43);
}

/* Fields a type does not use and reserved flag bits are accepted and reported as 0. */
static void test_liberal_decode(void)
{
    uint8_t copy[64];
    arpc__frame f;

    memcpy(copy, golden_request, sizeof(golden_request));
    set_le16(copy + 4, 0xfff8); /* every reserved flag bit, not IDEMPOTENT, METADATA, STREAM */
    set_le32(copy + 12, 77);    /* status on a request */
    ASSERT_EQ(arpc__frame_decode(copy, sizeof(golden_request), MAX_FRAME, &f),
              sizeof(golden_request));
    ASSERT_EQ(f.flags, 0);
    ASSERT_EQ(f.status, 0);
    ASSERT_EQ(f.timeout_ms, 1500);

    memcpy(copy, golden_response_ok, sizeof(golden_response_ok));
    set_le16(copy + 4, 0xfffd); /* every reserved flag bit of a RESPONSE, not METADATA */
    set_le32(copy + 16, 500); /* timeout on a response */
    ASSERT_EQ(arpc__frame_decode(copy, sizeof(golden_response_ok), MAX_FRAME, &f),
              sizeof(golden_response_ok));
    ASSERT_EQ(f.flags, 0);
    ASSERT_EQ(f.timeout_ms, 0);

    /* A PING with a status, a timeout and a payload: the payload is skipped by size. */
    memcpy(copy, golden_ping, sizeof(golden_ping));
    set_le32(copy + 12, 5);
    set_le32(copy + 16, 6);
    set_le32(copy + 8, 4);
    memcpy(copy + 32, "junk", 4);
    ASSERT_EQ(arpc__frame_decode(copy, 36, MAX_FRAME, &f), 36);
    ASSERT_EQ(f.type, ARPC__FRAME_PING);
    ASSERT_EQ(f.status, 0);
    ASSERT_EQ(f.timeout_ms, 0);
    ASSERT_EQ(f.payload_len, 4);
    ASSERT_TRUE(f.payload == copy + 32);
}

/* ---- settings --------------------------------------------------------------------- */

static void put_entry(uint8_t *p, uint16_t id, uint16_t len)
{
    set_le16(p, id);
    set_le16(p + 2, len);
}

static void test_settings_golden(void)
{
    arpc__settings s;
    arpc_buf *b;

    ASSERT_EQ(arpc__settings_decode(golden_ping_settings + 32, 8, &s), 1);
    ASSERT_EQ(s.max_frame_size, 16u * 1024 * 1024);
    ASSERT_EQ(s.max_in_flight, 0);
    ASSERT_EQ(arpc__settings_decode(golden_pong_settings + 32, 16, &s), 2);
    ASSERT_EQ(s.max_frame_size, 16u * 1024 * 1024);
    ASSERT_EQ(s.max_in_flight, 2500);

    /* Fields left at 0 are not sent: no settings at all is an empty payload. */
    ASSERT_OK(arpc_buf_create(&b));
    arpc__settings none = {0};
    ASSERT_OK(arpc__frame_encode_settings(b, ARPC__FRAME_PONG, 0x1122334455667788u, &none));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_pong));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_pong, sizeof(golden_pong));
    arpc_buf_clear(b);
    ASSERT_ERR(arpc__frame_encode_settings(b, ARPC__FRAME_GOAWAY, 1, &none), ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_settings(b, ARPC__FRAME_REQUEST, 1, &none), ARPC_EINVAL);
    ASSERT_EQ(arpc_buf_len(b), 0);
    arpc_buf_destroy(b);
    ASSERT_OK(arpc_buf_create(&b)); /* no memory yet: the encoder must allocate */
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__frame_encode_settings(b, ARPC__FRAME_PING, 1, &s), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    ASSERT_EQ(arpc_buf_len(b), 0);
    arpc_buf_destroy(b);
}

/* Unknown, odd-sized, truncated and out-of-range entries are skipped, never an error. */
static void test_settings_liberal_decode(void)
{
    uint8_t p[64];
    arpc__settings s;

    ASSERT_EQ(arpc__settings_decode(NULL, 0, &s), 0);
    ASSERT_EQ(s.max_frame_size, 0);
    ASSERT_EQ(s.max_in_flight, 0);

    /* An unknown id with a 6-byte value, a known id with a 2-byte value (not ours), then
     * MAX_IN_FLIGHT 7, and MAX_FRAME_SIZE twice: the last counts. */
    put_entry(p, 99, 6);
    memset(p + 4, 0xee, 6);
    put_entry(p + 10, ARPC__SETTING_MAX_FRAME_SIZE, 2);
    set_le16(p + 14, 5000);
    put_entry(p + 16, ARPC__SETTING_MAX_IN_FLIGHT, 4);
    set_le32(p + 20, 7);
    put_entry(p + 24, ARPC__SETTING_MAX_FRAME_SIZE, 4);
    set_le32(p + 28, 100000);
    put_entry(p + 32, ARPC__SETTING_MAX_FRAME_SIZE, 4);
    set_le32(p + 36, 70000);
    ASSERT_EQ(arpc__settings_decode(p, 40, &s), 3);
    ASSERT_EQ(s.max_frame_size, 70000);
    ASSERT_EQ(s.max_in_flight, 7);

    /* A truncated last entry (header or value) is ignored. */
    for (size_t len = 24; len < 32; len++) {
        ASSERT_EQ(arpc__settings_decode(p + 16, len - 16, &s), 1);
        ASSERT_EQ(s.max_frame_size, 0);
        ASSERT_EQ(s.max_in_flight, 7);
    }
    /* An entry whose length runs past the payload ends the reading. */
    put_entry(p, ARPC__SETTING_MAX_IN_FLIGHT, 0xffff);
    ASSERT_EQ(arpc__settings_decode(p, 40, &s), 0);

    /* A frame limit below 32 + 255 cannot be honoured (no request would fit): ignored. */
    put_entry(p, ARPC__SETTING_MAX_FRAME_SIZE, 4);
    set_le32(p + 4, ARPC__FRAME_HEADER_SIZE + ARPC__MAX_METHOD_LEN - 1);
    ASSERT_EQ(arpc__settings_decode(p, 8, &s), 0);
    ASSERT_EQ(s.max_frame_size, 0);
    set_le32(p + 4, ARPC__FRAME_HEADER_SIZE + ARPC__MAX_METHOD_LEN);
    ASSERT_EQ(arpc__settings_decode(p, 8, &s), 1);
    ASSERT_EQ(s.max_frame_size, ARPC__FRAME_HEADER_SIZE + ARPC__MAX_METHOD_LEN);
}

/* The settings reader never reads past the payload: every prefix against the guard page. */
static void test_settings_never_reads_past_end(void)
{
    struct guarded g;
    arpc__settings s;

    guarded_init(&g);
    for (size_t n = 0; n <= 16; n++) {
        const uint8_t *p = guarded_place(&g, golden_pong_settings + 32, n);
        ASSERT_EQ(arpc__settings_decode(p, n, &s), (int)(n / 8));
    }
    guarded_fini(&g);
}

/* ---- timeout_ms ------------------------------------------------------------------- */

static void test_timeout_encoding(void)
{
    ASSERT_EQ(arpc__frame_timeout_ms(1), 1); /* 1 ns left: not "no deadline" */
    ASSERT_EQ(arpc__frame_timeout_ms(999999), 1);
    ASSERT_EQ(arpc__frame_timeout_ms(1000000), 1);
    ASSERT_EQ(arpc__frame_timeout_ms(1000001), 2);
    ASSERT_EQ(arpc__frame_timeout_ms(1500 * 1000000LL), 1500);
    ASSERT_EQ(arpc__frame_timeout_ms((int64_t)UINT32_MAX * 1000000), UINT32_MAX);
    ASSERT_EQ(arpc__frame_timeout_ms((int64_t)UINT32_MAX * 1000000 + 1), UINT32_MAX);
    ASSERT_EQ(arpc__frame_timeout_ms(INT64_MAX), UINT32_MAX);
}

/* ---- encoders --------------------------------------------------------------------- */

static void test_write_header_is_canonical(void)
{
    uint8_t h[ARPC__FRAME_HEADER_SIZE];
    arpc__frame f = {.type = ARPC__FRAME_PING,
                     .flags = 0xffff,
                     .request_id = 0x1122334455667788u,
                     .status = 9,
                     .timeout_ms = 10};

    arpc__frame_write_header(h, &f);
    ASSERT_MEMEQ(h, golden_ping, sizeof(h));

    /* Every flag bit but STREAM, which a REQUEST defines (section 13). */
    f = goldens[0].frame;
    f.flags = 0xffff & ~ARPC__FLAG_STREAM;
    f.status = -1;
    arpc__frame_write_header(h, &f);
    ASSERT_MEMEQ(h, golden_request, sizeof(h));
    f.flags = 0xffff;
    arpc__frame_write_header(h, &f);
    ASSERT_EQ(h[4], golden_request[4] | ARPC__FLAG_STREAM);
}

static void test_encode_invalid(void)
{
    arpc_buf *b;
    arpc__frame f;

    ASSERT_OK(arpc_buf_create(&b));
    ASSERT_OK(arpc_buf_append(b, "keep", 4));
    ASSERT_ERR(arpc__frame_encode_request(b, 1, 0, 0, "m", 0, NULL, 0), ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_request(b, 1, 0, 0, (const char *)long_method,
                                          ARPC__MAX_METHOD_LEN + 1, NULL, 0),
               ARPC_EINVAL);
#if SIZE_MAX > UINT32_MAX
    /* The payload is never read: the length alone is refused. */
    ASSERT_ERR(arpc__frame_encode_request(b, 1, 0, 0, "m", 1, pattern, (size_t)UINT32_MAX + 1),
               ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_response(b, 1, 0, pattern, (size_t)UINT32_MAX + 1), ARPC_EINVAL);
#endif
    ASSERT_ERR(arpc__frame_encode_control(b, 0, 1, 0), ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_control(b, ARPC__FRAME_REQUEST, 1, 0), ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_control(b, ARPC__FRAME_RESPONSE, 1, 0), ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_control(b, 6, 1, 0), ARPC_EINVAL);
    ASSERT_EQ(arpc_buf_len(b), 4);
    ASSERT_MEMEQ(arpc_buf_data(b), "keep", 4);

    /* NULL is fine for empty payloads, and the frame lands after what was there. */
    ASSERT_OK(arpc__frame_encode_request(b, 9, 0, 0, "m", 1, NULL, 0));
    ASSERT_OK(arpc__frame_encode_response(b, 9, 0, NULL, 0));
    const uint8_t *p = (const uint8_t *)arpc_buf_data(b) + 4;
    ASSERT_EQ(arpc__frame_decode(p, arpc_buf_len(b) - 4, MAX_FRAME, &f), 33);
    ASSERT_EQ(arpc__frame_decode(p + 33, arpc_buf_len(b) - 37, MAX_FRAME, &f), 32);
    arpc_buf_destroy(b);
}

static void test_encode_enomem_leaves_buffer_unchanged(void)
{
    arpc_buf *b;

    ASSERT_OK(arpc_buf_create(&b));
    ASSERT_OK(arpc_buf_append(b, "keep", 4));
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__frame_encode_response(b, 1, 0, pattern, sizeof(pattern)), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    ASSERT_EQ(arpc_buf_len(b), 4);
    ASSERT_MEMEQ(arpc_buf_data(b), "keep", 4);
    ASSERT_OK(arpc__frame_encode_response(b, 1, 0, pattern, sizeof(pattern)));
    arpc_buf_destroy(b);
}

/* A request encoded once with placeholder id and timeout, then appended with the real
 * ones, is byte for byte the request encoded directly; a second append (a retry) carries
 * its own id; ENOMEM leaves the output as it was. */
static void test_append_request_sets_id_and_timeout(void)
{
    arpc_buf *encoded;
    arpc_buf *out;

    ASSERT_OK(arpc_buf_create(&encoded));
    ASSERT_OK(arpc_buf_create(&out));
    ASSERT_OK(arpc__frame_encode_request(encoded, 0, 0, ARPC__FLAG_IDEMPOTENT, "calc.Add", 8,
                                         "\x01\x02\x03", 3));
    ASSERT_OK(arpc_buf_append(out, "x", 1));
    ASSERT_OK(arpc__frame_append_request(out, encoded, 0x0102030405060708u, 1500));
    ASSERT_EQ(arpc_buf_len(out), 1 + sizeof(golden_request));
    ASSERT_MEMEQ((const uint8_t *)arpc_buf_data(out) + 1, golden_request, sizeof(golden_request));

    ASSERT_OK(arpc__frame_append_request(out, encoded, 9, 0));
    arpc__frame f;
    const uint8_t *second = (const uint8_t *)arpc_buf_data(out) + 1 + sizeof(golden_request);
    ASSERT_EQ(arpc__frame_decode(second, sizeof(golden_request), UINT32_MAX, &f),
              sizeof(golden_request));
    ASSERT_EQ(f.request_id, 9);
    ASSERT_EQ(f.timeout_ms, 0);
    ASSERT_EQ(f.flags, ARPC__FLAG_IDEMPOTENT);
    ASSERT_MEMEQ(f.method, "calc.Add", 8);

    size_t len = arpc_buf_len(out);
    arpc_buf_clear(encoded);
    ASSERT_OK(arpc__frame_encode_request(encoded, 0, 0, 0, "m", 1, pattern, sizeof(pattern)));
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__frame_append_request(out, encoded, 10, 5), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    ASSERT_EQ(arpc_buf_len(out), len);
    arpc_buf_destroy(encoded);
    arpc_buf_destroy(out);
}

/* ---- random round trip ------------------------------------------------------------ */

static uint8_t random_pool[1 << 18];

static size_t random_payload_len(void)
{
    switch (test_rand() % 8) {
    case 0:
        return 0;
    case 1:
        return test_rand() % sizeof(random_pool);
    case 2:
    case 3:
        return test_rand() % 4096;
    default:
        return test_rand() % 64;
    }
}

/* A random frame as an encoder is given it, and `want`, what the decoder must report. */
static void random_frame(arpc__frame *f, arpc__frame *want)
{
    memset(f, 0, sizeof(*f));
    f->type = (uint8_t)(ARPC__FRAME_REQUEST + test_rand() % ARPC__FRAME_WINDOW);
    f->flags = (uint16_t)test_rand();
    f->request_id = test_rand();
    f->status = (int32_t)(uint32_t)test_rand();
    f->timeout_ms = (uint32_t)test_rand();
    bool open = f->type == ARPC__FRAME_REQUEST && (f->flags & ARPC__FLAG_STREAM);
    if (f->type == ARPC__FRAME_REQUEST) {
        f->method_len = (uint16_t)(1 + test_rand() % ARPC__MAX_METHOD_LEN);
        f->method = (const char *)random_pool + test_rand() % (sizeof(random_pool) - 256);
    }
    if ((f->type == ARPC__FRAME_REQUEST && !open) || f->type == ARPC__FRAME_RESPONSE ||
        f->type == ARPC__FRAME_MESSAGE || f->type == ARPC__FRAME_END) {
        f->payload_len = (uint32_t)random_payload_len();
        f->payload = random_pool + test_rand() % (sizeof(random_pool) - f->payload_len + 1);
    }
    if (f->type == ARPC__FRAME_WINDOW) {
        f->payload_len = 4;
        f->payload = random_pool + test_rand() % (sizeof(random_pool) - 4);
    }
    *want = *f;
    if (f->type != ARPC__FRAME_REQUEST) {
        want->flags = 0;
        want->timeout_ms = 0;
    }
    /* An OPEN's encoder writes STREAM alone; a request's, IDEMPOTENT alone. */
    want->flags = open ? ARPC__FLAG_STREAM : want->flags & ARPC__FLAG_IDEMPOTENT;
    if (f->type != ARPC__FRAME_RESPONSE && f->type != ARPC__FRAME_GOAWAY &&
        f->type != ARPC__FRAME_END)
        want->status = 0;
}

/* The header writer plus the body, as a writev would send them, equals the encoder's frame. */
static void assert_header_matches(const uint8_t *encoded, const arpc__frame *f)
{
    uint8_t h[ARPC__FRAME_HEADER_SIZE];
    arpc__frame_write_header(h, f);
    ASSERT_MEMEQ(encoded, h, sizeof(h));
    ASSERT_MEMEQ(encoded + sizeof(h), f->method, f->method_len);
    ASSERT_MEMEQ(encoded + sizeof(h) + f->method_len, f->payload, f->payload_len);
}

static void test_random_round_trip(void)
{
    arpc__frame frames[8], wants[8];
    arpc_buf *b;

    test_seed();
    for (size_t i = 0; i < sizeof(random_pool); i++)
        random_pool[i] = (uint8_t)test_rand();
    ASSERT_OK(arpc_buf_create(&b));
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = 1 + test_rand() % 8;
        arpc_buf_clear(b);
        for (size_t i = 0; i < n; i++) {
            random_frame(&frames[i], &wants[i]);
            size_t at = arpc_buf_len(b);
            ASSERT_OK(encode_frame(b, &frames[i]));
            ASSERT_EQ(arpc_buf_len(b) - at, frame_size(&frames[i]));
        }

        const uint8_t *bytes = arpc_buf_data(b);
        size_t len = arpc_buf_len(b), off = 0;
        for (size_t i = 0; i < n; i++) {
            arpc__frame f;
            int64_t rc = arpc__frame_decode(bytes + off, len - off, MAX_FRAME, &f);
            ASSERT_EQ(rc, frame_size(&frames[i]));
            assert_frame_eq(&f, &wants[i]);
            assert_header_matches(bytes + off, &f);
            off += (size_t)rc;
        }
        ASSERT_EQ(off, len);

        struct reader r;
        size_t split = test_rand() % (len + 1);
        reader_init(&r, wants, n);
        reader_feed(&r, bytes, split);
        reader_feed(&r, bytes + split, len - split);
        reader_assert_done(&r);
        reader_fini(&r);
    }
    arpc_buf_destroy(b);
}

/* ---- metadata (protocol.md section 10) ----------------------------------------------- */

static const uint8_t golden_request_md[] = {
    0x41, 0x52, 0x01, 0x01,                         /* magic, version 1, REQUEST */
    0x03, 0x00,                                     /* flags: IDEMPOTENT | METADATA */
    0x03, 0x00,                                     /* method_len 3 */
    0x16, 0x00, 0x00, 0x00,                         /* payload_len 22: block 21 + payload 1 */
    0x00, 0x00, 0x00, 0x00,                         /* status 0 */
    0x64, 0x00, 0x00, 0x00,                         /* timeout_ms 100 */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_id 9 */
    'm',  '.',  'M',                                /* method */
    0x11, 0x00, 0x00, 0x00,                         /* metadata: 17 bytes of entries */
    0x01, 0x00, 0x01, 0x00, 'k',  'v',              /* "k": "v" */
    0x05, 0x00, 0x02, 0x00, 't',  '-',  'b',  'i',  'n', 0x00, 0xff, /* "t-bin": 00 ff */
    'p',                                                             /* payload */
};

static const uint8_t golden_response_md[] = {
    0x41, 0x52, 0x01, 0x02,                         /* magic, version 1, RESPONSE */
    0x02, 0x00,                                     /* flags: METADATA */
    0x00, 0x00,                                     /* method_len 0 */
    0x0c, 0x00, 0x00, 0x00,                         /* payload_len 12: block 10 + payload 2 */
    0x05, 0x00, 0x00, 0x00,                         /* status 5 */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_id 9 */
    0x06, 0x00, 0x00, 0x00,                         /* metadata: 6 bytes of entries */
    0x01, 0x00, 0x01, 0x00, 'k',  'v',              /* "k": "v" */
    'o',  'k',                                      /* payload */
};

/* The in-memory list of the golden request's metadata. */
static void golden_md(arpc_buf *buf, arpc__md *md, bool both)
{
    arpc__buf_init(buf);
    memset(md, 0, sizeof(*md));
    ASSERT_OK(arpc__md_append(buf, md, "k", 1, "v", 1));
    if (both)
        ASSERT_OK(arpc__md_append(buf, md, "t-bin", 5, "\x00\xff", 2));
}

static void test_md_golden(void)
{
    arpc_buf mdbuf;
    arpc__md md;
    arpc_buf *b;
    arpc__frame f;

    ASSERT_OK(arpc_buf_create(&b));
    golden_md(&mdbuf, &md, true);
    ASSERT_EQ(arpc__frame_md_size(&md), 21);
    ASSERT_OK(
        arpc__frame_encode_request_md(b, 9, 100, ARPC__FLAG_IDEMPOTENT, "m.M", 3, &md, "p", 1));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_request_md));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_request_md, sizeof(golden_request_md));
    ASSERT_EQ(arpc__frame_decode(golden_request_md, sizeof(golden_request_md), MAX_FRAME, &f),
              sizeof(golden_request_md));
    ASSERT_EQ(f.flags, ARPC__FLAG_IDEMPOTENT | ARPC__FLAG_METADATA);
    ASSERT_EQ(f.md_count, 2);
    ASSERT_EQ(f.md_len, 17);
    ASSERT_TRUE(f.md == golden_request_md + 32 + 3 + 4);
    ASSERT_EQ(f.payload_len, 1);
    ASSERT_EQ(f.payload[0], 'p');
    ASSERT_EQ(arpc__frame_total(&f), sizeof(golden_request_md));
    arpc__buf_fini(&mdbuf);

    arpc_buf_clear(b);
    golden_md(&mdbuf, &md, false);
    ASSERT_OK(arpc__frame_encode_response_md(b, 9, 5, &md, "ok", 2));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_response_md));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_response_md, sizeof(golden_response_md));
    ASSERT_EQ(arpc__frame_decode(golden_response_md, sizeof(golden_response_md), MAX_FRAME, &f),
              sizeof(golden_response_md));
    ASSERT_EQ(f.flags, ARPC__FLAG_METADATA);
    ASSERT_EQ(f.status, 5);
    ASSERT_EQ(f.md_count, 1);
    ASSERT_EQ(f.payload_len, 2);
    arpc__buf_fini(&mdbuf);

    /* An empty list: no block, no flag -- the frame of before metadata. */
    arpc__md none = {0};
    arpc_buf_clear(b);
    ASSERT_OK(arpc__frame_encode_response_md(b, 7, 404, &none, "not found", 9));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_response_app_error));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_response_app_error, sizeof(golden_response_app_error));
    /* A METADATA bit on a control frame is a reserved bit there: ignored. */
    uint8_t ping[sizeof(golden_ping)];
    memcpy(ping, golden_ping, sizeof(ping));
    ping[4] = ARPC__FLAG_METADATA;
    ASSERT_EQ(arpc__frame_decode(ping, sizeof(ping), MAX_FRAME, &f), 32);
    ASSERT_EQ(f.flags, 0);
    ASSERT_TRUE(f.md == NULL);
    arpc_buf_destroy(b);
}

static void test_md_setting(void)
{
    static const uint8_t want[] = {0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00,
                                   0x03, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00};
    arpc__settings st = {.max_frame_size = 65536, .metadata = 1};
    arpc_buf *b;
    arpc__frame f;
    ASSERT_OK(arpc_buf_create(&b));
    ASSERT_OK(arpc__frame_encode_settings(b, ARPC__FRAME_PING, 1, &st));
    ASSERT_EQ(arpc_buf_len(b), 32 + sizeof(want));
    ASSERT_MEMEQ((const uint8_t *)arpc_buf_data(b) + 32, want, sizeof(want));
    ASSERT_EQ(arpc__frame_decode(arpc_buf_data(b), arpc_buf_len(b), MAX_FRAME, &f),
              32 + (int64_t)sizeof(want));
    arpc__settings got;
    ASSERT_EQ(arpc__settings_decode(f.payload, f.payload_len, &got), 2);
    ASSERT_EQ(got.metadata, 1);
    ASSERT_EQ(got.max_frame_size, 65536);
    arpc_buf_destroy(b);
}

/* STREAMS and STREAM_WINDOW (section 13): the settings a client with streams sends. */
static const uint8_t golden_ping_streams[] = {
    0x41, 0x52, 0x01, 0x03,                         /* PING */
    0x00, 0x00, 0x00, 0x00,                         /* flags, method_len */
    0x20, 0x00, 0x00, 0x00,                         /* payload_len 32: four settings */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* PING id 1 */
    0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, /* MAX_FRAME_SIZE 16,777,216 */
    0x03, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, /* METADATA 1 */
    0x04, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, /* STREAMS 1 */
    0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x00, /* STREAM_WINDOW 262,144 */
};

static void test_stream_settings(void)
{
    arpc__settings st = {.max_frame_size = 16u * 1024 * 1024,
                         .metadata = 1,
                         .streams = 1,
                         .stream_window = 256 * 1024};
    arpc_buf *b;
    arpc__settings got;
    ASSERT_OK(arpc_buf_create(&b));
    ASSERT_OK(arpc__frame_encode_settings(b, ARPC__FRAME_PING, 1, &st));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_ping_streams));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_ping_streams, sizeof(golden_ping_streams));
    ASSERT_EQ(arpc__settings_decode(golden_ping_streams + 32, 32, &got), 4);
    ASSERT_EQ(got.max_frame_size, 16u * 1024 * 1024);
    ASSERT_EQ(got.metadata, 1);
    ASSERT_EQ(got.streams, 1);
    ASSERT_EQ(got.stream_window, 256 * 1024);
    /* Every setting at once fits the encoder's payload. */
    st.max_in_flight = 2500;
    arpc_buf_clear(b);
    ASSERT_OK(arpc__frame_encode_settings(b, ARPC__FRAME_PONG, 1, &st));
    ASSERT_EQ(arpc_buf_len(b), 32 + 5 * ARPC__SETTING_SIZE);
    arpc_buf_destroy(b);

    /* STREAM_WINDOW: 0 is "not announced"; below 64 KiB it reads as 64 KiB; above, as is.
     * A peer without settings for streams leaves both 0. */
    uint8_t p[8];
    uint32_t in[] = {0, 1, 65535, 65536, 65537, UINT32_MAX};
    uint32_t out[] = {0, 65536, 65536, 65536, 65537, UINT32_MAX};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        put_entry(p, ARPC__SETTING_STREAM_WINDOW, 4);
        set_le32(p + 4, in[i]);
        ASSERT_EQ(arpc__settings_decode(p, sizeof(p), &got), in[i] != 0);
        ASSERT_EQ(got.stream_window, out[i]);
        ASSERT_EQ(got.streams, 0);
    }
    /* STREAMS: read as sent; only 1 means streams (proto layer's reading). */
    put_entry(p, ARPC__SETTING_STREAMS, 4);
    set_le32(p + 4, 2);
    ASSERT_EQ(arpc__settings_decode(p, sizeof(p), &got), 1);
    ASSERT_EQ(got.streams, 2);
    /* A STREAMS entry of another length is skipped. */
    put_entry(p, ARPC__SETTING_STREAMS, 2);
    ASSERT_EQ(arpc__settings_decode(p, 6, &got), 0);
    ASSERT_EQ(got.streams, 0);
}

/* Stream frames with metadata: an OPEN's block is its whole payload, a server's MESSAGE
 * carries its initial metadata, END its trailing metadata before the error text. */
static const uint8_t golden_open_md[] = {
    0x41, 0x52, 0x01, 0x01,                         /* REQUEST */
    0x06, 0x00,                                     /* flags: METADATA | STREAM */
    0x03, 0x00,                                     /* method_len 3 */
    0x0a, 0x00, 0x00, 0x00,                         /* payload_len 10: the block alone */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0xd0, 0x07, 0x00, 0x00,                         /* timeout_ms 2000 */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* stream 3 */
    'm',  '.',  'S',                                /* method */
    0x06, 0x00, 0x00, 0x00,                         /* metadata: 6 bytes of entries */
    0x01, 0x00, 0x01, 0x00, 'k',  'v',              /* "k": "v" */
};

static const uint8_t golden_message_md[] = {
    0x41, 0x52, 0x01, 0x06,                         /* MESSAGE */
    0x02, 0x00,                                     /* flags: METADATA */
    0x00, 0x00,                                     /* method_len */
    0x0c, 0x00, 0x00, 0x00,                         /* payload_len 12: block 10 + message 2 */
    0x00, 0x00, 0x00, 0x00,                         /* status */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* stream 3 */
    0x06, 0x00, 0x00, 0x00,                         /* metadata: 6 bytes of entries */
    0x01, 0x00, 0x01, 0x00, 'k',  'v',              /* "k": "v" */
    'o',  'k',                                      /* the message */
};

static const uint8_t golden_end_md[] = {
    0x41, 0x52, 0x01, 0x08,                         /* END */
    0x02, 0x00,                                     /* flags: METADATA */
    0x00, 0x00,                                     /* method_len */
    0x0d, 0x00, 0x00, 0x00,                         /* payload_len 13: block 10 + text 3 */
    0x05, 0x00, 0x00, 0x00,                         /* status 5 */
    0x00, 0x00, 0x00, 0x00,                         /* timeout_ms */
    0x00, 0x00, 0x00, 0x00,                         /* reserved */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* stream 3 */
    0x06, 0x00, 0x00, 0x00,                         /* metadata: 6 bytes of entries */
    0x01, 0x00, 0x01, 0x00, 'k',  'v',              /* "k": "v" */
    'b',  'a',  'd',                                /* the error message */
};

static void test_stream_md_golden(void)
{
    arpc_buf mdbuf;
    arpc__md md;
    arpc_buf *b;
    arpc__frame f;
    ASSERT_OK(arpc_buf_create(&b));
    golden_md(&mdbuf, &md, false);

    ASSERT_OK(arpc__frame_encode_open(b, 3, 2000, "m.S", 3, &md));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_open_md));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_open_md, sizeof(golden_open_md));
    ASSERT_EQ(arpc__frame_decode(golden_open_md, sizeof(golden_open_md), MAX_FRAME, &f),
              sizeof(golden_open_md));
    ASSERT_EQ(f.flags, ARPC__FLAG_METADATA | ARPC__FLAG_STREAM);
    ASSERT_EQ(f.md_count, 1);
    ASSERT_EQ(f.payload_len, 0);

    arpc_buf_clear(b);
    ASSERT_OK(arpc__frame_encode_message(b, 3, &md, "ok", 2));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_message_md));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_message_md, sizeof(golden_message_md));
    ASSERT_EQ(arpc__frame_decode(golden_message_md, sizeof(golden_message_md), MAX_FRAME, &f),
              sizeof(golden_message_md));
    ASSERT_EQ(f.type, ARPC__FRAME_MESSAGE);
    ASSERT_EQ(f.flags, ARPC__FLAG_METADATA);
    ASSERT_EQ(f.md_count, 1);
    ASSERT_EQ(f.payload_len, 2);
    ASSERT_MEMEQ(f.payload, "ok", 2);

    arpc_buf_clear(b);
    ASSERT_OK(arpc__frame_encode_end(b, 3, 5, &md, "bad", 3));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_end_md));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_end_md, sizeof(golden_end_md));
    ASSERT_EQ(arpc__frame_decode(golden_end_md, sizeof(golden_end_md), MAX_FRAME, &f),
              sizeof(golden_end_md));
    ASSERT_EQ(f.type, ARPC__FRAME_END);
    ASSERT_EQ(f.status, 5);
    ASSERT_EQ(f.md_count, 1);
    ASSERT_EQ(f.payload_len, 3);

    /* Without entries: the goldens without metadata. */
    arpc__md none = {0};
    arpc_buf_clear(b);
    ASSERT_OK(arpc__frame_encode_open(b, 3, 2000, "m.S", 3, &none));
    ASSERT_OK(arpc__frame_encode_message(b, 3, &none, "hi", 2));
    ASSERT_OK(arpc__frame_encode_end(b, 3, 5, NULL, "bad", 3));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_open) + sizeof(golden_message) + sizeof(golden_end));
    const uint8_t *p = arpc_buf_data(b);
    ASSERT_MEMEQ(p, golden_open, sizeof(golden_open));
    ASSERT_MEMEQ(p + sizeof(golden_open), golden_message, sizeof(golden_message));
    ASSERT_MEMEQ(p + sizeof(golden_open) + sizeof(golden_message), golden_end, sizeof(golden_end));

    /* METADATA on HALF_CLOSE, CANCEL or WINDOW is a reserved bit there: ignored. */
    uint8_t w[sizeof(golden_window)];
    memcpy(w, golden_window, sizeof(w));
    w[4] = ARPC__FLAG_METADATA | ARPC__FLAG_STREAM;
    ASSERT_EQ(arpc__frame_decode(w, sizeof(w), MAX_FRAME, &f), 36);
    ASSERT_EQ(f.flags, 0);
    ASSERT_TRUE(f.md == NULL);
    ASSERT_EQ(f.payload_len, 4);

    /* Encoder errors leave the buffer as it was. */
    arpc_buf_clear(b);
    ASSERT_ERR(arpc__frame_encode_open(b, 1, 0, "m", 0, NULL), ARPC_EINVAL);
    ASSERT_ERR(
        arpc__frame_encode_open(b, 1, 0, (const char *)long_method, ARPC__MAX_METHOD_LEN + 1, NULL),
        ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_control(b, ARPC__FRAME_MESSAGE, 1, 0), ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_control(b, ARPC__FRAME_END, 1, 0), ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_control(b, ARPC__FRAME_WINDOW, 1, 0), ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_control(b, 11, 1, 0), ARPC_EINVAL);
#if SIZE_MAX > UINT32_MAX
    ASSERT_ERR(arpc__frame_encode_message(b, 1, NULL, pattern, (size_t)UINT32_MAX + 1),
               ARPC_EINVAL);
    ASSERT_ERR(arpc__frame_encode_end(b, 1, 0, NULL, pattern, (size_t)UINT32_MAX + 1), ARPC_EINVAL);
#endif
    ASSERT_EQ(arpc_buf_len(b), 0);
    arpc_buf_destroy(b);
    ASSERT_OK(arpc_buf_create(&b)); /* no memory yet: the encoders must allocate */
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__frame_encode_window(b, 1, 5), ARPC_ENOMEM);
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__frame_encode_message(b, 1, &md, "x", 1), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    ASSERT_EQ(arpc_buf_len(b), 0);
    arpc__buf_fini(&mdbuf);
    arpc_buf_destroy(b);
}

/* A stream of frames with and without metadata. */
static arpc_buf *md_stream(size_t *count, uint64_t *totals)
{
    arpc_buf mdbuf;
    arpc__md md;
    arpc_buf *b;
    ASSERT_OK(arpc_buf_create(&b));
    golden_md(&mdbuf, &md, true);
    size_t n = 0;
    size_t before = 0;
#define MARK()                                  \
    do {                                        \
        totals[n++] = arpc_buf_len(b) - before; \
        before = arpc_buf_len(b);               \
    } while (0)
    ASSERT_OK(arpc__frame_encode_request_md(b, 1, 0, 0, "a", 1, &md, NULL, 0));
    MARK();
    ASSERT_OK(arpc__frame_encode_response(b, 1, 0, pattern, 33));
    MARK();
    ASSERT_OK(arpc__frame_encode_response_md(b, 1, 0, &md, pattern, 300));
    MARK();
    ASSERT_OK(arpc__frame_encode_request(b, 2, 5, 0, "b", 1, pattern, 4));
    MARK();
    ASSERT_OK(arpc__frame_encode_request_md(b, 3, 5, ARPC__FLAG_IDEMPOTENT,
                                            (const char *)long_method, ARPC__MAX_METHOD_LEN, &md,
                                            pattern, 31));
    MARK();
    /* A stream: its OPEN, a server MESSAGE and the END with blocks, a MESSAGE without. */
    ASSERT_OK(arpc__frame_encode_open(b, 4, 0, "s", 1, &md));
    MARK();
    ASSERT_OK(arpc__frame_encode_message(b, 4, &md, pattern, 32));
    MARK();
    ASSERT_OK(arpc__frame_encode_message(b, 4, NULL, pattern, 1));
    MARK();
    ASSERT_OK(arpc__frame_encode_window(b, 4, 65536));
    MARK();
    ASSERT_OK(arpc__frame_encode_end(b, 4, 9, &md, "e", 1));
    MARK();
#undef MARK
    arpc__buf_fini(&mdbuf);
    *count = n;
    return b;
}

/* Decodes what `in` holds, checking each frame's size and, with metadata, its block. */
static size_t md_drain(arpc_buf *in, const uint64_t *totals, size_t got)
{
    while (in->len > 0) {
        arpc__frame f;
        int64_t rc = arpc__frame_decode(arpc__buf_head(in), in->len, MAX_FRAME, &f);
        ASSERT_GE(rc, 0);
        if (rc == 0)
            break;
        ASSERT_EQ(rc, totals[got]);
        ASSERT_EQ(arpc__frame_total(&f), (uint64_t)rc);
        if (f.md != NULL) {
            ASSERT_EQ(f.md_count, 2);
            ASSERT_EQ(f.md_len, 17);
            ASSERT_MEMEQ(f.md, golden_request_md + 32 + 3 + 4, 17);
        }
        got++;
        arpc__buf_consume(in, (size_t)rc);
    }
    return got;
}

static void test_md_split_at_every_position(void)
{
    size_t n;
    uint64_t totals[16];
    arpc_buf *stream = md_stream(&n, totals);
    const uint8_t *bytes = arpc_buf_data(stream);
    size_t len = arpc_buf_len(stream);
    for (size_t split = 0; split <= len; split++) {
        arpc_buf *in;
        ASSERT_OK(arpc_buf_create(&in));
        ASSERT_OK(arpc_buf_append(in, bytes, split));
        size_t got = md_drain(in, totals, 0);
        ASSERT_OK(arpc_buf_append(in, bytes + split, len - split));
        got = md_drain(in, totals, got);
        ASSERT_EQ(got, n);
        ASSERT_EQ(arpc_buf_len(in), 0);
        arpc_buf_destroy(in);
    }
    arpc_buf_destroy(stream);
}

/* A request "m" whose payload is `payload` (a block and what follows), METADATA set. */
static size_t md_frame(uint8_t *out, const uint8_t *payload, size_t len)
{
    arpc__frame h = {.type = ARPC__FRAME_REQUEST,
                     .request_id = 1,
                     .method_len = 1,
                     .payload_len = (uint32_t)len};
    arpc__frame_write_header(out, &h);
    out[4] = ARPC__FLAG_METADATA;
    out[32] = 'm';
    memcpy(out + 33, payload, len);
    return 33 + len;
}

static void test_md_malformed_blocks(void)
{
    static const struct {
        const char *why;
        uint8_t payload[16];
        size_t len;
    } bad[] = {
        {"no room for the block's length", {0x00, 0x00, 0x00}, 3},
        {"block longer than the payload", {0x05, 0x00, 0x00, 0x00, 1, 0, 0, 0}, 8},
        {"entry header cut", {0x02, 0x00, 0x00, 0x00, 1, 0, 9, 9}, 8},
        {"empty key", {0x05, 0x00, 0x00, 0x00, 0, 0, 1, 0, 'v'}, 9},
        {"value past the block", {0x06, 0x00, 0x00, 0x00, 1, 0, 2, 0, 'k', 'v', 'x'}, 11},
        {"huge lengths", {0x08, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 'k', 'v', 'x', 'y'}, 12},
        {"trailing byte in the block", {0x07, 0x00, 0x00, 0x00, 1, 0, 1, 0, 'k', 'v', 'z'}, 11},
    };
    struct guarded g;
    guarded_init(&g);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t frame[64];
        arpc__frame f;
        fprintf(stderr, "     %s\n", bad[i].why);
        size_t len = md_frame(frame, bad[i].payload, bad[i].len);
        const uint8_t *p = guarded_place(&g, frame, len);
        ASSERT_ERR(arpc__frame_decode(p, len, MAX_FRAME, &f), ARPC_EFRAME);
        /* Incomplete, it is judged only once complete: more is needed. */
        ASSERT_EQ(arpc__frame_decode(guarded_place(&g, frame, len - 1), len - 1, MAX_FRAME, &f), 0);
    }
    /* Every prefix of the goldens against the guard. */
    for (size_t n = 0; n <= sizeof(golden_request_md); n++) {
        arpc__frame f;
        int64_t rc = arpc__frame_decode(guarded_place(&g, golden_request_md, n), n, MAX_FRAME, &f);
        ASSERT_EQ(rc, n < sizeof(golden_request_md) ? 0 : (int64_t)sizeof(golden_request_md));
    }
    for (size_t n = 0; n <= sizeof(golden_response_md); n++) {
        arpc__frame f;
        int64_t rc = arpc__frame_decode(guarded_place(&g, golden_response_md, n), n, MAX_FRAME, &f);
        ASSERT_EQ(rc, n < sizeof(golden_response_md) ? 0 : (int64_t)sizeof(golden_response_md));
    }
    guarded_fini(&g);
}

int main(void)
{
    fill_pattern();
    RUN_TEST(test_golden_encode);
    RUN_TEST(test_golden_decode);
    RUN_TEST(test_stream_split_at_every_position);
    RUN_TEST(test_stream_one_byte_at_a_time);
    RUN_TEST(test_decode_never_reads_past_end);
    RUN_TEST(test_malformed_header);
    RUN_TEST(test_unknown_version);
    RUN_TEST(test_early_rejection);
    RUN_TEST(test_truncated_needs_more);
    RUN_TEST(test_oversize);
    RUN_TEST(test_liberal_decode);
    RUN_TEST(test_settings_golden);
    RUN_TEST(test_settings_liberal_decode);
    RUN_TEST(test_settings_never_reads_past_end);
    RUN_TEST(test_timeout_encoding);
    RUN_TEST(test_write_header_is_canonical);
    RUN_TEST(test_encode_invalid);
    RUN_TEST(test_append_request_sets_id_and_timeout);
    RUN_TEST(test_encode_enomem_leaves_buffer_unchanged);
    RUN_TEST(test_random_round_trip);
    RUN_TEST(test_md_golden);
    RUN_TEST(test_md_setting);
    RUN_TEST(test_md_split_at_every_position);
    RUN_TEST(test_stream_settings);
    RUN_TEST(test_stream_md_golden);
    RUN_TEST(test_md_malformed_blocks);
    return 0;
}

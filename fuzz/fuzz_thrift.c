/*
 * libFuzzer target for Thrift's framed binary protocol (src/proto/thrift/): the session fed
 * the way conn.c feeds it (the bytes a feed left are offered again with the next chunk
 * behind them), and the public type reader (include/arpc/thrift.h) skipping every struct
 * body a session raises.  The input's first byte chooses the side (bit 0), the frame limit
 * (bits 1-3: 11 bytes to 16 MiB), the chunk size (bits 4-7); the rest is what the peer
 * sends.  A server answers every request at once or, with bit 1 of the request's id
 * clear, when the next request arrives, so held answers and their order run too; a client
 * has sent a probe and 64 calls before the input arrives, with every 8th canceled.
 * Properties: feed consumes at most what it was given and fails only with a protocol
 * error; request ids are consecutive; every frame a server writes parses as a strict
 * REPLY or EXCEPTION; every view is readable; no crash, leak or sanitizer report.  Seeds: fuzz/corpus-thrift (gen_thrift_seeds.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/buf.h>
#include <arpc/err.h>
#include <arpc/thrift.h>

#include "base/buf.h"
#include "fuzz_check.h"
#include "proto/proto.h"
#include "proto/thrift/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_state {
    arpc__proto_session *s;
    arpc_buf *out;
    uint64_t held;     /* server: a request answered late, or 0 */
    uint64_t last_id;  /* server: the last request's id */
    uint64_t sink;
} fuzz_state;

static void touch(fuzz_state *f, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        f->sink += b[i];
}

/* Reads a body as a struct, skipping every field: any bytes, never a crash. */
static void read_struct(fuzz_state *f, const void *p, size_t len)
{
    arpc_thrift_reader r;
    arpc_thrift_reader_init(&r, p, len);
    int rc = arpc_thrift_skip(&r, ARPC_THRIFT_STRUCT);
    CHECK(rc == 0 || rc == ARPC_EFRAME);
    CHECK(r.p <= r.end);
    f->sink += (uint64_t)(r.end - r.p);
}

static void answer(fuzz_state *f, uint64_t id, int status)
{
    arpc__msg m = {.id = id, .status = status, .payload = "\0", .payload_len = 1};
    int rc = f->s->ops->send_response(f->s, f->out, &m);
    CHECK(rc == 0 || rc == ARPC_ENOMEM);
}

static int ev_request(void *owner, const arpc__msg *msg)
{
    fuzz_state *f = owner;
    CHECK(msg->id == f->last_id + 1); /* consecutive */
    f->last_id = msg->id;
    CHECK(msg->method_len <= ARPC__PROTO_MAX_METHOD);
    touch(f, msg->method, msg->method_len);
    touch(f, msg->payload, msg->payload_len);
    read_struct(f, msg->payload, msg->payload_len);
    uint64_t held = f->held;
    f->held = 0;
    if (msg->id & 2)
        answer(f, msg->id, 0); /* before the held one: out of order */
    else
        f->held = msg->id;
    if (held != 0)
        answer(f, held, ARPC_ENOMETHOD);
    return 0;
}

static int ev_response(void *owner, const arpc__msg *msg)
{
    fuzz_state *f = owner;
    CHECK(msg->id >= 1 && msg->id <= 64);
    touch(f, msg->payload, msg->payload_len);
    if (msg->status == 0)
        read_struct(f, msg->payload, msg->payload_len);
    return 0;
}

static void ev_pong(void *owner, uint64_t id, const arpc__proto_limits *peer)
{
    (void)owner;
    CHECK(id == 1000 && peer == NULL);
}

static const arpc__proto_events events = {
    .on_request = ev_request, .on_response = ev_response, .on_pong = ev_pong};

static bool is_protocol_error(int64_t rc)
{
    return rc == ARPC_EFRAME || rc == ARPC_EVERSION || rc == ARPC_ETOOBIG || rc == ARPC_ENOMEM;
}

/* Every frame a server wrote parses as a strict REPLY or EXCEPTION. */
static void check_output(const arpc_buf *out)
{
    if (out->len == 0)
        return;
    const uint8_t *d = arpc__buf_head(out);
    size_t off = 0;
    while (off < out->len) {
        CHECK(out->len - off >= 4);
        uint32_t flen = arpc__thrift_frame_len(d + off);
        CHECK(flen <= out->len - off - 4);
        arpc__thrift_header h;
        int64_t n = arpc__thrift_header_decode(d + off + 4, flen, 255, &h);
        CHECK(n > 0 && h.strict);
        CHECK(h.type == ARPC__THRIFT_REPLY || h.type == ARPC__THRIFT_EXCEPTION);
        off += 4 + flen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool server = data[0] & 1;
    static const uint32_t limits[] = {11, 16, 40, 100, 1000, 65536, 1u << 20, 16u << 20};
    size_t chunk = 1 + (size_t)(data[0] >> 4) * 7;
    data++;
    size--;
    fuzz_state f = {0};
    arpc_buf out, in;
    arpc__buf_init(&out);
    arpc__buf_init(&in);
    bool stop = false;
    arpc__proto_config cfg = {.side = server ? ARPC__PROTO_SERVER : ARPC__PROTO_CLIENT,
                              .limits = {.max_message = limits[(data[-1] >> 1) & 7]},
                              .events = &events,
                              .owner = &f,
                              .stop = &stop};
    CHECK(arpc__proto_thrift.create(&cfg, &f.s) == 0);
    f.out = &out;
    if (!server) {
        CHECK(arpc__proto_thrift.send_ping(f.s, &out, 1000, true) == 0);
        for (uint64_t id = 1; id <= 64; id++) {
            arpc__msg m = {.id = id, .method = "echo", .method_len = 4, .payload = "\0",
                           .payload_len = 1};
            CHECK(arpc__proto_thrift.send_request(f.s, &out, &m) == 0);
            if (id % 8 == 0)
                CHECK(arpc__proto_thrift.send_cancel(f.s, &out, id) == ARPC_EINVAL);
        }
        arpc__buf_clear(&out);
    }
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        CHECK(arpc__buf_append(&in, data + off, n) == 0);
        int64_t rc = arpc__proto_thrift.feed(f.s, arpc__buf_head(&in), in.len, &out);
        if (rc < 0) {
            CHECK(is_protocol_error(rc));
            break;
        }
        CHECK((size_t)rc <= in.len);
        arpc__buf_consume(&in, (size_t)rc);
    }
    if (server) {
        if (f.held != 0)
            answer(&f, f.held, 0);
        check_output(&out);
    }
    arpc__proto_thrift.destroy(f.s);
    arpc__buf_fini(&out);
    arpc__buf_fini(&in);
    return 0;
}

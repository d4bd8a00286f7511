/*
 * libFuzzer target for the native protocol's session (src/proto/native/native.c) behind the
 * seam, fed the way conn.c feeds it: the bytes a feed did not consume are offered again
 * with the next chunk behind them.  The input's first byte chooses the side (bit 0: server
 * or client), whether the peer's metadata is accepted (bit 1), the receive limit (bits
 * 2-7: 40 bytes to 16 MiB) and the chunk size; the rest is what the peer sends.  Each
 * request is answered with its payload (send_response), so the encoders run too.
 * fuzz_decoder covers the stateless frame codec; this target adds the session's own state:
 * skipping an oversized frame across chunks, increasing request ids, settings in PING and
 * PONG, metadata blocks, GOAWAY; and streams (docs/protocol.md section 13), on when bit 6 of
 * the second byte is set: a server echoes each stream MESSAGE, gives back its credit and
 * ends the stream at HALF_CLOSE; a client has opened streams 1..1000 and gives back the
 * credit of each MESSAGE, so WINDOWs are coalesced and sent.
 * Properties: feed consumes at most what it was given and returns a negative code only
 * among the protocol errors of proto.h (after which the session is only destroyed); every
 * view an event gets is readable for its length; metadata lists walk to their count; no
 * crash, leak or sanitizer report; stream events come only in the direction section 13
 * allows, for ids > 0, and only with streams on.  Seeds: fuzz/corpus-native-session.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/buf.h>
#include <arpc/err.h>

#include "base/buf.h"
#include "fuzz_check.h"
#include "proto/metadata.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_state {
    arpc__proto_session *s;
    arpc_buf *out;
    bool server;
    bool streams;
    uint64_t sink; /* every byte of every view is added here, so ASan checks them */
} fuzz_state;

static void touch(fuzz_state *f, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        f->sink += b[i];
}

static void check_msg(fuzz_state *f, const arpc__msg *msg)
{
    CHECK(msg->method_len <= ARPC__PROTO_MAX_METHOD);
    touch(f, msg->method, msg->method_len);
    touch(f, msg->payload, msg->payload_len);
    size_t off = 0;
    uint32_t entries = 0;
    arpc_metadata_entry e;
    size_t key_len;
    while (arpc__md_next(&msg->md, &off, &e, &key_len)) {
        touch(f, e.key, key_len);
        touch(f, e.value, e.value_len);
        entries++;
    }
    CHECK(entries == msg->md.count);
    CHECK(off == msg->md.len);
}

static int ev_request(void *owner, const arpc__msg *msg)
{
    fuzz_state *f = owner;
    CHECK(msg->id > 0); /* an answer may name any id (the channel drops unknown ones) */
    check_msg(f, msg);
    arpc__msg answer = {
        .id = msg->id, .md = msg->md, .payload = msg->payload, .payload_len = msg->payload_len};
    int rc = f->s->ops->send_response(f->s, f->out, &answer);
    CHECK(rc == 0 || rc == ARPC_ENOMEM || rc == ARPC_EINVAL);
    return 0;
}

static int ev_response(void *owner, const arpc__msg *msg)
{
    check_msg(owner, msg);
    return 0;
}

static int ev_refused(void *owner, uint64_t id, int err)
{
    (void)owner;
    (void)id;
    CHECK(err == ARPC_ETOOBIG || err == ARPC_EMETADATA || err == ARPC_EINVAL);
    return 0;
}

static void ev_pong(void *owner, uint64_t id, const arpc__proto_limits *peer)
{
    (void)owner;
    (void)id;
    (void)peer;
}

static void ev_ping(void *owner)
{
    (void)owner;
}

static void ev_peer_limits(void *owner, const arpc__proto_limits *peer)
{
    (void)owner;
    CHECK(peer != NULL);
}

static void ev_goaway(void *owner, uint64_t last_id, int reason)
{
    (void)owner;
    (void)last_id;
    CHECK(reason < 0);
}

static void ev_cancel(void *owner, uint64_t id)
{
    fuzz_state *f = owner;
    CHECK(f->server && f->streams && id > 0);
}

static void ev_stream_fault(void *owner, uint64_t id, int fault)
{
    fuzz_state *f = owner;
    CHECK(f->server && f->streams && id > 0);
    CHECK(fault == ARPC__PROTO_FAULT_HEADERS_TOO_BIG);
}

static void send_checked(fuzz_state *f, arpc__stream_frame frame, const arpc__msg *msg)
{
    int rc = f->s->ops->send_stream(f->s, f->out, frame, msg);
    CHECK(rc == 0 || rc == ARPC_ENOMEM || rc == ARPC_EINVAL);
}

/* A server echoes messages and ends at the half-close; both sides give back credit. */
static int ev_stream(void *owner, arpc__stream_frame frame, const arpc__msg *msg)
{
    fuzz_state *f = owner;
    CHECK(f->streams && msg->id > 0);
    if (frame == ARPC__STREAM_CREDIT) {
        /* payload_len counts bytes granted; there is no payload to read. */
        CHECK(msg->payload == NULL && msg->payload_len > 0 && msg->payload_len <= UINT32_MAX);
        return 0;
    }
    check_msg(f, msg);
    arpc__msg credit = {.id = msg->id, .payload_len = msg->payload_len};
    arpc__msg end = {.id = msg->id, .status = 0, .md = msg->md};
    switch (frame) {
    case ARPC__STREAM_OPEN:
        CHECK(f->server && msg->method_len > 0 && msg->payload_len == 0);
        break;
    case ARPC__STREAM_MESSAGE:
        CHECK(!f->server || msg->md.count == 0);
        if (f->server)
            send_checked(f, ARPC__STREAM_MESSAGE, msg);
        if (msg->payload_len > 0)
            send_checked(f, ARPC__STREAM_CREDIT, &credit);
        break;
    case ARPC__STREAM_HALF_CLOSE:
        CHECK(f->server && msg->payload_len == 0);
        send_checked(f, ARPC__STREAM_END, &end);
        break;
    case ARPC__STREAM_END:
        CHECK(!f->server);
        break;
    default:
        CHECK(false);
    }
    return 0;
}

static const arpc__proto_events server_events = {
    .on_request = ev_request,
    .on_refused = ev_refused,
    .on_ping = ev_ping,
    .on_peer_limits = ev_peer_limits,
    .on_cancel = ev_cancel,
    .on_stream_fault = ev_stream_fault,
    .on_stream = ev_stream,
};

static const arpc__proto_events client_events = {
    .on_response = ev_response,
    .on_refused = ev_refused,
    .on_pong = ev_pong,
    .on_ping = ev_ping,
    .on_goaway = ev_goaway,
    .on_stream = ev_stream,
};

static bool is_protocol_error(int64_t rc)
{
    return rc == ARPC_EFRAME || rc == ARPC_EVERSION || rc == ARPC_ETOOBIG || rc == ARPC_ENOMEM;
}

/* Feeds data[0, size) in chunks of `chunk`, holding back what each feed leaves, as conn.c
 * does.  @return false once the session reported a protocol error. */
static bool feed_all(fuzz_state *f, const uint8_t *data, size_t size, size_t chunk)
{
    arpc_buf pending;
    arpc__buf_init(&pending);
    bool ok = true;
    for (size_t off = 0; off < size && ok;) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (arpc__buf_append(&pending, data + off, n) != 0)
            break;
        off += n;
        int64_t used = f->s->ops->feed(f->s, pending.data, pending.len, f->out);
        if (used < 0) {
            CHECK(is_protocol_error(used));
            ok = false;
            break;
        }
        CHECK((size_t)used <= pending.len);
        arpc__buf_consume(&pending, (size_t)used);
        arpc__buf_clear(f->out);
    }
    arpc__buf_fini(&pending);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const bool stop = false;
    uint8_t mode = data[0];
    bool server = (mode & 1) != 0;
    bool streams = (data[1] & 0x40) != 0;
    arpc__proto_config cfg = {
        .side = server ? ARPC__PROTO_SERVER : ARPC__PROTO_CLIENT,
        .limits = {.max_message = 40u << ((mode >> 2) % 19),
                   .max_in_flight = 64,
                   .metadata = (mode & 2) != 0,
                   .streams = streams,
                   .stream_window = 64 * 1024},
        .events = server ? &server_events : &client_events,
        .stop = &stop,
    };
    fuzz_state f = {.server = server, .streams = streams};
    cfg.owner = &f;
    arpc_buf out;
    arpc__buf_init(&out);
    f.out = &out;
    if (arpc__proto_native.create(&cfg, &f.s) != 0) {
        arpc__buf_fini(&out);
        return 0;
    }
    if (streams && !server) {
        /* Streams 1..1000 opened, so the peer's frames may name them. */
        arpc__msg open = {.id = 1000, .method = "s", .method_len = 1};
        CHECK(f.s->ops->send_stream(f.s, f.out, ARPC__STREAM_OPEN, &open) == 0);
        arpc__buf_clear(f.out);
    }
    size_t chunk = (size_t)data[1] % 64 + 1;
    (void)feed_all(&f, data + 2, size - 2, chunk);
    arpc__proto_native.destroy(f.s);
    arpc__buf_fini(&out);
    return 0;
}

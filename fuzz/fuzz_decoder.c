/*
 * libFuzzer target for the native frame decoder (src/proto/codec.c).
 *
 * Each input is a byte stream from a peer.  It is decoded three ways: whole, in two chunks
 * split at a position derived from the first byte, and one byte at a time, each time the
 * way a connection does it (src/rpc/conn.c: append to the input buffer, decode every
 * complete frame, keep the rest, skip the bytes of an oversized REQUEST or RESPONSE as
 * they arrive, stop at any other error).  All three must see the same frames and skips
 * and end the same way.  Every result of the whole decode is also compared with a
 * byte-by-byte reference reading of docs/protocol.md, and every frame must satisfy:
 *   - consumed size == 32 + method_len + payload_len, and the views lie inside the input;
 *   - re-encoding the frame gives the input bytes in canonical form (ignored fields as 0),
 *     through both the header writer and the encoders, and decodes to the same frame;
 *   - an oversized frame is reported with its header as the reference reads it;
 *   - a PING or PONG payload read as settings gives what the reference settings reader
 *     gives, and the settings re-encoded read back the same;
 *   - a REQUEST, RESPONSE, MESSAGE or END with the METADATA flag has a block the reference reads
 * the same way (section 10), its views inside the input, and the encoders write it back from the
 *     in-memory form byte for byte.
 * Everything runs twice: with the default 16 MiB limit and with a small limit taken from
 * the last byte, so ETOOBIG is reached too.  A violated invariant aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/err.h>

#include "base/buf.h"
#include "fuzz_check.h"
#include "proto/frame.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The whole input decoded in one go: what every other way of feeding it must agree with. */
struct trace {
    const uint8_t *data;
    size_t size;
    uint32_t max_frame;
    arpc__frame *frames; /* frames, and skipped oversized frames (views NULL) */
    size_t nframes;
    int64_t end;        /* 0: stopped for want of bytes; < 0: the error */
    size_t leftover;    /* bytes not consumed when end is 0 */
    uint64_t skip_left; /* bytes of a skipped frame still to come when end is 0 */
};

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
    return le16(p) | le16(p + 2) << 16;
}

/* Section 10 read literally: a 4-byte length n <= payload - 4, then entries of key_len
 * (>= 1), value_len, key, value that fill exactly n bytes. */
static bool reference_md(const uint8_t *payload, uint32_t len)
{
    if (len < 4)
        return false;
    uint32_t n = le32(payload);
    if (n > len - 4)
        return false;
    const uint8_t *p = payload + 4;
    uint64_t off = 0;
    while (off < n) {
        if (n - off < 4)
            return false;
        uint64_t k = le16(p + off), v = le16(p + off + 2);
        off += 4;
        if (k == 0 || k + v > n - off)
            return false;
        off += k + v;
    }
    return true;
}

/* The types whose flag bit 1 is METADATA (sections 2 and 13): REQUEST, RESPONSE, MESSAGE,
 * END.  The flag bits each type defines: REQUEST bits 0..2, those four bit 1. */
static bool md_type(unsigned type)
{
    return type == 1 || type == 2 || type == 6 || type == 8;
}

static unsigned known_flags(unsigned type)
{
    return type == 1 ? 7u : md_type(type) ? 2u : 0u;
}

/* status is read on RESPONSE, GOAWAY and END. */
static bool status_type(unsigned type)
{
    return type == 2 || type == 5 || type == 8;
}

/* docs/protocol.md read literally, one byte at a time: the expected result of a decode. */
static int64_t reference_decode(const uint8_t *p, size_t n, uint32_t max_frame)
{
    if (n >= 1 && p[0] != 'A')
        return ARPC_EFRAME;
    if (n >= 2 && p[1] != 'R')
        return ARPC_EFRAME;
    if (n >= 3 && p[2] != 1)
        return ARPC_EVERSION;
    if (n >= 4 && (p[3] < 1 || p[3] > 10))
        return ARPC_EFRAME;
    if (n < 32)
        return 0;
    uint32_t method_len = le16(p + 6);
    if (p[3] == 1 ? method_len < 1 || method_len > 255 : method_len != 0)
        return ARPC_EFRAME;
    if (p[20] != 0 || p[21] != 0 || p[22] != 0 || p[23] != 0)
        return ARPC_EFRAME;
    uint64_t total = 32 + (uint64_t)method_len + le32(p + 8);
    if (total > max_frame)
        return ARPC_ETOOBIG;
    if (n < total)
        return 0;
    if (md_type(p[3]) && (p[4] & 2) && !reference_md(p + 32 + method_len, le32(p + 8)))
        return ARPC_EFRAME;
    return (int64_t)total;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* The header fields of an oversized frame, as docs/protocol.md defines them. */
static void check_oversized_header(const uint8_t *p, const arpc__frame *f)
{
    uint8_t type = p[3];
    CHECK(f->type == type && f->request_id == le64(p + 24));
    CHECK(f->method_len == le16(p + 6) && f->payload_len == le32(p + 8));
    CHECK(f->method == NULL && f->payload == NULL);
    CHECK(f->flags == (p[4] & known_flags(type)));
    CHECK(f->md == NULL && f->md_len == 0);
    CHECK(f->timeout_ms == (type == 1 ? le32(p + 16) : 0));
    CHECK(f->status == (status_type(type) ? (int32_t)le32(p + 12) : 0));
}

/* docs/protocol.md's settings, read literally: entries of id (u16), length n (u16) and n
 * bytes; MAX_FRAME_SIZE (1) and MAX_IN_FLIGHT (2) are 4-byte values, a frame size under
 * 32 + 255 does not count, a STREAM_WINDOW (5) of 0 does not count and one under 65,536
 * reads as 65,536, the last of an id counts, and what does not fit ends it. */
static int reference_settings(const uint8_t *p, size_t n, uint32_t *max_frame,
                              uint32_t *max_in_flight, uint32_t *metadata, uint32_t *streams,
                              uint32_t *window)
{
    int used = 0;
    size_t off = 0;
    *max_frame = 0;
    *max_in_flight = 0;
    *metadata = 0;
    *streams = 0;
    *window = 0;
    while (n - off >= 4) {
        uint32_t id = le16(p + off), len = le16(p + off + 2);
        if (len > n - off - 4)
            break;
        if (len == 4 && id == 1 && le32(p + off + 4) >= 32 + 255) {
            *max_frame = le32(p + off + 4);
            used++;
        } else if (len == 4 && id == 2) {
            *max_in_flight = le32(p + off + 4);
            used++;
        } else if (len == 4 && id == 3) {
            *metadata = le32(p + off + 4);
            used++;
        } else if (len == 4 && id == 4) {
            *streams = le32(p + off + 4);
            used++;
        } else if (len == 4 && id == 5 && le32(p + off + 4) != 0) {
            *window = le32(p + off + 4) < 65536 ? 65536 : le32(p + off + 4);
            used++;
        }
        off += 4 + len;
    }
    return used;
}

static void check_settings(const arpc__frame *f)
{
    arpc__settings s, again;
    uint32_t max_frame, max_in_flight, metadata, streams, window;
    int used = arpc__settings_decode(f->payload, f->payload_len, &s);
    CHECK(used == reference_settings(f->payload, f->payload_len, &max_frame, &max_in_flight,
                                     &metadata, &streams, &window));
    CHECK(s.max_frame_size == max_frame && s.max_in_flight == max_in_flight);
    CHECK(s.metadata == metadata && s.streams == streams && s.stream_window == window);

    arpc_buf b;
    arpc__frame g;
    arpc__buf_init(&b);
    CHECK(arpc__frame_encode_settings(&b, f->type, f->request_id, &s) == 0);
    CHECK(arpc__frame_decode(arpc__buf_head(&b), b.len, UINT32_MAX, &g) == (int64_t)b.len);
    CHECK(g.type == f->type && g.request_id == f->request_id);
    CHECK(g.payload_len == (s.max_frame_size != 0) * 8u + (s.max_in_flight != 0) * 8u +
                               (s.metadata != 0) * 8u + (s.streams != 0) * 8u +
                               (s.stream_window != 0) * 8u);
    CHECK(arpc__settings_decode(g.payload, g.payload_len, &again) == (int)(g.payload_len / 8));
    CHECK(again.max_frame_size == s.max_frame_size && again.max_in_flight == s.max_in_flight);
    CHECK(again.metadata == s.metadata && again.streams == s.streams);
    CHECK(again.stream_window == s.stream_window);
    arpc__buf_fini(&b);
}

/* The header as a conforming encoder would have written it. */
static void canonical_header(const uint8_t *in, uint8_t out[ARPC__FRAME_HEADER_SIZE])
{
    uint8_t type = in[3];

    memcpy(out, in, ARPC__FRAME_HEADER_SIZE);
    out[4] = (uint8_t)(in[4] & known_flags(type));
    out[5] = 0;
    if (!status_type(type))
        memset(out + 12, 0, 4);
    if (type != ARPC__FRAME_REQUEST)
        memset(out + 16, 0, 4);
}

static int inside(const void *view, size_t len, const uint8_t *data, size_t size)
{
    uintptr_t v = (uintptr_t)view, d = (uintptr_t)data;
    return v >= d && v - d <= size && len <= size - (v - d);
}

static void check_same_frame(const arpc__frame *a, const arpc__frame *b)
{
    CHECK(a->type == b->type && a->flags == b->flags && a->request_id == b->request_id);
    CHECK(a->status == b->status && a->timeout_ms == b->timeout_ms);
    CHECK(a->method_len == b->method_len && a->payload_len == b->payload_len);
    CHECK((a->payload == NULL) == (b->payload == NULL));
    CHECK((a->md == NULL) == (b->md == NULL) && a->md_len == b->md_len);
    CHECK(a->md_count == b->md_count);
    if (a->md != NULL)
        CHECK(memcmp(a->md, b->md, a->md_len) == 0);
    if (a->payload == NULL)
        return; /* a skipped oversized frame: its header alone */
    CHECK(memcmp(a->method, b->method, a->method_len) == 0);
    CHECK(memcmp(a->payload, b->payload, a->payload_len) == 0);
}

/* The in-memory form (proto/metadata.h) of a decoded block, without the API's 8 KiB bound:
 * the codec must write back whatever it read. */
static void md_in_memory(const arpc__frame *f, arpc_buf *buf, arpc__md *md)
{
    arpc__buf_init(buf);
    md->count = 0;
    for (uint32_t off = 0; off < f->md_len; md->count++) {
        uint16_t lens[2] = {(uint16_t)le16(f->md + off), (uint16_t)le16(f->md + off + 2)};
        const uint8_t *key = f->md + off + 4;
        CHECK(arpc__buf_append(buf, lens, sizeof(lens)) == 0);
        CHECK(arpc__buf_append(buf, key, lens[0]) == 0);
        CHECK(arpc__buf_append(buf, "", 1) == 0);
        CHECK(arpc__buf_append(buf, key + lens[0], lens[1]) == 0);
        CHECK(arpc__buf_append(buf, "", 1) == 0);
        off += 4u + lens[0] + lens[1];
    }
    CHECK(md->count == f->md_count);
    md->data = buf->len > 0 ? arpc__buf_head(buf) : NULL;
    md->len = (uint32_t)buf->len;
}

static int encode(arpc_buf *b, const arpc__frame *f)
{
    arpc_buf mdbuf;
    arpc__md md = {0};
    arpc__buf_init(&mdbuf);
    if (f->md != NULL)
        md_in_memory(f, &mdbuf, &md);
    int rc;
    switch (f->type) {
    case ARPC__FRAME_REQUEST:
        if (f->flags & ARPC__FLAG_STREAM)
            rc = arpc__frame_encode_open(b, f->request_id, f->timeout_ms, f->method, f->method_len,
                                         &md);
        else
            rc = arpc__frame_encode_request_md(b, f->request_id, f->timeout_ms, f->flags, f->method,
                                               f->method_len, &md, f->payload, f->payload_len);
        break;
    case ARPC__FRAME_RESPONSE:
        rc = arpc__frame_encode_response_md(b, f->request_id, f->status, &md, f->payload,
                                            f->payload_len);
        break;
    case ARPC__FRAME_MESSAGE:
        rc = arpc__frame_encode_message(b, f->request_id, &md, f->payload, f->payload_len);
        break;
    case ARPC__FRAME_END:
        rc = arpc__frame_encode_end(b, f->request_id, f->status, &md, f->payload, f->payload_len);
        break;
    case ARPC__FRAME_WINDOW:
        rc = arpc__frame_encode_window(b, f->request_id, le32(f->payload));
        break;
    default:
        rc = arpc__frame_encode_control(b, f->type, f->request_id, f->status);
    }
    arpc__buf_fini(&mdbuf);
    return rc;
}

/* Re-encodes `f`, decoded from `frame` (`size` bytes), and decodes the result again. */
static void check_reencode(const uint8_t *frame, size_t size, const arpc__frame *f)
{
    uint8_t want[ARPC__FRAME_HEADER_SIZE], header[ARPC__FRAME_HEADER_SIZE];
    canonical_header(frame, want);
    if (f->md == NULL) {
        /* The header writer is for frames without a block. */
        arpc__frame_write_header(header, f);
        CHECK(memcmp(header, want, sizeof(header)) == 0);
    }

    /* An empty block (flag set, length 0) is accepted but never written: the encoders send
     * an empty list as no block, so there is nothing byte for byte to compare. */
    if (f->md != NULL && f->md_count == 0)
        return;
    /* What the session refuses (section 13) has no encoder to compare with: an OPEN with a
     * payload after its block or with IDEMPOTENT, a WINDOW whose payload is not 4 bytes. */
    if (f->type == ARPC__FRAME_REQUEST && (f->flags & ARPC__FLAG_STREAM) &&
        (f->payload_len != 0 || (f->flags & ARPC__FLAG_IDEMPOTENT)))
        return;
    if (f->type == ARPC__FRAME_WINDOW && f->payload_len != 4)
        return;
    /* The control encoders take no payload; a control frame that carried one is compared
     * without it. */
    arpc_buf b;
    arpc__frame again;
    int control = f->type != ARPC__FRAME_REQUEST && f->type != ARPC__FRAME_RESPONSE &&
                  f->type != ARPC__FRAME_MESSAGE && f->type != ARPC__FRAME_END &&
                  f->type != ARPC__FRAME_WINDOW;
    size_t want_size = control ? ARPC__FRAME_HEADER_SIZE : size;
    arpc__buf_init(&b);
    CHECK(encode(&b, f) == 0);
    CHECK(b.len == want_size);
    CHECK(arpc__frame_decode(arpc__buf_head(&b), b.len, UINT32_MAX, &again) == (int64_t)b.len);
    if (control) {
        CHECK(memcmp(arpc__buf_head(&b), want, 8) == 0); /* up to payload_len */
        CHECK(memcmp(arpc__buf_head(&b) + 12, want + 12, 20) == 0);
        again.payload = f->payload;
        again.payload_len = f->payload_len;
    } else {
        CHECK(memcmp(arpc__buf_head(&b), want, sizeof(want)) == 0);
        CHECK(memcmp(arpc__buf_head(&b) + sizeof(want), frame + sizeof(want),
                     size - sizeof(want)) == 0);
    }
    check_same_frame(&again, f);
    arpc__buf_fini(&b);
}

static void check_frame(const struct trace *t, size_t off, int64_t rc, const arpc__frame *f)
{
    const uint8_t *frame = t->data + off;

    uint64_t block = f->md != NULL ? 4 + (uint64_t)f->md_len : 0;
    CHECK((uint64_t)rc == ARPC__FRAME_HEADER_SIZE + f->method_len + block + f->payload_len);
    CHECK((uint64_t)rc == arpc__frame_total(f));
    CHECK((uint64_t)rc <= t->size - off && (uint64_t)rc <= t->max_frame);
    CHECK(f->type >= ARPC__FRAME_REQUEST && f->type <= ARPC__FRAME_WINDOW);
    CHECK(f->method == (const char *)frame + ARPC__FRAME_HEADER_SIZE);
    CHECK(f->payload == frame + ARPC__FRAME_HEADER_SIZE + f->method_len + block);
    CHECK((f->md != NULL) == ((f->flags & ARPC__FLAG_METADATA) != 0));
    if (f->md != NULL)
        CHECK(f->md == frame + ARPC__FRAME_HEADER_SIZE + f->method_len + 4 &&
              inside(f->md, f->md_len, t->data, t->size));
    CHECK(inside(f->method, f->method_len, t->data, t->size));
    CHECK(inside(f->payload, f->payload_len, t->data, t->size));
    check_reencode(frame, (size_t)rc, f);
    if (f->type == ARPC__FRAME_PING || f->type == ARPC__FRAME_PONG)
        check_settings(f);
}

static void decode_whole(struct trace *t)
{
    size_t off = 0;

    t->nframes = 0;
    t->skip_left = 0;
    for (;;) {
        arpc__frame f;
        int64_t rc = arpc__frame_decode(t->data + off, t->size - off, t->max_frame, &f);
        CHECK(rc == reference_decode(t->data + off, t->size - off, t->max_frame));
        if (rc == ARPC_ETOOBIG)
            check_oversized_header(t->data + off, &f);
        if (rc == ARPC_ETOOBIG && arpc__frame_skippable(f.type)) {
            /* The connection skips it: the stream goes on after it. */
            uint64_t total = arpc__frame_total(&f);
            t->frames[t->nframes++] = f;
            if (total > t->size - off) {
                t->end = 0;
                t->leftover = 0;
                t->skip_left = total - (t->size - off);
                return;
            }
            off += (size_t)total;
            continue;
        }
        if (rc <= 0) {
            t->end = rc;
            t->leftover = t->size - off;
            return;
        }
        check_frame(t, off, rc, &f);
        t->frames[t->nframes++] = f;
        off += (size_t)rc;
    }
}

/* One connection's input side. */
struct feeder {
    const struct trace *t;
    arpc_buf in;
    size_t nframes;
    int64_t error;
    uint64_t skip; /* bytes of an oversized frame still to discard */
};

static void feed(struct feeder *fd, const uint8_t *chunk, size_t n)
{
    if (fd->error != 0)
        return; /* the connection is closed */
    CHECK(arpc_buf_append(&fd->in, chunk, n) == 0);
    while (fd->in.len > 0) {
        if (fd->skip > 0) {
            size_t k = fd->skip < fd->in.len ? (size_t)fd->skip : fd->in.len;
            arpc__buf_consume(&fd->in, k);
            fd->skip -= k;
            continue;
        }
        arpc__frame f;
        int64_t rc = arpc__frame_decode(arpc__buf_head(&fd->in), fd->in.len, fd->t->max_frame, &f);
        if (rc == 0)
            return;
        if (rc == ARPC_ETOOBIG && arpc__frame_skippable(f.type)) {
            CHECK(fd->nframes < fd->t->nframes);
            check_same_frame(&f, &fd->t->frames[fd->nframes++]);
            fd->skip = arpc__frame_total(&f);
            continue;
        }
        if (rc < 0) {
            fd->error = rc;
            return;
        }
        CHECK(fd->nframes < fd->t->nframes);
        check_same_frame(&f, &fd->t->frames[fd->nframes++]);
        arpc__buf_consume(&fd->in, (size_t)rc);
    }
}

static void feeder_check_end(struct feeder *fd)
{
    const struct trace *t = fd->t;

    CHECK(fd->nframes == t->nframes);
    CHECK(fd->error == t->end);
    if (t->end == 0)
        CHECK(fd->in.len == t->leftover && fd->skip == t->skip_left);
    arpc__buf_fini(&fd->in);
}

static void feed_in_two(const struct trace *t, size_t split)
{
    struct feeder fd = {.t = t};

    arpc__buf_init(&fd.in);
    feed(&fd, t->data, split);
    feed(&fd, t->data + split, t->size - split);
    feeder_check_end(&fd);
}

static void feed_bytewise(const struct trace *t)
{
    struct feeder fd = {.t = t};

    arpc__buf_init(&fd.in);
    for (size_t i = 0; i < t->size && fd.error == 0; i++)
        feed(&fd, t->data + i, 1);
    feeder_check_end(&fd);
}

static void run(struct trace *t)
{
    decode_whole(t);
    feed_in_two(t, (size_t)((t->data[0] * 2654435761u + t->size) % (t->size + 1)));
    feed_bytewise(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct trace t = {.data = data, .size = size};
    t.frames = malloc((size / ARPC__FRAME_HEADER_SIZE + 1) * sizeof(*t.frames));
    CHECK(t.frames != NULL);

    t.max_frame = ARPC__DEFAULT_MAX_FRAME;
    run(&t);
    t.max_frame = 16 + 2u * data[size - 1];
    run(&t);
    free(t.frames);
    return 0;
}

/*
 * Design notes: the native frame codec (docs/protocol.md is the spec).
 *
 * The decoder is stateless: a connection keeps its unread bytes in one buffer and calls
 * arpc__frame_decode() on the front of it until it returns 0, so partial frames and many
 * frames coalesced in one read ("sticky packets") need no state here.  A decoded frame is a
 * set of views into that buffer: no copy and no allocation per frame.  The decoder's code,
 * and the bodies of the request and response encoders, are in proto/frame_inline.h, inline,
 * so that the native session decodes and encodes without a call and keeps a decoded frame in
 * registers; the functions here are the same code, out of line.
 *
 * Every field is read and written with explicit little-endian byte loads and stores, never
 * by casting the buffer to a struct: frames start at any offset of the read buffer (no
 * alignment), the wire is little-endian on every host, and the struct has padding the wire
 * has not.  Compilers turn the shift-and-or loads into single moves on little-endian hosts.
 *
 * Hot path, complete header: one compare for magic and version together, one for the type,
 * method length and reserved word, one for the size limit, one for "is the body here".
 * The size is summed in 64 bits, because 32 + 255 + a 32-bit payload length overflows 32.
 * Every error is decided from the header alone, so a peer announcing a 4 GiB body is
 * refused at once instead of being buffered.  An incomplete header is judged on the bytes
 * it has: a client of another protocol ("GET / HTTP/1.1") fails on its first byte instead of
 * waiting forever for 32.
 *
 * Liberal in what it accepts: fields a frame type does not use (flags and timeout outside
 * REQUEST, status outside RESPONSE and GOAWAY) and reserved flag bits are ignored, and the
 * decoder reports them as 0 so no upper layer can come to depend on them.  Conservative in
 * what it sends: the one header writer emits exactly that canonical form.
 *
 * An oversized header is reported with the header itself (views NULL): the body of an
 * oversized REQUEST or RESPONSE is skipped by the connection, which fails only that call.
 *
 * Settings (the payload of a PING or PONG) are entries of id, length and value, so a reader
 * skips what it does not know by its length and a later setting can have any size; the
 * reader is liberal (unknown, short or truncated entries are skipped, never an error),
 * because an old receiver skips the whole payload anyway.
 *
 * Threading: no globals; any thread may use these functions on buffers it owns.
 */
#include <string.h>

#include <arpc/err.h>

#include "base/assert.h"
#include "base/buf.h"
#include "base/common.h"
#include "proto/frame.h"
#include "proto/frame_inline.h"

int64_t arpc__frame_decode(const uint8_t *data, size_t len, uint32_t max_frame, arpc__frame *out)
{
    return arpc__frame_decode_inline(data, len, max_frame, out);
}

void arpc__frame_write_header(uint8_t header[ARPC__FRAME_HEADER_SIZE], const arpc__frame *f)
{
    ARPC_ASSERT(type_known(f->type));
    ARPC_ASSERT(method_len_valid(f->type, f->method_len));
    /* No metadata block here: the caller sends method and payload only. */
    pack_header(header, f->type, f->flags & ~ARPC__FLAG_METADATA, f->method_len, f->payload_len,
                f->status, f->timeout_ms, f->request_id);
}

int arpc__frame_encode_request_md(arpc_buf *out, uint64_t request_id, uint32_t timeout_ms,
                                  uint16_t flags, const char *method, size_t method_len,
                                  const arpc__md *md, const void *payload, size_t payload_len)
{
    return arpc__frame_encode_request_inline(out, request_id, timeout_ms, flags, method, method_len,
                                             md, payload, payload_len);
}

int arpc__frame_encode_request(arpc_buf *out, uint64_t request_id, uint32_t timeout_ms,
                               uint16_t flags, const char *method, size_t method_len,
                               const void *payload, size_t payload_len)
{
    return arpc__frame_encode_request_inline(out, request_id, timeout_ms, flags, method, method_len,
                                             NULL, payload, payload_len);
}

int arpc__frame_append_request(arpc_buf *out, const arpc_buf *encoded, uint64_t request_id,
                               uint32_t timeout_ms)
{
    ARPC_ASSERT(encoded->len >= ARPC__FRAME_HEADER_SIZE);
    ARPC_ASSERT(arpc__buf_head(encoded)[OFF_TYPE] == ARPC__FRAME_REQUEST);
    int rc = arpc__buf_ensure(out, encoded->len);
    if (arpc__unlikely(rc < 0))
        return rc;
    uint8_t *h = arpc__buf_tail(out);
    memcpy(h, arpc__buf_head(encoded), encoded->len);
    /* timeout_ms, then the reserved word (0), as pack_header writes them. */
    store_le64(h + OFF_TIMEOUT, timeout_ms);
    store_le64(h + OFF_REQUEST_ID, request_id);
    out->len += encoded->len;
    return 0;
}

int arpc__frame_encode_response_md(arpc_buf *out, uint64_t request_id, int32_t status,
                                   const arpc__md *md, const void *payload, size_t payload_len)
{
    return arpc__frame_encode_response_inline(out, request_id, status, md, payload, payload_len);
}

int arpc__frame_encode_response(arpc_buf *out, uint64_t request_id, int32_t status,
                                const void *payload, size_t payload_len)
{
    return arpc__frame_encode_response_inline(out, request_id, status, NULL, payload, payload_len);
}

int arpc__frame_encode_control(arpc_buf *out, uint8_t type, uint64_t request_id, int32_t status)
{
    if (type != ARPC__FRAME_PING && type != ARPC__FRAME_PONG && type != ARPC__FRAME_GOAWAY &&
        type != ARPC__FRAME_HALF_CLOSE && type != ARPC__FRAME_CANCEL)
        return ARPC_EINVAL;
    arpc__frame f = {.type = type, .request_id = request_id, .status = status};
    return append_frame(out, &f);
}

int arpc__frame_encode_open(arpc_buf *out, uint64_t request_id, uint32_t timeout_ms,
                            const char *method, size_t method_len, const arpc__md *md)
{
    if (method_len == 0 || method_len > ARPC__MAX_METHOD_LEN)
        return ARPC_EINVAL;
    arpc__frame f = {
        .type = ARPC__FRAME_REQUEST,
        .flags = ARPC__FLAG_STREAM,
        .request_id = request_id,
        .timeout_ms = timeout_ms,
        .method = method,
        .method_len = (uint16_t)method_len,
    };
    if (md != NULL && md->count > 0)
        return append_frame_md(out, &f, md);
    return append_frame(out, &f);
}

int arpc__frame_encode_message(arpc_buf *out, uint64_t request_id, const arpc__md *md,
                               const void *payload, size_t payload_len)
{
    return arpc__frame_encode_stream_inline(out, ARPC__FRAME_MESSAGE, request_id, 0, md, payload,
                                            payload_len);
}

int arpc__frame_encode_end(arpc_buf *out, uint64_t request_id, int32_t status, const arpc__md *md,
                           const void *payload, size_t payload_len)
{
    return arpc__frame_encode_stream_inline(out, ARPC__FRAME_END, request_id, status, md, payload,
                                            payload_len);
}

int arpc__frame_encode_window(arpc_buf *out, uint64_t request_id, uint32_t bytes)
{
    uint8_t payload[ARPC__WINDOW_PAYLOAD];
    store_le32(payload, bytes);
    arpc__frame f = {.type = ARPC__FRAME_WINDOW,
                     .request_id = request_id,
                     .payload = payload,
                     .payload_len = ARPC__WINDOW_PAYLOAD};
    return append_frame(out, &f);
}

int arpc__settings_decode(const uint8_t *payload, size_t len, arpc__settings *out)
{
    int used = 0;
    out->max_frame_size = 0;
    out->max_in_flight = 0;
    out->metadata = 0;
    out->streams = 0;
    out->stream_window = 0;
    /* Each entry: id (u16), length n (u16), n bytes of value. */
    for (size_t off = 0; len - off >= 4;) {
        unsigned id = load_le16(payload + off);
        size_t n = load_le16(payload + off + 2);
        off += 4;
        if (n > len - off)
            break; /* truncated: ignored */
        const uint8_t *value = payload + off;
        off += n;
        if (n != 4)
            continue; /* every known setting is a u32: another size is not one we know */
        uint32_t v = load_le32(value);
        if (id == ARPC__SETTING_MAX_FRAME_SIZE &&
            v >= ARPC__FRAME_HEADER_SIZE + ARPC__MAX_METHOD_LEN) {
            out->max_frame_size = v;
            used++;
        } else if (id == ARPC__SETTING_MAX_IN_FLIGHT) {
            out->max_in_flight = v;
            used++;
        } else if (id == ARPC__SETTING_METADATA) {
            out->metadata = v;
            used++;
        } else if (id == ARPC__SETTING_STREAMS) {
            out->streams = v;
            used++;
        } else if (id == ARPC__SETTING_STREAM_WINDOW && v != 0) {
            /* Below the floor a stream would wait a round trip for every few messages: the
             * writer grants itself the floor (docs/protocol.md section 13). */
            out->stream_window = v < ARPC__MIN_STREAM_WINDOW ? ARPC__MIN_STREAM_WINDOW : v;
            used++;
        }
    }
    return used;
}

static inline uint8_t *put_setting(uint8_t *p, unsigned id, uint32_t value)
{
    p[0] = (uint8_t)id;
    p[1] = (uint8_t)(id >> 8);
    p[2] = 4;
    p[3] = 0;
    store_le32(p + 4, value);
    return p + ARPC__SETTING_SIZE;
}

int arpc__frame_encode_settings(arpc_buf *out, uint8_t type, uint64_t request_id,
                                const arpc__settings *settings)
{
    if (type != ARPC__FRAME_PING && type != ARPC__FRAME_PONG)
        return ARPC_EINVAL;
    uint8_t payload[5 * ARPC__SETTING_SIZE];
    uint8_t *p = payload;
    if (settings->max_frame_size != 0)
        p = put_setting(p, ARPC__SETTING_MAX_FRAME_SIZE, settings->max_frame_size);
    if (settings->max_in_flight != 0)
        p = put_setting(p, ARPC__SETTING_MAX_IN_FLIGHT, settings->max_in_flight);
    if (settings->metadata != 0)
        p = put_setting(p, ARPC__SETTING_METADATA, settings->metadata);
    if (settings->streams != 0)
        p = put_setting(p, ARPC__SETTING_STREAMS, settings->streams);
    if (settings->stream_window != 0)
        p = put_setting(p, ARPC__SETTING_STREAM_WINDOW, settings->stream_window);
    arpc__frame f = {.type = type,
                     .request_id = request_id,
                     .payload = payload,
                     .payload_len = (uint32_t)(p - payload)};
    return append_frame(out, &f);
}

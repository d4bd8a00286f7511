/*
 * The native codec's inline half: the frame decoder and the bodies of the request and
 * response encoders.  arpc__frame_decode and the arpc__frame_encode_request/_response
 * functions (proto/frame.h has their contracts, proto/codec.c the design notes) are these
 * functions, and the native session (proto/native/native.c) calls them directly, so a message
 * costs no call into the codec and its decoded frame stays in registers (bench-alloc: 1,750
 * -> 1,683 instructions per call for the decoder, bench/RESULTS.md).  Only codec.c and
 * native.c include this header; the helpers below are theirs.
 *
 * Threading: no globals; any thread may use these functions on buffers it owns.
 */
#ifndef ARPC_PROTO_FRAME_INLINE_H
#define ARPC_PROTO_FRAME_INLINE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpc/err.h>

#include "base/buf.h"
#include "base/common.h"
#include "proto/frame.h"

/* Header field offsets. */
enum {
    OFF_MAGIC0 = 0,
    OFF_MAGIC1 = 1,
    OFF_VERSION = 2,
    OFF_TYPE = 3,
    OFF_FLAGS = 4,
    OFF_METHOD_LEN = 6,
    OFF_PAYLOAD_LEN = 8,
    OFF_STATUS = 12,
    OFF_TIMEOUT = 16,
    OFF_RESERVED = 20,
    OFF_REQUEST_ID = 24
};

#define MAGIC0 0x41 /* 'A' */
#define MAGIC1 0x52 /* 'R' */

/* Bytes 0..2 of every version-1 header, as a little-endian 32-bit load sees them. */
#define LEAD_V1        ((uint32_t)MAGIC0 | (uint32_t)MAGIC1 << 8 | (uint32_t)ARPC__PROTO_VERSION << 16)
#define FLAGS_REQUEST  (ARPC__FLAG_IDEMPOTENT | ARPC__FLAG_METADATA | ARPC__FLAG_STREAM)
#define FLAGS_RESPONSE ARPC__FLAG_METADATA

_Static_assert(OFF_REQUEST_ID + 8 == ARPC__FRAME_HEADER_SIZE, "header fields fill 32 bytes");
_Static_assert(ARPC__MAX_METHOD_LEN <= UINT16_MAX, "method_len is a 16-bit field");
_Static_assert(ARPC__DEFAULT_MAX_FRAME >= ARPC__FRAME_HEADER_SIZE + ARPC__MAX_METHOD_LEN,
               "the default limit admits every request header");

static inline uint16_t load_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static inline uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t load_le64(const uint8_t *p)
{
    return (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
}

/* Types 1..10: one compare, as for 1..5 before streams (the range grew, not the test). */
static inline int type_known(unsigned type)
{
    return type - ARPC__FRAME_REQUEST <= ARPC__FRAME_WINDOW - ARPC__FRAME_REQUEST;
}

/* REQUEST carries a method name of 1..255 bytes; no other type carries one. */
static inline int method_len_valid(unsigned type, unsigned method_len)
{
    if (type == ARPC__FRAME_REQUEST)
        return method_len - 1u < ARPC__MAX_METHOD_LEN;
    return method_len == 0;
}

/* The flag bits a type defines; the others are reserved, read and written as 0.  MESSAGE
 * and END may carry a metadata block, as RESPONSE does.  A table: one load for any type,
 * where a chain of compares grew with the types (`type` is known: <= 10). */
static const uint16_t arpc__frame_flags_known[16] = {
    [ARPC__FRAME_REQUEST] = FLAGS_REQUEST,
    [ARPC__FRAME_RESPONSE] = FLAGS_RESPONSE,
    [ARPC__FRAME_MESSAGE] = ARPC__FLAG_METADATA,
    [ARPC__FRAME_END] = ARPC__FLAG_METADATA,
};

static inline uint16_t flags_known(unsigned type)
{
    return arpc__frame_flags_known[type & 15];
}

/* A bit test, so the three types cost what two compares did (`type` is known: <= 10). */
static inline int carries_status(unsigned type)
{
    return (1u << ARPC__FRAME_RESPONSE | 1u << ARPC__FRAME_GOAWAY | 1u << ARPC__FRAME_END) >> type &
           1u;
}

/*
 * Judges the first bytes of a header, of which `len` (< 32) are present: magic, version and
 * type need no other field.  Checked in the order the complete-header path checks them, so
 * both paths report the same error for the same bytes.
 */
static int64_t check_header_prefix(const uint8_t *h, size_t len)
{
    if (len > OFF_MAGIC0 && h[OFF_MAGIC0] != MAGIC0)
        return ARPC_EFRAME;
    if (len > OFF_MAGIC1 && h[OFF_MAGIC1] != MAGIC1)
        return ARPC_EFRAME;
    if (len > OFF_VERSION && h[OFF_VERSION] != ARPC__PROTO_VERSION)
        return ARPC_EVERSION;
    if (len > OFF_TYPE && !type_known(h[OFF_TYPE]))
        return ARPC_EFRAME;
    return 0;
}

/* Fills `out` from a checked header `h` whose frame is complete in memory. */
static inline __attribute__((always_inline)) void read_frame(const uint8_t *h, unsigned type,
                                                             unsigned method_len,
                                                             uint32_t payload_len, arpc__frame *out)
{
    int request = type == ARPC__FRAME_REQUEST;

    out->type = (uint8_t)type;
    out->flags = load_le16(h + OFF_FLAGS) & flags_known(type);
    out->request_id = load_le64(h + OFF_REQUEST_ID);
    out->status = carries_status(type) ? (int32_t)load_le32(h + OFF_STATUS) : 0;
    out->timeout_ms = request ? load_le32(h + OFF_TIMEOUT) : 0;
    out->method = (const char *)h + ARPC__FRAME_HEADER_SIZE;
    out->method_len = (uint16_t)method_len;
    out->payload = h + ARPC__FRAME_HEADER_SIZE + method_len;
    out->payload_len = payload_len;
    out->md = NULL;
    out->md_len = 0;
    out->md_count = 0;
}

/*
 * Splits the metadata block off the front of a complete frame's payload (docs/protocol.md
 * section 10): its length, then entries of key_len (>= 1) and value_len, whose sizes must
 * fill the block exactly.  Only structure is checked here; what the keys and values may hold
 * is the session's to judge, per call.  @return 0 or ARPC_EFRAME.
 */
static int split_metadata(arpc__frame *f)
{
    if (f->payload_len < ARPC__MD_BLOCK_HEADER)
        return ARPC_EFRAME;
    uint32_t n = load_le32(f->payload);
    if (n > f->payload_len - ARPC__MD_BLOCK_HEADER)
        return ARPC_EFRAME;
    const uint8_t *md = f->payload + ARPC__MD_BLOCK_HEADER;
    uint32_t count = 0;
    for (uint32_t off = 0; off < n; count++) {
        if (n - off < ARPC__MD_WIRE_ENTRY)
            return ARPC_EFRAME;
        uint32_t key_len = load_le16(md + off);
        uint32_t value_len = load_le16(md + off + 2);
        off += ARPC__MD_WIRE_ENTRY;
        if (key_len == 0 || key_len + value_len > n - off)
            return ARPC_EFRAME;
        off += key_len + value_len;
    }
    f->md = md;
    f->md_len = n;
    f->md_count = count;
    f->payload = md + n;
    f->payload_len -= ARPC__MD_BLOCK_HEADER + n;
    return 0;
}

/* arpc__frame_decode (proto/frame.h has its contract), inline. */
static inline __attribute__((always_inline)) int64_t
arpc__frame_decode_inline(const uint8_t *data, size_t len, uint32_t max_frame, arpc__frame *out)
{
    if (arpc__unlikely(len < ARPC__FRAME_HEADER_SIZE))
        return check_header_prefix(data, len);

    uint32_t lead = load_le32(data);
    if (arpc__unlikely((lead & 0xffffffu) != LEAD_V1))
        return check_header_prefix(data, OFF_TYPE); /* the magic or the version is wrong */
    unsigned type = lead >> 24;
    unsigned method_len = load_le16(data + OFF_METHOD_LEN);
    if (arpc__unlikely(!type_known(type) || !method_len_valid(type, method_len) ||
                       load_le32(data + OFF_RESERVED) != 0))
        return ARPC_EFRAME;

    uint32_t payload_len = load_le32(data + OFF_PAYLOAD_LEN);
    uint64_t total = (uint64_t)ARPC__FRAME_HEADER_SIZE + method_len + payload_len;
    if (arpc__unlikely(total > max_frame)) {
        /* The header alone, so the caller can skip the body and fail only its call. */
        read_frame(data, type, method_len, payload_len, out);
        out->method = NULL;
        out->payload = NULL;
        return ARPC_ETOOBIG;
    }
    if (len < total)
        return 0;
    read_frame(data, type, method_len, payload_len, out);
    if (arpc__unlikely(out->flags & ARPC__FLAG_METADATA) && split_metadata(out) < 0)
        return ARPC_EFRAME;
    return (int64_t)total;
}

static inline void store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void store_le64(uint8_t *p, uint64_t v)
{
    store_le32(p, (uint32_t)v);
    store_le32(p + 4, (uint32_t)(v >> 32));
}

/* True if `n` fits the 32-bit payload_len field.  On a 32-bit host the bound also keeps the
 * frame's total size from wrapping around size_t. */
static inline int payload_len_valid(size_t n)
{
#if SIZE_MAX > UINT32_MAX
    return n <= UINT32_MAX;
#else
    return n <= SIZE_MAX - ARPC__FRAME_HEADER_SIZE - ARPC__MAX_METHOD_LEN;
#endif
}

/*
 * Packs a canonical header as four little-endian words; each store_le64 compiles to one move
 * on little-endian hosts.  Shared by the public header writer and the encoders, which inline
 * it: an encoder's whole cost is then one room check, four stores and the copies.
 */
static inline void pack_header(uint8_t *h, unsigned type, uint16_t flags, uint16_t method_len,
                               uint32_t payload_len, int32_t status, uint32_t timeout_ms,
                               uint64_t request_id)
{
    int request = type == ARPC__FRAME_REQUEST;
    uint64_t lead = LEAD_V1 | (uint64_t)type << 24;

    lead |= (uint64_t)(flags & flags_known(type)) << 8 * OFF_FLAGS;
    lead |= (uint64_t)method_len << 8 * OFF_METHOD_LEN;
    store_le64(h, lead);
    store_le64(h + OFF_PAYLOAD_LEN,
               payload_len | (uint64_t)(carries_status(type) ? (uint32_t)status : 0) << 32);
    /* timeout_ms, then the reserved word (0). */
    store_le64(h + OFF_TIMEOUT, request ? timeout_ms : 0);
    store_le64(h + OFF_REQUEST_ID, request_id);
}

_Static_assert(OFF_PAYLOAD_LEN == 8 && OFF_STATUS == 12 && OFF_TIMEOUT == 16 &&
                   OFF_RESERVED == 20 && OFF_FLAGS == 4 && OFF_METHOD_LEN == 6,
               "pack_header's word layout");

/* Appends header, method and payload of `f` as one frame; `out` is unchanged on error.
 * The views of `f` must not point into `out`, which may move when it grows.  Inline, so
 * each encoder's constant fields fold away. */
static inline __attribute__((always_inline)) int append_frame(arpc_buf *out, const arpc__frame *f)
{
    size_t total = ARPC__FRAME_HEADER_SIZE + (size_t)f->method_len + f->payload_len;
    int rc = arpc__buf_ensure(out, total);
    if (arpc__unlikely(rc < 0))
        return rc;

    uint8_t *p = arpc__buf_tail(out);
    pack_header(p, f->type, f->flags, f->method_len, f->payload_len, f->status, f->timeout_ms,
                f->request_id);
    p += ARPC__FRAME_HEADER_SIZE;
    /* memcpy() with a NULL source is undefined even for 0 bytes, and empty payloads are
     * commonly passed as NULL. */
    if (f->method_len > 0)
        memcpy(p, f->method, f->method_len);
    if (f->payload_len > 0)
        memcpy(p + f->method_len, f->payload, f->payload_len);
    out->len += total;
    return 0;
}

/* Writes the wire form of the in-memory list `md` (proto/metadata.h): the block's length,
 * then each entry without its NULs.  @return the bytes written (arpc__frame_md_size). */
static size_t put_metadata(uint8_t *p, const arpc__md *md)
{
    uint8_t *start = p;
    store_le32(p, (uint32_t)(arpc__frame_md_size(md) - ARPC__MD_BLOCK_HEADER));
    p += ARPC__MD_BLOCK_HEADER;
    for (uint32_t off = 0; off < md->len;) {
        uint16_t lens[2];
        memcpy(lens, md->data + off, sizeof(lens));
        const uint8_t *key = md->data + off + 4;
        p[0] = (uint8_t)lens[0];
        p[1] = (uint8_t)(lens[0] >> 8);
        p[2] = (uint8_t)lens[1];
        p[3] = (uint8_t)(lens[1] >> 8);
        memcpy(p + 4, key, lens[0]);
        memcpy(p + 4 + lens[0], key + lens[0] + 1, lens[1]);
        p += ARPC__MD_WIRE_ENTRY + lens[0] + lens[1];
        off += 6u + lens[0] + lens[1];
    }
    return (size_t)(p - start);
}

/* A REQUEST or RESPONSE whose payload begins with the metadata block of `md`.  Inline like
 * append_frame: the encoders' frame description then never lives in memory, which would cost
 * the usual frame, without metadata, a dozen stores and loads. */
static inline __attribute__((always_inline)) int append_frame_md(arpc_buf *out, arpc__frame *f,
                                                                 const arpc__md *md)
{
    uint64_t md_size = arpc__frame_md_size(md);
    if ((uint64_t)f->payload_len + md_size > UINT32_MAX)
        return ARPC_EINVAL;
    size_t total =
        ARPC__FRAME_HEADER_SIZE + (size_t)f->method_len + (size_t)md_size + f->payload_len;
    int rc = arpc__buf_ensure(out, total);
    if (arpc__unlikely(rc < 0))
        return rc;
    uint8_t *p = arpc__buf_tail(out);
    pack_header(p, f->type, f->flags | ARPC__FLAG_METADATA, f->method_len,
                f->payload_len + (uint32_t)md_size, f->status, f->timeout_ms, f->request_id);
    p += ARPC__FRAME_HEADER_SIZE;
    if (f->method_len > 0)
        memcpy(p, f->method, f->method_len);
    p += f->method_len;
    p += put_metadata(p, md);
    if (f->payload_len > 0)
        memcpy(p, f->payload, f->payload_len);
    out->len += total;
    return 0;
}

/* The body of both request encoders (proto/frame.h has their contract); inline, so that the
 * form without metadata keeps no metadata path and no frame in memory, and so that the
 * native session's send_request encodes without a call. */
static inline __attribute__((always_inline)) int
arpc__frame_encode_request_inline(arpc_buf *out, uint64_t request_id, uint32_t timeout_ms,
                                  uint16_t flags, const char *method, size_t method_len,
                                  const arpc__md *md, const void *payload, size_t payload_len)
{
    if (method_len == 0 || method_len > ARPC__MAX_METHOD_LEN || !payload_len_valid(payload_len))
        return ARPC_EINVAL;
    arpc__frame f = {
        .type = ARPC__FRAME_REQUEST,
        .flags = flags & ARPC__FLAG_IDEMPOTENT,
        .request_id = request_id,
        .timeout_ms = timeout_ms,
        .method = method,
        .method_len = (uint16_t)method_len,
        .payload = payload,
        .payload_len = (uint32_t)payload_len,
    };
    if (md != NULL && md->count > 0)
        return append_frame_md(out, &f, md);
    return append_frame(out, &f);
}

/* The body of both response encoders, inline for the same reasons. */
static inline __attribute__((always_inline)) int
arpc__frame_encode_response_inline(arpc_buf *out, uint64_t request_id, int32_t status,
                                   const arpc__md *md, const void *payload, size_t payload_len)
{
    if (!payload_len_valid(payload_len))
        return ARPC_EINVAL;
    arpc__frame f = {
        .type = ARPC__FRAME_RESPONSE,
        .request_id = request_id,
        .status = status,
        .payload = payload,
        .payload_len = (uint32_t)payload_len,
    };
    if (md != NULL && md->count > 0)
        return append_frame_md(out, &f, md);
    return append_frame(out, &f);
}

/* MESSAGE and END: a RESPONSE's layout under another type (codec.c and native.c). */
static inline int arpc__frame_encode_stream_inline(arpc_buf *out, unsigned type,
                                                   uint64_t request_id, int32_t status,
                                                   const arpc__md *md, const void *payload,
                                                   size_t payload_len)
{
    if (!payload_len_valid(payload_len))
        return ARPC_EINVAL;
    arpc__frame f = {
        .type = (uint8_t)type,
        .request_id = request_id,
        .status = status,
        .payload = payload,
        .payload_len = (uint32_t)payload_len,
    };
    if (md != NULL && md->count > 0)
        return append_frame_md(out, &f, md);
    return append_frame(out, &f);
}

#endif

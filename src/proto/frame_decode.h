/*
 * The native frame decoder, inline: arpc__frame_decode (proto/frame.h has the contract,
 * proto/codec.c the design notes) is this function, and the native session's decode loop
 * (proto/native/native.c) calls it directly, so each message costs no call and its decoded
 * frame stays in registers (bench-alloc: 67 instructions per call fewer, bench/RESULTS.md).
 * Only codec.c and native.c include this header; the helpers below are theirs.
 *
 * Threading: no globals; any thread may decode buffers it owns.
 */
#ifndef ARPC_PROTO_FRAME_DECODE_H
#define ARPC_PROTO_FRAME_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include <arpc/err.h>

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
#define FLAGS_REQUEST  (ARPC__FLAG_IDEMPOTENT | ARPC__FLAG_METADATA)
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

static inline int type_known(unsigned type)
{
    return type - ARPC__FRAME_REQUEST <= ARPC__FRAME_GOAWAY - ARPC__FRAME_REQUEST;
}

/* REQUEST carries a method name of 1..255 bytes; no other type carries one. */
static inline int method_len_valid(unsigned type, unsigned method_len)
{
    if (type == ARPC__FRAME_REQUEST)
        return method_len - 1u < ARPC__MAX_METHOD_LEN;
    return method_len == 0;
}

/* The flag bits a type defines; the others are reserved, read and written as 0. */
static inline uint16_t flags_known(unsigned type)
{
    return type == ARPC__FRAME_REQUEST    ? FLAGS_REQUEST
           : type == ARPC__FRAME_RESPONSE ? FLAGS_RESPONSE
                                          : 0;
}

static inline int carries_status(unsigned type)
{
    return type == ARPC__FRAME_RESPONSE || type == ARPC__FRAME_GOAWAY;
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

#endif

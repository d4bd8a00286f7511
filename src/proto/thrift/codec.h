/*
 * Thrift's framed transport and binary protocol, the message level (docs/thrift.md
 * sections 2 and 3): pure functions, no state.  The session (thrift_proto.c) frames and
 * orders messages with them; the types inside a message are include/arpc/thrift.h's.
 *
 * A frame is a 4-byte big-endian length and that many bytes: one message, whose header is
 *   strict:    i32 (0x80010000 | type), string name, i32 seqid
 *   old style: string name, byte type, i32 seqid          (read only; written strict)
 * followed by the body, a struct (the arguments, the result, or a TApplicationException).
 */
#ifndef ARPC_PROTO_THRIFT_CODEC_H
#define ARPC_PROTO_THRIFT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/buf.h>

/* Message types (TMessageType). */
enum {
    ARPC__THRIFT_CALL = 1,
    ARPC__THRIFT_REPLY = 2,
    ARPC__THRIFT_EXCEPTION = 3,
    ARPC__THRIFT_ONEWAY = 4,
};

/* TApplicationException's types, as the Thrift spec numbers them. */
enum {
    ARPC__THRIFT_APPEX_UNKNOWN = 0,
    ARPC__THRIFT_APPEX_UNKNOWN_METHOD = 1,
    ARPC__THRIFT_APPEX_INVALID_MESSAGE_TYPE = 2,
    ARPC__THRIFT_APPEX_WRONG_METHOD_NAME = 3,
    ARPC__THRIFT_APPEX_BAD_SEQUENCE_ID = 4,
    ARPC__THRIFT_APPEX_MISSING_RESULT = 5,
    ARPC__THRIFT_APPEX_INTERNAL_ERROR = 6,
    ARPC__THRIFT_APPEX_PROTOCOL_ERROR = 7,
    ARPC__THRIFT_APPEX_INVALID_TRANSFORM = 8,
    ARPC__THRIFT_APPEX_INVALID_PROTOCOL = 9,
    ARPC__THRIFT_APPEX_UNSUPPORTED_CLIENT_TYPE = 10,
};

#define ARPC__THRIFT_FRAME_HEADER 4
#define ARPC__THRIFT_VERSION_1    0x80010000u
#define ARPC__THRIFT_VERSION_MASK 0xffff0000u
/* The frame of the smallest message: an old-style header with a one-byte name (4 + 1 + 1 +
 * 4) and an empty struct (its STOP). */
#define ARPC__THRIFT_MIN_MESSAGE 11u
/* The strict header's bytes beyond the name: version and type, name length, seqid. */
#define ARPC__THRIFT_HEADER_FIXED 12u

/* A decoded message header.  `name` is a view into the bytes decoded. */
typedef struct arpc__thrift_header {
    const char *name;
    uint32_t name_len;
    uint8_t type;   /* ARPC__THRIFT_CALL .. _ONEWAY */
    int32_t seqid;
    bool strict;    /* the header had a version word */
} arpc__thrift_header;

/*
 * Decodes a message header from data[0, len) (a frame's body, or a prefix of one).
 * Names longer than `max_name` are refused.
 * @return bytes of the header (the body follows), 0 when data ends inside it,
 *         ARPC_EVERSION (a version word other than 1), ARPC_EFRAME (a negative or over-long
 *         name, a type outside 1..4).
 */
int64_t arpc__thrift_header_decode(const uint8_t *data, size_t len, size_t max_name,
                                   arpc__thrift_header *h);

/* The bytes a strict header with a name of name_len takes. */
static inline size_t arpc__thrift_header_size(size_t name_len)
{
    return ARPC__THRIFT_HEADER_FIXED + name_len;
}

/* Writes a strict header at p (arpc__thrift_header_size(name_len) bytes). */
void arpc__thrift_header_write(uint8_t *p, const char *name, uint32_t name_len, uint8_t type,
                               int32_t seqid);

/*
 * Appends one framed message: frame length, strict header, body.  @return 0, ARPC_ENOMEM
 * or ARPC_EINVAL (a frame over 2^31-1 bytes); `out` unchanged on error.
 */
int arpc__thrift_encode(arpc_buf *out, const char *name, uint32_t name_len, uint8_t type,
                        int32_t seqid, const void *body, size_t body_len);

/* The frame's length from its 4 header bytes (as unsigned; above INT32_MAX is negative on
 * the wire). */
static inline uint32_t arpc__thrift_frame_len(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The TApplicationException struct: {1: string message, 2: i32 type}. */
typedef struct arpc__thrift_appex {
    const char *message; /* a view; NULL when absent */
    size_t message_len;
    int32_t type;
} arpc__thrift_appex;

/* Appends the struct's bytes.  @return 0 or ARPC_ENOMEM (`out` may hold part of it). */
int arpc__thrift_appex_write(arpc_buf *out, int32_t type, const char *message, size_t len);

/* Reads the struct, skipping unknown fields.  @return 0 or ARPC_EFRAME. */
int arpc__thrift_appex_read(const uint8_t *data, size_t len, arpc__thrift_appex *ex);

/* The arpc status a TApplicationException means to a caller, and the type a status is
 * sent as (docs/thrift.md section 5). */
int arpc__thrift_appex_status(const arpc__thrift_appex *ex);
int32_t arpc__thrift_appex_type(int status);

#endif

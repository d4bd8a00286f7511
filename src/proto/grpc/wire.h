/*
 * The pure pieces of gRPC's wire format (grpc/grpc doc/PROTOCOL-HTTP2.md), for the gRPC
 * protocol module to call from its nghttp2 callbacks: the Length-Prefixed-Message decoder
 * and encoder, grpc-timeout, grpc-message percent-encoding, custom-metadata rules with
 * base64 for "-bin" values, and the status-code table (docs/grpc.md).  Nothing here knows
 * HTTP/2, streams or calls; nothing keeps global state, so any loop thread may use these
 * functions on its own buffers.  Only the message decoder (assembly buffer) and
 * arpc__grpc_msg_encode (the caller's arpc_buf) allocate, through src/base/alloc.h.
 *
 * Unless a comment says otherwise: Thread: any, on buffers the caller owns.  Suspends: no.
 * Inputs are (pointer, length) pairs, need no NUL, and are never read past their length;
 * outputs are written only on success.
 */
#ifndef ARPC_PROTO_GRPC_WIRE_H
#define ARPC_PROTO_GRPC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/buf.h>

/* ---- Length-Prefixed-Message: 1-byte compressed flag, 4-byte big-endian length, payload */

#define ARPC__GRPC_PREFIX_SIZE      5
#define ARPC__GRPC_DEFAULT_MAX_RECV (4u * 1024 * 1024) /* gRPC's default receive limit */

/* One decoded message.  `data` is a view, never NULL, valid until the next call on the
 * decoder that produced it (or its fini): either into the chunk that was passed in (the
 * payload lay in that one chunk; no copy) or into the decoder's assembly buffer. */
typedef struct arpc__grpc_msg {
    const uint8_t *data;
    uint32_t len;
    bool compressed; /* flag byte 1: the caller decides (INTERNAL without a grpc-encoding) */
} arpc__grpc_msg;

/* Incremental decoder for one stream's DATA bytes.  Caller storage; fields are private. */
typedef struct arpc__grpc_msg_decoder {
    uint8_t *body;     /* assembly buffer (arpc__malloc) or NULL */
    uint32_t body_cap; /* its size */
    uint32_t have;     /* bytes of the current prefix or body received so far */
    uint32_t msg_len;  /* the current message's length, once its prefix is known */
    uint32_t max_len;  /* receive limit on a message's payload length */
    int err;           /* the sticky error, 0 while healthy */
    uint8_t state;
    bool compressed;
    uint8_t prefix[ARPC__GRPC_PREFIX_SIZE]; /* a prefix split across chunks */
} arpc__grpc_msg_decoder;

/*
 * Prepares `d` with a receive limit: a message whose prefix announces more than `max_len`
 * payload bytes is refused (ARPC_ETOOBIG).  Allocates nothing.
 * Thread: the owner of `d`.  Suspends: no.
 */
void arpc__grpc_msg_decoder_init(arpc__grpc_msg_decoder *d, uint32_t max_len);

/* Frees the assembly buffer.  `d` may be initialised again afterwards. */
void arpc__grpc_msg_decoder_fini(arpc__grpc_msg_decoder *d);

/*
 * Decodes from the chunk *data[0, *len), advancing *data and *len past what it consumed.
 * Call it again with the advanced chunk until it returns 0 (chunk consumed, more bytes
 * needed) or an error.  `*data` may be NULL when `*len` is 0.
 *
 * @param out  on 1, the message (see arpc__grpc_msg); untouched otherwise.
 * @return 1: a message is in `out`; 0: the chunk is consumed, the next one continues the
 *         current message; ARPC_ETOOBIG: a prefix announced more than max_len, reported as
 *         soon as its 5 bytes are known; ARPC_EFRAME: a flag byte other than 0 or 1,
 *         reported as soon as that byte is known; ARPC_ENOMEM: the assembly buffer could
 *         not grow.  Errors are sticky: every later call consumes its whole chunk without
 *         looking at it and returns the same error, so a caller can keep passing the rest
 *         of the stream's DATA through (for flow control) at no cost.  Never reads past
 *         the chunk.
 * Thread: the owner of `d`.  Suspends: no.
 */
int arpc__grpc_msg_decode(arpc__grpc_msg_decoder *d, const uint8_t **data, size_t *len,
                          arpc__grpc_msg *out);

/* True if `d` stands between messages (no partial prefix or payload) and has no error:
 * at END_STREAM anything else is a truncated message. */
bool arpc__grpc_msg_decoder_at_boundary(const arpc__grpc_msg_decoder *d);

/* Writes the 5-byte prefix of a message of `len` payload bytes. */
void arpc__grpc_msg_write_prefix(uint8_t prefix[ARPC__GRPC_PREFIX_SIZE], bool compressed,
                                 uint32_t len);

/*
 * Appends one whole message (prefix and payload) to `out`.  `payload` may be NULL if `len`
 * is 0 and must not point into `out`.
 * @return 0; ARPC_EINVAL (len > UINT32_MAX); ARPC_ENOMEM (out unchanged).
 * Thread: the owner of `out`.  Suspends: no.
 */
int arpc__grpc_msg_encode(arpc_buf *out, bool compressed, const void *payload, size_t len);

/* ---- grpc-timeout: 1*8DIGIT followed by one of H M S m u n -------------------------------- */

#define ARPC__GRPC_TIMEOUT_MAX_DIGITS 8
#define ARPC__GRPC_TIMEOUT_MAX_LEN    (ARPC__GRPC_TIMEOUT_MAX_DIGITS + 1)

/*
 * Parses a grpc-timeout value (`len` bytes, no NUL needed).
 * @param timeout_ns  on success the duration in ns, saturated at INT64_MAX.
 * @return 0 or ARPC_EINVAL (no digit, more than 8, any other byte, a missing or unknown
 *         unit); timeout_ns untouched on error.
 * Thread: any.  Suspends: no.
 */
int arpc__grpc_timeout_parse(const char *s, size_t len, int64_t *timeout_ns);

/*
 * Parses a grpc-timeout value into a deadline on the arpc__now_ns() clock:
 * now_ns + timeout, saturated at INT64_MAX (ARPC__NO_DEADLINE).
 * @return 0 or ARPC_EINVAL (deadline_ns untouched).
 * Thread: any.  Suspends: no.
 */
int arpc__grpc_timeout_deadline(const char *s, size_t len, int64_t now_ns, int64_t *deadline_ns);

/*
 * Encodes a remaining time as gRPC does: at most 8 digits in the finest unit that holds
 * the value, rounded up, so the receiver's deadline is never earlier than the sender's.
 * A remaining time <= 0 (already expired) encodes as "1n", the smallest timeout there is.
 * Writes no NUL.
 * @return the number of bytes written (2..9).
 * Thread: any.  Suspends: no.
 */
size_t arpc__grpc_timeout_encode(int64_t remaining_ns, char out[ARPC__GRPC_TIMEOUT_MAX_LEN]);

/* ---- grpc-message percent-encoding ---------------------------------------------------- */

/* Bytes the encoding of data[0, n) takes (each byte outside 0x20..0x7E, and '%', takes 3);
 * SIZE_MAX if that does not fit in size_t. */
size_t arpc__grpc_percent_encoded_len(const void *data, size_t n);

/* Writes the encoding of data[0, n) to `out`, which holds arpc__grpc_percent_encoded_len()
 * bytes; escapes are "%XX" with upper-case hex.  @return the bytes written. */
size_t arpc__grpc_percent_encode(const void *data, size_t n, char *out);

/* Decodes s[0, n) into `out` (room for n bytes; out == s decodes in place).  Lenient, as
 * the spec asks of receivers: a '%' not followed by two hex digits (either case) is kept
 * as it is.  Never fails.  @return the bytes written (<= n). */
size_t arpc__grpc_percent_decode(const char *s, size_t n, uint8_t *out);

/* ---- custom metadata ------------------------------------------------------------------ */

/* Key syntax: 1 or more of 0-9 a-z _ - . (gRPC's Header-Name). */
bool arpc__grpc_md_key_valid(const char *key, size_t len);

/* Keys the transport owns, which user metadata must not set and handlers do not see:
 * "grpc-*", HTTP/2 pseudo-headers (":*"), te, content-type, content-length, host, and
 * the connection-specific headers HTTP/2 forbids (connection, keep-alive,
 * proxy-connection, transfer-encoding, upgrade). */
bool arpc__grpc_md_key_reserved(const char *key, size_t len);

/* True if the key ends in "-bin": its value is binary, base64 on the wire. */
bool arpc__grpc_md_key_is_bin(const char *key, size_t len);

/* ASCII value: bytes 0x20..0x7E, not starting or ending with a space (RFC 9113 §8.2.1,
 * which nghttp2 enforces on receipt).  The empty value is valid. */
bool arpc__grpc_md_value_valid(const char *value, size_t len);

/*
 * Checks one user metadata entry before it is sent or handed to a handler: the key valid
 * and not reserved, and, unless the key ends in "-bin" (any bytes), the value valid.
 * @return 0 or ARPC_EINVAL.
 * Thread: any.  Suspends: no.
 */
int arpc__grpc_md_check(const char *key, size_t key_len, const void *value, size_t value_len);

/* Bytes of the unpadded base64 encoding of `n` bytes (as gRPC sends "-bin" values). */
size_t arpc__grpc_base64_encoded_len(size_t n);

/* Writes the unpadded standard-alphabet base64 of data[0, n); `out` holds
 * arpc__grpc_base64_encoded_len(n) bytes.  @return the bytes written. */
size_t arpc__grpc_base64_encode(const void *data, size_t n, char *out);

/* Upper bound of the bytes decoding `n` base64 characters gives. */
size_t arpc__grpc_base64_decoded_max(size_t n);

/*
 * Decodes standard-alphabet base64, padded or unpadded, into `out` (room for
 * arpc__grpc_base64_decoded_max(n) bytes).  Bits below the last byte are ignored.
 * @param out_len  on success the bytes written.
 * @return 0 or ARPC_EINVAL (a byte outside the alphabet, '=' anywhere but as 1 or 2
 *         trailing pad bytes of a multiple-of-4 input, or a length of 4k+1 characters).
 * Thread: any.  Suspends: no.
 */
int arpc__grpc_base64_decode(const char *s, size_t n, uint8_t *out, size_t *out_len);

/* ---- status codes (docs/grpc.md has the table and its reasons) --------------------------- */

#define ARPC__GRPC_STATUS_MAP(X) \
    X(OK, 0)                     \
    X(CANCELLED, 1)              \
    X(UNKNOWN, 2)                \
    X(INVALID_ARGUMENT, 3)       \
    X(DEADLINE_EXCEEDED, 4)      \
    X(NOT_FOUND, 5)              \
    X(ALREADY_EXISTS, 6)         \
    X(PERMISSION_DENIED, 7)      \
    X(RESOURCE_EXHAUSTED, 8)     \
    X(FAILED_PRECONDITION, 9)    \
    X(ABORTED, 10)               \
    X(OUT_OF_RANGE, 11)          \
    X(UNIMPLEMENTED, 12)         \
    X(INTERNAL, 13)              \
    X(UNAVAILABLE, 14)           \
    X(DATA_LOSS, 15)             \
    X(UNAUTHENTICATED, 16)

enum arpc__grpc_status {

#define ARPC__GRPC_STATUS_ENUM(name, value) ARPC__GRPC_##name = (value),
    ARPC__GRPC_STATUS_MAP(ARPC__GRPC_STATUS_ENUM)
#undef ARPC__GRPC_STATUS_ENUM
        ARPC__GRPC_STATUS_COUNT
};

/* "OK", "CANCELLED", ...; "UNKNOWN" for a code outside 0..16 (gRPC treats those as
 * UNKNOWN).  A static string, never NULL. */
const char *arpc__grpc_status_name(int code);

/* The gRPC code to send for an arpc status: 0, a negative arpc_err, or a positive
 * application code (1..16 keep their number; any other is UNKNOWN). */
int arpc__grpc_status_from_arpc(int status);

/* The arpc status a caller sees for a received gRPC code: an arpc_err where one means the
 * same, else the positive application code of the same number; a code outside 0..16 is
 * UNKNOWN (2).  arpc__grpc_status_from_arpc(arpc__grpc_status_to_arpc(c)) == c for every
 * c in 0..16. */
int arpc__grpc_status_to_arpc(int code);

/* Parses a grpc-status value (1..3 decimal digits, nothing else) into `code`.
 * @return 0 or ARPC_EINVAL (code untouched): the caller then reports UNKNOWN. */
int arpc__grpc_status_parse(const char *s, size_t len, int *code);

#endif

/*
 * The native wire protocol: frame layout, an incremental decoder and the
 * encoders.  docs/protocol.md is the authoritative description of the format;
 * this header is its C view.  Nothing here allocates except the encoders
 * (which grow the caller's buffer), and nothing keeps state between calls, so
 * any loop thread may use these functions on its own buffers.
 */
#ifndef ARPC_PROTO_FRAME_H
#define ARPC_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <arpc/buf.h>

#include "proto/proto.h"

#define ARPC__FRAME_HEADER_SIZE 32
#define ARPC__PROTO_VERSION     1
#define ARPC__MAX_METHOD_LEN    255
#define ARPC__DEFAULT_MAX_FRAME (16u * 1024 * 1024)

enum arpc__frame_type {
    ARPC__FRAME_REQUEST = 1,
    ARPC__FRAME_RESPONSE = 2,
    ARPC__FRAME_PING = 3,
    ARPC__FRAME_PONG = 4,
    ARPC__FRAME_GOAWAY = 5,
    /* Streams (docs/protocol.md section 13), only between peers that announced STREAMS = 1. */
    ARPC__FRAME_MESSAGE = 6,    /* either way: one message of stream request_id */
    ARPC__FRAME_HALF_CLOSE = 7, /* client to server: the client sends no more messages */
    ARPC__FRAME_END = 8,        /* server to client: the stream's status, trailing metadata */
    ARPC__FRAME_CANCEL = 9,     /* client to server: stop request or stream request_id */
    ARPC__FRAME_WINDOW = 10     /* either way: u32 LE, bytes more the peer may send */
};

/* REQUEST only: the caller allows the request to be retried on another
 * connection even if it may already have run. */
#define ARPC__FLAG_IDEMPOTENT 0x1
/* REQUEST and RESPONSE: the payload begins with a metadata block (docs/protocol.md
 * section 10), sent only to a peer whose settings said METADATA = 1. */
#define ARPC__FLAG_METADATA 0x2
/* REQUEST only: the request opens stream request_id (docs/protocol.md section 13); its payload
 * is the metadata block alone. */
#define ARPC__FLAG_STREAM 0x4

/* The payload of a WINDOW frame: the bytes granted, u32 LE. */
#define ARPC__WINDOW_PAYLOAD 4

/* Bytes of the metadata block's length field, and of each entry's two length fields. */
#define ARPC__MD_BLOCK_HEADER 4
#define ARPC__MD_WIRE_ENTRY   4

/* The largest timeout_ms the field can carry: a longer remaining time is sent as this. */
#define ARPC__MAX_TIMEOUT_MS UINT32_MAX

/* Settings ids (docs/protocol.md section 4, "Settings"). */
enum arpc__setting_id {
    ARPC__SETTING_MAX_FRAME_SIZE = 1,
    ARPC__SETTING_MAX_IN_FLIGHT = 2,
    ARPC__SETTING_METADATA = 3,
    ARPC__SETTING_STREAMS = 4,      /* 1: the sender reads stream frames */
    ARPC__SETTING_STREAM_WINDOW = 5 /* bytes a stream may send the sender before a WINDOW */
};

/* STREAM_WINDOW when not announced, and the smallest value it is read as (a lower one is
 * read as this floor: docs/protocol.md section 13). */
#define ARPC__DEFAULT_STREAM_WINDOW (256u * 1024)
#define ARPC__MIN_STREAM_WINDOW     (64u * 1024)

/* Bytes of one encoded setting with a 32-bit value: id (2), length (2), value (4). */
#define ARPC__SETTING_SIZE 8

/*
 * One decoded frame, or the description of one to encode.  The decoder
 * normalises the fields a type does not use to 0 (flags and timeout_ms outside
 * REQUEST, status outside RESPONSE and GOAWAY, reserved flag bits), so upper
 * layers never see what the protocol says to ignore.
 */
typedef struct arpc__frame {
    uint8_t type; /* enum arpc__frame_type */
    uint16_t flags;
    uint64_t request_id;
    int32_t status;
    uint32_t timeout_ms;
    /* Views into the decoder's input, valid while that input is; not NUL-terminated.  Never
     * NULL after a decode: an empty view points just past the bytes that precede it. */
    const char *method;
    uint16_t method_len;
    const uint8_t *payload;
    uint32_t payload_len;
    /* With ARPC__FLAG_METADATA: the block's entries in their wire form (each key_len and
     * value_len as u16 LE, key, value), checked for structure; payload and payload_len are
     * then what follows the block.  NULL and 0 otherwise (and on ARPC_ETOOBIG). */
    const uint8_t *md;
    uint32_t md_len;
    uint32_t md_count;
} arpc__frame;

/*
 * Decodes one frame from data[0, len).
 *
 * @param max_frame  the largest total frame size (header + method + payload) accepted.
 * @param out        on success the frame; its views point into `data`.  On ARPC_ETOOBIG the
 *                   frame's header (type, ids, method_len, payload_len; both views NULL), so
 *                   the caller can skip the frame's arpc__frame_total(out) bytes.  Untouched
 *                   otherwise.
 * @return the frame's total size (> 0); 0 if more bytes are needed; or
 *         ARPC_EFRAME (bad magic, unknown type, non-zero reserved word, method_len out of
 *         range for the type, a metadata block whose lengths do not add up), ARPC_EVERSION (magic
 * fine, version not 1) or ARPC_ETOOBIG (a well-formed header, but 32 + method_len + payload_len >
 * max_frame).  Errors are reported as soon as the header is complete, without waiting for the body;
 * a bad magic, version or type is reported as soon as its byte is present.  Never reads data[len]
 * or beyond. Thread: any.  Suspends: no.
 */
int64_t arpc__frame_decode(const uint8_t *data, size_t len, uint32_t max_frame, arpc__frame *out);

/* The total size of `f` on the wire: 32 + method_len + payload_len, plus the metadata block
 * if it has one (64 bits: it may not fit 32). */
static inline uint64_t arpc__frame_total(const arpc__frame *f)
{
    uint64_t md = f->md != NULL ? ARPC__MD_BLOCK_HEADER + (uint64_t)f->md_len : 0;
    return (uint64_t)ARPC__FRAME_HEADER_SIZE + f->method_len + md + f->payload_len;
}

/* The bytes the block of the in-memory list `md` takes on the wire (0 for none). */
static inline uint64_t arpc__frame_md_size(const arpc__md *md)
{
    if (md == NULL || md->count == 0)
        return 0;
    return ARPC__MD_BLOCK_HEADER + (uint64_t)md->len - 2u * md->count; /* no NULs */
}

/* True for the types whose oversized frames cost only their call: a receiver skips the
 * body of an oversized REQUEST or RESPONSE and answers or fails that one request id
 * (docs/protocol.md section 7).  An oversized control or stream frame is a protocol error
 * (a stream's writer checks its messages against the peer's limit: section 13). */
static inline int arpc__frame_skippable(unsigned type)
{
    return type == ARPC__FRAME_REQUEST || type == ARPC__FRAME_RESPONSE;
}

/*
 * A remaining time as the timeout_ms field carries it (docs/protocol.md section 6): rounded
 * up to whole milliseconds, so a remainder under 1 ms becomes 1 (0 would mean "no
 * deadline"), and saturated at ARPC__MAX_TIMEOUT_MS.
 *
 * @param left_ns  the time left, > 0.
 * Thread: any.  Suspends: no.
 */
static inline uint32_t arpc__frame_timeout_ms(int64_t left_ns)
{
    /* One division, not a division and a remainder: this runs once per request. */
    if (left_ns > (int64_t)ARPC__MAX_TIMEOUT_MS * 1000000)
        return ARPC__MAX_TIMEOUT_MS;
    return (uint32_t)(((uint64_t)left_ns + 999999) / 1000000);
}

/*
 * The settings a peer announces in the payload of its first PING (client) or of its PONG
 * (server): docs/protocol.md section 4, "Settings".  0 in a field means "not announced".
 */
typedef struct arpc__settings {
    uint32_t max_frame_size; /* the largest frame the sender accepts (>= 32 + 255) */
    uint32_t max_in_flight;  /* requests the sender runs at once on this connection */
    uint32_t metadata;       /* 1: the sender accepts ARPC__FLAG_METADATA frames */
    uint32_t streams;        /* 1: the sender reads stream frames (section 13) */
    uint32_t stream_window;  /* the sender's window per stream (>= ARPC__MIN_STREAM_WINDOW) */
} arpc__settings;

/*
 * Reads a settings payload.  Liberal: an entry with an unknown id, or a known id with a
 * length other than 4, is skipped by its length; a truncated last entry is ignored; a
 * MAX_FRAME_SIZE below 32 + 255 is ignored; a STREAM_WINDOW below ARPC__MIN_STREAM_WINDOW is
 * read as that floor (0 as not announced); of two entries with one id the last counts.
 *
 * @param out  every field set: the value announced, or 0.
 * @return the number of entries used (0 for an empty or unreadable payload).
 * Thread: any.  Suspends: no.
 */
int arpc__settings_decode(const uint8_t *payload, size_t len, arpc__settings *out);

/*
 * Encoders: each appends one whole frame to `out`, growing it.
 *
 * @return 0; ARPC_ENOMEM (out unchanged); ARPC_EINVAL (method_len 0 or > 255, payload_len
 *         > UINT32_MAX, or a type that is not PING, PONG or GOAWAY for encode_control).
 * Thread: the owner of `out`.  Suspends: no.
 */
int arpc__frame_encode_request(arpc_buf *out, uint64_t request_id, uint32_t timeout_ms,
                               uint16_t flags, const char *method, size_t method_len,
                               const void *payload, size_t payload_len);

/*
 * Appends a copy of `encoded`, one whole REQUEST frame made by arpc__frame_encode_request,
 * with its request id and timeout replaced: a client encodes a call once and sends it, or
 * sends it again after a retry, with one copy.
 *
 * @return 0 or ARPC_ENOMEM (out unchanged).
 * Thread: the owner of `out`.  Suspends: no.
 */
int arpc__frame_append_request(arpc_buf *out, const arpc_buf *encoded, uint64_t request_id,
                               uint32_t timeout_ms);

int arpc__frame_encode_response(arpc_buf *out, uint64_t request_id, int32_t status,
                                const void *payload, size_t payload_len);

/*
 * The same with metadata: `md` (an in-memory list, proto/metadata.h; NULL or empty for none)
 * goes in a block at the front of the payload, with ARPC__FLAG_METADATA.  Only for a peer
 * that announced METADATA = 1.
 * @return as above; ARPC_EINVAL also if the frame would exceed 4 GiB.
 */
int arpc__frame_encode_request_md(arpc_buf *out, uint64_t request_id, uint32_t timeout_ms,
                                  uint16_t flags, const char *method, size_t method_len,
                                  const arpc__md *md, const void *payload, size_t payload_len);

int arpc__frame_encode_response_md(arpc_buf *out, uint64_t request_id, int32_t status,
                                   const arpc__md *md, const void *payload, size_t payload_len);

/* PING, PONG, GOAWAY, HALF_CLOSE, CANCEL: no payload; `status` goes on the wire for GOAWAY
 * only. */
int arpc__frame_encode_control(arpc_buf *out, uint8_t type, uint64_t request_id, int32_t status);

/*
 * Stream frames (docs/protocol.md section 13).  A stream's OPEN is a REQUEST with
 * ARPC__FLAG_STREAM whose payload is the metadata block of `md` alone (none when md is NULL or
 * empty); MESSAGE carries one message, with the metadata block of `md` in front when there is
 * one; END is a RESPONSE's layout (status, metadata block, error message text) under type 8;
 * WINDOW carries `bytes`.
 * @return 0; ARPC_ENOMEM (out unchanged); ARPC_EINVAL (method_len 0 or > 255, a frame over
 *         4 GiB).
 * Thread: the owner of `out`.  Suspends: no.
 */
int arpc__frame_encode_open(arpc_buf *out, uint64_t request_id, uint32_t timeout_ms,
                            const char *method, size_t method_len, const arpc__md *md);
int arpc__frame_encode_message(arpc_buf *out, uint64_t request_id, const arpc__md *md,
                               const void *payload, size_t payload_len);
int arpc__frame_encode_end(arpc_buf *out, uint64_t request_id, int32_t status, const arpc__md *md,
                           const void *payload, size_t payload_len);
int arpc__frame_encode_window(arpc_buf *out, uint64_t request_id, uint32_t bytes);

/*
 * A PING or PONG whose payload carries `settings`: the non-zero fields, in id order, each
 * as one ARPC__SETTING_SIZE entry.
 *
 * @return 0; ARPC_ENOMEM (out unchanged); ARPC_EINVAL (a type that is not PING or PONG).
 * Thread: the owner of `out`.  Suspends: no.
 */
int arpc__frame_encode_settings(arpc_buf *out, uint8_t type, uint64_t request_id,
                                const arpc__settings *settings);

/*
 * Writes the 32-byte header for `f` (method_len and payload_len taken from f), so a caller
 * can send the method and payload from elsewhere with writev, without copying them.  Writes
 * the canonical form: fields the type does not use and reserved flag bits are written as 0,
 * and so is ARPC__FLAG_METADATA (this header's frame has no metadata block).
 * `f` must describe a valid frame (checked with ARPC_ASSERT).
 * Thread: any.  Suspends: no.
 */
void arpc__frame_write_header(uint8_t header[ARPC__FRAME_HEADER_SIZE], const arpc__frame *f);

#endif

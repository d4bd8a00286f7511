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

#define ARPC__FRAME_HEADER_SIZE 32
#define ARPC__PROTO_VERSION     1
#define ARPC__MAX_METHOD_LEN    255
#define ARPC__DEFAULT_MAX_FRAME (16u * 1024 * 1024)

enum arpc__frame_type {
    ARPC__FRAME_REQUEST = 1,
    ARPC__FRAME_RESPONSE = 2,
    ARPC__FRAME_PING = 3,
    ARPC__FRAME_PONG = 4,
    ARPC__FRAME_GOAWAY = 5
};

/* REQUEST only: the caller allows the request to be retried on another
 * connection even if it may already have run. */
#define ARPC__FLAG_IDEMPOTENT 0x1

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
} arpc__frame;

/*
 * Decodes one frame from data[0, len).
 *
 * @param max_frame  the largest total frame size (header + method + payload) accepted.
 * @param out        on success the frame; its views point into `data`.  Untouched otherwise.
 * @return the frame's total size (> 0); 0 if more bytes are needed; or
 *         ARPC_EFRAME (bad magic, unknown type, non-zero reserved word, method_len out of
 *         range for the type), ARPC_EVERSION (magic fine, version not 1) or ARPC_ETOOBIG
 *         (32 + method_len + payload_len > max_frame).  Errors are reported as soon as the
 *         header is complete, without waiting for the body; a bad magic, version or type
 *         is reported as soon as its byte is present.  Never reads data[len] or beyond.
 * Thread: any.  Suspends: no.
 */
int64_t arpc__frame_decode(const uint8_t *data, size_t len, uint32_t max_frame, arpc__frame *out);

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

/* PING, PONG, GOAWAY: no payload; `status` goes on the wire for GOAWAY only. */
int arpc__frame_encode_control(arpc_buf *out, uint8_t type, uint64_t request_id, int32_t status);

/*
 * Writes the 32-byte header for `f` (method_len and payload_len taken from f), so a caller
 * can send the method and payload from elsewhere with writev, without copying them.  Writes
 * the canonical form: fields the type does not use and reserved flag bits are written as 0.
 * `f` must describe a valid frame (checked with ARPC_ASSERT).
 * Thread: any.  Suspends: no.
 */
void arpc__frame_write_header(uint8_t header[ARPC__FRAME_HEADER_SIZE], const arpc__frame *f);

#endif

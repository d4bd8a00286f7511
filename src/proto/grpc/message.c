/*
 * Design notes: gRPC's Length-Prefixed-Message over a stream of DATA chunks.
 *
 * HTTP/2 cuts a stream's bytes into DATA frames wherever flow control and frame sizes
 * fall, so a message may start in one chunk and end three chunks later, and one chunk may
 * hold several messages.  nghttp2 hands each chunk to a callback and forgets it; unlike
 * the native codec, which decodes the front of a connection buffer it keeps, this decoder
 * therefore carries state from one chunk to the next: the prefix bytes seen so far, or
 * the payload assembled so far.
 *
 * No copy in the common case: when a message's payload lies within one chunk (the prefix
 * may have come earlier), the message is a view into that chunk.  Only a payload that
 * straddles chunks is assembled, in a buffer that grows with what has arrived (doubling,
 * capped at the announced length) rather than being sized from the prefix: a peer that
 * announces 4 MiB and sends nothing more holds no 4 MiB on our side, and what it can make
 * us hold is bounded by what it actually sent, which flow control bounds.  A buffer of up
 * to KEEP_CAP bytes is kept for the next message, so a stream of medium messages
 * allocates once; a larger one is freed as soon as its message has been consumed.
 *
 * Every error is decided as early as the bytes allow: a bad flag byte on its own, an
 * oversized length once the 5-byte prefix is complete, before any payload arrives, so
 * the caller can answer RESOURCE_EXHAUSTED at once.  Errors are sticky and later chunks
 * are skipped without being read, so the rest of a refused stream is never buffered.
 *
 * Threading: a decoder belongs to one stream and so to one loop thread; no globals.
 */
#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/common.h"
#include "proto/grpc/wire.h"

enum { STATE_PREFIX, STATE_BODY, STATE_FAILED };

#define KEEP_CAP  (64u * 1024)
#define FIRST_CAP (16u * 1024)

/* A function, not a macro: each argument is evaluated once. */
static inline size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void arpc__grpc_msg_decoder_init(arpc__grpc_msg_decoder *d, uint32_t max_len)
{
    memset(d, 0, sizeof(*d));
    d->max_len = max_len;
    d->state = STATE_PREFIX;
}

void arpc__grpc_msg_decoder_fini(arpc__grpc_msg_decoder *d)
{
    arpc__free(d->body);
    d->body = NULL;
    d->body_cap = 0;
}

bool arpc__grpc_msg_decoder_at_boundary(const arpc__grpc_msg_decoder *d)
{
    return d->state == STATE_PREFIX && d->have == 0;
}

static int fail(arpc__grpc_msg_decoder *d, int err)
{
    d->state = STATE_FAILED;
    d->err = err;
    return err;
}

/* Judges a complete prefix and enters the payload state. */
static int start_body(arpc__grpc_msg_decoder *d, const uint8_t *prefix)
{
    uint32_t len = load_be32(prefix + 1);
    if (prefix[0] > 1)
        return fail(d, ARPC_EFRAME);
    if (len > d->max_len)
        return fail(d, ARPC_ETOOBIG);
    d->compressed = prefix[0] == 1;
    d->msg_len = len;
    d->have = 0;
    d->state = STATE_BODY;
    return 0;
}

/* Takes up to 5 prefix bytes from the chunk; the fast path reads a whole prefix in place. */
static int read_prefix(arpc__grpc_msg_decoder *d, const uint8_t **data, size_t *len)
{
    if (d->have == 0 && *len >= ARPC__GRPC_PREFIX_SIZE) {
        const uint8_t *p = *data;
        *data += ARPC__GRPC_PREFIX_SIZE;
        *len -= ARPC__GRPC_PREFIX_SIZE;
        return start_body(d, p);
    }
    size_t n = min_size(*len, (size_t)(ARPC__GRPC_PREFIX_SIZE - d->have));
    memcpy(d->prefix + d->have, *data, n);
    d->have += (uint32_t)n;
    *data += n;
    *len -= n;
    if (d->prefix[0] > 1)
        return fail(d, ARPC_EFRAME); /* known from the first byte alone */
    if (d->have < ARPC__GRPC_PREFIX_SIZE)
        return 0;
    return start_body(d, d->prefix);
}

/* Makes room for `need` assembled bytes (need <= msg_len), growing by doubling. */
static int reserve(arpc__grpc_msg_decoder *d, uint32_t need)
{
    if (need <= d->body_cap)
        return 0;
    uint64_t cap = (uint64_t)d->body_cap * 2;
    if (cap < FIRST_CAP)
        cap = FIRST_CAP;
    if (cap < need)
        cap = need;
    if (cap > d->msg_len)
        cap = d->msg_len;
    uint8_t *p = arpc__realloc(d->body, (size_t)cap);
    if (arpc__unlikely(p == NULL))
        return ARPC_ENOMEM;
    d->body = p;
    d->body_cap = (uint32_t)cap;
    return 0;
}

static void deliver(arpc__grpc_msg_decoder *d, const uint8_t *data, arpc__grpc_msg *out)
{
    out->data = data;
    out->len = d->msg_len;
    out->compressed = d->compressed;
    d->state = STATE_PREFIX;
    d->have = 0;
}

/* Takes payload bytes from the chunk: a view if the rest of the payload is all here and
 * none came before, else a copy into the assembly buffer. */
static int read_body(arpc__grpc_msg_decoder *d, const uint8_t **data, size_t *len,
                     arpc__grpc_msg *out)
{
    if (d->have == 0 && *len >= d->msg_len) {
        static const uint8_t empty[1];
        deliver(d, d->msg_len > 0 ? *data : empty, out);
        *data += d->msg_len;
        *len -= d->msg_len;
        return 1;
    }
    if (*len == 0)
        return 0;
    uint32_t n = (uint32_t)min_size(*len, (size_t)(d->msg_len - d->have));
    if (arpc__unlikely(reserve(d, d->have + n) < 0))
        return fail(d, ARPC_ENOMEM);
    memcpy(d->body + d->have, *data, n);
    d->have += n;
    *data += n;
    *len -= n;
    if (d->have < d->msg_len)
        return 0;
    deliver(d, d->body, out);
    return 1;
}

static int decode_step(arpc__grpc_msg_decoder *d, const uint8_t **data, size_t *len,
                       arpc__grpc_msg *out)
{
    if (d->state == STATE_PREFIX) {
        /* The previous message has been consumed: a large buffer goes back now. */
        if (arpc__unlikely(d->body_cap > KEEP_CAP))
            arpc__grpc_msg_decoder_fini(d);
        if (*len == 0)
            return 0;
        int rc = read_prefix(d, data, len);
        if (rc < 0 || d->state == STATE_PREFIX)
            return rc;
    }
    return read_body(d, data, len, out);
}

int arpc__grpc_msg_decode(arpc__grpc_msg_decoder *d, const uint8_t **data, size_t *len,
                          arpc__grpc_msg *out)
{
    int rc = arpc__likely(d->state != STATE_FAILED) ? decode_step(d, data, len, out) : d->err;
    if (arpc__unlikely(rc < 0)) {
        /* A failed stream's remaining bytes are skipped unread.  A NULL empty chunk stays
         * NULL: NULL + 0 is undefined. */
        if (*len > 0)
            *data += *len;
        *len = 0;
    }
    return rc;
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void arpc__grpc_msg_write_prefix(uint8_t prefix[ARPC__GRPC_PREFIX_SIZE], bool compressed,
                                 uint32_t len)
{
    prefix[0] = compressed ? 1 : 0;
    store_be32(prefix + 1, len);
}

int arpc__grpc_msg_encode(arpc_buf *out, bool compressed, const void *payload, size_t len)
{
    if (len > UINT32_MAX || len > SIZE_MAX - ARPC__GRPC_PREFIX_SIZE)
        return ARPC_EINVAL;
    int rc = arpc__buf_ensure(out, ARPC__GRPC_PREFIX_SIZE + len);
    if (arpc__unlikely(rc < 0))
        return rc;
    uint8_t *p = arpc__buf_tail(out);
    arpc__grpc_msg_write_prefix(p, compressed, (uint32_t)len);
    if (len > 0)
        memcpy(p + ARPC__GRPC_PREFIX_SIZE, payload, len);
    out->len += ARPC__GRPC_PREFIX_SIZE + len;
    return 0;
}

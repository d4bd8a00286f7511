/*
 * Internal view of arpc_buf.  The bytes live in data[start, start + len); a
 * reader consumes from the front by moving `start`, so decoding many frames
 * from one read costs no memmove until the buffer is compacted.
 */
#ifndef ARPC_BASE_BUF_H
#define ARPC_BASE_BUF_H

#include <stdint.h>
#include <string.h>

#include <arpc/buf.h>

#include "base/common.h"

struct arpc_buf {
    uint8_t *data;
    size_t start;
    size_t len;
    size_t cap;
};

void arpc__buf_init(arpc_buf *buf);
void arpc__buf_fini(arpc_buf *buf);

/* The slow half of arpc__buf_ensure: compacts or grows. */
int arpc__buf_grow(arpc_buf *buf, size_t extra);

/* Drops `n` bytes from the front. */
static inline void arpc__buf_consume(arpc_buf *buf, size_t n)
{
    buf->start += n;
    buf->len -= n;
    if (buf->len == 0)
        buf->start = 0;
}

static inline uint8_t *arpc__buf_head(const arpc_buf *buf)
{
    return buf->data + buf->start;
}

/* arpc_buf_data() inline, for the per-request paths: the bytes, or "" when
 * the buffer has never held any (never NULL). */
static inline const void *arpc__buf_data(const arpc_buf *buf)
{
    return buf->data ? arpc__buf_head(buf) : (const void *)"";
}

static inline uint8_t *arpc__buf_tail(const arpc_buf *buf)
{
    return buf->data + buf->start + buf->len;
}

static inline size_t arpc__buf_room(const arpc_buf *buf)
{
    return buf->cap - buf->start - buf->len;
}

/* Ensures room for `extra` more bytes after the content; may compact or grow.
 * Inline because nearly every call finds the room already there (a few
 * instructions on every encode and append), and only growth needs a call. */
static inline int arpc__buf_ensure(arpc_buf *buf, size_t extra)
{
    if (arpc__likely(arpc__buf_room(buf) >= extra))
        return 0;
    return arpc__buf_grow(buf, extra);
}

/* arpc_buf_append for the library's own hot paths: inline, `data` may be NULL
 * when `len` is 0. */
static inline int arpc__buf_append(arpc_buf *buf, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    int rc = arpc__buf_ensure(buf, len);
    if (arpc__unlikely(rc < 0))
        return rc;
    memcpy(arpc__buf_tail(buf), data, len);
    buf->len += len;
    return 0;
}

static inline void arpc__buf_clear(arpc_buf *buf)
{
    buf->start = 0;
    buf->len = 0;
}

void arpc__buf_release(arpc_buf *buf);

/* Frees the memory of a buffer that grew past `keep` bytes and is now empty,
 * so one large message does not pin memory on an idle connection.  Inline:
 * it runs once per request and per flush, and almost never frees. */
static inline void arpc__buf_shrink_if_idle(arpc_buf *buf, size_t keep)
{
    if (arpc__unlikely(buf->len == 0 && buf->cap > keep))
        arpc__buf_release(buf);
}

#endif

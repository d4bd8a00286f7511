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

/* Ensures room for `extra` more bytes after the content; may compact or grow. */
int arpc__buf_ensure(arpc_buf *buf, size_t extra);

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

static inline uint8_t *arpc__buf_tail(const arpc_buf *buf)
{
    return buf->data + buf->start + buf->len;
}

static inline size_t arpc__buf_room(const arpc_buf *buf)
{
    return buf->cap - buf->start - buf->len;
}

/* Frees the memory of a buffer that grew past `keep` bytes and is now empty,
 * so one large message does not pin memory on an idle connection. */
void arpc__buf_shrink_if_idle(arpc_buf *buf, size_t keep);

#endif

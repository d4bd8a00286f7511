/*
 * Design notes: growth doubles the capacity (amortised O(1) appends); before
 * growing, a buffer whose free space is mostly at the front is compacted
 * instead, so a connection's input buffer settles at a fixed size.  Each
 * allocation is ALLOC_SKEW bytes larger than the capacity (see there why).
 */
#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"

/*
 * Bytes allocated beyond the capacity.  Two buffers grown one after the other
 * (a request's payload, then the handler's answer) get adjacent malloc chunks,
 * whose starts are the capacity plus malloc's 16-byte header apart: with a
 * power-of-two capacity of 4 KiB or more that is 16 modulo 4096, where the
 * loads and stores of a large memcpy between them alias (4K aliasing) and the
 * copy runs about 3x slower (measured with glibc's rep-movsb memcpy on AMD
 * EPYC: an echo of 4 KiB payloads lost 40% of its throughput).  48 bytes apart
 * is clear of that.
 */
#define ALLOC_SKEW 32

void arpc__buf_init(arpc_buf *buf)
{
    memset(buf, 0, sizeof(*buf));
}

void arpc__buf_fini(arpc_buf *buf)
{
    arpc__free(buf->data);
    memset(buf, 0, sizeof(*buf));
}

int arpc__buf_grow(arpc_buf *buf, size_t extra)
{
    if (arpc__buf_room(buf) >= extra)
        return 0;
    if (buf->start > 0 && buf->cap - buf->len >= extra && buf->start >= buf->len) {
        memmove(buf->data, buf->data + buf->start, buf->len);
        buf->start = 0;
        return 0;
    }
    size_t need = buf->len + extra;
    if (need < extra)
        return ARPC_ENOMEM;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return ARPC_ENOMEM;
        cap *= 2;
    }
    uint8_t *data = arpc__malloc(cap + ALLOC_SKEW);
    if (data == NULL)
        return ARPC_ENOMEM;
    if (buf->len)
        memcpy(data, buf->data + buf->start, buf->len);
    arpc__free(buf->data);
    buf->data = data;
    buf->start = 0;
    buf->cap = cap;
    return 0;
}

/* Frees an empty buffer's memory (the slow half of arpc__buf_shrink_if_idle). */
void arpc__buf_release(arpc_buf *buf)
{
    arpc__free(buf->data);
    buf->data = NULL;
    buf->cap = 0;
    buf->start = 0;
}

int arpc_buf_create(arpc_buf **out)
{
    arpc_buf *buf = arpc__malloc(sizeof(*buf));
    if (buf == NULL)
        return ARPC_ENOMEM;
    arpc__buf_init(buf);
    *out = buf;
    return 0;
}

void arpc_buf_destroy(arpc_buf *buf)
{
    if (buf == NULL)
        return;
    arpc__buf_fini(buf);
    arpc__free(buf);
}

const void *arpc_buf_data(const arpc_buf *buf)
{
    return arpc__buf_data(buf);
}

size_t arpc_buf_len(const arpc_buf *buf)
{
    return buf->len;
}

int arpc_buf_append(arpc_buf *buf, const void *data, size_t len)
{
    return arpc__buf_append(buf, data, len);
}

int arpc_buf_reserve(arpc_buf *buf, size_t len, void **out)
{
    int rc = arpc__buf_ensure(buf, len);
    if (rc < 0)
        return rc;
    *out = arpc__buf_tail(buf);
    return 0;
}

void arpc_buf_commit(arpc_buf *buf, size_t len)
{
    buf->len += len;
}

void arpc_buf_clear(arpc_buf *buf)
{
    arpc__buf_clear(buf);
}

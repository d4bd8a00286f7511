/**
 * A growable byte buffer.  Callers own the buffers they create and reuse them
 * across calls, so a steady stream of calls allocates nothing.
 *
 * Thread-safety: a buffer is used by one thread at a time (its owner); hand it
 * to another thread only with a synchronisation of your own (e.g. the end of
 * an arpc_call()).  No function here suspends.
 */
#ifndef ARPC_BUF_H
#define ARPC_BUF_H

#include <stddef.h>

#include <arpc/export.h>

ARPC_BEGIN_DECLS

typedef struct arpc_buf arpc_buf;

/**
 * Creates an empty buffer.
 * @param out  on success the new buffer, owned by the caller (arpc_buf_destroy()).
 * @return 0 or ARPC_ENOMEM.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_buf_create(arpc_buf **out);

/** Frees the buffer; NULL is a no-op.  Thread: the owner's.  Suspends: no. */
ARPC_EXPORT void arpc_buf_destroy(arpc_buf *buf);

/** The bytes in the buffer; valid until the next call that changes it. */
ARPC_EXPORT const void *arpc_buf_data(const arpc_buf *buf);

/** The number of bytes in the buffer. */
ARPC_EXPORT size_t arpc_buf_len(const arpc_buf *buf);

/**
 * Appends `len` bytes copied from `data`, which must not point into `buf`
 * itself (growing the buffer may move its bytes).
 * @return 0 or ARPC_ENOMEM (the buffer is then unchanged).
 * Thread: the owner's.  Suspends: no.
 */
ARPC_EXPORT int arpc_buf_append(arpc_buf *buf, const void *data, size_t len);

/**
 * Makes room for `len` more bytes and returns where to write them; commit
 * what was written with arpc_buf_commit().  Lets a caller serialize straight
 * into the buffer without a temporary copy.
 * @param out  on success a pointer to at least `len` writable bytes.
 * @return 0 or ARPC_ENOMEM.
 */
ARPC_EXPORT int arpc_buf_reserve(arpc_buf *buf, size_t len, void **out);

/** Adds `len` bytes written after a arpc_buf_reserve() to the buffer's length. */
ARPC_EXPORT void arpc_buf_commit(arpc_buf *buf, size_t len);

/** Empties the buffer and keeps its memory for reuse. */
ARPC_EXPORT void arpc_buf_clear(arpc_buf *buf);

ARPC_END_DECLS

#endif

/**
 * Metadata: key/value pairs that travel beside a call's payload, in both
 * directions, on every protocol (gRPC custom headers, trace ids, auth
 * tokens).  Requests carry them through arpc_call_opts.metadata; handlers
 * read them with arpc_request_metadata_*() and answer with their own through
 * arpc_request_add_metadata(); callers receive those in an arpc_metadata
 * they own (arpc_call_opts.response_metadata).
 *
 * Rules (gRPC's custom metadata): a key is 1 or more of the bytes 0-9 a-z _ - .
 * (lowercase), and not one the transport owns ("grpc-*", ":*", te,
 * content-type, content-length, host and HTTP/2's connection headers).  A key
 * ending in "-bin" carries any bytes; any other value is printable ASCII
 * (0x20..0x7E), without a leading or trailing space.  An entry breaking them
 * is refused with ARPC_EINVAL where it is set, never sent.
 *
 * Size: the keys and values of one message add up to at most
 * ARPC_METADATA_MAX_BYTES (8 KiB, gRPC's default header limit); more fails
 * that call alone with ARPC_EMETADATA.  Keys may repeat; order is kept.
 */
#ifndef ARPC_METADATA_H
#define ARPC_METADATA_H

#include <stddef.h>

#include <arpc/export.h>

ARPC_BEGIN_DECLS

/** The most key and value bytes one message's metadata may hold. */
#define ARPC_METADATA_MAX_BYTES 8192

/** One entry.  Set by the caller: `key` NUL-terminated, `value` `value_len`
 *  bytes.  As read back: both point into the list, which NUL-terminates
 *  the value too (convenient for text; a "-bin" value may hold NUL bytes),
 *  valid as long as the list is unchanged. */
typedef struct arpc_metadata_entry {
    const char *key;
    const void *value;
    size_t value_len;
} arpc_metadata_entry;

/** A list of metadata the caller owns: where a call puts the metadata of its
 *  answer.  Reused across calls, it allocates only when it must grow. */
typedef struct arpc_metadata arpc_metadata;

/**
 * Creates an empty list.
 * @param out  on success the list; the caller owns it (arpc_metadata_destroy).
 * @return 0 or ARPC_ENOMEM.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT int arpc_metadata_create(arpc_metadata **out);

/** Frees the list.  NULL is a no-op.  Thread: the owner's.  Suspends: no. */
ARPC_EXPORT void arpc_metadata_destroy(arpc_metadata *md);

/**
 * Appends one entry (copied).
 * @return 0; ARPC_EINVAL (the rules above); ARPC_EMETADATA (over
 *         ARPC_METADATA_MAX_BYTES); ARPC_ENOMEM.  The list is unchanged on error.
 * Thread: the owner's.  Suspends: no.
 */
ARPC_EXPORT int arpc_metadata_add(arpc_metadata *md, const char *key, const void *value,
                                  size_t value_len);

/** Removes every entry, keeping the memory.  Thread: the owner's. */
ARPC_EXPORT void arpc_metadata_clear(arpc_metadata *md);

/** The number of entries.  Thread: the owner's.  Suspends: no. */
ARPC_EXPORT size_t arpc_metadata_count(const arpc_metadata *md);

/**
 * The entry at `index` (0-based, in the order received; a walk of the list).
 * @param out  on success the entry, its pointers into the list.
 * @return 0 or ARPC_EINVAL (index out of range).
 * Thread: the owner's.  Suspends: no.
 */
ARPC_EXPORT int arpc_metadata_at(const arpc_metadata *md, size_t index, arpc_metadata_entry *out);

/**
 * The value of the first entry with `key`.
 * @param value_len  out (may be NULL): its length.
 * @return the value (NUL-terminated, pointing into the list), or NULL if no
 *         entry has the key.
 * Thread: the owner's.  Suspends: no.
 */
ARPC_EXPORT const void *arpc_metadata_get(const arpc_metadata *md, const char *key,
                                          size_t *value_len);

ARPC_END_DECLS

#endif

/*
 * Metadata lists as every protocol and the rpc layer hold them in memory (arpc__md in
 * proto/proto.h): entries packed one after another, each
 *
 *     key_len (u16, host order), value_len (u16, host order), key, NUL, value, NUL
 *
 * so a list is one buffer (no allocation per entry, copied with one memcpy) and a reader
 * gets NUL-terminated keys and values without copying.  The wire forms are each protocol's
 * (native: docs/protocol.md section 10; gRPC: HTTP/2 headers with base64 "-bin" values);
 * the rules for keys and values are gRPC's, in proto/grpc/metadata.c, used by every
 * protocol.  Thread: any, on lists the caller owns.
 */
#ifndef ARPC_PROTO_METADATA_H
#define ARPC_PROTO_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/buf.h>
#include <arpc/metadata.h>

#include "proto/proto.h"

/* Bytes one entry takes in memory beyond its key and value. */
#define ARPC__MD_ENTRY_OVERHEAD 6

/* The key and value bytes of a list (what ARPC_METADATA_MAX_BYTES bounds). */
static inline size_t arpc__md_payload_bytes(const arpc__md *md)
{
    return md->len - (size_t)md->count * ARPC__MD_ENTRY_OVERHEAD;
}

/*
 * Checks one entry against the rules (include/arpc/metadata.h).
 * @return 0 or ARPC_EINVAL.
 */
int arpc__md_check(const char *key, size_t key_len, const void *value, size_t value_len);

/*
 * Appends one entry to the list held in `buf` (`md` views it and is updated), unchecked but
 * bounded: the list's key and value bytes stay within ARPC_METADATA_MAX_BYTES.
 * @return 0, ARPC_EMETADATA (over the bound) or ARPC_ENOMEM; list unchanged on error.
 */
int arpc__md_append(arpc_buf *buf, arpc__md *md, const char *key, size_t key_len, const void *value,
                    size_t value_len);

/* The entry at byte offset *off of `md`; advances *off.  @return false at the end. */
bool arpc__md_next(const arpc__md *md, size_t *off, arpc_metadata_entry *out, size_t *key_len);

/* The first entry with `key`: its value and length, or NULL. */
const void *arpc__md_find(const arpc__md *md, const char *key, size_t key_len, size_t *value_len);

/* The entry at `index`.  @return 0 or ARPC_EINVAL. */
int arpc__md_at(const arpc__md *md, size_t index, arpc_metadata_entry *out);

#endif

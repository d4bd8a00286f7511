/*
 * The public metadata list (include/arpc/metadata.h) as the rpc layer fills it.
 */
#ifndef ARPC_RPC_METADATA_H
#define ARPC_RPC_METADATA_H

#include <arpc/metadata.h>

#include "base/buf.h"
#include "proto/proto.h"

struct arpc_metadata {
    arpc_buf buf; /* the entries, in memory form (proto/metadata.h) */
    arpc__md md;  /* views buf */
};

/* Replaces the list's entries with a copy of `src` (an in-memory list).
 * @return 0 or ARPC_ENOMEM (the list is then empty). */
int arpc__metadata_assign(arpc_metadata *md, const arpc__md *src);

/* Checks `count` caller entries against the rules and the size bound.
 * @return 0, ARPC_EINVAL or ARPC_EMETADATA. */
int arpc__metadata_check_entries(const arpc_metadata_entry *entries, size_t count);

/* Appends checked caller entries to the list held in `buf`; `md` views it.
 * @return 0 or ARPC_ENOMEM. */
int arpc__metadata_append_entries(arpc_buf *buf, arpc__md *md, const arpc_metadata_entry *entries,
                                  size_t count);

#endif

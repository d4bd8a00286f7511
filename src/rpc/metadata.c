/*
 * Design notes: the caller's metadata list.  One packed buffer in the memory form every
 * protocol uses (proto/metadata.h), so a call fills it with one memcpy of the answer's
 * block, and a list reused across calls allocates only when it must grow.  Checks (the
 * gRPC rules, the 8 KiB bound) happen where entries enter from the application: here and at
 * arpc_call_async / arpc_request_add_metadata; lists filled from the wire were checked by
 * the protocol.
 */
#include "proto/metadata.h"

#include <string.h>

#include <arpc/err.h>
#include <arpc/metadata.h>

#include "base/alloc.h"
#include "rpc/metadata.h"

int arpc_metadata_create(arpc_metadata **out)
{
    if (out == NULL)
        return ARPC_EINVAL;
    arpc_metadata *md = arpc__calloc(1, sizeof(*md));
    if (md == NULL)
        return ARPC_ENOMEM;
    arpc__buf_init(&md->buf);
    *out = md;
    return 0;
}

void arpc_metadata_destroy(arpc_metadata *md)
{
    if (md == NULL)
        return;
    arpc__buf_fini(&md->buf);
    arpc__free(md);
}

void arpc_metadata_clear(arpc_metadata *md)
{
    arpc__buf_clear(&md->buf);
    md->md.data = NULL;
    md->md.len = 0;
    md->md.count = 0;
}

int arpc_metadata_add(arpc_metadata *md, const char *key, const void *value, size_t value_len)
{
    if (md == NULL || key == NULL)
        return ARPC_EINVAL;
    size_t key_len = strlen(key);
    int rc = arpc__md_check(key, key_len, value, value_len);
    if (rc < 0)
        return rc;
    return arpc__md_append(&md->buf, &md->md, key, key_len, value, value_len);
}

size_t arpc_metadata_count(const arpc_metadata *md)
{
    return md->md.count;
}

int arpc_metadata_at(const arpc_metadata *md, size_t index, arpc_metadata_entry *out)
{
    if (md == NULL || out == NULL)
        return ARPC_EINVAL;
    return arpc__md_at(&md->md, index, out);
}

const void *arpc_metadata_get(const arpc_metadata *md, const char *key, size_t *value_len)
{
    if (md == NULL || key == NULL)
        return NULL;
    return arpc__md_find(&md->md, key, strlen(key), value_len);
}

int arpc__metadata_assign(arpc_metadata *md, const arpc__md *src)
{
    arpc_metadata_clear(md);
    if (src->count == 0)
        return 0;
    int rc = arpc__buf_append(&md->buf, src->data, src->len);
    if (rc < 0)
        return rc;
    md->md.data = arpc__buf_head(&md->buf);
    md->md.len = src->len;
    md->md.count = src->count;
    return 0;
}

int arpc__metadata_check_entries(const arpc_metadata_entry *entries, size_t count)
{
    if (count > 0 && entries == NULL)
        return ARPC_EINVAL;
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++) {
        const arpc_metadata_entry *e = &entries[i];
        if (e->key == NULL)
            return ARPC_EINVAL;
        size_t key_len = strlen(e->key);
        int rc = arpc__md_check(e->key, key_len, e->value, e->value_len);
        if (rc < 0)
            return rc;
        if (key_len > ARPC_METADATA_MAX_BYTES || e->value_len > ARPC_METADATA_MAX_BYTES)
            return ARPC_EMETADATA;
        bytes += key_len + e->value_len;
        if (bytes > ARPC_METADATA_MAX_BYTES)
            return ARPC_EMETADATA;
    }
    return 0;
}

int arpc__metadata_append_entries(arpc_buf *buf, arpc__md *md, const arpc_metadata_entry *entries,
                                  size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const arpc_metadata_entry *e = &entries[i];
        int rc = arpc__md_append(buf, md, e->key, strlen(e->key), e->value, e->value_len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

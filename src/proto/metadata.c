/*
 * Design notes: metadata lists in memory (the layout is in proto/metadata.h).
 *
 * One packed buffer per list: a request's or a call's metadata is a handful of short
 * entries, so a walk is cheaper than any index and a copy is one memcpy; a pooled request
 * or call keeps the buffer, so steady state allocates nothing.  Lengths are 16 bits: one
 * list holds at most ARPC_METADATA_MAX_BYTES of keys and values, checked on every append.
 * The rules for keys and values are gRPC's (proto/grpc/metadata.c), the same for every
 * protocol, so an entry accepted on one protocol can be forwarded on another.
 */
#include "proto/metadata.h"

#include <string.h>

#include <arpc/err.h>

#include "base/buf.h"
#include "proto/grpc/wire.h"

_Static_assert(ARPC_METADATA_MAX_BYTES <= UINT16_MAX, "entry lengths are 16-bit");

int arpc__md_check(const char *key, size_t key_len, const void *value, size_t value_len)
{
    if (key == NULL || (value == NULL && value_len > 0))
        return ARPC_EINVAL;
    return arpc__grpc_md_check(key, key_len, value, value_len);
}

int arpc__md_append(arpc_buf *buf, arpc__md *md, const char *key, size_t key_len, const void *value,
                    size_t value_len)
{
    if (key_len + value_len > ARPC_METADATA_MAX_BYTES ||
        arpc__md_payload_bytes(md) + key_len + value_len > ARPC_METADATA_MAX_BYTES)
        return ARPC_EMETADATA;
    size_t n = ARPC__MD_ENTRY_OVERHEAD + key_len + value_len;
    int rc = arpc__buf_ensure(buf, n);
    if (rc < 0)
        return rc;
    uint8_t *p = arpc__buf_tail(buf);
    uint16_t lens[2] = {(uint16_t)key_len, (uint16_t)value_len};
    memcpy(p, lens, sizeof(lens));
    memcpy(p + 4, key, key_len);
    p[4 + key_len] = '\0';
    if (value_len > 0)
        memcpy(p + 5 + key_len, value, value_len);
    p[5 + key_len + value_len] = '\0';
    buf->len += n;
    md->data = arpc__buf_head(buf);
    md->len += (uint32_t)n;
    md->count++;
    return 0;
}

bool arpc__md_next(const arpc__md *md, size_t *off, arpc_metadata_entry *out, size_t *key_len)
{
    if (*off + ARPC__MD_ENTRY_OVERHEAD > md->len)
        return false;
    const uint8_t *p = md->data + *off;
    uint16_t lens[2];
    memcpy(lens, p, sizeof(lens));
    out->key = (const char *)p + 4;
    out->value = p + 5 + lens[0];
    out->value_len = lens[1];
    if (key_len != NULL)
        *key_len = lens[0];
    *off += ARPC__MD_ENTRY_OVERHEAD + (size_t)lens[0] + lens[1];
    return true;
}

const void *arpc__md_find(const arpc__md *md, const char *key, size_t key_len, size_t *value_len)
{
    size_t off = 0;
    arpc_metadata_entry e;
    size_t len;
    while (arpc__md_next(md, &off, &e, &len)) {
        if (len == key_len && memcmp(e.key, key, key_len) == 0) {
            if (value_len != NULL)
                *value_len = e.value_len;
            return e.value;
        }
    }
    return NULL;
}

int arpc__md_at(const arpc__md *md, size_t index, arpc_metadata_entry *out)
{
    size_t off = 0;
    arpc_metadata_entry e;
    for (size_t i = 0; arpc__md_next(md, &off, &e, NULL); i++) {
        if (i == index) {
            *out = e;
            return 0;
        }
    }
    return ARPC_EINVAL;
}

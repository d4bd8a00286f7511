#include "wire.h"

#include <stdlib.h>
#include <string.h>

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p == end)
            return -1;
        x |= (uint64_t)(**p & 0x7f) << shift;
        if ((*(*p)++ & 0x80) == 0) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Moves *p past the value of a field of `wire_type`, filling f's value parts. */
static int read_value(const uint8_t **p, const uint8_t *end, gen_field *f)
{
    size_t fixed = f->wire_type == 1 ? 8 : 4;
    uint64_t n;

    switch (f->wire_type) {
    case 0:
        return read_varint(p, end, &f->varint);
    case 2:
        if (read_varint(p, end, &n) < 0 || n > (uint64_t)(end - *p))
            return -1;
        f->value = *p;
        f->value_len = (size_t)n;
        *p += n;
        return 0;
    case 1:
    case 5:
        if ((size_t)(end - *p) < fixed)
            return -1;
        *p += fixed;
        return 0;
    default:
        return -1;
    }
}

int gen_wire_next(const uint8_t **p, const uint8_t *end, gen_field *f)
{
    uint64_t tag;

    if (*p == end)
        return 0;
    memset(f, 0, sizeof(*f));
    f->begin = *p;
    if (read_varint(p, end, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return -1;
    f->number = (uint32_t)(tag >> 3);
    f->wire_type = (unsigned)(tag & 7);
    if (read_value(p, end, f) < 0)
        return -1;
    f->end = *p;
    return 1;
}

int gen_wire_payload(const uint8_t *buf, size_t len, const uint8_t **begin, const uint8_t **end)
{
    const uint8_t *p = buf;
    uint64_t n;

    if (read_varint(&p, buf + len, &n) < 0 || n != (uint64_t)(buf + len - p))
        return -1;
    *begin = p;
    *end = buf + len;
    return 0;
}

uint8_t *gen_wire_strip(const uint8_t *buf, size_t len, uint32_t number, size_t *out_len)
{
    uint8_t *out = malloc(len != 0 ? len : 1);
    const uint8_t *p = buf;
    size_t n = 0;
    gen_field f;
    int rc;

    if (out == NULL)
        return NULL;
    while ((rc = gen_wire_next(&p, buf + len, &f)) > 0) {
        if (f.number == number)
            continue;
        memcpy(out + n, f.begin, (size_t)(f.end - f.begin));
        n += (size_t)(f.end - f.begin);
    }
    if (rc < 0) {
        free(out);
        return NULL;
    }
    *out_len = n;
    return out;
}

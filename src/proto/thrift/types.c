/*
 * Design notes: the binary protocol's types (include/arpc/thrift.h).  Every value is
 * big-endian and fixed-size except strings (a 4-byte length) and containers (a header and
 * their elements), so the writer is a few appends and the reader a bounds check per value.
 *
 * Both keep their first error, so callers check once per struct.  The reader's only
 * defence that needs thought is against counts: a list header may announce 2^31 elements
 * in six bytes, and skipping them one by one would spin; every element takes at least one
 * byte, so a count above the bytes left fails at once.  Nesting is bounded
 * (ARPC_THRIFT_MAX_DEPTH) so skipping uses bounded stack.
 */
#include <stdbool.h>
#include <string.h>

#include <arpc/err.h>
#include <arpc/thrift.h>

#include "base/buf.h"

void arpc_thrift_writer_init(arpc_thrift_writer *w, arpc_buf *buf)
{
    w->buf = buf;
    w->err = 0;
}

static void put(arpc_thrift_writer *w, const void *p, size_t n)
{
    if (w->err == 0)
        w->err = arpc__buf_append(w->buf, p, n);
}

static void put_be(arpc_thrift_writer *w, uint64_t v, unsigned n)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    put(w, b, n);
}

void arpc_thrift_write_field(arpc_thrift_writer *w, arpc_thrift_type type, int16_t id)
{
    uint8_t b[3] = {(uint8_t)type, (uint8_t)((uint16_t)id >> 8), (uint8_t)id};
    put(w, b, 3);
}

void arpc_thrift_write_stop(arpc_thrift_writer *w)
{
    put_be(w, 0, 1);
}

void arpc_thrift_write_bool(arpc_thrift_writer *w, bool v)
{
    put_be(w, v ? 1 : 0, 1);
}

void arpc_thrift_write_byte(arpc_thrift_writer *w, int8_t v)
{
    put_be(w, (uint8_t)v, 1);
}

void arpc_thrift_write_i16(arpc_thrift_writer *w, int16_t v)
{
    put_be(w, (uint16_t)v, 2);
}

void arpc_thrift_write_i32(arpc_thrift_writer *w, int32_t v)
{
    put_be(w, (uint32_t)v, 4);
}

void arpc_thrift_write_i64(arpc_thrift_writer *w, int64_t v)
{
    put_be(w, (uint64_t)v, 8);
}

void arpc_thrift_write_double(arpc_thrift_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    put_be(w, bits, 8);
}

void arpc_thrift_write_binary(arpc_thrift_writer *w, const void *data, size_t len)
{
    if (len > INT32_MAX) {
        if (w->err == 0)
            w->err = ARPC_EINVAL;
        return;
    }
    put_be(w, len, 4);
    put(w, data, len);
}

void arpc_thrift_write_string(arpc_thrift_writer *w, const char *s)
{
    arpc_thrift_write_binary(w, s, strlen(s));
}

/* A count the wire's signed i32 carries, else the writer fails with ARPC_EINVAL (as
 * write_binary does for its length): a peer would read a larger one as negative. */
static bool count_fits(arpc_thrift_writer *w, uint32_t count)
{
    if (count <= INT32_MAX)
        return true;
    if (w->err == 0)
        w->err = ARPC_EINVAL;
    return false;
}

void arpc_thrift_write_list(arpc_thrift_writer *w, arpc_thrift_type elem, uint32_t count)
{
    if (!count_fits(w, count))
        return;
    put_be(w, (uint8_t)elem, 1);
    put_be(w, count, 4);
}

void arpc_thrift_write_set(arpc_thrift_writer *w, arpc_thrift_type elem, uint32_t count)
{
    arpc_thrift_write_list(w, elem, count);
}

void arpc_thrift_write_map(arpc_thrift_writer *w, arpc_thrift_type key, arpc_thrift_type value,
                           uint32_t count)
{
    if (!count_fits(w, count))
        return;
    put_be(w, (uint8_t)key, 1);
    put_be(w, (uint8_t)value, 1);
    put_be(w, count, 4);
}

/* ---- reader ---- */

void arpc_thrift_reader_init(arpc_thrift_reader *r, const void *data, size_t len)
{
    r->p = data;
    r->end = r->p + len;
    r->err = 0;
}

/* The next n bytes, or NULL (and the reader failed) when fewer are left. */
static const uint8_t *take(arpc_thrift_reader *r, size_t n)
{
    if (r->err != 0)
        return NULL;
    if ((size_t)(r->end - r->p) < n) {
        r->err = ARPC_EFRAME;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static uint64_t get_be(arpc_thrift_reader *r, unsigned n)
{
    const uint8_t *p = take(r, n);
    uint64_t v = 0;
    for (unsigned i = 0; p != NULL && i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static bool fail(arpc_thrift_reader *r)
{
    if (r->err == 0)
        r->err = ARPC_EFRAME;
    return false;
}

bool arpc_thrift_read_field(arpc_thrift_reader *r, arpc_thrift_type *type, int16_t *id)
{
    *type = (arpc_thrift_type)get_be(r, 1);
    *id = 0;
    if (r->err != 0 || *type == ARPC_THRIFT_STOP)
        return false;
    *id = (int16_t)get_be(r, 2);
    return r->err == 0;
}

bool arpc_thrift_read_bool(arpc_thrift_reader *r)
{
    return get_be(r, 1) != 0;
}

int8_t arpc_thrift_read_byte(arpc_thrift_reader *r)
{
    return (int8_t)get_be(r, 1);
}

int16_t arpc_thrift_read_i16(arpc_thrift_reader *r)
{
    return (int16_t)get_be(r, 2);
}

int32_t arpc_thrift_read_i32(arpc_thrift_reader *r)
{
    return (int32_t)get_be(r, 4);
}

int64_t arpc_thrift_read_i64(arpc_thrift_reader *r)
{
    return (int64_t)get_be(r, 8);
}

double arpc_thrift_read_double(arpc_thrift_reader *r)
{
    uint64_t bits = get_be(r, 8);
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

const void *arpc_thrift_read_binary(arpc_thrift_reader *r, size_t *len)
{
    *len = 0;
    int32_t n = (int32_t)get_be(r, 4);
    if (r->err != 0)
        return NULL;
    if (n < 0) {
        fail(r);
        return NULL;
    }
    const uint8_t *p = take(r, (size_t)n);
    if (p != NULL)
        *len = (size_t)n;
    return p;
}

/* Containers: a count the bytes left cannot hold fails (see the design notes). */
static bool check_count(arpc_thrift_reader *r, uint32_t count, unsigned min_size)
{
    if (r->err != 0)
        return false;
    if (count > INT32_MAX || (uint64_t)count * min_size > (uint64_t)(r->end - r->p))
        return fail(r);
    return true;
}

bool arpc_thrift_read_list(arpc_thrift_reader *r, arpc_thrift_type *elem, uint32_t *count)
{
    *elem = (arpc_thrift_type)get_be(r, 1);
    *count = (uint32_t)get_be(r, 4);
    if (!check_count(r, *count, 1)) {
        *count = 0;
        return false;
    }
    return true;
}

bool arpc_thrift_read_set(arpc_thrift_reader *r, arpc_thrift_type *elem, uint32_t *count)
{
    return arpc_thrift_read_list(r, elem, count);
}

bool arpc_thrift_read_map(arpc_thrift_reader *r, arpc_thrift_type *key, arpc_thrift_type *value,
                          uint32_t *count)
{
    *key = (arpc_thrift_type)get_be(r, 1);
    *value = (arpc_thrift_type)get_be(r, 1);
    *count = (uint32_t)get_be(r, 4);
    if (!check_count(r, *count, 2)) {
        *count = 0;
        return false;
    }
    return true;
}

/* Bytes of a fixed-size type, or 0 for the others. */
static unsigned fixed_size(arpc_thrift_type t)
{
    switch (t) {
    case ARPC_THRIFT_BOOL:
    case ARPC_THRIFT_BYTE:
        return 1;
    case ARPC_THRIFT_I16:
        return 2;
    case ARPC_THRIFT_I32:
        return 4;
    case ARPC_THRIFT_DOUBLE:
    case ARPC_THRIFT_I64:
        return 8;
    default:
        return 0;
    }
}

static int skip_at(arpc_thrift_reader *r, arpc_thrift_type type, unsigned depth);

/* `count` elements of type a, or with `pair` map entries of a key a and a value b. */
static int skip_elems(arpc_thrift_reader *r, arpc_thrift_type a, arpc_thrift_type b, bool pair,
                      uint32_t count, unsigned depth)
{
    unsigned fa = fixed_size(a), fb = pair ? fixed_size(b) : 0;
    if (fa != 0 && (!pair || fb != 0)) {
        /* Fixed-size elements: one step, counted in 64 bits (a 32-bit size_t could wrap). */
        uint64_t bytes = (uint64_t)count * (fa + fb);
        if (bytes > (uint64_t)(r->end - r->p)) {
            if (r->err == 0)
                r->err = ARPC_EFRAME;
            return r->err;
        }
        take(r, (size_t)bytes);
        return r->err;
    }
    for (uint32_t i = 0; i < count && r->err == 0; i++) {
        skip_at(r, a, depth);
        if (pair)
            skip_at(r, b, depth);
    }
    return r->err;
}

static int skip_at(arpc_thrift_reader *r, arpc_thrift_type type, unsigned depth)
{
    if (r->err != 0)
        return r->err;
    unsigned fixed = fixed_size(type);
    if (fixed != 0) {
        take(r, fixed);
        return r->err;
    }
    if (type != ARPC_THRIFT_STRING && depth >= ARPC_THRIFT_MAX_DEPTH)
        return fail(r), r->err;
    size_t len;
    arpc_thrift_type a, b;
    uint32_t count;
    int16_t id;
    switch (type) {
    case ARPC_THRIFT_STRING:
        arpc_thrift_read_binary(r, &len);
        return r->err;
    case ARPC_THRIFT_STRUCT:
        while (arpc_thrift_read_field(r, &a, &id))
            skip_at(r, a, depth + 1);
        return r->err;
    case ARPC_THRIFT_MAP:
        if (arpc_thrift_read_map(r, &a, &b, &count))
            skip_elems(r, a, b, true, count, depth + 1);
        return r->err;
    case ARPC_THRIFT_SET:
    case ARPC_THRIFT_LIST:
        if (arpc_thrift_read_list(r, &a, &count))
            skip_elems(r, a, a, false, count, depth + 1);
        return r->err;
    default:
        return fail(r), r->err;
    }
}

int arpc_thrift_skip(arpc_thrift_reader *r, arpc_thrift_type type)
{
    return skip_at(r, type, 0);
}

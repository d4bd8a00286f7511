/**
 * Thrift's binary protocol, the types (docs/thrift.md section 4): a writer and a reader
 * for the argument and result structs a Thrift call carries, so C code can build and read
 * them without any other library.
 *
 * Over ARPC_PROTOCOL_THRIFT the payload of a call is its argument struct's bytes (the
 * fields of `service S { R m(1: T a) }`'s `m_args`, ending with STOP) and the answer is
 * its result struct's bytes (field 0 the success value, fields 1.. the declared
 * exceptions).  arpc adds and strips the message header and the frame; these functions
 * only write and read the struct inside.
 *
 * The writer appends to an arpc_buf and keeps its first error, so a struct is written
 * without a check per field and checked once at the end.  The reader is a cursor over
 * borrowed bytes: strings and binaries are views into them, its first error sticks (every
 * later read returns zero values), and arpc_thrift_skip() skips a value of any type, so a
 * reader ignores the fields it does not know, as Thrift's generated code does.
 *
 * Thread: a writer or reader belongs to its caller; nothing is shared.  Suspends: no.
 */
#ifndef ARPC_THRIFT_H
#define ARPC_THRIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/buf.h>
#include <arpc/export.h>

ARPC_BEGIN_DECLS

/** The type codes of the binary protocol (Thrift's TType). */
typedef enum arpc_thrift_type {
    ARPC_THRIFT_STOP = 0,
    ARPC_THRIFT_BOOL = 2,
    ARPC_THRIFT_BYTE = 3,
    ARPC_THRIFT_DOUBLE = 4,
    ARPC_THRIFT_I16 = 6,
    ARPC_THRIFT_I32 = 8,
    ARPC_THRIFT_I64 = 10,
    ARPC_THRIFT_STRING = 11, /**< also binary */
    ARPC_THRIFT_STRUCT = 12,
    ARPC_THRIFT_MAP = 13,
    ARPC_THRIFT_SET = 14,
    ARPC_THRIFT_LIST = 15
} arpc_thrift_type;

/** The deepest nesting of structs and containers arpc_thrift_skip() follows. */
#define ARPC_THRIFT_MAX_DEPTH 64

/** A writer: `err` is 0 until an append fails (ARPC_ENOMEM), then the first error. */
typedef struct arpc_thrift_writer {
    arpc_buf *buf;
    int err;
} arpc_thrift_writer;

/** Starts a writer that appends to `buf` (borrowed; bytes already in it stay). */
ARPC_EXPORT void arpc_thrift_writer_init(arpc_thrift_writer *w, arpc_buf *buf);

/** A field header: the value of `type` must follow (a struct's fields, then
 *  arpc_thrift_write_stop()). */
ARPC_EXPORT void arpc_thrift_write_field(arpc_thrift_writer *w, arpc_thrift_type type,
                                         int16_t id);
/** The STOP that ends a struct. */
ARPC_EXPORT void arpc_thrift_write_stop(arpc_thrift_writer *w);
ARPC_EXPORT void arpc_thrift_write_bool(arpc_thrift_writer *w, bool v);
ARPC_EXPORT void arpc_thrift_write_byte(arpc_thrift_writer *w, int8_t v);
ARPC_EXPORT void arpc_thrift_write_i16(arpc_thrift_writer *w, int16_t v);
ARPC_EXPORT void arpc_thrift_write_i32(arpc_thrift_writer *w, int32_t v);
ARPC_EXPORT void arpc_thrift_write_i64(arpc_thrift_writer *w, int64_t v);
ARPC_EXPORT void arpc_thrift_write_double(arpc_thrift_writer *w, double v);
/** A string or binary: a 4-byte length and the bytes.  Over 2^31-1 bytes sets ARPC_EINVAL. */
ARPC_EXPORT void arpc_thrift_write_binary(arpc_thrift_writer *w, const void *data, size_t len);
/** A NUL-terminated string. */
ARPC_EXPORT void arpc_thrift_write_string(arpc_thrift_writer *w, const char *s);
/** The header of a list or set of `count` elements of type `elem`; the elements follow.
 *  A count over INT32_MAX fails the writer with ARPC_EINVAL (the wire's i32). */
ARPC_EXPORT void arpc_thrift_write_list(arpc_thrift_writer *w, arpc_thrift_type elem,
                                        uint32_t count);
ARPC_EXPORT void arpc_thrift_write_set(arpc_thrift_writer *w, arpc_thrift_type elem,
                                       uint32_t count);
/** The header of a map of `count` entries; each key, then its value, follow (a count
 *  over INT32_MAX: ARPC_EINVAL, as for lists). */
ARPC_EXPORT void arpc_thrift_write_map(arpc_thrift_writer *w, arpc_thrift_type key,
                                       arpc_thrift_type value, uint32_t count);

/** A reader over data[0, len): `err` is 0 until a read fails (ARPC_EFRAME: the bytes end
 *  early or hold something the protocol forbids), then the first error. */
typedef struct arpc_thrift_reader {
    const uint8_t *p;
    const uint8_t *end;
    int err;
} arpc_thrift_reader;

/** Starts a reader over data[0, len) (borrowed; must outlive the views it returns). */
ARPC_EXPORT void arpc_thrift_reader_init(arpc_thrift_reader *r, const void *data, size_t len);

/**
 * Reads the next field header of a struct.
 * @return true and *type, *id for a field, whose value the caller reads (or skips with
 *         arpc_thrift_skip); false at the struct's STOP, or once the reader has failed
 *         (tell them apart with r->err).
 */
ARPC_EXPORT bool arpc_thrift_read_field(arpc_thrift_reader *r, arpc_thrift_type *type,
                                        int16_t *id);
ARPC_EXPORT bool arpc_thrift_read_bool(arpc_thrift_reader *r);
ARPC_EXPORT int8_t arpc_thrift_read_byte(arpc_thrift_reader *r);
ARPC_EXPORT int16_t arpc_thrift_read_i16(arpc_thrift_reader *r);
ARPC_EXPORT int32_t arpc_thrift_read_i32(arpc_thrift_reader *r);
ARPC_EXPORT int64_t arpc_thrift_read_i64(arpc_thrift_reader *r);
ARPC_EXPORT double arpc_thrift_read_double(arpc_thrift_reader *r);
/**
 * A string or binary.  @return a view of its bytes (not NUL-terminated) and *len, or NULL
 *         and *len = 0 once the reader has failed (a negative length or one past the end).
 */
ARPC_EXPORT const void *arpc_thrift_read_binary(arpc_thrift_reader *r, size_t *len);
/**
 * A list's or set's header: *elem and *count.  A count that the remaining bytes cannot
 * hold (every element takes at least one byte) fails the reader.
 * @return true, or false once the reader has failed.
 */
ARPC_EXPORT bool arpc_thrift_read_list(arpc_thrift_reader *r, arpc_thrift_type *elem,
                                       uint32_t *count);
ARPC_EXPORT bool arpc_thrift_read_set(arpc_thrift_reader *r, arpc_thrift_type *elem,
                                      uint32_t *count);
/** A map's header: *key, *value, *count (entries).  @return as arpc_thrift_read_list. */
ARPC_EXPORT bool arpc_thrift_read_map(arpc_thrift_reader *r, arpc_thrift_type *key,
                                      arpc_thrift_type *value, uint32_t *count);
/**
 * Skips one value of `type` (a struct to its STOP, containers with their elements),
 * nested at most ARPC_THRIFT_MAX_DEPTH deep.
 * @return 0, or the reader's error (ARPC_EFRAME: truncated, an unknown type, too deep).
 */
ARPC_EXPORT int arpc_thrift_skip(arpc_thrift_reader *r, arpc_thrift_type type);

ARPC_END_DECLS

#endif

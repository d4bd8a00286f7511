/*
 * Just enough of the protobuf wire format to read what protobuf-c's unpacked structs do
 * not keep: the exact bytes of each FileDescriptorProto in a CodeGeneratorRequest, and
 * protoc-c's own file options (an extension, so an unknown field to descriptor.pb-c).
 */
#ifndef PROTOC_GEN_ARPC_WIRE_H
#define PROTOC_GEN_ARPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

/** One field as it lies in the buffer. */
typedef struct gen_field {
    uint32_t number;
    unsigned wire_type;   /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    const uint8_t *begin; /* the field's first byte (its tag) */
    const uint8_t *end;   /* one past its last byte */
    const uint8_t *value; /* wire type 2: the payload */
    size_t value_len;
    uint64_t varint; /* wire type 0: the value */
} gen_field;

/**
 * Reads the field at *p (before `end`) and moves *p past it.
 * @return 1 with *f filled, 0 at the end of the buffer, -1 if the bytes are not a
 *         well-formed field (groups included: descriptors have none).
 */
int gen_wire_next(const uint8_t **p, const uint8_t *end, gen_field *f);

/** The payload of a length-delimited value buf[0..len) (its length varint, then the
 *  bytes): *begin and *end bound it.  @return 0, or -1 if malformed. */
int gen_wire_payload(const uint8_t *buf, size_t len, const uint8_t **begin, const uint8_t **end);

/**
 * A copy of the message in buf[0..len) without its fields numbered `number` (the
 * other fields' bytes unchanged, in their order).  The caller frees it.
 * @return the copy (its length in *out_len), or NULL if malformed or out of memory.
 */
uint8_t *gen_wire_strip(const uint8_t *buf, size_t len, uint32_t number, size_t *out_len);

#endif

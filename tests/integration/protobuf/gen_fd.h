/*
 * What `protoc --descriptor_set_out` writes for each file the generated code of
 * tests/codegen/proto embeds (the table gen_fd_table.c is written by CMake at configure
 * time over arpc_embed_descriptor's outputs): test_pb_generated compares the embedded
 * descriptors with these.
 */
#ifndef GEN_FD_H
#define GEN_FD_H

#include <stddef.h>
#include <stdint.h>

typedef struct gen_fd {
    const char *name; /* as protoc names the file */
    const uint8_t *bytes;
    size_t len;
} gen_fd;

extern const gen_fd gen_fds[];
extern const size_t gen_fd_count;

#endif

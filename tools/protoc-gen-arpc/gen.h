/*
 * protoc-gen-arpc's model of a CodeGeneratorRequest and of what it writes for one
 * .proto file: the files protoc sent (every file to generate and all they import), the
 * message and enum types they define, and for the file being generated its services
 * with every C name already derived (names.h), so that the checks (check.c) and the
 * writers (emit.c) share one spelling of each name.
 */
#ifndef PROTOC_GEN_ARPC_GEN_H
#define PROTOC_GEN_ARPC_GEN_H

#include <google/protobuf/compiler/plugin.pb-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "out.h"

typedef Google__Protobuf__FileDescriptorProto gen_fdp;
typedef Google__Protobuf__DescriptorProto gen_msgp;
typedef Google__Protobuf__EnumDescriptorProto gen_enump;
typedef Google__Protobuf__ServiceDescriptorProto gen_svcp;
typedef Google__Protobuf__MethodDescriptorProto gen_methodp;

/** One .proto file of the request. */
typedef struct gen_file {
    const gen_fdp *fd;
    const char *name;      /* "dir/calc.proto" */
    const char *package;   /* "" without a package statement */
    const char *c_package; /* protoc-c's (pb_c_file).c_package, or NULL */
    bool no_generate;      /* protoc-c's (pb_c_file).no_generate: no .pb-c.h exists */
    const uint8_t *bytes;  /* the FileDescriptorProto as protoc sent it, without */
    size_t len;            /* source_code_info (field 9), for reflection */
    const char *ident;     /* the name as an identifier (gen_filename_identifier) */
} gen_file;

/** A message or enum, nested ones included. */
typedef struct gen_type {
    const char *full; /* "p.q.Outer.Inner", no leading dot */
    const gen_file *file;
    const gen_msgp *msg; /* one of the two is set */
    const gen_enump *en;
} gen_type;

typedef struct gen_model {
    gen_file *files; /* in the request's order: every file after its imports */
    size_t n_files;
    gen_type *types;
    size_t n_types;
    gen_pool pool; /* the strings above */
} gen_model;

/** arpc_pb_kind's values, from the method's streaming flags. */
enum { GEN_UNARY = 0, GEN_SERVER_STREAM = 1, GEN_CLIENT_STREAM = 2, GEN_BIDI_STREAM = 3 };

typedef struct gen_method {
    const gen_methodp *md;
    int kind;
    const char *lower;  /* m: CamelToLower(name) */
    const char *member; /* m, with '_' appended if a keyword (the handler table's member) */
    const char *upper;  /* M: m upper-cased */
    const char *wire;   /* "p.q.S/M": the method's name on the wire */
    const gen_type *in, *out;
    const char *in_c, *out_c;         /* protoc-c's type names */
    const char *in_lower, *out_lower; /* protoc-c's prefixes (their __descriptor) */
} gen_method;

typedef struct gen_service {
    const gen_svcp *sd;
    const char *full;  /* "p.q.S" */
    const char *lower; /* P */
    const char *upper; /* P upper-cased */
    const char *c;     /* protoc-c's P__Q__S (its P__Q__S_Service) */
    gen_method *methods;
    size_t n_methods;
} gen_service;

/** What one file generates. */
typedef struct gen_plan {
    const gen_file *file;
    const char *stem; /* "dir/calc": outputs stem.arpc.h and stem.arpc.c */
    gen_service *services;
    size_t n_services;
    gen_pool pool;
} gen_plan;

/**
 * Indexes the request's files and types.  `raw` is the request's serialized bytes,
 * from which each file's exact FileDescriptorProto is taken.
 * @return 0, or -1 with *error set (a message the caller frees; NULL: out of memory).
 */
int gen_model_build(gen_model *m, const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                    const uint8_t *raw, size_t raw_len, char **error);
void gen_model_fini(gen_model *m);
const gen_file *gen_model_file(const gen_model *m, const char *name);
/** The type named `name` (a leading '.' is ignored), or NULL. */
const gen_type *gen_model_type(const gen_model *m, const char *name);

/** Marks, indexed like m->files, `f` and every file it imports directly or not; the
 *  caller frees the array.  NULL if out of memory. */
bool *gen_model_reachable(const gen_model *m, const gen_file *f);

/**
 * Derives every name `file` generates and checks what arpc cannot generate
 * (check.c: unsupported features, then collisions).
 * @return 0, or -1 with *error set as gen_model_build().
 */
int gen_plan_build(gen_plan *plan, const gen_model *m, const gen_file *file, char **error);
void gen_plan_fini(gen_plan *plan);

/** check.c: 0, or -1 with *error naming the file, service and method(s). */
int gen_check(const gen_plan *plan, const gen_model *m, char **error);

/** emit.c: the text of stem.arpc.h / stem.arpc.c (the caller frees), NULL if out of
 *  memory. */
char *gen_emit_header(const gen_plan *plan, const gen_model *m);
char *gen_emit_source(const gen_plan *plan, const gen_model *m);

/** A printf-formatted message for *error (NULL if out of memory); returns -1. */
int gen_fail(char **error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

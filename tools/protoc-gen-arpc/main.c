/*
 * protoc-gen-arpc: protoc's plugin for arpc's typed services (docs/protobuf.md).
 *
 *   protoc --c_out=DIR --arpc_out=DIR [--plugin=protoc-gen-arpc=PATH] x.proto
 *
 * Reads a CodeGeneratorRequest on stdin and writes a CodeGeneratorResponse on stdout:
 * NAME.arpc.h and NAME.arpc.c for each file to generate, beside protoc-c's NAME.pb-c.h
 * and NAME.pb-c.c; or, for what arpc cannot generate (a name collision, an unsupported
 * feature), the response's error naming the file, service and method, which protoc
 * prints before it exits non-zero.  The exit status is non-zero only when the plugin
 * protocol itself fails (unreadable request, out of memory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest request;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File response_file;

static uint8_t *read_all(FILE *in, size_t *len)
{
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap);

    while (buf != NULL && (got = fread(buf + n, 1, cap - n, in)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *more = realloc(buf, cap * 2);

            if (more == NULL)
                free(buf);
            buf = more;
            cap *= 2;
        }
    }
    if (buf != NULL && ferror(in)) {
        free(buf);
        buf = NULL;
    }
    *len = n;
    return buf;
}

/* Adds one output file (takes `content`). */
static int add_file(response *rsp, gen_pool *pool, const char *name, char *content)
{
    response_file **files = realloc(rsp->file, (rsp->n_file + 1) * sizeof(*files));
    response_file *f = malloc(sizeof(*f));

    if (files != NULL)
        rsp->file = files;
    if (files == NULL || f == NULL || content == NULL || name == NULL) {
        free(f);
        free(content);
        return -1;
    }
    google__protobuf__compiler__code_generator_response__file__init(f);
    f->name = (char *)name;
    f->content = gen_pool_add(pool, content);
    rsp->file[rsp->n_file++] = f;
    return 0;
}

/* Generates `name`'s two files into `rsp`. */
static int generate_file(const gen_model *m, const char *name, response *rsp, gen_pool *pool,
                         char **error)
{
    const gen_file *f = gen_model_file(m, name);
    gen_plan plan;
    int rc;

    if (f == NULL)
        return gen_fail(error, "%s: not among the request's files", name);
    rc = gen_plan_build(&plan, m, f, error);
    if (rc == 0) {
        rc = add_file(rsp, pool, gen_pool_printf(pool, "%s.arpc.h", plan.stem),
                      gen_emit_header(&plan, m));
        if (rc == 0)
            rc = add_file(rsp, pool, gen_pool_printf(pool, "%s.arpc.c", plan.stem),
                          gen_emit_source(&plan, m));
        if (rc < 0)
            *error = NULL;
    }
    gen_plan_fini(&plan);
    return rc;
}

/* Fills `rsp` from `req`; -1 only when out of memory. */
static int generate(const request *req, const uint8_t *raw, size_t len, response *rsp,
                    gen_pool *pool)
{
    gen_model m;
    char *error = NULL;
    bool built = false;
    int rc;

    if (req->parameter != NULL && req->parameter[0] != '\0') {
        rc = gen_fail(&error, "protoc-gen-arpc takes no options (got \"%s\")", req->parameter);
    } else {
        rc = gen_model_build(&m, req, raw, len, &error);
        built = true;
    }
    for (size_t i = 0; rc == 0 && i < req->n_file_to_generate; i++)
        rc = generate_file(&m, req->file_to_generate[i], rsp, pool, &error);
    if (built)
        gen_model_fini(&m);
    if (rc < 0 && error == NULL)
        return -1;
    rsp->error = gen_pool_add(pool, error);
    return 0;
}

static int write_response(const response *rsp)
{
    size_t len = google__protobuf__compiler__code_generator_response__get_packed_size(rsp);
    uint8_t *buf = malloc(len != 0 ? len : 1);
    int rc = -1;

    if (buf != NULL) {
        google__protobuf__compiler__code_generator_response__pack(rsp, buf);
        if (fwrite(buf, 1, len, stdout) == len && fflush(stdout) == 0)
            rc = 0;
    }
    free(buf);
    return rc;
}

int main(void)
{
    response rsp;
    gen_pool pool;
    request *req;
    size_t len;
    uint8_t *raw = read_all(stdin, &len);
    int rc = -1;

    if (raw == NULL) {
        fprintf(stderr, "protoc-gen-arpc: cannot read the request from stdin\n");
        return 1;
    }
    req = google__protobuf__compiler__code_generator_request__unpack(NULL, len, raw);
    if (req == NULL) {
        fprintf(stderr, "protoc-gen-arpc: stdin is not a CodeGeneratorRequest (run me from "
                        "protoc: protoc --arpc_out=DIR x.proto)\n");
        free(raw);
        return 1;
    }
    gen_pool_init(&pool);
    google__protobuf__compiler__code_generator_response__init(&rsp);
    /* arpc's code depends on no field of the messages, so proto3 optional is fine. */
    rsp.has_supported_features = 1;
    rsp.supported_features =
        GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
    if (generate(req, raw, len, &rsp, &pool) == 0)
        rc = write_response(&rsp);
    else
        fprintf(stderr, "protoc-gen-arpc: out of memory\n");
    for (size_t i = 0; i < rsp.n_file; i++)
        free(rsp.file[i]);
    free(rsp.file);
    gen_pool_fini(&pool);
    google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
    free(raw);
    return rc == 0 ? 0 : 1;
}

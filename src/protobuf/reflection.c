/*
 * gRPC server reflection (arpc_server_enable_reflection, docs/protobuf.md
 * "Reflection"; grpc/grpc doc/server-reflection.md).
 *
 * Design notes
 *
 * One bidirectional stream handler serves both grpc.reflection.v1 and
 * v1alpha: their .proto files define the same messages with the same field
 * numbers and differ only in the package, which never reaches the wire, so
 * the C that protoc-c writes from v1's file (at build time, src/CMakeLists.txt)
 * reads and writes both.  Each version's own .proto is still served under its
 * own name (a client describing the reflection service asks for it), from
 * descriptors protoc serializes at build time (cmake/ArpcEmbedDescriptor.cmake).
 *
 * The handler answers each request in turn, as grpc's C++ server does: a file
 * request gets the file and every file it imports, directly or not, each once
 * per answer (the registry's closure), the file first; unknown names get an
 * error_response (NOT_FOUND) and the stream goes on; a request with nothing
 * set gets INVALID_ARGUMENT.  arpc registers no extensions, so extension
 * queries find none.  A request that does not parse ends the stream with
 * ARPC_EBADMSG: the peer is not speaking this protocol.
 *
 * Memory: one arena per stream holds the unpacked request and everything
 * the answer points to, reset after each answer; descriptors and names are
 * pointed at, never copied.  An answer is bounded by REFLECTION_MAX_ANSWER.
 *
 * Threads: the registry is read-only once the server listens (registry.h),
 * so streams on every loop read it without locks.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Written by protoc-c at build time (src/CMakeLists.txt), outside the source tree. */
#include <grpc/reflection/v1/reflection.pb-c.h>

#include <arpc/arena.h>
#include <arpc/buf.h>
#include <arpc/err.h>
#include <arpc/protobuf.h>
#include <arpc/stream.h>

#include "arpc__reflection_v1_fd.h"
#include "arpc__reflection_v1alpha_fd.h"
#include "proto/grpc/wire.h"
#include "protobuf/pb.h"
#include "protobuf/registry.h"
#include "rpc/server.h"

/* gRPC clients refuse messages over 4 MiB by default (NOTES-protocols.md): a larger answer
 * is replaced by RESOURCE_EXHAUSTED, which they can read. */
#define REFLECTION_MAX_ANSWER (4u * 1024 * 1024)

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_answer;

#define REQ(c) GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##c
#define ANS(c) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##c

/* ---- the reflection service's own files and services ----------------------------------- */

#define REFLECTION_SYMBOLS(pkg)                                                                 \
    {                                                                                           \
        pkg ".ServerReflection", pkg ".ServerReflection.ServerReflectionInfo",                  \
            pkg ".ServerReflectionRequest", pkg ".ExtensionRequest",                            \
            pkg ".ServerReflectionResponse", pkg ".FileDescriptorResponse",                     \
            pkg ".ExtensionNumberResponse", pkg ".ListServiceResponse", pkg ".ServiceResponse", \
            pkg ".ErrorResponse"                                                                \
    }

static const char *const v1_symbols[] = REFLECTION_SYMBOLS("grpc.reflection.v1");
static const char *const v1alpha_symbols[] = REFLECTION_SYMBOLS("grpc.reflection.v1alpha");

/* The descriptors are written at build time (cmake/ArpcEmbedDescriptor.cmake). */
static const arpc_pb_file v1_file = {
    .name = "grpc/reflection/v1/reflection.proto",
    .descriptor = arpc__reflection_v1_fd,
    .descriptor_len = ARPC__REFLECTION_V1_FD_LEN,
    .symbols = v1_symbols,
    .symbol_count = sizeof(v1_symbols) / sizeof(v1_symbols[0]),
};
static const arpc_pb_file v1alpha_file = {
    .name = "grpc/reflection/v1alpha/reflection.proto",
    .descriptor = arpc__reflection_v1alpha_fd,
    .descriptor_len = ARPC__REFLECTION_V1ALPHA_FD_LEN,
    .symbols = v1alpha_symbols,
    .symbol_count = sizeof(v1alpha_symbols) / sizeof(v1alpha_symbols[0]),
};

/* The methods are served by serve() through arpc_server_register_stream, not through
 * arpc_pb_register, so they have no invoke. */
static const arpc_pb_method v1_method = {
    .name = "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    .kind = ARPC_PB_BIDI_STREAM,
    .input = &grpc__reflection__v1__server_reflection_request__descriptor,
    .output = &grpc__reflection__v1__server_reflection_response__descriptor,
};
static const arpc_pb_method v1alpha_method = {
    .name = "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    .kind = ARPC_PB_BIDI_STREAM,
    .input = &grpc__reflection__v1__server_reflection_request__descriptor,
    .output = &grpc__reflection__v1__server_reflection_response__descriptor,
};

static const arpc_pb_service v1_service = {
    .name = "grpc.reflection.v1.ServerReflection",
    .methods = &v1_method,
    .method_count = 1,
    .file = &v1_file,
};
static const arpc_pb_service v1alpha_service = {
    .name = "grpc.reflection.v1alpha.ServerReflection",
    .methods = &v1alpha_method,
    .method_count = 1,
    .file = &v1alpha_file,
};

/* ---- answers ----------------------------------------------------------------------------- */

static int answer_error(refl_answer *ans, arpc_arena *arena, int code, const char *message)
{
    Grpc__Reflection__V1__ErrorResponse *err = arpc_arena_alloc(arena, sizeof(*err));
    if (err == NULL)
        return ARPC_ENOMEM;
    grpc__reflection__v1__error_response__init(err);
    err->error_code = code;
    err->error_message = (char *)message;
    ans->message_response_case = ANS(ERROR_RESPONSE);
    ans->error_response = err;
    return 0;
}

static int answer_services(refl_answer *ans, arpc_arena *arena, const arpc__pb_registry *reg)
{
    size_t n = arpc__pb_registry_service_count(reg);
    Grpc__Reflection__V1__ListServiceResponse *list = arpc_arena_alloc(arena, sizeof(*list));
    Grpc__Reflection__V1__ServiceResponse *items = arpc_arena_alloc(arena, n * sizeof(*items));
    Grpc__Reflection__V1__ServiceResponse **ptrs = arpc_arena_alloc(arena, n * sizeof(*ptrs));
    if (list == NULL || items == NULL || ptrs == NULL)
        return ARPC_ENOMEM;
    grpc__reflection__v1__list_service_response__init(list);
    for (size_t i = 0; i < n; i++) {
        grpc__reflection__v1__service_response__init(&items[i]);
        items[i].name = (char *)arpc__pb_registry_service(reg, i)->name;
        ptrs[i] = &items[i];
    }
    list->n_service = n;
    list->service = ptrs;
    ans->message_response_case = ANS(LIST_SERVICES_RESPONSE);
    ans->list_services_response = list;
    return 0;
}

/* File `i` and everything it imports. */
static int answer_files(refl_answer *ans, arpc_arena *arena, const arpc__pb_registry *reg, size_t i)
{
    size_t count = arpc__pb_registry_file_count(reg);
    size_t *order = arpc_arena_alloc(arena, count * sizeof(*order));
    unsigned char *seen = arpc_arena_alloc(arena, count);
    ProtobufCBinaryData *blobs = arpc_arena_alloc(arena, count * sizeof(*blobs));
    Grpc__Reflection__V1__FileDescriptorResponse *files = arpc_arena_alloc(arena, sizeof(*files));
    if (order == NULL || seen == NULL || blobs == NULL || files == NULL)
        return ARPC_ENOMEM;
    size_t n = arpc__pb_registry_closure(reg, i, order, seen);
    for (size_t k = 0; k < n; k++) {
        const arpc_pb_file *f = arpc__pb_registry_file(reg, order[k]);
        blobs[k].data = (uint8_t *)f->descriptor;
        blobs[k].len = f->descriptor_len;
    }
    grpc__reflection__v1__file_descriptor_response__init(files);
    files->n_file_descriptor_proto = n;
    files->file_descriptor_proto = blobs;
    ans->message_response_case = ANS(FILE_DESCRIPTOR_RESPONSE);
    ans->file_descriptor_response = files;
    return 0;
}

/* arpc registers no extensions: a known type has none, an unknown one is NOT_FOUND. */
static int answer_extension_numbers(refl_answer *ans, arpc_arena *arena,
                                    const arpc__pb_registry *reg, const char *type)
{
    if (arpc__pb_registry_find_symbol(reg, type, strlen(type)) < 0)
        return answer_error(ans, arena, ARPC__GRPC_NOT_FOUND, "type not found");
    Grpc__Reflection__V1__ExtensionNumberResponse *nums = arpc_arena_alloc(arena, sizeof(*nums));
    if (nums == NULL)
        return ARPC_ENOMEM;
    grpc__reflection__v1__extension_number_response__init(nums);
    nums->base_type_name = (char *)type;
    ans->message_response_case = ANS(ALL_EXTENSION_NUMBERS_RESPONSE);
    ans->all_extension_numbers_response = nums;
    return 0;
}

static int answer_by_index(refl_answer *ans, arpc_arena *arena, const arpc__pb_registry *reg,
                           long i, const char *not_found)
{
    if (i < 0)
        return answer_error(ans, arena, ARPC__GRPC_NOT_FOUND, not_found);
    return answer_files(ans, arena, reg, (size_t)i);
}

static int fill_answer(refl_answer *ans, arpc_arena *arena, const arpc__pb_registry *reg,
                       const refl_request *req)
{
    const char *s;
    switch (req->message_request_case) {
    case REQ(LIST_SERVICES):
        return answer_services(ans, arena, reg);
    case REQ(FILE_BY_FILENAME):
        s = req->file_by_filename;
        return answer_by_index(ans, arena, reg, arpc__pb_registry_find_file(reg, s, strlen(s)),
                               "file not found");
    case REQ(FILE_CONTAINING_SYMBOL):
        s = req->file_containing_symbol;
        return answer_by_index(ans, arena, reg, arpc__pb_registry_find_symbol(reg, s, strlen(s)),
                               "symbol not found");
    case REQ(FILE_CONTAINING_EXTENSION):
        return answer_error(ans, arena, ARPC__GRPC_NOT_FOUND, "extension not found");
    case REQ(ALL_EXTENSION_NUMBERS_OF_TYPE):
        return answer_extension_numbers(ans, arena, reg, req->all_extension_numbers_of_type);
    default:
        return answer_error(ans, arena, ARPC__GRPC_INVALID_ARGUMENT,
                            "the request sets none of its message_request fields");
    }
}

/* Packs `ans` into the arena and writes it; an answer over the bound is replaced. */
static int send_answer(arpc_stream *st, arpc_arena *arena, refl_answer *ans)
{
    size_t len = grpc__reflection__v1__server_reflection_response__get_packed_size(ans);
    if (len > REFLECTION_MAX_ANSWER) {
        int rc =
            answer_error(ans, arena, ARPC__GRPC_RESOURCE_EXHAUSTED, "the answer is over 4 MiB");
        if (rc < 0)
            return rc;
        len = grpc__reflection__v1__server_reflection_response__get_packed_size(ans);
    }
    uint8_t *out = arpc_arena_alloc(arena, len);
    if (out == NULL)
        return ARPC_ENOMEM;
    grpc__reflection__v1__server_reflection_response__pack(ans, out);
    return arpc_stream_write(st, out, len);
}

static int answer(arpc_stream *st, const arpc__pb_registry *reg, arpc_arena *arena,
                  const arpc_buf *msg)
{
    ProtobufCMessage *unpacked;
    int rc = arpc__pb_unpack(&grpc__reflection__v1__server_reflection_request__descriptor, arena,
                             arpc_buf_data(msg), arpc_buf_len(msg), &unpacked);
    if (rc < 0)
        return rc; /* ARPC_EBADMSG, or ARPC_ENOMEM */
    refl_request *req = (refl_request *)unpacked;
    refl_answer ans = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    ans.valid_host = req->host;
    ans.original_request = req;
    rc = fill_answer(&ans, arena, reg, req);
    return rc < 0 ? rc : send_answer(st, arena, &ans);
}

static int serve(arpc_stream *st, void *user_data)
{
    const arpc__pb_registry *reg = user_data;
    arpc_arena *arena = NULL;
    arpc_buf *msg = NULL;
    int rc = arpc_arena_create(&arena);
    if (rc == 0)
        rc = arpc_buf_create(&msg);
    while (rc == 0) {
        arpc_buf_clear(msg);
        rc = arpc_stream_read(st, msg);
        if (rc == 0)
            rc = answer(st, reg, arena, msg);
        arpc_arena_reset(arena);
    }
    arpc_buf_destroy(msg);
    arpc_arena_destroy(arena);
    /* The client's half-close ends the conversation. */
    return rc == ARPC_EEOS ? 0 : rc;
}

/* ---- enabling ---------------------------------------------------------------------------- */

/* Lists both versions, then registers both methods at once, then takes the one claim:
 * a failure anywhere leaves nothing done, so the call can be made again. */
int arpc_server_enable_reflection(arpc_server *srv)
{
    if (srv == NULL)
        return ARPC_EINVAL;
    arpc__pb_registry *reg;
    int rc = arpc__pb_registry_get(srv, &reg);
    if (rc < 0)
        return rc;
    if (arpc__pb_registry_reflection_claimed(reg))
        return ARPC_EINVAL;
    bool v1_listed = arpc__pb_registry_lists(srv, v1_service.name);
    bool v1alpha_listed = arpc__pb_registry_lists(srv, v1alpha_service.name);
    rc = arpc__pb_registry_add(srv, &v1_service);
    if (rc == 0) {
        rc = arpc__pb_registry_add(srv, &v1alpha_service);
        if (rc < 0 && !v1_listed)
            arpc__pb_registry_forget(srv, &v1_service);
    }
    if (rc < 0)
        return rc;
    const arpc__method_def defs[] = {
        {.name = v1_service.methods[0].name, .stream_fn = serve, .user_data = reg},
        {.name = v1alpha_service.methods[0].name, .stream_fn = serve, .user_data = reg},
    };
    rc = arpc__server_register_all(srv, defs, 2, NULL);
    if (rc < 0) {
        if (!v1alpha_listed)
            arpc__pb_registry_forget(srv, &v1alpha_service);
        if (!v1_listed)
            arpc__pb_registry_forget(srv, &v1_service);
        return rc;
    }
    return arpc__pb_registry_claim_reflection(reg);
}

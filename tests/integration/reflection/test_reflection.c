/*
 * gRPC server reflection (src/protobuf/reflection.c) through arpc's own stream client,
 * over native and over gRPC, against both grpc.reflection.v1 and v1alpha: one stream
 * carrying many requests, each answered in turn; the services listed in the order
 * registered (reflection enabled before and after them); a file, or the file of a
 * symbol, answered with every file it imports, once each, the requested one first, each
 * the exact bytes protoc serialized; unknown names NOT_FOUND and a request with nothing
 * set INVALID_ARGUMENT, the stream going on after each; extensions none; a request that
 * does not parse ends the stream with ARPC_EBADMSG.
 *
 * The requests and answers are built and read with the same protoc-c code the server
 * uses (libarpc holds it): the Python interop test (interop_grpc_reflection) checks the
 * server against another implementation.
 */
#include <grpc/reflection/v1/reflection.pb-c.h>
#include <stdio.h>
#include <string.h>

#include <arpc/arpc.h>

#include "refl_fixture.h"
#include "test.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_answer;

#define REQ(c) GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##c
#define ANS(c) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##c

#define V1_SERVICE      "grpc.reflection.v1.ServerReflection"
#define V1ALPHA_SERVICE "grpc.reflection.v1alpha.ServerReflection"

static arpc_runtime *rt;
static arpc_server *srv;
static arpc_channel *ch;
static const char *service = V1_SERVICE; /* the version under test */

static void setup(bool grpc, bool reflection_first)
{
    srv = refl_server(rt, reflection_first);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(srv));
    arpc_channel_opts opts;
    arpc_channel_opts_init(&opts);
    opts.heartbeat_timeout_ms = 5000;
    opts.protocol = grpc ? ARPC_PROTOCOL_GRPC : ARPC_PROTOCOL_NATIVE;
    ASSERT_OK(arpc_channel_create(rt, target, &opts, &ch));
}

static void teardown(void)
{
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
}

static arpc_stream *open_reflection(void)
{
    char method[128];
    snprintf(method, sizeof(method), "%s/ServerReflectionInfo", service);
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(ch, method, NULL, &st));
    return st;
}

static void send_request(arpc_stream *st, const refl_request *req)
{
    uint8_t buf[1024];
    size_t len = grpc__reflection__v1__server_reflection_request__get_packed_size(req);
    ASSERT_LE(len, sizeof(buf));
    grpc__reflection__v1__server_reflection_request__pack(req, buf);
    ASSERT_OK(arpc_stream_write(st, buf, len));
}

/* The next answer; the caller frees it (free_answer). */
static refl_answer *read_answer(arpc_stream *st)
{
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    ASSERT_OK(arpc_stream_read(st, msg));
    refl_answer *ans = grpc__reflection__v1__server_reflection_response__unpack(
        NULL, arpc_buf_len(msg), arpc_buf_data(msg));
    arpc_buf_destroy(msg);
    ASSERT_TRUE(ans != NULL);
    return ans;
}

static void free_answer(refl_answer *ans)
{
    grpc__reflection__v1__server_reflection_response__free_unpacked(ans, NULL);
}

static refl_answer *ask(arpc_stream *st, const refl_request *req)
{
    send_request(st, req);
    refl_answer *ans = read_answer(st);
    /* Every answer names the host and the request it answers. */
    ASSERT_STREQ(ans->valid_host, req->host);
    ASSERT_TRUE(ans->original_request != NULL);
    ASSERT_EQ(ans->original_request->message_request_case, req->message_request_case);
    return ans;
}

/* A request of `kind` with `text` in its string field. */
static refl_request make_request(int kind, const char *text)
{
    refl_request req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.host = "reflection.test";
    req.message_request_case = kind;
    switch (kind) {
    case REQ(FILE_BY_FILENAME):
        req.file_by_filename = (char *)text;
        break;
    case REQ(FILE_CONTAINING_SYMBOL):
        req.file_containing_symbol = (char *)text;
        break;
    case REQ(ALL_EXTENSION_NUMBERS_OF_TYPE):
        req.all_extension_numbers_of_type = (char *)text;
        break;
    case REQ(LIST_SERVICES):
        req.list_services = (char *)text;
        break;
    default:
        break;
    }
    return req;
}

static void expect_services(arpc_stream *st, const char *const *want, size_t n)
{
    refl_request req = make_request(REQ(LIST_SERVICES), "*");
    refl_answer *ans = ask(st, &req);
    ASSERT_EQ(ans->message_response_case, ANS(LIST_SERVICES_RESPONSE));
    ASSERT_STREQ(ans->original_request->list_services, "*");
    ASSERT_EQ(ans->list_services_response->n_service, n);
    for (size_t i = 0; i < n; i++)
        ASSERT_STREQ(ans->list_services_response->service[i]->name, want[i]);
    free_answer(ans);
}

/* The answer holds exactly the files `want`, in order, each its serialized descriptor. */
static void expect_files(arpc_stream *st, int kind, const char *name, const char *const *want,
                         size_t n)
{
    refl_request req = make_request(kind, name);
    refl_answer *ans = ask(st, &req);
    ASSERT_EQ(ans->message_response_case, ANS(FILE_DESCRIPTOR_RESPONSE));
    const Grpc__Reflection__V1__FileDescriptorResponse *files = ans->file_descriptor_response;
    ASSERT_EQ(files->n_file_descriptor_proto, n);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const uint8_t *bytes = refl_descriptor(want[i], &len);
        ASSERT_EQ(files->file_descriptor_proto[i].len, len);
        ASSERT_MEMEQ(files->file_descriptor_proto[i].data, bytes, len);
    }
    free_answer(ans);
}

static void expect_error(arpc_stream *st, const refl_request *req, int code)
{
    refl_answer *ans = ask(st, req);
    ASSERT_EQ(ans->message_response_case, ANS(ERROR_RESPONSE));
    ASSERT_EQ(ans->error_response->error_code, code);
    ASSERT_GT(strlen(ans->error_response->error_message), 0);
    free_answer(ans);
}

static void finish(arpc_stream *st)
{
    ASSERT_OK(arpc_stream_close_send(st));
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    ASSERT_ERR(arpc_stream_read(st, msg), ARPC_EEOS);
    arpc_buf_destroy(msg);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
}

static void test_lists_services_in_the_order_registered(bool grpc)
{
    const char *first[] = {V1_SERVICE, V1ALPHA_SERVICE, "refl.calc.Calc", "refl.other.Mirror"};
    const char *last[] = {"refl.calc.Calc", "refl.other.Mirror", V1_SERVICE, V1ALPHA_SERVICE};
    setup(grpc, true);
    arpc_stream *st = open_reflection();
    expect_services(st, first, 4);
    /* The same stream answers again. */
    expect_services(st, first, 4);
    finish(st);
    teardown();
    setup(grpc, false);
    st = open_reflection();
    expect_services(st, last, 4);
    finish(st);
    teardown();
}

static void test_files_come_with_their_imports(bool grpc)
{
    const char *calc[] = {REFL_CALC_PROTO, REFL_BASE_PROTO, REFL_TS_PROTO};
    const char *other[] = {REFL_OTHER_PROTO, REFL_BASE_PROTO, REFL_TS_PROTO};
    const char *base[] = {REFL_BASE_PROTO, REFL_TS_PROTO};
    const char *ts[] = {REFL_TS_PROTO};
    setup(grpc, true);
    arpc_stream *st = open_reflection();
    expect_files(st, REQ(FILE_BY_FILENAME), REFL_CALC_PROTO, calc, 3);
    expect_files(st, REQ(FILE_BY_FILENAME), REFL_OTHER_PROTO, other, 3);
    expect_files(st, REQ(FILE_BY_FILENAME), REFL_TS_PROTO, ts, 1);
    expect_files(st, REQ(FILE_CONTAINING_SYMBOL), "refl.calc.Calc", calc, 3);
    expect_files(st, REQ(FILE_CONTAINING_SYMBOL), "refl.calc.Calc.Chat", calc, 3);
    expect_files(st, REQ(FILE_CONTAINING_SYMBOL), "refl.other.Mirror.Flip", other, 3);
    expect_files(st, REQ(FILE_CONTAINING_SYMBOL), "refl.base.Point.Label", base, 2);
    expect_files(st, REQ(FILE_CONTAINING_SYMBOL), "refl.base.Color", base, 2);
    expect_files(st, REQ(FILE_CONTAINING_SYMBOL), "google.protobuf.Timestamp", ts, 1);
    finish(st);
    teardown();
}

/* The reflection service describes itself: its file, in the version asked for. */
static void test_reflection_describes_itself(bool grpc)
{
    setup(grpc, false);
    arpc_stream *st = open_reflection();
    char symbol[128];
    snprintf(symbol, sizeof(symbol), "%s.ServerReflectionInfo", service);
    refl_request req = make_request(REQ(FILE_CONTAINING_SYMBOL), symbol);
    refl_answer *ans = ask(st, &req);
    ASSERT_EQ(ans->message_response_case, ANS(FILE_DESCRIPTOR_RESPONSE));
    ASSERT_EQ(ans->file_descriptor_response->n_file_descriptor_proto, 1);
    /* FileDescriptorProto field 1 (name) comes first: 0x0a, its length, the name. */
    const ProtobufCBinaryData *fd = &ans->file_descriptor_response->file_descriptor_proto[0];
    const char *name = strcmp(service, V1_SERVICE) == 0
                           ? "grpc/reflection/v1/reflection.proto"
                           : "grpc/reflection/v1alpha/reflection.proto";
    ASSERT_GT(fd->len, strlen(name) + 2);
    ASSERT_EQ(fd->data[0], 0x0a);
    ASSERT_EQ(fd->data[1], strlen(name));
    ASSERT_MEMEQ(fd->data + 2, name, strlen(name));
    free_answer(ans);
    finish(st);
    teardown();
}

static void test_unknown_names_are_not_found_and_the_stream_goes_on(bool grpc)
{
    const char *calc[] = {REFL_CALC_PROTO, REFL_BASE_PROTO, REFL_TS_PROTO};
    setup(grpc, true);
    arpc_stream *st = open_reflection();
    refl_request req = make_request(REQ(FILE_BY_FILENAME), "refl/nope.proto");
    expect_error(st, &req, 5 /* NOT_FOUND */);
    req = make_request(REQ(FILE_BY_FILENAME), "");
    expect_error(st, &req, 5);
    req = make_request(REQ(FILE_CONTAINING_SYMBOL), "refl.calc.Nope");
    expect_error(st, &req, 5);
    req = make_request(REQ(FILE_CONTAINING_SYMBOL), "refl.calc.Calc/Add");
    expect_error(st, &req, 5);
    req = make_request(REQ(ALL_EXTENSION_NUMBERS_OF_TYPE), "refl.calc.Nope");
    expect_error(st, &req, 5);
    /* Nothing set: INVALID_ARGUMENT. */
    req = make_request(REQ(_NOT_SET), NULL);
    expect_error(st, &req, 3);
    expect_files(st, REQ(FILE_CONTAINING_SYMBOL), "refl.calc.AddRequest", calc, 3);
    finish(st);
    teardown();
}

static void test_extensions_are_none(bool grpc)
{
    setup(grpc, true);
    arpc_stream *st = open_reflection();
    refl_request req = make_request(REQ(ALL_EXTENSION_NUMBERS_OF_TYPE), "refl.base.Point");
    refl_answer *ans = ask(st, &req);
    ASSERT_EQ(ans->message_response_case, ANS(ALL_EXTENSION_NUMBERS_RESPONSE));
    ASSERT_STREQ(ans->all_extension_numbers_response->base_type_name, "refl.base.Point");
    ASSERT_EQ(ans->all_extension_numbers_response->n_extension_number, 0);
    free_answer(ans);
    Grpc__Reflection__V1__ExtensionRequest ext = GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
    ext.containing_type = "refl.base.Point";
    ext.extension_number = 100;
    req = make_request(REQ(FILE_CONTAINING_EXTENSION), NULL);
    req.file_containing_extension = &ext;
    expect_error(st, &req, 5);
    finish(st);
    teardown();
}

/* Requests written ahead of their answers are answered in order. */
static void test_pipelined_requests_are_answered_in_order(bool grpc)
{
    enum { N = 200 };

    const char *names[] = {REFL_CALC_PROTO, REFL_OTHER_PROTO, REFL_BASE_PROTO, REFL_TS_PROTO};
    const size_t counts[] = {3, 3, 2, 1};
    setup(grpc, true);
    arpc_stream *st = open_reflection();
    for (int i = 0; i < N; i++) {
        refl_request req = make_request(REQ(FILE_BY_FILENAME), names[i % 4]);
        send_request(st, &req);
    }
    for (int i = 0; i < N; i++) {
        refl_answer *ans = read_answer(st);
        ASSERT_EQ(ans->message_response_case, ANS(FILE_DESCRIPTOR_RESPONSE));
        ASSERT_STREQ(ans->original_request->file_by_filename, names[i % 4]);
        ASSERT_EQ(ans->file_descriptor_response->n_file_descriptor_proto, counts[i % 4]);
        free_answer(ans);
    }
    finish(st);
    teardown();
}

static void test_a_request_that_does_not_parse_ends_the_stream(bool grpc)
{
    setup(grpc, true);
    arpc_stream *st = open_reflection();
    /* Field 3 (file_by_filename) claiming 100 bytes, with 1. */
    const uint8_t bad[] = {0x1a, 100, 'x'};
    ASSERT_OK(arpc_stream_write(st, bad, sizeof(bad)));
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    int rc = arpc_stream_read(st, msg);
    arpc_buf_destroy(msg);
    int status = arpc_stream_finish(st, NULL);
    ASSERT_EQ(rc, status);
    /* Native carries the handler's status as it is; over gRPC ARPC_EBADMSG is sent as
     * INVALID_ARGUMENT, which a client returns as the code itself, 3 (docs/grpc.md
     * section 5). */
    if (grpc)
        ASSERT_EQ(status, 3);
    else
        ASSERT_ERR(status, ARPC_EBADMSG);
    arpc_stream_destroy(st);
    /* The server still answers a new stream. */
    const char *ts[] = {REFL_TS_PROTO};
    st = open_reflection();
    expect_files(st, REQ(FILE_BY_FILENAME), REFL_TS_PROTO, ts, 1);
    finish(st);
    teardown();
}

#define RUN_BOTH(fn)                                                                               \
    do {                                                                                           \
        if (test_selected(#fn)) {                                                                  \
            for (int grpc = 0; grpc < 2; grpc++) {                                                 \
                for (int v = 0; v < 2; v++) {                                                      \
                    service = v == 0 ? V1_SERVICE : V1ALPHA_SERVICE;                               \
                    fprintf(stderr, "RUN  %s (%s, %s)\n", #fn, grpc ? "grpc" : "native", service); \
                    fn(grpc);                                                                      \
                }                                                                                  \
            }                                                                                      \
            fprintf(stderr, "OK   %s\n", #fn);                                                     \
        }                                                                                          \
    } while (0)

int main(void)
{
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 2;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    RUN_BOTH(test_lists_services_in_the_order_registered);
    RUN_BOTH(test_files_come_with_their_imports);
    RUN_BOTH(test_reflection_describes_itself);
    RUN_BOTH(test_unknown_names_are_not_found_and_the_stream_goes_on);
    RUN_BOTH(test_extensions_are_none);
    RUN_BOTH(test_pipelined_requests_are_answered_in_order);
    RUN_BOTH(test_a_request_that_does_not_parse_ends_the_stream);
    arpc_runtime_destroy(rt);
    return 0;
}

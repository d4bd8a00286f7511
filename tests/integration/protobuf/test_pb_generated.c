/*
 * Generated code end to end: what protoc-c and protoc-gen-arpc write for
 * tests/codegen/proto (arpc_codegen_gen), linked with the runtime, over real sockets on
 * 127.0.0.1 with the protocol named by the first argument (native, grpc).  The
 * services are gen_service.c's.  Proves:
 *  - ShapeStore.GetShape sync from a plain thread and from a coroutine, and _async with
 *    its typed callback; the Shape (maps, a oneof in each of its three cases, repeated
 *    and nested messages, Timestamp, Duration, keyword-named fields) arrives field by
 *    field; an application error arrives with its code and message;
 *  - Echo: a request with Any, Struct (every Value kind), Int64Value and a Shape,
 *    checked field by field by the server;
 *  - ListVertices (server streaming), UploadPoints (client streaming, close_and_recv;
 *    what arrived is read back through GetHTTPStatus), Chat (bidirectional);
 *  - Keywords.Return through its `return_` handler member, Keywords.Int (bidi) through
 *    `int_`; the service without methods registers (0); a NULL handler (ShapeStore.Now,
 *    Keywords.Switch) is ARPC_ENOMETHOD; the c_package service (renamed.pkg) answers
 *    under its .proto name "arpc.test.cpkg.Pinger/Send";
 *  - every file each generated service embeds (its own and all its imports) is exactly
 *    what `protoc --descriptor_set_out` writes for it (protoc leaves out
 *    source_code_info there too), and reflection over the same connection lists the
 *    services and answers file_containing_symbol with those very bytes.
 */
#include <grpc/reflection/v1/reflection.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_fd.h"
#include "gen_service.h"
#include "pb_fixture.h"
#include "test.h"

#define TIMEOUT_MS PB_TIMEOUT_MS
#define FAIL(...)  test_fail(__FILE__, __LINE__, __VA_ARGS__)

static pb_fixture fx;
/* fx's, copied once it is up: what the tests use. */
static bool grpc;
static arpc_runtime *srv_rt;
static arpc_channel *ch;

static gen_point mkpoint(int32_t x, int32_t y)
{
    gen_point p = ARPC__TEST__COMMON__POINT__INIT;
    p.x = x;
    p.y = y;
    return p;
}

/* ---- unary ---------------------------------------------------------------------------- */

static void test_get_shape_sync(void)
{
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    /* Every case of the oneof, and (0, 0): a Point with no field set on the wire. */
    for (int32_t x = 0; x < 6; x++) {
        gen_point req = mkpoint(x * 7, x == 0 ? 0 : 100 - x);
        gen_shape *rsp = NULL;
        ASSERT_OK(SS(get_shape)(ch, &req, &o, &rsp));
        const char *bad = gen_check_shape(rsp, req.x, req.y);
        if (bad != NULL)
            FAIL("GetShape(%d, %d): %s", req.x, req.y, bad);
        arpc__test__common__shape__free_unpacked(rsp, NULL);
    }
    /* Into an arena. */
    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));
    o = pb_call_opts(arena, NULL);
    gen_point req = mkpoint(2, 3);
    gen_shape *rsp = NULL;
    ASSERT_OK(SS(get_shape)(ch, &req, &o, &rsp));
    ASSERT_TRUE(gen_check_shape(rsp, 2, 3) == NULL);
    arpc_arena_destroy(arena);
}

static void test_application_error(void)
{
    arpc_buf *err;
    ASSERT_OK(arpc_buf_create(&err));
    arpc_call_opts o = pb_call_opts(NULL, err);
    gen_point req = mkpoint(-1, 0);
    gen_shape *rsp = NULL;
    ASSERT_EQ(SS(get_shape)(ch, &req, &o, &rsp), 9);
    ASSERT_TRUE(rsp == NULL);
    ASSERT_EQ(arpc_buf_len(err), strlen("negative x"));
    ASSERT_MEMEQ(arpc_buf_data(err), "negative x", arpc_buf_len(err));
    arpc_buf_destroy(err);
}

typedef struct coro_job {
    arpc_wg done;
    const char *bad;
    int rc;
} coro_job;

static void get_shape_in_coro(void *arg)
{
    coro_job *job = arg;
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    gen_point req = mkpoint(5, 8);
    gen_shape *rsp = NULL;
    job->rc = SS(get_shape)(ch, &req, &o, &rsp);
    if (job->rc == 0) {
        job->bad = gen_check_shape(rsp, 5, 8);
        arpc__test__common__shape__free_unpacked(rsp, NULL);
    }
    arpc_wg_done(&job->done);
}

static void run_in_coro(arpc_coro_fn fn, coro_job *job)
{
    memset(job, 0, sizeof(*job));
    pb_run_in_coro(&fx, fn, job, &job->done);
}

static void test_get_shape_in_coroutine(void)
{
    coro_job job;
    run_in_coro(get_shape_in_coro, &job);
    ASSERT_OK(job.rc);
    ASSERT_TRUE(job.bad == NULL);
}

typedef struct async_result {
    arpc_event done;
    int runs;
    int status;
    const char *bad;
    bool on_loop;
} async_result;

static void on_shape(int status, const gen_shape *rsp, void *user_data)
{
    async_result *r = user_data;
    r->status = status;
    r->on_loop = arpc_loop_current() != NULL;
    r->bad = status == 0 ? gen_check_shape(rsp, 4, 9) : "no answer";
    r->runs++;
    arpc_event_signal(&r->done);
}

static void test_get_shape_async(void)
{
    async_result r;
    memset(&r, 0, sizeof(r));
    arpc_event_init(&r.done);
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    gen_point req = mkpoint(4, 9);
    ASSERT_OK(SS(get_shape_async)(ch, &req, &o, on_shape, &r));
    ASSERT_OK(arpc_event_wait(&r.done, TIMEOUT_MS));
    ASSERT_OK(r.status);
    ASSERT_EQ(r.runs, 1);
    ASSERT_TRUE(r.on_loop);
    if (r.bad != NULL)
        FAIL("async GetShape: %s", r.bad);
}

static void test_echo_well_known_types(void)
{
    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));
    arpc_buf *err;
    ASSERT_OK(arpc_buf_create(&err));
    arpc_call_opts o = pb_call_opts(arena, err);
    gen_echo_req req = ARPC__TEST__SVC__V1__ECHO_REQUEST__INIT;
    gen_fill_echo(arena, 11, 13, &req);
    gen_echo_reply *rsp = NULL;
    int rc = SS(echo)(ch, &req, &o, &rsp);
    if (rc != 0)
        FAIL("Echo: %d %.*s", rc, (int)arpc_buf_len(err), (const char *)arpc_buf_data(err));
    ASSERT_EQ(rsp->n_parts, 2);
    ASSERT_STREQ(rsp->parts[1]->text, "checked");
    ASSERT_EQ(rsp->at->seconds, 11);
    ASSERT_EQ(rsp->at->nanos, 13);

    /* The server's checks are real: a changed nested field is named back. */
    req.shape->points_by_id[1]->value->y = 0;
    ASSERT_EQ(SS(echo)(ch, &req, &o, &rsp), 3);
    ASSERT_EQ(arpc_buf_len(err), strlen("mismatch: points_by_id entries"));
    ASSERT_MEMEQ(arpc_buf_data(err), "mismatch: points_by_id entries", arpc_buf_len(err));
    arpc_buf_destroy(err);
    arpc_arena_destroy(arena);
}

/* ---- streams -------------------------------------------------------------------------- */

static int list_vertices_round_trip(void)
{
    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));
    gen_shape shape = ARPC__TEST__COMMON__SHAPE__INIT;
    gen_fill_shape(arena, 20, 30, &shape);
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_stream *st;
    ASSERT_OK(SS(list_vertices_open)(ch, &shape, &o, &st));
    gen_vertex *v;
    size_t n = 0;
    int rc;
    while ((rc = SS(list_vertices_read)(st, arena, &v)) == 0) {
        ASSERT_LT(n, shape.n_vertices);
        ASSERT_EQ(v->at->x, 20 + (int32_t)n);
        ASSERT_EQ(v->at->y, 30 - (int32_t)n);
        ASSERT_EQ(v->kind, shape.vertices[n]->kind);
        n++;
    }
    ASSERT_ERR(rc, ARPC_EEOS);
    ASSERT_EQ(n, 3);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    arpc_arena_destroy(arena);
    return 0;
}

static int upload_points_round_trip(int32_t count)
{
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_stream *st;
    ASSERT_OK(SS(upload_points_open)(ch, &o, &st));
    int32_t sum = 0;
    for (int32_t i = 1; i <= count; i++) {
        gen_point p = mkpoint(i, 2 * i);
        sum += 3 * i;
        ASSERT_OK(SS(upload_points_write)(st, &p));
    }
    Google__Protobuf__Empty *empty = NULL;
    ASSERT_OK(SS(upload_points_close_and_recv)(st, NULL, NULL, &empty));
    ASSERT_TRUE(empty != NULL);
    google__protobuf__empty__free_unpacked(empty, NULL);
    arpc_stream_destroy(st);

    Google__Protobuf__Empty none = GOOGLE__PROTOBUF__EMPTY__INIT;
    Google__Protobuf__Int32Value *got = NULL;
    ASSERT_OK(SS(get_httpstatus)(ch, &none, &o, &got));
    ASSERT_EQ(got->value, sum);
    google__protobuf__int32_value__free_unpacked(got, NULL);
    return 0;
}

static int chat_round_trip(void)
{
    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_stream *st;
    ASSERT_OK(SS(chat_open)(ch, &o, &st));
    for (int32_t i = 0; i < 4; i++) {
        gen_echo_req req = ARPC__TEST__SVC__V1__ECHO_REQUEST__INIT;
        char text[16];
        snprintf(text, sizeof(text), "hello %d", i);
        req.text = text;
        gen_shape shape = ARPC__TEST__COMMON__SHAPE__INIT;
        if (i % 2 == 1) {
            gen_fill_shape(arena, i, i, &shape);
            req.shape = &shape;
        }
        ASSERT_OK(SS(chat_write)(st, &req));
        gen_echo_reply *rsp;
        ASSERT_OK(SS(chat_read)(st, arena, &rsp));
        ASSERT_EQ(rsp->n_parts, 2);
        ASSERT_STREQ(rsp->parts[0]->text, text);
        ASSERT_STREQ(rsp->parts[1]->text, i % 2 == 1 ? shape.name : "");
        ASSERT_EQ(rsp->at->seconds, i);
    }
    ASSERT_OK(arpc_stream_close_send(st));
    gen_echo_reply *rsp;
    ASSERT_ERR(SS(chat_read)(st, arena, &rsp), ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    arpc_arena_destroy(arena);
    return 0;
}

static void streams_in_coro(void *arg)
{
    coro_job *job = arg;
    job->rc = list_vertices_round_trip() || upload_points_round_trip(50) || chat_round_trip();
    arpc_wg_done(&job->done);
}

static void test_streams(void)
{
    ASSERT_OK(list_vertices_round_trip());
    ASSERT_OK(upload_points_round_trip(10));
    ASSERT_OK(upload_points_round_trip(0));
    ASSERT_OK(chat_round_trip());
    coro_job job;
    run_in_coro(streams_in_coro, &job);
    ASSERT_OK(job.rc);
}

/* ---- keywords, no methods, no handler, c_package ------------------------------------- */

static void test_keywords(void)
{
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    gen_echo_req req = ARPC__TEST__SVC__V1__ECHO_REQUEST__INIT;
    req.text = "kw";
    gen_echo_reply *rsp = NULL;
    ASSERT_OK(KW(return )(ch, &req, &o, &rsp));
    ASSERT_EQ(rsp->n_parts, 1);
    ASSERT_STREQ(rsp->parts[0]->text, "return:kw");
    arpc__test__svc__v1__echo_reply__free_unpacked(rsp, NULL);

    arpc_stream *st;
    ASSERT_OK(KW(int_open)(ch, &o, &st));
    ASSERT_OK(KW(int_write)(st, &req));
    ASSERT_OK(KW(int_read)(st, NULL, &rsp));
    ASSERT_STREQ(rsp->parts[0]->text, "int:kw");
    arpc__test__svc__v1__echo_reply__free_unpacked(rsp, NULL);
    ASSERT_OK(arpc_stream_close_send(st));
    ASSERT_ERR(KW(int_read)(st, NULL, &rsp), ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
}

static void test_no_handler(void)
{
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    Google__Protobuf__Empty none = GOOGLE__PROTOBUF__EMPTY__INIT;
    Google__Protobuf__Timestamp *now = (Google__Protobuf__Timestamp *)&none;
    ASSERT_ERR(SS(now)(ch, &none, &o, &now), ARPC_ENOMETHOD);
    ASSERT_TRUE(now == NULL);

    arpc_stream *st;
    ASSERT_OK(KW(switch_open)(ch, &o, &st));
    gen_echo_req req = ARPC__TEST__SVC__V1__ECHO_REQUEST__INIT;
    (void)KW(switch_write)(st, &req); /* may already see the refusal */
    gen_echo_reply *rsp = NULL;
    ASSERT_ERR(KW(switch_close_and_recv)(st, NULL, NULL, &rsp), ARPC_ENOMETHOD);
    ASSERT_TRUE(rsp == NULL);
    arpc_stream_destroy(st);
}

static void test_nothing_registers(void)
{
    arpc_server *other;
    ASSERT_OK(arpc_server_create(srv_rt, NULL, &other));
    arpc__test__svc__v1__nothing__arpc_handlers none = {0};
    ASSERT_OK(arpc__test__svc__v1__nothing__arpc_register(other, &none, NULL));
    ASSERT_EQ(arpc__test__svc__v1__nothing__arpc_service.method_count, 0);
    ASSERT_STREQ(arpc__test__svc__v1__nothing__arpc_service.name, "arpc.test.svc.v1.Nothing");
    ASSERT_ERR(arpc__test__svc__v1__nothing__arpc_register(other, NULL, NULL), ARPC_EINVAL);
    arpc_server_destroy(other);
}

static void test_c_package(void)
{
    ASSERT_STREQ(RENAMED__PKG__PINGER__ARPC_SEND_METHOD, "arpc.test.cpkg.Pinger/Send");
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    Renamed__Pkg__Ping req = RENAMED__PKG__PING__INIT, *rsp = NULL;
    req.has_seq = 1;
    req.seq = 41;
    ASSERT_OK(renamed__pkg__pinger__arpc_send(ch, &req, &o, &rsp));
    ASSERT_TRUE(rsp->has_seq);
    ASSERT_EQ(rsp->seq, 42);
    renamed__pkg__ping__free_unpacked(rsp, NULL);
}

/* ---- descriptors and reflection ------------------------------------------------------ */

/* protoc's bytes for `name` (gen_fd.h, written at build time), or fails. */
static const gen_fd *expected_fd(const char *name)
{
    for (size_t i = 0; i < gen_fd_count; i++)
        if (strcmp(gen_fds[i].name, name) == 0)
            return &gen_fds[i];
    FAIL("no protoc descriptor for %s", name);
    return NULL;
}

/* Walks `f` and its imports; each must equal protoc's serialization.  Returns how many
 * distinct files were seen (`seen` holds their names). */
static size_t check_files(const arpc_pb_file *f, const char **seen, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(seen[i], f->name) == 0)
            return n;
    const gen_fd *want = expected_fd(f->name);
    if (f->descriptor_len != want->len || memcmp(f->descriptor, want->bytes, want->len) != 0)
        FAIL("%s: the embedded descriptor (%zu bytes) is not protoc's (%zu)", f->name,
             f->descriptor_len, want->len);
    ASSERT_LT(n, 32);
    seen[n++] = f->name;
    for (size_t i = 0; i < f->dep_count; i++)
        n = check_files(f->deps[i], seen, n);
    return n;
}

static void test_embedded_descriptors(void)
{
    const char *seen[32];
    size_t n = check_files(arpc__test__svc__v1__shape_store__arpc_service.file, seen, 0);
    /* all.proto, types.proto and the six well-known files they import. */
    ASSERT_EQ(n, 8);
    ASSERT_STREQ(seen[0], "arpc/test/svc/all.proto");
    n = check_files(renamed__pkg__pinger__arpc_service.file, seen, 0);
    ASSERT_EQ(n, 3); /* renamed.proto, protobuf-c.proto, descriptor.proto */
    ASSERT_TRUE(arpc__test__svc__v1__keywords__arpc_service.file ==
                arpc__test__svc__v1__shape_store__arpc_service.file);
}

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_answer;

static refl_answer *reflect(arpc_stream *st, refl_request *req)
{
    uint8_t buf[512];
    size_t len = grpc__reflection__v1__server_reflection_request__get_packed_size(req);
    ASSERT_LE(len, sizeof(buf));
    grpc__reflection__v1__server_reflection_request__pack(req, buf);
    ASSERT_OK(arpc_stream_write(st, buf, len));
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    ASSERT_OK(arpc_stream_read(st, msg));
    refl_answer *ans = grpc__reflection__v1__server_reflection_response__unpack(
        NULL, arpc_buf_len(msg), arpc_buf_data(msg));
    arpc_buf_destroy(msg);
    ASSERT_TRUE(ans != NULL);
    return ans;
}

static bool listed(const refl_answer *ans, const char *name)
{
    for (size_t i = 0; i < ans->list_services_response->n_service; i++)
        if (strcmp(ans->list_services_response->service[i]->name, name) == 0)
            return true;
    return false;
}

static void test_reflection(void)
{
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_stream *st;
    ASSERT_OK(
        arpc_stream_open(ch, "grpc.reflection.v1.ServerReflection/ServerReflectionInfo", &o, &st));
    refl_request req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    req.list_services = "*";
    refl_answer *ans = reflect(st, &req);
    ASSERT_TRUE(ans->list_services_response != NULL);
    ASSERT_TRUE(listed(ans, "arpc.test.svc.v1.ShapeStore"));
    ASSERT_TRUE(listed(ans, "arpc.test.svc.v1.Keywords"));
    ASSERT_TRUE(listed(ans, "arpc.test.svc.v1.Nothing"));
    ASSERT_TRUE(listed(ans, "arpc.test.cpkg.Pinger"));
    grpc__reflection__v1__server_reflection_response__free_unpacked(ans, NULL);

    static const char *const symbols[] = {"arpc.test.svc.v1.ShapeStore.ListVertices",
                                          "arpc.test.common.Shape.Vertex.Kind"};
    static const char *const first[] = {"arpc/test/svc/all.proto", "arpc/test/common/types.proto"};
    for (size_t s = 0; s < 2; s++) {
        req.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
        req.file_containing_symbol = (char *)symbols[s];
        ans = reflect(st, &req);
        const Grpc__Reflection__V1__FileDescriptorResponse *fr = ans->file_descriptor_response;
        ASSERT_TRUE(fr != NULL);
        ASSERT_EQ(fr->n_file_descriptor_proto, s == 0 ? 8 : 3); /* types: + timestamp, duration */
        for (size_t i = 0; i < fr->n_file_descriptor_proto; i++) {
            /* Each file is protoc's bytes: find which by content. */
            bool found = false;
            for (size_t k = 0; k < gen_fd_count && !found; k++)
                found = gen_fds[k].len == fr->file_descriptor_proto[i].len &&
                        memcmp(gen_fds[k].bytes, fr->file_descriptor_proto[i].data,
                               gen_fds[k].len) == 0;
            ASSERT_TRUE(found);
        }
        const gen_fd *want = expected_fd(first[s]);
        ASSERT_EQ(fr->file_descriptor_proto[0].len, want->len);
        ASSERT_MEMEQ(fr->file_descriptor_proto[0].data, want->bytes, want->len);
        grpc__reflection__v1__server_reflection_response__free_unpacked(ans, NULL);
    }
    ASSERT_OK(arpc_stream_close_send(st));
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
}

/* ---- set-up --------------------------------------------------------------------------- */

static void register_services(arpc_server *s)
{
    ASSERT_OK(gen_register_all(s));
    ASSERT_OK(arpc_server_enable_reflection(s));
}

static void start(int argc, char **argv)
{
    pb_fixture_start(&fx, argc, argv, register_services);
    grpc = fx.grpc;
    srv_rt = fx.srv_rt;
    ch = fx.ch;
}

int main(int argc, char **argv)
{
    start(argc, argv);
    RUN_TEST(test_get_shape_sync);
    RUN_TEST(test_application_error);
    RUN_TEST(test_get_shape_in_coroutine);
    RUN_TEST(test_get_shape_async);
    RUN_TEST(test_echo_well_known_types);
    RUN_TEST(test_streams);
    RUN_TEST(test_keywords);
    RUN_TEST(test_no_handler);
    RUN_TEST(test_nothing_registers);
    RUN_TEST(test_c_package);
    RUN_TEST(test_embedded_descriptors);
    RUN_TEST(test_reflection);
    pb_fixture_stop(&fx);
    return 0;
}

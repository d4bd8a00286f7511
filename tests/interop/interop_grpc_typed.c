/*
 * Typed services against grpcio, both sides generated from the same .proto
 * (tests/codegen/proto's all.proto): arpc's C from protoc-c and protoc-gen-arpc
 * (arpc_codegen_gen, services in tests/integration/protobuf/gen_service.c), Python's from
 * protoc --python_out/--grpc_out (gen_typed_stubs.sh, grpc/typed_peer.py).
 *  - grpcio's client against the in-process arpc server: unary (every oneof case, the
 *    well-known types field by field both ways), an application error with its message,
 *    UNIMPLEMENTED for a method without a handler, metadata both ways, the remaining time
 *    of a deadline and a stream ended by its deadline, the three stream kinds, raw bytes
 *    that do not parse as the request (INVALID_ARGUMENT, the server serving on);
 *  - forward compatibility: a client from the "v2" stubs (Point and Shape with a field
 *    more) calls the v1 arpc server, whose code ignores what it does not know and keeps
 *    it where it sends the very message back;
 *  - arpc's typed client against grpcio's server (v1): every kind, the error, metadata,
 *    UNIMPLEMENTED; and against the v2 server, whose answers carry fields arpc's code does
 *    not know.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gen_service.h"
#include "interop_util.h"
#include "test.h"

#define CLIENT_TIMEOUT_MS 90000 /* python's start on a busy machine, sanitizers */
#define TIMEOUT_MS        10000
#define FAIL(...)         test_fail(__FILE__, __LINE__, __VA_ARGS__)

static arpc_runtime *rt;

static int run_cases(int port, const char *stubs, const char *const *cases)
{
    char target[64];
    interop_addr(target, sizeof(target), port);
    const char *args[16] = {"--typed", stubs};
    size_t n = 2;
    for (size_t i = 0; cases[i] != NULL; i++)
        args[n++] = cases[i];
    args[n] = NULL;
    return interop_run_client_script("typed_peer.py", target, args, CLIENT_TIMEOUT_MS);
}

static void test_grpcio_client_arpc_server(void)
{
    arpc_server *srv;
    ASSERT_OK(arpc_server_create(rt, NULL, &srv));
    ASSERT_OK(gen_register_all(srv));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    const char *v1[] = {"unary", "error", "metadata", "deadline", "streams", "malformed", NULL};
    ASSERT_EQ(run_cases(arpc_server_port(srv), TYPED_STUBS "/v1", v1), 0);
    const char *v2[] = {"v2", "unary", NULL};
    ASSERT_EQ(run_cases(arpc_server_port(srv), TYPED_STUBS "/v2", v2), 0);
    arpc_server_destroy(srv);
}

/* ---- arpc's client against grpcio's server --------------------------------------------- */

static arpc_call_opts call_opts(arpc_arena *arena, arpc_buf *error_message)
{
    arpc_call_opts o;
    arpc_call_opts_init(&o);
    o.timeout_ms = TIMEOUT_MS;
    o.arena = arena;
    o.error_message = error_message;
    return o;
}

static void call_unary(arpc_channel *ch)
{
    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));
    arpc_buf *err;
    ASSERT_OK(arpc_buf_create(&err));
    arpc_call_opts o = call_opts(arena, err);
    for (int32_t x = 0; x < 3; x++) {
        gen_point req = ARPC__TEST__COMMON__POINT__INIT;
        req.x = x + 1;
        req.y = 10 * x;
        gen_shape *rsp = NULL;
        ASSERT_OK(SS(get_shape)(ch, &req, &o, &rsp));
        const char *bad = gen_check_shape(rsp, req.x, req.y);
        if (bad != NULL)
            FAIL("GetShape(%d, %d) from grpcio: %s", req.x, req.y, bad);
    }
    gen_point neg = ARPC__TEST__COMMON__POINT__INIT;
    neg.x = -1;
    gen_shape *none = NULL;
    ASSERT_EQ(SS(get_shape)(ch, &neg, &o, &none), 9); /* FAILED_PRECONDITION */
    ASSERT_EQ(arpc_buf_len(err), strlen("negative x"));
    ASSERT_MEMEQ(arpc_buf_data(err), "negative x", arpc_buf_len(err));

    gen_echo_req req = ARPC__TEST__SVC__V1__ECHO_REQUEST__INIT;
    gen_fill_echo(arena, 11, 13, &req);
    gen_echo_reply *rsp = NULL;
    int rc = SS(echo)(ch, &req, &o, &rsp);
    if (rc != 0)
        FAIL("Echo: %d %.*s", rc, (int)arpc_buf_len(err), (const char *)arpc_buf_data(err));
    ASSERT_STREQ(rsp->parts[1]->text, "checked");
    ASSERT_EQ(rsp->at->seconds, 11);
    ASSERT_EQ(rsp->at->nanos, 13);

    Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
    Google__Protobuf__Timestamp *now = NULL;
    ASSERT_ERR(SS(now)(ch, &empty, &o, &now), ARPC_ENOMETHOD);
    arpc_buf_destroy(err);
    arpc_arena_destroy(arena);
}

static void call_metadata(arpc_channel *ch)
{
    arpc_metadata *md;
    ASSERT_OK(arpc_metadata_create(&md));
    arpc_metadata_entry in = {"x-typed-in", "val-2", 5};
    arpc_call_opts o = call_opts(NULL, NULL);
    o.metadata = &in;
    o.metadata_count = 1;
    o.response_metadata = md;
    gen_echo_req req = ARPC__TEST__SVC__V1__ECHO_REQUEST__INIT;
    req.text = "metadata";
    gen_echo_reply *rsp = NULL;
    ASSERT_OK(SS(echo)(ch, &req, &o, &rsp));
    ASSERT_STREQ(rsp->parts[1]->text, "val-2");
    arpc__test__svc__v1__echo_reply__free_unpacked(rsp, NULL);
    size_t len = 0;
    const char *v = arpc_metadata_get(md, "x-typed-out", &len);
    ASSERT_TRUE(v != NULL);
    ASSERT_EQ(len, 5);
    ASSERT_MEMEQ(v, "val-2", 5);
    arpc_metadata_destroy(md);
}

static void call_streams(arpc_channel *ch)
{
    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));
    arpc_call_opts o = call_opts(NULL, NULL);
    gen_shape shape = ARPC__TEST__COMMON__SHAPE__INIT;
    gen_fill_shape(arena, 20, 30, &shape);
    arpc_stream *st;
    ASSERT_OK(SS(list_vertices_open)(ch, &shape, &o, &st));
    gen_vertex *v;
    int n = 0, rc;
    while ((rc = SS(list_vertices_read)(st, arena, &v)) == 0) {
        ASSERT_EQ(v->at->x, 20 + n);
        ASSERT_EQ(v->at->y, 30 - n);
        n++;
    }
    ASSERT_ERR(rc, ARPC_EEOS);
    ASSERT_EQ(n, 3);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);

    ASSERT_OK(SS(upload_points_open)(ch, &o, &st));
    for (int32_t i = 1; i <= 20; i++) {
        gen_point p = ARPC__TEST__COMMON__POINT__INIT;
        p.x = i;
        p.y = -2 * i;
        ASSERT_OK(SS(upload_points_write)(st, &p));
    }
    Google__Protobuf__Empty *empty = NULL;
    ASSERT_OK(SS(upload_points_close_and_recv)(st, arena, NULL, &empty));
    arpc_stream_destroy(st);
    Google__Protobuf__Empty none = GOOGLE__PROTOBUF__EMPTY__INIT;
    Google__Protobuf__Int32Value *sum = NULL;
    ASSERT_OK(SS(get_httpstatus)(ch, &none, &o, &sum));
    ASSERT_EQ(sum->value, -210);
    google__protobuf__int32_value__free_unpacked(sum, NULL);

    ASSERT_OK(SS(chat_open)(ch, &o, &st));
    for (int32_t i = 0; i < 3; i++) {
        gen_echo_req req = ARPC__TEST__SVC__V1__ECHO_REQUEST__INIT;
        req.text = i == 1 ? "with shape" : "plain";
        req.shape = i == 1 ? &shape : NULL;
        ASSERT_OK(SS(chat_write)(st, &req));
        gen_echo_reply *rsp;
        ASSERT_OK(SS(chat_read)(st, arena, &rsp));
        ASSERT_STREQ(rsp->parts[0]->text, req.text);
        ASSERT_STREQ(rsp->parts[1]->text, i == 1 ? "shape-20-30" : "");
        ASSERT_EQ(rsp->at->seconds, i);
    }
    ASSERT_OK(arpc_stream_close_send(st));
    gen_echo_reply *rsp;
    ASSERT_ERR(SS(chat_read)(st, arena, &rsp), ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    arpc_arena_destroy(arena);
}

static void with_python_server(const char *stubs, void (*calls)(arpc_channel *))
{
    const char *args[] = {INTEROP_GRPC_SCRIPTS "/typed_peer.py", "--typed", stubs, "--serve", NULL};
    interop_proc py;
    interop_start_python(args, "typed_peer.py", &py);
    char target[64];
    interop_addr(target, sizeof(target), py.port);
    arpc_channel_opts co;
    arpc_channel_opts_init(&co);
    co.protocol = ARPC_PROTOCOL_GRPC;
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &co, &ch));
    calls(ch);
    arpc_channel_destroy(ch);
    close(py.in_fd); /* its end of input: it stops */
    py.in_fd = -1;
    ASSERT_EQ(interop_reap(&py, CLIENT_TIMEOUT_MS), 0);
}

static void v1_calls(arpc_channel *ch)
{
    call_unary(ch);
    call_metadata(ch);
    call_streams(ch);
}

/* The v2 server's Shape has v2_note and each vertex's Point a z: unknown here. */
static void v2_calls(arpc_channel *ch)
{
    gen_point req = ARPC__TEST__COMMON__POINT__INIT;
    req.x = 4;
    req.y = 5;
    arpc_call_opts o = call_opts(NULL, NULL);
    gen_shape *rsp = NULL;
    ASSERT_OK(SS(get_shape)(ch, &req, &o, &rsp));
    const char *bad = gen_check_shape(rsp, 4, 5);
    if (bad != NULL)
        FAIL("GetShape from the v2 server: %s", bad);
    /* protobuf-c kept what it did not know. */
    ASSERT_GT(rsp->base.n_unknown_fields, 0);
    ASSERT_GT(rsp->vertices[0]->at->base.n_unknown_fields, 0);
    arpc__test__common__shape__free_unpacked(rsp, NULL);
    call_streams(ch);
}

static void test_arpc_client_grpcio_server(void)
{
    with_python_server(TYPED_STUBS "/v1", v1_calls);
}

static void test_arpc_client_v2_server(void)
{
    with_python_server(TYPED_STUBS "/v2", v2_calls);
}

int main(void)
{
    interop_require_grpc();
    if (access(TYPED_STUBS "/stamp", F_OK) != 0) {
        fprintf(stderr, "skip: no typed stubs in %s (see its MISSING)\n", TYPED_STUBS);
        return INTEROP_SKIP;
    }
    arpc_runtime_opts ro;
    arpc_runtime_opts_init(&ro);
    ro.loops = 2;
    ASSERT_OK(arpc_runtime_create(&ro, &rt));
    RUN_TEST(test_grpcio_client_arpc_server);
    RUN_TEST(test_arpc_client_grpcio_server);
    RUN_TEST(test_arpc_client_v2_server);
    arpc_runtime_destroy(rt);
    return 0;
}

/*
 * Uses every kind of generated name of arpc/test/svc/all.proto with the types
 * docs/protobuf.md section 1 gives them, compiled with -Werror (codegen_compile): a
 * generated signature that drifts from the documented one fails the build here.  Only
 * compiled (an object library): running it needs the typed runtime (src/protobuf/); the
 * round trips over both protocols live with the runtime's tests.
 */
#include <string.h>

#include "arpc/test/cpkg/renamed.arpc.h"
#include "arpc/test/svc/all.arpc.h"

#define SS(name) arpc__test__svc__v1__shape_store__arpc_##name
#define KW(name) arpc__test__svc__v1__keywords__arpc_##name

int codegen_use_api(arpc_server *srv, arpc_channel *ch, arpc_arena *arena);

static int get_shape(arpc_request *req, const Arpc__Test__Common__Point *in,
                     Arpc__Test__Common__Shape *out, void *user_data)
{
    (void)user_data;
    out->name = arpc_request_arena(req) != NULL ? "from the arena" : "static";
    out->area = (double)in->x * in->y;
    return 0;
}

static int list_vertices(arpc_stream *st, const Arpc__Test__Common__Shape *in, void *user_data)
{
    Arpc__Test__Common__Shape__Vertex v = ARPC__TEST__COMMON__SHAPE__VERTEX__INIT;

    (void)user_data;
    for (size_t i = 0; i < in->n_vertices; i++) {
        int rc = SS(list_vertices_send)(st, &v);

        if (rc != 0)
            return rc;
    }
    return 0;
}

static int upload_points(arpc_stream *st, Google__Protobuf__Empty *out, void *user_data)
{
    Arpc__Test__Common__Point *p;
    int rc;

    (void)out;
    while ((rc = SS(upload_points_recv)(st, (arpc_arena *)user_data, &p)) == 0)
        ;
    return rc == ARPC_EEOS ? 0 : rc;
}

static int chat(arpc_stream *st, void *user_data)
{
    Arpc__Test__Svc__V1__EchoRequest *in;
    Arpc__Test__Svc__V1__EchoReply out = ARPC__TEST__SVC__V1__ECHO_REPLY__INIT;
    int rc = SS(chat_recv)(st, (arpc_arena *)user_data, &in);

    return rc != 0 ? rc : SS(chat_send)(st, &out);
}

static void on_echo(int status, const Arpc__Test__Svc__V1__EchoReply *rsp, void *user_data)
{
    *(int *)user_data = status == 0 && rsp != NULL ? (int)rsp->n_parts : status;
}

static int keyword_return(arpc_request *req, const Arpc__Test__Svc__V1__EchoRequest *in,
                          Arpc__Test__Svc__V1__EchoReply *out, void *user_data)
{
    (void)req;
    (void)in;
    (void)out;
    (void)user_data;
    return 0;
}

static int register_all(arpc_server *srv, arpc_arena *arena)
{
    SS(handlers) h;
    KW(handlers) k;
    arpc__test__svc__v1__nothing__arpc_handlers none;
    int rc;

    memset(&h, 0, sizeof(h));
    memset(&k, 0, sizeof(k));
    memset(&none, 0, sizeof(none));
    h.get_shape = get_shape;
    h.list_vertices = list_vertices;
    h.upload_points = upload_points;
    h.chat = chat;
    k.return_ = keyword_return;
    rc = SS(register)(srv, &h, arena);
    if (rc == 0)
        rc = KW(register)(srv, &k, NULL);
    if (rc == 0)
        rc = arpc__test__svc__v1__nothing__arpc_register(srv, &none, NULL);
    return rc;
}

static int call_all(arpc_channel *ch, arpc_arena *arena)
{
    Arpc__Test__Common__Point pt = ARPC__TEST__COMMON__POINT__INIT;
    Arpc__Test__Common__Shape *shape = NULL;
    Arpc__Test__Svc__V1__EchoRequest req = ARPC__TEST__SVC__V1__ECHO_REQUEST__INIT;
    Google__Protobuf__Empty *empty = NULL;
    Renamed__Pkg__Ping ping = RENAMED__PKG__PING__INIT, *pong = NULL;
    arpc_call_opts opts;
    arpc_stream *st = NULL;
    int count = 0;
    int rc;

    arpc_call_opts_init(&opts);
    opts.arena = arena;
    rc = SS(get_shape)(ch, &pt, &opts, &shape);
    if (rc == 0)
        rc = SS(echo_async)(ch, &req, NULL, on_echo, &count);
    if (rc == 0)
        rc = SS(upload_points_open)(ch, &opts, &st);
    if (rc == 0)
        rc = SS(upload_points_write)(st, &pt);
    if (rc == 0)
        rc = SS(upload_points_close_and_recv)(st, arena, NULL, &empty);
    if (rc == 0)
        rc = renamed__pkg__pinger__arpc_send(ch, &ping, &opts, &pong);
    return rc;
}

static int stream_all(arpc_channel *ch, arpc_arena *arena)
{
    Arpc__Test__Common__Shape shape = ARPC__TEST__COMMON__SHAPE__INIT;
    Arpc__Test__Common__Shape__Vertex *v;
    Arpc__Test__Svc__V1__EchoRequest req = ARPC__TEST__SVC__V1__ECHO_REQUEST__INIT;
    Arpc__Test__Svc__V1__EchoReply *reply;
    arpc_stream *st;
    int rc = SS(list_vertices_open)(ch, &shape, NULL, &st);

    if (rc == 0)
        rc = SS(list_vertices_read)(st, arena, &v);
    if (rc == 0)
        rc = KW(int_open)(ch, NULL, &st);
    if (rc == 0)
        rc = KW(int_write)(st, &req);
    if (rc == 0)
        rc = KW(int_read)(st, arena, &reply);
    return rc;
}

int codegen_use_api(arpc_server *srv, arpc_channel *ch, arpc_arena *arena)
{
    int rc = register_all(srv, arena);

    if (rc == 0)
        rc = call_all(ch, arena);
    if (rc == 0)
        rc = stream_all(ch, arena);
    if (strcmp(ARPC__TEST__SVC__V1__KEYWORDS__ARPC_RETURN_METHOD,
               "arpc.test.svc.v1.Keywords/Return") != 0)
        return ARPC_EINVAL;
    return rc;
}

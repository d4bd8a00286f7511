/*
 * By hand, what protoc-gen-arpc writes as tpb.arpc.c (docs/protobuf.md
 * section 1): the method and service objects and the typed wrappers.
 */
#include "tpb_glue.h"

static int invoke_sum_add(arpc_pb_fn handler, arpc_request *req, arpc_stream *st,
                          const ProtobufCMessage *in, ProtobufCMessage *out, void *user_data)
{
    (void)st;
    return ((tpb__calc__arpc_sum_add_fn)handler)(req, (const Tpb__Num *)in, (Tpb__Sum *)out,
                                                 user_data);
}

static void complete_sum_add(arpc_pb_fn cb, int status, const ProtobufCMessage *rsp,
                             void *user_data)
{
    ((tpb__calc__arpc_sum_add_cb)cb)(status, (const Tpb__Sum *)rsp, user_data);
}

static int invoke_count(arpc_pb_fn handler, arpc_request *req, arpc_stream *st,
                        const ProtobufCMessage *in, ProtobufCMessage *out, void *user_data)
{
    (void)req;
    (void)out;
    return ((tpb__calc__arpc_count_fn)handler)(st, (const Tpb__Num *)in, user_data);
}

static int invoke_total(arpc_pb_fn handler, arpc_request *req, arpc_stream *st,
                        const ProtobufCMessage *in, ProtobufCMessage *out, void *user_data)
{
    (void)req;
    (void)in;
    return ((tpb__calc__arpc_total_fn)handler)(st, (Tpb__Sum *)out, user_data);
}

static int invoke_twice(arpc_pb_fn handler, arpc_request *req, arpc_stream *st,
                        const ProtobufCMessage *in, ProtobufCMessage *out, void *user_data)
{
    (void)req;
    (void)in;
    (void)out;
    return ((tpb__calc__arpc_twice_fn)handler)(st, user_data);
}

static const arpc_pb_method methods[] = {
    {TPB__CALC__ARPC_M_SUM_ADD, ARPC_PB_UNARY, &tpb__num__descriptor, &tpb__sum__descriptor,
     invoke_sum_add, complete_sum_add},
    {TPB__CALC__ARPC_M_COUNT, ARPC_PB_SERVER_STREAM, &tpb__num__descriptor, &tpb__sum__descriptor,
     invoke_count, NULL},
    {TPB__CALC__ARPC_M_TOTAL, ARPC_PB_CLIENT_STREAM, &tpb__num__descriptor, &tpb__sum__descriptor,
     invoke_total, NULL},
    {TPB__CALC__ARPC_M_TWICE, ARPC_PB_BIDI_STREAM, &tpb__num__descriptor, &tpb__sum__descriptor,
     invoke_twice, NULL},
};

static const char *const symbols[] = {"tpb.Num",         "tpb.Sum",        "tpb.Calc",
                                      "tpb.Calc.SumAdd", "tpb.Calc.Count", "tpb.Calc.Total",
                                      "tpb.Calc.Twice"};

/* The serialized FileDescriptorProto is left out: these tests do not serve reflection. */
static const arpc_pb_file file = {
    .name = "tpb.proto",
    .descriptor = NULL,
    .descriptor_len = 0,
    .symbols = symbols,
    .symbol_count = sizeof(symbols) / sizeof(symbols[0]),
    .deps = NULL,
    .dep_count = 0,
};

const arpc_pb_service tpb__calc__arpc_service = {
    .name = "tpb.Calc",
    .methods = methods,
    .method_count = 4,
    .file = &file,
};

int tpb__calc__arpc_register(arpc_server *srv, const tpb__calc__arpc_handlers *handlers,
                             void *user_data)
{
    if (handlers == NULL)
        return ARPC_EINVAL;
    const arpc_pb_fn fns[4] = {
        (arpc_pb_fn)handlers->sum_add,
        (arpc_pb_fn)handlers->count,
        (arpc_pb_fn)handlers->total,
        (arpc_pb_fn)handlers->twice,
    };
    return arpc_pb_register(srv, &tpb__calc__arpc_service, fns, user_data);
}

int tpb__calc__arpc_sum_add(arpc_channel *ch, const Tpb__Num *req, const arpc_call_opts *opts,
                            Tpb__Sum **rsp)
{
    return arpc_pb_call(ch, &methods[0], &req->base, opts, (ProtobufCMessage **)rsp);
}

int tpb__calc__arpc_sum_add_async(arpc_channel *ch, const Tpb__Num *req, const arpc_call_opts *opts,
                                  tpb__calc__arpc_sum_add_cb cb, void *user_data)
{
    return arpc_pb_call_async(ch, &methods[0], &req->base, opts, (arpc_pb_fn)cb, user_data);
}

int tpb__calc__arpc_count_open(arpc_channel *ch, const Tpb__Num *req, const arpc_call_opts *opts,
                               arpc_stream **st)
{
    return arpc_pb_stream_open(ch, &methods[1], &req->base, opts, st);
}

int tpb__calc__arpc_count_read(arpc_stream *st, arpc_arena *arena, Tpb__Sum **msg)
{
    return arpc_pb_stream_read(st, &tpb__sum__descriptor, arena, (ProtobufCMessage **)msg);
}

int tpb__calc__arpc_count_send(arpc_stream *st, const Tpb__Sum *msg)
{
    return arpc_pb_stream_write(st, &msg->base);
}

int tpb__calc__arpc_total_open(arpc_channel *ch, const arpc_call_opts *opts, arpc_stream **st)
{
    return arpc_pb_stream_open(ch, &methods[2], NULL, opts, st);
}

int tpb__calc__arpc_total_write(arpc_stream *st, const Tpb__Num *msg)
{
    return arpc_pb_stream_write(st, &msg->base);
}

int tpb__calc__arpc_total_close_and_recv(arpc_stream *st, arpc_arena *arena,
                                         arpc_buf *error_message, Tpb__Sum **rsp)
{
    return arpc_pb_stream_close_and_recv(st, &tpb__sum__descriptor, arena, error_message,
                                         (ProtobufCMessage **)rsp);
}

int tpb__calc__arpc_total_recv(arpc_stream *st, arpc_arena *arena, Tpb__Num **msg)
{
    return arpc_pb_stream_read(st, &tpb__num__descriptor, arena, (ProtobufCMessage **)msg);
}

int tpb__calc__arpc_twice_open(arpc_channel *ch, const arpc_call_opts *opts, arpc_stream **st)
{
    return arpc_pb_stream_open(ch, &methods[3], NULL, opts, st);
}

int tpb__calc__arpc_twice_write(arpc_stream *st, const Tpb__Num *msg)
{
    return arpc_pb_stream_write(st, &msg->base);
}

int tpb__calc__arpc_twice_read(arpc_stream *st, arpc_arena *arena, Tpb__Sum **msg)
{
    return arpc_pb_stream_read(st, &tpb__sum__descriptor, arena, (ProtobufCMessage **)msg);
}

int tpb__calc__arpc_twice_recv(arpc_stream *st, arpc_arena *arena, Tpb__Num **msg)
{
    return arpc_pb_stream_read(st, &tpb__num__descriptor, arena, (ProtobufCMessage **)msg);
}

int tpb__calc__arpc_twice_send(arpc_stream *st, const Tpb__Sum *msg)
{
    return arpc_pb_stream_write(st, &msg->base);
}

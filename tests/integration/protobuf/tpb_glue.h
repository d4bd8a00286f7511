/*
 * By hand, what protoc-gen-arpc writes as tpb.arpc.h for tpb.proto
 * (docs/protobuf.md section 1): P = tpb__calc.
 */
#ifndef ARPC_TEST_TPB_GLUE_H
#define ARPC_TEST_TPB_GLUE_H

#include <arpc/arpc.h>
#include <arpc/protobuf.h>

#include "tpb.pb-c.h"

extern const arpc_pb_service tpb__calc__arpc_service;

#define TPB__CALC__ARPC_M_SUM_ADD "tpb.Calc/SumAdd"
#define TPB__CALC__ARPC_M_COUNT   "tpb.Calc/Count"
#define TPB__CALC__ARPC_M_TOTAL   "tpb.Calc/Total"
#define TPB__CALC__ARPC_M_TWICE   "tpb.Calc/Twice"

typedef int (*tpb__calc__arpc_sum_add_fn)(arpc_request *req, const Tpb__Num *in, Tpb__Sum *out,
                                          void *user_data);
typedef int (*tpb__calc__arpc_count_fn)(arpc_stream *st, const Tpb__Num *in, void *user_data);
typedef int (*tpb__calc__arpc_total_fn)(arpc_stream *st, Tpb__Sum *out, void *user_data);
typedef int (*tpb__calc__arpc_twice_fn)(arpc_stream *st, void *user_data);

typedef struct tpb__calc__arpc_handlers {
    tpb__calc__arpc_sum_add_fn sum_add;
    tpb__calc__arpc_count_fn count;
    tpb__calc__arpc_total_fn total;
    tpb__calc__arpc_twice_fn twice;
} tpb__calc__arpc_handlers;

int tpb__calc__arpc_register(arpc_server *srv, const tpb__calc__arpc_handlers *handlers,
                             void *user_data);

/* unary */
int tpb__calc__arpc_sum_add(arpc_channel *ch, const Tpb__Num *req, const arpc_call_opts *opts,
                            Tpb__Sum **rsp);
typedef void (*tpb__calc__arpc_sum_add_cb)(int status, const Tpb__Sum *rsp, void *user_data);
int tpb__calc__arpc_sum_add_async(arpc_channel *ch, const Tpb__Num *req, const arpc_call_opts *opts,
                                  tpb__calc__arpc_sum_add_cb cb, void *user_data);

/* server streaming */
int tpb__calc__arpc_count_open(arpc_channel *ch, const Tpb__Num *req, const arpc_call_opts *opts,
                               arpc_stream **st);
int tpb__calc__arpc_count_read(arpc_stream *st, arpc_arena *arena, Tpb__Sum **msg);
int tpb__calc__arpc_count_send(arpc_stream *st, const Tpb__Sum *msg);

/* client streaming */
int tpb__calc__arpc_total_open(arpc_channel *ch, const arpc_call_opts *opts, arpc_stream **st);
int tpb__calc__arpc_total_write(arpc_stream *st, const Tpb__Num *msg);
int tpb__calc__arpc_total_close_and_recv(arpc_stream *st, arpc_arena *arena,
                                         arpc_buf *error_message, Tpb__Sum **rsp);
int tpb__calc__arpc_total_recv(arpc_stream *st, arpc_arena *arena, Tpb__Num **msg);

/* bidirectional */
int tpb__calc__arpc_twice_open(arpc_channel *ch, const arpc_call_opts *opts, arpc_stream **st);
int tpb__calc__arpc_twice_write(arpc_stream *st, const Tpb__Num *msg);
int tpb__calc__arpc_twice_read(arpc_stream *st, arpc_arena *arena, Tpb__Sum **msg);
int tpb__calc__arpc_twice_recv(arpc_stream *st, arpc_arena *arena, Tpb__Num **msg);
int tpb__calc__arpc_twice_send(arpc_stream *st, const Tpb__Sum *msg);

#endif

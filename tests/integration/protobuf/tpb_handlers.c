/* tpb_handlers.c: see tpb_handlers.h. */
#include "tpb_handlers.h"

int tpb_handle_count(arpc_stream *st, const Tpb__Num *in, void *user_data)
{
    for (int64_t v = in->a; v <= in->b; v++) {
        Tpb__Sum msg = TPB__SUM__INIT;
        msg.value = v;
        int rc = tpb__calc__arpc_count_send(st, &msg);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int tpb_handle_total(arpc_stream *st, Tpb__Sum *out, void *user_data)
{
    arpc_arena *arena = arpc_request_arena(arpc_stream_request(st));
    Tpb__Num *msg;
    int rc;
    while ((rc = tpb__calc__arpc_total_recv(st, arena, &msg)) == 0)
        out->value += msg->a;
    return rc == ARPC_EEOS ? 0 : rc;
}

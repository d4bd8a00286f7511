/*
 * Handlers of tpb.Calc's streaming methods that test_pb_calls and the fault test
 * test_pb_alloc_failure serve alike (in arpc_test_tpb).
 */
#ifndef ARPC_TESTS_TPB_HANDLERS_H
#define ARPC_TESTS_TPB_HANDLERS_H

#include "tpb_glue.h"

/* Count: sends a Sum for every value from in->a to in->b.
 * @return 0, or the first failed send's error. */
int tpb_handle_count(arpc_stream *st, const Tpb__Num *in, void *user_data);

/* Total: the sum of the a of every Num received, unpacked into the request's arena.
 * @return 0 at the end of the stream, or the failed receive's error. */
int tpb_handle_total(arpc_stream *st, Tpb__Sum *out, void *user_data);

#endif

/*
 * The calc service: what the server (calc_server.c) and the clients
 * (calc_client.c, calc_client.py) of the demo agree on.  The messages and the
 * service are in calc.proto; protoc-c and protoc-gen-arpc turn it into
 * calc.pb-c.h and calc.arpc.h at build time (docs/protobuf.md), which give
 * the typed handler table the server fills and the typed calls the client
 * makes, named after the .proto: calc__calc__arpc_sum_add() calls
 * calc.Calc/SumAdd with a Calc__Pair and answers a Calc__Number.
 */
#ifndef CALC_H
#define CALC_H

#include <arpc/arpc.h>

#include "calc.arpc.h"

/* How long calc.Calc/SlowSquare takes.  Its handler sleeps in its coroutine,
 * so the server's loop keeps serving other requests meanwhile. */
#define CALC_SLOW_MS 300

/* calc.Calc/Fib computes naively (exponential time) on purpose: it is CPU
 * work, which the handler hands to the runtime's worker threads. */
#define CALC_FIB_MAX 40

/* calc.Calc/Squares streams at most this many answers. */
#define CALC_SQUARES_MAX 1000

/* Application error codes: the client's call returns them as they are.  They
 * are gRPC status codes, so a gRPC client (calc_client.py) sees them by
 * their names. */
typedef enum calc_error {
    CALC_ERR_BAD_REQUEST = 3,  /* INVALID_ARGUMENT: a value out of range */
    CALC_ERR_DIV_BY_ZERO = 9,  /* FAILED_PRECONDITION */
    CALC_ERR_OVERFLOW = 11     /* OUT_OF_RANGE: the result does not fit in an int64 */
} calc_error;

/**
 * Creates a server on `rt` with every calc method and gRPC reflection,
 * listening on `address` ("127.0.0.1:0" picks a free port;
 * arpc_server_port() tells which).
 * @return 0 or a negative arpc_err.  Thread: any but a loop of `rt`.
 */
int calc_server_start(arpc_runtime *rt, const char *address, arpc_server **out);

/**
 * Runs the client half of the demo against the server at `target`
 * ("127.0.0.1:PORT"): CALC_DEMO_STEPS steps, each printing one line.
 * @return the number of steps that did not behave as expected, or -1 when
 *         the demo could not even start.
 * Thread: the main thread (it blocks).
 */
int calc_client_run(const char *target);

/* The number of steps calc_client_run() takes. */
#define CALC_DEMO_STEPS 10

#endif

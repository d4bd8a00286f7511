/*
 * The server half of the calc demo.
 *
 * The handlers are typed: each gets its request unpacked from calc.proto's
 * message and fills in its answer, which arpc packs after it returns
 * (calc.arpc.h, docs/protobuf.md).  Each request runs in its own coroutine
 * on the loop of the connection that carried it, so a handler may suspend
 * without holding up anything else:
 *  - SumAdd and Div answer at once;
 *  - SlowSquare sleeps with arpc_coro_sleep_ms(), which parks only its own
 *    coroutine: the loop goes on serving other requests;
 *  - Fib hands its CPU work to the runtime's worker threads with
 *    arpc_runtime_offload(), which also suspends only its coroutine;
 *  - Squares writes a stream of answers, each write waiting only while the
 *    client's window is full.
 * A handler answers by returning 0, or a positive application code after
 * arpc_request_set_error().  A request that is not a well-formed message
 * never reaches a handler: arpc answers it ARPC_EBADMSG.
 */
#include <stdbool.h>
#include <stdint.h>

#include "calc.h"

static int overflow(arpc_request *req)
{
    arpc_request_set_error(req, "the result does not fit in an int64");
    return CALC_ERR_OVERFLOW;
}

static int sum_add(arpc_request *req, const Calc__Pair *in, Calc__Number *out, void *user_data)
{
    (void)user_data;
    if (__builtin_add_overflow(in->a, in->b, &out->value))
        return overflow(req);
    return 0;
}

static int div_(arpc_request *req, const Calc__Pair *in, Calc__Number *out, void *user_data)
{
    (void)user_data;
    if (in->b == 0) {
        arpc_request_set_error(req, "division by zero");
        return CALC_ERR_DIV_BY_ZERO;
    }
    if (in->a == INT64_MIN && in->b == -1)
        return overflow(req);
    out->value = in->a / in->b;
    return 0;
}

static int slow_square(arpc_request *req, const Calc__Number *in, Calc__Number *out,
                       void *user_data)
{
    (void)user_data;
    /* Suspends this request's coroutine only; if the caller gives up
     * meanwhile, the answer sent afterwards is dropped by its channel. */
    arpc_coro_sleep_ms(CALC_SLOW_MS);
    if (__builtin_mul_overflow(in->value, in->value, &out->value))
        return overflow(req);
    return 0;
}

typedef struct fib_job {
    int64_t n;
    int64_t result;
} fib_job;

static int64_t fib_naive(int64_t n)
{
    return n < 2 ? n : fib_naive(n - 1) + fib_naive(n - 2);
}

/* Runs on a worker thread of the runtime, not on a loop. */
static void fib_on_worker(void *user_data)
{
    fib_job *job = user_data;
    job->result = fib_naive(job->n);
}

static int fib(arpc_request *req, const Calc__Number *in, Calc__Number *out, void *user_data)
{
    arpc_runtime *rt = user_data;
    fib_job job = {.n = in->value, .result = 0};
    if (job.n < 0 || job.n > CALC_FIB_MAX) {
        arpc_request_set_error(req, "fib: n must be between 0 and 40");
        return CALC_ERR_BAD_REQUEST;
    }
    /* The job lives on this coroutine's stack: offload returns only after
     * the worker is done with it. */
    int rc = arpc_runtime_offload(rt, fib_on_worker, &job);
    if (rc < 0)
        return rc;
    out->value = job.result;
    return 0;
}

static int squares(arpc_stream *st, const Calc__Number *in, void *user_data)
{
    (void)user_data;
    if (in->value < 1 || in->value > CALC_SQUARES_MAX) {
        arpc_request_set_error(arpc_stream_request(st), "squares: n must be between 1 and 1000");
        return CALC_ERR_BAD_REQUEST;
    }
    for (int64_t i = 1; i <= in->value; i++) {
        Calc__Number square = CALC__NUMBER__INIT;
        square.value = i * i;
        int rc = calc__calc__arpc_squares_send(st, &square);
        if (rc < 0)
            return rc; /* the client went away or canceled */
    }
    return 0;
}

int calc_server_start(arpc_runtime *rt, const char *address, arpc_server **out)
{
    static const calc__calc__arpc_handlers handlers = {
        .sum_add = sum_add,
        .div = div_,
        .slow_square = slow_square,
        .fib = fib,
        .squares = squares,
    };
    arpc_server *srv;
    int rc = arpc_server_create(rt, NULL, &srv);
    if (rc < 0)
        return rc;
    /* Every method is registered before listening: the table is then read
     * without locks.  Reflection lets tools (grpcurl, Python's
     * grpc_reflection) list the service and fetch calc.proto from it. */
    if ((rc = calc__calc__arpc_register(srv, &handlers, rt)) < 0 ||
        (rc = arpc_server_enable_reflection(srv)) < 0 ||
        (rc = arpc_server_listen(srv, address)) < 0) {
        arpc_server_destroy(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

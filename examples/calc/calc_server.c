/*
 * The server half of the calc demo.
 *
 * Each request runs in its own coroutine on the loop of the connection that
 * carried it, so a handler may suspend without holding up anything else:
 *  - calc.sumadd and calc.div answer at once;
 *  - calc.slow_square sleeps with arpc_coro_sleep_ms(), which parks only
 *    its own coroutine: the loop goes on serving other requests;
 *  - calc.fib hands its CPU work to the runtime's worker threads with
 *    arpc_runtime_offload(), which also suspends only its coroutine.
 * A handler answers by writing to arpc_request_response() and returning 0,
 * or by returning a positive application code after arpc_request_set_error().
 */
#include <stdbool.h>
#include <stdint.h>

#include "calc.h"

/* Checks the payload size; on a mismatch sets the error message. */
static bool payload_has(arpc_request *req, size_t numbers)
{
    if (arpc_request_len(req) == numbers * CALC_NUM_SIZE)
        return true;
    arpc_request_set_error(req, numbers == 2 ? "expected two little-endian int64 (16 bytes)"
                                             : "expected one little-endian int64 (8 bytes)");
    return false;
}

static int64_t arg(arpc_request *req, size_t index)
{
    const unsigned char *p = arpc_request_data(req);
    return calc_get_i64(p + index * CALC_NUM_SIZE);
}

static int answer(arpc_request *req, int64_t value)
{
    unsigned char out[CALC_NUM_SIZE];
    calc_put_i64(out, value);
    /* 0, or ARPC_ENOMEM which reaches the client as is. */
    return arpc_buf_append(arpc_request_response(req), out, sizeof(out));
}

static int overflow(arpc_request *req)
{
    arpc_request_set_error(req, "the result does not fit in an int64");
    return CALC_ERR_OVERFLOW;
}

static int handle_sumadd(arpc_request *req, void *user_data)
{
    if (!payload_has(req, 2))
        return CALC_ERR_BAD_REQUEST;
    int64_t sum;
    if (__builtin_add_overflow(arg(req, 0), arg(req, 1), &sum))
        return overflow(req);
    return answer(req, sum);
}

static int handle_div(arpc_request *req, void *user_data)
{
    if (!payload_has(req, 2))
        return CALC_ERR_BAD_REQUEST;
    int64_t a = arg(req, 0);
    int64_t b = arg(req, 1);
    if (b == 0) {
        arpc_request_set_error(req, "division by zero");
        return CALC_ERR_DIV_BY_ZERO;
    }
    if (a == INT64_MIN && b == -1)
        return overflow(req);
    return answer(req, a / b);
}

static int handle_slow_square(arpc_request *req, void *user_data)
{
    if (!payload_has(req, 1))
        return CALC_ERR_BAD_REQUEST;
    int64_t x = arg(req, 0);
    /* Suspends this request's coroutine only; if the caller gives up
     * meanwhile, the answer sent afterwards is dropped by its channel. */
    arpc_coro_sleep_ms(CALC_SLOW_MS);
    int64_t square;
    if (__builtin_mul_overflow(x, x, &square))
        return overflow(req);
    return answer(req, square);
}

typedef struct fib_job {
    int64_t n;
    int64_t result;
} fib_job;

static int64_t fib(int64_t n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/* Runs on a worker thread of the runtime, not on a loop. */
static void fib_on_worker(void *user_data)
{
    fib_job *job = user_data;
    job->result = fib(job->n);
}

static int handle_fib(arpc_request *req, void *user_data)
{
    arpc_runtime *rt = user_data;
    if (!payload_has(req, 1))
        return CALC_ERR_BAD_REQUEST;
    fib_job job = {.n = arg(req, 0), .result = 0};
    if (job.n < 0 || job.n > CALC_FIB_MAX) {
        arpc_request_set_error(req, "fib: n must be between 0 and 40");
        return CALC_ERR_BAD_REQUEST;
    }
    /* The job lives on this coroutine's stack: offload returns only after
     * the worker is done with it. */
    int rc = arpc_runtime_offload(rt, fib_on_worker, &job);
    if (rc < 0)
        return rc;
    return answer(req, job.result);
}

int calc_server_start(arpc_runtime *rt, const char *address, arpc_server **out)
{
    arpc_server *srv;
    int rc = arpc_server_create(rt, NULL, &srv);
    if (rc < 0)
        return rc;
    /* Every method is registered before listening: the table is then read
     * without locks. */
    if ((rc = arpc_server_register(srv, CALC_SUMADD, handle_sumadd, NULL)) < 0 ||
        (rc = arpc_server_register(srv, CALC_DIV, handle_div, NULL)) < 0 ||
        (rc = arpc_server_register(srv, CALC_SLOW_SQUARE, handle_slow_square, NULL)) < 0 ||
        (rc = arpc_server_register(srv, CALC_FIB, handle_fib, rt)) < 0 ||
        (rc = arpc_server_listen(srv, address)) < 0) {
        arpc_server_destroy(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

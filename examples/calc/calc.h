/*
 * The calc service: what the server (calc_server.c) and the client
 * (calc_client.c) of the demo agree on.
 *
 * Wire encoding of the payloads (arpc itself carries opaque bytes):
 *  - every number is a signed 64-bit integer, 8 bytes, little-endian
 *    (least significant byte first), whatever the host's byte order;
 *  - calc.sumadd and calc.div take two numbers (16 bytes: a, then b);
 *  - calc.slow_square and calc.fib take one number (8 bytes);
 *  - a successful answer is one number (8 bytes);
 *  - an application error is a positive code from `calc_error` below, and
 *    the answer is then a short human-readable message (not NUL-terminated).
 */
#ifndef CALC_H
#define CALC_H

#include <stddef.h>
#include <stdint.h>

#include <arpc/arpc.h>

#define CALC_SUMADD      "calc.sumadd"      /* (a, b) -> a + b */
#define CALC_DIV         "calc.div"         /* (a, b) -> a / b, rounded towards zero */
#define CALC_SLOW_SQUARE "calc.slow_square" /* (x) -> x * x, after CALC_SLOW_MS */
#define CALC_FIB         "calc.fib"         /* (n) -> fib(n), 0 <= n <= CALC_FIB_MAX */

/* How long calc.slow_square takes.  Its handler sleeps in its coroutine, so
 * the server's loop keeps serving other requests meanwhile. */
#define CALC_SLOW_MS 300

/* calc.fib computes naively (exponential time) on purpose: it is CPU work,
 * which the handler hands to the runtime's worker threads. */
#define CALC_FIB_MAX 40

#define CALC_NUM_SIZE 8

/* Application error codes: the client's call returns them as they are. */
typedef enum calc_error {
    CALC_ERR_BAD_REQUEST = 1, /* the payload has the wrong size or a value out of range */
    CALC_ERR_DIV_BY_ZERO = 2,
    CALC_ERR_OVERFLOW = 3 /* the result does not fit in an int64 */
} calc_error;

static inline void calc_put_i64(unsigned char *p, int64_t value)
{
    uint64_t u = (uint64_t)value;
    for (int i = 0; i < CALC_NUM_SIZE; i++)
        p[i] = (unsigned char)(u >> (8 * i));
}

static inline int64_t calc_get_i64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 0; i < CALC_NUM_SIZE; i++)
        u |= (uint64_t)p[i] << (8 * i);
    return (int64_t)u;
}

/**
 * Creates a server on `rt` with every calc method, listening on `address`
 * ("127.0.0.1:0" picks a free port; arpc_server_port() tells which).
 * @return 0 or a negative arpc_err.  Thread: any but a loop of `rt`.
 */
int calc_server_start(arpc_runtime *rt, const char *address, arpc_server **out);

/**
 * Runs the client half of the demo against the server at `target`
 * ("127.0.0.1:PORT"): seven steps, each printing one line.
 * @return the number of steps that did not behave as expected (0..7), or -1
 *         when the demo could not even start.
 * Thread: the main thread (it blocks).
 */
int calc_client_run(const char *target);

/* The number of steps calc_client_run() takes. */
#define CALC_DEMO_STEPS 8

#endif

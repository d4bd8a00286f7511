/*
 * The client half of the calc demo: the three call styles of arpc, then what
 * happens when things go wrong, then a fan-out, gRPC, a stream, and a Python
 * gRPC client.  Every call is typed: calc.arpc.h (generated from calc.proto)
 * gives one function per method and call style, which packs the request
 * message and unpacks the answer (docs/protobuf.md).
 *
 * The client has its own runtime (two loop threads), as a separate program
 * would.  Its channel keeps one multiplexed connection to the server, opened
 * by the first call.  Every step prints one line saying what it did; a step
 * that did not behave as expected prints FAIL and is counted.
 *
 * Step 8 opens a second channel that speaks gRPC (HTTP/2) to the same port:
 * the server tells the protocols apart by a connection's first bytes, and one
 * registration serves a method on both.  Step 9 reads a stream of answers;
 * step 10 runs calc_client.py, a grpcio client generated from the same
 * calc.proto, against the server.
 *
 * Threads: steps 1, 2, 4, 5, 6, 8, 9 and 10 run on the main thread; steps 3
 * and 7 run in coroutines on the client's loops, and the main thread waits for
 * them.  Every completion callback runs on a client loop thread.
 */
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include "calc.h"

extern char **environ;

#define CLIENT_LOOPS 2
#define CHAINS       2   /* coroutines of step 3 */
#define FAN_OUT      100 /* calls of step 7 */
#define STEP_WAIT_MS 30000

/* Step 3: one coroutine computing fib(slow_square(sumadd(a, b))). */
typedef struct chain {
    struct demo *d;
    int64_t a, b;
    int64_t sum, square, fib;
    int status; /* of the first call that failed, else 0 */
    char message[128];
    bool on_loop; /* it ran on the loop main spawned it on */
    double end_ms;
} chain;

/* Step 7: one of the fan-out calls. */
typedef struct fan_call {
    arpc_wg *wg;
    int64_t x;
    int status;
    int64_t value;
} fan_call;

typedef struct demo {
    arpc_runtime *rt;
    arpc_channel *ch;
    pthread_t main_thread;
    int step;
    int failures;

    /* step 2 */
    arpc_event async_done;
    int async_status;
    int64_t async_value;
    arpc_loop *async_loop;
    bool async_on_main;

    /* step 3 */
    arpc_loop *chain_loop;
    arpc_wg chains_done;
    chain chains[CHAINS];

    /* step 7 */
    arpc_event fan_finished;
    arpc_wg fan_wg;
    fan_call fan[FAN_OUT];
    int fan_wrong;
    int fan_first_error;
    double fan_ms;
} demo;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Prints one step's line: "[ok] 1. ..." or "[FAIL] 1. ...". */
__attribute__((format(printf, 3, 4))) static void report(demo *d, bool ok, const char *format, ...)
{
    va_list ap;
    d->step++;
    if (!ok)
        d->failures++;
    printf("%s %d. ", ok ? "[ok]  " : "[FAIL]", d->step);
    va_start(ap, format);
    vprintf(format, ap);
    va_end(ap);
    putchar('\n');
}

/* Describes a call's outcome in words; `message` is an application error's text. */
static const char *describe(int status, const char *message, char *out, size_t size)
{
    if (status == 0)
        snprintf(out, size, "success");
    else if (status > 0)
        snprintf(out, size, "code %d, \"%s\"", status, message);
    else
        snprintf(out, size, "ARPC_%s (%s)", arpc_err_name(status), arpc_strerror(status));
    return out;
}

/* The typed sync calls of calc.arpc.h, by request type. */
typedef int (*pair_call_fn)(arpc_channel *ch, const Calc__Pair *req, const arpc_call_opts *opts,
                            Calc__Number **rsp);
typedef int (*number_call_fn)(arpc_channel *ch, const Calc__Number *req,
                              const arpc_call_opts *opts, Calc__Number **rsp);

/* Copies an application error's message out of `error` ("" when none). */
static void copy_message(const arpc_buf *error, char *message, size_t message_size)
{
    size_t len = arpc_buf_len(error);
    size_t n = len < message_size - 1 ? len : message_size - 1;
    memcpy(message, arpc_buf_data(error), n);
    message[n] = '\0';
}

/* The options of one demo call: a deadline when timeout_ms > 0, the answer into
 * `arena` (NULL: the heap), and a buffer for an application error's message. */
static int call_opts(arpc_call_opts *opts, int64_t timeout_ms, arpc_arena *arena)
{
    arpc_call_opts_init(opts);
    if (timeout_ms > 0)
        opts->timeout_ms = timeout_ms;
    opts->arena = arena;
    return arpc_buf_create(&opts->error_message);
}

/* Takes a typed call's outcome `rc`: the answer's value, or the error's message;
 * frees what the call left (an answer on the heap, the message's buffer). */
static int call_done(int rc, arpc_call_opts *opts, Calc__Number *rsp, int64_t *value,
                     char *message, size_t message_size)
{
    copy_message(opts->error_message, message, message_size);
    if (rc == 0)
        *value = rsp->value;
    if (opts->arena == NULL)
        calc__number__free_unpacked(rsp, NULL);
    arpc_buf_destroy(opts->error_message);
    return rc;
}

/*
 * Calls a calc method taking a Pair and answering a Number.  Works on the main
 * thread (which blocks) and in a coroutine (which suspends): the typed call is
 * the same function for both.  The answer goes to the heap and is freed here.
 * @param value    out: the answer, written on success only.
 * @param message  out: an application error's text ("" otherwise).
 * @return 0, a positive calc_error, or a negative arpc_err.
 */
static int call2(arpc_channel *ch, pair_call_fn fn, int64_t a, int64_t b, int64_t timeout_ms,
                 int64_t *value, char *message, size_t message_size)
{
    Calc__Pair req = CALC__PAIR__INIT;
    req.a = a;
    req.b = b;
    arpc_call_opts opts;
    int rc = call_opts(&opts, timeout_ms, NULL);
    if (rc < 0)
        return rc;
    Calc__Number *rsp = NULL;
    rc = fn(ch, &req, &opts, &rsp);
    return call_done(rc, &opts, rsp, value, message, message_size);
}

/* As call2, for the methods that take one Number; the answer is unpacked into
 * `arena` when given (freed by its reset). */
static int call1(arpc_channel *ch, number_call_fn fn, int64_t x, int64_t timeout_ms,
                 arpc_arena *arena, int64_t *value, char *message, size_t message_size)
{
    Calc__Number req = CALC__NUMBER__INIT;
    req.value = x;
    arpc_call_opts opts;
    int rc = call_opts(&opts, timeout_ms, arena);
    if (rc < 0)
        return rc;
    Calc__Number *rsp = NULL;
    rc = fn(ch, &req, &opts, &rsp);
    return call_done(rc, &opts, rsp, value, message, message_size);
}

/* ---- 1. synchronous call from a plain thread ------------------------------ */

static void step_sync(demo *d)
{
    char msg[128];
    char why[256];
    int64_t sum = 0;
    double start = now_ms();
    int rc = call2(d->ch, calc__calc__arpc_sum_add, 10, 20, 0, &sum, msg, sizeof(msg));
    double took = now_ms() - start;
    if (rc != 0) {
        report(d, false, "sync call: sumadd(10, 20) failed: %s",
               describe(rc, msg, why, sizeof(why)));
        return;
    }
    report(d, sum == 30,
           "sync call: sumadd(10, 20) = %lld (took %.1f ms, connecting included; "
           "main waited for it)",
           (long long)sum, took);
}

/* ---- 2. asynchronous call with a completion callback ---------------------- */

/* Runs on a client loop thread, once, after arpc_call_async() has returned. */
static void on_async_done(int status, const Calc__Number *rsp, void *user_data)
{
    demo *d = user_data;
    d->async_status = status;
    if (status == 0)
        d->async_value = rsp->value; /* rsp is borrowed for the callback */
    d->async_loop = arpc_loop_current();
    d->async_on_main = pthread_equal(pthread_self(), d->main_thread);
    /* The last touch of `d` by this thread: main may go on at once. */
    arpc_event_signal(&d->async_done);
}

static int loop_index(demo *d, arpc_loop *loop)
{
    for (unsigned i = 0; i < arpc_runtime_loop_count(d->rt); i++) {
        if (arpc_runtime_loop(d->rt, i) == loop)
            return (int)i;
    }
    return -1;
}

static void step_async(demo *d)
{
    char why[256];
    Calc__Pair req = CALC__PAIR__INIT;
    req.a = 1;
    req.b = 2;
    arpc_event_init(&d->async_done);
    d->async_value = 0;
    double start = now_ms();
    int rc = calc__calc__arpc_sum_add_async(d->ch, &req, NULL, on_async_done, d);
    double returned = now_ms() - start;
    if (rc < 0) {
        report(d, false, "async call: arpc_call_async failed: %s",
               describe(rc, "", why, sizeof(why)));
        return;
    }
    /* Main is free to do other work here; this demo simply waits. */
    if (arpc_event_wait(&d->async_done, STEP_WAIT_MS) != 0) {
        report(d, false, "async call: the callback did not run within %d ms", STEP_WAIT_MS);
        return;
    }
    if (d->async_status != 0) {
        report(d, false, "async call: sumadd(1, 2) failed: %s",
               describe(d->async_status, "", why, sizeof(why)));
        return;
    }
    int index = loop_index(d, d->async_loop);
    report(d, d->async_value == 3 && index >= 0 && !d->async_on_main,
           "async call: calc__calc__arpc_sum_add_async() returned at once (%.2f ms);\n"
           "         later its callback got sumadd(1, 2) = %lld, on client loop thread #%d "
           "(not main)",
           returned, (long long)d->async_value, index);
}

/* ---- 3. coroutines: straight-line code that suspends, never blocks -------- */

static void chain_coro(void *arg)
{
    chain *c = arg;
    demo *d = c->d;
    c->on_loop = arpc_coro_in() && arpc_loop_current() == d->chain_loop;
    /* Each call below suspends this coroutine until its answer comes;
     * meanwhile the loop thread runs the other coroutine.  The last two
     * unpack their answers into one arena, freed at once by its reset. */
    arpc_arena *arena;
    c->status = arpc_arena_create(&arena);
    if (c->status == 0)
        c->status = call2(d->ch, calc__calc__arpc_sum_add, c->a, c->b, 0, &c->sum, c->message,
                          sizeof(c->message));
    if (c->status == 0)
        c->status = call1(d->ch, calc__calc__arpc_slow_square, c->sum, 0, arena, &c->square,
                          c->message, sizeof(c->message));
    if (c->status == 0)
        c->status = call1(d->ch, calc__calc__arpc_fib, c->square, 0, arena, &c->fib, c->message,
                          sizeof(c->message));
    arpc_arena_destroy(arena);
    c->end_ms = now_ms();
    arpc_wg_done(&d->chains_done);
}

static int64_t fib_reference(int64_t n)
{
    int64_t a = 0;
    int64_t b = 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t next = a + b;
        a = b;
        b = next;
    }
    return a;
}

static void step_coroutines(demo *d)
{
    char why[256];
    static const int64_t inputs[CHAINS][2] = {{2, 3}, {1, 3}};
    /* Both on one loop, hence one thread: their calls still overlap. */
    d->chain_loop = arpc_runtime_loop(d->rt, 0);
    arpc_wg_init(&d->chains_done, CHAINS);
    double start = now_ms();
    for (int i = 0; i < CHAINS; i++) {
        chain *c = &d->chains[i];
        memset(c, 0, sizeof(*c));
        c->d = d;
        c->a = inputs[i][0];
        c->b = inputs[i][1];
        int rc = arpc_coro_spawn(d->chain_loop, chain_coro, c);
        if (rc < 0) {
            c->status = rc;
            c->end_ms = start;
            arpc_wg_done(&d->chains_done);
        }
    }
    if (arpc_wg_wait(&d->chains_done, STEP_WAIT_MS) != 0) {
        /* A coroutine is still using `d`: tearing down now would be unsafe. */
        printf("[FAIL] 3. coroutines did not finish within %d ms; giving up\n", STEP_WAIT_MS);
        exit(EXIT_FAILURE);
    }
    double elapsed = 0;
    bool ok = true;
    for (int i = 0; i < CHAINS; i++) {
        const chain *c = &d->chains[i];
        int64_t sum = c->a + c->b;
        if (c->status != 0) {
            report(d, false, "coroutines: fib(slow_square(sumadd(%lld, %lld))) failed: %s",
                   (long long)c->a, (long long)c->b,
                   describe(c->status, c->message, why, sizeof(why)));
            return;
        }
        ok = ok && c->on_loop && c->sum == sum && c->square == sum * sum &&
             c->fib == fib_reference(sum * sum);
        if (c->end_ms - start > elapsed)
            elapsed = c->end_ms - start;
    }
    const chain *c = &d->chains[0];
    /* One after the other, the two slow calls alone would take 2 x CALC_SLOW_MS. */
    ok = ok && elapsed < 2 * CALC_SLOW_MS;
    const chain *other = &d->chains[1];
    report(d, ok,
           "coroutines: sumadd(%lld, %lld) = %lld, then slow_square(%lld) = %lld, then "
           "fib(%lld) = %lld,\n"
           "         in plain sequential code; a 2nd coroutine on the same loop thread did\n"
           "         the same for (%lld, %lld) -> %lld meanwhile: both done in %.0f ms, "
           "not 2 x %d ms",
           (long long)c->a, (long long)c->b, (long long)c->sum, (long long)c->sum,
           (long long)c->square, (long long)c->square, (long long)c->fib, (long long)other->a,
           (long long)other->b, (long long)other->fib, elapsed, CALC_SLOW_MS);
}

/* ---- 4. a deadline, and the connection survives it ------------------------ */

static void step_timeout(demo *d)
{
    char msg[128];
    char why[256];
    arpc_channel_stats before;
    arpc_channel_stats after;
    arpc_channel_get_stats(d->ch, &before);
    int64_t value = 0;
    double start = now_ms();
    int rc = call1(d->ch, calc__calc__arpc_slow_square, 7, 50, NULL, &value, msg, sizeof(msg));
    double took = now_ms() - start;
    if (rc != ARPC_ETIMEDOUT) {
        report(d, false, "timeout: slow_square(7) with a 50 ms deadline gave %s, not a timeout",
               describe(rc, msg, why, sizeof(why)));
        return;
    }
    /* Not early, and well before the server's answer (one-sided bounds). */
    bool timely = took >= 50 && took < CALC_SLOW_MS;
    int64_t sum = 0;
    rc = call2(d->ch, calc__calc__arpc_sum_add, 40, 2, 0, &sum, msg, sizeof(msg));
    arpc_channel_get_stats(d->ch, &after);
    if (rc != 0) {
        report(d, false, "timeout: the call after the timeout failed: %s",
               describe(rc, msg, why, sizeof(why)));
        return;
    }
    bool same_connection = after.reconnects == before.reconnects;
    report(d, timely && sum == 42 && same_connection,
           "timeout: slow_square(7) with a 50 ms deadline gave up after %.0f ms "
           "(ARPC_ETIMEDOUT);\n         the %s connection then answered sumadd(40, 2) = %lld",
           took, same_connection ? "same" : "(reopened!)", (long long)sum);
}

/* ---- 5. an application error ----------------------------------------------- */

static void step_app_error(demo *d)
{
    char msg[128];
    char why[256];
    int64_t quotient = 0;
    int rc = call2(d->ch, calc__calc__arpc_div, 20, 4, 0, &quotient, msg, sizeof(msg));
    if (rc != 0 || quotient != 5) {
        report(d, false, "application error: div(20, 4) should be 5 but gave %lld, %s",
               (long long)quotient, describe(rc, msg, why, sizeof(why)));
        return;
    }
    int64_t unused = 0;
    rc = call2(d->ch, calc__calc__arpc_div, 7, 0, 0, &unused, msg, sizeof(msg));
    report(d, rc == CALC_ERR_DIV_BY_ZERO && strcmp(msg, "division by zero") == 0,
           "application error: div(20, 4) = 5, but div(7, 0) returned %s",
           describe(rc, msg, why, sizeof(why)));
}

/* ---- 6. a method the server does not have ---------------------------------- */

static void step_unknown_method(demo *d)
{
    char why[256];
    /* calc.proto has no Sqrt, so there is no typed call for it: the untyped
     * arpc_call() sends any name (and any bytes: here a Number holding 16). */
    static const unsigned char sixteen[] = {0x08, 0x10};
    int rc = arpc_call(d->ch, "calc.Calc/Sqrt", sixteen, sizeof(sixteen), NULL, NULL);
    report(d, rc == ARPC_ENOMETHOD, "unknown method: calc.Calc/Sqrt returned %s",
           describe(rc, "", why, sizeof(why)));
}

/* ---- 7. fan-out: many calls in flight from one coroutine ------------------- */

/* Runs on a client loop thread for each fan-out call. */
static void on_fan_done(int status, const Calc__Number *rsp, void *user_data)
{
    fan_call *call = user_data;
    call->status = status;
    if (status == 0)
        call->value = rsp->value;
    arpc_wg_done(call->wg);
}

static void fan_out_coro(void *arg)
{
    demo *d = arg;
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 10000;
    arpc_wg_init(&d->fan_wg, FAN_OUT);
    double start = now_ms();
    /* Start every call first; none waits for another. */
    for (int i = 0; i < FAN_OUT; i++) {
        fan_call *call = &d->fan[i];
        Calc__Number req = CALC__NUMBER__INIT;
        call->wg = &d->fan_wg;
        call->x = i;
        call->value = -1;
        req.value = call->x;
        int rc = calc__calc__arpc_slow_square_async(d->ch, &req, &opts, on_fan_done, call);
        if (rc < 0) {
            call->status = rc; /* its callback will not run */
            arpc_wg_done(&d->fan_wg);
        }
    }
    /* Then wait for all of them: only this coroutine suspends. */
    int rc = arpc_wg_wait(&d->fan_wg, STEP_WAIT_MS);
    d->fan_ms = now_ms() - start;
    d->fan_wrong = rc == 0 ? 0 : FAN_OUT;
    d->fan_first_error = rc;
    for (int i = 0; rc == 0 && i < FAN_OUT; i++) {
        const fan_call *call = &d->fan[i];
        if (call->status != 0 || call->value != call->x * call->x) {
            if (d->fan_wrong++ == 0)
                d->fan_first_error = call->status;
        }
    }
    arpc_event_signal(&d->fan_finished);
}

static void step_fan_out(demo *d)
{
    char why[256];
    arpc_event_init(&d->fan_finished);
    int rc = arpc_runtime_spawn(d->rt, fan_out_coro, d);
    if (rc < 0) {
        report(d, false, "fan-out: could not spawn the coroutine: %s",
               describe(rc, "", why, sizeof(why)));
        return;
    }
    if (arpc_event_wait(&d->fan_finished, 2 * STEP_WAIT_MS) != 0) {
        printf("[FAIL] 7. fan-out: the coroutine did not finish; giving up\n");
        exit(EXIT_FAILURE);
    }
    if (d->fan_wrong != 0) {
        report(d, false, "fan-out: %d of %d answers missing or wrong (first error: %s)",
               d->fan_wrong, FAN_OUT, describe(d->fan_first_error, "", why, sizeof(why)));
        return;
    }
    /* Sequentially they would take FAN_OUT x CALC_SLOW_MS; overlapped, about one. */
    report(d, d->fan_ms < 10 * CALC_SLOW_MS,
           "fan-out: one coroutine started %d slow_square calls at once; all %d answers right\n"
           "         after %.0f ms in total (one after another: %d x %d ms = %d s)",
           FAN_OUT, FAN_OUT, d->fan_ms, FAN_OUT, CALC_SLOW_MS, FAN_OUT * CALC_SLOW_MS / 1000);
}

/* ---- 8. the same server, over gRPC ---------------------------------------- */

static void step_grpc(demo *d, const char *target)
{
    char msg[128];
    char why[256];
    arpc_channel_opts opts;
    arpc_channel_opts_init(&opts);
    opts.protocol = ARPC_PROTOCOL_GRPC;
    arpc_channel *grpc;
    int rc = arpc_channel_create(d->rt, target, &opts, &grpc);
    if (rc < 0) {
        report(d, false, "gRPC: no gRPC channel: %s", describe(rc, "", why, sizeof(why)));
        return;
    }
    /* calc.Calc/SumAdd goes out as the HTTP/2 path "/calc.Calc/SumAdd" (docs/grpc.md). */
    int64_t sum = 0;
    int sum_rc = call2(grpc, calc__calc__arpc_sum_add, 2, 3, 0, &sum, msg, sizeof(msg));
    if (sum_rc != 0) {
        report(d, false, "gRPC: sumadd(2, 3) failed: %s", describe(sum_rc, msg, why, sizeof(why)));
        arpc_channel_destroy(grpc);
        return;
    }
    /* Code 9 travels as grpc-status 9 (FAILED_PRECONDITION) and the message as
     * grpc-message. */
    int64_t unused = 0;
    rc = call2(grpc, calc__calc__arpc_div, 7, 0, 0, &unused, msg, sizeof(msg));
    arpc_channel_destroy(grpc);
    report(d, sum == 5 && rc == CALC_ERR_DIV_BY_ZERO && strcmp(msg, "division by zero") == 0,
           "gRPC: a channel speaking HTTP/2 to the same port got sumadd(2, 3) = %lld,\n"
           "         and div(7, 0) returned %s (grpc-status 9)",
           (long long)sum, describe(rc, msg, why, sizeof(why)));
}

/* ---- 9. a stream of answers ------------------------------------------------ */

static void step_stream(demo *d)
{
    char why[256];
    enum { N = 5 };
    Calc__Number req = CALC__NUMBER__INIT;
    req.value = N;
    arpc_stream *st;
    int rc = calc__calc__arpc_squares_open(d->ch, &req, NULL, &st);
    if (rc < 0) {
        report(d, false, "stream: squares(%d) did not open: %s", N,
               describe(rc, "", why, sizeof(why)));
        return;
    }
    /* Each answer is unpacked into the arena, reset after it is read. */
    arpc_arena *arena;
    rc = arpc_arena_create(&arena);
    int64_t got[N + 1];
    int count = 0;
    while (rc == 0) {
        Calc__Number *square;
        rc = calc__calc__arpc_squares_read(st, arena, &square);
        if (rc == 0 && count <= N)
            got[count++] = square->value;
        if (rc == 0)
            arpc_arena_reset(arena);
    }
    int end = arpc_stream_finish(st, NULL);
    arpc_stream_destroy(st);
    arpc_arena_destroy(arena);
    bool ok = rc == ARPC_EEOS && end == 0 && count == N;
    for (int i = 0; ok && i < N; i++)
        ok = got[i] == (int64_t)(i + 1) * (i + 1);
    if (!ok) {
        report(d, false, "stream: squares(%d) gave %d answers, then %s (final status %d)", N,
               count, describe(rc, "", why, sizeof(why)), end);
        return;
    }
    report(d, true,
           "stream: squares(%d) answered %lld %lld %lld %lld %lld, one message each, "
           "then the end of the stream",
           N, (long long)got[0], (long long)got[1], (long long)got[2], (long long)got[3],
           (long long)got[4]);
}

/* ---- 10. any gRPC client: Python's, generated from the same calc.proto ------ */

/* Runs `argv` with its stdout into `out` (NUL-terminated, cut at `size`).
 * @return its exit status, or -1 if it could not run or did not exit. */
static int run_capture(char *const argv[], char *out, size_t size)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    size_t len = 0;
    ssize_t n = 1;
    /* Until end of file: the client's calls carry deadlines, so it ends. */
    while (err == 0 && n > 0) {
        n = read(fds[0], out + len, size - 1 - len);
        if (n > 0)
            len += (size_t)n;
        if (len == size - 1)
            break;
    }
    close(fds[0]);
    out[len] = '\0';
    if (err != 0)
        return -1;
    int wstatus = 0;
    pid_t waited;
    do
        waited = waitpid(pid, &wstatus, 0);
    while (waited < 0 && errno == EINTR);
    return waited == pid && WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

static void step_python(demo *d, const char *target)
{
    char *argv[] = {CALC_PYTHON, "-B", CALC_PY_CLIENT, (char *)target, CALC_PY_STUBS, NULL};
    char output[1024];
    int status = run_capture(argv, output, sizeof(output));
    size_t len = strlen(output);
    if (len > 0 && output[len - 1] == '\n')
        output[len - 1] = '\0';
    report(d, status == 0, "python: a grpcio client generated from the same calc.proto%s\n%s",
           status == 0 ? "" : " failed", output);
}

/* ---- the whole client ------------------------------------------------------- */

int calc_client_run(const char *target)
{
    demo *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -1;
    d->main_thread = pthread_self();
    arpc_runtime_opts rt_opts;
    arpc_runtime_opts_init(&rt_opts);
    rt_opts.loops = CLIENT_LOOPS;
    int rc = arpc_runtime_create(&rt_opts, &d->rt);
    if (rc == 0)
        rc = arpc_channel_create(d->rt, target, NULL, &d->ch);
    if (rc < 0) {
        fprintf(stderr, "calc client: cannot start: ARPC_%s (%s)\n", arpc_err_name(rc),
                arpc_strerror(rc));
        arpc_runtime_destroy(d->rt);
        free(d);
        return -1;
    }

    step_sync(d);
    step_async(d);
    step_coroutines(d);
    step_timeout(d);
    step_app_error(d);
    step_unknown_method(d);
    step_fan_out(d);
    step_grpc(d, target);
    step_stream(d);
    step_python(d, target);

    arpc_channel_stats stats;
    arpc_channel_get_stats(d->ch, &stats);
    if (stats.late_answers > 0)
        printf("note: step 4's slow_square(7) did finish on the server later; its late answer "
               "was dropped\n");

    /* Calls still in flight would complete with ARPC_ECANCELED here; the
     * runtime goes last, once nothing uses it. */
    arpc_channel_destroy(d->ch);
    arpc_runtime_destroy(d->rt);
    int failures = d->failures + (CALC_DEMO_STEPS - d->step);
    free(d);
    return failures;
}

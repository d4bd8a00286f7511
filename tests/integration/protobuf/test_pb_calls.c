/*
 * Typed calls end to end (include/arpc/protobuf.h) over real sockets on
 * 127.0.0.1, over the protocol named by the first argument (native, grpc),
 * through glue shaped like protoc-gen-arpc's (tpb_glue.c).  Proves:
 *  - unary: a sync call from a plain thread and from a coroutine, and an
 *    async call whose callback runs once on a loop thread, get a + b; the
 *    answer lives in opts->arena when given (and survives until its reset)
 *    or on the heap (freed by the caller), or, async without an arena, is
 *    borrowed for the callback;
 *  - the handler's request arena holds what its answer points to;
 *  - server streaming, client streaming and bidirectional methods round-trip
 *    from a thread and from a coroutine;
 *  - an application error (7, "no luck") reaches opts->error_message and the
 *    status; a handler that returns ARPC_DEFERRED fails with ARPC_EINTERNAL;
 *    a method without a handler is ARPC_ENOMETHOD;
 *  - a malformed request is answered ARPC_EBADMSG (gRPC: INVALID_ARGUMENT,
 *    which arrives as 3) without running the handler; a malformed answer
 *    fails the call with ARPC_EBADMSG, sync and async; a malformed stream
 *    message fails the reader's stream with ARPC_EBADMSG, on either side;
 *  - misuse is ARPC_EINVAL: the wrong message type, the wrong kind, a
 *    service registered twice (then nothing of it is).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>
#include <arpc/protobuf.h>

#include "pb_fixture.h"
#include "test.h"
#include "tpb_glue.h"
#include "tpb_handlers.h"

#define TIMEOUT_MS PB_TIMEOUT_MS

static pb_fixture fx;
/* fx's, copied once it is up: what the tests use. */
static bool grpc;
static arpc_runtime *srv_rt;
static arpc_runtime *cli_rt;
static arpc_server *srv;
static arpc_channel *ch;
static _Atomic int sum_add_runs;

/* ---- the typed service -------------------------------------------------------------- */

static int sum_add(arpc_request *req, const Tpb__Num *in, Tpb__Sum *out, void *user_data)
{
    ASSERT_TRUE(user_data == &srv);
    atomic_fetch_add(&sum_add_runs, 1);
    if (strcmp(in->note, "fail") == 0) {
        ASSERT_OK(arpc_request_set_error(req, "no luck"));
        return 7;
    }
    if (strcmp(in->note, "defer") == 0)
        return ARPC_DEFERRED;
    out->value = in->a + in->b;
    /* What the answer points to lives in the request's arena. */
    char *note = arpc_arena_alloc(arpc_request_arena(req), 32);
    ASSERT_TRUE(note != NULL);
    snprintf(note, 32, "%lld+%lld", (long long)in->a, (long long)in->b);
    out->note = note;
    return 0;
}

static int twice(arpc_stream *st, void *user_data)
{
    Tpb__Num *msg;
    int rc;
    while ((rc = tpb__calc__arpc_twice_recv(st, NULL, &msg)) == 0) {
        Tpb__Sum out = TPB__SUM__INIT;
        out.value = 2 * msg->a;
        tpb__num__free_unpacked(msg, NULL);
        if ((rc = tpb__calc__arpc_twice_send(st, &out)) < 0)
            return rc;
    }
    return rc == ARPC_EEOS ? 0 : rc;
}

/* Untyped handlers that answer bytes no Sum parses from: field 1 as a
 * length-delimited value running past the end. */
static const uint8_t garbage[] = {0x0a, 0x7f, 0x01};

static int raw_garbage(arpc_request *req, void *user_data)
{
    return arpc_buf_append(arpc_request_response(req), garbage, sizeof(garbage));
}

static int raw_garbage_stream(arpc_stream *st, void *user_data)
{
    Tpb__Sum ok = TPB__SUM__INIT;
    ok.value = 1;
    ASSERT_OK(tpb__calc__arpc_count_send(st, &ok));
    return arpc_stream_write(st, garbage, sizeof(garbage));
}

/* A method object for those: what a client generated from the same .proto would
 * call if the server were broken. */
static const arpc_pb_method garbage_unary = {
    "tpb.Raw/SumAdd", ARPC_PB_UNARY, &tpb__num__descriptor, &tpb__sum__descriptor, NULL, NULL};
static arpc_pb_method garbage_unary_cb;
static const arpc_pb_method garbage_stream = {"tpb.Raw/Count",
                                              ARPC_PB_SERVER_STREAM,
                                              &tpb__num__descriptor,
                                              &tpb__sum__descriptor,
                                              NULL,
                                              NULL};

/* ---- helpers -------------------------------------------------------------------------- */

static Tpb__Num num(int64_t a, int64_t b, const char *note)
{
    Tpb__Num n = TPB__NUM__INIT;
    n.a = a;
    n.b = b;
    n.note = (char *)note;
    return n;
}

/* The status a malformed request gets: ARPC_EBADMSG, or over gRPC INVALID_ARGUMENT,
 * which comes back as application code 3 (docs/grpc.md 5.2). */
static int bad_request_status(void)
{
    return grpc ? 3 : ARPC_EBADMSG;
}

/* ---- unary ---------------------------------------------------------------------------- */

static void test_unary_sync_heap_and_arena(void)
{
    Tpb__Num req = num(10, 20, "");
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    Tpb__Sum *rsp = NULL;
    ASSERT_OK(tpb__calc__arpc_sum_add(ch, &req, &o, &rsp));
    ASSERT_EQ(rsp->value, 30);
    ASSERT_STREQ(rsp->note, "10+20");
    tpb__sum__free_unpacked(rsp, NULL);

    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));
    o = pb_call_opts(arena, NULL);
    Tpb__Sum *first, *second;
    ASSERT_OK(tpb__calc__arpc_sum_add(ch, &req, &o, &first));
    req.a = 1;
    ASSERT_OK(tpb__calc__arpc_sum_add(ch, &req, &o, &second));
    /* Both live in the arena until its reset. */
    ASSERT_EQ(first->value, 30);
    ASSERT_EQ(second->value, 21);
    ASSERT_STREQ(second->note, "1+20");
    arpc_arena_reset(arena);
    arpc_arena_destroy(arena);
}

typedef struct coro_job {
    arpc_wg done;
    int64_t got;
    int rc;
} coro_job;

static void unary_in_coro(void *arg)
{
    coro_job *job = arg;
    Tpb__Num req = num(40, 2, "");
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    Tpb__Sum *rsp = NULL;
    job->rc = tpb__calc__arpc_sum_add(ch, &req, &o, &rsp);
    if (job->rc == 0) {
        job->got = rsp->value;
        tpb__sum__free_unpacked(rsp, NULL);
    }
    arpc_wg_done(&job->done);
}

static void run_in_coro(arpc_coro_fn fn, coro_job *job)
{
    memset(job, 0, sizeof(*job));
    pb_run_in_coro(&fx, fn, job, &job->done);
}

static void test_unary_in_coroutine(void)
{
    coro_job job;
    run_in_coro(unary_in_coro, &job);
    ASSERT_OK(job.rc);
    ASSERT_EQ(job.got, 42);
}

typedef struct async_result {
    arpc_event done;
    _Atomic int runs;
    int status;
    int64_t value;
    char note[32];
    bool on_loop;
    const Tpb__Sum *rsp;
} async_result;

static void on_sum(int status, const Tpb__Sum *rsp, void *user_data)
{
    async_result *r = user_data;
    r->status = status;
    r->on_loop = arpc_loop_current() != NULL;
    r->rsp = rsp;
    if (rsp != NULL) {
        r->value = rsp->value;
        snprintf(r->note, sizeof(r->note), "%s", rsp->note);
    }
    atomic_fetch_add(&r->runs, 1);
    arpc_event_signal(&r->done);
}

static void async_call(const Tpb__Num *req, arpc_arena *arena, arpc_buf *err, async_result *r)
{
    memset(r, 0, sizeof(*r));
    arpc_event_init(&r->done);
    arpc_call_opts o = pb_call_opts(arena, err);
    ASSERT_OK(tpb__calc__arpc_sum_add_async(ch, req, &o, on_sum, r));
    ASSERT_OK(arpc_event_wait(&r->done, TIMEOUT_MS));
    ASSERT_EQ(atomic_load(&r->runs), 1);
    ASSERT_TRUE(r->on_loop);
}

static void test_unary_async(void)
{
    Tpb__Num req = num(5, 6, "");
    async_result r;
    async_call(&req, NULL, NULL, &r); /* borrowed for the callback */
    ASSERT_OK(r.status);
    ASSERT_EQ(r.value, 11);
    ASSERT_STREQ(r.note, "5+6");

    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));
    async_call(&req, arena, NULL, &r);
    ASSERT_OK(r.status);
    /* In the caller's arena: still readable after the callback. */
    ASSERT_EQ(r.rsp->value, 11);
    ASSERT_STREQ(r.rsp->note, "5+6");
    arpc_arena_destroy(arena);
}

/* ---- errors --------------------------------------------------------------------------- */

static void test_application_error(void)
{
    arpc_buf *err;
    ASSERT_OK(arpc_buf_create(&err));
    ASSERT_OK(arpc_buf_append(err, "stale", 5)); /* the call empties it */
    Tpb__Num req = num(1, 2, "fail");
    arpc_call_opts o = pb_call_opts(NULL, err);
    Tpb__Sum *rsp = (Tpb__Sum *)&req;
    ASSERT_EQ(tpb__calc__arpc_sum_add(ch, &req, &o, &rsp), 7);
    ASSERT_TRUE(rsp == NULL);
    ASSERT_EQ(arpc_buf_len(err), 7);
    ASSERT_MEMEQ(arpc_buf_data(err), "no luck", 7);

    async_result r;
    async_call(&req, NULL, err, &r);
    ASSERT_EQ(r.status, 7);
    ASSERT_TRUE(r.rsp == NULL);
    ASSERT_EQ(arpc_buf_len(err), 7);
    ASSERT_MEMEQ(arpc_buf_data(err), "no luck", 7);

    /* A success leaves it empty. */
    req.note = "";
    ASSERT_OK(tpb__calc__arpc_sum_add(ch, &req, &o, &rsp));
    ASSERT_EQ(arpc_buf_len(err), 0);
    tpb__sum__free_unpacked(rsp, NULL);
    arpc_buf_destroy(err);
}

static void test_deferred_is_internal(void)
{
    Tpb__Num req = num(1, 2, "defer");
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    Tpb__Sum *rsp;
    ASSERT_ERR(tpb__calc__arpc_sum_add(ch, &req, &o, &rsp), ARPC_EINTERNAL);
}

static void test_malformed_request(void)
{
    int before = atomic_load(&sum_add_runs);
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    /* Field 2 as a varint that never ends, a wrong wire type, a truncated string. */
    static const uint8_t bad[][4] = {{0x10, 0xff, 0xff, 0xff}, {0x0b, 0, 0, 0}, {0x1a, 9, 'x', 0}};
    for (size_t i = 0; i < 3; i++) {
        ASSERT_EQ(arpc_call(ch, TPB__CALC__ARPC_M_SUM_ADD, bad[i], 4, &o, rsp),
                  bad_request_status());
        arpc_buf_clear(rsp);
    }
    ASSERT_EQ(atomic_load(&sum_add_runs), before);
    arpc_buf_destroy(rsp);
}

static void test_malformed_answer(void)
{
    Tpb__Num req = num(1, 2, "");
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    Tpb__Sum *rsp = (Tpb__Sum *)&req;
    ASSERT_ERR(arpc_pb_call(ch, &garbage_unary, &req.base, &o, (ProtobufCMessage **)&rsp),
               ARPC_EBADMSG);
    ASSERT_TRUE(rsp == NULL);

    async_result r;
    memset(&r, 0, sizeof(r));
    arpc_event_init(&r.done);
    ASSERT_OK(arpc_pb_call_async(ch, &garbage_unary_cb, &req.base, &o, (arpc_pb_fn)on_sum, &r));
    ASSERT_OK(arpc_event_wait(&r.done, TIMEOUT_MS));
    ASSERT_ERR(r.status, ARPC_EBADMSG);
    ASSERT_TRUE(r.rsp == NULL);
}

static void test_no_handler(void)
{
    /* The second service object registers only SumAdd under another name. */
    Tpb__Num req = num(1, 2, "");
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_stream *st;
    ASSERT_OK(tpb__calc__arpc_count_open(ch, &req, &o, &st));
    Tpb__Sum *msg;
    ASSERT_OK(tpb__calc__arpc_count_read(st, NULL, &msg)); /* registered: works */
    tpb__sum__free_unpacked(msg, NULL);
    arpc_stream_destroy(st);

    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    ASSERT_ERR(arpc_call(ch, "tpb.Half/Count", NULL, 0, &o, rsp), ARPC_ENOMETHOD);
    arpc_buf_destroy(rsp);
}

static void test_misuse(void)
{
    Tpb__Sum wrong = TPB__SUM__INIT;
    Tpb__Sum *rsp;
    ASSERT_ERR(arpc_pb_call(ch, &tpb__calc__arpc_service.methods[0], &wrong.base, NULL,
                            (ProtobufCMessage **)&rsp),
               ARPC_EINVAL);
    Tpb__Num req = num(1, 2, "");
    ASSERT_ERR(arpc_pb_call(ch, &tpb__calc__arpc_service.methods[1], &req.base, NULL,
                            (ProtobufCMessage **)&rsp),
               ARPC_EINVAL);
    arpc_stream *st;
    ASSERT_ERR(arpc_pb_stream_open(ch, &tpb__calc__arpc_service.methods[0], &req.base, NULL, &st),
               ARPC_EINVAL);
    ASSERT_ERR(arpc_pb_stream_open(ch, &tpb__calc__arpc_service.methods[1], NULL, NULL, &st),
               ARPC_EINVAL);
    ASSERT_ERR(arpc_pb_stream_open(ch, &tpb__calc__arpc_service.methods[2], &req.base, NULL, &st),
               ARPC_EINVAL);
}

/* ---- streams -------------------------------------------------------------------------- */

static int server_stream_round_trip(void)
{
    Tpb__Num req = num(3, 7, "");
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_stream *st;
    ASSERT_OK(tpb__calc__arpc_count_open(ch, &req, &o, &st));
    arpc_arena *arena;
    ASSERT_OK(arpc_arena_create(&arena));
    Tpb__Sum *msg;
    int64_t want = 3;
    int rc;
    while ((rc = tpb__calc__arpc_count_read(st, arena, &msg)) == 0) {
        ASSERT_EQ(msg->value, want);
        want++;
        arpc_arena_reset(arena);
    }
    ASSERT_ERR(rc, ARPC_EEOS);
    ASSERT_TRUE(msg == NULL);
    ASSERT_EQ(want, 8);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    arpc_arena_destroy(arena);
    return 0;
}

static int client_stream_round_trip(void)
{
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_stream *st;
    ASSERT_OK(tpb__calc__arpc_total_open(ch, &o, &st));
    for (int64_t v = 1; v <= 10; v++) {
        Tpb__Num n = num(v, 0, "");
        ASSERT_OK(tpb__calc__arpc_total_write(st, &n));
    }
    /* One message over the stack buffer's size: the heap path of a write. */
    static char big[4000];
    memset(big, 'z', sizeof(big) - 1);
    Tpb__Num n = num(1000, 0, big);
    ASSERT_OK(tpb__calc__arpc_total_write(st, &n));
    Tpb__Sum *rsp;
    ASSERT_OK(tpb__calc__arpc_total_close_and_recv(st, NULL, NULL, &rsp));
    ASSERT_EQ(rsp->value, 1055);
    tpb__sum__free_unpacked(rsp, NULL);
    arpc_stream_destroy(st);
    return 0;
}

static int bidi_round_trip(void)
{
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_stream *st;
    ASSERT_OK(tpb__calc__arpc_twice_open(ch, &o, &st));
    for (int64_t v = 1; v <= 5; v++) {
        Tpb__Num n = num(v, 0, "");
        ASSERT_OK(tpb__calc__arpc_twice_write(st, &n));
        Tpb__Sum *msg;
        ASSERT_OK(tpb__calc__arpc_twice_read(st, NULL, &msg));
        ASSERT_EQ(msg->value, 2 * v);
        tpb__sum__free_unpacked(msg, NULL);
    }
    ASSERT_OK(arpc_stream_close_send(st));
    Tpb__Sum *msg;
    ASSERT_ERR(tpb__calc__arpc_twice_read(st, NULL, &msg), ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    return 0;
}

static void streams_in_coro(void *arg)
{
    coro_job *job = arg;
    job->rc = server_stream_round_trip() || client_stream_round_trip() || bidi_round_trip();
    arpc_wg_done(&job->done);
}

static void test_streams(void)
{
    ASSERT_OK(server_stream_round_trip());
    ASSERT_OK(client_stream_round_trip());
    ASSERT_OK(bidi_round_trip());
    coro_job job;
    run_in_coro(streams_in_coro, &job);
    ASSERT_OK(job.rc);
}

/* A server-streaming open from a loop thread outside any coroutine (a task, as an
 * async callback is): open never suspends, so its one request goes without waiting, and
 * the answers come to read callbacks. */
typedef struct loop_stream {
    arpc_stream *st;
    int64_t next;  /* the value expected next */
    int open_rc;
    int end;       /* the status the reads ended with */
    arpc_event done;
} loop_stream;

static void on_loop_read(int status, const void *data, size_t len, void *user_data)
{
    loop_stream *ls = user_data;
    Tpb__Sum *msg = status == 0 ? tpb__sum__unpack(NULL, len, data) : NULL;
    if (msg != NULL && msg->value == ls->next) {
        ls->next++;
        tpb__sum__free_unpacked(msg, NULL);
        if (arpc_stream_read_async(ls->st, on_loop_read, ls) == 0)
            return;
        status = ARPC_EINTERNAL;
    } else if (status == 0) {
        tpb__sum__free_unpacked(msg, NULL);
        status = ARPC_EBADMSG;
    }
    ls->end = status;
    arpc_event_signal(&ls->done);
}

static void open_on_loop(void *arg)
{
    loop_stream *ls = arg;
    Tpb__Num req = num(3, 7, "");
    ls->open_rc = tpb__calc__arpc_count_open(ch, &req, NULL, &ls->st);
    if (ls->open_rc == 0)
        ls->open_rc = arpc_stream_read_async(ls->st, on_loop_read, ls);
    if (ls->open_rc != 0)
        arpc_event_signal(&ls->done);
}

static void test_server_stream_opened_on_a_loop(void)
{
    loop_stream ls = {.next = 3};
    arpc_event_init(&ls.done);
    ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(cli_rt, 0), open_on_loop, &ls));
    ASSERT_EQ(arpc_event_wait(&ls.done, 10000), 0);
    ASSERT_OK(ls.open_rc);
    ASSERT_ERR(ls.end, ARPC_EEOS);
    ASSERT_EQ(ls.next, 8);
    ASSERT_OK(arpc_stream_finish(ls.st, NULL));
    arpc_stream_destroy(ls.st);
}

static void test_malformed_stream_messages(void)
{
    /* The client reads a message that does not parse: its stream fails with it. */
    Tpb__Num req = num(1, 2, "");
    arpc_call_opts o = pb_call_opts(NULL, NULL);
    arpc_stream *st;
    ASSERT_OK(arpc_pb_stream_open(ch, &garbage_stream, &req.base, &o, &st));
    ProtobufCMessage *msg;
    ASSERT_OK(arpc_pb_stream_read(st, &tpb__sum__descriptor, NULL, &msg));
    protobuf_c_message_free_unpacked(msg, NULL);
    ASSERT_ERR(arpc_pb_stream_read(st, &tpb__sum__descriptor, NULL, &msg), ARPC_EBADMSG);
    ASSERT_TRUE(msg == NULL);
    ASSERT_ERR(arpc_pb_stream_read(st, &tpb__sum__descriptor, NULL, &msg), ARPC_EBADMSG);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_EBADMSG);
    arpc_stream_destroy(st);

    /* The server's handler reads one: the stream ends with it (gRPC INVALID_ARGUMENT). */
    ASSERT_OK(tpb__calc__arpc_total_open(ch, &o, &st));
    ASSERT_OK(arpc_stream_write(st, garbage, sizeof(garbage)));
    Tpb__Sum *rsp = (Tpb__Sum *)&req;
    ASSERT_EQ(tpb__calc__arpc_total_close_and_recv(st, NULL, NULL, &rsp), bad_request_status());
    ASSERT_TRUE(rsp == NULL);
    arpc_stream_destroy(st);
}

static void test_register_rules(void)
{
    arpc_server *other;
    ASSERT_OK(arpc_server_create(srv_rt, NULL, &other));
    tpb__calc__arpc_handlers h = {.sum_add = sum_add, .count = tpb_handle_count};
    ASSERT_OK(tpb__calc__arpc_register(other, &h, &srv));
    /* Again: its methods exist, so nothing more is registered. */
    ASSERT_ERR(tpb__calc__arpc_register(other, &h, &srv), ARPC_EINVAL);
    /* A clash on a later method leaves the earlier ones of the call out too. */
    ASSERT_OK(arpc_server_register(other, TPB__CALC__ARPC_M_TWICE, raw_garbage, NULL));
    arpc_server *fresh;
    ASSERT_OK(arpc_server_create(srv_rt, NULL, &fresh));
    ASSERT_OK(arpc_server_register(fresh, TPB__CALC__ARPC_M_TOTAL, raw_garbage, NULL));
    tpb__calc__arpc_handlers all = {
        .sum_add = sum_add, .count = tpb_handle_count, .total = tpb_handle_total, .twice = twice};
    ASSERT_ERR(tpb__calc__arpc_register(fresh, &all, &srv), ARPC_EINVAL);
    /* SumAdd was not registered by the failed call: this one succeeds. */
    ASSERT_OK(arpc_server_register(fresh, TPB__CALC__ARPC_M_SUM_ADD, raw_garbage, NULL));
    ASSERT_ERR(arpc_pb_register(NULL, &tpb__calc__arpc_service, NULL, NULL), ARPC_EINVAL);
    ASSERT_ERR(tpb__calc__arpc_register(fresh, NULL, NULL), ARPC_EINVAL);
    arpc_server_destroy(fresh);
    arpc_server_destroy(other);
}

/* ---- set-up --------------------------------------------------------------------------- */

static void register_services(arpc_server *s)
{
    tpb__calc__arpc_handlers h = {
        .sum_add = sum_add, .count = tpb_handle_count, .total = tpb_handle_total, .twice = twice};
    ASSERT_OK(tpb__calc__arpc_register(s, &h, &srv));
    ASSERT_OK(arpc_server_register(s, garbage_unary.name, raw_garbage, NULL));
    ASSERT_OK(arpc_server_register_stream(s, garbage_stream.name, raw_garbage_stream, NULL));
    /* A service object with only Count bound, under another service name. */
    static arpc_pb_method half_methods[2];
    half_methods[0] = tpb__calc__arpc_service.methods[0];
    half_methods[0].name = "tpb.Half/SumAdd";
    half_methods[1] = tpb__calc__arpc_service.methods[1];
    half_methods[1].name = "tpb.Half/Count";
    static const arpc_pb_service half = {"tpb.Half", half_methods, 2, NULL};
    const arpc_pb_fn half_fns[2] = {(arpc_pb_fn)sum_add, NULL};
    ASSERT_OK(arpc_pb_register(s, &half, half_fns, &srv));
}

static void start(int argc, char **argv)
{
    pb_fixture_start(&fx, argc, argv, register_services);
    grpc = fx.grpc;
    srv_rt = fx.srv_rt;
    cli_rt = fx.cli_rt;
    srv = fx.srv;
    ch = fx.ch;
    garbage_unary_cb = garbage_unary;
    garbage_unary_cb.complete = tpb__calc__arpc_service.methods[0].complete;
}

int main(int argc, char **argv)
{
    start(argc, argv);
    RUN_TEST(test_unary_sync_heap_and_arena);
    RUN_TEST(test_unary_in_coroutine);
    RUN_TEST(test_unary_async);
    RUN_TEST(test_application_error);
    RUN_TEST(test_deferred_is_internal);
    RUN_TEST(test_malformed_request);
    RUN_TEST(test_malformed_answer);
    RUN_TEST(test_no_handler);
    RUN_TEST(test_misuse);
    RUN_TEST(test_streams);
    RUN_TEST(test_server_stream_opened_on_a_loop);
    RUN_TEST(test_malformed_stream_messages);
    RUN_TEST(test_register_rules);
    pb_fixture_stop(&fx);
    return 0;
}

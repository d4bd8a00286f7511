/*
 * Streams (include/arpc/stream.h, docs/streams.md) over the native protocol, end to end
 * over 127.0.0.1: the three kinds, flow control with a slow reader on both sides, many
 * streams at once, cancel from either side, the deadline, the async forms, plain-thread
 * and coroutine callers, unary calls to stream methods and streams to unary methods.
 * Peers that die or freeze run in child processes (this binary again, with --serve or
 * --client): test_stream_peers.c.  Every stream here is finished or destroyed, and the
 * server's handler ends are counted, so a stream that completed twice or never fails.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

#include "rpc/stream.h"
#include "rpc_fixture.h"
#include "stream_fixture.h"
#include "test.h"
#include "test_stats.h"

static arpc_runtime *server_rt;
static arpc_runtime *client_rt;
static arpc_server *server;
static arpc_channel *channel;

static void setup(void)
{
    server_rt = fx_runtime(2);
    client_rt = fx_runtime(2);
    server = sx_server(server_rt, NULL);
    channel = sx_channel(client_rt, arpc_server_port(server), NULL);
}

static void teardown(void)
{
    arpc_channel_destroy(channel);
    arpc_server_destroy(server);
    arpc_runtime_destroy(client_rt);
    arpc_runtime_destroy(server_rt);
}

/* Reads one message and checks it is `want`. */
static void read_expect(arpc_stream *st, const char *want)
{
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    ASSERT_OK(arpc_stream_read(st, msg));
    ASSERT_EQ(arpc_buf_len(msg), strlen(want));
    ASSERT_MEMEQ(arpc_buf_data(msg), want, strlen(want));
    arpc_buf_destroy(msg);
}

static void read_status(arpc_stream *st, int want)
{
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    ASSERT_ERR(arpc_stream_read(st, msg), want);
    ASSERT_EQ(arpc_buf_len(msg), 0);
    arpc_buf_destroy(msg);
}

static const char *md_value(const arpc_metadata *md, const char *key, char *buf, size_t size)
{
    size_t len = 0;
    const void *v = arpc_metadata_get(md, key, &len);
    if (v == NULL)
        return "(none)";
    snprintf(buf, size, "%.*s", (int)len, (const char *)v);
    return buf;
}

/* Bidirectional, lockstep, metadata both ways: the body shared by the plain-thread and
 * the coroutine callers. */
static void bidi_echo(int rounds)
{
    uint64_t ends = sx_handler_ends();
    arpc_metadata *rsp_md = NULL;
    ASSERT_OK(arpc_metadata_create(&rsp_md));
    arpc_metadata_entry entry = {.key = "x-client", .value = "c1", .value_len = 2};
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.metadata = &entry;
    opts.metadata_count = 1;
    opts.response_metadata = rsp_md;
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Echo", &opts, &st));
    ASSERT_TRUE(arpc_stream_request(st) == NULL);
    for (int i = 0; i < rounds; i++) {
        char text[32];
        snprintf(text, sizeof(text), "message %d", i);
        ASSERT_OK(arpc_stream_write(st, text, strlen(text)));
        read_expect(st, text);
    }
    ASSERT_OK(arpc_stream_close_send(st));
    ASSERT_ERR(arpc_stream_close_send(st), ARPC_EEOS);
    ASSERT_ERR(arpc_stream_write(st, "x", 1), ARPC_EEOS);
    read_status(st, ARPC_EEOS);
    read_status(st, ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    char buf[64];
    /* The handler echoes the client's entry ahead of its first message, and says how many
     * it read with the end. */
    ASSERT_STREQ(md_value(rsp_md, "x-echo", buf, sizeof(buf)), "c1");
    char count[16];
    snprintf(count, sizeof(count), "%d", rounds);
    ASSERT_STREQ(md_value(rsp_md, "x-count", buf, sizeof(buf)), count);
    ASSERT_STREQ(arpc_stream_error_message(st), "");
    arpc_stream_destroy(st);
    arpc_metadata_destroy(rsp_md);
    ASSERT_TRUE(sx_wait_handler_ends(ends + 1));
}

static void test_bidi_plain_thread(void)
{
    setup();
    bidi_echo(20);
    teardown();
}

typedef struct coro_job {
    arpc_wg wg;
    int rounds;
} coro_job;

static void bidi_coro(void *arg)
{
    coro_job *job = arg;
    bidi_echo(job->rounds);
    arpc_wg_done(&job->wg);
}

/* The same from coroutines on the client's loops (the streams' own loop or another). */
static void test_bidi_coroutines(void)
{
    setup();
    coro_job job = {.rounds = 50};
    arpc_wg_init(&job.wg, 4);
    for (int i = 0; i < 4; i++)
        ASSERT_OK(arpc_coro_spawn(arpc_runtime_loop(client_rt, (unsigned)i % 2), bidi_coro, &job));
    ASSERT_OK(arpc_wg_wait(&job.wg, 30000));
    teardown();
}

/* Server streaming: one request, N answers. */
static void test_server_stream(void)
{
    setup();
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Count", NULL, &st));
    ASSERT_OK(arpc_stream_write(st, "1000", 4));
    ASSERT_OK(arpc_stream_close_send(st));
    for (int i = 1; i <= 1000; i++) {
        char text[16];
        snprintf(text, sizeof(text), "%d", i);
        read_expect(st, text);
    }
    read_status(st, ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    teardown();
}

/* Client streaming: N requests, one answer. */
static void test_client_stream(void)
{
    setup();
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Sum", NULL, &st));
    size_t total = 0;
    char block[300];
    for (int i = 0; i < 200; i++) {
        size_t len = (size_t)(i % 300);
        fx_fill(block, len, (uint32_t)i);
        ASSERT_OK(arpc_stream_write(st, block, len));
        total += len;
    }
    ASSERT_OK(arpc_stream_close_send(st));
    char want[32];
    snprintf(want, sizeof(want), "%zu", total);
    read_expect(st, want);
    read_status(st, ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    teardown();
}

/* An application error with a message and trailing metadata, after one message. */
static void test_end_with_error(void)
{
    setup();
    arpc_metadata *md = NULL;
    ASSERT_OK(arpc_metadata_create(&md));
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.response_metadata = md;
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Fail", &opts, &st));
    read_expect(st, "partial");
    read_status(st, 7);
    ASSERT_ERR(arpc_stream_write(st, "x", 1), 7);
    ASSERT_ERR(arpc_stream_close_send(st), 7);
    arpc_buf *err = NULL;
    ASSERT_OK(arpc_buf_create(&err));
    ASSERT_ERR(arpc_stream_finish(st, err), 7);
    ASSERT_EQ(arpc_buf_len(err), 4);
    ASSERT_MEMEQ(arpc_buf_data(err), "boom", 4);
    ASSERT_STREQ(arpc_stream_error_message(st), "boom");
    char buf[32];
    ASSERT_STREQ(md_value(md, "x-why", buf, sizeof(buf)), "test");
    arpc_buf_destroy(err);
    arpc_stream_destroy(st);
    arpc_metadata_destroy(md);
    teardown();
}

/* ---- flow control ------------------------------------------------------------------ */

#define FLOOD_MESSAGES 100000
#define FLOOD_LEN      100

/* The server writes 100,000 messages; the client reads them in bursts of 10,000 and,
 * between bursts, stops until the server's writer has been suspended (its write waits
 * for credit): the writer then stands at most a window (plus one message) ahead of the
 * reader (gRPC: two, its session's held output and the HTTP/2 window), and the reader's
 * queue never held more than one. */
static void test_flow_server_writes(void)
{
    setup();
    sx_flood_reset();
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Flood", NULL, &st));
    char request[32];
    snprintf(request, sizeof(request), "%d %d", FLOOD_MESSAGES, FLOOD_LEN);
    ASSERT_OK(arpc_stream_write(st, request, strlen(request)));
    ASSERT_OK(arpc_stream_close_send(st));
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    const uint64_t window = ARPC__STREAM_DEFAULT_WINDOW;
    uint64_t pauses = 0;
    for (int i = 0; i < FLOOD_MESSAGES; i++) {
        if (i % 10000 == 0) {
            ASSERT_TRUE(sx_wait_flood_suspended());
            uint64_t ahead = sx_flood_written() - (uint64_t)i;
            ASSERT_LE(ahead, sx_windows_in_flight() * (window / FLOOD_LEN + 1));
            pauses++;
            ASSERT_GE(sx_flood_write_waits(), pauses); /* suspended anew at every pause */
        }
        arpc_buf_clear(msg);
        ASSERT_OK(arpc_stream_read(st, msg));
        ASSERT_EQ(arpc_buf_len(msg), FLOOD_LEN);
    }
    read_status(st, ARPC_EEOS);
    ASSERT_EQ(pauses, 10);
    ASSERT_LE(arpc__stream_peak_queued(st), window + FLOOD_LEN);
    ASSERT_GT(arpc__stream_peak_queued(st), 0);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_buf_destroy(msg);
    arpc_stream_destroy(st);
    teardown();
}

/* The client writes 100,000 messages to a sink that stops reading after every 10,000
 * until the client's writer has been suspended: the sink's queue stays within the window
 * it granted plus one message. */
static void test_flow_client_writes(void)
{
    setup();
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/SlowSink", NULL, &st));
    sx_slow_sink_watch(st);
    char block[FLOOD_LEN];
    for (int i = 0; i < FLOOD_MESSAGES; i++) {
        fx_fill(block, sizeof(block), (uint32_t)i);
        ASSERT_OK(arpc_stream_write(st, block, sizeof(block)));
    }
    ASSERT_OK(arpc_stream_close_send(st));
    char want[32];
    snprintf(want, sizeof(want), "%d", FLOOD_MESSAGES);
    read_expect(st, want);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    ASSERT_GE(arpc__stream_write_waits(st), 10);
    ASSERT_LE(sx_slow_sink_peak(), ARPC__STREAM_DEFAULT_WINDOW + FLOOD_LEN);
    ASSERT_GT(sx_slow_sink_peak(), 0);
    sx_slow_sink_watch(NULL);
    arpc_stream_destroy(st);
    teardown();
}

/* A message larger than the window goes through alone. */
static void test_message_over_window(void)
{
    setup();
    size_t len = 3 * ARPC__STREAM_DEFAULT_WINDOW;
    char *big = malloc(len);
    ASSERT_TRUE(big != NULL);
    fx_fill(big, len, 42);
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Echo", NULL, &st));
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(arpc_stream_write(st, big, len));
        arpc_buf *msg = NULL;
        ASSERT_OK(arpc_buf_create(&msg));
        ASSERT_OK(arpc_stream_read(st, msg));
        ASSERT_EQ(arpc_buf_len(msg), len);
        ASSERT_MEMEQ(arpc_buf_data(msg), big, len);
        arpc_buf_destroy(msg);
    }
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    free(big);
    teardown();
}

/* ---- many at once -------------------------------------------------------------------- */

#define MANY 1000

static void test_many_streams(void)
{
    setup();
    uint64_t ends = sx_handler_ends();
    arpc_stream **streams = calloc(MANY, sizeof(*streams));
    ASSERT_TRUE(streams != NULL);
    for (int i = 0; i < MANY; i++)
        ASSERT_OK(arpc_stream_open(channel, "S/Echo", NULL, &streams[i]));
    for (int i = 0; i < MANY; i++) {
        char text[16];
        snprintf(text, sizeof(text), "s%d", i);
        ASSERT_OK(arpc_stream_write(streams[i], text, strlen(text)));
    }
    /* All open at once: every handler waits in its read. */
    ASSERT_TRUE(sx_wait_handlers_running(MANY));
    for (int i = 0; i < MANY; i++) {
        char text[16];
        snprintf(text, sizeof(text), "s%d", i);
        read_expect(streams[i], text);
        ASSERT_OK(arpc_stream_close_send(streams[i]));
    }
    for (int i = 0; i < MANY; i++) {
        read_status(streams[i], ARPC_EEOS);
        ASSERT_OK(arpc_stream_finish(streams[i], NULL));
        arpc_stream_destroy(streams[i]);
    }
    free(streams);
    ASSERT_TRUE(sx_wait_handler_ends(ends + MANY));
    teardown();
}

/* ---- cancel and deadline ------------------------------------------------------------ */

static void test_cancel_from_client(void)
{
    setup();
    sx_sink_reset();
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Sink", NULL, &st));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(arpc_stream_write(st, "abc", 3));
    ASSERT_TRUE(sx_wait_sink_read(3));
    arpc_stream_cancel(st);
    arpc_stream_cancel(st); /* a no-op */
    ASSERT_ERR(arpc_stream_write(st, "abc", 3), ARPC_ECANCELED);
    read_status(st, ARPC_ECANCELED);
    ASSERT_ERR(arpc_stream_close_send(st), ARPC_ECANCELED);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ECANCELED);
    /* The handler's read failed with ECANCELED and it saw its request canceled. */
    ASSERT_TRUE(sx_wait_sink_done());
    ASSERT_EQ(sx_sink_status(), ARPC_ECANCELED);
    ASSERT_TRUE(sx_sink_saw_canceled());
    /* The server counts the stream canceled once its handler has returned. */
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(server, canceled, 1, 5000));
    arpc_stream_destroy(st);
    teardown();
}

static void test_cancel_from_server(void)
{
    setup();
    sx_sink_reset();
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/CancelSelf", NULL, &st));
    ASSERT_OK(arpc_stream_write(st, "go", 2));
    read_status(st, ARPC_ECANCELED);
    ASSERT_ERR(arpc_stream_write(st, "x", 1), ARPC_ECANCELED);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ECANCELED);
    ASSERT_TRUE(sx_wait_sink_done());
    /* After its own cancel the handler's reads and writes fail with ECANCELED. */
    ASSERT_EQ(sx_sink_status(), ARPC_ECANCELED);
    arpc_stream_destroy(st);
    teardown();
}

static void test_deadline_mid_stream(void)
{
    setup();
    sx_sink_reset();
    arpc_call_opts opts = fx_timeout(300);
    arpc_stream *st = NULL;
    int64_t start = test_now_ms();
    ASSERT_OK(arpc_stream_open(channel, "S/Sink", &opts, &st));
    ASSERT_OK(arpc_stream_write(st, "abc", 3));
    ASSERT_TRUE(sx_wait_sink_read(1));
    read_status(st, ARPC_ETIMEDOUT);
    int64_t elapsed = test_now_ms() - start;
    ASSERT_GE(elapsed, 300);
    ASSERT_LT(elapsed, 5000);
    ASSERT_ERR(arpc_stream_write(st, "x", 1), ARPC_ETIMEDOUT);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ETIMEDOUT);
    ASSERT_TRUE(sx_wait_sink_done());
    int status = sx_sink_status();
    ASSERT_TRUE(status == ARPC_ECANCELED || status == ARPC_ETIMEDOUT);
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(server, canceled, 1, 5000)); /* the cancel or the deadline */
    arpc_stream_destroy(st);
    teardown();
}

/* A stream opened by a handler with its request as parent is canceled with it: the
 * client's cancel of the outer stream reaches the downstream handler. */
static void test_cancel_reaches_child_stream(void)
{
    setup();
    sx_sink_reset();
    arpc_channel *relay = sx_channel(server_rt, arpc_server_port(server), NULL);
    sx_relay_reset(relay);
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Relay", NULL, &st));
    ASSERT_OK(arpc_stream_write(st, "go", 2));
    ASSERT_TRUE(sx_wait_sink_read(1));
    arpc_stream_cancel(st);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ECANCELED);
    ASSERT_EQ(sx_wait_relay_status(), ARPC_ECANCELED);
    ASSERT_TRUE(sx_wait_sink_done());
    ASSERT_EQ(sx_sink_status(), ARPC_ECANCELED);
    arpc_stream_destroy(st);
    arpc_channel_destroy(relay);
    sx_relay_reset(NULL);
    teardown();
}

/* Destroying an open stream cancels it; the handler ends. */
static void test_destroy_open_stream(void)
{
    setup();
    sx_sink_reset();
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Sink", NULL, &st));
    ASSERT_OK(arpc_stream_write(st, "abc", 3));
    ASSERT_TRUE(sx_wait_sink_read(1));
    arpc_stream_destroy(st);
    ASSERT_TRUE(sx_wait_sink_done());
    ASSERT_EQ(sx_sink_status(), ARPC_ECANCELED);
    teardown();
}

typedef struct shutdown_job {
    arpc_server *srv;
    int rc;
} shutdown_job;

static void *shutdown_thread(void *arg)
{
    shutdown_job *job = arg;
    job->rc = arpc_server_shutdown(job->srv, 20000);
    return NULL;
}

/* A server that shuts down lets a stream it has seen (at or below the GOAWAY's last id)
 * run to its end, and its drain waits for it. */
static void test_shutdown_drains_stream(void)
{
    setup();
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Echo", NULL, &st));
    ASSERT_OK(arpc_stream_write(st, "a", 1));
    read_expect(st, "a");
    shutdown_job job = {.srv = server};
    pthread_t thread;
    ASSERT_EQ(pthread_create(&thread, NULL, shutdown_thread, &job), 0);
    ASSERT_TRUE(WAIT_CHANNEL_STAT_GE(channel, goaways, 1, 20000));
    ASSERT_OK(arpc_stream_write(st, "b", 1));
    read_expect(st, "b");
    ASSERT_OK(arpc_stream_close_send(st));
    read_status(st, ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    ASSERT_EQ(pthread_join(thread, NULL), 0);
    ASSERT_OK(job.rc);
    arpc_stream_destroy(st);
    teardown();
}

/* ---- the async forms ------------------------------------------------------------------- */

typedef struct async_run {
    arpc_stream *st;
    int round;
    int rounds;
    _Atomic int failures;
    _Atomic int completions;
    _Atomic int final_status;
    arpc_event done;
    arpc_loop *expected_loop; /* NULL: not checked */
} async_run;

static void async_next(async_run *run);

static void on_async_finish(int status, void *user_data)
{
    async_run *run = user_data;
    atomic_fetch_add(&run->completions, 1);
    atomic_store(&run->final_status, status);
    arpc_event_signal(&run->done);
}

static void on_async_read(int status, const void *msg, size_t len, void *user_data)
{
    async_run *run = user_data;
    char want[32];
    snprintf(want, sizeof(want), "async %d", run->round);
    if (status != 0 || len != strlen(want) || memcmp(msg, want, len) != 0)
        atomic_fetch_add(&run->failures, 1);
    run->round++;
    async_next(run);
}

static void on_async_write(int status, void *user_data)
{
    async_run *run = user_data;
    if (status != 0)
        atomic_fetch_add(&run->failures, 1);
    if (arpc_stream_read_async(run->st, on_async_read, run) != 0)
        atomic_fetch_add(&run->failures, 1);
}

static void async_next(async_run *run)
{
    if (run->round == run->rounds) {
        if (arpc_stream_finish_async(run->st, on_async_finish, run) != 0)
            atomic_fetch_add(&run->failures, 1);
        return;
    }
    char text[32];
    snprintf(text, sizeof(text), "async %d", run->round);
    if (arpc_stream_write_async(run->st, text, strlen(text), on_async_write, run) != 0)
        atomic_fetch_add(&run->failures, 1);
}

static void test_async_forms(void)
{
    setup();
    async_run run = {.rounds = 200};
    arpc_event_init(&run.done);
    ASSERT_OK(arpc_stream_open(channel, "S/Echo", NULL, &run.st));
    /* One read at a time: a second outstanding read is refused. */
    ASSERT_OK(arpc_stream_read_async(run.st, on_async_read, &run));
    ASSERT_ERR(arpc_stream_read_async(run.st, on_async_read, &run), ARPC_EINVAL);
    ASSERT_ERR(arpc_stream_write_async(run.st, NULL, 1, on_async_write, &run), ARPC_EINVAL);
    /* The first read completes with round 0's echo once it is written. */
    char text[32];
    snprintf(text, sizeof(text), "async %d", 0);
    ASSERT_OK(arpc_stream_write(run.st, text, strlen(text)));
    ASSERT_OK(arpc_event_wait(&run.done, 30000));
    ASSERT_EQ(atomic_load(&run.failures), 0);
    ASSERT_EQ(atomic_load(&run.final_status), 0);
    ASSERT_EQ(run.round, run.rounds);
    /* Exactly once. */
    ASSERT_EQ(atomic_load(&run.completions), 1);
    arpc_stream_destroy(run.st);
    teardown();
}

/* ---- unary and stream methods crossed ------------------------------------------------- */

static void test_unary_call_to_stream_method(void)
{
    setup();
    sx_sink_reset();
    arpc_buf *rsp = NULL;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(5000);
    ASSERT_OK(arpc_call(channel, "S/EchoOnce", "hello", 5, &opts, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 5);
    ASSERT_MEMEQ(arpc_buf_data(rsp), "hello", 5);
    /* Its second write returned ARPC_EEOS, its second read too; over gRPC the call is a
     * stream on the server (the wire does not say it is unary): the write went out. */
    ASSERT_TRUE(sx_wait_sink_done());
    ASSERT_EQ(sx_sink_status(), sx_grpc() ? 0 : ARPC_EEOS);
    arpc_buf_clear(rsp);
    ASSERT_ERR(arpc_call(channel, "S/Fail", "x", 1, &opts, rsp), 7);
    ASSERT_EQ(arpc_buf_len(rsp), 4);
    ASSERT_MEMEQ(arpc_buf_data(rsp), "boom", 4);
    arpc_buf_destroy(rsp);
    teardown();
}

static void test_stream_to_unary_method(void)
{
    setup();
    arpc_stream *st = NULL;
    ASSERT_OK(arpc_stream_open(channel, "S/Unary", NULL, &st));
    if (sx_grpc()) {
        /* gRPC's wire does not say a call is a stream: the server takes it for the unary
         * call it is to that method once it is complete, and answers it. */
        ASSERT_OK(arpc_stream_write(st, "u", 1));
        ASSERT_OK(arpc_stream_close_send(st));
        read_expect(st, "u");
        read_status(st, ARPC_EEOS);
        ASSERT_OK(arpc_stream_finish(st, NULL));
    } else {
        read_status(st, ARPC_ENOMETHOD);
        ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ENOMETHOD);
    }
    arpc_stream_destroy(st);
    ASSERT_OK(arpc_stream_open(channel, "S/NoSuchMethod", NULL, &st));
    /* A write returns once queued: it learns of the server's refusal only if the END came
     * first. */
    int rc = arpc_stream_write(st, "x", 1);
    ASSERT_TRUE(rc == 0 || rc == ARPC_ENOMETHOD);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ENOMETHOD);
    arpc_stream_destroy(st);
    /* The unary method itself still answers unary calls. */
    arpc_buf *rsp = NULL;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = fx_timeout(5000);
    ASSERT_OK(arpc_call(channel, "S/Unary", "u", 1, &opts, rsp));
    arpc_buf_destroy(rsp);
    teardown();
}

/* Argument checks and the channel's destroy with streams open. */
static void test_api_edges(void)
{
    setup();
    arpc_stream *st = NULL;
    ASSERT_ERR(arpc_stream_open(NULL, "S/Echo", NULL, &st), ARPC_EINVAL);
    ASSERT_ERR(arpc_stream_open(channel, "", NULL, &st), ARPC_EINVAL);
    ASSERT_ERR(arpc_stream_open(channel, "S/Echo", NULL, NULL), ARPC_EINVAL);
    ASSERT_ERR(arpc_stream_read(NULL, NULL), ARPC_EINVAL);
    arpc_stream_destroy(NULL);
    arpc_stream_cancel(NULL);
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    ASSERT_EQ(copts.stream_window_bytes, ARPC__STREAM_DEFAULT_WINDOW);
    copts.stream_window_bytes = 1024;
    arpc_channel *bad = NULL;
    ASSERT_ERR(arpc_channel_create(client_rt, "127.0.0.1:1", &copts, &bad), ARPC_EINVAL);
    /* A stream still open when its channel is destroyed ends with ARPC_ECANCELED. */
    sx_sink_reset();
    ASSERT_OK(arpc_stream_open(channel, "S/Sink", NULL, &st));
    ASSERT_OK(arpc_stream_write(st, "abc", 3));
    ASSERT_TRUE(sx_wait_sink_read(1));
    arpc_channel_destroy(channel);
    channel = NULL;
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ECANCELED);
    arpc_stream_destroy(st);
    ASSERT_TRUE(sx_wait_sink_done());
    teardown();
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--seam") == 0)
        sx_use_seam(true);
    if (argc > 1 && strcmp(argv[1], "--grpc") == 0)
        sx_use_grpc(true);
    RUN_TEST(test_bidi_plain_thread);
    RUN_TEST(test_bidi_coroutines);
    RUN_TEST(test_server_stream);
    RUN_TEST(test_client_stream);
    RUN_TEST(test_end_with_error);
    RUN_TEST(test_flow_server_writes);
    RUN_TEST(test_flow_client_writes);
    RUN_TEST(test_message_over_window);
    RUN_TEST(test_many_streams);
    RUN_TEST(test_cancel_from_client);
    RUN_TEST(test_cancel_from_server);
    RUN_TEST(test_deadline_mid_stream);
    RUN_TEST(test_destroy_open_stream);
    RUN_TEST(test_cancel_reaches_child_stream);
    RUN_TEST(test_shutdown_drains_stream);
    RUN_TEST(test_async_forms);
    RUN_TEST(test_unary_call_to_stream_method);
    RUN_TEST(test_stream_to_unary_method);
    RUN_TEST(test_api_edges);
    return 0;
}

/*
 * Streams against grpcio both ways (issue #12), at the rpc level.
 *
 * grpcio's client against arpc-echo-server (the real tool, a child process):
 * grpc_peer_client.py's bidi (200 messages of 64 KiB: many windows each way),
 * clientstream and serverstream cases; then its streamcancel case, which
 * cancels a Count the server is writing into a full window and a Stream the
 * server is waiting to read, keeps its connection open, and lets the harness
 * check that the server ended both handlers: a graceful shutdown of the tool
 * drains at once (a handler still running would hold it to --drain-ms) and its
 * counters say the two streams were canceled.
 *
 * arpc's client (a channel with ARPC_PROTOCOL_GRPC) against
 * grpc_peer_server.py: a bidi Stream of many messages (a writer thread, the
 * echoes read in order), client streaming (Stream with x-stream-mode: concat),
 * server streaming (Count 1000; Count("x") -> INVALID_ARGUMENT with its
 * message), a slow reader of Count 50,000 whose queue stays within the window,
 * the x-echo-* response metadata of a Stream, arpc_stream_cancel
 * mid-stream and a deadline mid-stream (each seen by grpcio's servicer: its
 * "event stream-canceled METHOD" line).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

#include "interop_util.h"
#include "rpc/stream.h" /* arpc__stream_peak_queued: the reader's queue, for the slow reader */
#include "test.h"

#define CLIENT_TIMEOUT_MS 60000 /* 200 x 64 KiB each way through python, sanitizers */
#define EVENT_TIMEOUT_MS  10000

/* Whether msg is EchoMsg{data: text} (proto3 leaves an empty data out). */
static bool is_echo_of(const arpc_buf *msg, const char *text)
{
    uint8_t want[512];
    size_t len = strlen(text);
    ASSERT_LT(len, sizeof(want) - 8);
    if (len == 0)
        return arpc_buf_len(msg) == 0;
    size_t n = interop_echo_msg(want, text, len);
    return arpc_buf_len(msg) == n && memcmp(arpc_buf_data(msg), want, n) == 0;
}

/* ---- grpcio's client against arpc-echo-server --------------------------------------- */

/* The tool's shutdown line, "shutting down on signal 15: N requests served, C canceled". */
static void stop_echo_server(interop_proc *srv, char *line, size_t size)
{
    interop_signal(srv, SIGTERM);
    ASSERT_TRUE(interop_wait_line(srv, "shutting down on signal", line, size, EVENT_TIMEOUT_MS));
    ASSERT_EQ(interop_reap(srv, 10000), 0);
}

static void test_grpcio_client_kinds(void)
{
    interop_proc srv;
    const char *srv_args[] = {"--threads", "2", NULL};
    interop_start_echo_server(srv_args, &srv);
    char target[64];
    interop_addr(target, sizeof(target), srv.port);
    const char *args[] = {
        "--stream-messages", "200", "--stream-bytes", "65536", "bidi", "clientstream",
        "serverstream",      NULL};
    ASSERT_EQ(interop_run_grpc_client(target, args, CLIENT_TIMEOUT_MS), 0);
    char line[256];
    stop_echo_server(&srv, line, sizeof(line));
    ASSERT_TRUE(strstr(line, "drain deadline passed") == NULL);
}

/*
 * grpcio cancels two streams mid-stream and keeps its connection open.  With the
 * connection open, only the RST_STREAMs can have ended the handlers: the shutdown's
 * drain (10 s) ends at once, which it would not with a handler running, and the
 * server counted both as canceled.
 */
static void test_grpcio_cancels(void)
{
    interop_proc srv;
    const char *srv_args[] = {"--threads", "2", "--drain-ms", "10000", NULL};
    interop_start_echo_server(srv_args, &srv);
    char target[64];
    interop_addr(target, sizeof(target), srv.port);
    interop_proc cli;
    const char *args[] = {"streamcancel", NULL};
    interop_start_grpc_client(target, args, &cli);
    ASSERT_TRUE(interop_wait_line(&cli, "streamcancel canceled 2", NULL, 0, 30000));

    char line[256];
    int64_t t0 = test_now_ms();
    stop_echo_server(&srv, line, sizeof(line));
    int64_t took = test_now_ms() - t0;
    fprintf(stderr, "  shutdown with the canceling client connected: %lld ms\n", (long long)took);
    ASSERT_TRUE(strstr(line, "drain deadline passed") == NULL);
    ASSERT_LT(took, 8000);
    const char *served = strstr(line, "requests served, ");
    ASSERT_TRUE(served != NULL);
    ASSERT_GE(atoi(served + strlen("requests served, ")), 2); /* the Count and the Stream */

    interop_send_line(&cli, "checked");
    ASSERT_TRUE(interop_wait_line(&cli, "streamcancel ", line, sizeof(line), 20000));
    ASSERT_STREQ(line, "streamcancel ok");
    ASSERT_EQ(interop_reap(&cli, 10000), 0);
}

/* ---- arpc's client against grpc_peer_server.py ---------------------------------------- */

static arpc_runtime *rt;
static arpc_channel *ch;
static interop_proc peer;

static arpc_stream *open_stream(const char *method, const arpc_call_opts *opts)
{
    arpc_stream *st;
    ASSERT_OK(arpc_stream_open(ch, method, opts, &st));
    return st;
}

/* Writes EchoMsg{text} on st. */
static int write_text(arpc_stream *st, const char *text)
{
    uint8_t buf[512];
    ASSERT_LT(strlen(text), sizeof(buf) - 8);
    return arpc_stream_write(st, buf, interop_echo_msg(buf, text, strlen(text)));
}

#define BIDI_MESSAGES 1000
#define BIDI_BYTES    16384 /* 16 MiB each way: many windows */

/* Message i of the bidi test: its index in the first bytes, then a pattern of it. */
static size_t bidi_msg(uint8_t *buf, uint8_t *data, int i)
{
    for (size_t k = 0; k < BIDI_BYTES; k++)
        data[k] = (uint8_t)(i * 31 + k);
    memcpy(data, &i, sizeof(i));
    return interop_echo_msg(buf, data, BIDI_BYTES);
}

static void *bidi_writer(void *arg)
{
    arpc_stream *st = arg;
    uint8_t *data = malloc(BIDI_BYTES);
    uint8_t *buf = malloc(BIDI_BYTES + 16);
    ASSERT_TRUE(data != NULL && buf != NULL);
    for (int i = 0; i < BIDI_MESSAGES; i++)
        ASSERT_OK(arpc_stream_write(st, buf, bidi_msg(buf, data, i)));
    ASSERT_OK(arpc_stream_close_send(st));
    free(buf);
    free(data);
    return NULL;
}

/* Bidi: a thread writes while this one reads; each echo is the message sent, in order. */
static void test_bidi(void)
{
    arpc_stream *st = open_stream("arpc.echo.Echo/Stream", NULL);
    pthread_t tid;
    ASSERT_EQ(pthread_create(&tid, NULL, bidi_writer, st), 0);
    uint8_t *data = malloc(BIDI_BYTES);
    uint8_t *want = malloc(BIDI_BYTES + 16);
    ASSERT_TRUE(data != NULL && want != NULL);
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    for (int i = 0; i < BIDI_MESSAGES; i++) {
        arpc_buf_clear(msg);
        ASSERT_OK(arpc_stream_read(st, msg));
        size_t n = bidi_msg(want, data, i);
        ASSERT_EQ(arpc_buf_len(msg), n);
        ASSERT_TRUE(memcmp(arpc_buf_data(msg), want, n) == 0);
    }
    arpc_buf_clear(msg);
    ASSERT_ERR(arpc_stream_read(st, msg), ARPC_EEOS);
    ASSERT_EQ(pthread_join(tid, NULL), 0);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    arpc_buf_destroy(msg);
    free(want);
    free(data);
}

/* Client streaming: Stream with x-stream-mode: concat answers once at the half-close. */
static void test_client_streaming(void)
{
    arpc_metadata_entry md[] = {{"x-stream-mode", "concat", 6}};
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.metadata = md;
    opts.metadata_count = 1;
    arpc_stream *st = open_stream("arpc.echo.Echo/Stream", &opts);
    char all[512] = "";
    for (int i = 0; i < 20; i++) {
        char part[16];
        snprintf(part, sizeof(part), "part %d;", i);
        strcat(all, part);
        ASSERT_OK(write_text(st, part));
    }
    ASSERT_OK(arpc_stream_close_send(st));
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    ASSERT_OK(arpc_stream_read(st, msg));
    ASSERT_TRUE(is_echo_of(msg, all));
    arpc_buf_clear(msg);
    ASSERT_ERR(arpc_stream_read(st, msg), ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    arpc_buf_destroy(msg);
}

/* Server streaming: Count 1000 answers "1".."1000" in order, then the end with 0. */
static void test_server_streaming(void)
{
    arpc_stream *st = open_stream("arpc.echo.Echo/Count", NULL);
    ASSERT_OK(write_text(st, "1000"));
    ASSERT_OK(arpc_stream_close_send(st));
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    for (int i = 1; i <= 1000; i++) {
        char text[16];
        snprintf(text, sizeof(text), "%d", i);
        arpc_buf_clear(msg);
        ASSERT_OK(arpc_stream_read(st, msg));
        if (!is_echo_of(msg, text))
            test_fail(__FILE__, __LINE__, "Count answer %d is not \"%s\"", i, text);
    }
    arpc_buf_clear(msg);
    ASSERT_ERR(arpc_stream_read(st, msg), ARPC_EEOS);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    arpc_buf_destroy(msg);
}

static bool queue_filled(void *arg)
{
    return arpc__stream_peak_queued(arg) >= 128 * 1024;
}

/* A slow reader against grpcio's writer: Count 50,000 (about 560 KB on the wire, over
 * twice the 256 KiB window) read for 10 answers, then not at all until grpcio has run
 * ahead into the reader's queue (128 KiB of answers queued: about 210 KiB of HTTP/2 DATA
 * with gRPC's 5-byte prefixes, near the window), then to the end in order.  The queue
 * never held more than the window plus one message: HTTP/2's window is granted back as
 * the application reads, not as the bytes arrive. */
static void test_slow_reader(void)
{
    arpc_stream *st = open_stream("arpc.echo.Echo/Count", NULL);
    ASSERT_OK(write_text(st, "50000"));
    ASSERT_OK(arpc_stream_close_send(st));
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    for (int i = 1; i <= 50000; i++) {
        if (i == 11)
            ASSERT_TRUE(wait_until(queue_filled, st, EVENT_TIMEOUT_MS));
        char text[16];
        snprintf(text, sizeof(text), "%d", i);
        arpc_buf_clear(msg);
        ASSERT_OK(arpc_stream_read(st, msg));
        if (!is_echo_of(msg, text))
            test_fail(__FILE__, __LINE__, "Count answer %d is not \"%s\"", i, text);
    }
    arpc_buf_clear(msg);
    ASSERT_ERR(arpc_stream_read(st, msg), ARPC_EEOS);
    uint64_t peak = arpc__stream_peak_queued(st);
    fprintf(stderr, "  slow reader: at most %llu bytes queued\n", (unsigned long long)peak);
    ASSERT_LE(peak, ARPC__STREAM_DEFAULT_WINDOW + 16);
    ASSERT_OK(arpc_stream_finish(st, NULL));
    arpc_stream_destroy(st);
    arpc_buf_destroy(msg);
}

/* Count("x"): grpcio aborts with INVALID_ARGUMENT (arpc code 3) and its message.  grpcio
 * runs the servicer once the one request message is in, so its end may come before the
 * half-close is asked for: close_send then returns the stream's status (seen under load). */
static void test_server_streaming_error(void)
{
    arpc_stream *st = open_stream("arpc.echo.Echo/Count", NULL);
    ASSERT_OK(write_text(st, "x"));
    int rc = arpc_stream_close_send(st);
    ASSERT_TRUE(rc == 0 || rc == 3);
    arpc_buf *msg, *err;
    ASSERT_OK(arpc_buf_create(&msg));
    ASSERT_OK(arpc_buf_create(&err));
    ASSERT_EQ(arpc_stream_read(st, msg), 3);
    ASSERT_EQ(arpc_buf_len(msg), 0);
    ASSERT_EQ(arpc_stream_finish(st, err), 3);
    const char *want = "Count wants decimal N (0..100000)";
    ASSERT_EQ(arpc_buf_len(err), strlen(want));
    ASSERT_TRUE(memcmp(arpc_buf_data(err), want, strlen(want)) == 0);
    ASSERT_STREQ(arpc_stream_error_message(st), want);
    arpc_stream_destroy(st);
    arpc_buf_destroy(err);
    arpc_buf_destroy(msg);
}

/* The x-echo-* request metadata comes back as the Stream's initial metadata, complete
 * when finish returns; other keys do not. */
static void test_response_metadata(void)
{
    arpc_metadata_entry md[] = {
        {"x-echo-text", "v1", 2}, {"x-echo-raw-bin", "\x00\xff", 2}, {"other", "no", 2}};
    arpc_metadata *rsp_md;
    ASSERT_OK(arpc_metadata_create(&rsp_md));
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.metadata = md;
    opts.metadata_count = 3;
    opts.response_metadata = rsp_md;
    arpc_stream *st = open_stream("arpc.echo.Echo/Stream", &opts);
    ASSERT_OK(write_text(st, "m"));
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    ASSERT_OK(arpc_stream_read(st, msg));
    ASSERT_TRUE(is_echo_of(msg, "m"));
    ASSERT_OK(arpc_stream_finish(st, NULL));
    size_t vlen = 0;
    const void *v = arpc_metadata_get(rsp_md, "x-echo-text", &vlen);
    ASSERT_TRUE(v != NULL && vlen == 2 && memcmp(v, "v1", 2) == 0);
    v = arpc_metadata_get(rsp_md, "x-echo-raw-bin", &vlen);
    ASSERT_TRUE(v != NULL && vlen == 2 && memcmp(v, "\x00\xff", 2) == 0);
    ASSERT_TRUE(arpc_metadata_get(rsp_md, "other", &vlen) == NULL);
    arpc_stream_destroy(st);
    arpc_buf_destroy(msg);
    arpc_metadata_destroy(rsp_md);
}

/* arpc_stream_cancel mid-stream: a Count of 100,000 read for 10 answers, then canceled;
 * every later operation returns ARPC_ECANCELED and grpcio's servicer sees the end. */
static void test_cancel_mid_stream(void)
{
    arpc_stream *st = open_stream("arpc.echo.Echo/Count", NULL);
    ASSERT_OK(write_text(st, "100000"));
    ASSERT_OK(arpc_stream_close_send(st));
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    for (int i = 1; i <= 10; i++) {
        char text[16];
        snprintf(text, sizeof(text), "%d", i);
        arpc_buf_clear(msg);
        ASSERT_OK(arpc_stream_read(st, msg));
        ASSERT_TRUE(is_echo_of(msg, text));
    }
    arpc_stream_cancel(st);
    arpc_buf_clear(msg);
    ASSERT_ERR(arpc_stream_read(st, msg), ARPC_ECANCELED);
    ASSERT_ERR(write_text(st, "late"), ARPC_ECANCELED);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ECANCELED);
    ASSERT_TRUE(interop_wait_line(&peer, "event stream-canceled Count", NULL, 0, EVENT_TIMEOUT_MS));
    arpc_stream_destroy(st);
    arpc_buf_destroy(msg);
}

/* A deadline mid-stream on a Stream that waits: one echo, then a read that nothing
 * answers ends with ARPC_ETIMEDOUT at the deadline, and grpcio's servicer sees it. */
static void test_deadline_waiting_stream(void)
{
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 500;
    int64_t t0 = test_now_ms();
    arpc_stream *st = open_stream("arpc.echo.Echo/Stream", &opts);
    ASSERT_OK(write_text(st, "once"));
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    ASSERT_OK(arpc_stream_read(st, msg));
    ASSERT_TRUE(is_echo_of(msg, "once"));
    arpc_buf_clear(msg);
    ASSERT_ERR(arpc_stream_read(st, msg), ARPC_ETIMEDOUT);
    int64_t took = test_now_ms() - t0;
    fprintf(stderr, "  deadline 500 ms: the read ended after %lld ms\n", (long long)took);
    ASSERT_GE(took, 450);
    ASSERT_LT(took, 5000);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ETIMEDOUT);
    ASSERT_TRUE(
        interop_wait_line(&peer, "event stream-canceled Stream", NULL, 0, EVENT_TIMEOUT_MS));
    arpc_stream_destroy(st);
    arpc_buf_destroy(msg);
}

/* A deadline mid-stream on a Count whose reader stalls: 10 answers read, then nothing
 * until grpcio's servicer saw the deadline.  grpcio's own timer (grpc-timeout) may end the
 * call a moment before arpc's: then its DEADLINE_EXCEEDED may arrive behind messages still
 * readable (a stream the server ended keeps them), so the reads go on in order, at most
 * the queue's bound, until ARPC_ETIMEDOUT; past arpc's own deadline the stream drops the
 * queue and the next read returns it. */
static void test_deadline_stalled_reader(void)
{
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 500;
    int64_t t0 = test_now_ms();
    arpc_stream *st = open_stream("arpc.echo.Echo/Count", &opts);
    ASSERT_OK(write_text(st, "100000"));
    ASSERT_OK(arpc_stream_close_send(st));
    arpc_buf *msg;
    ASSERT_OK(arpc_buf_create(&msg));
    int i = 1;
    for (; i <= 10; i++) {
        char text[16];
        snprintf(text, sizeof(text), "%d", i);
        arpc_buf_clear(msg);
        ASSERT_OK(arpc_stream_read(st, msg));
        ASSERT_TRUE(is_echo_of(msg, text));
    }
    ASSERT_TRUE(interop_wait_line(&peer, "event stream-canceled Count", NULL, 0, EVENT_TIMEOUT_MS));
    int rc;
    for (;; i++) {
        arpc_buf_clear(msg);
        if ((rc = arpc_stream_read(st, msg)) != 0)
            break;
        char text[16];
        snprintf(text, sizeof(text), "%d", i);
        if (!is_echo_of(msg, text))
            test_fail(__FILE__, __LINE__, "Count answer %d is not \"%s\"", i, text);
        ASSERT_LT(i, 100000); /* the writer was stalled: it never sent them all */
    }
    ASSERT_ERR(rc, ARPC_ETIMEDOUT);
    int64_t took = test_now_ms() - t0;
    fprintf(stderr, "  deadline 500 ms: %d answers read, ETIMEDOUT after %lld ms\n", i - 1,
            (long long)took);
    ASSERT_GE(took, 450);
    ASSERT_ERR(arpc_stream_finish(st, NULL), ARPC_ETIMEDOUT);
    arpc_stream_destroy(st);
    arpc_buf_destroy(msg);
}

static void start_arpc_client(void)
{
    interop_start_grpc_peer(NULL, &peer);
    char target[64];
    interop_addr(target, sizeof(target), peer.port);
    ASSERT_OK(arpc_runtime_create(NULL, &rt));
    arpc_channel_opts copts;
    arpc_channel_opts_init(&copts);
    copts.protocol = ARPC_PROTOCOL_GRPC;
    ASSERT_OK(arpc_channel_create(rt, target, &copts, &ch));
}

static void stop_arpc_client(void)
{
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    interop_signal(&peer, SIGTERM);
    ASSERT_TRUE(interop_wait_line(&peer, "event stopped", NULL, 0, 10000));
    ASSERT_EQ(interop_reap(&peer, 10000), 0);
}

int main(void)
{
    interop_require_grpc();
    RUN_TEST(test_grpcio_client_kinds);
    RUN_TEST(test_grpcio_cancels);
    start_arpc_client();
    RUN_TEST(test_bidi);
    RUN_TEST(test_client_streaming);
    RUN_TEST(test_server_streaming);
    RUN_TEST(test_slow_reader);
    RUN_TEST(test_server_streaming_error);
    RUN_TEST(test_response_metadata);
    RUN_TEST(test_cancel_mid_stream);
    RUN_TEST(test_deadline_waiting_stream);
    RUN_TEST(test_deadline_stalled_reader);
    stop_arpc_client();
    return 0;
}

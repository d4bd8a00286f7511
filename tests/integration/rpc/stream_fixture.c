#include "stream_fixture.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/channel.h"
#include "rpc/server.h"
#include "rpc/stream.h"
#include "seam_proto.h"
#include "test.h"

#define WAIT_MS 20000

static _Atomic uint64_t handler_starts;
static _Atomic uint64_t handler_ends;

static _Atomic uint64_t flood_written;
static _Atomic(arpc_stream *) flood_stream;

static _Atomic(arpc_stream *) slow_watched;
static _Atomic uint64_t slow_peak;

static _Atomic uint64_t sink_reads;
static _Atomic int sink_status;
static _Atomic bool sink_done;
static _Atomic bool sink_canceled;

/* Reads one message into `msg` (cleared first). */
static int read_msg(arpc_stream *st, arpc_buf *msg)
{
    arpc_buf_clear(msg);
    return arpc_stream_read(st, msg);
}

static long msg_number(const arpc_buf *msg)
{
    char text[32];
    size_t len = arpc_buf_len(msg) < sizeof(text) - 1 ? arpc_buf_len(msg) : sizeof(text) - 1;
    memcpy(text, arpc_buf_data(msg), len);
    text[len] = '\0';
    return strtol(text, NULL, 10);
}

static int write_number(arpc_stream *st, uint64_t n)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "%llu", (unsigned long long)n);
    return arpc_stream_write(st, text, (size_t)len);
}

static bool use_seam;
static bool use_grpc;

/* The protocol a stream's request says it came in (arpc_request_protocol): the seam's test
 * protocol is registered by no id. */
static int expected_protocol(void)
{
    return use_seam ? -1 : use_grpc ? ARPC_PROTOCOL_GRPC : ARPC_PROTOCOL_NATIVE;
}

static int handle_echo(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_request *req = arpc_stream_request(st);
    ASSERT_EQ(arpc_request_protocol(req), expected_protocol());
    size_t len = 0;
    const void *v = arpc_request_metadata_get(req, "x-client", &len);
    if (v != NULL)
        arpc_request_add_metadata(req, "x-echo", v, len);
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    uint64_t count = 0;
    int rc;
    while ((rc = read_msg(st, msg)) == 0) {
        count++;
        rc = arpc_stream_write(st, arpc_buf_data(msg), arpc_buf_len(msg));
        if (rc != 0)
            break;
    }
    arpc_buf_destroy(msg);
    if (rc != ARPC_EEOS)
        return rc;
    char text[32];
    int n = snprintf(text, sizeof(text), "%llu", (unsigned long long)count);
    arpc_request_add_metadata(req, "x-count", text, (size_t)n);
    return 0;
}

static int handle_count(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    int rc = read_msg(st, msg);
    long n = rc == 0 ? msg_number(msg) : 0;
    arpc_buf_destroy(msg);
    if (rc != 0)
        return rc;
    for (long i = 1; i <= n; i++) {
        rc = write_number(st, (uint64_t)i);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int handle_sum(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    uint64_t total = 0;
    int rc;
    while ((rc = read_msg(st, msg)) == 0)
        total += arpc_buf_len(msg);
    arpc_buf_destroy(msg);
    if (rc != ARPC_EEOS)
        return rc;
    return write_number(st, total);
}

static int handle_fail(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_request *req = arpc_stream_request(st);
    int rc = arpc_stream_write(st, "partial", 7);
    if (rc != 0)
        return rc;
    arpc_request_add_metadata(req, "x-why", "test", 4);
    arpc_request_set_error(req, "boom");
    return 7;
}

static int handle_flood(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    int rc = read_msg(st, msg);
    long n = 0, len = 0;
    if (rc == 0) {
        char text[64];
        size_t l = arpc_buf_len(msg) < sizeof(text) - 1 ? arpc_buf_len(msg) : sizeof(text) - 1;
        memcpy(text, arpc_buf_data(msg), l);
        text[l] = '\0';
        sscanf(text, "%ld %ld", &n, &len);
    }
    arpc_buf_destroy(msg);
    if (rc != 0)
        return rc;
    char *block = calloc(1, (size_t)len + 1);
    atomic_store(&flood_stream, st);
    for (long i = 0; i < n && rc == 0; i++) {
        rc = arpc_stream_write(st, block, (size_t)len);
        if (rc == 0)
            atomic_fetch_add(&flood_written, 1);
    }
    free(block);
    /* The test reads the counter only while this handler waits in a write. */
    atomic_store(&flood_stream, NULL);
    return rc;
}

static int handle_slow_sink(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    uint64_t count = 0;
    int rc;
    for (;;) {
        if (count % 10000 == 0) {
            /* Stop reading until the client's writer has had to wait for credit. */
            /* The test names its stream once the open returned: maybe after we started. */
            arpc_stream *watched = atomic_load(&slow_watched);
            for (int i = 0; watched == NULL && i < WAIT_MS; i++) {
                arpc_coro_sleep_ms(1);
                watched = atomic_load(&slow_watched);
            }
            for (int i = 0; watched != NULL && i < WAIT_MS; i++) {
                if (arpc__stream_write_suspended(watched) || arpc__stream_close_requested(watched))
                    break;
                arpc_coro_sleep_ms(1);
            }
        }
        rc = read_msg(st, msg);
        if (rc != 0)
            break;
        count++;
    }
    arpc_buf_destroy(msg);
    atomic_store(&slow_peak, arpc__stream_peak_queued(st));
    if (rc != ARPC_EEOS)
        return rc;
    return write_number(st, count);
}

static void sink_finish(arpc_stream *st, int status)
{
    atomic_store(&sink_canceled, arpc_request_is_canceled(arpc_stream_request(st)));
    atomic_store(&sink_status, status);
    atomic_store(&sink_done, true);
}

static int handle_sink(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    int rc;
    while ((rc = read_msg(st, msg)) == 0)
        atomic_fetch_add(&sink_reads, 1);
    arpc_buf_destroy(msg);
    sink_finish(st, rc);
    return rc == ARPC_EEOS ? 0 : rc;
}

static int handle_cancel_self(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    int rc = read_msg(st, msg);
    if (rc == 0) {
        arpc_stream_cancel(st);
        rc = arpc_stream_write(st, "late", 4);
        int read_rc = read_msg(st, msg);
        if (read_rc != rc)
            rc = ARPC_EINTERNAL; /* both must fail the same way */
    }
    arpc_buf_destroy(msg);
    sink_finish(st, rc);
    return 0; /* ignored: the cancel ended the stream */
}

static int handle_echo_once(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    int rc = read_msg(st, msg);
    if (rc == 0)
        rc = arpc_stream_write(st, arpc_buf_data(msg), arpc_buf_len(msg));
    int second = rc == 0 ? arpc_stream_write(st, "again", 5) : rc;
    int again = rc == 0 ? read_msg(st, msg) : rc;
    arpc_buf_destroy(msg);
    /* Natively both return ARPC_EEOS; over gRPC, whose wire does not say a call is unary,
     * the call is a stream here and its second write goes out (docs/streams.md). */
    sink_finish(st, second == again                     ? second
                    : second == 0 && again == ARPC_EEOS ? 0
                                                        : ARPC_EINTERNAL);
    return rc;
}

static int handle_ticker(arpc_stream *st, void *user_data)
{
    (void)user_data;
    int rc;
    while ((rc = arpc_stream_write(st, "tick", 4)) == 0)
        arpc_coro_sleep_ms(20);
    return rc;
}

static _Atomic(arpc_channel *) relay_channel;
static _Atomic int relay_status;
static _Atomic bool relay_done;

/* Reads one message, then opens S/Sink on the relay channel with its request as parent,
 * writes to it and reads it until that fails: the client's cancel of this stream must
 * reach the downstream one. */
static int handle_relay(arpc_stream *st, void *user_data)
{
    (void)user_data;
    arpc_buf *msg = NULL;
    ASSERT_OK(arpc_buf_create(&msg));
    int rc = read_msg(st, msg);
    arpc_stream *down = NULL;
    if (rc == 0) {
        arpc_call_opts opts;
        arpc_call_opts_init(&opts);
        opts.parent = arpc_stream_request(st);
        rc = arpc_stream_open(atomic_load(&relay_channel), "S/Sink", &opts, &down);
    }
    if (rc == 0)
        rc = arpc_stream_write(down, "abc", 3);
    while (rc == 0)
        rc = read_msg(down, msg);
    arpc_stream_destroy(down);
    arpc_buf_destroy(msg);
    atomic_store(&relay_status, rc);
    atomic_store(&relay_done, true);
    return rc;
}

void sx_relay_reset(arpc_channel *ch)
{
    atomic_store(&relay_channel, ch);
    atomic_store(&relay_status, 0);
    atomic_store(&relay_done, false);
}

static bool relay_is_done(void *arg)
{
    (void)arg;
    return atomic_load(&relay_done);
}

int sx_wait_relay_status(void)
{
    ASSERT_TRUE(wait_until(relay_is_done, NULL, WAIT_MS));
    return atomic_load(&relay_status);
}

static int handle_unary(arpc_request *req, void *user_data)
{
    (void)user_data;
    ASSERT_EQ(arpc_request_protocol(req), expected_protocol());
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

typedef struct counted {
    arpc_stream_handler_fn fn;
} counted;

/* Every handler runs through this, which counts its start and its end. */
static int handle_counted(arpc_stream *st, void *user_data)
{
    const counted *c = user_data;
    atomic_fetch_add(&handler_starts, 1);
    int rc = c->fn(st, NULL);
    atomic_fetch_add(&handler_ends, 1);
    return rc;
}

static const struct {
    const char *name;
    counted handler;
} methods[] = {
    {"S/Echo", {handle_echo}},
    {"S/Count", {handle_count}},
    {"S/Sum", {handle_sum}},
    {"S/Fail", {handle_fail}},
    {"S/Flood", {handle_flood}},
    {"S/SlowSink", {handle_slow_sink}},
    {"S/Sink", {handle_sink}},
    {"S/CancelSelf", {handle_cancel_self}},
    {"S/EchoOnce", {handle_echo_once}},
    {"S/Ticker", {handle_ticker}},
    {"S/Relay", {handle_relay}},
};

void sx_use_seam(bool on)
{
    use_seam = on;
}

void sx_use_grpc(bool on)
{
    use_grpc = on;
}

bool sx_grpc(void)
{
    return use_grpc;
}

unsigned sx_windows_in_flight(void)
{
    return use_grpc ? 2 : 1;
}

arpc_server *sx_server(arpc_runtime *rt, const arpc_server_opts *opts)
{
    /* Tests that are not about heartbeats allow a slow (sanitizer) loop 5 s, as
     * fault_channel_opts_init does: 1,000 streams' coroutines start in one feed. */
    arpc_server_opts defaults;
    if (opts == NULL) {
        arpc_server_opts_init(&defaults);
        defaults.heartbeat_timeout_ms = 5000;
        opts = &defaults;
    }
    arpc_server *srv = NULL;
    ASSERT_OK(arpc_server_create(rt, opts, &srv));
    if (use_seam)
        ASSERT_OK(arpc__server_add_protocol(srv, &seam_proto));
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        ASSERT_OK(arpc_server_register_stream(srv, methods[i].name, handle_counted,
                                              (void *)&methods[i].handler));
    ASSERT_OK(arpc_server_register(srv, "S/Unary", handle_unary, NULL));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    ASSERT_GT(arpc_server_port(srv), 0);
    return srv;
}

arpc_channel *sx_channel(arpc_runtime *rt, int port, const arpc_channel_opts *opts)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    arpc_channel *ch = NULL;
    arpc_channel_opts copts;
    if (opts != NULL) {
        copts = *opts;
    } else {
        arpc_channel_opts_init(&copts);
        copts.heartbeat_timeout_ms = 5000; /* see sx_server */
    }
    if (use_grpc)
        copts.protocol = ARPC_PROTOCOL_GRPC;
    opts = &copts;
    ASSERT_OK(arpc_channel_create(rt, target, opts, &ch));
    if (use_seam)
        arpc__channel_use_protocol(ch, &seam_proto);
    return ch;
}

uint64_t sx_handler_ends(void)
{
    return atomic_load(&handler_ends);
}

static bool ends_reached(void *arg)
{
    return atomic_load(&handler_ends) >= *(uint64_t *)arg;
}

bool sx_wait_handler_ends(uint64_t n)
{
    return wait_until(ends_reached, &n, WAIT_MS);
}

static bool running_reached(void *arg)
{
    return atomic_load(&handler_starts) - atomic_load(&handler_ends) >= *(uint64_t *)arg;
}

bool sx_wait_handlers_running(uint64_t n)
{
    return wait_until(running_reached, &n, WAIT_MS);
}

void sx_flood_reset(void)
{
    atomic_store(&flood_written, 0);
}

uint64_t sx_flood_written(void)
{
    return atomic_load(&flood_written);
}

uint64_t sx_flood_write_waits(void)
{
    arpc_stream *st = atomic_load(&flood_stream);
    return st != NULL ? arpc__stream_write_waits(st) : 0;
}

static bool flood_suspended(void *arg)
{
    (void)arg;
    arpc_stream *st = atomic_load(&flood_stream);
    return st != NULL && arpc__stream_write_suspended(st);
}

bool sx_wait_flood_suspended(void)
{
    return wait_until(flood_suspended, NULL, WAIT_MS);
}

void sx_slow_sink_watch(arpc_stream *st)
{
    atomic_store(&slow_watched, st);
}

uint64_t sx_slow_sink_peak(void)
{
    return atomic_load(&slow_peak);
}

void sx_sink_reset(void)
{
    atomic_store(&sink_reads, 0);
    atomic_store(&sink_status, 0);
    atomic_store(&sink_done, false);
    atomic_store(&sink_canceled, false);
}

static bool sink_read_reached(void *arg)
{
    return atomic_load(&sink_reads) >= *(uint64_t *)arg;
}

bool sx_wait_sink_read(uint64_t n)
{
    return wait_until(sink_read_reached, &n, WAIT_MS);
}

uint64_t sx_sink_reads(void)
{
    return atomic_load(&sink_reads);
}

static bool sink_is_done(void *arg)
{
    (void)arg;
    return atomic_load(&sink_done);
}

bool sx_wait_sink_done(void)
{
    return wait_until(sink_is_done, NULL, WAIT_MS);
}

int sx_sink_status(void)
{
    return atomic_load(&sink_status);
}

bool sx_sink_saw_canceled(void)
{
    return atomic_load(&sink_canceled);
}

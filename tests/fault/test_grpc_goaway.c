/*
 * GOAWAY on the gRPC client, against a scripted HTTP/2 server (an nghttp2
 * server session on a blocking socket, on the raw_server thread) and a real
 * arpc gRPC server as the channel's second endpoint.  Calls are NOT
 * idempotent.
 *
 *  - double GOAWAY: the peer takes three streams (1, 3, 5), sends
 *    GOAWAY(2^31-1), which fails nothing and stops new calls on that link (a
 *    call made now goes to the second server), then GOAWAY(last_stream_id=1)
 *    and answers stream 1 only: the calls of streams 3 and 5 are retried on
 *    the arpc server and succeed, and every call ran exactly once;
 *  - a call at or below the last stream id that the server then drops (the
 *    connection closes unanswered) fails with ARPC_ECLOSED and is not
 *    retried, while the calls above it are; made idempotent, it is retried
 *    and runs once on the arpc server.
 *
 * The peer accepts one connection and then stops listening, like a server
 * going away.  Synchronisation: the peer's counters (atomics) and the
 * channel's stats, through wait_until.
 */
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_util.h"
#include "raw_peer.h"
#include "test.h"
#include "test_stats.h"

#define MAX_STREAMS 8
#define CALLS_MAX   16

enum { PEER_WAIT, PEER_NOTICE, PEER_GOAWAY, PEER_DONE };

/* The scripted server: the streams it got, and what the test asks of it. */
typedef struct peer {
    raw_server srv;
    nghttp2_session *h2;
    bool drop;           /* after GOAWAY(1): close without answering stream 1 */
    _Atomic int phase;   /* set by the test: PEER_NOTICE, PEER_GOAWAY */
    _Atomic int streams; /* complete requests received */
    int32_t ids[MAX_STREAMS];
    char payloads[MAX_STREAMS][16]; /* the gRPC message of each, as text */
    size_t lens[MAX_STREAMS];
    size_t sent; /* stream 1's answer: bytes of the message given to nghttp2 */
} peer;

static int find_stream(peer *p, int32_t id)
{
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (p->ids[i] == id)
            return i;
    }
    return -1;
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *u)
{
    (void)h2;
    peer *p = u;
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (p->ids[i] == 0) {
            p->ids[i] = f->hd.stream_id;
            return 0;
        }
    }
    return 0;
}

/* DATA: the 5-byte gRPC prefix, then the message (a short text here). */
static int on_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *u)
{
    (void)h2;
    (void)flags;
    peer *p = u;
    int i = find_stream(p, id);
    for (size_t k = 0; i >= 0 && k < len; k++, p->lens[i]++) {
        if (p->lens[i] >= 5 && p->lens[i] - 5 < sizeof(p->payloads[i]) - 1)
            p->payloads[i][p->lens[i] - 5] = (char)data[k];
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *u)
{
    (void)h2;
    peer *p = u;
    bool request = f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS;
    if (request && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        atomic_fetch_add(&p->streams, 1);
    return 0;
}

static const uint8_t answer_a[] = {0, 0, 0, 0, 1, 'A'}; /* one message: "A" */

static ssize_t read_answer(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *u)
{
    (void)src;
    peer *p = u;
    size_t n = sizeof(answer_a) - p->sent;
    if (n > len)
        n = len;
    memcpy(buf, answer_a + p->sent, n);
    p->sent += n;
    if (p->sent == sizeof(answer_a)) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        const nghttp2_nv trailer[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0}};
        ASSERT_EQ(nghttp2_submit_trailer(h2, id, trailer, 1), 0);
    }
    return (ssize_t)n;
}

static void answer_stream_1(peer *p)
{
    const nghttp2_nv hdrs[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0},
    };
    nghttp2_data_provider prd = {.read_callback = read_answer};
    ASSERT_EQ(nghttp2_submit_response(p->h2, 1, hdrs, 2, &prd), 0);
}

static void flush_out(peer *p, int fd)
{
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(p->h2, &data)) > 0)
        raw_send(fd, data, (size_t)n);
    ASSERT_TRUE(n == 0);
}

/* Reads what came (waiting up to 10 ms) into the session; false once the client closed. */
static bool pump_in(peer *p, int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 10) <= 0)
        return true;
    uint8_t buf[16384];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0)
        return false;
    ASSERT_EQ(nghttp2_session_mem_recv(p->h2, buf, (size_t)n), n);
    return true;
}

/* The next step the test asked for, once. */
static void step(peer *p, int fd, int *done_phase)
{
    int phase = atomic_load(&p->phase);
    if (phase == *done_phase)
        return;
    *done_phase = phase;
    if (phase == PEER_NOTICE) {
        ASSERT_EQ(nghttp2_submit_shutdown_notice(p->h2), 0);
    } else if (phase == PEER_GOAWAY) {
        ASSERT_EQ(nghttp2_submit_goaway(p->h2, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, NULL, 0), 0);
        if (!p->drop)
            answer_stream_1(p);
    }
    flush_out(p, fd);
    if (phase == PEER_GOAWAY && p->drop) {
        /* Drop the connection: FIN after the GOAWAY, and read on until the client closes
         * too, so no reset can overtake the GOAWAY. */
        shutdown(fd, SHUT_WR);
        int64_t end = test_now_ms() + 5000;
        while (test_now_ms() < end && pump_in(p, fd))
            ;
        atomic_store(&p->phase, PEER_DONE);
    }
}

static void peer_script(int fd, void *arg)
{
    peer *p = arg;
    /* One connection only: later connects are refused, like a server going away. */
    shutdown(p->srv.listen_fd, SHUT_RDWR);
    nghttp2_session_callbacks *cbs;
    ASSERT_EQ(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    ASSERT_EQ(nghttp2_session_server_new(&p->h2, cbs, p), 0);
    nghttp2_session_callbacks_del(cbs);
    ASSERT_EQ(nghttp2_submit_settings(p->h2, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    int done_phase = PEER_WAIT;
    int64_t end = test_now_ms() + 20000;
    while (test_now_ms() < end && atomic_load(&p->phase) != PEER_DONE) {
        flush_out(p, fd);
        if (!pump_in(p, fd))
            break;
        step(p, fd, &done_phase);
    }
    nghttp2_session_del(p->h2);
}

/* ---- the arpc side ---------------------------------------------------------------------- */

static _Atomic int b_runs[CALLS_MAX]; /* the arpc server's handler runs per call */

static int handle_who(arpc_request *req, void *user_data)
{
    (void)user_data;
    char text[16];
    int id;
    if (fault_request_text(req, text, sizeof(text)) > 0 && sscanf(text, "c%d", &id) == 1 &&
        id >= 0 && id < CALLS_MAX)
        atomic_fetch_add(&b_runs[id], 1);
    return arpc_buf_append(arpc_request_response(req), "B", 1);
}

typedef struct call_rec {
    _Atomic int done;
    int status;
    char who; /* 'A' or 'B': which server answered */
} call_rec;

static call_rec recs[CALLS_MAX];

static void on_call(int status, const void *rsp, size_t rsp_len, void *arg)
{
    call_rec *r = arg;
    r->status = status;
    r->who = status == 0 && rsp_len == 1 ? *(const char *)rsp : '?';
    atomic_fetch_add(&r->done, 1);
}

typedef struct fixture {
    arpc_runtime *rt;
    arpc_server *b;
    arpc_channel *ch;
    peer a;
    int ncalls;
    bool idempotent; /* every call of the test */
} fixture;

static void start_call(fixture *fx)
{
    int i = fx->ncalls++;
    char text[16];
    snprintf(text, sizeof(text), "c%d", i);
    arpc_call_opts opts = fault_call_opts(10000);
    opts.idempotent = fx->idempotent;
    ASSERT_OK(arpc_call_async(fx->ch, "who", text, strlen(text), &opts, on_call, &recs[i]));
}

static bool call_done(void *arg)
{
    return atomic_load(&((call_rec *)arg)->done) > 0;
}

typedef struct stream_wait {
    peer *p;
    int at_least;
    call_rec *rec; /* or this call completed (it went to the arpc server) */
} stream_wait;

static bool stream_or_done(void *arg)
{
    stream_wait *w = arg;
    return atomic_load(&w->p->streams) >= w->at_least ||
           (w->rec != NULL && atomic_load(&w->rec->done) > 0);
}

/* Calls until the peer holds three streams: each goes to the peer or to the arpc server,
 * as the balancer chooses; those answered by the arpc server are done at once. */
static void three_streams_at_a(fixture *fx)
{
    while (atomic_load(&fx->a.streams) < 3) {
        ASSERT_TRUE(fx->ncalls < CALLS_MAX - 2);
        int before = atomic_load(&fx->a.streams);
        start_call(fx);
        stream_wait w = {&fx->a, before + 1, &recs[fx->ncalls - 1]};
        ASSERT_TRUE(wait_until(stream_or_done, &w, 5000));
    }
}

static void fixture_start(fixture *fx, bool drop, bool idempotent)
{
    memset(fx, 0, sizeof(*fx));
    fx->idempotent = idempotent;
    memset(recs, 0, sizeof(recs));
    for (int i = 0; i < CALLS_MAX; i++)
        atomic_store(&b_runs[i], 0);
    fx->a.drop = drop;
    raw_server_start(&fx->a.srv, peer_script, &fx->a);
    fx->rt = fault_runtime(1);
    const fault_method more[] = {{"who", handle_who}, {NULL, NULL}};
    fx->b = fault_server(fx->rt, NULL, more);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%u,127.0.0.1:%d", fx->a.srv.port,
             arpc_server_port(fx->b));
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    o.protocol = ARPC_PROTOCOL_GRPC;
    ASSERT_OK(arpc_channel_create(fx->rt, target, &o, &fx->ch));
}

static void fixture_stop(fixture *fx)
{
    atomic_store(&fx->a.phase, PEER_DONE);
    raw_server_join(&fx->a.srv);
    arpc_channel_destroy(fx->ch);
    arpc_server_destroy(fx->b);
    arpc_runtime_destroy(fx->rt);
}

/* The call the peer got on stream `sid`. */
static int call_of_stream(peer *p, int32_t sid)
{
    int i = find_stream(p, sid);
    int id = -1;
    ASSERT_TRUE(i >= 0 && sscanf(p->payloads[i], "c%d", &id) == 1);
    ASSERT_TRUE(id >= 0 && id < CALLS_MAX);
    return id;
}

static bool all_done(void *arg)
{
    fixture *fx = arg;
    for (int i = 0; i < fx->ncalls; i++) {
        if (atomic_load(&recs[i].done) == 0)
            return false;
    }
    return true;
}

static void test_double_goaway_retries_above_last_id(void)
{
    fixture fx;
    fixture_start(&fx, false, false);
    three_streams_at_a(&fx);
    ASSERT_EQ(find_stream(&fx.a, 1) >= 0 && find_stream(&fx.a, 3) >= 0 &&
                  find_stream(&fx.a, 5) >= 0,
              true);
    int c1 = call_of_stream(&fx.a, 1), c3 = call_of_stream(&fx.a, 3), c5 = call_of_stream(&fx.a, 5);

    /* GOAWAY(2^31-1): nothing fails, nothing moves, new calls avoid the link. */
    atomic_store(&fx.a.phase, PEER_NOTICE);
    ASSERT_TRUE(WAIT_CHANNEL_STAT_GE(fx.ch, goaways, 1, 5000));
    ASSERT_EQ(
        atomic_load(&recs[c1].done) + atomic_load(&recs[c3].done) + atomic_load(&recs[c5].done), 0);
    int extra = fx.ncalls;
    for (int k = 0; k < 2; k++) {
        start_call(&fx);
        ASSERT_TRUE(wait_until(call_done, &recs[fx.ncalls - 1], 5000));
        ASSERT_EQ(recs[fx.ncalls - 1].status, 0);
        ASSERT_EQ(recs[fx.ncalls - 1].who, 'B');
    }
    ASSERT_EQ(atomic_load(&fx.a.streams), 3);
    ASSERT_EQ(atomic_load(&recs[c3].done), 0);

    /* GOAWAY(1), stream 1 answered: 3 and 5 never ran there and go to B. */
    arpc_channel_stats before;
    arpc_channel_get_stats(fx.ch, &before);
    atomic_store(&fx.a.phase, PEER_GOAWAY);
    ASSERT_TRUE(wait_until(all_done, &fx, 10000));
    arpc_channel_stats after;
    arpc_channel_get_stats(fx.ch, &after);
    fprintf(stderr, "double goaway: %d calls (%d extra), goaways %llu, retries %llu, late %llu\n",
            fx.ncalls, fx.ncalls - extra, (unsigned long long)after.goaways,
            (unsigned long long)(after.retries - before.retries),
            (unsigned long long)(after.late_answers - before.late_answers));
    for (int i = 0; i < fx.ncalls; i++) {
        ASSERT_EQ(recs[i].status, 0);
        ASSERT_EQ(atomic_load(&recs[i].done), 1);
        ASSERT_EQ(recs[i].who, i == c1 ? 'A' : 'B');
        ASSERT_EQ(atomic_load(&b_runs[i]), i == c1 ? 0 : 1);
    }
    ASSERT_EQ(after.goaways, 2);
    ASSERT_EQ(after.retries - before.retries, 2);
    ASSERT_EQ(after.late_answers, before.late_answers);
    fixture_stop(&fx);
}

/* GOAWAY(1), then the connection closes with stream 1 unanswered: the calls of streams 3
 * and 5 run once on the arpc server.  Returns the calls of streams 1, 3 and 5. */
static void drop_after_goaway(fixture *fx, int c[3])
{
    three_streams_at_a(fx);
    c[0] = call_of_stream(&fx->a, 1);
    c[1] = call_of_stream(&fx->a, 3);
    c[2] = call_of_stream(&fx->a, 5);
    atomic_store(&fx->a.phase, PEER_GOAWAY);
    ASSERT_TRUE(wait_until(all_done, fx, 10000));
    for (int i = 1; i < 3; i++) {
        ASSERT_EQ(recs[c[i]].status, 0);
        ASSERT_EQ(recs[c[i]].who, 'B');
        ASSERT_EQ(atomic_load(&b_runs[c[i]]), 1);
    }
    for (int i = 0; i < fx->ncalls; i++)
        ASSERT_EQ(atomic_load(&recs[i].done), 1);
}

static void test_dropped_call_below_last_id_fails(void)
{
    fixture fx;
    int c[3];
    fixture_start(&fx, true, false);
    drop_after_goaway(&fx, c);
    fprintf(stderr, "dropped: stream 1's call ended %d (%s)\n", recs[c[0]].status,
            arpc_strerror(recs[c[0]].status));
    ASSERT_ERR(recs[c[0]].status, ARPC_ECLOSED);
    ASSERT_EQ(atomic_load(&b_runs[c[0]]), 0);
    fixture_stop(&fx);
}

/* The same drop with idempotent calls: stream 1's call may run twice, so it is retried. */
static void test_dropped_idempotent_call_is_retried(void)
{
    fixture fx;
    int c[3];
    fixture_start(&fx, true, true);
    drop_after_goaway(&fx, c);
    ASSERT_EQ(recs[c[0]].status, 0);
    ASSERT_EQ(recs[c[0]].who, 'B');
    ASSERT_EQ(atomic_load(&b_runs[c[0]]), 1);
    fixture_stop(&fx);
}

int main(void)
{
    RUN_TEST(test_double_goaway_retries_above_last_id);
    RUN_TEST(test_dropped_call_below_last_id_fails);
    RUN_TEST(test_dropped_idempotent_call_is_retried);
    return 0;
}

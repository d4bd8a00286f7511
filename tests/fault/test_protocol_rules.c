/*
 * Wire rules of docs/protocol.md, read off the wire by raw peers:
 *  - request ids (section 4): a raw client sending id 0, a decreasing id or a
 *    repeated id gets its connection closed and counted in protocol_errors;
 *    increasing ids with gaps are served;
 *  - PING ids (section 4): the channel's PINGs take ids 1, 2, 3 of their own
 *    while its requests take 1, 2 ...; a PONG with a wrong id answers nothing
 *    (its settings are not applied), the right one's are; the first PINGs
 *    carry the client's settings until the server's arrive, later ones none;
 *    the client answers a server's PING with settings with its own settings,
 *    and a bare PING with a bare PONG;
 *  - deadlines (section 6): timeout_ms is the remaining time rounded up (a
 *    remainder under 1 ms travels as 1), a call whose deadline passed before
 *    it could be sent is not sent, and a remaining time above 2^32-1 ms
 *    travels as 2^32-1 (never as 0, "none"), whether the call is sent at once
 *    or after waiting for its connection.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_util.h"
#include "raw_peer.h"
#include "test.h"
#include "test_stats.h"

#define WAIT_MS 10000

/* ---- request ids ---------------------------------------------------------- */

static void expect_echo(int fd, uint64_t id)
{
    raw_frame rf;
    ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
    ASSERT_EQ(rf.f.type, ARPC__FRAME_RESPONSE);
    ASSERT_EQ(rf.f.request_id, id);
    ASSERT_OK(rf.f.status);
    raw_frame_free(&rf);
}

/* Sends requests with `ids` (the last one breaks the rule): the earlier ones
 * are answered, then the server closes the connection and counts it. */
static void expect_refused_ids(arpc_server *srv, const uint64_t *ids, size_t n, uint64_t errors)
{
    int fd = raw_connect(arpc_server_port(srv));
    /* One at a time: a protocol error closes at once, dropping unwritten answers. */
    for (size_t i = 0; i + 1 < n; i++) {
        raw_send_request(fd, ids[i], 0, "echo", "x", 1);
        expect_echo(fd, ids[i]);
    }
    raw_send_request(fd, ids[n - 1], 0, "echo", "x", 1);
    ASSERT_TRUE(raw_wait_closed(fd, WAIT_MS));
    close(fd);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(srv, protocol_errors, errors, WAIT_MS));
}

static void test_request_ids_must_increase(void)
{
    arpc_runtime *rt = fault_runtime(1);
    arpc_server *srv = fault_echo_server(rt, NULL);

    const uint64_t zero[] = {0};
    expect_refused_ids(srv, zero, 1, 1);
    const uint64_t decreasing[] = {5, 3};
    expect_refused_ids(srv, decreasing, 2, 2);
    const uint64_t repeated[] = {1, 2, 2};
    expect_refused_ids(srv, repeated, 3, 3);

    /* Gaps are fine: ids only have to increase. */
    int fd = raw_connect(arpc_server_port(srv));
    const uint64_t gaps[] = {1, 2, 10, UINT64_MAX};
    for (size_t i = 0; i < 4; i++)
        raw_send_request(fd, gaps[i], 0, "echo", "x", 1);
    for (size_t i = 0; i < 4; i++)
        expect_echo(fd, gaps[i]);
    arpc_server_stats s;
    arpc_server_get_stats(srv, &s);
    ASSERT_EQ(s.protocol_errors, 3);
    ASSERT_EQ(s.requests, 1 + 2 + 3 - 3 + 4); /* refused ones are not counted */
    close(fd);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

/* ---- PING ids --------------------------------------------------------------- */

#define MAX_SEEN 16
#define TINY     1024 /* the max frame the peer announces */

typedef struct ping_peer {
    _Atomic int npings;
    uint64_t ping_ids[MAX_SEEN];
    uint32_t ping_max_frame[MAX_SEEN]; /* the settings each PING carried (0: none) */
    uint32_t ping_payload[MAX_SEEN];
    _Atomic int nrequests;
    uint64_t request_ids[MAX_SEEN];
} ping_peer;

/* Answers the first PING with a PONG of a wrong id (carrying settings the
 * client must not apply), the second with the right id and its settings
 * (max frame TINY), later ones with bare PONGs; echoes requests. */
static bool ping_frame(int fd, const arpc__frame *f, void *arg)
{
    ping_peer *p = arg;
    int k = atomic_load(&p->npings);
    if (f->type == ARPC__FRAME_PING && k < MAX_SEEN) {
        p->ping_ids[k] = f->request_id;
        p->ping_max_frame[k] = raw_settings_get(f, 1);
        p->ping_payload[k] = f->payload_len;
        if (k == 0)
            raw_send_settings(fd, ARPC__FRAME_PONG, f->request_id + 100, TINY, 0);
        else if (k == 1)
            raw_send_settings(fd, ARPC__FRAME_PONG, f->request_id, TINY, 0);
        else
            raw_send_control(fd, ARPC__FRAME_PONG, f->request_id);
        atomic_store(&p->npings, k + 1);
    } else if (f->type == ARPC__FRAME_REQUEST) {
        int r = atomic_load(&p->nrequests);
        if (r < MAX_SEEN)
            p->request_ids[r] = f->request_id;
        atomic_store(&p->nrequests, r + 1); /* before the answer the client waits for */
        raw_send_response(fd, f->request_id, 0, f->payload, f->payload_len);
    }
    return true;
}

static void ping_script(int fd, void *arg)
{
    raw_serve(fd, WAIT_MS, ping_frame, arg);
}

static bool three_pings(void *arg)
{
    return atomic_load(&((ping_peer *)arg)->npings) >= 3;
}

static int echo_bytes(arpc_channel *ch, size_t len)
{
    char *text = malloc(len + 1);
    ASSERT_TRUE(text != NULL);
    memset(text, 'p', len);
    arpc_call_opts opts = fault_call_opts(WAIT_MS);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    int rc = arpc_call(ch, "echo", text, len, &opts, rsp);
    if (rc == 0)
        ASSERT_EQ(arpc_buf_len(rsp), len);
    arpc_buf_destroy(rsp);
    free(text);
    return rc;
}

static void test_ping_ids_are_their_own(void)
{
    arpc_runtime *rt = fault_runtime(1);
    ping_peer *p = calloc(1, sizeof(*p));
    ASSERT_TRUE(p != NULL);
    raw_server peer;
    raw_server_start(&peer, ping_script, p);
    arpc_channel_opts opts;
    arpc_channel_opts_init(&opts);
    opts.heartbeat_interval_ms = 50; /* PINGs come quickly while idle */
    opts.heartbeat_timeout_ms = 5000;
    arpc_channel *ch = fault_channel(rt, peer.port, &opts);

    /* The wrong-id PONG's limit was not applied: 2000 bytes go through. */
    ASSERT_OK(echo_bytes(ch, 2000));
    /* The second PING is answered correctly, the third carries no settings. */
    ASSERT_TRUE(wait_until(three_pings, p, WAIT_MS));
    /* Now the announced limit holds: refused locally, never sent. */
    ASSERT_ERR(echo_bytes(ch, 2000), ARPC_ETOOBIG);
    ASSERT_OK(echo_bytes(ch, 10));

    for (int k = 0; k < 3; k++)
        ASSERT_EQ(p->ping_ids[k], (uint64_t)k + 1);
    ASSERT_EQ(p->ping_max_frame[0], opts.max_frame_size);
    ASSERT_EQ(p->ping_max_frame[1], opts.max_frame_size);
    ASSERT_EQ(p->ping_payload[2], 0);
    ASSERT_EQ(atomic_load(&p->nrequests), 2);
    ASSERT_EQ(p->request_ids[0], 1);
    ASSERT_EQ(p->request_ids[1], 2);
    arpc_channel_destroy(ch);
    raw_server_join(&peer);
    free(p);
    arpc_runtime_destroy(rt);
}

/* The server PINGs the client: with settings, then without. */
typedef struct server_ping {
    uint32_t pong_max_frame[2];
    uint32_t pong_payload[2];
    uint64_t pong_ids[2];
    int npongs;
    bool pinged;
} server_ping;

static bool server_ping_frame(int fd, const arpc__frame *f, void *arg)
{
    server_ping *sp = arg;
    if (f->type == ARPC__FRAME_PING)
        raw_send_control(fd, ARPC__FRAME_PONG, f->request_id);
    if (f->type == ARPC__FRAME_REQUEST)
        raw_send_response(fd, f->request_id, 0, f->payload, f->payload_len);
    if (f->type == ARPC__FRAME_PONG) {
        sp->pong_ids[sp->npongs] = f->request_id;
        sp->pong_max_frame[sp->npongs] = raw_settings_get(f, 1);
        sp->pong_payload[sp->npongs++] = f->payload_len;
    }
    if (!sp->pinged && f->type == ARPC__FRAME_REQUEST) {
        sp->pinged = true;
        raw_send_settings(fd, ARPC__FRAME_PING, 77, 4096, 0);
        raw_send_control(fd, ARPC__FRAME_PING, 78);
    }
    return sp->npongs < 2;
}

/* Ends once both PONGs are in; fails the test if the client stops first. */
static void server_ping_script(int fd, void *arg)
{
    ASSERT_TRUE(raw_serve(fd, WAIT_MS, server_ping_frame, arg));
}

static void test_client_answers_server_pings(void)
{
    arpc_runtime *rt = fault_runtime(1);
    server_ping sp = {0};
    raw_server peer;
    raw_server_start(&peer, server_ping_script, &sp);
    arpc_channel_opts opts;
    fault_channel_opts_init(&opts);
    opts.max_frame_size = 100000;
    arpc_channel *ch = fault_channel(rt, peer.port, &opts);
    ASSERT_OK(fault_echo_call(ch, WAIT_MS));
    raw_server_join(&peer); /* the script ends once both PONGs are in */
    ASSERT_EQ(sp.pong_ids[0], 77);
    ASSERT_EQ(sp.pong_max_frame[0], 100000); /* a PING with settings: answered with ours */
    ASSERT_EQ(sp.pong_ids[1], 78);
    ASSERT_EQ(sp.pong_payload[1], 0); /* a bare PING: a bare PONG */
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
}

/* ---- deadline encoding ------------------------------------------------------ */

typedef struct deadline_peer {
    _Atomic int nrequests;
    uint32_t timeout_ms[MAX_SEEN];
    char tag[MAX_SEEN][16];
} deadline_peer;

/* Answers PINGs (bare PONGs: no limits), records each request's timeout and
 * payload (its tag), and echoes it. */
static bool deadline_frame(int fd, const arpc__frame *f, void *arg)
{
    deadline_peer *p = arg;
    if (f->type == ARPC__FRAME_PING) {
        raw_send_control(fd, ARPC__FRAME_PONG, f->request_id);
    } else if (f->type == ARPC__FRAME_REQUEST) {
        int r = atomic_load(&p->nrequests);
        if (r < MAX_SEEN) {
            p->timeout_ms[r] = f->timeout_ms;
            size_t n = f->payload_len < 15 ? f->payload_len : 15;
            memcpy(p->tag[r], f->payload, n);
            p->tag[r][n] = '\0';
        }
        atomic_store(&p->nrequests, r + 1); /* before the answer the client waits for */
        raw_send_response(fd, f->request_id, 0, f->payload, f->payload_len);
    }
    return true;
}

static void deadline_script(int fd, void *arg)
{
    raw_serve(fd, WAIT_MS, deadline_frame, arg);
}

typedef struct deadline_fixture {
    arpc_runtime *rt;
    deadline_peer *p;
    raw_server peer;
    arpc_channel *ch;
} deadline_fixture;

static void deadline_start(deadline_fixture *f, arpc_runtime *rt)
{
    f->rt = rt;
    f->p = calloc(1, sizeof(*f->p));
    ASSERT_TRUE(f->p != NULL);
    raw_server_start(&f->peer, deadline_script, f->p);
    f->ch = fault_channel(rt, f->peer.port, NULL);
}

static void deadline_stop(deadline_fixture *f)
{
    arpc_channel_destroy(f->ch);
    raw_server_join(&f->peer);
    free(f->p);
}

/* Calls echo(tag) with `timeout_ms`; returns the timeout the peer saw. */
static uint32_t sent_timeout(deadline_fixture *f, const char *tag, int64_t timeout_ms)
{
    arpc_call_opts opts = fault_call_opts(timeout_ms);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    int before = atomic_load(&f->p->nrequests);
    ASSERT_OK(arpc_call(f->ch, "echo", tag, strlen(tag), &opts, rsp));
    arpc_buf_destroy(rsp);
    ASSERT_EQ(atomic_load(&f->p->nrequests), before + 1);
    ASSERT_STREQ(f->p->tag[before], tag);
    return f->p->timeout_ms[before];
}

static void test_timeouts_sent_at_once(void)
{
    arpc_runtime *rt = fault_runtime(1);
    deadline_fixture f;
    deadline_start(&f, rt);
    /* The first call waits for the connection: it carries what is left, rounded up. */
    uint32_t warm = sent_timeout(&f, "warm", 5000);
    ASSERT_LE(warm, 5000);
    ASSERT_GT(warm, 1000);
    ASSERT_EQ(sent_timeout(&f, "ms", 1500), 1500);
    ASSERT_EQ(sent_timeout(&f, "none", 0), 0);
    ASSERT_EQ(sent_timeout(&f, "max", UINT32_MAX), UINT32_MAX);
    ASSERT_EQ(sent_timeout(&f, "over", (int64_t)UINT32_MAX + 5000), UINT32_MAX);
    ASSERT_EQ(sent_timeout(&f, "huge", INT64_MAX), UINT32_MAX);
    deadline_stop(&f);
    arpc_runtime_destroy(rt);
}

/* A call that waits for its connection is sent with its remaining time. */
static void test_timeout_over_32_bits_after_waiting_for_connection(void)
{
    arpc_runtime *rt = fault_runtime(1);
    deadline_fixture f;
    deadline_start(&f, rt);
    ASSERT_EQ(sent_timeout(&f, "over", (int64_t)1 << 40), UINT32_MAX);
    ASSERT_EQ(sent_timeout(&f, "ms", 4000), 4000); /* fresh: sent as given */
    deadline_stop(&f);
    arpc_runtime_destroy(rt);
}

/* On the channel's loop: starts a call while the connection is still being
 * set up, then holds the loop until `hold_ns` before the call's deadline, so
 * the call is sent (or not) with that little time left. */
typedef struct late_send {
    deadline_fixture *f;
    int64_t timeout_ms;
    int64_t hold_until_left_ns;
    _Atomic int status;
    _Atomic bool done;
    arpc_event finished;
} late_send;

static void on_late_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    late_send *l = user_data;
    atomic_store(&l->status, status);
    atomic_store(&l->done, true);
    arpc_event_signal(&l->finished);
}

static void late_send_task(void *arg)
{
    late_send *l = arg;
    arpc_call_opts opts = fault_call_opts(l->timeout_ms);
    int64_t start = test_now_ns();
    ASSERT_OK(arpc_call_async(l->f->ch, "echo", "late", 4, &opts, on_late_done, l));
    int64_t until = start + l->timeout_ms * 1000000 - l->hold_until_left_ns;
    while (test_now_ns() < until)
        ;
}

static int run_late_send(deadline_fixture *f, int64_t timeout_ms, int64_t left_ns)
{
    late_send l = {.f = f, .timeout_ms = timeout_ms, .hold_until_left_ns = left_ns};
    arpc_event_init(&l.finished);
    ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(f->rt, 0), late_send_task, &l));
    ASSERT_OK(arpc_event_wait(&l.finished, WAIT_MS));
    return atomic_load(&l.status);
}

static void test_sub_ms_remaining_rounds_up(void)
{
    arpc_runtime *rt = fault_runtime(1);
    /* Less than 1 ms is left when the connection completes and the call is
     * sent; on a slow machine it may run out first (then nothing is sent):
     * a few tries, one must show the rounding. */
    int sent = 0;
    for (int attempt = 0; attempt < 8 && sent == 0; attempt++) {
        deadline_fixture f;
        deadline_start(&f, rt);
        int rc = run_late_send(&f, 30, 600 * 1000);
        int n = atomic_load(&f.p->nrequests);
        if (rc != 0)
            ASSERT_ERR(rc, ARPC_ETIMEDOUT);
        if (rc == 0)
            ASSERT_EQ(n, 1);
        /* A call sent with its last millisecond may also time out before the
         * answer is back (seen under load): what was sent is what counts. */
        if (n == 1) {
            ASSERT_EQ(f.p->timeout_ms[0], 1); /* 0 would mean "no deadline" */
            sent++;
        } else {
            ASSERT_EQ(n, 0);
        }
        deadline_stop(&f);
    }
    ASSERT_EQ(sent, 1);
    arpc_runtime_destroy(rt);
}

static void test_expired_call_is_not_sent(void)
{
    arpc_runtime *rt = fault_runtime(1);
    deadline_fixture f;
    deadline_start(&f, rt);
    /* Held 5 ms past its deadline before the connection could carry it. */
    ASSERT_ERR(run_late_send(&f, 5, -5 * 1000 * 1000), ARPC_ETIMEDOUT);
    ASSERT_EQ(sent_timeout(&f, "after", 2000), 2000);
    ASSERT_EQ(atomic_load(&f.p->nrequests), 1); /* only "after" reached the peer */
    deadline_stop(&f);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_request_ids_must_increase);
    RUN_TEST(test_ping_ids_are_their_own);
    RUN_TEST(test_client_answers_server_pings);
    RUN_TEST(test_timeouts_sent_at_once);
    RUN_TEST(test_timeout_over_32_bits_after_waiting_for_connection);
    RUN_TEST(test_sub_ms_remaining_rounds_up);
    RUN_TEST(test_expired_call_is_not_sent);
    return 0;
}

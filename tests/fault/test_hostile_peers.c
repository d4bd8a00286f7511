/*
 * Hostile and broken peers cost only their own connection.
 *
 * Client side: a channel talks to an in-process "server" that is really a
 * plain thread on a blocking listener, which misbehaves in one way per case:
 * never answers, answers garbage, half a frame, an oversized frame header, a
 * REQUEST, or answers PINGs for a while and then falls silent.  Each case
 * checks the error the caller gets and when, while a second channel to a
 * healthy arpc_server on the same runtime keeps working.
 *
 * Server side: raw sockets send garbage, a frame type that only travels to
 * clients, or half a frame, to a healthy arpc_server: the bad connection is
 * closed and counted, the others are unaffected; an oversized request header
 * is answered ARPC_ETOOBIG without closing its connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_util.h"
#include "proto/frame.h"
#include "raw_peer.h"
#include "test.h"
#include "test_stats.h"

#define PROMPT_MS 1000 /* "promptly": far below the 5 s timeouts used */

typedef enum peer_mode {
    PEER_SILENT,        /* reads everything, never writes */
    PEER_GARBAGE,       /* answers a request with an HTTP response */
    PEER_HALF,          /* answers with 10 bytes of a valid header, then stalls */
    PEER_TOOBIG,        /* answers with a header announcing a 100 MiB payload */
    PEER_REQUEST,       /* sends a REQUEST back: only servers receive those */
    PEER_PONG_THEN_MUTE /* answers PINGs and requests until `mute`, then nothing */
} peer_mode;

/* A raw_peer that misbehaves in one way, its `mode`. */
typedef struct hostile_peer {
    raw_peer raw;
    peer_mode mode;
    _Atomic int pongs;
    _Atomic bool mute;
    _Atomic int64_t last_pong_ms;
    _Atomic int64_t half_sent_ms; /* when the half frame went out */
} hostile_peer;

static void answer_request(hostile_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    switch (p->mode) {
    case PEER_SILENT:
        break;
    case PEER_GARBAGE: {
        static const char http[] = "HTTP/1.1 200 OK\r\n\r\n";
        raw_send(c->fd, http, sizeof(http) - 1);
        break;
    }
    case PEER_HALF:
        raw_send_header(c->fd, ARPC__FRAME_RESPONSE, f->request_id, 0, 4, 10);
        atomic_store(&p->half_sent_ms, test_now_ms());
        break;
    case PEER_TOOBIG:
        raw_send_header(c->fd, ARPC__FRAME_RESPONSE, f->request_id, 0, 100u * 1024 * 1024,
                        ARPC__FRAME_HEADER_SIZE);
        break;
    case PEER_REQUEST:
        raw_send_request(c->fd, 1, 0, "echo", NULL, 0);
        break;
    case PEER_PONG_THEN_MUTE:
        if (!atomic_load(&p->mute))
            raw_send_response(c->fd, f->request_id, 0, f->payload, f->payload_len);
        break;
    }
}

static void peer_on_frame(raw_peer *rp, raw_peer_conn *c, const arpc__frame *f)
{
    hostile_peer *p = rp->user;
    if (f->type == ARPC__FRAME_PING) {
        if (p->mode == PEER_PONG_THEN_MUTE && !atomic_load(&p->mute)) {
            raw_send_control(c->fd, ARPC__FRAME_PONG, f->request_id);
            atomic_store(&p->last_pong_ms, test_now_ms());
            atomic_fetch_add(&p->pongs, 1);
        }
        return;
    }
    if (f->type == ARPC__FRAME_REQUEST)
        answer_request(p, c, f);
}

static void peer_start(hostile_peer *p, peer_mode mode)
{
    memset(p, 0, sizeof(*p));
    p->mode = mode;
    raw_peer_start(&p->raw, peer_on_frame, NULL, p);
}

static void peer_stop(hostile_peer *p)
{
    raw_peer_stop(&p->raw);
}

/* ---- fixture: a runtime, a healthy server and a channel to it ----------- */

typedef struct fixture {
    arpc_runtime *rt;
    arpc_server *srv;
    arpc_channel *healthy;
} fixture;

static void fixture_start(fixture *f)
{
    f->rt = fault_runtime(2);
    f->srv = fault_echo_server(f->rt, NULL);
    f->healthy = fault_channel(f->rt, arpc_server_port(f->srv), NULL);
    ASSERT_OK(fault_echo_call(f->healthy, 5000));
}

/* The healthy channel works, on its first and only connection. */
static void fixture_check_healthy(fixture *f)
{
    for (int i = 0; i < 20; i++)
        ASSERT_OK(fault_echo_call(f->healthy, 2000));
    arpc_channel_stats stats;
    arpc_channel_get_stats(f->healthy, &stats);
    ASSERT_EQ(stats.reconnects, 1);
    ASSERT_EQ(stats.heartbeat_failures, 0);
}

static void fixture_stop(fixture *f)
{
    fixture_check_healthy(f);
    arpc_channel_destroy(f->healthy);
    arpc_server_destroy(f->srv);
    arpc_runtime_destroy(f->rt);
}

static arpc_channel *hostile_channel(fixture *f, const hostile_peer *p, int64_t hb_interval_ms,
                                     int64_t hb_timeout_ms)
{
    arpc_channel_opts opts;
    arpc_channel_opts_init(&opts);
    opts.heartbeat_interval_ms = hb_interval_ms;
    opts.heartbeat_timeout_ms = hb_timeout_ms;
    opts.reconnect_backoff_max_ms = 500;
    return fault_channel(f->rt, p->raw.port, &opts);
}

/* Starts one call on `ch`, checks the healthy channel while it is pending,
 * waits for it (bounded) and returns its record. */
static fault_call run_hostile_call(fixture *f, arpc_channel *ch, int64_t timeout_ms)
{
    arpc_call_opts opts = fault_call_opts(timeout_ms);
    fault_calls set;
    fault_calls_init(&set, 1);
    fault_call_start(&set, 0, ch, "echo", "hello", &opts);
    fixture_check_healthy(f);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, (int)timeout_ms + 5000));
    fault_call c = set.calls[0];
    ASSERT_EQ(atomic_load(&c.done), 1);
    fault_calls_fini(&set);
    return c;
}

static int64_t took_ms(const fault_call *c)
{
    return atomic_load(&c->end_ms) - c->start_ms;
}

/* ---- client side -------------------------------------------------------- */

static void test_silent_peer_times_out_then_heartbeat_kills(void)
{
    fixture f;
    fixture_start(&f);
    hostile_peer p;
    peer_start(&p, PEER_SILENT);
    arpc_channel *ch = hostile_channel(&f, &p, 200, 400);

    /* A deadline shorter than the heartbeat timeout: ETIMEDOUT, not early. */
    fault_call c = run_hostile_call(&f, ch, 300);
    ASSERT_ERR(atomic_load(&c.status), ARPC_ETIMEDOUT);
    ASSERT_GE(took_ms(&c), 299);
    ASSERT_LT(took_ms(&c), 3000);

    /* The probe PING sent on connect is never answered: declared dead. */
    ASSERT_TRUE(WAIT_CHANNEL_STAT_GE(ch, heartbeat_failures, 1, 3000));

    /* A call with a long deadline on such a peer ends with the heartbeat's
     * error, long before its deadline: the only endpoint is ejected, so the
     * call fails fast while the slot waits out its backoff, or is sent on the
     * next probe connection and dies with it. */
    c = run_hostile_call(&f, ch, 10000);
    ASSERT_ERR(atomic_load(&c.status), ARPC_EHEARTBEAT);
    ASSERT_LT(took_ms(&c), 3000);
    fprintf(stderr, "  EHEARTBEAT after %lld ms\n", (long long)took_ms(&c));

    arpc_channel_destroy(ch);
    peer_stop(&p);
    fixture_stop(&f);
}

/* A peer of `kind` answers a call with bad bytes: the call fails promptly
 * with `want`, long before its 5 s deadline. */
static void expect_prompt_error(peer_mode kind, int want)
{
    fixture f;
    fixture_start(&f);
    hostile_peer p;
    peer_start(&p, kind);
    arpc_channel *ch = hostile_channel(&f, &p, 500, 1000);
    fault_call c = run_hostile_call(&f, ch, 5000);
    ASSERT_ERR(atomic_load(&c.status), want);
    ASSERT_LT(took_ms(&c), PROMPT_MS);
    arpc_channel_destroy(ch);
    peer_stop(&p);
    fixture_stop(&f);
}

static void test_garbage_answer_fails_with_eframe(void)
{
    expect_prompt_error(PEER_GARBAGE, ARPC_EFRAME);
}

static void test_half_frame_ends_at_deadline_then_heartbeat_fires(void)
{
    enum { INTERVAL = 300, TIMEOUT = 1000, SLACK = 600 };
    fixture f;
    fixture_start(&f);
    hostile_peer p;
    peer_start(&p, PEER_HALF);
    arpc_channel *ch = hostile_channel(&f, &p, INTERVAL, TIMEOUT);
    fault_call c = run_hostile_call(&f, ch, 300);
    ASSERT_ERR(atomic_load(&c.status), ARPC_ETIMEDOUT);
    ASSERT_GE(took_ms(&c), 299);
    ASSERT_LT(took_ms(&c), 3000);
    /* The half frame answered the probe PING (sent on connect, never
     * answered by this peer) when it arrived, but nothing follows: the next
     * idle PING, an interval later, goes unanswered and the heartbeat fires.
     * A client that ignored the partial bytes would declare the link dead at
     * the probe's timeout, about TIMEOUT after the half frame; one that woke
     * only at the probe's timeout, at 2 x TIMEOUT. */
    ASSERT_TRUE(WAIT_CHANNEL_STAT_GE(ch, heartbeat_failures, 1, 5000));
    int64_t noticed = test_now_ms() - atomic_load(&p.half_sent_ms);
    fprintf(stderr, "  declared dead %lld ms after the half frame (interval %d + timeout %d)\n",
            (long long)noticed, INTERVAL, TIMEOUT);
    ASSERT_GE(noticed, INTERVAL + TIMEOUT - 1);
    ASSERT_LT(noticed, INTERVAL + TIMEOUT + SLACK);
    arpc_channel_destroy(ch);
    peer_stop(&p);
    fixture_stop(&f);
}

static void test_oversized_header_fails_with_etoobig(void)
{
    expect_prompt_error(PEER_TOOBIG, ARPC_ETOOBIG);
}

static void test_request_towards_client_fails_with_eframe(void)
{
    expect_prompt_error(PEER_REQUEST, ARPC_EFRAME);
}

static bool two_pongs(void *arg)
{
    hostile_peer *p = arg;
    return atomic_load(&p->pongs) >= 2;
}

/* The promise of client.h: a peer that stops answering is noticed within
 * about interval + timeout of its last answer, whatever the phase. */
static void test_muted_peer_noticed_within_interval_plus_timeout(void)
{
    enum { INTERVAL = 100, TIMEOUT = 1000, SLACK = 600 }; /* 2 x TIMEOUT before the fix */

    fixture f;
    fixture_start(&f);
    hostile_peer p;
    peer_start(&p, PEER_PONG_THEN_MUTE);
    arpc_channel *ch = hostile_channel(&f, &p, INTERVAL, TIMEOUT);
    ASSERT_OK(fault_echo_call(ch, 5000));
    /* Idle, the link PINGs every interval; the peer answers at once. */
    ASSERT_TRUE(wait_until(two_pongs, &p, 5000));
    atomic_store(&p.mute, true);
    ASSERT_TRUE(WAIT_CHANNEL_STAT_GE(ch, heartbeat_failures, 1, 5000));
    int64_t noticed = test_now_ms() - atomic_load(&p.last_pong_ms);
    fprintf(stderr, "  dead peer noticed %lld ms after its last PONG (interval %d + timeout %d)\n",
            (long long)noticed, INTERVAL, TIMEOUT);
    ASSERT_GE(noticed, TIMEOUT - 1);
    ASSERT_LT(noticed, INTERVAL + TIMEOUT + SLACK);
    arpc_channel_destroy(ch);
    peer_stop(&p);
    fixture_stop(&f);
}

/* A listener that never accepts and whose queue is full: the kernel drops
 * the SYNs, connect() hangs, and connect_timeout_ms ends each attempt. */
static void test_full_backlog_connect_times_out(void)
{
    fixture f;
    fixture_start(&f);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(lfd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(addr);
    ASSERT_EQ(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ASSERT_EQ(listen(lfd, 0), 0);
    ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);
    int fillers[4];
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ASSERT_GE(fillers[i], 0);
        connect(fillers[i], (struct sockaddr *)&addr, sizeof(addr)); /* EINPROGRESS or 0 */
    }
    arpc_channel_opts opts;
    fault_channel_opts_init(&opts);
    opts.connect_timeout_ms = 200;
    arpc_channel *ch = fault_channel(f.rt, ntohs(addr.sin_port), &opts);
    /* Never sent: retried (max_retries 2) after each backoff, then failed
     * with the last attempt's error, before the call's own deadline. */
    fault_call c = run_hostile_call(&f, ch, 5000);
    ASSERT_ERR(atomic_load(&c.status), ARPC_ETIMEDOUT);
    ASSERT_GE(took_ms(&c), 3 * 200 - 1);
    /* Before the deadline, not at it: three attempts and two backoffs take
     * about 0.75 s; a call held to its deadline would end at 5 s. */
    ASSERT_LT(took_ms(&c), 5000 - 1000);
    fprintf(stderr, "  3 connect attempts timed out after %lld ms\n", (long long)took_ms(&c));
    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    ASSERT_EQ(stats.reconnects, 0);
    ASSERT_EQ(stats.retries, 2);
    arpc_channel_destroy(ch);
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(lfd);
    fixture_stop(&f);
}

/* A heartbeat timeout of 0 with heartbeats on would kill every connection at
 * its first PING: refused.  With heartbeats off it is allowed (the probe PING
 * sent on connect then waits connect_timeout_ms). */
static void test_zero_heartbeat_timeout_is_refused(void)
{
    arpc_runtime *rt = fault_runtime(1);
    arpc_channel_opts opts;
    arpc_channel_opts_init(&opts);
    opts.heartbeat_timeout_ms = 0;
    arpc_channel *ch = NULL;
    ASSERT_ERR(arpc_channel_create(rt, "127.0.0.1:1", &opts, &ch), ARPC_EINVAL);
    opts.heartbeat_interval_ms = 0;
    ASSERT_OK(arpc_channel_create(rt, "127.0.0.1:1", &opts, &ch));
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
}

/* ---- server side -------------------------------------------------------- */

/* Reads give up after 5 s, so a server that never closes fails the test. */
static int timed_connect(int port)
{
    int fd = raw_connect(port);
    raw_set_recv_timeout(fd, 5000);
    return fd;
}

static uint64_t server_requests(arpc_server *srv)
{
    arpc_server_stats stats;
    arpc_server_get_stats(srv, &stats);
    return stats.requests;
}

/* Writes `bad` followed, in the same write, by a valid echo request and a
 * PING; then reads until the server closes the connection (bounded by
 * SO_RCVTIMEO).  The server must discard everything after the protocol error:
 * no byte comes back (no answer, no PONG) and the request never starts. */
static void expect_closed_by_server(arpc_server *srv, int fd, const void *bad, size_t bad_len)
{
    uint64_t before = server_requests(srv);
    uint8_t out[512];
    ASSERT_LE(bad_len + 2 * ARPC__FRAME_HEADER_SIZE + 5, sizeof(out));
    memcpy(out, bad, bad_len);
    size_t len = bad_len;
    arpc__frame req = {
        .type = ARPC__FRAME_REQUEST, .request_id = 9, .method_len = 4, .payload_len = 1};
    arpc__frame_write_header(out + len, &req);
    len += ARPC__FRAME_HEADER_SIZE;
    memcpy(out + len, "echox", 5);
    len += 5;
    arpc__frame ping = {.type = ARPC__FRAME_PING, .request_id = 10};
    arpc__frame_write_header(out + len, &ping);
    len += ARPC__FRAME_HEADER_SIZE;
    raw_send(fd, out, len);
    char buf[256];
    size_t received = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            test_fail(__FILE__, __LINE__, "server did not close the connection: %s",
                      strerror(errno));
        received += (size_t)n;
    }
    close(fd);
    ASSERT_EQ(received, 0);
    ASSERT_EQ(server_requests(srv), before);
}

typedef struct stat_wait {
    arpc_server *srv;
    uint64_t protocol_errors;
    uint64_t connections;
} stat_wait;

static bool server_stats_reached(void *arg)
{
    stat_wait *w = arg;
    arpc_server_stats stats;
    arpc_server_get_stats(w->srv, &stats);
    return stats.protocol_errors == w->protocol_errors && stats.connections == w->connections;
}

static void test_server_drops_bad_clients_only(void)
{
    fixture f;
    fixture_start(&f);
    int port = arpc_server_port(f.srv);
    stat_wait w = {.srv = f.srv, .protocol_errors = 0, .connections = 1};
    ASSERT_TRUE(wait_until(server_stats_reached, &w, 5000));

    /* Half a frame (slowloris): the connection waits, the others are served. */
    int slow = timed_connect(port);
    arpc__frame req = {.type = ARPC__FRAME_REQUEST, .request_id = 1, .method_len = 4};
    uint8_t header[ARPC__FRAME_HEADER_SIZE];
    arpc__frame_write_header(header, &req);
    raw_send(slow, header, 10);
    w.connections = 2;
    ASSERT_TRUE(wait_until(server_stats_reached, &w, 5000));
    fixture_check_healthy(&f);

    /* Garbage. */
    int fd = timed_connect(port);
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    expect_closed_by_server(f.srv, fd, get, sizeof(get) - 1);
    w.protocol_errors = 1;
    ASSERT_TRUE(wait_until(server_stats_reached, &w, 5000));
    fixture_check_healthy(&f);

    /* A request header announcing 100 MiB (limit 16 MiB): answered ARPC_ETOOBIG at
     * the header, its body to be skipped; only that request fails (protocol.md 7). */
    fd = timed_connect(port);
    req.payload_len = 100u * 1024 * 1024;
    arpc__frame_write_header(header, &req);
    raw_send(fd, header, sizeof(header));
    raw_send(fd, "echo", 4);
    raw_frame got;
    ASSERT_TRUE(raw_read_frame(fd, &got, 5000));
    ASSERT_EQ(got.len, ARPC__FRAME_HEADER_SIZE);
    ASSERT_EQ(got.f.type, ARPC__FRAME_RESPONSE);
    ASSERT_EQ(got.f.request_id, 1);
    ASSERT_ERR(got.f.status, ARPC_ETOOBIG);
    raw_frame_free(&got);
    close(fd);
    w.connections = 2;
    ASSERT_TRUE(wait_until(server_stats_reached, &w, 5000));

    /* A RESPONSE travels only towards clients. */
    fd = timed_connect(port);
    arpc__frame rsp = {.type = ARPC__FRAME_RESPONSE, .request_id = 7};
    arpc__frame_write_header(header, &rsp);
    expect_closed_by_server(f.srv, fd, header, sizeof(header));
    w.protocol_errors = 2;
    ASSERT_TRUE(wait_until(server_stats_reached, &w, 5000));
    fixture_check_healthy(&f);

    /* The slow client leaves: its connection goes too. */
    close(slow);
    w.connections = 1;
    ASSERT_TRUE(wait_until(server_stats_reached, &w, 5000));
    fixture_stop(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_silent_peer_times_out_then_heartbeat_kills);
    RUN_TEST(test_garbage_answer_fails_with_eframe);
    RUN_TEST(test_half_frame_ends_at_deadline_then_heartbeat_fires);
    RUN_TEST(test_oversized_header_fails_with_etoobig);
    RUN_TEST(test_request_towards_client_fails_with_eframe);
    RUN_TEST(test_muted_peer_noticed_within_interval_plus_timeout);
    RUN_TEST(test_full_backlog_connect_times_out);
    RUN_TEST(test_zero_heartbeat_timeout_is_refused);
    RUN_TEST(test_server_drops_bad_clients_only);
    return 0;
}

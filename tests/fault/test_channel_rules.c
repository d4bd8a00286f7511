/*
 * The client's connection rules of docs/connections.md, each checked against a
 * scripted raw server (raw_peer) that shows what the client sent and when:
 *  - an endpoint is ejected at its third consecutive failure, not before, and
 *    load balancing then leaves it alone (section 6);
 *  - the reconnect backoff doubles from its minimum to its cap, each wait
 *    shortened by up to 50% jitter, and returns to the minimum once a frame is
 *    heard (section 6); two processes do not draw the same jitter;
 *  - GOAWAY: calls above its last id are sent again at once on a new
 *    connection, the accepted ones finish on the draining link, which the
 *    client then closes; without retries they fail with ARPC_ESHUTDOWN
 *    (sections 3 and 5);
 *  - any byte answers a PING: a PONG queued behind 16 MiB of answers does not
 *    make the connection look dead (section 4);
 *  - the client answers a server's PING with a PONG of the same id;
 *  - heartbeats off (interval 0): the probe is the only PING ever sent;
 *  - the deadline covers every retry: it is set once, when the call starts;
 *  - with every endpoint ejected a call fails at once with the recorded
 *    failure (ARPC_ENOENDPOINT needs an ejection without one, which the
 *    code never makes);
 *  - every call pending on a connection fails, once and promptly, with the
 *    connection's error when it goes bad;
 *  - arpc_channel_destroy() completes calls in flight on a normal link with
 *    ARPC_ECANCELED at once;
 *  - an unknown negative status from the server reaches the caller as is.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "raw_peer.h"
#include "test.h"

#ifdef FAULT_SANITIZED
#define SLACK_MS 400 /* timer lateness allowed on a loaded machine */
#else
#define SLACK_MS 250
#endif

static arpc_channel *channel_to(arpc_runtime *rt, const char *target, const arpc_channel_opts *o)
{
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, o, &ch));
    return ch;
}

/* What most tests here start with: a scripted raw peer, a runtime of `loops`
 * loops and the peer's address.  Channels and their options stay in each test. */
typedef struct rig {
    raw_peer peer;
    arpc_runtime *rt;
    char target[64];
} rig;

static void rig_start(rig *r, unsigned loops, raw_peer_frame_fn on_frame,
                      raw_peer_accept_fn on_accept, void *user)
{
    raw_peer_start(&r->peer, on_frame, on_accept, user);
    r->rt = fault_runtime(loops);
    fault_addr(r->target, sizeof(r->target), r->peer.port);
}

/* A channel to the rig's peer with fault_channel_opts_init()'s options. */
static arpc_channel *rig_channel(rig *r)
{
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    return channel_to(r->rt, r->target, &o);
}

/* After every channel on the rig is destroyed. */
static void rig_stop(rig *r)
{
    arpc_runtime_destroy(r->rt);
    raw_peer_stop(&r->peer);
}

/* A 127.0.0.1 port bound to `*fd` that does not listen: connections to it are refused. */
static int refusing_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(*fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(addr);
    ASSERT_EQ(bind(*fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ASSERT_EQ(getsockname(*fd, (struct sockaddr *)&addr, &alen), 0);
    return ntohs(addr.sin_port);
}

static bool refuse_all(raw_peer *p, raw_peer_conn *c)
{
    (void)p;
    (void)c;
    return false;
}

static int64_t gap_ms(raw_peer *p, int i)
{
    return atomic_load(&p->accept_ms[i + 1]) - atomic_load(&p->accept_ms[i]);
}

static void wait_accepts(raw_peer *p, int n, int timeout_ms)
{
    raw_count w = {&p->accepted, n};
    if (!wait_until(raw_count_reached, &w, timeout_ms))
        test_fail(__FILE__, __LINE__, "%d connections after %d ms, expected %d",
                  atomic_load(&p->accepted), timeout_ms, n);
}

/* ---- ejection after eject_after_failures ------------------------------------ */

typedef struct eject_watch {
    char address[64];
    raw_peer *peer;
    _Atomic int ejections;
    _Atomic int accepts_at_ejection;
} eject_watch;

static void on_log(arpc_log_level level, const char *message, void *user_data)
{
    eject_watch *w = user_data;
    (void)level;
    if (strstr(message, "ejected from load balancing") != NULL &&
        strstr(message, w->address) != NULL) {
        atomic_store(&w->accepts_at_ejection, atomic_load(&w->peer->accepted));
        atomic_fetch_add(&w->ejections, 1);
    }
}

static void test_endpoint_ejected_at_third_failure(void)
{
    raw_peer bad;
    raw_peer_start(&bad, NULL, refuse_all, NULL);
    static eject_watch w;
    memset(&w, 0, sizeof(w));
    w.peer = &bad;
    fault_addr(w.address, sizeof(w.address), bad.port);
    /* Installed before any loop thread runs, removed after they are gone. */
    arpc_log_set_handler(on_log, &w);
    arpc_runtime *rt = fault_runtime(2);
    arpc_server *good = fault_echo_server(rt, NULL);
    char target[160];
    snprintf(target, sizeof(target), "%s,127.0.0.1:%d", w.address, arpc_server_port(good));
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    o.reconnect_backoff_min_ms = 10;
    o.reconnect_backoff_max_ms = 40;
    arpc_channel *ch = channel_to(rt, target, &o);

    /* Round robin sends every other call to the bad endpoint: each of those
     * fails its connection (closed before any frame) and, being idempotent,
     * is retried on the good one. */
    arpc_call_opts co = fault_call_opts(5000);
    co.idempotent = true;
    for (int i = 0; i < 40 && atomic_load(&w.ejections) == 0; i++)
        ASSERT_OK(arpc_call(ch, "echo", "x", 1, &co, NULL));
    ASSERT_EQ(atomic_load(&w.ejections), 1);
    fprintf(stderr, "  ejected when its connection attempts reached %d\n",
            atomic_load(&w.accepts_at_ejection));
    ASSERT_EQ(atomic_load(&w.accepts_at_ejection), 3);

    /* Ejected: no call is routed there (and so none is retried) any more;
     * only background probes reach it. */
    arpc_channel_stats before, after;
    arpc_channel_get_stats(ch, &before);
    for (int i = 0; i < 20; i++)
        ASSERT_OK(arpc_call(ch, "echo", "x", 1, &co, NULL));
    arpc_channel_get_stats(ch, &after);
    ASSERT_EQ(after.retries, before.retries);

    arpc_channel_destroy(ch);
    arpc_server_destroy(good);
    arpc_runtime_destroy(rt);
    arpc_log_set_handler(NULL, NULL);
    raw_peer_stop(&bad);
}

/* ---- reconnect backoff ---------------------------------------------------- */

static void test_backoff_doubles_to_cap_with_jitter(void)
{
    enum { MIN = 40, MAX = 320, GAPS = 9 };

    rig r;
    rig_start(&r, 1, NULL, refuse_all, NULL);
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    o.reconnect_backoff_min_ms = MIN;
    o.reconnect_backoff_max_ms = MAX;
    o.eject_after_failures = 1; /* ejected at once: probes run without calls */
    arpc_channel *ch = channel_to(r.rt, r.target, &o);
    (void)fault_echo_call(ch, 200); /* opens the first connection; fails */
    wait_accepts(&r.peer, GAPS + 1, 20000);

    int64_t min_capped = INT64_MAX;
    for (int i = 0; i < GAPS; i++) {
        int64_t backoff = (int64_t)MIN << i;
        if (backoff > MAX)
            backoff = MAX;
        int64_t g = gap_ms(&r.peer, i);
        fprintf(stderr, "  failure %d: next attempt after %lld ms (backoff %lld)\n", i + 1,
                (long long)g, (long long)backoff);
        /* Doubling: never shorter than half the doubled delay (the jitter's floor). */
        ASSERT_GE(g, backoff / 2 - 2);
        /* The cap: without it the 6th wait would be at least 640 ms. */
        ASSERT_LE(g, backoff + SLACK_MS);
        if (backoff == MAX && g < min_capped)
            min_capped = g;
    }
    /* Jitter: six waits at the cap, each shortened by a random 0-50%; that
     * none is shortened by more than 10% has odds (30/160)^6 ~ 2e-5. */
    ASSERT_LE(min_capped, MAX - 30);
    arpc_channel_destroy(ch);
    rig_stop(&r);
}

#define JITTER_GAPS 10

/* The first JITTER_GAPS waits (in ms) of a slot whose connections all fail,
 * with min = max = 200 ms: each a random 100-200 ms. */
static void measure_jittered_waits(int64_t out[JITTER_GAPS])
{
    rig r;
    rig_start(&r, 1, NULL, refuse_all, NULL);
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    o.reconnect_backoff_min_ms = 200;
    o.reconnect_backoff_max_ms = 200;
    o.eject_after_failures = 1;
    arpc_channel *ch = channel_to(r.rt, r.target, &o);
    (void)fault_echo_call(ch, 200);
    wait_accepts(&r.peer, JITTER_GAPS + 1, 20000);
    for (int i = 0; i < JITTER_GAPS; i++)
        out[i] = gap_ms(&r.peer, i);
    arpc_channel_destroy(ch);
    rig_stop(&r);
}

/* Two processes (a fork: same memory, same library state) whose connections
 * fail at the same time must not wait the same: the jitter is random per
 * process, or clients restarted together reconnect together.  That ten waits
 * agree within 10 ms by chance has odds of about 0.19^10 ~ 6e-8. */
static void test_jitter_differs_between_processes(void)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork(); /* no thread runs here: every earlier runtime is gone */
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int64_t mine[JITTER_GAPS];
        measure_jittered_waits(mine);
        _exit(write(fds[1], mine, sizeof(mine)) == (ssize_t)sizeof(mine) ? 0 : 1);
    }
    int64_t parent[JITTER_GAPS];
    int64_t child[JITTER_GAPS];
    measure_jittered_waits(parent);
    ASSERT_EQ(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fds[0]);
    close(fds[1]);
    int differ = 0;
    for (int i = 0; i < JITTER_GAPS; i++) {
        fprintf(stderr, "  wait %d: %lld ms here, %lld ms in the child\n", i + 1,
                (long long)parent[i], (long long)child[i]);
        differ += llabs(parent[i] - child[i]) > 10;
    }
    ASSERT_GE(differ, 1);
}

typedef struct flaky {
    _Atomic bool refuse;
} flaky;

static bool maybe_refuse(raw_peer *p, raw_peer_conn *c)
{
    (void)c;
    flaky *f = p->user;
    return !atomic_load(&f->refuse);
}

typedef struct open_wait {
    arpc_channel *ch;
    raw_peer *peer;
    int before;
} open_wait;

/* One call (it may fail); true once the peer has accepted a connection more. */
static bool call_opened_connection(void *arg)
{
    open_wait *w = arg;
    (void)fault_echo_call(w->ch, 100);
    return atomic_load(&w->peer->accepted) > w->before;
}

static void test_backoff_resets_after_a_frame(void)
{
    enum { MIN = 20, MAX = 5000 };

    flaky f = {true};
    rig r;
    rig_start(&r, 1, raw_peer_polite, maybe_refuse, &f);
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    o.reconnect_backoff_min_ms = MIN;
    o.reconnect_backoff_max_ms = MAX;
    o.eject_after_failures = 1;
    arpc_channel *ch = channel_to(r.rt, r.target, &o);
    (void)fault_echo_call(ch, 100);
    /* Five failures: the backoff has doubled to 20 << 5 = 640 ms. */
    wait_accepts(&r.peer, 6, 20000);

    /* The next probe is answered: the endpoint is proven and re-admitted. */
    atomic_store(&f.refuse, false);
    fault_echo_wait ok = {.ch = ch};
    ASSERT_TRUE(wait_until(fault_echo_succeeds, &ok, 20000));

    /* The peer drops the proven link (not a failure) and refuses the next
     * one: the slot backs off from the minimum again, not from 1280 ms. */
    atomic_store(&f.refuse, true);
    raw_peer_run(&r.peer, raw_peer_close_all, NULL);
    int n = atomic_load(&r.peer.accepted);
    /* A call may still go out on the closed link before the client sees the
     * close (and fail with it): call until one opens a new connection. */
    open_wait ow = {.ch = ch, .peer = &r.peer, .before = n};
    ASSERT_TRUE(wait_until(call_opened_connection, &ow, 20000));
    wait_accepts(&r.peer, n + 2, 20000);
    int64_t g = gap_ms(&r.peer, n);
    fprintf(stderr, "  after the reset: next attempt %lld ms after the failure\n", (long long)g);
    ASSERT_GE(g, MIN / 2 - 2);
    ASSERT_LT(g, 2 * MIN + SLACK_MS); /* without the reset: at least 640 ms */
    arpc_channel_destroy(ch);
    rig_stop(&r);
}

/* ---- GOAWAY with a chosen last id ------------------------------------------ */

#define GOAWAY_CALLS 4

typedef struct goaway_script {
    int32_t status;             /* of the GOAWAY */
    uint64_t ids[GOAWAY_CALLS]; /* request ids seen on the first connection */
    char first_byte[GOAWAY_CALLS];
    int seen;
    _Atomic int retried; /* requests on later connections */
    char retried_bytes[GOAWAY_CALLS];
} goaway_script;

/* Connection 0: collects the four requests, sends GOAWAY with the second one's
 * id as last id, then answers the first two.  Later connections: polite. */
static void goaway_on_frame(raw_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    goaway_script *s = p->user;
    if (f->type == ARPC__FRAME_PING || c->index > 0) {
        if (f->type == ARPC__FRAME_REQUEST) {
            int k = atomic_load(&s->retried);
            if (k < GOAWAY_CALLS)
                s->retried_bytes[k] = f->payload_len ? (char)f->payload[0] : 0;
            atomic_fetch_add(&s->retried, 1);
        }
        raw_peer_polite(p, c, f);
        return;
    }
    if (f->type != ARPC__FRAME_REQUEST || s->seen >= GOAWAY_CALLS)
        return;
    s->ids[s->seen] = f->request_id;
    s->first_byte[s->seen] = f->payload_len ? (char)f->payload[0] : 0;
    if (++s->seen < GOAWAY_CALLS)
        return;
    raw_send_header(c->fd, ARPC__FRAME_GOAWAY, s->ids[1], s->status, 0, ARPC__FRAME_HEADER_SIZE);
    for (int i = 0; i < 2; i++)
        raw_send_response(c->fd, s->ids[i], 0, &s->first_byte[i], 1);
}

typedef struct goaway_result {
    fault_calls set;
    rig rig;
    goaway_script script;
    arpc_channel_stats stats;
} goaway_result;

static void run_goaway(goaway_result *r, uint32_t max_retries, int32_t status)
{
    memset(&r->script, 0, sizeof(r->script));
    r->script.status = status;
    rig_start(&r->rig, 2, goaway_on_frame, NULL, &r->script);
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    o.max_retries = max_retries;
    arpc_channel *ch = channel_to(r->rig.rt, r->rig.target, &o);
    arpc_call_opts co = fault_call_opts(5000);
    fault_calls_init(&r->set, GOAWAY_CALLS);
    static const char *payloads[GOAWAY_CALLS] = {"a", "b", "c", "d"};
    for (int i = 0; i < GOAWAY_CALLS; i++)
        fault_call_start(&r->set, (size_t)i, ch, "echo", payloads[i], &co);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &r->set, 10000));
    arpc_channel_get_stats(ch, &r->stats);
    arpc_channel_destroy(ch);
    rig_stop(&r->rig);
}

static int call_of(const goaway_result *r, char first_byte)
{
    return first_byte - 'a';
}

static void test_goaway_calls_above_last_id_retried_at_once(void)
{
    static goaway_result r;
    run_goaway(&r, 2, ARPC_ESHUTDOWN);
    for (int i = 0; i < GOAWAY_CALLS; i++) {
        fault_call *c = &r.set.calls[call_of(&r, r.script.first_byte[i])];
        ASSERT_EQ(atomic_load(&c->done), 1);
        ASSERT_OK(atomic_load(&c->status));
        /* Not held to their deadline: sent again as soon as the GOAWAY came. */
        ASSERT_LT(atomic_load(&c->end_ms) - c->start_ms, 2000);
    }
    /* Exactly the two calls above the last id went again, on a new connection. */
    ASSERT_EQ(atomic_load(&r.script.retried), 2);
    ASSERT_EQ(r.script.retried_bytes[0] + r.script.retried_bytes[1],
              r.script.first_byte[2] + r.script.first_byte[3]);
    ASSERT_EQ(r.stats.retries, 2);
    ASSERT_EQ(r.stats.goaways, 1);
    ASSERT_EQ(r.stats.reconnects, 2);
    fault_calls_fini(&r.set);
}

static void test_goaway_above_last_id_without_retries_is_eshutdown(void)
{
    static goaway_result r;
    run_goaway(&r, 0, ARPC_ESHUTDOWN);
    for (int i = 0; i < GOAWAY_CALLS; i++) {
        fault_call *c = &r.set.calls[call_of(&r, r.script.first_byte[i])];
        ASSERT_EQ(atomic_load(&c->done), 1);
        if (i < 2)
            ASSERT_OK(atomic_load(&c->status)); /* accepted: answered on the draining link */
        else
            ASSERT_ERR(atomic_load(&c->status), ARPC_ESHUTDOWN);
        ASSERT_LT(atomic_load(&c->end_ms) - c->start_ms, 2000);
    }
    ASSERT_EQ(atomic_load(&r.script.retried), 0);
    ASSERT_EQ(r.stats.retries, 0);
    fault_calls_fini(&r.set);
}

/* The draining link closes once its last accepted call is answered. */
typedef struct drain_script {
    uint64_t id;
    _Atomic bool answered;
} drain_script;

static void drain_on_frame(raw_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    drain_script *s = p->user;
    if (f->type == ARPC__FRAME_PING) {
        raw_send_control(c->fd, ARPC__FRAME_PONG, f->request_id);
    } else if (f->type == ARPC__FRAME_REQUEST && c->index == 0) {
        s->id = f->request_id;
        raw_send_header(c->fd, ARPC__FRAME_GOAWAY, f->request_id, ARPC_ESHUTDOWN, 0,
                        ARPC__FRAME_HEADER_SIZE);
    }
}

static void answer_drained(raw_peer *p, void *arg)
{
    drain_script *s = p->user;
    (void)arg;
    raw_send_response(p->conns[0]->fd, s->id, 0, "x", 1);
    atomic_store(&s->answered, true);
}

static bool peer_conn0_closed(void *arg)
{
    raw_peer *p = arg;
    return atomic_load(&p->eofs) >= 1;
}

static void test_goaway_drained_link_closed_by_client(void)
{
    drain_script s = {0};
    rig r;
    rig_start(&r, 1, drain_on_frame, NULL, &s);
    arpc_channel *ch = rig_channel(&r);
    arpc_call_opts co = fault_call_opts(10000);
    fault_calls set;
    fault_calls_init(&set, 1);
    fault_call_start(&set, 0, ch, "echo", "x", &co);
    raw_count req = {&r.peer.requests, 1};
    ASSERT_TRUE(wait_until(raw_count_reached, &req, 5000));
    /* Accepted (id == last id) and unanswered: the link stays open for it. */
    ASSERT_FALSE(peer_conn0_closed(&r.peer));
    ASSERT_EQ(atomic_load(&set.completed), 0);
    raw_peer_run(&r.peer, answer_drained, NULL);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, 5000));
    ASSERT_OK(atomic_load(&set.calls[0].status));
    ASSERT_TRUE(wait_until(peer_conn0_closed, &r.peer, 5000));
    fault_calls_fini(&set);
    arpc_channel_destroy(ch);
    rig_stop(&r);
}

/* ---- heartbeats -------------------------------------------------------------- */

#define BIG_ANSWER   (16u * 1024 * 1024)
#define BIG_CHUNKS   8
#define BIG_PAUSE_MS 200

typedef struct slow_script {
    _Atomic bool ping_during_answer;
} slow_script;

/* Answers a request with 16 MiB in bursts, pausing longer than the client's
 * heartbeat interval between them, and only then reads (and answers) the
 * PINGs that came in meanwhile: every PONG is queued behind the answer. */
static void slow_on_frame(raw_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    slow_script *s = p->user;
    if (f->type != ARPC__FRAME_REQUEST) {
        raw_peer_polite(p, c, f);
        return;
    }
    static uint8_t chunk[BIG_ANSWER / BIG_CHUNKS];
    memset(chunk, 0x5a, sizeof(chunk));
    raw_send_header(c->fd, ARPC__FRAME_RESPONSE, f->request_id, 0, BIG_ANSWER,
                    ARPC__FRAME_HEADER_SIZE);
    for (int i = 0; i < BIG_CHUNKS; i++) {
        raw_send(c->fd, chunk, sizeof(chunk));
        usleep(BIG_PAUSE_MS * 1000); /* the peer's pacing, not a synchronisation */
        char b;
        if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
            atomic_store(&s->ping_during_answer, true);
    }
}

static void test_pong_behind_16mib_answer_is_not_death(void)
{
    slow_script s = {false};
    rig r;
    rig_start(&r, 1, slow_on_frame, NULL, &s);
    arpc_channel_opts o;
    arpc_channel_opts_init(&o);
    o.heartbeat_interval_ms = 100;
    /* The answer takes 1.6 s and its PONG comes after it; the bytes come
     * every 200 ms, 400 ms within the timeout for a loaded machine. */
    o.heartbeat_timeout_ms = 600;
    o.max_frame_size = 2 * BIG_ANSWER;
    arpc_channel *ch = channel_to(r.rt, r.target, &o);
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts co = fault_call_opts(20000);
    int64_t start = test_now_ms();
    ASSERT_OK(arpc_call(ch, "echo", "x", 1, &co, rsp));
    fprintf(stderr, "  16 MiB answer in %lld ms\n", (long long)(test_now_ms() - start));
    ASSERT_EQ(arpc_buf_len(rsp), BIG_ANSWER);
    ASSERT_EQ(((const uint8_t *)arpc_buf_data(rsp))[BIG_ANSWER - 1], 0x5a);
    ASSERT_TRUE(atomic_load(&s.ping_during_answer)); /* the case under test happened */
    arpc_channel_stats st;
    arpc_channel_get_stats(ch, &st);
    ASSERT_EQ(st.heartbeat_failures, 0);
    ASSERT_EQ(st.reconnects, 1);
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
    rig_stop(&r);
}

#define SERVER_PING_ID 0x7777

typedef struct ping_script {
    _Atomic uint64_t pong_id;
    _Atomic int pongs;
} ping_script;

static bool ping_client_first(raw_peer *p, raw_peer_conn *c)
{
    (void)p;
    raw_send_header(c->fd, ARPC__FRAME_PING, SERVER_PING_ID, 0, 0, ARPC__FRAME_HEADER_SIZE);
    return true;
}

static void ping_on_frame(raw_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    ping_script *s = p->user;
    if (f->type == ARPC__FRAME_PONG) {
        atomic_store(&s->pong_id, f->request_id);
        atomic_fetch_add(&s->pongs, 1);
        return;
    }
    raw_peer_polite(p, c, f);
}

static void test_client_answers_server_ping(void)
{
    ping_script s = {0};
    rig r;
    rig_start(&r, 1, ping_on_frame, ping_client_first, &s);
    arpc_channel *ch = rig_channel(&r);
    ASSERT_OK(fault_echo_call(ch, 5000));
    raw_count w = {&s.pongs, 1};
    ASSERT_TRUE(wait_until(raw_count_reached, &w, 5000));
    ASSERT_EQ(atomic_load(&s.pong_id), SERVER_PING_ID);
    ASSERT_EQ(atomic_load(&s.pongs), 1);
    arpc_channel_destroy(ch);
    rig_stop(&r);
}

typedef struct ping_counts {
    _Atomic int by_conn[4];
} ping_counts;

static void count_on_frame(raw_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    ping_counts *s = p->user;
    if (f->type == ARPC__FRAME_PING && c->index < 4)
        atomic_fetch_add(&s->by_conn[c->index], 1);
    raw_peer_polite(p, c, f);
}

static void test_heartbeats_off_sends_only_the_probe(void)
{
    ping_counts s = {0};
    rig r;
    rig_start(&r, 1, count_on_frame, NULL, &s);
    arpc_channel_opts o;
    arpc_channel_opts_init(&o);
    o.heartbeat_interval_ms = 0;
    arpc_channel *off = channel_to(r.rt, r.target, &o);
    ASSERT_OK(fault_echo_call(off, 5000)); /* connection 0 */
    o.heartbeat_interval_ms = 50;
    arpc_channel *on = channel_to(r.rt, r.target, &o);
    ASSERT_OK(fault_echo_call(on, 5000)); /* connection 1, younger */
    /* The control channel PINGs every 50 ms of silence: by its 30th PING the
     * other connection has been idle for longer than the default interval
     * and the heartbeat timeout that follows the probe. */
    raw_count w = {&s.by_conn[1], 30};
    ASSERT_TRUE(wait_until(raw_count_reached, &w, 20000));
    ASSERT_EQ(atomic_load(&s.by_conn[0]), 1);
    arpc_channel_destroy(on);
    arpc_channel_destroy(off);
    rig_stop(&r);
}

/* ---- deadlines and retries ---------------------------------------------------- */

static void test_deadline_spans_all_retries(void)
{
    enum { TIMEOUT = 600 };

    /* A bound socket that does not listen: every connection is refused. */
    int fd;
    int port = refusing_port(&fd);
    arpc_runtime *rt = fault_runtime(1);
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    o.max_retries = 1000;
    o.eject_after_failures = 1000; /* keep waiting rather than fail fast */
    o.reconnect_backoff_min_ms = 50;
    o.reconnect_backoff_max_ms = 50;
    arpc_channel *ch = fault_channel(rt, port, &o);
    int64_t start = test_now_ms();
    int rc = fault_echo_call(ch, TIMEOUT);
    int64_t took = test_now_ms() - start;
    arpc_channel_stats st;
    arpc_channel_get_stats(ch, &st);
    fprintf(stderr, "  %s after %lld ms and %llu retries\n", arpc_err_name(rc), (long long)took,
            (unsigned long long)st.retries);
    /* The deadline timer, or the last attempt's error when the deadline
     * passed between two attempts. */
    ASSERT_TRUE(rc == ARPC_ETIMEDOUT || rc == ARPC_ECONNREFUSED);
    ASSERT_GE(took, TIMEOUT - 1);
    ASSERT_LT(took, TIMEOUT + SLACK_MS);
    ASSERT_GE(st.retries, 3); /* several attempts, all inside the one deadline */
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    close(fd);
}

/* Every endpoint ejected, the slot in backoff: a call fails at once with the
 * failure that ejected the endpoint (ARPC_ENOENDPOINT only if none had been
 * recorded, which no ejection leaves), not at its deadline. */
static void test_all_ejected_fails_fast_with_recorded_error(void)
{
    int fd;
    int port = refusing_port(&fd);
    arpc_runtime *rt = fault_runtime(1);
    arpc_channel_opts o;
    fault_channel_opts_init(&o);
    o.eject_after_failures = 1;
    o.reconnect_backoff_min_ms = 5000; /* in backoff for the whole test */
    o.reconnect_backoff_max_ms = 5000;
    arpc_channel *ch = fault_channel(rt, port, &o);
    ASSERT_ERR(fault_echo_call(ch, 5000), ARPC_ECONNREFUSED); /* ejects it */
    for (int i = 0; i < 3; i++) {
        int64_t start = test_now_ms();
        ASSERT_ERR(fault_echo_call(ch, 5000), ARPC_ECONNREFUSED);
        ASSERT_LT(test_now_ms() - start, 1000); /* not its 5 s deadline */
    }
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    close(fd);
}

/* ---- a connection that goes bad fails every call pending on it ----------- */

#define PENDING_CALLS 10

/* An oversized answer is no longer one of these: it fails only its own call
 * (protocol.md 7, test_frame_limits). */
typedef enum bad_kind { BAD_GARBAGE, BAD_CLOSE, BAD_VERSION } bad_kind;

typedef struct bad_script {
    bad_kind kind;
} bad_script;

static void bad_on_frame(raw_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    bad_script *s = p->user;
    if (f->type == ARPC__FRAME_PING) {
        raw_send_control(c->fd, ARPC__FRAME_PONG, f->request_id);
        return;
    }
    if (f->type != ARPC__FRAME_REQUEST || atomic_load(&p->requests) < PENDING_CALLS)
        return;
    switch (s->kind) {
    case BAD_GARBAGE:
        raw_send(c->fd, "HTTP/1.1 200 OK\r\n\r\n", 19);
        break;
    case BAD_CLOSE:
        shutdown(c->fd, SHUT_RDWR);
        break;
    case BAD_VERSION: {
        /* A well-formed header in a version this side does not speak. */
        uint8_t header[ARPC__FRAME_HEADER_SIZE] = {0x41, 0x52, 2, ARPC__FRAME_RESPONSE};
        raw_send(c->fd, header, sizeof(header));
        break;
    }
    }
}

static void expect_all_pending_fail(bad_kind kind, int want)
{
    bad_script s = {kind};
    rig r;
    rig_start(&r, 2, bad_on_frame, NULL, &s);
    arpc_channel *ch = rig_channel(&r);
    arpc_call_opts co = fault_call_opts(10000);
    fault_calls set;
    fault_calls_init(&set, PENDING_CALLS);
    fault_calls_start_all(&set, ch, "echo", "x", &co);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, 15000));
    for (size_t i = 0; i < PENDING_CALLS; i++) {
        ASSERT_EQ(atomic_load(&set.calls[i].done), 1);
        ASSERT_ERR(atomic_load(&set.calls[i].status), want);
        ASSERT_LT(atomic_load(&set.calls[i].end_ms) - set.calls[i].start_ms, 3000);
    }
    /* Completed once each: nothing more arrives later. */
    arpc_channel_destroy(ch);
    ASSERT_EQ(atomic_load(&set.completed), PENDING_CALLS);
    fault_calls_fini(&set);
    rig_stop(&r);
}

static void test_every_pending_call_fails_when_connection_goes_bad(void)
{
    expect_all_pending_fail(BAD_GARBAGE, ARPC_EFRAME);
    expect_all_pending_fail(BAD_CLOSE, ARPC_ECLOSED);
    expect_all_pending_fail(BAD_VERSION, ARPC_EVERSION);
}

/* ---- destroy on a normal link ------------------------------------------------ */

static void pongs_only(raw_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    (void)p;
    if (f->type == ARPC__FRAME_PING)
        raw_send_control(c->fd, ARPC__FRAME_PONG, f->request_id);
}

static void test_destroy_cancels_calls_on_a_normal_link(void)
{
    rig r;
    rig_start(&r, 2, pongs_only, NULL, NULL);
    arpc_channel *ch = rig_channel(&r);
    arpc_call_opts co = fault_call_opts(20000);
    fault_calls set;
    fault_calls_init(&set, 5);
    fault_calls_start_all(&set, ch, "echo", "x", &co);
    raw_count w = {&r.peer.requests, 5};
    ASSERT_TRUE(wait_until(raw_count_reached, &w, 5000));
    int64_t start = test_now_ms();
    arpc_channel_destroy(ch);
    ASSERT_LT(test_now_ms() - start, 2000); /* not their 20 s deadline */
    ASSERT_EQ(atomic_load(&set.completed), 5);
    for (size_t i = 0; i < 5; i++)
        ASSERT_ERR(atomic_load(&set.calls[i].status), ARPC_ECANCELED);
    fault_calls_fini(&set);
    rig_stop(&r);
}

/* ---- statuses -------------------------------------------------------------- */

static void status_on_frame(raw_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    (void)p;
    if (f->type == ARPC__FRAME_PING)
        raw_send_control(c->fd, ARPC__FRAME_PONG, f->request_id);
    else if (f->type == ARPC__FRAME_REQUEST)
        raw_send_response(c->fd, f->request_id, -(int32_t)f->payload[0] * 100, NULL, 0);
}

static void test_unknown_negative_status_passed_through(void)
{
    rig r;
    rig_start(&r, 1, status_on_frame, NULL, NULL);
    arpc_channel *ch = rig_channel(&r);
    arpc_call_opts co = fault_call_opts(5000);
    /* -7700 and -9900: in arpc's space, not in its table. */
    ASSERT_EQ(arpc_call(ch, "echo", "M", 1, &co, NULL), -7700);
    ASSERT_EQ(arpc_call(ch, "echo", "c", 1, &co, NULL), -9900);
    ASSERT_STREQ(arpc_strerror(-7700), "unknown error");
    arpc_channel_destroy(ch);
    rig_stop(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_endpoint_ejected_at_third_failure);
    RUN_TEST(test_backoff_doubles_to_cap_with_jitter);
    RUN_TEST(test_backoff_resets_after_a_frame);
    RUN_TEST(test_jitter_differs_between_processes);
    RUN_TEST(test_goaway_calls_above_last_id_retried_at_once);
    RUN_TEST(test_goaway_above_last_id_without_retries_is_eshutdown);
    RUN_TEST(test_goaway_drained_link_closed_by_client);
    RUN_TEST(test_pong_behind_16mib_answer_is_not_death);
    RUN_TEST(test_client_answers_server_ping);
    RUN_TEST(test_heartbeats_off_sends_only_the_probe);
    RUN_TEST(test_deadline_spans_all_retries);
    RUN_TEST(test_all_ejected_fails_fast_with_recorded_error);
    RUN_TEST(test_every_pending_call_fails_when_connection_goes_bad);
    RUN_TEST(test_destroy_cancels_calls_on_a_normal_link);
    RUN_TEST(test_unknown_negative_status_passed_through);
    return 0;
}

/*
 * Bounded output on both sides of a connection.
 *
 * Server: a client pipelines 64 KiB echo requests and never reads the
 * answers.  The server stops reading that connection once its unwritten
 * answers reach max_unwritten_bytes, so the client's writes stall after the
 * limit plus what the kernel buffers (without the bound the server reads all
 * 250 MiB and buffers every answer); the process does not grow by what was
 * sent; other connections on the same loop are still served; once the
 * client reads, every request is answered exactly once, in order; and a
 * paused connection whose client leaves is closed like any other.
 *
 * Client: a server that answers the probe PING and then never reads.  Once
 * the link's unwritten requests reach the channel's max_unwritten_bytes, new
 * calls fail at once with ARPC_EQUEUEFULL instead of piling up; once the
 * server reads, every call that was sent is answered, and each call
 * completed exactly once.  With a second endpoint, the refused calls (never
 * sent) go there instead, and all succeed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_util.h"
#include "proto/frame.h"
#include "raw_peer.h"
#include "test.h"
#include "test_stats.h"

#define PAYLOAD      (64 * 1024)
#define MAX_REQUESTS 4000 /* 250 MiB if nothing pushes back */
#define STALL_MS     1000 /* the socket took nothing for this long: writes stalled */
#define SERVER_LIMIT (1024 * 1024)
#define CLIENT_LIMIT (1024 * 1024)
#define CLIENT_CALLS 1000

static char payload[PAYLOAD + 1];

/* The socket buffers that hold what the server has not read, besides its
 * limit: the server's receive buffer (autotuned up to tcp_rmem's 32 MiB on
 * this machine) and the client's send buffer (up to 4 MiB).  Without the
 * bound everything is sent, four times this. */
#define SENT_BOUND (64ull * 1024 * 1024)

/* A client that pipelines echo requests on a raw socket. */
typedef struct pipeliner {
    int fd;
    arpc_buf *frame;   /* the frame being written */
    size_t off;        /* of it, written already */
    uint64_t next_id;  /* the id of `frame` */
    uint64_t sent;     /* bytes the socket took */
    uint64_t answered; /* answers read */
    arpc_buf *in;
} pipeliner;

static void encode_next(pipeliner *p)
{
    arpc_buf_clear(p->frame);
    ASSERT_OK(arpc__frame_encode_request(p->frame, p->next_id, 0, 0, "echo", 4, payload, PAYLOAD));
    p->off = 0;
}

/* Writes what the socket takes of the current frame.  @return false on EAGAIN. */
static bool write_some(pipeliner *p)
{
    size_t len = arpc_buf_len(p->frame);
    ssize_t n = send(p->fd, (const char *)arpc_buf_data(p->frame) + p->off, len - p->off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    ASSERT_GT(n, 0);
    p->off += (size_t)n;
    p->sent += (uint64_t)n;
    if (p->off == len) {
        p->next_id++;
        encode_next(p);
    }
    return true;
}

/* Pipelines requests until the socket takes nothing for STALL_MS, or all are sent. */
static void send_until_stalled(pipeliner *p)
{
    int64_t deadline = test_now_ms() + 20000;
    while (p->next_id <= MAX_REQUESTS && test_now_ms() < deadline) {
        if (write_some(p))
            continue;
        struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};
        if (poll(&pfd, 1, STALL_MS) == 0)
            return;
    }
}

static void drop_front(pipeliner *p, size_t n)
{
    arpc_buf *rest;
    ASSERT_OK(arpc_buf_create(&rest));
    ASSERT_OK(
        arpc_buf_append(rest, (const char *)arpc_buf_data(p->in) + n, arpc_buf_len(p->in) - n));
    arpc_buf_destroy(p->in);
    p->in = rest;
}

/* Decodes the answers read so far: each must answer the next id, in order. */
static void take_answers(pipeliner *p)
{
    for (;;) {
        arpc__frame f;
        int64_t n = arpc__frame_decode(arpc_buf_data(p->in), arpc_buf_len(p->in),
                                       ARPC__DEFAULT_MAX_FRAME, &f);
        ASSERT_GE(n, 0);
        if (n == 0)
            return;
        if (f.type == ARPC__FRAME_PING) {
            /* The server's heartbeat while its answers wait (a raw peer need not answer). */
            drop_front(p, (size_t)n);
            continue;
        }
        ASSERT_EQ(f.type, ARPC__FRAME_RESPONSE);
        ASSERT_EQ(f.status, 0);
        ASSERT_EQ(f.request_id, p->answered + 1);
        ASSERT_EQ(f.payload_len, PAYLOAD);
        p->answered++;
        drop_front(p, (size_t)n);
    }
}

/* Reads every answer, finishing the frame that was half written. */
static void drain_answers(pipeliner *p)
{
    uint64_t want = p->next_id - 1 + (p->off > 0 ? 1 : 0);
    int64_t deadline = test_now_ms() + 20000;
    char chunk[64 * 1024];
    while (p->answered < want && test_now_ms() < deadline) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN | (p->off > 0 ? POLLOUT : 0)};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if ((pfd.revents & POLLOUT) && p->off > 0)
            write_some(p);
        ssize_t n = recv(p->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN)
            continue;
        ASSERT_GT(n, 0);
        ASSERT_OK(arpc_buf_append(p->in, chunk, (size_t)n));
        take_answers(p);
    }
    ASSERT_EQ(p->answered, want);
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ASSERT_TRUE(f != NULL);
    unsigned long long size = 0, resident = 0;
    ASSERT_EQ(fscanf(f, "%llu %llu", &size, &resident), 2);
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void test_never_reading_client_is_paused_at_the_limit(void)
{
    /* One loop: the paused connection shares it with the other client. */
    arpc_runtime *rt = fault_runtime(1);
    arpc_server_opts sopts;
    arpc_server_opts_init(&sopts);
    sopts.max_unwritten_bytes = SERVER_LIMIT;
    arpc_server *srv = fault_echo_server(rt, &sopts);
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    arpc_channel *ch = fault_channel(rt, arpc_server_port(srv), &copts);
    ASSERT_OK(fault_echo_call(ch, 5000));

    uint64_t rss_before = rss_bytes();
    /* A small receive buffer, so answers stay in the server instead of our kernel buffer. */
    pipeliner p = {.fd = raw_connect_rcvbuf(arpc_server_port(srv), 64 * 1024), .next_id = 1};
    ASSERT_OK(arpc_buf_create(&p.frame));
    ASSERT_OK(arpc_buf_create(&p.in));
    encode_next(&p);
    send_until_stalled(&p);
    uint64_t rss_after = rss_bytes();
    fprintf(stderr,
            "  the server took %.1f MiB (%llu requests) before writes stalled; RSS +%.1f MiB\n",
            (double)p.sent / (1 << 20), (unsigned long long)(p.next_id - 1),
            ((double)rss_after - (double)rss_before) / (1 << 20));
    ASSERT_LT(p.next_id, MAX_REQUESTS); /* it stalled */
    ASSERT_LT(p.sent, SENT_BOUND);
    ASSERT_LT(rss_after, rss_before + SENT_BOUND);
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(srv, read_pauses, 1, 5000));

    /* The loop still serves everyone else. */
    int64_t start = test_now_ms();
    ASSERT_OK(fault_echo_call(ch, 5000));
    ASSERT_LT(test_now_ms() - start, 2000);

    /* Reading again resumes the server: every request answered once, in order. */
    drain_answers(&p);
    arpc_server_stats stats;
    arpc_server_get_stats(srv, &stats);
    ASSERT_EQ(stats.requests, p.answered + 2);
    close(p.fd);
    arpc_buf_destroy(p.frame);
    arpc_buf_destroy(p.in);

    /* A paused connection whose peer leaves is closed and freed like any other. */
    pipeliner q = {.fd = raw_connect_rcvbuf(arpc_server_port(srv), 64 * 1024), .next_id = 1};
    ASSERT_OK(arpc_buf_create(&q.frame));
    ASSERT_OK(arpc_buf_create(&q.in));
    encode_next(&q);
    send_until_stalled(&q);
    ASSERT_LT(q.sent, SENT_BOUND);
    close(q.fd); /* unread answers: a reset */
    arpc_buf_destroy(q.frame);
    arpc_buf_destroy(q.in);
    ASSERT_TRUE(WAIT_SERVER_STAT_EQ(srv, connections, 1, 5000));
    ASSERT_OK(fault_echo_call(ch, 5000));
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

/* ---- a server that never reads ------------------------------------------ */

typedef struct lazy_peer {
    int listen_fd;
    int port;
    pthread_t thread;
    _Atomic bool read; /* start reading and answering */
    _Atomic bool stop;
    _Atomic uint64_t requests;  /* REQUEST frames received */
    _Atomic uint64_t bad_order; /* ids not strictly increasing: a duplicate */
} lazy_peer;

/* Answers every complete frame in `in`; returns the bytes consumed. */
static size_t answer_frames(lazy_peer *lp, int fd, const uint8_t *in, size_t len, uint64_t *last)
{
    size_t used = 0;
    arpc_buf *out;
    ASSERT_OK(arpc_buf_create(&out));
    for (;;) {
        arpc__frame f;
        int64_t n = arpc__frame_decode(in + used, len - used, ARPC__DEFAULT_MAX_FRAME, &f);
        ASSERT_GE(n, 0);
        if (n == 0)
            break;
        used += (size_t)n;
        if (f.type == ARPC__FRAME_PING) {
            ASSERT_OK(arpc__frame_encode_control(out, ARPC__FRAME_PONG, f.request_id, 0));
        } else if (f.type == ARPC__FRAME_REQUEST) {
            if (f.request_id <= *last)
                atomic_fetch_add(&lp->bad_order, 1);
            *last = f.request_id;
            atomic_fetch_add(&lp->requests, 1);
            ASSERT_OK(arpc__frame_encode_response(out, f.request_id, 0, "ok", 2));
        }
    }
    raw_send(fd, arpc_buf_data(out), arpc_buf_len(out));
    arpc_buf_destroy(out);
    return used;
}

static void *lazy_peer_main(void *arg)
{
    lazy_peer *lp = arg;
    struct pollfd pfd = {.fd = lp->listen_fd, .events = POLLIN};
    ASSERT_EQ(poll(&pfd, 1, 10000), 1);
    int fd = accept4(lp->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    ASSERT_GE(fd, 0);
    /* The probe PING, answered, so the link is proven; then nothing is read. */
    /* (It carries the client's settings, protocol.md 4, as its payload.) */
    raw_frame probe;
    ASSERT_TRUE(raw_read_frame(fd, &probe, 10000));
    uint64_t last = 0;
    ASSERT_EQ(answer_frames(lp, fd, probe.bytes, probe.len, &last), probe.len);
    raw_frame_free(&probe);
    while (!atomic_load(&lp->read) && !atomic_load(&lp->stop))
        usleep(1000);
    arpc_buf *in;
    ASSERT_OK(arpc_buf_create(&in));
    char chunk[64 * 1024];
    while (!atomic_load(&lp->stop)) {
        struct pollfd cp = {.fd = fd, .events = POLLIN};
        if (poll(&cp, 1, 20) <= 0)
            continue;
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0)
            break;
        ASSERT_OK(arpc_buf_append(in, chunk, (size_t)n));
        size_t used = answer_frames(lp, fd, arpc_buf_data(in), arpc_buf_len(in), &last);
        arpc_buf *rest;
        ASSERT_OK(arpc_buf_create(&rest));
        ASSERT_OK(
            arpc_buf_append(rest, (const char *)arpc_buf_data(in) + used, arpc_buf_len(in) - used));
        arpc_buf_destroy(in);
        in = rest;
    }
    arpc_buf_destroy(in);
    close(fd);
    return NULL;
}

static void lazy_peer_start(lazy_peer *lp)
{
    lp->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(lp->listen_fd, 0);
    int small = 64 * 1024; /* inherited by the accepted socket */
    ASSERT_EQ(setsockopt(lp->listen_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(lp->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ASSERT_EQ(listen(lp->listen_fd, 4), 0);
    socklen_t len = sizeof(sa);
    ASSERT_EQ(getsockname(lp->listen_fd, (struct sockaddr *)&sa, &len), 0);
    lp->port = ntohs(sa.sin_port);
    ASSERT_EQ(pthread_create(&lp->thread, NULL, lazy_peer_main, lp), 0);
}

/* Stops the peer, destroys `ch` (which ends the peer's connection) and joins it. */
static void lazy_peer_stop(lazy_peer *lp, arpc_channel *ch)
{
    atomic_store(&lp->stop, true);
    arpc_channel_destroy(ch);
    pthread_join(lp->thread, NULL);
    close(lp->listen_fd);
}

static void count_statuses(const fault_calls *set, size_t *ok, size_t *full)
{
    *ok = 0;
    *full = 0;
    for (size_t i = 0; i < set->count; i++) {
        int status = atomic_load(&set->calls[i].status);
        if (atomic_load(&set->calls[i].done) == 0)
            continue;
        if (status == 0)
            (*ok)++;
        else if (status == ARPC_EQUEUEFULL)
            (*full)++;
        else
            test_fail(__FILE__, __LINE__, "call %zu: %s, want 0 or ARPC_EQUEUEFULL", i,
                      arpc_err_name(status));
    }
}

static bool last_call_done(void *arg)
{
    fault_calls *set = arg;
    return atomic_load(&set->calls[set->count - 1].done) > 0;
}

static void test_never_reading_server_fails_new_calls_with_equeuefull(void)
{
    lazy_peer lp = {.listen_fd = -1};
    lazy_peer_start(&lp);
    arpc_runtime *rt = fault_runtime(1);
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    copts.heartbeat_interval_ms = 0; /* the peer answers only the probe until it reads */
    copts.max_unwritten_bytes = CLIENT_LIMIT;
    arpc_channel *ch = fault_channel(rt, lp.port, &copts);
    arpc_call_opts opts = fault_call_opts(20000);

    fault_calls set;
    fault_calls_init(&set, CLIENT_CALLS);
    fault_calls_start_all(&set, ch, "echo", payload, &opts);
    /* One loop takes the calls in order: once the last is done, every call
     * was either sent or refused.  Refused ones fail at once, far from their
     * 20 s deadline; without the bound every call is buffered and waits. */
    ASSERT_TRUE(wait_until(last_call_done, &set, 10000));
    size_t ok, full;
    count_statuses(&set, &ok, &full);
    size_t sent = CLIENT_CALLS - full;
    fprintf(stderr, "  %zu calls refused with ARPC_EQUEUEFULL, %zu sent (%.1f MiB)\n", full, sent,
            (double)sent * PAYLOAD / (1 << 20));
    ASSERT_EQ(ok, 0);
    ASSERT_GT(full, 0);
    ASSERT_LT((uint64_t)sent * PAYLOAD, SENT_BOUND / 4); /* limit + the client's send buffer */
    for (size_t i = 0; i < CLIENT_CALLS; i++) {
        fault_call *c = &set.calls[i];
        if (atomic_load(&c->done) > 0)
            ASSERT_LT(atomic_load(&c->end_ms) - c->start_ms, 5000);
    }

    /* The server reads now: every call that was sent is answered, once. */
    atomic_store(&lp.read, true);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, 15000));
    count_statuses(&set, &ok, &full);
    ASSERT_EQ(ok + full, CLIENT_CALLS);
    ASSERT_EQ(ok, sent);
    ASSERT_EQ(atomic_load(&lp.requests), sent);
    ASSERT_EQ(atomic_load(&lp.bad_order), 0);
    for (size_t i = 0; i < CLIENT_CALLS; i++)
        ASSERT_EQ(atomic_load(&set.calls[i].done), 1);
    ASSERT_EQ(atomic_load(&set.completed), CLIENT_CALLS);

    lazy_peer_stop(&lp, ch);
    fault_calls_fini(&set);
    arpc_runtime_destroy(rt);
}

static void mark_taken(void *flag)
{
    atomic_store((_Atomic bool *)flag, true);
}

static bool is_taken(void *flag)
{
    return atomic_load((_Atomic bool *)flag);
}

/* With another endpoint, a call the full link refuses was never sent: it goes
 * there instead of failing. */
static void test_refused_calls_go_to_another_endpoint(void)
{
    lazy_peer lp = {.listen_fd = -1};
    lazy_peer_start(&lp);
    arpc_runtime *rt = fault_runtime(1);
    arpc_server *srv = fault_echo_server(rt, NULL);
    char target[128];
    snprintf(target, sizeof(target), "127.0.0.1:%d,127.0.0.1:%d", lp.port, arpc_server_port(srv));
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    copts.heartbeat_interval_ms = 0;
    copts.max_unwritten_bytes = CLIENT_LIMIT;
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &copts, &ch));
    arpc_call_opts opts = fault_call_opts(20000);

    /* One call per loop iteration (a task queued behind each marks when the
     * loop took it), so the other endpoint's link drains between calls and
     * only the lazy one fills up. */
    fault_calls set;
    fault_calls_init(&set, CLIENT_CALLS / 4);
    for (size_t i = 0; i < set.count; i++) {
        fault_call_start(&set, i, ch, "echo", payload, &opts);
        _Atomic bool taken = false;
        ASSERT_OK(arpc_loop_submit(arpc_runtime_loop(rt, 0), mark_taken, (void *)&taken));
        ASSERT_TRUE(wait_until(is_taken, (void *)&taken, 5000));
    }
    arpc_channel_stats cs;
    arpc_channel_get_stats(ch, &cs);
    ASSERT_GT(cs.retries, 0); /* the lazy link filled up and refused */
    atomic_store(&lp.read, true);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, 15000));
    size_t ok, full;
    count_statuses(&set, &ok, &full);
    arpc_channel_get_stats(ch, &cs);
    arpc_server_stats ss;
    arpc_server_get_stats(srv, &ss);
    fprintf(stderr,
            "  %llu calls moved to the other endpoint; %llu served there, %llu by the lazy one\n",
            (unsigned long long)cs.retries, (unsigned long long)ss.requests,
            (unsigned long long)atomic_load(&lp.requests));
    ASSERT_EQ(full, 0);
    ASSERT_EQ(ok, set.count);
    ASSERT_EQ(ss.requests + atomic_load(&lp.requests), set.count);
    ASSERT_EQ(atomic_load(&set.completed), set.count);

    lazy_peer_stop(&lp, ch);
    fault_calls_fini(&set);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    memset(payload, 'x', PAYLOAD);
    RUN_TEST(test_never_reading_client_is_paused_at_the_limit);
    RUN_TEST(test_never_reading_server_fails_new_calls_with_equeuefull);
    RUN_TEST(test_refused_calls_go_to_another_endpoint);
    return 0;
}

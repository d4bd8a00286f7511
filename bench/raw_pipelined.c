/*
 * raw-pipelined: epoll load generator keeping `depth` frames in flight per
 * connection.
 *
 * Design notes: the throughput ceiling of the kernel's TCP path with the
 * fewest syscalls per frame.  Each of N threads owns a contiguous share of
 * the connections in its own epoll set (level-triggered).  Per connection:
 *
 *  - `ring` is a FIFO of the queue times of frames in flight.  The server
 *    answers in order, so the oldest timestamp belongs to the next echo.
 *    Latency = time the echo is fully read - time the frame was queued.
 *  - Every frame is the same bytes, so nothing is copied to send: `unsent`
 *    frames go out with one sendmsg() whose iovecs all point at the shared
 *    frame (`sent_off` is how much of the first one already went).  When k
 *    echoes complete in one read, k new frames are queued and sent in one
 *    call (up to IOV_BATCH frames per call).
 *  - Echoes are parsed, not stored: `hdr`/`body_left` track the position in
 *    the current echo, so reads go into one per-thread scratch buffer.
 *
 * Timing as in raw-pingpong: `warm_end` and `end` are fixed by main before
 * the threads start.  qps counts echoes completed in [warm_end, end); the
 * histogram holds frames queued and completed inside that window.
 *
 * Errors (failed connects, I/O errors, EOF, wrong echo length) close the
 * connection and count one; the owning thread reconnects it at most every
 * 100 ms until the run ends.  Threads share only read-only state; each
 * has its own histogram and counters, merged by main after join.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hist.h"
#include "net.h"
#include "opts.h"

#define WARMUP_NS          1000000000ull
#define CONNECT_TIMEOUT_MS 1000
#define RETRY_NS           100000000ull
#define RX_BUF             (256u * 1024u)
#define IOV_BATCH          1024 /* Linux IOV_MAX */
#define MAX_EVENTS         256
#define MAX_WAIT_MS        100

static const char usage_text[] =
    "usage: raw-pipelined --target HOST:PORT [--conns C] [--depth D] [--size S] [--secs T]\n"
    "                     [--threads N]\n"
    "  Pipelined epoll load against raw-pipelined-server: N threads (default 1)\n"
    "  share C connections, each keeping D frames in flight.  Warms up 1 s, then\n"
    "  measures T s.  Defaults: --conns 1 --depth 1 --size 64 --secs 10.\n";

struct conn {
    int fd;          /* -1 while disconnected */
    bool want_out;   /* EPOLLOUT registered: the socket buffer was full */
    uint64_t *ring;  /* queue times of frames in flight, `depth` slots */
    uint32_t head;   /* oldest in-flight frame */
    uint32_t count;  /* frames in flight, sent or not */
    uint32_t unsent; /* the newest `unsent` of them are not fully sent yet */
    size_t sent_off; /* bytes of the oldest unsent frame already sent */
    uint8_t hdr[BENCH_FRAME_HDR];
    uint32_t hdr_have;
    size_t body_left;
    uint64_t retry_at; /* earliest reconnect attempt */
};

struct worker {
    pthread_t tid;
    int epfd;
    struct conn *conns;
    int nconns;
    int ndown; /* connections with fd == -1 */
    uint8_t *rx;
    uint64_t done;
    uint64_t errors;
    bench_hist hist;
};

/* Read-only once the workers start. */
static struct {
    bench_addr addr;
    uint32_t depth;
    size_t size;
    uint8_t *frame; /* header + payload, shared by all connections */
    size_t frame_len;
    uint64_t warm_end;
    uint64_t end;
} g;

static void conn_fail(struct worker *w, struct conn *c, uint64_t now)
{
    w->errors++;
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        c->fd = -1;
        w->ndown++;
    }
    c->retry_at = now + RETRY_NS;
}

static int set_want_out(struct worker *w, struct conn *c, bool want)
{
    struct epoll_event ev;

    if (c->want_out == want)
        return 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        return -errno;
    c->want_out = want;
    return 0;
}

/* Sends as many unsent frames as the socket takes.  Returns 0 or -errno. */
static int conn_flush(struct worker *w, struct conn *c)
{
    struct iovec iov[IOV_BATCH];
    struct msghdr msg;
    uint32_t k;
    uint32_t i;
    ssize_t n;
    size_t total;

    while (c->unsent > 0) {
        k = c->unsent < IOV_BATCH ? c->unsent : IOV_BATCH;
        iov[0].iov_base = g.frame + c->sent_off;
        iov[0].iov_len = g.frame_len - c->sent_off;
        for (i = 1; i < k; i++) {
            iov[i].iov_base = g.frame;
            iov[i].iov_len = g.frame_len;
        }
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = k;
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return set_want_out(w, c, true);
            return -errno;
        }
        total = c->sent_off + (size_t)n;
        c->unsent -= (uint32_t)(total / g.frame_len);
        c->sent_off = total % g.frame_len;
    }
    return set_want_out(w, c, false);
}

/* Queues `k` new frames stamped `now` (the ring has room: k <= depth - count). */
static void conn_queue(struct conn *c, uint32_t k, uint64_t now)
{
    uint32_t tail = (c->head + c->count) % g.depth;

    c->count += k;
    c->unsent += k;
    while (k-- > 0) {
        c->ring[tail] = now;
        tail = tail + 1 == g.depth ? 0 : tail + 1;
    }
}

/* Reads once and accounts every completed echo.  Returns 0 or -errno. */
static int conn_on_readable(struct worker *w, struct conn *c)
{
    const uint8_t *p;
    size_t n;
    size_t take;
    uint32_t completed = 0;
    uint64_t now;
    ssize_t r;

    do {
        r = read(c->fd, w->rx, RX_BUF);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    if (r == 0)
        return -ECONNRESET;
    now = bench_now_ns();
    p = w->rx;
    n = (size_t)r;

    while (n > 0) {
        if (c->hdr_have < BENCH_FRAME_HDR) {
            take = BENCH_FRAME_HDR - c->hdr_have;
            take = take < n ? take : n;
            memcpy(c->hdr + c->hdr_have, p, take);
            c->hdr_have += (uint32_t)take;
            p += take;
            n -= take;
            if (c->hdr_have < BENCH_FRAME_HDR)
                break;
            if (bench_frame_len(c->hdr) != g.size)
                return -EPROTO;
            c->body_left = g.size;
        }
        take = c->body_left < n ? c->body_left : n;
        c->body_left -= take;
        p += take;
        n -= take;
        if (c->body_left > 0)
            break;

        /* One echo complete: it answers the oldest frame already sent. */
        c->hdr_have = 0;
        if (c->count - c->unsent == 0)
            return -EPROTO;
        if (c->ring[c->head] >= g.warm_end && now < g.end)
            bench_hist_record(&w->hist, now - c->ring[c->head]);
        if (now >= g.warm_end && now < g.end)
            w->done++;
        c->head = c->head + 1 == g.depth ? 0 : c->head + 1;
        c->count--;
        completed++;
    }

    if (completed > 0 && now < g.end) {
        conn_queue(c, completed, now);
        return conn_flush(w, c);
    }
    return 0;
}

/* Registers a freshly connected fd and fills its pipeline.  Returns 0 or -errno. */
static int conn_start(struct worker *w, struct conn *c, uint64_t now)
{
    struct epoll_event ev;

    c->want_out = false;
    c->head = c->count = c->unsent = 0;
    c->sent_off = 0;
    c->hdr_have = 0;
    c->body_left = 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (bench_set_nonblock(c->fd) != 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        return -errno;
    conn_queue(c, g.depth, now);
    return conn_flush(w, c);
}

static void reconnect_due(struct worker *w, uint64_t now)
{
    int i;

    for (i = 0; i < w->nconns && w->ndown > 0; i++) {
        struct conn *c = &w->conns[i];

        if (c->fd >= 0 || now < c->retry_at)
            continue;
        if (bench_connect(&g.addr, CONNECT_TIMEOUT_MS, &c->fd) != 0) {
            conn_fail(w, c, now);
            continue;
        }
        w->ndown--;
        if (conn_start(w, c, now) != 0)
            conn_fail(w, c, now);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = bench_now_ns();
    int timeout_ms;
    int n;
    int i;

    for (i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];

        if (c->fd >= 0 && conn_start(w, c, now) != 0)
            conn_fail(w, c, now);
    }
    while ((now = bench_now_ns()) < g.end) {
        timeout_ms = (int)((g.end - now) / 1000000u) + 1;
        if (timeout_ms > MAX_WAIT_MS)
            timeout_ms = MAX_WAIT_MS;
        n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("raw-pipelined: epoll_wait");
            w->errors++;
            break;
        }
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            int rc = 0;

            /* Each fd appears at most once per batch; a failed one has fd == -1. */
            if ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0)
                rc = conn_on_readable(w, c);
            if (rc == 0 && (evs[i].events & EPOLLOUT) != 0)
                rc = conn_flush(w, c);
            if (rc != 0)
                conn_fail(w, c, bench_now_ns());
        }
        if (w->ndown > 0)
            reconnect_due(w, bench_now_ns());
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_opts opts;
    struct worker *workers;
    struct conn *conns;
    bench_hist total;
    uint64_t *rings;
    uint64_t errors = 0;
    uint64_t done = 0;
    int nthreads;
    int connected = 0;
    int started;
    int i;

    bench_opts_init(&opts);
    if (bench_opts_parse(argc, argv, BENCH_OPTS_CLIENT, usage_text, NULL, NULL, &opts) != 0)
        return 2;
    if (opts.help)
        return 0;
    bench_raise_nofile();
    bench_ignore_sigpipe();

    /* More threads than connections would only idle. */
    nthreads = opts.threads < opts.conns ? opts.threads : opts.conns;
    g.addr = opts.addr;
    g.depth = (uint32_t)opts.depth;
    g.size = opts.size;
    g.frame_len = BENCH_FRAME_HDR + opts.size;
    g.frame = malloc(g.frame_len);
    workers = calloc((size_t)nthreads, sizeof(*workers));
    conns = calloc((size_t)opts.conns, sizeof(*conns));
    rings = calloc((size_t)opts.conns * (size_t)opts.depth, sizeof(*rings));
    if (g.frame == NULL || workers == NULL || conns == NULL || rings == NULL) {
        fprintf(stderr, "raw-pipelined: out of memory\n");
        return 1;
    }
    bench_frame_set_len(g.frame, (uint32_t)opts.size);
    bench_fill_pattern(g.frame + BENCH_FRAME_HDR, opts.size);

    /* Worker t owns a contiguous share of `conns`; the first conns % nthreads get one extra. */
    for (i = 0; i < nthreads; i++) {
        struct worker *w = &workers[i];
        int base = opts.conns / nthreads;
        int extra = opts.conns % nthreads;

        w->nconns = base + (i < extra ? 1 : 0);
        w->conns = conns + i * base + (i < extra ? i : extra);
        bench_hist_init(&w->hist);
        w->rx = malloc(RX_BUF);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->rx == NULL || w->epfd < 0) {
            perror("raw-pipelined: setup");
            return 1;
        }
    }
    for (i = 0; i < opts.conns; i++) {
        conns[i].ring = rings + (size_t)i * (size_t)opts.depth;
        if (bench_connect(&g.addr, CONNECT_TIMEOUT_MS, &conns[i].fd) == 0) {
            connected++;
        } else {
            conns[i].fd = -1;
        }
    }
    if (connected == 0) {
        fprintf(stderr, "raw-pipelined: cannot connect to %s\n", opts.target);
        return 1;
    }
    /* Connections that failed now are retried by their worker; count each failure once. */
    for (i = 0; i < nthreads; i++) {
        struct worker *w = &workers[i];
        int k;

        for (k = 0; k < w->nconns; k++) {
            if (w->conns[k].fd < 0) {
                w->errors++;
                w->ndown++;
            }
        }
    }

    g.warm_end = bench_now_ns() + WARMUP_NS;
    g.end = g.warm_end + (uint64_t)opts.secs * 1000000000ull;
    for (started = 0; started < nthreads; started++) {
        if (pthread_create(&workers[started].tid, NULL, worker_main, &workers[started]) != 0) {
            fprintf(stderr, "raw-pipelined: cannot start thread %d\n", started);
            break;
        }
    }

    bench_hist_init(&total);
    for (i = 0; i < nthreads; i++) {
        if (i < started)
            pthread_join(workers[i].tid, NULL);
        bench_hist_merge(&total, &workers[i].hist);
        done += workers[i].done;
        errors += workers[i].errors;
        close(workers[i].epfd);
        free(workers[i].rx);
    }
    for (i = 0; i < opts.conns; i++) {
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    }
    bench_print_result("raw-pipelined", "epoll", opts.conns, opts.depth, opts.size,
                       (double)done / opts.secs, &total, errors);
    free(rings);
    free(conns);
    free(workers);
    free(g.frame);
    return started == nthreads ? 0 : 1;
}

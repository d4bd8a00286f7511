/*
 * raw-pipelined-server: nonblocking epoll echo server for pipelined load.
 *
 * Design notes: the throughput ceiling for one socket per connection.  Each
 * readable event does one read() into a buffer of at least 64 KiB; every
 * complete frame in it is echoed with ONE send() straight from that buffer
 * (an echo is byte-identical to the request, so the complete prefix of the
 * buffer is the reply), and a trailing partial frame is moved to the front
 * to wait for the rest.  A frame larger than the buffer grows it to fit.
 *
 * Back-pressure: if the send is short (EAGAIN), the unsent bytes move to a
 * per-connection output buffer and the connection switches from EPOLLIN to
 * EPOLLOUT until that buffer drains, so a client that does not read cannot
 * make the server buffer without bound.  Level-triggered throughout: simpler
 * to reason about, and one read per wake-up keeps connections fair.
 *
 * Threads: N workers, each with its own epoll set and connections that only
 * it touches.  Worker 0 also owns the listening socket and hands accepted
 * fds out round-robin (better balance than SO_REUSEPORT's hash for a few
 * connections) through each worker's mutex-protected queue plus an eventfd
 * to wake it.  Main blocks SIGINT/SIGTERM before starting the workers and
 * waits for them with sigwait(); on a signal it sets `stopping`, pokes every
 * eventfd and joins; each worker closes and frees its own connections.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "opts.h"

#define RX_INITIAL (256u * 1024u)
#define MAX_EVENTS 256

static const char usage_text[] =
    "usage: raw-pipelined-server --listen HOST:PORT [--threads N]\n"
    "  Nonblocking epoll echo server for raw-pipelined: N event-loop threads\n"
    "  (default 1); echoes 4-byte little-endian length-prefixed frames, all\n"
    "  complete frames of one read in one write.\n"
    "  Prints 'listening on HOST:PORT' when ready; exits on SIGINT/SIGTERM.\n";

struct conn {
    int fd;
    bool out_mode; /* waiting for EPOLLOUT to flush `wbuf`; reads paused */
    uint8_t *rbuf;
    size_t rcap;
    size_t rlen;
    uint8_t *wbuf;
    size_t wcap;
    size_t wlen;
    size_t woff;
    struct conn *prev;
    struct conn *next;
};

struct worker {
    pthread_t tid;
    int epfd;
    int evfd;
    struct conn head; /* circular list sentinel of this worker's connections */
    /* Hand-off queue filled by worker 0, guarded by `mu`. */
    pthread_mutex_t mu;
    int *queue;
    size_t qlen;
    size_t qcap;
};

static struct {
    struct worker *workers;
    int nworkers;
    int listen_fd;
    unsigned next_worker; /* touched by worker 0 only */
    atomic_int stopping;
} g;

/* epoll_data.ptr tags for the two non-connection fds. */
static char listen_tag;
static char wake_tag;

static void conn_close(struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    close(c->fd); /* also removes it from the epoll set */
    free(c->rbuf);
    free(c->wbuf);
    free(c);
}

static int conn_watch(struct worker *w, struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = c;
    return epoll_ctl(w->epfd, op, c->fd, &ev);
}

static void conn_add(struct worker *w, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL || (c->rbuf = malloc(RX_INITIAL)) == NULL) {
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    c->rcap = RX_INITIAL;
    c->next = &w->head;
    c->prev = w->head.prev;
    w->head.prev->next = c;
    w->head.prev = c;
    if (bench_set_nonblock(fd) != 0 || conn_watch(w, c, EPOLL_CTL_ADD, EPOLLIN) != 0)
        conn_close(c);
}

/*
 * Sends `len` bytes with one send(); keeps what did not fit and waits for
 * EPOLLOUT.  Only called while `wbuf` is empty: reads pause while it is not.
 * Returns 0 or -1.
 */
static int conn_send(struct worker *w, struct conn *c, const uint8_t *data, size_t len)
{
    ssize_t n;
    size_t rest;

    do {
        n = send(c->fd, data, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        n = 0;
    }
    rest = len - (size_t)n;
    if (rest == 0)
        return 0;
    if (rest > c->wcap) {
        uint8_t *bigger = realloc(c->wbuf, rest);

        if (bigger == NULL)
            return -1;
        c->wbuf = bigger;
        c->wcap = rest;
    }
    memcpy(c->wbuf, data + n, rest);
    c->wlen = rest;
    c->woff = 0;
    c->out_mode = true;
    return conn_watch(w, c, EPOLL_CTL_MOD, EPOLLOUT) == 0 ? 0 : -1;
}

static int conn_on_writable(struct worker *w, struct conn *c)
{
    ssize_t n;

    while (c->woff < c->wlen) {
        n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->woff += (size_t)n;
    }
    c->wlen = c->woff = 0;
    c->out_mode = false;
    return conn_watch(w, c, EPOLL_CTL_MOD, EPOLLIN) == 0 ? 0 : -1;
}

/* Returns 0, or -1 if the connection must close (EOF, error, bad frame). */
static int conn_on_readable(struct worker *w, struct conn *c)
{
    size_t off = 0;
    uint32_t len;
    ssize_t n;

    /* Invariant: rlen < rcap here (a buffered partial frame always fits with room to spare). */
    do {
        n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    if (n == 0)
        return -1;
    c->rlen += (size_t)n;

    while (c->rlen - off >= BENCH_FRAME_HDR) {
        len = bench_frame_len(c->rbuf + off);
        if (len > BENCH_MAX_PAYLOAD)
            return -1;
        if (c->rlen - off < BENCH_FRAME_HDR + (size_t)len)
            break;
        off += BENCH_FRAME_HDR + (size_t)len;
    }
    if (off > 0) {
        if (conn_send(w, c, c->rbuf, off) != 0)
            return -1;
        c->rlen -= off;
        memmove(c->rbuf, c->rbuf + off, c->rlen);
    }
    /*
     * Grow so the pending partial frame fits whole: rlen < need <= rcap keeps
     * the invariant above, since a frame is consumed as soon as it is complete.
     */
    if (c->rlen >= BENCH_FRAME_HDR) {
        size_t need = BENCH_FRAME_HDR + (size_t)bench_frame_len(c->rbuf);

        if (need > c->rcap) {
            uint8_t *bigger = realloc(c->rbuf, need);

            if (bigger == NULL)
                return -1;
            c->rbuf = bigger;
            c->rcap = need;
        }
    }
    return 0;
}

static void hand_off(struct worker *self, int fd)
{
    struct worker *to = &g.workers[g.next_worker++ % (unsigned)g.nworkers];
    uint64_t one = 1;
    bool queued = false;

    if (to == self) {
        conn_add(self, fd);
        return;
    }
    pthread_mutex_lock(&to->mu);
    if (to->qlen == to->qcap) {
        size_t cap = to->qcap != 0 ? to->qcap * 2 : 64;
        int *bigger = realloc(to->queue, cap * sizeof(*bigger));

        if (bigger != NULL) {
            to->queue = bigger;
            to->qcap = cap;
        }
    }
    if (to->qlen < to->qcap) {
        to->queue[to->qlen++] = fd;
        queued = true;
    }
    pthread_mutex_unlock(&to->mu);
    if (!queued) {
        close(fd);
        return;
    }
    while (write(to->evfd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

static void on_listen_readable(struct worker *w)
{
    int fd;

    for (;;) {
        fd = accept4(g.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            /* EAGAIN: drained.  EMFILE and friends: level-triggered, retried next wake-up. */
            return;
        }
        (void)bench_set_nodelay(fd);
        hand_off(w, fd);
    }
}

static void on_wake(struct worker *w)
{
    uint64_t count;
    int *fds;
    size_t n;
    size_t i;

    while (read(w->evfd, &count, sizeof(count)) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&w->mu);
    fds = w->queue;
    n = w->qlen;
    w->queue = NULL;
    w->qlen = w->qcap = 0;
    pthread_mutex_unlock(&w->mu);
    for (i = 0; i < n; i++)
        conn_add(w, fds[i]);
    free(fds);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    int n;
    int i;

    while (!atomic_load(&g.stopping)) {
        n = epoll_wait(w->epfd, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("raw-pipelined-server: epoll_wait");
            break;
        }
        for (i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            struct conn *c = tag;
            int rc;

            if (tag == &listen_tag) {
                on_listen_readable(w);
                continue;
            }
            if (tag == &wake_tag) {
                on_wake(w);
                continue;
            }
            /* Each fd appears at most once per batch, so closing here is safe. */
            if (c->out_mode)
                rc = conn_on_writable(w, c);
            else
                rc = conn_on_readable(w, c);
            if (rc != 0)
                conn_close(c);
        }
    }
    while (w->head.next != &w->head)
        conn_close(w->head.next);
    return NULL;
}

static int worker_init(struct worker *w)
{
    struct epoll_event ev;

    w->head.next = w->head.prev = &w->head;
    pthread_mutex_init(&w->mu, NULL);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->epfd < 0 || w->evfd < 0)
        return -errno;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &wake_tag;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0)
        return -errno;
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts opts;
    bench_addr bound;
    struct epoll_event ev;
    uint64_t one = 1;
    int err;
    int i;

    bench_opts_init(&opts);
    if (bench_opts_parse(argc, argv, BENCH_OPTS_SERVER, usage_text, NULL, NULL, &opts) != 0)
        return 2;
    if (opts.help)
        return 0;
    bench_raise_nofile();
    bench_ignore_sigpipe();

    bench_block_stop_signals();

    err = bench_listen(&opts.addr, &g.listen_fd, &bound);
    if (err == 0)
        err = bench_set_nonblock(g.listen_fd);
    if (err != 0) {
        fprintf(stderr, "raw-pipelined-server: cannot listen on %s: %s\n", opts.listen,
                strerror(-err));
        return 1;
    }
    g.nworkers = opts.threads;
    g.workers = calloc((size_t)g.nworkers, sizeof(*g.workers));
    if (g.workers == NULL) {
        fprintf(stderr, "raw-pipelined-server: out of memory\n");
        return 1;
    }
    for (i = 0; i < g.nworkers; i++) {
        err = worker_init(&g.workers[i]);
        if (err != 0) {
            fprintf(stderr, "raw-pipelined-server: epoll/eventfd: %s\n", strerror(-err));
            return 1;
        }
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &listen_tag;
    if (epoll_ctl(g.workers[0].epfd, EPOLL_CTL_ADD, g.listen_fd, &ev) != 0) {
        perror("raw-pipelined-server: epoll_ctl");
        return 1;
    }
    for (i = 0; i < g.nworkers; i++) {
        if (pthread_create(&g.workers[i].tid, NULL, worker_main, &g.workers[i]) != 0) {
            fprintf(stderr, "raw-pipelined-server: cannot start thread %d\n", i);
            return 1;
        }
    }
    bench_announce_listening(&bound);
    bench_wait_stop_signal();

    atomic_store(&g.stopping, 1);
    for (i = 0; i < g.nworkers; i++) {
        while (write(g.workers[i].evfd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
    for (i = 0; i < g.nworkers; i++)
        pthread_join(g.workers[i].tid, NULL);
    close(g.listen_fd);
    for (i = 0; i < g.nworkers; i++) {
        struct worker *w = &g.workers[i];
        size_t k;

        for (k = 0; k < w->qlen; k++)
            close(w->queue[k]);
        free(w->queue);
        close(w->evfd);
        close(w->epfd);
        pthread_mutex_destroy(&w->mu);
    }
    free(g.workers);
    return 0;
}

/*
 * raw-pingpong-server: blocking TCP echo server, one thread per connection.
 *
 * Design notes: the baseline for request/response with one message in flight,
 * so it does the least the kernel allows: per message one recv() (usually
 * the whole frame) and one send() of the frame straight from the receive
 * buffer.  Frames that arrive back to back are still handled: bytes past the
 * current frame stay in the buffer for the next round.
 *
 * Threads: main blocks SIGINT/SIGTERM before starting any thread (so every
 * thread inherits the mask) and waits for them with sigwait(); an acceptor
 * thread runs accept(); each connection gets a detached thread.  Live
 * connections sit in a list under `g.mu` so shutdown can wake their blocking
 * recv() with shutdown(2).  A connection thread closes its fd while holding
 * `g.mu`, so main never shuts down an fd number that was already reused.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "opts.h"

#define RX_INITIAL (64u * 1024u)
#define CONN_STACK (256u * 1024u)

static const char usage_text[] =
    "usage: raw-pingpong-server --listen HOST:PORT [--threads N]\n"
    "  Blocking echo server for raw-pingpong: one thread per connection, echoes\n"
    "  4-byte little-endian length-prefixed frames.  --threads is accepted for\n"
    "  symmetry with the other servers and ignored (one thread per connection).\n"
    "  Prints 'listening on HOST:PORT' when ready; exits on SIGINT/SIGTERM.\n";

struct conn {
    int fd;
    struct conn *prev;
    struct conn *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when a connection thread exits */
    struct conn head;    /* circular list sentinel of live connections */
    int nconns;
    atomic_int stopping;
    int listen_fd;
} g = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .idle = PTHREAD_COND_INITIALIZER,
};

/* Receives until `*have` >= `want`, reading as much as fits.  Returns 0 or -1 (EOF/error). */
static int recv_at_least(int fd, uint8_t *buf, size_t cap, size_t *have, size_t want)
{
    ssize_t n;

    while (*have < want) {
        n = recv(fd, buf + *have, cap - *have, 0);
        if (n > 0) {
            *have += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    size_t cap = RX_INITIAL;
    size_t have = 0;
    uint8_t *buf = malloc(cap);

    while (buf != NULL) {
        size_t need;
        uint32_t len;

        if (recv_at_least(c->fd, buf, cap, &have, BENCH_FRAME_HDR) != 0)
            break;
        len = bench_frame_len(buf);
        if (len > BENCH_MAX_PAYLOAD)
            break; /* Not our protocol: drop the connection. */
        need = BENCH_FRAME_HDR + len;
        if (need > cap) {
            uint8_t *bigger = realloc(buf, need);

            if (bigger == NULL)
                break;
            buf = bigger;
            cap = need;
        }
        if (recv_at_least(c->fd, buf, cap, &have, need) != 0)
            break;
        if (bench_send_all(c->fd, buf, need) != 0)
            break;
        have -= need;
        memmove(buf, buf + need, have);
    }
    free(buf);

    pthread_mutex_lock(&g.mu);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    close(c->fd);
    g.nconns--;
    pthread_cond_signal(&g.idle);
    pthread_mutex_unlock(&g.mu);
    free(c);
    return NULL;
}

static void start_conn(pthread_attr_t *attr, int fd)
{
    struct conn *c = malloc(sizeof(*c));
    pthread_t tid;

    if (c == NULL) {
        close(fd);
        return;
    }
    c->fd = fd;
    pthread_mutex_lock(&g.mu);
    c->next = &g.head;
    c->prev = g.head.prev;
    g.head.prev->next = c;
    g.head.prev = c;
    g.nconns++;
    /* Created under the lock so the thread cannot unlink itself before it is linked. */
    if (pthread_create(&tid, attr, conn_main, c) != 0) {
        fprintf(stderr, "raw-pingpong-server: pthread_create failed, dropping connection\n");
        c->prev->next = c->next;
        c->next->prev = c->prev;
        g.nconns--;
        close(fd);
        free(c);
    }
    pthread_mutex_unlock(&g.mu);
}

static void *acceptor_main(void *arg)
{
    pthread_attr_t attr;
    int fd;

    (void)arg;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, CONN_STACK);
    for (;;) {
        fd = accept4(g.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (atomic_load(&g.stopping))
                break;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: back off instead of spinning. */
                bench_sleep_ms(10);
                continue;
            }
            perror("raw-pingpong-server: accept");
            break;
        }
        (void)bench_set_nodelay(fd);
        start_conn(&attr, fd);
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_opts opts;
    bench_addr bound;
    pthread_t acceptor;
    struct conn *c;
    int err;

    bench_opts_init(&opts);
    if (bench_opts_parse(argc, argv, BENCH_OPTS_SERVER, usage_text, NULL, NULL, &opts) != 0)
        return 2;
    if (opts.help)
        return 0;
    bench_raise_nofile();
    bench_ignore_sigpipe();
    g.head.next = g.head.prev = &g.head;

    bench_block_stop_signals();

    err = bench_listen(&opts.addr, &g.listen_fd, &bound);
    if (err != 0) {
        fprintf(stderr, "raw-pingpong-server: cannot listen on %s: %s\n", opts.listen,
                strerror(-err));
        return 1;
    }
    if (pthread_create(&acceptor, NULL, acceptor_main, NULL) != 0) {
        fprintf(stderr, "raw-pingpong-server: cannot start the acceptor thread\n");
        return 1;
    }
    bench_announce_listening(&bound);
    bench_wait_stop_signal();

    /* shutdown() on a listening socket makes a blocked accept() fail with EINVAL on Linux. */
    atomic_store(&g.stopping, 1);
    shutdown(g.listen_fd, SHUT_RDWR);
    pthread_join(acceptor, NULL);
    close(g.listen_fd);

    pthread_mutex_lock(&g.mu);
    for (c = g.head.next; c != &g.head; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    while (g.nconns > 0)
        pthread_cond_wait(&g.idle, &g.mu);
    pthread_mutex_unlock(&g.mu);
    return 0;
}

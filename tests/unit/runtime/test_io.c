/*
 * Coroutine sockets on 127.0.0.1 between two loops (two threads).  Proves: an
 * echo server coroutine on loop A (arpc_io_accept/read/write) and a client
 * coroutine on loop B (arpc_io_connect) exchange messages of many sizes, a
 * 1 MiB message (written by a second coroutine while the first reads), and
 * writev batches (including empty entries and more entries than one sendmsg
 * takes), and both sides see end of stream; read and accept deadlines expire
 * with ARPC_ETIMEDOUT, never early and within generous slack; connecting to a
 * closed port gives ARPC_ECONNREFUSED; closing a socket wakes the coroutine
 * waiting on it (read, write or accept) with ARPC_ECANCELED; and every call
 * made outside a coroutine gives ARPC_ENOTCORO.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpc/coro.h>
#include <arpc/err.h>
#include <arpc/io.h>
#include <arpc/loop.h>

#include "test.h"

#define IO_TIMEOUT_MS 10000
#define BIG           (1024 * 1024)
#define SLACK_MS      5000

static int64_t now_ms(void)
{
    return test_now_ms();
}

/* ---- harness ------------------------------------------------------------------------- */

typedef struct fixture {
    arpc_loop *a;
    arpc_loop *b;
    arpc_wg done;
    int listen_fd;
    char address[64];
} fixture;

static void fixture_start(fixture *f)
{
    memset(f, 0, sizeof(*f));
    ASSERT_OK(arpc_loop_create(NULL, &f->a));
    ASSERT_OK(arpc_loop_create(NULL, &f->b));
    ASSERT_OK(arpc_loop_start(f->a));
    ASSERT_OK(arpc_loop_start(f->b));
    ASSERT_OK(arpc_io_listen("127.0.0.1:0", 128, 0, &f->listen_fd));
    int port = arpc_io_local_port(f->listen_fd);
    ASSERT_GT(port, 0);
    snprintf(f->address, sizeof(f->address), "127.0.0.1:%d", port);
}

static void fixture_stop(fixture *f)
{
    arpc_loop_destroy(f->a);
    arpc_loop_destroy(f->b);
}

/* Starts `server` on loop A and `client` on loop B, and waits for both. */
static void run_pair(fixture *f, arpc_coro_fn server, arpc_coro_fn client)
{
    arpc_wg_init(&f->done, (server ? 1 : 0) + (client ? 1 : 0));
    if (server)
        ASSERT_OK(arpc_coro_spawn(f->a, server, f));
    if (client)
        ASSERT_OK(arpc_coro_spawn(f->b, client, f));
    ASSERT_OK(arpc_wg_wait(&f->done, 60000));
}

static void fill_pattern(uint8_t *p, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7u + salt + (i >> 8));
}

static void read_exact(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = arpc_io_read(fd, buf + got, len - got, IO_TIMEOUT_MS);
        ASSERT_GT(n, 0);
        got += (size_t)n;
    }
}

/* ---- echo ---------------------------------------------------------------------------- */

static void echo_server(void *arg)
{
    fixture *f = arg;
    static uint8_t buf[65536];
    int fd = -1;
    ASSERT_OK(arpc_io_accept(f->listen_fd, IO_TIMEOUT_MS, &fd));
    ASSERT_OK(arpc_io_close(f->listen_fd));
    for (;;) {
        ssize_t n = arpc_io_read(fd, buf, sizeof(buf), IO_TIMEOUT_MS);
        if (n == 0)
            break;
        ASSERT_GT(n, 0);
        ASSERT_EQ(arpc_io_write(fd, buf, (size_t)n, IO_TIMEOUT_MS), n);
    }
    ASSERT_OK(arpc_io_close(fd));
    arpc_wg_done(&f->done);
}

static void echo_one(int fd, size_t len, unsigned salt)
{
    static uint8_t out[100000];
    static uint8_t in[100000];
    fill_pattern(out, len, salt);
    ASSERT_EQ(arpc_io_write(fd, out, len, IO_TIMEOUT_MS), (ssize_t)len);
    read_exact(fd, in, len);
    ASSERT_MEMEQ(in, out, len);
}

typedef struct big_writer {
    int fd;
    uint8_t *data;
    arpc_wg done;
} big_writer;

static void write_big(void *arg)
{
    big_writer *w = arg;
    ASSERT_EQ(arpc_io_write(w->fd, w->data, BIG, IO_TIMEOUT_MS), BIG);
    arpc_wg_done(&w->done);
}

/* 1 MiB: a second coroutine writes while this one reads the echo. */
static void echo_big(int fd)
{
    big_writer w = {fd, malloc(BIG), {{0}}};
    uint8_t *in = malloc(BIG);
    ASSERT_TRUE(w.data != NULL && in != NULL);
    fill_pattern(w.data, BIG, 99);
    arpc_wg_init(&w.done, 1);
    ASSERT_OK(arpc_coro_spawn(arpc_loop_current(), write_big, &w));
    read_exact(fd, in, BIG);
    ASSERT_OK(arpc_wg_wait(&w.done, IO_TIMEOUT_MS));
    ASSERT_MEMEQ(in, w.data, BIG);
    free(in);
    free(w.data);
}

/* Entries of varying size, some empty, more of them than one sendmsg takes. */
static void echo_writev(int fd, int count)
{
    static uint8_t block[200000];
    static uint8_t in[200000];
    struct iovec iov[200];
    size_t total = 0;
    ASSERT_LE(count, 200);
    fill_pattern(block, sizeof(block), 5);
    for (int i = 0; i < count; i++) {
        size_t len = i % 5 == 3 ? 0 : (size_t)(i * 131) % 900 + 1;
        if (count == 3)
            len = i == 1 ? 70000 : i == 0 ? 5 : 0;
        iov[i].iov_base = block + total;
        iov[i].iov_len = len;
        total += len;
        ASSERT_LE(total, sizeof(block));
    }
    struct iovec copy[200];
    memcpy(copy, iov, sizeof(iov[0]) * (size_t)count);
    ASSERT_EQ(arpc_io_writev(fd, iov, count, IO_TIMEOUT_MS), (ssize_t)total);
    ASSERT_MEMEQ(copy, iov, sizeof(iov[0]) * (size_t)count); /* not modified */
    read_exact(fd, in, total);
    ASSERT_MEMEQ(in, block, total);
}

static void echo_client(void *arg)
{
    fixture *f = arg;
    static const size_t sizes[] = {1, 2, 100, 1000, 4096, 65536, 65537, 100000};
    int fd = -1;
    ASSERT_OK(arpc_io_connect(f->address, IO_TIMEOUT_MS, &fd));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        echo_one(fd, sizes[i], (unsigned)i);
    echo_big(fd);
    echo_writev(fd, 3);
    echo_writev(fd, 200);
    /* Half-close: the server sees end of stream, closes, and so do we. */
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    uint8_t byte;
    ASSERT_EQ(arpc_io_read(fd, &byte, 1, IO_TIMEOUT_MS), 0);
    ASSERT_OK(arpc_io_close(fd));
    arpc_wg_done(&f->done);
}

static void test_echo_between_loops(void)
{
    fixture f;
    fixture_start(&f);
    run_pair(&f, echo_server, echo_client);
    fixture_stop(&f);
}

/* ---- deadlines ----------------------------------------------------------------------- */

typedef struct deadline_fixture {
    fixture base;
    arpc_event client_done;
} deadline_fixture;

static void silent_server(void *arg)
{
    deadline_fixture *d = arg;
    int fd = -1;
    ASSERT_OK(arpc_io_accept(d->base.listen_fd, IO_TIMEOUT_MS, &fd));
    /* Nothing is pending now: an accept with a deadline expires. */
    int64_t start = now_ms();
    int other = -1;
    ASSERT_ERR(arpc_io_accept(d->base.listen_fd, 50, &other), ARPC_ETIMEDOUT);
    ASSERT_GE(now_ms() - start, 50);
    ASSERT_LT(now_ms() - start, 50 + SLACK_MS);
    ASSERT_OK(arpc_io_close(d->base.listen_fd));
    /* Keep the connection open, and silent, until the client is done. */
    ASSERT_OK(arpc_event_wait(&d->client_done, 30000));
    ASSERT_OK(arpc_io_close(fd));
    arpc_wg_done(&d->base.done);
}

static void impatient_client(void *arg)
{
    deadline_fixture *d = arg;
    int fd = -1;
    uint8_t buf[16];
    ASSERT_OK(arpc_io_connect(d->base.address, IO_TIMEOUT_MS, &fd));
    int64_t start = now_ms();
    ASSERT_ERR(arpc_io_read(fd, buf, sizeof(buf), 100), ARPC_ETIMEDOUT);
    int64_t elapsed = now_ms() - start;
    ASSERT_GE(elapsed, 100);
    ASSERT_LT(elapsed, 100 + SLACK_MS);
    /* A zero timeout on a socket with nothing to read expires at once. */
    ASSERT_ERR(arpc_io_read(fd, buf, sizeof(buf), 0), ARPC_ETIMEDOUT);
    ASSERT_OK(arpc_io_close(fd));
    arpc_event_signal(&d->client_done);
    arpc_wg_done(&d->base.done);
}

static void test_read_and_accept_deadlines(void)
{
    deadline_fixture d;
    fixture_start(&d.base);
    arpc_event_init(&d.client_done);
    run_pair(&d.base, silent_server, impatient_client);
    fixture_stop(&d.base);
}

/* ---- connect errors ------------------------------------------------------------------ */

static void refused_client(void *arg)
{
    fixture *f = arg;
    uint16_t port = 0;
    int fd = test_listen_ephemeral(&port);
    ASSERT_GE(fd, 0);
    close(fd); /* now nothing listens there */
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%u", port);
    int out = -1;
    ASSERT_ERR(arpc_io_connect(address, IO_TIMEOUT_MS, &out), ARPC_ECONNREFUSED);
    ASSERT_EQ(out, -1);
    ASSERT_ERR(arpc_io_connect("127.0.0.1:notaport", IO_TIMEOUT_MS, &out), ARPC_EBADADDR);
    ASSERT_ERR(arpc_io_connect("127.0.0.1:70000", IO_TIMEOUT_MS, &out), ARPC_EBADADDR);
    ASSERT_EQ(out, -1);
    arpc_wg_done(&f->done);
}

static void test_connect_refused(void)
{
    fixture f;
    fixture_start(&f);
    run_pair(&f, NULL, refused_client);
    /* The listener was never used by a coroutine: any thread may close it. */
    ASSERT_OK(arpc_io_close(f.listen_fd));
    fixture_stop(&f);
}

static void test_listen_errors(void)
{
    int fd = -1;
    int second = -1;
    ASSERT_ERR(arpc_io_listen("no-colon", 16, 0, &fd), ARPC_EBADADDR);
    ASSERT_OK(arpc_io_listen("127.0.0.1:0", 16, 0, &fd));
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%d", arpc_io_local_port(fd));
    ASSERT_ERR(arpc_io_listen(address, 16, 0, &second), ARPC_EADDRINUSE);
    ASSERT_EQ(second, -1);
    ASSERT_OK(arpc_io_close(fd));
}

/* ---- close wakes waiters ------------------------------------------------------------- */

typedef struct close_fixture {
    arpc_wg done;
    int fd;
    _Atomic int waiting;
    int rc;
    int kind; /* 0 read, 1 write, 2 accept */
} close_fixture;

static void blocked_waiter(void *arg)
{
    close_fixture *c = arg;
    static uint8_t big[8 * 1024 * 1024];
    uint8_t small[16];
    int out = -1;
    atomic_store(&c->waiting, 1);
    if (c->kind == 0)
        c->rc = (int)arpc_io_read(c->fd, small, sizeof(small), -1);
    else if (c->kind == 1)
        c->rc = (int)arpc_io_write(c->fd, big, sizeof(big), -1); /* the peer never reads */
    else
        c->rc = arpc_io_accept(c->fd, -1, &out);
    arpc_wg_done(&c->done);
}

static void closer(void *arg)
{
    close_fixture *c = arg;
    /* Same loop: once the waiter has announced itself, it is parked. */
    while (!atomic_load(&c->waiting))
        ASSERT_OK(arpc_coro_yield());
    ASSERT_OK(arpc_coro_sleep_ms(10));
    ASSERT_OK(arpc_io_close(c->fd));
    arpc_wg_done(&c->done);
}

static void check_close_wakes(arpc_loop *loop, int kind)
{
    close_fixture c = {0};
    int pair[2];
    int peer = -1;
    c.kind = kind;
    if (kind == 2) {
        ASSERT_OK(arpc_io_listen("127.0.0.1:0", 16, 0, &c.fd));
    } else {
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
        c.fd = pair[0];
        peer = pair[1];
    }
    c.rc = 1;
    arpc_wg_init(&c.done, 2);
    ASSERT_OK(arpc_coro_spawn(loop, blocked_waiter, &c));
    ASSERT_OK(arpc_coro_spawn(loop, closer, &c));
    ASSERT_OK(arpc_wg_wait(&c.done, 30000));
    ASSERT_ERR(c.rc, ARPC_ECANCELED);
    if (peer >= 0)
        close(peer);
}

static void test_close_wakes_waiter(void)
{
    fixture f;
    fixture_start(&f);
    check_close_wakes(f.a, 0);
    check_close_wakes(f.a, 1);
    check_close_wakes(f.b, 2);
    ASSERT_OK(arpc_io_close(f.listen_fd));
    fixture_stop(&f);
}

/* ---- outside a coroutine ------------------------------------------------------------- */

static void check_not_coro(int fd)
{
    uint8_t buf[4] = {0};
    struct iovec iov = {buf, sizeof(buf)};
    int out = -1;
    ASSERT_ERR(arpc_io_read(fd, buf, sizeof(buf), 10), ARPC_ENOTCORO);
    ASSERT_ERR(arpc_io_write(fd, buf, sizeof(buf), 10), ARPC_ENOTCORO);
    ASSERT_ERR(arpc_io_writev(fd, &iov, 1, 10), ARPC_ENOTCORO);
    ASSERT_ERR(arpc_io_accept(fd, 10, &out), ARPC_ENOTCORO);
    ASSERT_ERR(arpc_io_connect("127.0.0.1:1", 10, &out), ARPC_ENOTCORO);
    ASSERT_EQ(out, -1);
}

typedef struct task_check {
    int fd;
    arpc_event done;
} task_check;

static void not_coro_task(void *arg)
{
    task_check *t = arg;
    check_not_coro(t->fd);
    arpc_event_signal(&t->done);
}

static void test_plain_thread_gets_enotcoro(void)
{
    fixture f;
    fixture_start(&f);
    /* A plain thread... */
    check_not_coro(f.listen_fd);
    /* ...and a loop task that is not a coroutine. */
    task_check t = {f.listen_fd, {{0}}};
    arpc_event_init(&t.done);
    ASSERT_OK(arpc_loop_submit(f.a, not_coro_task, &t));
    ASSERT_OK(arpc_event_wait(&t.done, 30000));
    ASSERT_OK(arpc_io_close(f.listen_fd));
    fixture_stop(&f);
}

int main(void)
{
    RUN_TEST(test_echo_between_loops);
    RUN_TEST(test_read_and_accept_deadlines);
    RUN_TEST(test_connect_refused);
    RUN_TEST(test_listen_errors);
    RUN_TEST(test_close_wakes_waiter);
    RUN_TEST(test_plain_thread_gets_enotcoro);
    return 0;
}

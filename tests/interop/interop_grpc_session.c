/*
 * The gRPC HTTP/2 session (src/proto/grpc/session.c) against real grpcio peers, over
 * 127.0.0.1 sockets with a plain poll loop in the test (the session owns no socket):
 *   - a server session per accepted connection, with an Echo handler written here
 *     (answers the message, copies x-echo-* metadata into the initial metadata,
 *     UNIMPLEMENTED for anything else), run on a thread of its own while
 *     grpc_peer_client.py runs its cases against it;
 *   - a client session against grpc_peer_server.py: Echo with metadata, an unknown
 *     method, a Sleep that outlives its grpc-timeout, and a PING.
 * Streams both ways (session.h, "streams"): the server handles Stream (bidi, echoing each
 * message as it comes, or "x-stream-mode: concat": client streaming) and Count (server
 * streaming) with manual receive windows, consuming each message once handled; the client
 * runs all three kinds against grpcio's server, more than a window each way.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/buf.h>
#include <arpc/err.h>

#include "base/buf.h"
#include "interop_util.h"
#include "proto/grpc/session.h"
#include "proto/grpc/wire.h"
#include "test.h"

#define CLIENT_TIMEOUT_MS 40000
#define MAX_CONNS         32

/* ---- a connection: socket + session + output buffer ------------------------------------- */

struct conn {
    int fd;
    arpc__grpc_session *s;
    arpc_buf out;
    bool dead;
};

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void conn_flush(struct conn *c)
{
    if (c->dead)
        return;
    if (arpc__grpc_session_flush(c->s, &c->out) < 0 ||
        write_all(c->fd, arpc__buf_data(&c->out), c->out.len) < 0)
        c->dead = true;
    arpc__buf_clear(&c->out);
    if (arpc__grpc_session_done(c->s))
        c->dead = true;
}

static void conn_read(struct conn *c)
{
    static uint8_t buf[256 * 1024];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        if (n == 0 || (errno != EINTR && errno != EAGAIN))
            c->dead = true;
        return;
    }
    if (arpc__grpc_session_feed(c->s, buf, (size_t)n) < 0) {
        conn_flush(c);
        c->dead = true;
        return;
    }
    conn_flush(c);
}

static void conn_close(struct conn *c)
{
    arpc__grpc_session_destroy(c->s);
    arpc__buf_fini(&c->out);
    close(c->fd);
    c->fd = -1;
}

/* ---- the server: an Echo handler on every accepted connection ---------------------------- */

enum { KIND_UNARY, KIND_STREAM, KIND_CONCAT, KIND_COUNT };

struct call {
    arpc_buf msg;
    bool echo;
    int kind;
    arpc__grpc_md md[8];
    char md_bytes[1024];
    size_t nmd;
};

struct server {
    int lfd;
    atomic_bool stop;
    struct conn conns[MAX_CONNS];
};

static void keep_echo_md(struct call *call, const arpc__grpc_event *ev)
{
    size_t used = 0;
    for (size_t i = 0; i < ev->md_count && call->nmd < 8; i++) {
        const arpc__grpc_md *m = &ev->md[i];
        if (m->key_len < 7 || memcmp(m->key, "x-echo-", 7) != 0 ||
            used + m->key_len + m->value_len > sizeof(call->md_bytes))
            continue;
        char *k = call->md_bytes + used;
        memcpy(k, m->key, m->key_len);
        memcpy(k + m->key_len, m->value, m->value_len);
        used += m->key_len + m->value_len;
        call->md[call->nmd++] = (arpc__grpc_md){k, m->key_len, k + m->key_len, m->value_len};
    }
}

static int stream_kind(const arpc__grpc_event *ev)
{
#define PATH_IS(lit) (ev->path_len == sizeof(lit) - 1 && memcmp(ev->path, lit, ev->path_len) == 0)
    if (PATH_IS("/arpc.echo.Echo/Count"))
        return KIND_COUNT;
    if (!PATH_IS("/arpc.echo.Echo/Stream"))
        return KIND_UNARY;
#undef PATH_IS
    for (size_t i = 0; i < ev->md_count; i++)
        if (ev->md[i].key_len == 13 && memcmp(ev->md[i].key, "x-stream-mode", 13) == 0 &&
            ev->md[i].value_len == 6 && memcmp(ev->md[i].value, "concat", 6) == 0)
            return KIND_CONCAT;
    return KIND_STREAM;
}

/* EchoMsg{bytes data = 1}: its data, or NULL (not that message, or a big one). */
static const uint8_t *echo_data(const uint8_t *p, size_t len, size_t *n)
{
    *n = 0;
    if (len == 0)
        return p;
    if (len < 2 || p[0] != 0x0a || (p[1] & 0x80) || (size_t)p[1] + 2 != len)
        return NULL;
    *n = p[1];
    return p + 2;
}

/* EchoMsg{data}, for data under 16 KiB (a varint of at most two bytes). */
static void echo_msg(arpc_buf *b, const void *data, size_t n)
{
    ASSERT_LT(n, 16384);
    uint8_t hdr[3] = {0x0a, (uint8_t)(n | 0x80), (uint8_t)(n >> 7)};
    size_t hl = 3;
    if (n < 128) {
        hdr[1] = (uint8_t)n;
        hl = 2;
    }
    arpc__buf_clear(b);
    ASSERT_OK(arpc__buf_append(b, hdr, hl));
    ASSERT_OK(arpc__buf_append(b, data, n));
}

/* A stream's message: echoed at once (bidi), kept (concat), or counted out (Count); then
 * consumed, which opens the window for the next. */
static void stream_message(arpc__grpc_session *s, struct call *call, const arpc__grpc_event *ev)
{
    int rc = 0;
    if (call->kind == KIND_STREAM) {
        rc = arpc__grpc_session_send_message(s, ev->stream_id, ev->data, ev->len);
    } else if (call->kind == KIND_CONCAT) {
        size_t n;
        const uint8_t *d = echo_data(ev->data, ev->len, &n);
        rc = d ? arpc__buf_append(&call->msg, d, n) : ARPC_EINVAL;
    } else {
        size_t n;
        const uint8_t *d = echo_data(ev->data, ev->len, &n);
        int count = 0;
        for (size_t i = 0; d && i < n && count <= 100000; i++)
            count = d[i] >= '0' && d[i] <= '9' ? count * 10 + (d[i] - '0') : 100001;
        if (!d || n == 0 || count > 100000) {
            arpc__grpc_session_send_status(s, ev->stream_id, ARPC__GRPC_INVALID_ARGUMENT,
                                           "Count wants decimal N", 21, NULL, 0);
            return;
        }
        arpc_buf m;
        arpc__buf_init(&m);
        for (int i = 1; i <= count && rc == 0; i++) {
            char num[8];
            int len = snprintf(num, sizeof(num), "%d", i);
            echo_msg(&m, num, (size_t)len);
            rc = arpc__grpc_session_send_message(s, ev->stream_id, arpc__buf_data(&m), m.len);
        }
        arpc__buf_fini(&m);
        if (rc == 0)
            rc = arpc__grpc_session_send_status(s, ev->stream_id, 0, NULL, 0, NULL, 0);
    }
    if (rc < 0 || arpc__grpc_session_consume(s, ev->stream_id, ev->len) < 0)
        arpc__grpc_session_cancel(s, ev->stream_id);
}

static void stream_half_close(arpc__grpc_session *s, struct call *call, int32_t id)
{
    int rc = 0;
    if (call->kind == KIND_CONCAT) {
        arpc_buf m;
        arpc__buf_init(&m);
        echo_msg(&m, arpc__buf_data(&call->msg), call->msg.len);
        rc = arpc__grpc_session_send_message(s, id, arpc__buf_data(&m), m.len);
        arpc__buf_fini(&m);
    }
    if (call->kind != KIND_COUNT && rc == 0)
        rc = arpc__grpc_session_send_status(s, id, 0, NULL, 0, NULL, 0);
    if (rc < 0)
        arpc__grpc_session_cancel(s, id);
}

static void server_event(void *user, const arpc__grpc_event *ev)
{
    arpc__grpc_session *s = ((struct conn *)user)->s; /* events come only after it is set */
    struct call *call = ev->stream_user;
    switch (ev->type) {
    case ARPC__GRPC_EV_REQUEST: {
        static const char echo[] = "/arpc.echo.Echo/Echo";
        call = calloc(1, sizeof(*call));
        if (!call || arpc__grpc_session_set_stream_user(s, ev->stream_id, call) < 0) {
            free(call);
            arpc__grpc_session_cancel(s, ev->stream_id);
            break;
        }
        arpc__buf_init(&call->msg);
        call->echo = ev->path_len == sizeof(echo) - 1 && memcmp(ev->path, echo, ev->path_len) == 0;
        keep_echo_md(call, ev);
        call->kind = stream_kind(ev);
        if (call->kind != KIND_UNARY) {
            call->echo = true;
            if (arpc__grpc_session_stream(s, ev->stream_id) < 0)
                arpc__grpc_session_cancel(s, ev->stream_id);
            break;
        }
        if (!call->echo)
            arpc__grpc_session_send_status(s, ev->stream_id, ARPC__GRPC_UNIMPLEMENTED,
                                           "Method not found!", 17, NULL, 0);
        break;
    }
    case ARPC__GRPC_EV_MESSAGE:
        if (call && call->kind != KIND_UNARY) {
            stream_message(s, call, ev);
            break;
        }
        if (call && arpc__buf_append(&call->msg, ev->data, ev->len) < 0)
            arpc__grpc_session_cancel(s, ev->stream_id);
        break;
    case ARPC__GRPC_EV_HALF_CLOSE:
        if (call && call->kind != KIND_UNARY) {
            stream_half_close(s, call, ev->stream_id);
            break;
        }
        if (call && call->echo &&
            (arpc__grpc_session_send_headers(s, ev->stream_id, call->md, call->nmd) < 0 ||
             arpc__grpc_session_send_message(s, ev->stream_id, arpc__buf_data(&call->msg),
                                             call->msg.len) < 0 ||
             arpc__grpc_session_send_status(s, ev->stream_id, 0, NULL, 0, NULL, 0) < 0))
            arpc__grpc_session_cancel(s, ev->stream_id);
        break;
    case ARPC__GRPC_EV_CLOSE:
        if (call) {
            arpc__buf_fini(&call->msg);
            free(call);
        }
        break;
    default:
        break;
    }
}

static void server_accept(struct server *sv)
{
    int fd = accept(sv->lfd, NULL, NULL);
    if (fd < 0)
        return;
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &sv->conns[i];
        if (c->fd >= 0)
            continue;
        c->fd = fd;
        c->dead = false;
        arpc__buf_init(&c->out);
        /* 64 KiB windows: grpcio's streams and big messages go through WINDOW_UPDATEs. */
        const arpc__grpc_session_opts opts = {.stream_window = 64 * 1024};
        if (arpc__grpc_session_server_new(&opts, server_event, c, &c->s) < 0) {
            close(fd);
            c->fd = -1;
        }
        return;
    }
    close(fd);
}

static void *server_main(void *arg)
{
    struct server *sv = arg;
    while (!atomic_load(&sv->stop)) {
        struct pollfd pfd[MAX_CONNS + 1];
        int idx[MAX_CONNS + 1], n = 0;
        pfd[n] = (struct pollfd){sv->lfd, POLLIN, 0};
        idx[n++] = -1;
        for (int i = 0; i < MAX_CONNS; i++)
            if (sv->conns[i].fd >= 0) {
                pfd[n] = (struct pollfd){sv->conns[i].fd, POLLIN, 0};
                idx[n++] = i;
            }
        if (poll(pfd, (nfds_t)n, 50) <= 0)
            continue;
        for (int j = 0; j < n; j++) {
            if (!pfd[j].revents)
                continue;
            if (idx[j] < 0) {
                server_accept(sv);
                continue;
            }
            struct conn *c = &sv->conns[idx[j]];
            conn_read(c);
            if (c->dead)
                conn_close(c);
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (sv->conns[i].fd >= 0)
            conn_close(&sv->conns[i]);
    return NULL;
}

static void test_grpcio_client_against_session_server(void)
{
    static struct server sv;
    uint16_t port;
    sv.lfd = test_listen_ephemeral(&port);
    ASSERT_GE(sv.lfd, 0);
    atomic_store(&sv.stop, false);
    for (int i = 0; i < MAX_CONNS; i++)
        sv.conns[i].fd = -1;
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, server_main, &sv), 0);
    char target[64];
    interop_addr(target, sizeof(target), port);
    const char *cases[] = {"unary",      "metadata", "unimplemented", "overlimit",    "big",
                           "concurrent", "bidi",     "clientstream",  "serverstream", NULL};
    int rc = interop_run_grpc_client(target, cases, CLIENT_TIMEOUT_MS);
    atomic_store(&sv.stop, true);
    pthread_join(th, NULL);
    close(sv.lfd);
    ASSERT_EQ(rc, 0);
}

/* ---- the client: a session against grpcio's server ------------------------------------- */

struct result {
    bool closed, headers;
    int grpc_status;
    char message[128];
    arpc_buf msg;
    char md[256];
    size_t ping_acks;
    /* streams */
    arpc__grpc_session *s; /* to consume from the event */
    size_t messages;
    int64_t credit; /* EV_CREDIT: payload bytes the peer's window took */
};

static void client_event(void *user, const arpc__grpc_event *ev)
{
    struct result *r = user;
    switch (ev->type) {
    case ARPC__GRPC_EV_HEADERS:
        r->headers = true;
        for (size_t i = 0; i < ev->md_count; i++) {
            size_t at = strlen(r->md);
            snprintf(r->md + at, sizeof(r->md) - at, "%.*s=%.*s;", (int)ev->md[i].key_len,
                     ev->md[i].key, (int)ev->md[i].value_len, (const char *)ev->md[i].value);
        }
        break;
    case ARPC__GRPC_EV_MESSAGE:
        ASSERT_OK(arpc__buf_append(&r->msg, ev->data, ev->len));
        r->messages++;
        if (r->s != NULL) /* a stream: the application read it */
            ASSERT_OK(arpc__grpc_session_consume(r->s, ev->stream_id, ev->len));
        break;
    case ARPC__GRPC_EV_CREDIT:
        r->credit += (int64_t)ev->len;
        break;
    case ARPC__GRPC_EV_CLOSE:
        r->closed = true;
        r->grpc_status = ev->grpc_status;
        snprintf(r->message, sizeof(r->message), "%.*s", (int)ev->message_len,
                 ev->message ? ev->message : "");
        break;
    case ARPC__GRPC_EV_PING_ACK:
        r->ping_acks++;
        break;
    default:
        break;
    }
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Runs the connection until `done(r)` or `timeout_ms`. */
static bool run_until(struct conn *c, struct result *r, bool (*done)(const struct result *),
                      int timeout_ms)
{
    int64_t end = test_now_ms() + timeout_ms;
    conn_flush(c);
    while (!done(r) && !c->dead && test_now_ms() < end) {
        struct pollfd pfd = {c->fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) > 0)
            conn_read(c);
    }
    return done(r);
}

static bool call_done(const struct result *r)
{
    return r->closed;
}

static bool ping_done(const struct result *r)
{
    return r->ping_acks > 0;
}

static void call(struct conn *c, struct result *r, const char *path, const void *msg, size_t len,
                 const arpc__grpc_md *md, size_t nmd, int64_t timeout_ns)
{
    arpc__buf_clear(&r->msg);
    r->closed = r->headers = false;
    r->md[0] = 0;
    arpc__grpc_call_desc d = {.path = path,
                              .path_len = strlen(path),
                              .authority = "127.0.0.1",
                              .md = md,
                              .md_count = nmd,
                              .timeout_ns = timeout_ns,
                              .msg = msg,
                              .msg_len = len};
    int32_t id;
    ASSERT_OK(arpc__grpc_session_open_stream(c->s, &d, NULL, &id));
    ASSERT_TRUE(run_until(c, r, call_done, 10000));
}

#define CLI_WINDOW (64u * 1024)

static bool has_credit(const struct result *r)
{
    return r->closed || r->credit > 0;
}

/* A stream call: OPEN, `n` messages (msgs[i % nmsgs]) written as the rpc layer's writer
 * would (credit starts at the window, spends each payload, waits at <= 0 for EV_CREDIT),
 * half-close, then everything until the close. */
static void stream_call(struct conn *c, struct result *r, const char *path, const arpc__grpc_md *md,
                        size_t nmd, const arpc_buf *msgs, size_t nmsgs, size_t n)
{
    arpc__buf_clear(&r->msg);
    r->closed = r->headers = false;
    r->md[0] = 0;
    r->messages = 0;
    r->credit = CLI_WINDOW;
    r->s = c->s;
    arpc__grpc_call_desc d = {.path = path,
                              .path_len = strlen(path),
                              .authority = "127.0.0.1",
                              .md = md,
                              .md_count = nmd,
                              .timeout_ns = 20000000000LL,
                              .stream = true};
    int32_t id;
    ASSERT_OK(arpc__grpc_session_open_stream(c->s, &d, NULL, &id));
    for (size_t i = 0; i < n; i++) {
        ASSERT_TRUE(run_until(c, r, has_credit, 10000));
        ASSERT_FALSE(r->closed);
        const arpc_buf *m = &msgs[i % nmsgs];
        ASSERT_OK(arpc__grpc_session_send_message(c->s, id, arpc__buf_data(m), m->len));
        r->credit -= (int64_t)m->len;
    }
    ASSERT_OK(arpc__grpc_session_half_close(c->s, id));
    ASSERT_TRUE(run_until(c, r, call_done, 20000));
    r->s = NULL;
}

static void streams_against_grpcio(struct conn *c, struct result *r)
{
    /* Bidi: 64 messages of 8 KiB, echoed, through 64 KiB windows both ways. */
    static uint8_t data[8000];
    arpc_buf msgs[2];
    for (int i = 0; i < 2; i++) {
        arpc__buf_init(&msgs[i]);
        memset(data, 'a' + i, sizeof(data));
        echo_msg(&msgs[i], data, sizeof(data));
    }
    stream_call(c, r, "/arpc.echo.Echo/Stream", NULL, 0, msgs, 2, 64);
    ASSERT_EQ(r->grpc_status, 0);
    ASSERT_EQ(r->messages, 64);
    ASSERT_EQ(r->msg.len, 64 * msgs[0].len);
    ASSERT_MEMEQ(arpc__buf_data(&r->msg), arpc__buf_data(&msgs[0]), msgs[0].len);
    ASSERT_MEMEQ((const uint8_t *)arpc__buf_data(&r->msg) + msgs[0].len, arpc__buf_data(&msgs[1]),
                 msgs[1].len);

    /* Client streaming: 20 parts, one answer holding them all. */
    for (int i = 0; i < 2; i++)
        echo_msg(&msgs[i], i ? "B;" : "a;", 2);
    const arpc__grpc_md concat[] = {{"x-stream-mode", 13, "concat", 6}};
    stream_call(c, r, "/arpc.echo.Echo/Stream", concat, 1, msgs, 2, 20);
    ASSERT_EQ(r->grpc_status, 0);
    ASSERT_EQ(r->messages, 1);
    arpc_buf want;
    arpc__buf_init(&want);
    for (int i = 0; i < 10; i++)
        ASSERT_OK(arpc__buf_append(&want, "a;B;", 4));
    echo_msg(&msgs[0], arpc__buf_data(&want), want.len);
    ASSERT_EQ(r->msg.len, msgs[0].len);
    ASSERT_MEMEQ(arpc__buf_data(&r->msg), arpc__buf_data(&msgs[0]), msgs[0].len);
    arpc__buf_fini(&want);

    /* Server streaming: Count("500"), "1".."500"; then Count("x"): INVALID_ARGUMENT. */
    echo_msg(&msgs[0], "500", 3);
    stream_call(c, r, "/arpc.echo.Echo/Count", NULL, 0, msgs, 1, 1);
    ASSERT_EQ(r->grpc_status, 0);
    ASSERT_EQ(r->messages, 500);
    arpc_buf m;
    arpc__buf_init(&m);
    echo_msg(&m, "500", 3);
    ASSERT_MEMEQ((const uint8_t *)arpc__buf_data(&r->msg) + r->msg.len - m.len, arpc__buf_data(&m),
                 m.len);
    arpc__buf_fini(&m);
    echo_msg(&msgs[0], "x", 1);
    stream_call(c, r, "/arpc.echo.Echo/Count", NULL, 0, msgs, 1, 1);
    ASSERT_EQ(r->grpc_status, ARPC__GRPC_INVALID_ARGUMENT);
    for (int i = 0; i < 2; i++)
        arpc__buf_fini(&msgs[i]);
}

static void test_session_client_against_grpcio_server(void)
{
    interop_proc srv;
    interop_start_grpc_peer(NULL, &srv);
    static struct result r;
    arpc__buf_init(&r.msg);
    struct conn c = {.fd = connect_to(srv.port)};
    arpc__buf_init(&c.out);
    const arpc__grpc_session_opts opts = {.stream_window = CLI_WINDOW};
    ASSERT_OK(arpc__grpc_session_client_new(&opts, client_event, &r, &c.s));

    /* Echo: EchoMsg{data: "hi \0"} is 0x0a, length, bytes. */
    const uint8_t echo_msg[] = {0x0a, 4, 'h', 'i', ' ', 0};
    const arpc__grpc_md md[] = {{"x-echo-text", 11, "hello", 5}, {"other", 5, "no", 2}};
    call(&c, &r, "/arpc.echo.Echo/Echo", echo_msg, sizeof(echo_msg), md, 2, 5000000000LL);
    ASSERT_EQ(r.grpc_status, 0);
    ASSERT_EQ(r.msg.len, sizeof(echo_msg));
    ASSERT_MEMEQ(arpc__buf_data(&r.msg), echo_msg, sizeof(echo_msg));
    ASSERT_TRUE(r.headers);
    ASSERT_TRUE(strstr(r.md, "x-echo-text=hello;") != NULL);
    ASSERT_TRUE(strstr(r.md, "other=") == NULL);

    /* An unknown method. */
    call(&c, &r, "/arpc.echo.Echo/Nope", echo_msg, sizeof(echo_msg), NULL, 0, -1);
    ASSERT_EQ(r.grpc_status, ARPC__GRPC_UNIMPLEMENTED);

    /* Sleep(3000) with a 300 ms grpc-timeout: grpcio's server ends it. */
    const uint8_t sleep_msg[] = {0x0a, 4, '3', '0', '0', '0'};
    int64_t t0 = test_now_ms();
    call(&c, &r, "/arpc.echo.Echo/Sleep", sleep_msg, sizeof(sleep_msg), NULL, 0, 300000000LL);
    ASSERT_EQ(r.grpc_status, ARPC__GRPC_DEADLINE_EXCEEDED);
    ASSERT_LT(test_now_ms() - t0, 2500);

    /* A PING, ACKed. */
    ASSERT_OK(arpc__grpc_session_ping(c.s, 42));
    ASSERT_TRUE(run_until(&c, &r, ping_done, 5000));
    ASSERT_FALSE(c.dead);

    streams_against_grpcio(&c, &r);
    ASSERT_FALSE(c.dead);

    conn_close(&c);
    arpc__buf_fini(&r.msg);
    interop_signal(&srv, SIGTERM);
    ASSERT_TRUE(interop_wait_line(&srv, "event stopped", NULL, 0, 10000));
    ASSERT_EQ(interop_reap(&srv, 10000), 0);
}

int main(void)
{
    interop_require_grpc();
    RUN_TEST(test_session_client_against_grpcio_server);
    RUN_TEST(test_grpcio_client_against_session_server);
    return 0;
}

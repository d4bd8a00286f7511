#include "raw_peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/buf.h"
#include "test.h"

/* ---- frame I/O --------------------------------------------------------------- */

static int connect_with(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    if (rcvbuf > 0)
        ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

int raw_connect(int port)
{
    return connect_with(port, 0);
}

int raw_connect_rcvbuf(int port, int rcvbuf)
{
    return connect_with(port, rcvbuf);
}

void raw_set_recv_timeout(int fd, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

/* Reads exactly `len` bytes, each wait bounded by what is left of the deadline. */
static bool read_exact(int fd, uint8_t *p, size_t len, int64_t deadline_ms)
{
    while (len > 0) {
        int64_t left = deadline_ms - test_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return false;
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool raw_read_frame(int fd, raw_frame *out, int timeout_ms)
{
    int64_t deadline = test_now_ms() + timeout_ms;
    uint8_t h[ARPC__FRAME_HEADER_SIZE];
    memset(out, 0, sizeof(*out));
    if (!read_exact(fd, h, sizeof(h), deadline))
        return false;
    size_t method_len = (size_t)h[6] | (size_t)h[7] << 8;
    size_t payload_len =
        (size_t)h[8] | (size_t)h[9] << 8 | (size_t)h[10] << 16 | (size_t)h[11] << 24;
    out->len = sizeof(h) + method_len + payload_len;
    out->bytes = malloc(out->len);
    ASSERT_TRUE(out->bytes != NULL);
    memcpy(out->bytes, h, sizeof(h));
    if (!read_exact(fd, out->bytes + sizeof(h), out->len - sizeof(h), deadline))
        return false;
    return arpc__frame_decode(out->bytes, out->len, UINT32_MAX, &out->f) == (int64_t)out->len;
}

void raw_frame_free(raw_frame *f)
{
    free(f->bytes);
    f->bytes = NULL;
}

void raw_send(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

void raw_send_header(int fd, uint8_t type, uint64_t id, int32_t status, uint32_t payload_len,
                     size_t bytes)
{
    arpc__frame f = {.type = type, .request_id = id, .status = status, .payload_len = payload_len};
    uint8_t header[ARPC__FRAME_HEADER_SIZE];
    arpc__frame_write_header(header, &f);
    raw_send(fd, header, bytes);
}

static void send_buf(int fd, arpc_buf *b)
{
    raw_send(fd, arpc__buf_head(b), b->len);
    arpc__buf_fini(b);
}

void raw_send_request(int fd, uint64_t id, uint32_t timeout_ms, const char *method,
                      const void *payload, size_t len)
{
    arpc_buf b;
    arpc__buf_init(&b);
    ASSERT_OK(
        arpc__frame_encode_request(&b, id, timeout_ms, 0, method, strlen(method), payload, len));
    send_buf(fd, &b);
}

void raw_send_response(int fd, uint64_t id, int32_t status, const void *payload, size_t len)
{
    arpc_buf b;
    arpc__buf_init(&b);
    ASSERT_OK(arpc__frame_encode_response(&b, id, status, payload, len));
    send_buf(fd, &b);
}

void raw_send_control(int fd, uint8_t type, uint64_t id)
{
    arpc_buf b;
    arpc__buf_init(&b);
    ASSERT_OK(arpc__frame_encode_control(&b, type, id, 0));
    send_buf(fd, &b);
}

/* Built by hand from docs/protocol.md, not with the codec under test. */
static uint8_t *put_setting(uint8_t *p, uint16_t id, uint32_t value)
{
    const uint8_t entry[8] = {(uint8_t)id,
                              (uint8_t)(id >> 8),
                              4,
                              0,
                              (uint8_t)value,
                              (uint8_t)(value >> 8),
                              (uint8_t)(value >> 16),
                              (uint8_t)(value >> 24)};
    memcpy(p, entry, sizeof(entry));
    return p + sizeof(entry);
}

void raw_send_settings(int fd, uint8_t type, uint64_t id, uint32_t max_frame,
                       uint32_t max_in_flight)
{
    uint8_t frame[ARPC__FRAME_HEADER_SIZE + 16];
    uint8_t *p = frame + ARPC__FRAME_HEADER_SIZE;
    if (max_frame != 0)
        p = put_setting(p, 1, max_frame);
    if (max_in_flight != 0)
        p = put_setting(p, 2, max_in_flight);
    arpc__frame f = {.type = type,
                     .request_id = id,
                     .payload_len = (uint32_t)(p - frame - ARPC__FRAME_HEADER_SIZE)};
    arpc__frame_write_header(frame, &f);
    raw_send(fd, frame, (size_t)(p - frame));
}

uint32_t raw_settings_get(const arpc__frame *f, uint16_t want)
{
    uint32_t value = 0;
    const uint8_t *p = f->payload;
    size_t len = f->payload_len;
    for (size_t off = 0; len - off >= 4;) {
        uint16_t id = (uint16_t)(p[off] | p[off + 1] << 8);
        size_t n = (size_t)(p[off + 2] | p[off + 3] << 8);
        if (n > len - off - 4)
            break;
        if (id == want && n == 4)
            value = (uint32_t)p[off + 4] | (uint32_t)p[off + 5] << 8 | (uint32_t)p[off + 6] << 16 |
                    (uint32_t)p[off + 7] << 24;
        off += 4 + n;
    }
    return value;
}

bool raw_serve(int fd, int idle_ms, raw_frame_fn fn, void *arg)
{
    for (;;) {
        raw_frame rf;
        bool got = raw_read_frame(fd, &rf, idle_ms);
        bool more = got && fn(fd, &rf.f, arg);
        raw_frame_free(&rf);
        if (!more)
            return got;
    }
}

bool raw_wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = test_now_ms() + timeout_ms;
    for (;;) {
        uint8_t buf[4096];
        int64_t left = deadline - test_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return false;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

/* ---- raw_server: one connection, one script ----------------------------------- */

static void *server_main(void *arg)
{
    raw_server *s = arg;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    ASSERT_GE(fd, 0);
    s->script(fd, s->arg);
    close(fd);
    return NULL;
}

void raw_server_start(raw_server *s, void (*script)(int fd, void *arg), void *arg)
{
    s->listen_fd = test_listen_ephemeral(&s->port);
    ASSERT_GE(s->listen_fd, 0);
    s->script = script;
    s->arg = arg;
    ASSERT_EQ(pthread_create(&s->thread, NULL, server_main, s), 0);
}

void raw_server_join(raw_server *s)
{
    ASSERT_EQ(pthread_join(s->thread, NULL), 0);
    close(s->listen_fd);
}

/* ---- raw_peer: many connections, a callback per frame -------------------------- */

#define PEER_MAX_FRAME (64u * 1024 * 1024)

void raw_peer_polite(raw_peer *p, raw_peer_conn *c, const arpc__frame *f)
{
    (void)p;
    if (f->type == ARPC__FRAME_PING)
        raw_send_control(c->fd, ARPC__FRAME_PONG, f->request_id);
    else if (f->type == ARPC__FRAME_REQUEST)
        raw_send_response(c->fd, f->request_id, 0, f->payload, f->payload_len);
}

bool raw_count_reached(void *count)
{
    raw_count *w = count;
    return atomic_load(w->counter) >= w->at_least;
}

static void conn_free(raw_peer *p, int slot)
{
    raw_peer_conn *c = p->conns[slot];
    close(c->fd);
    free(c->buf);
    free(c);
    p->conns[slot] = NULL;
}

void raw_peer_close_all(raw_peer *p, void *unused)
{
    (void)unused;
    for (int i = 0; i < RAW_PEER_MAX_CONNS; i++) {
        if (p->conns[i] != NULL)
            conn_free(p, i);
    }
}

static void peer_accept(raw_peer *p)
{
    int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    int index = atomic_load(&p->accepted);
    if (index < RAW_PEER_MAX_ACCEPTS)
        atomic_store(&p->accept_ms[index], test_now_ms());
    atomic_fetch_add(&p->accepted, 1);
    int slot = 0;
    while (slot < RAW_PEER_MAX_CONNS && p->conns[slot] != NULL)
        slot++;
    if (slot == RAW_PEER_MAX_CONNS) {
        close(fd);
        return;
    }
    raw_peer_conn *c = calloc(1, sizeof(*c));
    ASSERT_TRUE(c != NULL);
    c->fd = fd;
    c->index = index;
    p->conns[slot] = c;
    if (p->on_accept != NULL && !p->on_accept(p, c))
        conn_free(p, slot);
}

/* Reads what is there and handles every complete frame.  @return false on EOF. */
static bool conn_read(raw_peer *p, raw_peer_conn *c)
{
    if (c->cap - c->len < 64 * 1024) {
        c->cap = c->cap ? c->cap * 2 : 128 * 1024;
        c->buf = realloc(c->buf, c->cap);
        ASSERT_TRUE(c->buf != NULL);
    }
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    size_t off = 0;
    for (;;) {
        arpc__frame f;
        int64_t size = arpc__frame_decode(c->buf + off, c->len - off, PEER_MAX_FRAME, &f);
        if (size < 0)
            return false; /* the client sent something malformed: close */
        if (size == 0)
            break;
        if (f.type == ARPC__FRAME_PING)
            atomic_fetch_add(&p->pings, 1);
        else if (f.type == ARPC__FRAME_REQUEST)
            atomic_fetch_add(&p->requests, 1);
        if (p->on_frame != NULL)
            p->on_frame(p, c, &f);
        off += (size_t)size;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return true;
}

static void run_command(raw_peer *p)
{
    char b;
    (void)!read(p->wake[0], &b, 1);
    pthread_mutex_lock(&p->lock);
    if (p->cmd != NULL)
        p->cmd(p, p->cmd_arg);
    p->cmd = NULL;
    p->cmd_done = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void *raw_peer_main(void *arg)
{
    raw_peer *p = arg;
    for (;;) {
        struct pollfd fds[2 + RAW_PEER_MAX_CONNS];
        int slot_of[2 + RAW_PEER_MAX_CONNS];
        nfds_t n = 0;
        fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (int i = 0; i < RAW_PEER_MAX_CONNS; i++) {
            if (p->conns[i] != NULL) {
                slot_of[n] = i;
                fds[n++] = (struct pollfd){.fd = p->conns[i]->fd, .events = POLLIN};
            }
        }
        if (poll(fds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[0].revents) {
            pthread_mutex_lock(&p->lock);
            bool quit = p->cmd == NULL;
            pthread_mutex_unlock(&p->lock);
            if (quit)
                break;
            run_command(p);
            continue; /* the command may have closed connections */
        }
        if (fds[1].revents & POLLIN)
            peer_accept(p);
        for (nfds_t k = 2; k < n; k++) {
            raw_peer_conn *c = p->conns[slot_of[k]];
            if (fds[k].revents != 0 && c != NULL && c->fd == fds[k].fd && !conn_read(p, c)) {
                atomic_fetch_add(&p->eofs, 1);
                conn_free(p, slot_of[k]);
            }
        }
    }
    return NULL;
}

void raw_peer_start(raw_peer *p, raw_peer_frame_fn on_frame, raw_peer_accept_fn on_accept_fn,
                    void *user)
{
    memset(p, 0, sizeof(*p));
    p->on_frame = on_frame;
    p->on_accept = on_accept_fn;
    p->user = user;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->listen_fd = test_listen_ephemeral(&p->port);
    ASSERT_GE(p->listen_fd, 0);
    ASSERT_EQ(pipe2(p->wake, O_CLOEXEC), 0);
    ASSERT_EQ(pthread_create(&p->thread, NULL, raw_peer_main, p), 0);
}

void raw_peer_run(raw_peer *p, void (*fn)(raw_peer *p, void *arg), void *arg)
{
    pthread_mutex_lock(&p->lock);
    p->cmd = fn;
    p->cmd_arg = arg;
    p->cmd_done = false;
    pthread_mutex_unlock(&p->lock);
    ASSERT_EQ(write(p->wake[1], "r", 1), 1);
    pthread_mutex_lock(&p->lock);
    while (!p->cmd_done)
        pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void raw_peer_stop(raw_peer *p)
{
    ASSERT_EQ(write(p->wake[1], "q", 1), 1);
    ASSERT_EQ(pthread_join(p->thread, NULL), 0);
    raw_peer_close_all(p, NULL);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}

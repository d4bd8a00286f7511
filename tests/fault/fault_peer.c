#include "fault_peer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

#define PEER_MAX_FRAME (64u * 1024 * 1024)

void fault_peer_write(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the client closed: fine for a test peer */
        p += n;
        len -= (size_t)n;
    }
}

void fault_peer_send_header(int fd, uint8_t type, uint64_t id, int32_t status, uint32_t payload_len,
                            size_t bytes)
{
    arpc__frame f = {.type = type, .request_id = id, .status = status, .payload_len = payload_len};
    uint8_t header[ARPC__FRAME_HEADER_SIZE];
    arpc__frame_write_header(header, &f);
    fault_peer_write(fd, header, bytes);
}

void fault_peer_pong(int fd, uint64_t id)
{
    fault_peer_send_header(fd, ARPC__FRAME_PONG, id, 0, 0, ARPC__FRAME_HEADER_SIZE);
}

void fault_peer_respond(int fd, uint64_t id, int32_t status, const void *payload, size_t len)
{
    fault_peer_send_header(fd, ARPC__FRAME_RESPONSE, id, status, (uint32_t)len,
                           ARPC__FRAME_HEADER_SIZE);
    fault_peer_write(fd, payload, len);
}

void fault_peer_polite(fault_peer *p, fault_peer_conn *c, const arpc__frame *f)
{
    (void)p;
    if (f->type == ARPC__FRAME_PING)
        fault_peer_pong(c->fd, f->request_id);
    else if (f->type == ARPC__FRAME_REQUEST)
        fault_peer_respond(c->fd, f->request_id, 0, f->payload, f->payload_len);
}

bool fault_peer_count_reached(void *count)
{
    fault_peer_count *w = count;
    return atomic_load(w->counter) >= w->at_least;
}

static void conn_free(fault_peer *p, int slot)
{
    fault_peer_conn *c = p->conns[slot];
    close(c->fd);
    free(c->buf);
    free(c);
    p->conns[slot] = NULL;
}

void fault_peer_close_all(fault_peer *p, void *unused)
{
    (void)unused;
    for (int i = 0; i < FAULT_PEER_MAX_CONNS; i++) {
        if (p->conns[i] != NULL)
            conn_free(p, i);
    }
}

static void on_accept(fault_peer *p)
{
    int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    int index = atomic_load(&p->accepted);
    if (index < FAULT_PEER_MAX_ACCEPTS)
        atomic_store(&p->accept_ms[index], test_now_ms());
    atomic_fetch_add(&p->accepted, 1);
    int slot = 0;
    while (slot < FAULT_PEER_MAX_CONNS && p->conns[slot] != NULL)
        slot++;
    if (slot == FAULT_PEER_MAX_CONNS) {
        close(fd);
        return;
    }
    fault_peer_conn *c = calloc(1, sizeof(*c));
    ASSERT_TRUE(c != NULL);
    c->fd = fd;
    c->index = index;
    p->conns[slot] = c;
    if (p->on_accept != NULL && !p->on_accept(p, c))
        conn_free(p, slot);
}

/* Reads what is there and handles every complete frame.  @return false on EOF. */
static bool conn_read(fault_peer *p, fault_peer_conn *c)
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

static void run_command(fault_peer *p)
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

static void *peer_main(void *arg)
{
    fault_peer *p = arg;
    for (;;) {
        struct pollfd fds[2 + FAULT_PEER_MAX_CONNS];
        int slot_of[2 + FAULT_PEER_MAX_CONNS];
        nfds_t n = 0;
        fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (int i = 0; i < FAULT_PEER_MAX_CONNS; i++) {
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
            on_accept(p);
        for (nfds_t k = 2; k < n; k++) {
            fault_peer_conn *c = p->conns[slot_of[k]];
            if (fds[k].revents != 0 && c != NULL && c->fd == fds[k].fd && !conn_read(p, c)) {
                atomic_fetch_add(&p->eofs, 1);
                conn_free(p, slot_of[k]);
            }
        }
    }
    return NULL;
}

void fault_peer_start(fault_peer *p, fault_peer_frame_fn on_frame,
                      fault_peer_accept_fn on_accept_fn, void *user)
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
    ASSERT_EQ(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

void fault_peer_run(fault_peer *p, void (*fn)(fault_peer *p, void *arg), void *arg)
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

void fault_peer_stop(fault_peer *p)
{
    ASSERT_EQ(write(p->wake[1], "q", 1), 1);
    ASSERT_EQ(pthread_join(p->thread, NULL), 0);
    fault_peer_close_all(p, NULL);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}

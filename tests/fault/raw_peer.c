#include "raw_peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "test.h"

int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
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

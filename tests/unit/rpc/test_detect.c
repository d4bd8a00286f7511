/*
 * One port, several protocols: the server picks each connection's protocol
 * from its first bytes.  A second protocol exists here only, in this file --
 * a line protocol ("LN <method> <payload>\n" answered "<status> <payload>\n",
 * in order, no ids, no PING, no GOAWAY) that fills in the ops table of
 * src/proto/proto.h and is registered with arpc__server_add_protocol -- so
 * the test proves that a protocol is one file beside its siblings, with no
 * edit above the seam.  Proves:
 *  - the line protocol and the native protocol are served on the same port,
 *    handlers shared, the line protocol's answers in request order;
 *  - unknown first bytes close the connection at once, counted as a
 *    protocol error; so do bytes that stop matching any protocol after a
 *    prefix that matched ("LNX");
 *  - first bytes that are still undecided ("L", "A", "LN") wait at most the
 *    first-frame limit, then the connection closes (first_frame_timeouts);
 *  - a server with a connection of a protocol without GOAWAY shuts down;
 *  - a channel's protocol option: native by default, an unknown one refused
 *    with ARPC_EINVAL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "proto/proto.h"
#include "rpc/server.h"
#include "test.h"
#include "test_stats.h"

#define WAIT_MS 10000

/* ---- the line protocol: a protocol of this test only ------------------------------- */

typedef struct line_session {
    arpc__proto_session base;
    arpc__proto_config cfg;
    uint64_t next_id; /* in order: the session numbers the requests itself */
} line_session;

static const arpc__proto_ops line_proto;

static int line_detect(const uint8_t *data, size_t len)
{
    static const char magic[] = "LN ";
    for (size_t i = 0; i < len && i < 3; i++) {
        if (data[i] != (uint8_t)magic[i])
            return ARPC__DETECT_NO;
    }
    return len >= 3 ? ARPC__DETECT_YES : ARPC__DETECT_MORE;
}

static int line_create(const arpc__proto_config *cfg, arpc__proto_session **out)
{
    if (cfg->side != ARPC__PROTO_SERVER)
        return ARPC_EINVAL;
    line_session *ls = calloc(1, sizeof(*ls));
    if (ls == NULL)
        return ARPC_ENOMEM;
    ls->base.ops = &line_proto;
    ls->cfg = *cfg;
    *out = &ls->base;
    return 0;
}

static void line_destroy(arpc__proto_session *s)
{
    free(s);
}

/* One line "LN method payload": a request. */
static int line_request(line_session *ls, const uint8_t *line, size_t len)
{
    if (len < 4 || memcmp(line, "LN ", 3) != 0)
        return ARPC_EFRAME;
    const char *method = (const char *)line + 3;
    const char *space = memchr(method, ' ', len - 3);
    size_t method_len = space ? (size_t)(space - method) : len - 3;
    arpc__msg msg = {.id = ++ls->next_id, .method = method, .method_len = method_len};
    if (space != NULL) {
        msg.payload = space + 1;
        msg.payload_len = len - 3 - method_len - 1;
    }
    ls->base.messages_in++;
    return ls->cfg.events->on_request(ls->cfg.owner, &msg);
}

static int64_t line_feed(arpc__proto_session *s, const uint8_t *data, size_t len, arpc_buf *out)
{
    line_session *ls = (line_session *)s;
    size_t off = 0;
    while (off < len) {
        if (arpc__proto_input_waits(&ls->cfg, out))
            break;
        const uint8_t *nl = memchr(data + off, '\n', len - off);
        if (nl == NULL)
            break;
        int rc = line_request(ls, data + off, (size_t)(nl - (data + off)));
        off = (size_t)(nl - data) + 1;
        if (rc < 0)
            return rc;
    }
    return (int64_t)off;
}

static bool line_mid_message(const arpc__proto_session *s)
{
    return false;
}

static uint64_t line_wire_size(const arpc__msg *msg, bool request)
{
    return 16 + msg->method_len + msg->payload_len;
}

/* Handlers here answer at once, in order; a protocol whose handlers may not would hold
 * later answers until the earlier ones are written (docs/protocols.md, "In order"). */
static int line_send_response(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg)
{
    char head[16];
    int n = snprintf(head, sizeof(head), "%d ", (int)msg->status);
    int rc = arpc_buf_append(out, head, (size_t)n);
    if (rc == 0)
        rc = arpc_buf_append(out, msg->payload, msg->payload_len);
    if (rc == 0)
        rc = arpc_buf_append(out, "\n", 1);
    return rc;
}

static const arpc__proto_ops line_proto = {
    .name = "line",
    .caps = 0, /* in order, no PING, no GOAWAY */
    .detect_len = 3,
    .detect = line_detect,
    .create = line_create,
    .destroy = line_destroy,
    .feed = line_feed,
    .mid_message = line_mid_message,
    .wire_size = line_wire_size,
    .send_response = line_send_response,
};

/* ---- the test ------------------------------------------------------------------------ */

static arpc_runtime *rt;

static int handle_echo(arpc_request *req, void *user_data)
{
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

static arpc_server *start_server(int64_t first_frame_timeout_ms)
{
    arpc_server_opts opts;
    arpc_server_opts_init(&opts);
    opts.first_frame_timeout_ms = first_frame_timeout_ms;
    arpc_server *srv;
    ASSERT_OK(arpc_server_create(rt, &opts, &srv));
    ASSERT_OK(arpc_server_register(srv, "echo", handle_echo, NULL));
    ASSERT_OK(arpc__server_add_protocol(srv, &line_proto));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    ASSERT_ERR(arpc__server_add_protocol(srv, &line_proto), ARPC_EINVAL); /* listening */
    return srv;
}

static int connect_to(arpc_server *srv)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(arpc_server_port(srv))};
    sa.sin_addr.s_addr = htonl(0x7f000001);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_all(int fd, const char *s)
{
    ASSERT_EQ(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static void expect_line(int fd, const char *want)
{
    char line[256];
    ASSERT_GE(test_read_line(fd, line, sizeof(line), WAIT_MS), 0);
    ASSERT_STREQ(line, want);
}

/* True once the peer closed: EOF (or a reset) within timeout_ms. */
static bool closed_within(int fd, int timeout_ms)
{
    char buf[256];
    int64_t end = test_now_ms() + timeout_ms;
    while (test_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
    return false;
}

static void test_two_protocols_one_port(void)
{
    arpc_server *srv = start_server(10000);
    int fd = connect_to(srv);
    send_all(fd, "LN echo hello\nLN echo world\nLN nope x\n");
    expect_line(fd, "0 hello");
    expect_line(fd, "0 world");
    char want[32];
    snprintf(want, sizeof(want), "%d ", ARPC_ENOMETHOD);
    expect_line(fd, want);
    /* Split across writes, and the first bytes one at a time. */
    int fd2 = connect_to(srv);
    send_all(fd2, "L");
    send_all(fd2, "N");
    send_all(fd2, " echo sp");
    send_all(fd2, "lit\n");
    expect_line(fd2, "0 split");
    close(fd2);

    /* The native protocol on the same port. */
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(srv));
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, NULL, &ch));
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    ASSERT_OK(arpc_call(ch, "echo", "native", 6, NULL, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 6);
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);

    /* No GOAWAY to send on the line connection: shutdown just closes it. */
    ASSERT_OK(arpc_server_shutdown(srv, 1000));
    ASSERT_TRUE(closed_within(fd, WAIT_MS));
    close(fd);
    arpc_server_destroy(srv);
}

static void test_unknown_bytes_close(void)
{
    arpc_server *srv = start_server(10000);
    /* A zero byte would begin a Thrift frame's length (docs/thrift.md): 0x7f begins none. */
    const char *inputs[] = {"GET / HTTP/1.1\r\n\r\n", "LNX echo\n", "AX", "\x7f"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        int fd = connect_to(srv);
        ASSERT_EQ(send(fd, inputs[i], strlen(inputs[i]) + (inputs[i][0] == 0), MSG_NOSIGNAL),
                  (ssize_t)(strlen(inputs[i]) + (inputs[i][0] == 0)));
        int64_t start = test_now_ms();
        ASSERT_TRUE(closed_within(fd, WAIT_MS));
        /* At once, not at a time limit (10 s here). */
        ASSERT_LT(test_now_ms() - start, 5000);
        close(fd);
    }
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(srv, protocol_errors, 4, WAIT_MS));
    arpc_server_stats st;
    arpc_server_get_stats(srv, &st);
    ASSERT_EQ(st.protocol_errors, 4);
    ASSERT_EQ(st.requests, 0);
    arpc_server_destroy(srv);
}

static void test_undecided_first_bytes_time_out(void)
{
    arpc_server *srv = start_server(200);
    const char *inputs[] = {"L", "A", "LN"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        int fd = connect_to(srv);
        send_all(fd, inputs[i]);
        int64_t start = test_now_ms();
        ASSERT_TRUE(closed_within(fd, WAIT_MS));
        ASSERT_GE(test_now_ms() - start, 150); /* not before the limit */
        close(fd);
    }
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(srv, first_frame_timeouts, 3, WAIT_MS));
    ASSERT_EQ(SERVER_STAT(srv, first_frame_timeouts), 3);
    arpc_server_destroy(srv);
}

static void test_channel_protocol_option(void)
{
    arpc_channel_opts opts;
    arpc_channel_opts_init(&opts);
    ASSERT_EQ(opts.protocol, ARPC_PROTOCOL_NATIVE);
    opts.protocol = (arpc_protocol)99;
    arpc_channel *ch = NULL;
    ASSERT_ERR(arpc_channel_create(rt, "127.0.0.1:1", &opts, &ch), ARPC_EINVAL);
    ASSERT_TRUE(ch == NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 1;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    RUN_TEST(test_two_protocols_one_port);
    RUN_TEST(test_unknown_bytes_close);
    RUN_TEST(test_undecided_first_bytes_time_out);
    RUN_TEST(test_channel_protocol_option);
    arpc_runtime_destroy(rt);
    return 0;
}

/*
 * Native metadata against raw peers (docs/protocol.md section 10).  Proves:
 *  - a server announces METADATA = 1 in the PONG to a PING with settings;
 *  - a client that never said it reads metadata (settings without METADATA,
 *    or no PING at all: a version-1 peer of before metadata) is served as
 *    before: the answer has no METADATA flag and exactly the payload, even
 *    though the handler added response metadata;
 *  - a client that announced it sends a request with a metadata block: the
 *    handler sees the entries, and the answer carries its own block;
 *  - a request whose entry breaks the rules (an uppercase key) or whose
 *    metadata is over 8 KiB fails alone (ARPC_EINVAL, ARPC_EMETADATA) and the
 *    connection serves the next request; a block whose lengths do not add
 *    up is a protocol error that closes the connection (counted);
 *  - arpc's client towards a server of before metadata (PONG settings
 *    without METADATA): a call with metadata still works, sent without it,
 *    and the client's PING announced METADATA = 1.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "fault_util.h"
#include "proto/metadata.h"
#include "raw_peer.h"
#include "test.h"
#include "test_stats.h"

#define WAIT_MS 10000

/* Echoes the payload; answers "x-seen: <count>" and "x-first: <first value>". */
static int handle_md(arpc_request *req, void *user_data)
{
    char count[16];
    int n = snprintf(count, sizeof(count), "%zu", arpc_request_metadata_count(req));
    ASSERT_OK(arpc_request_add_metadata(req, "x-seen", count, (size_t)n));
    arpc_metadata_entry e;
    if (arpc_request_metadata_at(req, 0, &e) == 0)
        ASSERT_OK(arpc_request_add_metadata(req, "x-first", e.value, e.value_len));
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

static arpc_server *start_server(arpc_runtime *rt)
{
    arpc_server *srv;
    ASSERT_OK(arpc_server_create(rt, NULL, &srv));
    ASSERT_OK(arpc_server_register(srv, "md", handle_md, NULL));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    return srv;
}

static void send_settings_ping(int fd, bool metadata)
{
    arpc_buf *b;
    ASSERT_OK(arpc_buf_create(&b));
    arpc__settings st = {.max_frame_size = 1u << 20, .metadata = metadata ? 1 : 0};
    ASSERT_OK(arpc__frame_encode_settings(b, ARPC__FRAME_PING, 1, &st));
    raw_send(fd, arpc_buf_data(b), arpc_buf_len(b));
    arpc_buf_destroy(b);
}

static void expect_pong_with_metadata(int fd)
{
    raw_frame rf;
    ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
    ASSERT_EQ(rf.f.type, ARPC__FRAME_PONG);
    ASSERT_EQ(raw_settings_get(&rf.f, ARPC__SETTING_METADATA), 1);
    raw_frame_free(&rf);
}

/* An answer of before metadata: no flag, exactly `payload`. */
static void expect_plain_answer(int fd, uint64_t id, const char *payload)
{
    raw_frame rf;
    ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
    ASSERT_EQ(rf.f.type, ARPC__FRAME_RESPONSE);
    ASSERT_EQ(rf.f.request_id, id);
    ASSERT_OK(rf.f.status);
    ASSERT_EQ(rf.f.flags, 0);
    ASSERT_TRUE(rf.f.md == NULL);
    ASSERT_EQ(rf.len, ARPC__FRAME_HEADER_SIZE + strlen(payload));
    ASSERT_MEMEQ(rf.f.payload, payload, strlen(payload));
    raw_frame_free(&rf);
}

static void test_old_client_served_as_before(void)
{
    arpc_runtime *rt = fault_runtime(1);
    arpc_server *srv = start_server(rt);
    /* Settings, but no METADATA: the answer has none. */
    int fd = raw_connect(arpc_server_port(srv));
    send_settings_ping(fd, false);
    expect_pong_with_metadata(fd);
    raw_send_request(fd, 1, 0, "md", "hello", 5);
    expect_plain_answer(fd, 1, "hello");
    close(fd);
    /* No PING at all (the oldest clients): the same. */
    fd = raw_connect(arpc_server_port(srv));
    raw_send_request(fd, 1, 0, "md", "abc", 3);
    expect_plain_answer(fd, 1, "abc");
    close(fd);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

/* Appends one entry in memory form (proto/metadata.h) with no check and no
 * bound: a peer may send what arpc's own API refuses. */
static void md_append_unchecked(arpc_buf *buf, arpc__md *md, const char *key, const char *value)
{
    uint16_t lens[2] = {(uint16_t)strlen(key), (uint16_t)strlen(value)};
    ASSERT_OK(arpc__buf_append(buf, lens, sizeof(lens)));
    ASSERT_OK(arpc__buf_append(buf, key, lens[0] + 1u));
    ASSERT_OK(arpc__buf_append(buf, value, lens[1] + 1u));
    md->data = arpc__buf_head(buf);
    md->len = (uint32_t)buf->len;
    md->count++;
}

/* A REQUEST whose metadata holds `count` entries of (key, value). */
static void send_md_request(int fd, uint64_t id, const char *const *kv, size_t count)
{
    arpc_buf buf;
    arpc__buf_init(&buf);
    arpc__md md = {0};
    for (size_t i = 0; i < count; i++)
        md_append_unchecked(&buf, &md, kv[2 * i], kv[2 * i + 1]);
    arpc_buf *b;
    ASSERT_OK(arpc_buf_create(&b));
    ASSERT_OK(arpc__frame_encode_request_md(b, id, 0, 0, "md", 2, &md, "pay", 3));
    raw_send(fd, arpc_buf_data(b), arpc_buf_len(b));
    arpc_buf_destroy(b);
    arpc__buf_fini(&buf);
}

static void test_new_client_gets_metadata(void)
{
    arpc_runtime *rt = fault_runtime(1);
    arpc_server *srv = start_server(rt);
    int fd = raw_connect(arpc_server_port(srv));
    send_settings_ping(fd, true);
    expect_pong_with_metadata(fd);
    const char *kv[] = {"x-trace", "t-1", "x-other", "o"};
    send_md_request(fd, 1, kv, 2);
    raw_frame rf;
    ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
    ASSERT_EQ(rf.f.type, ARPC__FRAME_RESPONSE);
    ASSERT_OK(rf.f.status);
    ASSERT_EQ(rf.f.flags, ARPC__FLAG_METADATA);
    ASSERT_EQ(rf.f.md_count, 2);
    ASSERT_EQ(rf.f.payload_len, 3);
    ASSERT_MEMEQ(rf.f.payload, "pay", 3);
    /* Wire entries: key_len, value_len, key, value: "x-seen" "2", "x-first" "t-1". */
    static const uint8_t want[] = {6, 0, 1,   0,   'x', '-', 's', 'e', 'e', 'n', '2', 7,  0,
                                   3, 0, 'x', '-', 'f', 'i', 'r', 's', 't', 't', '-', '1'};
    ASSERT_EQ(rf.f.md_len, sizeof(want));
    ASSERT_MEMEQ(rf.f.md, want, sizeof(want));
    raw_frame_free(&rf);

    /* A bad entry fails that request alone ... */
    const char *bad[] = {"X-Upper", "v"};
    send_md_request(fd, 2, bad, 1);
    ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
    ASSERT_EQ(rf.f.request_id, 2);
    ASSERT_ERR(rf.f.status, ARPC_EINVAL);
    raw_frame_free(&rf);
    /* ... and so does more than 8 KiB of it (two entries of 4.5 KiB) ... */
    static char big[4600];
    memset(big, 'b', sizeof(big) - 1);
    const char *over[] = {"a", big, "b", big};
    send_md_request(fd, 3, over, 2);
    ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
    ASSERT_EQ(rf.f.request_id, 3);
    ASSERT_ERR(rf.f.status, ARPC_EMETADATA);
    raw_frame_free(&rf);
    /* ... while the connection serves the next. */
    send_md_request(fd, 4, kv, 1);
    ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
    ASSERT_EQ(rf.f.request_id, 4);
    ASSERT_OK(rf.f.status);
    raw_frame_free(&rf);

    /* A block whose lengths do not add up: a protocol error, the connection closes. */
    arpc_server_stats before;
    arpc_server_get_stats(srv, &before);
    uint8_t frame[ARPC__FRAME_HEADER_SIZE + 2 + 8];
    arpc__frame h = {
        .type = ARPC__FRAME_REQUEST, .request_id = 5, .method_len = 2, .payload_len = 8};
    arpc__frame_write_header(frame, &h);
    frame[4] = ARPC__FLAG_METADATA;
    memcpy(frame + ARPC__FRAME_HEADER_SIZE, "md", 2);
    static const uint8_t broken[] = {4, 0, 0, 0, 9, 0, 0, 0}; /* one entry, key of 9 > 0 left */
    memcpy(frame + ARPC__FRAME_HEADER_SIZE + 2, broken, sizeof(broken));
    raw_send(fd, frame, sizeof(frame));
    ASSERT_TRUE(raw_wait_closed(fd, WAIT_MS));
    close(fd);
    /* The count is raised on the server's loop just after the close. */
    ASSERT_TRUE(WAIT_SERVER_STAT_GE(srv, protocol_errors, before.protocol_errors + 1, WAIT_MS));
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

typedef struct old_server {
    uint32_t announced; /* the client's METADATA setting */
    uint16_t flags;     /* of the request */
    size_t payload_len;
    bool md_seen;
} old_server;

/* A server of before metadata: settings without METADATA, answers "ok". */
static void old_server_script(int fd, void *arg)
{
    old_server *s = arg;
    raw_frame rf;
    for (;;) {
        if (!raw_read_frame(fd, &rf, WAIT_MS))
            return;
        if (rf.f.type == ARPC__FRAME_PING) {
            s->announced = raw_settings_get(&rf.f, ARPC__SETTING_METADATA);
            raw_send_settings(fd, ARPC__FRAME_PONG, rf.f.request_id, 1u << 20, 100);
        } else if (rf.f.type == ARPC__FRAME_REQUEST) {
            s->flags = rf.f.flags;
            s->payload_len = rf.f.payload_len;
            s->md_seen = rf.f.md != NULL;
            raw_send_response(fd, rf.f.request_id, 0, "ok", 2);
            raw_frame_free(&rf);
            return;
        }
        raw_frame_free(&rf);
    }
}

static void test_client_towards_old_server(void)
{
    arpc_runtime *rt = fault_runtime(1);
    old_server s = {0};
    raw_server peer;
    raw_server_start(&peer, old_server_script, &s);
    char target[64];
    fault_addr(target, sizeof(target), peer.port);
    arpc_channel_opts copts;
    fault_channel_opts_init(&copts);
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(rt, target, &copts, &ch));
    arpc_metadata_entry e = {"x-trace", "abc", 3};
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = WAIT_MS;
    opts.metadata = &e;
    opts.metadata_count = 1;
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    ASSERT_OK(arpc_call(ch, "md", "12345", 5, &opts, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 2);
    raw_server_join(&peer);
    ASSERT_EQ(s.announced, 1);
    ASSERT_EQ(s.flags, 0);
    ASSERT_FALSE(s.md_seen);
    ASSERT_EQ(s.payload_len, 5);
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_old_client_served_as_before);
    RUN_TEST(test_new_client_gets_metadata);
    RUN_TEST(test_client_towards_old_server);
    return 0;
}

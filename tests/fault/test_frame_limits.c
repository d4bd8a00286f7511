/*
 * One oversized message costs only its own call (docs/protocol.md sections 4
 * and 7).  Each case has ten calls in flight on one connection, one of them
 * over a frame limit:
 *  - an answer over the client's limit, from an arpc server (which learned the
 *    limit from the client's settings and answers ARPC_ETOOBIG instead) and
 *    from a raw server peer that has no settings and sends it anyway (the
 *    client skips its body): that call fails with ARPC_ETOOBIG, the nine
 *    others succeed on the same connection;
 *  - a request the client allows but the server does not, from an arpc
 *    channel (which learned the server's limit and fails the call locally,
 *    nothing sent) and from a raw client that has no settings (the server
 *    answers that request ARPC_ETOOBIG and skips its body): the other calls
 *    are answered and the connection lives on, with no protocol error.
 * Before settings, the first case failed all ten calls with ARPC_ETOOBIG and
 * the second reset the connection under all of them.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_util.h"
#include "raw_peer.h"
#include "test.h"

#define CALLS    10
#define LIMIT    (64u * 1024)
#define OVER     (100u * 1024) /* a payload over LIMIT */
#define SLEEP_MS "300"
#define WAIT_MS  15000

static int handle_sleep(arpc_request *req, void *user_data)
{
    (void)user_data;
    char text[16];
    int n = fault_request_text(req, text, sizeof(text));
    if (n < 0)
        return n;
    arpc_coro_sleep_ms(atoi(text));
    return arpc_buf_append(arpc_request_response(req), text, (size_t)n);
}

/* Answers OVER bytes. */
static int handle_big(arpc_request *req, void *user_data)
{
    (void)req;
    (void)user_data;
    void *out;
    int rc = arpc_buf_reserve(arpc_request_response(req), OVER, &out);
    if (rc < 0)
        return rc;
    memset(out, 'b', OVER);
    arpc_buf_commit(arpc_request_response(req), OVER);
    return 0;
}

static arpc_server *limits_server(arpc_runtime *rt, uint32_t max_frame)
{
    arpc_server_opts opts;
    arpc_server_opts_init(&opts);
    if (max_frame != 0)
        opts.max_frame_size = max_frame;
    static const fault_method more[] = {{"sleep", handle_sleep}, {"big", handle_big}, {NULL, NULL}};
    return fault_server(rt, &opts, more);
}

static arpc_channel *limits_channel(arpc_runtime *rt, int port, uint32_t max_frame)
{
    arpc_channel_opts opts;
    fault_channel_opts_init(&opts);
    if (max_frame != 0)
        opts.max_frame_size = max_frame;
    return fault_channel(rt, port, &opts);
}

/* Two arpc peers: a server with frame limit `server_max` and a channel to
 * it with `client_max` (0: the default), connected by one echo call. */
typedef struct limits_rig {
    arpc_runtime *rt;
    arpc_server *srv;
    arpc_channel *ch;
} limits_rig;

static void rig_start(limits_rig *r, uint32_t server_max, uint32_t client_max)
{
    r->rt = fault_runtime(2);
    r->srv = limits_server(r->rt, server_max);
    r->ch = limits_channel(r->rt, arpc_server_port(r->srv), client_max);
    ASSERT_OK(fault_echo_call(r->ch, 5000));
}

static void rig_stop(limits_rig *r)
{
    arpc_channel_destroy(r->ch);
    arpc_server_destroy(r->srv);
    arpc_runtime_destroy(r->rt);
}

static char *big_text(void)
{
    char *text = malloc(OVER + 1);
    ASSERT_TRUE(text != NULL);
    memset(text, 'x', OVER);
    text[OVER] = '\0';
    return text;
}

/* Nine `sleep` calls, then call 9 as `method` with `payload`, all in flight
 * together; waits for all and checks: call 9 failed with ARPC_ETOOBIG, the
 * others succeeded, and the channel never reconnected. */
static void ten_calls_one_too_big(arpc_channel *ch, const char *method, const char *payload)
{
    arpc_call_opts opts = fault_call_opts(WAIT_MS);
    fault_calls set;
    fault_calls_init(&set, CALLS);
    for (size_t i = 0; i + 1 < CALLS; i++)
        fault_call_start(&set, i, ch, "sleep", SLEEP_MS, &opts);
    fault_call_start(&set, CALLS - 1, ch, method, payload, &opts);
    ASSERT_TRUE(wait_until(fault_calls_all_done, &set, WAIT_MS + 5000));
    for (size_t i = 0; i < CALLS; i++) {
        fault_call *c = &set.calls[i];
        ASSERT_EQ(atomic_load(&c->done), 1);
        if (i + 1 < CALLS)
            ASSERT_OK(atomic_load(&c->status));
        else
            ASSERT_ERR(atomic_load(&c->status), ARPC_ETOOBIG);
    }
    fault_calls_fini(&set);
    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    ASSERT_EQ(stats.reconnects, 1);
}

/* ---- an answer over the client's limit ---------------------------------- */

static void test_answer_over_client_limit_fails_only_its_call(void)
{
    limits_rig r;
    rig_start(&r, 0, LIMIT);
    ten_calls_one_too_big(r.ch, "big", "");
    ASSERT_OK(fault_echo_call(r.ch, 5000));
    arpc_server_stats s;
    arpc_server_get_stats(r.srv, &s);
    ASSERT_EQ(s.protocol_errors, 0);
    rig_stop(&r);
}

/* A server without settings: answers the client's PINGs with bare PONGs and,
 * once it holds all ten requests, answers the `big` one with a real OVER-byte
 * RESPONSE, then the nine others; then serves echo calls until the client
 * leaves. */
typedef struct old_server {
    uint64_t ids[CALLS];
    bool big[CALLS];
    size_t n;
} old_server;

static bool old_server_frame(int fd, const arpc__frame *f, void *arg)
{
    old_server *s = arg;
    if (f->type == ARPC__FRAME_PING) {
        raw_send_control(fd, ARPC__FRAME_PONG, f->request_id);
    } else if (f->type == ARPC__FRAME_REQUEST && s->n < CALLS) {
        s->ids[s->n] = f->request_id;
        s->big[s->n++] = f->method_len == 3 && memcmp(f->method, "big", 3) == 0;
        /* The oversized answer first: the nine others come after its body. */
        for (size_t i = 0; s->n == CALLS && i < CALLS; i++) {
            if (s->big[i]) {
                char *body = big_text();
                raw_send_response(fd, s->ids[i], 0, body, OVER);
                free(body);
            }
        }
        for (size_t i = 0; s->n == CALLS && i < CALLS; i++) {
            if (!s->big[i])
                raw_send_response(fd, s->ids[i], 0, SLEEP_MS, strlen(SLEEP_MS));
        }
    } else if (f->type == ARPC__FRAME_REQUEST) {
        raw_send_response(fd, f->request_id, 0, f->payload, f->payload_len);
    }
    return true;
}

static void old_server_script(int fd, void *arg)
{
    (void)arg;
    old_server s = {.n = 0};
    raw_serve(fd, WAIT_MS, old_server_frame, &s);
}

static void test_answer_over_limit_from_old_server_is_skipped(void)
{
    arpc_runtime *rt = fault_runtime(1);
    raw_server peer;
    raw_server_start(&peer, old_server_script, NULL);
    arpc_channel *ch = limits_channel(rt, peer.port, LIMIT);
    ten_calls_one_too_big(ch, "big", "");
    /* The stream is still in step after the skipped body. */
    ASSERT_OK(fault_echo_call(ch, 5000));
    arpc_channel_stats stats;
    arpc_channel_get_stats(ch, &stats);
    ASSERT_EQ(stats.reconnects, 1);
    arpc_channel_destroy(ch);
    raw_server_join(&peer);
    arpc_runtime_destroy(rt);
}

/* ---- a request the client allows but the server does not ---------------- */

static void test_request_over_server_limit_fails_locally(void)
{
    limits_rig r;
    rig_start(&r, LIMIT, 0);
    arpc_server_stats before, after;
    arpc_server_get_stats(r.srv, &before);
    char *text = big_text();
    ten_calls_one_too_big(r.ch, "echo", text);
    free(text);
    arpc_server_get_stats(r.srv, &after);
    ASSERT_EQ(after.requests, before.requests + CALLS - 1); /* the big one was never sent */
    ASSERT_EQ(after.protocol_errors, 0);
    ASSERT_OK(fault_echo_call(r.ch, 5000));
    rig_stop(&r);
}

/* Reads one RESPONSE and checks its id, status and payload. */
static void expect_response(int fd, uint64_t id, int status, const char *payload)
{
    raw_frame rf;
    ASSERT_TRUE(raw_read_frame(fd, &rf, WAIT_MS));
    ASSERT_EQ(rf.f.type, ARPC__FRAME_RESPONSE);
    ASSERT_EQ(rf.f.request_id, id);
    ASSERT_ERR(rf.f.status, status);
    ASSERT_EQ(rf.f.payload_len, strlen(payload));
    ASSERT_MEMEQ(rf.f.payload, payload, strlen(payload));
    raw_frame_free(&rf);
}

/* A client without settings sends, back to back, a request, one over the
 * server's limit (with its whole body) and another request. */
static void test_request_over_limit_from_old_client_is_skipped(void)
{
    arpc_runtime *rt = fault_runtime(1);
    arpc_server *srv = limits_server(rt, LIMIT);
    int fd = raw_connect(arpc_server_port(srv));
    char *text = big_text();
    raw_send_request(fd, 1, 0, "echo", "a", 1);
    raw_send_request(fd, 2, 0, "echo", text, OVER);
    raw_send_request(fd, 3, 0, "echo", "c", 1);
    free(text);
    expect_response(fd, 1, 0, "a");
    expect_response(fd, 2, ARPC_ETOOBIG, "");
    expect_response(fd, 3, 0, "c");
    /* Still in step, still open. */
    raw_send_request(fd, 4, 0, "echo", "d", 1);
    expect_response(fd, 4, 0, "d");
    arpc_server_stats s;
    arpc_server_get_stats(srv, &s);
    ASSERT_EQ(s.protocol_errors, 0);
    ASSERT_EQ(s.connections, 1);
    ASSERT_EQ(s.requests, 4);
    close(fd);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_answer_over_client_limit_fails_only_its_call);
    RUN_TEST(test_answer_over_limit_from_old_server_is_skipped);
    RUN_TEST(test_request_over_server_limit_fails_locally);
    RUN_TEST(test_request_over_limit_from_old_client_is_skipped);
    return 0;
}

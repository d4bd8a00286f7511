/*
 * The server listens on IPv6 and the client reaches it: a server on
 * "[::1]:0" on every loop, a channel to "[::1]:PORT", echo calls in both
 * call styles.  A machine without an IPv6 loopback skips with a reason and
 * exit code TEST_SKIP_CODE, which ctest reports as skipped, not passed.
 */
#include <string.h>

#include <arpc/arpc.h>

#include "test.h"

static int echo(arpc_request *req, void *user_data)
{
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

typedef struct async_result {
    arpc_event done;
    int status;
    char text[16];
} async_result;

static void on_done(int status, const void *rsp, size_t len, void *user_data)
{
    async_result *r = user_data;
    r->status = status;
    if (status == 0 && len < sizeof(r->text)) {
        memcpy(r->text, rsp, len);
        r->text[len] = '\0';
    }
    arpc_event_signal(&r->done);
}

static bool skipped;

static void test_ipv6_echo(void)
{
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 2;
    arpc_runtime *rt;
    arpc_server *srv;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    ASSERT_OK(arpc_server_create(rt, NULL, &srv));
    ASSERT_OK(arpc_server_register(srv, "echo", echo, NULL));
    int rc = arpc_server_listen(srv, "[::1]:0");
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        fprintf(stderr, "  skipped: no IPv6 loopback here (%s)\n", arpc_strerror(rc));
        arpc_server_destroy(srv);
        arpc_runtime_destroy(rt);
        skipped = true;
        return;
    }
    ASSERT_OK(rc);
    char target[64];
    snprintf(target, sizeof(target), "[::1]:%d", arpc_server_port(srv));
    arpc_channel *ch;
    arpc_buf *rsp;
    ASSERT_OK(arpc_channel_create(rt, target, NULL, &ch));
    ASSERT_OK(arpc_buf_create(&rsp));

    ASSERT_OK(arpc_call(ch, "echo", "six", 3, NULL, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 3);
    ASSERT_MEMEQ(arpc_buf_data(rsp), "six", 3);

    async_result r = {.status = 1};
    arpc_event_init(&r.done);
    ASSERT_OK(arpc_call_async(ch, "echo", "async6", 6, NULL, on_done, &r));
    ASSERT_OK(arpc_event_wait(&r.done, 5000));
    ASSERT_OK(r.status);
    ASSERT_STREQ(r.text, "async6");

    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    RUN_TEST(test_ipv6_echo);
    return skipped ? TEST_SKIP_CODE : 0;
}

/*
 * Metadata end to end on the native protocol, over real sockets on 127.0.0.1.
 * Proves:
 *  - request metadata set through arpc_call_opts reaches the handler, which
 *    reads it by count, by index (order kept, keys repeatable) and by key,
 *    NUL-terminated, "-bin" values with any byte (NUL and 0xff included);
 *  - response metadata added by the handler reaches the caller's
 *    arpc_metadata in all three call styles (arpc_call from a plain thread,
 *    arpc_call in a coroutine, arpc_call_async, whose callback already sees
 *    it), and on an application error answer too;
 *  - the caller's list is emptied by the call: a call whose answer has none
 *    leaves it empty, and a reused list allocates nothing new;
 *  - the borrowed entries are copied before arpc_call_async returns (the
 *    caller overwrites them at once; the server still sees the originals);
 *  - invalid entries are refused at the call with ARPC_EINVAL and nothing is
 *    sent (uppercase key, empty key, reserved "grpc-" and ":" keys, a
 *    control byte or a leading space in a text value, NULL key);
 *  - size: exactly ARPC_METADATA_MAX_BYTES of keys and values pass, one byte
 *    more fails that call alone with ARPC_EMETADATA, and the next call on
 *    the channel works; a handler's arpc_request_add_metadata over the bound
 *    returns ARPC_EMETADATA and adds nothing;
 *  - the arpc_metadata object itself: add/at/get/clear/count and its checks.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

#include "rpc_fixture.h"
#include "test.h"

#define CALL_TIMEOUT_MS 10000

static arpc_runtime *srv_rt;
static arpc_runtime *cli_rt;
static arpc_server *srv;
static arpc_channel *ch;
static _Atomic int handled;

static const uint8_t bin_value[] = {0x00, 0xff, 0x10, 0x00, 0x7f};

/* Echoes the payload; answers with every request entry copied as "echo-<key>"
 * (after checking what the handler can see), plus "x-count". */
static int handle_md(arpc_request *req, void *user_data)
{
    atomic_fetch_add(&handled, 1);
    size_t n = arpc_request_metadata_count(req);
    for (size_t i = 0; i < n; i++) {
        arpc_metadata_entry e;
        ASSERT_OK(arpc_request_metadata_at(req, i, &e));
        ASSERT_EQ(((const char *)e.value)[e.value_len], '\0');
        char key[300];
        snprintf(key, sizeof(key), "echo-%s", e.key);
        ASSERT_OK(arpc_request_add_metadata(req, key, e.value, e.value_len));
    }
    arpc_metadata_entry past;
    ASSERT_ERR(arpc_request_metadata_at(req, n, &past), ARPC_EINVAL);
    ASSERT_TRUE(arpc_request_metadata_get(req, "no-such-key", NULL) == NULL);
    char count[16];
    snprintf(count, sizeof(count), "%zu", n);
    ASSERT_OK(arpc_request_add_metadata(req, "x-count", count, strlen(count)));
    ASSERT_OK(
        arpc_buf_append(arpc_request_response(req), arpc_request_data(req), arpc_request_len(req)));
    return 0;
}

/* Answers "<count> <key and value bytes>" of the request's metadata. */
static int handle_size(arpc_request *req, void *user_data)
{
    atomic_fetch_add(&handled, 1);
    size_t n = arpc_request_metadata_count(req);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        arpc_metadata_entry e;
        ASSERT_OK(arpc_request_metadata_at(req, i, &e));
        bytes += strlen(e.key) + e.value_len;
    }
    char text[64];
    int len = snprintf(text, sizeof(text), "%zu %zu", n, bytes);
    return arpc_buf_append(arpc_request_response(req), text, (size_t)len);
}

/* An application error that still carries metadata. */
static int handle_fail_md(arpc_request *req, void *user_data)
{
    ASSERT_OK(arpc_request_add_metadata(req, "x-reason", "quota", 5));
    ASSERT_OK(arpc_request_set_error(req, "over quota"));
    return 8;
}

/* The handler's own bound: 8 KiB of answer metadata, no more. */
static int handle_big_md(arpc_request *req, void *user_data)
{
    static char value[ARPC_METADATA_MAX_BYTES];
    memset(value, 'v', sizeof(value));
    /* key "k" (1 byte) + value: one byte over as a single entry */
    ASSERT_ERR(arpc_request_add_metadata(req, "k", value, sizeof(value)), ARPC_EMETADATA);
    ASSERT_OK(arpc_request_add_metadata(req, "k", value, sizeof(value) - 1));
    ASSERT_ERR(arpc_request_add_metadata(req, "k", "", 0), ARPC_EMETADATA);
    ASSERT_ERR(arpc_request_add_metadata(req, "Bad", "x", 1), ARPC_EINVAL);
    return 0;
}

/* Handler-side reads of the entries test_request_md_reaches_handler sends. */
static int handle_inspect(arpc_request *req, void *user_data)
{
    ASSERT_EQ(arpc_request_metadata_count(req), 4);
    arpc_metadata_entry e;
    ASSERT_OK(arpc_request_metadata_at(req, 0, &e));
    ASSERT_STREQ(e.key, "x-trace");
    ASSERT_STREQ((const char *)e.value, "abc");
    ASSERT_OK(arpc_request_metadata_at(req, 2, &e));
    ASSERT_STREQ(e.key, "x-trace");
    ASSERT_STREQ((const char *)e.value, "second");
    size_t len = 0;
    const void *v = arpc_request_metadata_get(req, "x-trace", &len);
    ASSERT_TRUE(v != NULL);
    ASSERT_EQ(len, 3);
    ASSERT_MEMEQ(v, "abc", 3);
    v = arpc_request_metadata_get(req, "data-bin", &len);
    ASSERT_TRUE(v != NULL);
    ASSERT_EQ(len, sizeof(bin_value));
    ASSERT_MEMEQ(v, bin_value, sizeof(bin_value));
    v = arpc_request_metadata_get(req, "empty", &len);
    ASSERT_TRUE(v != NULL);
    ASSERT_EQ(len, 0);
    return 0;
}

static const arpc_metadata_entry request_md[] = {
    {"x-trace", "abc", 3},
    {"data-bin", bin_value, sizeof(bin_value)},
    {"x-trace", "second", 6},
    {"empty", "", 0},
};
#define REQUEST_MD_COUNT (sizeof(request_md) / sizeof(request_md[0]))

static arpc_call_opts md_opts(const arpc_metadata_entry *md, size_t count, arpc_metadata *out)
{
    arpc_call_opts opts = fx_timeout(CALL_TIMEOUT_MS);
    opts.metadata = md;
    opts.metadata_count = count;
    opts.response_metadata = out;
    return opts;
}

/* The answer of handle_md to request_md. */
static void check_echoed(const arpc_metadata *md)
{
    ASSERT_EQ(arpc_metadata_count(md), REQUEST_MD_COUNT + 1);
    arpc_metadata_entry e;
    ASSERT_OK(arpc_metadata_at(md, 0, &e));
    ASSERT_STREQ(e.key, "echo-x-trace");
    ASSERT_EQ(e.value_len, 3);
    ASSERT_MEMEQ(e.value, "abc", 3);
    ASSERT_OK(arpc_metadata_at(md, 2, &e));
    ASSERT_STREQ(e.key, "echo-x-trace");
    ASSERT_STREQ((const char *)e.value, "second");
    size_t len = 0;
    const void *v = arpc_metadata_get(md, "echo-data-bin", &len);
    ASSERT_TRUE(v != NULL);
    ASSERT_EQ(len, sizeof(bin_value));
    ASSERT_MEMEQ(v, bin_value, sizeof(bin_value));
    v = arpc_metadata_get(md, "x-count", &len);
    ASSERT_TRUE(v != NULL);
    ASSERT_STREQ((const char *)v, "4");
    ASSERT_ERR(arpc_metadata_at(md, REQUEST_MD_COUNT + 1, &e), ARPC_EINVAL);
}

static void test_request_md_reaches_handler(void)
{
    arpc_call_opts opts = md_opts(request_md, REQUEST_MD_COUNT, NULL);
    ASSERT_OK(arpc_call(ch, "inspect", "x", 1, &opts, NULL));
}

static void test_plain_thread_round_trip(void)
{
    arpc_metadata *md;
    ASSERT_OK(arpc_metadata_create(&md));
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = md_opts(request_md, REQUEST_MD_COUNT, md);
    ASSERT_OK(arpc_call(ch, "md", "hello", 5, &opts, rsp));
    ASSERT_EQ(arpc_buf_len(rsp), 5);
    ASSERT_MEMEQ(arpc_buf_data(rsp), "hello", 5);
    check_echoed(md);
    /* Reused: the next answer replaces the list, here with "x-count: 0" only. */
    opts = md_opts(NULL, 0, md);
    ASSERT_OK(arpc_call(ch, "md", "", 0, &opts, NULL));
    ASSERT_EQ(arpc_metadata_count(md), 1);
    ASSERT_STREQ((const char *)arpc_metadata_get(md, "x-count", NULL), "0");
    /* An answer without metadata empties it. */
    opts = md_opts(NULL, 0, md);
    ASSERT_OK(arpc_call(ch, "echo", "", 0, &opts, NULL));
    ASSERT_EQ(arpc_metadata_count(md), 0);
    arpc_buf_destroy(rsp);
    arpc_metadata_destroy(md);
}

typedef struct coro_case {
    arpc_event done;
    int status;
    arpc_metadata *md;
} coro_case;

static void coro_body(void *arg)
{
    coro_case *c = arg;
    arpc_call_opts opts = md_opts(request_md, REQUEST_MD_COUNT, c->md);
    c->status = arpc_call(ch, "md", "co", 2, &opts, NULL);
    arpc_event_signal(&c->done);
}

static void test_coroutine_round_trip(void)
{
    coro_case c = {.status = 1};
    arpc_event_init(&c.done);
    ASSERT_OK(arpc_metadata_create(&c.md));
    ASSERT_OK(arpc_runtime_spawn(cli_rt, coro_body, &c));
    ASSERT_OK(arpc_event_wait(&c.done, 30000));
    ASSERT_OK(c.status);
    check_echoed(c.md);
    arpc_metadata_destroy(c.md);
}

typedef struct async_case {
    arpc_event done;
    int status;
    arpc_metadata *md;
    size_t count_in_cb;
} async_case;

static void on_async_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    async_case *c = user_data;
    c->status = status;
    /* Filled before the callback runs. */
    c->count_in_cb = arpc_metadata_count(c->md);
    arpc_event_signal(&c->done);
}

static void test_async_round_trip(void)
{
    async_case c = {.status = 1};
    arpc_event_init(&c.done);
    ASSERT_OK(arpc_metadata_create(&c.md));
    /* The entries are the caller's only for the duration of the call: */
    arpc_metadata_entry mine[REQUEST_MD_COUNT];
    char scratch[REQUEST_MD_COUNT][16];
    for (size_t i = 0; i < REQUEST_MD_COUNT; i++)
        mine[i] = request_md[i];
    arpc_call_opts opts = md_opts(mine, REQUEST_MD_COUNT, c.md);
    ASSERT_OK(arpc_call_async(ch, "md", "as", 2, &opts, on_async_done, &c));
    /* ... so overwriting them at once changes nothing the server sees. */
    for (size_t i = 0; i < REQUEST_MD_COUNT; i++) {
        memset(scratch[i], 'Z', sizeof(scratch[i]));
        mine[i].key = "overwritten";
        mine[i].value = scratch[i];
    }
    ASSERT_OK(arpc_event_wait(&c.done, 30000));
    ASSERT_OK(c.status);
    ASSERT_EQ(c.count_in_cb, REQUEST_MD_COUNT + 1);
    check_echoed(c.md);
    arpc_metadata_destroy(c.md);
}

static void test_error_answer_carries_md(void)
{
    arpc_metadata *md;
    ASSERT_OK(arpc_metadata_create(&md));
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = md_opts(NULL, 0, md);
    ASSERT_EQ(arpc_call(ch, "fail_md", "", 0, &opts, rsp), 8);
    ASSERT_STREQ((const char *)arpc_metadata_get(md, "x-reason", NULL), "quota");
    arpc_buf_destroy(rsp);
    arpc_metadata_destroy(md);
}

static void expect_refused(const char *key, const void *value, size_t len, int want)
{
    arpc_metadata_entry e = {key, value, len};
    arpc_call_opts opts = md_opts(&e, 1, NULL);
    int before = atomic_load(&handled);
    ASSERT_ERR(arpc_call(ch, "md", "", 0, &opts, NULL), want);
    ASSERT_EQ(atomic_load(&handled), before); /* never sent */
}

static void test_invalid_entries_refused(void)
{
    expect_refused("X-Upper", "v", 1, ARPC_EINVAL);
    expect_refused("", "v", 1, ARPC_EINVAL);
    expect_refused("grpc-timeout", "1S", 2, ARPC_EINVAL);
    expect_refused(":path", "/x", 2, ARPC_EINVAL);
    expect_refused("content-type", "x", 1, ARPC_EINVAL);
    expect_refused("sp ace", "v", 1, ARPC_EINVAL);
    expect_refused("x-text", "a\nb", 3, ARPC_EINVAL);
    expect_refused("x-text", " lead", 5, ARPC_EINVAL);
    expect_refused("x-text", "\x80", 1, ARPC_EINVAL);
    expect_refused(NULL, "v", 1, ARPC_EINVAL);
    expect_refused("x-null", NULL, 3, ARPC_EINVAL);
    /* The same bytes are fine in a -bin value. */
    arpc_metadata_entry e = {"x-text-bin", "a\nb\x80", 4};
    arpc_call_opts opts = md_opts(&e, 1, NULL);
    ASSERT_OK(arpc_call(ch, "md", "", 0, &opts, NULL));
    /* Entries without a count are refused too. */
    opts = md_opts(NULL, 1, NULL);
    ASSERT_ERR(arpc_call(ch, "md", "", 0, &opts, NULL), ARPC_EINVAL);
}

static void test_size_bound(void)
{
    static char value[ARPC_METADATA_MAX_BYTES];
    memset(value, 'a', sizeof(value));
    /* Two entries: "k1" + "k2" + values, exactly the bound. */
    size_t first = 4000;
    size_t second = ARPC_METADATA_MAX_BYTES - 4 - first;
    arpc_metadata_entry e[2] = {{"k1", value, first}, {"k2", value, second}};
    arpc_metadata *md;
    ASSERT_OK(arpc_metadata_create(&md));
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts = md_opts(e, 2, md);
    ASSERT_OK(arpc_call(ch, "size", "", 0, &opts, rsp));
    char want[64];
    snprintf(want, sizeof(want), "2 %d", ARPC_METADATA_MAX_BYTES);
    ASSERT_EQ(arpc_buf_len(rsp), strlen(want));
    ASSERT_MEMEQ(arpc_buf_data(rsp), want, strlen(want));
    arpc_buf_destroy(rsp);
    /* One byte more: that call alone fails. */
    e[1].value_len = second + 1;
    expect_refused("k", value, ARPC_METADATA_MAX_BYTES, ARPC_EMETADATA);
    int before = atomic_load(&handled);
    opts = md_opts(e, 2, md);
    ASSERT_ERR(arpc_call(ch, "size", "", 0, &opts, NULL), ARPC_EMETADATA);
    ASSERT_EQ(atomic_load(&handled), before);
    size_t len = 0;
    opts = md_opts(NULL, 0, md);
    ASSERT_OK(arpc_call(ch, "md", "", 0, &opts, NULL));
    /* The handler's bound on the answer. */
    ASSERT_OK(arpc_call(ch, "big_md", "", 0, &opts, NULL));
    ASSERT_EQ(arpc_metadata_count(md), 1);
    ASSERT_TRUE(arpc_metadata_get(md, "k", &len) != NULL);
    ASSERT_EQ(len, ARPC_METADATA_MAX_BYTES - 1);
    arpc_metadata_destroy(md);
}

static void test_metadata_object(void)
{
    arpc_metadata *md;
    ASSERT_ERR(arpc_metadata_create(NULL), ARPC_EINVAL);
    ASSERT_OK(arpc_metadata_create(&md));
    ASSERT_EQ(arpc_metadata_count(md), 0);
    ASSERT_TRUE(arpc_metadata_get(md, "a", NULL) == NULL);
    ASSERT_OK(arpc_metadata_add(md, "a", "1", 1));
    ASSERT_OK(arpc_metadata_add(md, "b-bin", "\0\1", 2));
    ASSERT_OK(arpc_metadata_add(md, "a", "2", 1));
    ASSERT_ERR(arpc_metadata_add(md, "A", "1", 1), ARPC_EINVAL);
    ASSERT_ERR(arpc_metadata_add(md, "grpc-status", "0", 1), ARPC_EINVAL);
    ASSERT_EQ(arpc_metadata_count(md), 3);
    ASSERT_STREQ((const char *)arpc_metadata_get(md, "a", NULL), "1");
    arpc_metadata_entry e;
    ASSERT_OK(arpc_metadata_at(md, 2, &e));
    ASSERT_STREQ(e.key, "a");
    ASSERT_STREQ((const char *)e.value, "2");
    arpc_metadata_clear(md);
    ASSERT_EQ(arpc_metadata_count(md), 0);
    ASSERT_ERR(arpc_metadata_at(md, 0, &e), ARPC_EINVAL);
    arpc_metadata_destroy(md);
    arpc_metadata_destroy(NULL);
}

int main(void)
{
    srv_rt = fx_runtime(2);
    cli_rt = fx_runtime(2);
    const fx_method methods[] = {
        {"md", handle_md, NULL},
        {"inspect", handle_inspect, NULL},
        {"fail_md", handle_fail_md, NULL},
        {"big_md", handle_big_md, NULL},
        {"size", handle_size, NULL},
        {"echo", fx_handle_echo, NULL},
        {NULL, NULL, NULL},
    };
    srv = fx_server(srv_rt, NULL, methods);
    ch = fx_channel(cli_rt, srv, NULL);

    RUN_TEST(test_metadata_object);
    RUN_TEST(test_request_md_reaches_handler);
    RUN_TEST(test_plain_thread_round_trip);
    RUN_TEST(test_coroutine_round_trip);
    RUN_TEST(test_async_round_trip);
    RUN_TEST(test_error_answer_carries_md);
    RUN_TEST(test_invalid_entries_refused);
    RUN_TEST(test_size_bound);

    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
    return 0;
}

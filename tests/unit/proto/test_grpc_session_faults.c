/*
 * Allocation failures in the gRPC session (src/proto/grpc/session.c), nghttp2's own
 * included (it allocates through nghttp2_mem, wired to src/base/alloc.h): the n-th
 * allocation of a whole unary exchange fails, for every n until one passes untouched.
 * Each run must end cleanly: creation fails with ARPC_ENOMEM, or a call or feed/flush
 * reports ARPC_ENOMEM, or the call ends with a status; nothing crashes, and ASan's leak
 * check (make test-asan) sees nothing left behind.
 */
#include "base/alloc.h"
#include "grpc_session_pair.h"

static struct pair p;

/* @return true if the exchange ran without a failed allocation. */
static bool run_once(int64_t fail_after, size_t *errors)
{
    uint64_t failures = arpc__alloc_failures();
    arpc__alloc_fail_after(fail_after);
    int rc = pair_init(&p, NULL, NULL);
    if (rc == 0) {
        const arpc__grpc_md md[] = {{"x-echo-a", 8, "va", 2}, {"x-id-bin", 8, "\x01\x02", 2}};
        int32_t id = 0;
        rc = pair_call(&p, ECHO_PATH, "hello", 5, md, 2, 1000000000, &id);
        if (rc == 0)
            rc = pair_pump(&p);
        if (rc == 0) {
            /* Every failure was absorbed by one stream: it ended with a status (unless even
             * the handler's cancel failed; a real caller then closes the connection). */
            ASSERT_TRUE(p.cs[id].closed || p.cancel_failed);
            if (p.cs[id].grpc_status == 0)
                ASSERT_MEMEQ(arpc__buf_data(&p.cs[id].msg), "hello", 5);
        }
        if (rc != 0 && rc != ARPC_ENOMEM)
            fprintf(stderr, "n=%lld rc=%d cli=%d srv=%d goaways=%zu code=%u\n",
                    (long long)fail_after, rc, p.feed_err_cli, p.feed_err_srv, p.goaways,
                    p.goaway_code);
        if (rc != 0)
            ASSERT_ERR(rc, ARPC_ENOMEM);
    } else {
        ASSERT_ERR(rc, ARPC_ENOMEM);
    }
    if (rc != 0)
        (*errors)++;
    arpc__alloc_fail_after(-1);
    pair_fini(&p);
    return arpc__alloc_failures() == failures;
}

static void test_every_allocation_fails_once(void)
{
    size_t errors = 0;
    int64_t n = 0;
    for (; n < 2000; n++)
        if (run_once(n, &errors))
            break;
    ASSERT_LT(n, 2000); /* the exchange needs fewer allocations than that */
    ASSERT_GT(n, 5);    /* nghttp2's allocations are counted (it makes dozens) */
    ASSERT_GT(errors, 0);
    fprintf(stderr, "exchange: %lld allocations, %zu runs ended with ARPC_ENOMEM\n", (long long)n,
            errors);
}

static void test_allocations_are_counted(void)
{
    uint64_t before = arpc__alloc_count();
    ASSERT_OK(pair_init(&p, NULL, NULL));
    uint64_t created = arpc__alloc_count();
    ASSERT_GT(created - before, 3); /* nghttp2's session objects came through the hooks */
    pair_fini(&p);
}

/* Allocations of one unary call on a warm connection, both sessions together (bench-alloc
 * counts the same hooks), the test handler's two message buffers included: printed, and
 * bounded so that a regression shows.  What remains is nghttp2's own (its stream objects
 * and one outbound item per frame); the session reuses its streams and header blocks. */
static void test_allocations_per_call(void)
{
    ASSERT_OK(pair_init(&p, NULL, NULL));
    int32_t id;
    for (int i = 0; i < 3; i++) { /* warm: SETTINGS, HPACK tables, buffers */
        ASSERT_OK(pair_call(&p, ECHO_PATH, "warm", 4, NULL, 0, -1, &id));
        ASSERT_OK(pair_pump(&p));
    }
    uint64_t before = arpc__alloc_count();
    ASSERT_OK(pair_call(&p, ECHO_PATH, "hello", 5, NULL, 0, -1, &id));
    ASSERT_OK(pair_pump(&p));
    uint64_t per_call = arpc__alloc_count() - before;
    ASSERT_EQ(p.cs[id].grpc_status, 0);
    fprintf(stderr, "one unary call on a warm connection: %llu allocations (both sides)\n",
            (unsigned long long)per_call);
    ASSERT_LE(per_call, 20);
    pair_fini(&p);
}

int main(void)
{
    RUN_TEST(test_allocations_per_call);
    RUN_TEST(test_allocations_are_counted);
    RUN_TEST(test_every_allocation_fails_once);
    return 0;
}

/*
 * The test library: typed asserts that print both values, ARPC error asserts
 * that print arpc_strerror(), bounded waits, ephemeral-port listeners, a
 * child-process runner and a seeded random generator.
 */
#ifndef ARPC_TEST_H
#define ARPC_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <arpc/err.h>

_Noreturn void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ASSERT_TRUE(x)                                           \
    do {                                                         \
        if (!(x))                                                \
            test_fail(__FILE__, __LINE__, "expected true: %s", #x); \
    } while (0)

#define ASSERT_FALSE(x) ASSERT_TRUE(!(x))

#define ASSERT_CMP_INT(a, op, b)                                                           \
    do {                                                                                   \
        long long va_ = (long long)(a), vb_ = (long long)(b);                              \
        if (!(va_ op vb_))                                                                 \
            test_fail(__FILE__, __LINE__, "expected %s %s %s, got %lld vs %lld", #a, #op, #b, \
                      va_, vb_);                                                           \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP_INT(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP_INT(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP_INT(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP_INT(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP_INT(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP_INT(a, >=, b)

#define ASSERT_STREQ(a, b)                                                                   \
    do {                                                                                     \
        const char *sa_ = (a), *sb_ = (b);                                                   \
        if (strcmp(sa_, sb_) != 0)                                                           \
            test_fail(__FILE__, __LINE__, "expected %s == %s, got \"%s\" vs \"%s\"", #a, #b, \
                      sa_, sb_);                                                             \
    } while (0)

#define ASSERT_MEMEQ(a, b, n)                                                        \
    do {                                                                             \
        if (memcmp((a), (b), (n)) != 0)                                              \
            test_fail(__FILE__, __LINE__, "memory differs: %s vs %s (%zu bytes)", #a, #b, \
                      (size_t)(n));                                                  \
    } while (0)

#define ASSERT_OK(e)                                                                     \
    do {                                                                                 \
        int rc_ = (int)(e);                                                              \
        if (rc_ != 0)                                                                    \
            test_fail(__FILE__, __LINE__, "%s failed: %d %s (%s)", #e, rc_, arpc_err_name(rc_), \
                      arpc_strerror(rc_));                                               \
    } while (0)

#define ASSERT_ERR(e, want)                                                                \
    do {                                                                                   \
        int rc_ = (int)(e), want_ = (int)(want);                                           \
        if (rc_ != want_)                                                                  \
            test_fail(__FILE__, __LINE__, "%s: expected %s, got %d %s (%s)", #e,           \
                      arpc_err_name(want_), rc_, arpc_err_name(rc_), arpc_strerror(rc_));  \
    } while (0)

/* Runs one test function, printing its name; a failure aborts the binary.
 * With ARPC_TEST_ONLY set, runs only the tests whose name contains it. */
#define RUN_TEST(fn)                           \
    do {                                       \
        if (test_selected(#fn)) {              \
            fprintf(stderr, "RUN  %s\n", #fn); \
            fn();                              \
            fprintf(stderr, "OK   %s\n", #fn); \
        }                                      \
    } while (0)

/* False when ARPC_TEST_ONLY is set and `name` does not contain it. */
bool test_selected(const char *name);

/* Exit code of a test that cannot run here (ctest's SKIP_RETURN_CODE). */
#define TEST_SKIP_CODE 77

/* Monotonic milliseconds and nanoseconds. */
int64_t test_now_ms(void);
int64_t test_now_ns(void);

/* Reads one line (without its newline) from `fd` within `timeout_ms`.
 * @return its length, or -1 on timeout, end of file or error. */
int test_read_line(int fd, char *line, size_t size, int timeout_ms);

/* Polls `pred(arg)` every millisecond until true or `timeout_ms` passes.
 * @return true if the predicate became true. */
bool wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms);

/* A seeded xorshift generator: the seed is ARPC_TEST_SEED or the time, and is printed. */
uint64_t test_seed(void);
uint64_t test_rand(void);

/* Binds a TCP listener on 127.0.0.1 port 0 (blocking fd); writes the port. */
int test_listen_ephemeral(uint16_t *port);

/* Runs `fn(arg)` in a forked child; returns the raw wait status. */
int test_run_in_child(void (*fn)(void *arg), void *arg);

/* Raises RLIMIT_NOFILE's soft limit to at least `want` (up to the hard limit). */
uint64_t test_raise_nofile(uint64_t want);

/* Path of a program built next to the test binary (build/bin/NAME). */
const char *test_bin_path(const char *name);

/* The state letter of process `pid` from /proc/PID/stat ('R', 'S', 'T' for
 * stopped, 'Z', ...), or '?' if it cannot be read. */
char test_proc_state(pid_t pid);

/* CPU time (user and system, all threads) process `pid` has used, in ms, or
 * -1 if it cannot be read. */
int64_t test_proc_cpu_ms(pid_t pid);

/* Time the threads of process `pid` have spent runnable but waiting for a CPU
 * (/proc/PID/task/TID/schedstat), summed, in ms, or -1 if it cannot be read. */
int64_t test_proc_runq_wait_ms(pid_t pid);

#endif

/*
 * Bounded waits on a server's or a channel's counters (arpc_server_stats,
 * arpc_channel_stats), named by field:
 *
 *     ASSERT_TRUE(WAIT_SERVER_STAT_GE(srv, canceled, 3, 10000));
 *     ASSERT_EQ(SERVER_STAT(srv, canceled), 3);
 *
 * A wait polls like wait_until() and only says whether the value got there;
 * an exact check after it stays the caller's assertion.  On a timeout it
 * prints the value it saw last.
 *
 * Kept apart from test.h: these call the rpc layer, and arpc_testlib is
 * linked by the base and runtime tests too.  Link arpc_teststats to use them.
 */
#ifndef ARPC_TEST_STATS_H
#define ARPC_TEST_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/client.h>
#include <arpc/coro.h>
#include <arpc/server.h>

/* The offset of `field` in a stats struct; a compile error unless it is a uint64_t. */
#define TEST_STAT_OFFSET(type, field) _Generic(((type *)0)->field, uint64_t : offsetof(type, field))

/* The counter at `offset` of the server's (channel's) stats now. */
uint64_t server_stat(const arpc_server *srv, size_t offset);
uint64_t channel_stat(const arpc_channel *ch, size_t offset);

/* Polls every millisecond until the counter at `offset` is exactly `want`
 * (`exact`) or at least `want`, for up to `timeout_ms`; `name` is for the
 * message.  The macros below fill in offset and name from the field.
 * @return true if it got there. */
bool wait_server_stat(const arpc_server *srv, size_t offset, const char *name, bool exact,
                      uint64_t want, int timeout_ms);
bool wait_channel_stat(const arpc_channel *ch, size_t offset, const char *name, bool exact,
                       uint64_t want, int timeout_ms);

#define SERVER_STAT(srv, field) server_stat((srv), TEST_STAT_OFFSET(arpc_server_stats, field))
#define CHANNEL_STAT(ch, field) channel_stat((ch), TEST_STAT_OFFSET(arpc_channel_stats, field))

#define WAIT_SERVER_STAT_(srv, field, exact, want, ms) \
    wait_server_stat((srv), TEST_STAT_OFFSET(arpc_server_stats, field), #field, exact, (want), (ms))
#define WAIT_CHANNEL_STAT_(ch, field, exact, want, ms)                                          \
    wait_channel_stat((ch), TEST_STAT_OFFSET(arpc_channel_stats, field), #field, exact, (want), \
                      (ms))

/* Waits until the server's (channel's) `field` is at least (_GE) or exactly (_EQ) `want`. */
#define WAIT_SERVER_STAT_GE(srv, field, want, ms) WAIT_SERVER_STAT_(srv, field, false, want, ms)
#define WAIT_SERVER_STAT_EQ(srv, field, want, ms) WAIT_SERVER_STAT_(srv, field, true, want, ms)
#define WAIT_CHANNEL_STAT_GE(ch, field, want, ms) WAIT_CHANNEL_STAT_(ch, field, false, want, ms)
#define WAIT_CHANNEL_STAT_EQ(ch, field, want, ms) WAIT_CHANNEL_STAT_(ch, field, true, want, ms)

/* From a handler: parks until `req` is canceled (an arpc_request_on_cancel callback signals
 * an event) or `timeout_ms` pass; returns arpc_request_is_canceled(req).  Suspends. */
bool test_wait_request_canceled(arpc_request *req, int64_t timeout_ms);

#endif

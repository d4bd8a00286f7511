/*
 * Stream handlers and counters shared by the stream tests (test_stream*.c): a server
 * with the methods below, and what their handlers did, for the tests to wait on.
 *   S/Echo       every message echoed; the client's x-client entry comes back as x-echo
 *                ahead of the first message, x-count (messages read) with the end.
 *   S/Count      the first message is N: answers "1".."N".
 *   S/Sum        reads to the half-close, answers the total length in decimal.
 *   S/Fail       writes "partial", then ends with status 7, message "boom", x-why=test.
 *   S/Flood      the first message is "N LEN": writes N messages of LEN bytes.
 *   S/SlowSink   reads to the half-close, stopping after every 10,000 messages until
 *                the watched client stream's writer has waited for credit; answers the
 *                count.
 *   S/Sink       reads until a read fails; records the count and the failure.
 *   S/CancelSelf reads one message, cancels its stream, records what a write returns.
 *   S/EchoOnce   reads one message, writes it, records what a second write returns.
 *   S/Ticker     writes "tick" every 20 ms until a write fails.
 *   S/Relay      reads one message, then streams to S/Sink on the relay channel with its
 *                request as parent, until that stream fails; records the failure.
 *   S/Unary      a unary echo.
 */
#ifndef ARPC_TEST_STREAM_FIXTURE_H
#define ARPC_TEST_STREAM_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <arpc/arpc.h>

/* The servers and channels made from now on speak the test's own protocol (seam_proto.h)
 * instead of native. */
void sx_use_seam(bool on);
/* The channels made from now on speak gRPC (the servers detect it). */
void sx_use_grpc(bool on);
/* How many windows a writer may stand ahead of its reader: one (native, seam: the credit
 * is the reader's window); gRPC two (the credit covers the session's held output, and the
 * HTTP/2 window lies between it and the reader). */
unsigned sx_windows_in_flight(void);
bool sx_grpc(void);

arpc_server *sx_server(arpc_runtime *rt, const arpc_server_opts *opts);
arpc_channel *sx_channel(arpc_runtime *rt, int port, const arpc_channel_opts *opts);

/* Stream handlers that have returned, and those running now. */
uint64_t sx_handler_ends(void);
bool sx_wait_handler_ends(uint64_t n);
bool sx_wait_handlers_running(uint64_t n);

void sx_flood_reset(void);
uint64_t sx_flood_written(void);
uint64_t sx_flood_write_waits(void);
/* The flood's writer waits for credit now. */
bool sx_wait_flood_suspended(void);

/* S/SlowSink watches `st` (a client stream of this process; NULL: none). */
void sx_slow_sink_watch(arpc_stream *st);
uint64_t sx_slow_sink_peak(void);

void sx_sink_reset(void);
bool sx_wait_sink_read(uint64_t n);
uint64_t sx_sink_reads(void);
bool sx_wait_sink_done(void);
int sx_sink_status(void);
bool sx_sink_saw_canceled(void);

/* S/Relay's channel (set before the stream opens), and what its downstream read last. */
void sx_relay_reset(arpc_channel *ch);
int sx_wait_relay_status(void);

#endif

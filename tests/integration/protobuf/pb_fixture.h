/*
 * The set-up test_pb_calls and test_pb_generated share: a server runtime and a
 * client runtime of two loops each, a server on 127.0.0.1:0 with the services the
 * test registers, and a channel to it over native or gRPC.  Failures abort through
 * the test asserts (test.h).
 */
#ifndef ARPC_TESTS_PB_FIXTURE_H
#define ARPC_TESTS_PB_FIXTURE_H

#include <stdbool.h>

#include <arpc/arpc.h>

#define PB_TIMEOUT_MS 10000 /* every call's deadline and every wait's bound */

typedef struct pb_fixture {
    bool grpc; /* the channel speaks gRPC (else native) */
    arpc_runtime *srv_rt;
    arpc_runtime *cli_rt;
    arpc_server *srv;
    arpc_channel *ch;
} pb_fixture;

/* Sets f->grpc from argv[1] ("grpc"), creates the runtimes and the server, calls
 * reg(f->srv) to register the test's services (it asserts itself), listens and
 * connects f->ch. */
void pb_fixture_start(pb_fixture *f, int argc, char **argv, void (*reg)(arpc_server *srv));

/* Destroys what pb_fixture_start() created. */
void pb_fixture_stop(pb_fixture *f);

/* @return call options with the PB_TIMEOUT_MS deadline, ARENA and ERROR_MESSAGE (each may
 * be NULL). */
arpc_call_opts pb_call_opts(arpc_arena *arena, arpc_buf *error_message);

/* Runs fn(job) in a coroutine on f's first client loop and waits (PB_TIMEOUT_MS at
 * most, else the test fails) until it calls arpc_wg_done(done); done is initialized
 * here, for one. */
void pb_run_in_coro(pb_fixture *f, arpc_coro_fn fn, void *job, arpc_wg *done);

#endif

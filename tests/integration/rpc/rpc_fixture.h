/*
 * Shared set-up of the RPC integration tests: runtimes, an in-process server
 * listening on 127.0.0.1 port 0, a channel to it, the stock handlers (`echo`,
 * `sleep`) and a helper that runs a function on a loop thread and waits for
 * it.  Every helper aborts the test on failure, so tests read straight.
 */
#ifndef ARPC_TEST_RPC_FIXTURE_H
#define ARPC_TEST_RPC_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/arpc.h>

typedef struct fx_method {
    const char *name;
    arpc_handler_fn fn;
    void *user_data;
} fx_method;

/* A runtime with `loops` loops (0 = one per CPU). */
arpc_runtime *fx_runtime(unsigned loops);

/* A server on `rt` with `methods` (terminated by a NULL name) registered,
 * listening on 127.0.0.1:0.  `opts` may be NULL. */
arpc_server *fx_server(arpc_runtime *rt, const arpc_server_opts *opts, const fx_method *methods);

/* "127.0.0.1:PORT" of `srv`, in `buf`. */
const char *fx_target(const arpc_server *srv, char *buf, size_t len);

/* A channel on `rt` to `srv`.  `opts` may be NULL. */
arpc_channel *fx_channel(arpc_runtime *rt, const arpc_server *srv, const arpc_channel_opts *opts);

/* Call options with `timeout_ms`. */
arpc_call_opts fx_timeout(int64_t timeout_ms);

/* `echo`: answers the request's bytes. */
int fx_handle_echo(arpc_request *req, void *user_data);

/* `sleep`: the payload is decimal milliseconds; sleeps (suspending only the
 * request's coroutine) and answers the payload. */
int fx_handle_sleep(arpc_request *req, void *user_data);

/* Fills `p` with a pattern that depends on `seed` and the position, so two
 * payloads of different seeds (or shifted bytes) never compare equal. */
void fx_fill(void *p, size_t len, uint32_t seed);

/* Runs `fn(arg)` on `loop`'s thread and waits until it has returned. */
void fx_run_on_loop(arpc_loop *loop, arpc_task_cb fn, void *arg);

/* True for the errors a call gets when its connection goes away. */
bool fx_is_conn_error(int rc);

#endif

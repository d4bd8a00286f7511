/*
 * Helpers shared by the fault tests: arpc-echo-server child processes (started,
 * signalled and reaped by PID only), in-process servers and channels to them,
 * call options, a record of asynchronous calls, and small predicates for
 * wait_until().  Raw native-protocol peers are in raw_peer.h.
 */
#ifndef ARPC_FAULT_UTIL_H
#define ARPC_FAULT_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <arpc/arpc.h>

/* One arpc-echo-server child process. */
typedef struct fault_proc {
    pid_t pid;
    int port;
} fault_proc;

/*
 * Starts build/bin/arpc-echo-server --listen `listen` --threads `threads` and
 * waits (bounded) for its "listening on HOST:PORT" line, which gives the port.
 * The child gets SIGKILL if the test process dies first.  Fails the test on error.
 */
void fault_echo_start(const char *listen, unsigned threads, fault_proc *out);

/* The same for any command line (argv[0] a path, argv NULL-terminated) that
 * prints "listening on HOST:PORT" first. */
void fault_tool_start(char *const *argv, fault_proc *out);

/* Runs this test's own binary again (/proc/self/exe) with `args` (at most 14,
 * NULL-terminated) as a child process of its own, for a role its main() picks
 * from them (a client to kill, say), and returns at once: the caller
 * synchronises on what the child does, not on its output (stdout is shared).
 * The child gets SIGKILL if the test process dies first; out->port is 0. */
void fault_self_start(char *const *args, fault_proc *out);

/* Sends `sig` to the child (by its PID). */
void fault_proc_signal(const fault_proc *p, int sig);

/* Waits until /proc/PID/stat shows the child in state `state` ('T': stopped) or,
 * with `negate`, in any other state.  @return true if it did within timeout_ms. */
bool fault_proc_wait_state(const fault_proc *p, char state, bool negate, int timeout_ms);

/* Waits (bounded) for the child to exit and returns its raw wait status; fails
 * the test if it does not exit within timeout_ms. */
int fault_proc_reap(fault_proc *p, int timeout_ms);

/* Record of one asynchronous call: completions are counted, so a second one
 * shows up as done == 2. */
typedef struct fault_calls fault_calls;

typedef struct fault_call {
    fault_calls *set;
    _Atomic int done;
    _Atomic int status;
    _Atomic int64_t end_ms;
    int64_t start_ms;
} fault_call;

struct fault_calls {
    fault_call *calls;
    size_t count;
    _Atomic size_t completed; /* completions, counting duplicates */
};

void fault_calls_init(fault_calls *set, size_t count);
void fault_calls_fini(fault_calls *set);

/* Starts call `index` of `set` with arpc_call_async; asserts it was accepted. */
void fault_call_start(fault_calls *set, size_t index, arpc_channel *ch, const char *method,
                      const char *payload, const arpc_call_opts *opts);

/* Starts every call of `set` the same way (fault_call_start for each index). */
void fault_calls_start_all(fault_calls *set, arpc_channel *ch, const char *method,
                           const char *payload, const arpc_call_opts *opts);

/* Call options with `timeout_ms` and the defaults otherwise. */
arpc_call_opts fault_call_opts(int64_t timeout_ms);

/* True once the set has seen `count` completions (a wait_until() predicate). */
bool fault_calls_all_done(void *set);

/* An in-process server on 127.0.0.1:0 serving `echo`; the runtime must outlive it. */
arpc_server *fault_echo_server(arpc_runtime *rt, const arpc_server_opts *opts);

/* The `echo` handler, for servers that register more methods. */
int fault_handle_echo(arpc_request *req, void *user_data);

/* One more method for fault_server(). */
typedef struct fault_method {
    const char *name;
    arpc_handler_fn fn;
} fault_method;

/* Like fault_echo_server(), with the methods of `more` (terminated by a NULL
 * name; user_data NULL) registered besides `echo`. */
arpc_server *fault_server(arpc_runtime *rt, const arpc_server_opts *opts, const fault_method *more);

/* The request's payload, a short decimal text such as a sleep in ms, copied
 * into `text` (NUL-terminated).  @return its length, or ARPC_EINVAL if it is
 * empty or does not fit in size - 1 bytes. */
int fault_request_text(arpc_request *req, char *text, size_t size);

/* A channel to 127.0.0.1:port with `opts`, or fault_channel_opts_init()'s
 * options if `opts` is NULL; fails the test on error. */
arpc_channel *fault_channel(arpc_runtime *rt, int port, const arpc_channel_opts *opts);

/* "127.0.0.1:PORT" into buf. */
void fault_addr(char *buf, size_t size, int port);

/* One echo call with `timeout_ms`; returns its status. */
int fault_echo_call(arpc_channel *ch, int64_t timeout_ms);

/* Echo calls until one succeeds, with wait_until(fault_echo_succeeds, &w, ms):
 * one call (1 s deadline) per poll; failures are counted for the report. */
typedef struct fault_echo_wait {
    arpc_channel *ch;
    int failures;
    int last_error;
} fault_echo_wait;

bool fault_echo_succeeds(void *wait);

/* Channel defaults for tests that are not about heartbeats: a heartbeat
 * timeout of 5 s instead of 1 s, so that a loaded machine (or a sanitizer
 * build) that delays a PONG by a second does not fail a call with
 * ARPC_EHEARTBEAT in a test about something else. */
void fault_channel_opts_init(arpc_channel_opts *opts);

/* True in ASan and TSan builds (they are slower; some timings scale). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FAULT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FAULT_SANITIZED 1
#endif
#endif

/* True in TSan builds alone: there every coroutine is also a TSan fiber,
 * which costs a server about 1 ms of CPU to create (test_kill9.c). */
#if defined(__SANITIZE_THREAD__)
#define FAULT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FAULT_TSAN 1
#endif
#endif

/* A runtime with `loops` loops; fails the test on error. */
arpc_runtime *fault_runtime(unsigned loops);

#endif

/*
 * Real gRPC peers for the interop tests: Debian's grpcio (python3-grpcio, run
 * with /usr/bin/python3) as a server (tests/interop/grpc/grpc_peer_server.py)
 * and as a client running named cases (grpc_peer_client.py).  Children are
 * started with pipes on their stdin and stdout, get SIGKILL if the test
 * process dies first, and are signalled and reaped by PID only.
 *
 * The line protocols (the "listening on" line, the server's "event ..." lines,
 * the client's "CASE ok" / "CASE FAIL: reason" lines and the shutdown case's
 * stdin hand-shake) are described at the top of each script.
 */
#ifndef ARPC_INTEROP_UTIL_H
#define ARPC_INTEROP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ctest's SKIP_RETURN_CODE for the interop tests. */
#define INTEROP_SKIP 77

/* One python child. */
typedef struct interop_proc {
    pid_t pid;
    int port;   /* a server's port, from its "listening on" line; 0 for a client */
    int out_fd; /* read end of the child's stdout, or -1 */
    int in_fd;  /* write end of the child's stdin, or -1 */
} interop_proc;

/*
 * Returns NULL when the grpcio peers can run, else why not (a Debian package
 * is missing: the build's stub generation wrote the reason).
 * Thread: any.  Suspends: no.
 */
const char *interop_grpc_missing(void);

/* Exits the test with INTEROP_SKIP and the reason when the peers cannot run. */
void interop_require_grpc(void);

/*
 * Starts grpc_peer_server.py --listen 127.0.0.1:0 followed by `args` (a
 * NULL-terminated list of extra flags, or NULL) and waits (bounded) for its
 * "listening on HOST:PORT" line.  out->out_fd then carries its event lines.
 * Fails the test on error.
 */
void interop_start_grpc_peer(const char *const *args, interop_proc *out);

/*
 * Starts build/bin/arpc-echo-server --listen 127.0.0.1:0 followed by `args`
 * (NULL-terminated flags, or NULL) with its stdout and stderr on out->out_fd,
 * and waits (bounded) for its "listening on" line: its later lines (the
 * shutdown's counters on stderr) are read with interop_wait_line.  Fails the
 * test on error.
 */
void interop_start_echo_server(const char *const *args, interop_proc *out);

/*
 * Starts /usr/bin/python3 -B followed by `args` (the script and its flags, NULL-terminated)
 * with pipes on its stdin and stdout; with `who` not NULL, waits (bounded) for its
 * "listening on HOST:PORT" line (out->port), failing the test without it.  For peers other
 * than grpcio's (the Thrift ones, tests/interop/thrift/).
 */
void interop_start_python(const char *const *args, const char *who, interop_proc *out);

/*
 * Starts grpc_peer_client.py --target `target` followed by `args` (flags,
 * then case names; NULL-terminated) and returns at once: read its lines
 * from out->out_fd (interop_wait_line), write to its stdin with
 * interop_send_line.  Fails the test on error.
 */
void interop_start_grpc_client(const char *target, const char *const *args, interop_proc *out);

/*
 * Runs grpc_peer_client.py to its end within `timeout_ms`, copying its lines
 * to stderr.  @return its exit code: 0 when every case printed "CASE ok".
 * Fails the test if it does not exit in time or is killed by a signal.
 */
int interop_run_grpc_client(const char *target, const char *const *args, int timeout_ms);

/* The same for another client script of tests/interop/grpc/ (`script` its file name),
 * run as `python -B SCRIPT --stubs DIR --target TARGET args...`. */
int interop_run_client_script(const char *script, const char *target, const char *const *args,
                              int timeout_ms);

/*
 * Reads the child's stdout until a line starting with `prefix` arrives
 * (copied into `line` if not NULL); other lines are copied to stderr.
 * @return true if it came within `timeout_ms`, false on timeout or end of file.
 */
bool interop_wait_line(interop_proc *p, const char *prefix, char *line, size_t size,
                       int timeout_ms);

/* Writes `text` and a newline to the child's stdin; fails the test on error. */
void interop_send_line(interop_proc *p, const char *text);

/* Sends `sig` to the child, by its PID. */
void interop_signal(const interop_proc *p, int sig);

/*
 * The frozen peer: SIGSTOP, then waits until /proc shows the child stopped
 * (state 'T'), so the test's clock starts on a peer that is really frozen.
 * interop_thaw sends SIGCONT and waits until it runs again.  Both fail the
 * test if the state does not change within 5 s.
 */
void interop_freeze(const interop_proc *p);
void interop_thaw(const interop_proc *p);

/*
 * Waits (bounded) for the child to exit, closes its pipes and returns its
 * exit code (128 + signal if killed).  Fails the test on timeout.
 */
int interop_reap(interop_proc *p, int timeout_ms);

/* SIGKILL and reap: cleanup after a failure path.  No-op once reaped. */
void interop_kill(interop_proc *p);

/* "127.0.0.1:PORT" into buf. */
void interop_addr(char *buf, size_t size, int port);

/* EchoMsg{data} of proto/arpc/echo.proto (field 1, length-delimited) into buf, which holds
 * len + 11 bytes; returns its length. */
size_t interop_echo_msg(uint8_t *buf, const void *data, size_t len);

#endif

#!/usr/bin/python3
"""A real gRPC peer for arpc's interop tests: grpcio serving arpc.echo.Echo
(proto/arpc/echo.proto) and grpc.health.v1.Health/Check.

  /usr/bin/python3 grpc_peer_server.py --listen 127.0.0.1:0 --stubs DIR [options]

Prints "listening on HOST:PORT" once serving, then one line per event (all
lines flushed, write errors ignored so a reader that goes away costs nothing):
  event sleep-begin ACTIVE     a Sleep call started; ACTIVE Sleep calls now run
  event sleep-end ACTIVE       a Sleep call answered or was cancelled
  event sleep-canceled MS LEFT a Sleep call ended by its client (RST_STREAM,
                               a closed connection) or its deadline, MS
                               milliseconds after it began; LEFT is
                               context.time_remaining() then, in ms, or "none"
                               for a call without a deadline (so only its
                               client can have ended it)
  event draining               SIGTERM/SIGINT seen: server.stop(grace) returned,
                               no new calls are accepted, running ones go on
  event stopped SECONDS        every call finished (or grace ran out) SECONDS
                               after draining began; exit 0
  event call METHOD DATA       (--log-calls) the servicer began METHOD (Echo or
                               Sleep) with that request data (latin1)
  event stream-canceled METHOD a Stream or Count call (METHOD) ended before its
                               servicer finished: the client canceled it, its
                               deadline passed or its connection went

Echo answers the request message as it came and copies every request metadata
entry whose key starts with "x-echo-" into the response's initial metadata
(--echo-metadata initial, the default), its trailing metadata (trailing) or
both.  Sleep's data is decimal milliseconds (0..3600000, else
INVALID_ARGUMENT); the answer (the same message) comes after that long, or
never if the call is cancelled or expires first.
Stream echoes every message as it comes (bidi), or with the request metadata
"x-stream-mode: concat" answers once at the half-close with every message's
data concatenated (client streaming); it copies x-echo-* request metadata
into its initial metadata, as Echo does by default.  Count's data is decimal
N: N messages "1".."N" (server streaming).
Health/Check answers SERVING for "" and "arpc.echo.Echo", NOT_FOUND otherwise.
With --tls-cert/--tls-key the port is TLS (grpc.ssl_server_credentials); with
--tls-client-ca too, a client certificate from that CA is required (mutual TLS).
"""
import argparse
import os
import signal
import sys
import threading
import time
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import load_stubs  # noqa: E402

import grpc  # noqa: E402


def say(line):
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--stubs", default="", help="directory of the generated stubs")
    p.add_argument("--max-recv", type=int, default=4 * 1024 * 1024,
                   help="grpc.max_receive_message_length (gRPC's default 4 MiB)")
    p.add_argument("--max-send", type=int, default=-1,
                   help="grpc.max_send_message_length (-1: unlimited, gRPC's default)")
    p.add_argument("--grace", type=float, default=5.0,
                   help="seconds running calls get after SIGTERM")
    p.add_argument("--workers", type=int, default=32, help="handler threads")
    p.add_argument("--echo-metadata", choices=("initial", "trailing", "both"),
                   default="initial")
    p.add_argument("--log-calls", action="store_true",
                   help="an event line each time the servicer begins Echo or Sleep")
    p.add_argument("--tls-cert", default=None,
                   help="serve TLS with this PEM chain (and --tls-key): ssl_server_credentials")
    p.add_argument("--tls-key", default=None)
    p.add_argument("--tls-client-ca", default=None,
                   help="mutual TLS: require a client certificate from this PEM CA")
    p.add_argument("--option", action="append", default=[], metavar="KEY=INT",
                   help="extra integer server channel argument, e.g. "
                        "grpc.http2.min_ping_interval_without_data_ms=1000")
    return p.parse_args()


def server_options(args):
    opts = [("grpc.max_receive_message_length", args.max_recv),
            ("grpc.max_send_message_length", args.max_send),
            ("grpc.so_reuseport", 0)]
    for kv in args.option:
        key, _, value = kv.partition("=")
        opts.append((key, int(value)))
    return opts


class Sleeps:
    """Counts running Sleep calls for the event lines."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0

    def change(self, delta, name):
        with self.lock:
            self.active += delta
            say("event %s %d" % (name, self.active))


def watch_stream(context, method):
    """Says "event stream-canceled METHOD" if the call ends (grpcio runs the
    callback at its end, whatever ends it) before the servicer set the
    returned event: it did not finish by itself (a return or an abort)."""
    finished = threading.Event()

    def on_end():
        if not finished.is_set():
            say("event stream-canceled %s" % method)

    context.add_callback(on_end)
    return finished


def expired(context):
    """Whether the call's deadline passed.  When grpcio's own timer ends a call
    first, the request iterator ends as at a half-close (no error, the call
    still active): this tells the two apart."""
    left = context.time_remaining()
    return left is not None and left <= 0


def make_echo_servicer(echo_pb2, echo_pb2_grpc, args, sleeps):
    class Echo(echo_pb2_grpc.EchoServicer):
        def Echo(self, request, context):
            if args.log_calls:
                say("event call Echo %s" % request.data.decode("latin1"))
            echoed = tuple((k, v) for k, v in context.invocation_metadata()
                           if k.startswith("x-echo-"))
            if echoed and args.echo_metadata in ("initial", "both"):
                context.send_initial_metadata(echoed)
            if echoed and args.echo_metadata in ("trailing", "both"):
                context.set_trailing_metadata(echoed)
            return request

        def Sleep(self, request, context):
            text = request.data.decode("latin1")
            if args.log_calls:
                say("event call Sleep %s" % text)
            if not text.isdigit() or int(text) > 3600000:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "Sleep wants decimal milliseconds (0..3600000)")
            ms = int(text)
            done = threading.Event()
            context.add_callback(done.set)  # runs when the call ends (cancel, deadline)
            sleeps.change(1, "sleep-begin")
            began = time.monotonic()
            try:
                done.wait(ms / 1000.0)
                if not context.is_active():
                    # grpcio gives a call without a deadline one in the far
                    # future (about 2^63 ns), not None.
                    left = context.time_remaining()
                    say("event sleep-canceled %.0f %s" % (
                        (time.monotonic() - began) * 1000,
                        "none" if left is None or left > 1e9 else "%.0f" % (left * 1000)))
            finally:
                sleeps.change(-1, "sleep-end")
            return request

        def Stream(self, request_iterator, context):
            finished = watch_stream(context, "Stream")
            echoed = tuple((k, v) for k, v in context.invocation_metadata()
                           if k.startswith("x-echo-"))
            if echoed:
                context.send_initial_metadata(echoed)
            concat = dict(context.invocation_metadata()).get("x-stream-mode") == "concat"
            if not concat:
                for req in request_iterator:
                    yield req
                if not expired(context):
                    finished.set()
                return
            data = b"".join(r.data for r in request_iterator)
            if not expired(context):
                finished.set()
                yield echo_pb2.EchoMsg(data=data)

        def Count(self, request, context):
            finished = watch_stream(context, "Count")
            text = request.data.decode("latin1")
            if not text.isdigit() or int(text) > 100000:
                finished.set()
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "Count wants decimal N (0..100000)")
            for i in range(1, int(text) + 1):
                yield echo_pb2.EchoMsg(data=b"%d" % i)
            finished.set()

    return Echo()


def make_health_handler(health_pb2):
    """grpc.health.v1.Health/Check as a generic handler (Debian ships no
    grpcio-health-checking); messages from grpc-proto's health.proto."""
    serving = ("", "arpc.echo.Echo")

    def check(request, context):
        if request.service not in serving:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVING)

    handler = grpc.unary_unary_rpc_method_handler(
        check, request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString)
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": handler})


def add_port(server, args):
    """The listener: plaintext, or TLS with --tls-cert/--tls-key (mutual with
    --tls-client-ca: a client certificate from that CA is required)."""
    if args.tls_cert is None:
        return server.add_insecure_port(args.listen)
    with open(args.tls_key, "rb") as f:
        key = f.read()
    with open(args.tls_cert, "rb") as f:
        cert = f.read()
    ca = None
    if args.tls_client_ca is not None:
        with open(args.tls_client_ca, "rb") as f:
            ca = f.read()
    creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                        require_client_auth=ca is not None)
    return server.add_secure_port(args.listen, creds)


def main():
    args = parse_args()
    echo_pb2, echo_pb2_grpc, health_pb2 = load_stubs(args.stubs)
    # Block the stop signals before grpcio starts its threads, so they all
    # inherit the mask and only the sigwait() below takes them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers),
                         options=server_options(args))
    echo_pb2_grpc.add_EchoServicer_to_server(
        make_echo_servicer(echo_pb2, echo_pb2_grpc, args, Sleeps()), server)
    server.add_generic_rpc_handlers((make_health_handler(health_pb2),))
    host = args.listen.rsplit(":", 1)[0]
    port = add_port(server, args)
    if port == 0:
        sys.stderr.write("cannot listen on %s\n" % args.listen)
        return 1
    server.start()
    say("listening on %s:%d" % (host, port))
    signal.sigwait(stop_signals)
    started = time.monotonic()
    stopped = server.stop(args.grace)  # returns at once: new calls are refused from here
    say("event draining")
    stopped.wait()
    say("event stopped %.3f" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""A real gRPC client for arpc's interop tests: grpcio running named cases
against a server of arpc.echo.Echo (proto/arpc/echo.proto).

  /usr/bin/python3 grpc_peer_client.py --target HOST:PORT --stubs DIR CASE...

Prints one line per case, "CASE ok" or "CASE FAIL: reason", and exits 0 only
if every case passed (2 on bad usage, 77 when the stubs are missing); each
case's duration goes to stderr.  Cases run in the order given, each on a
channel of its own.  With --tls-ca every channel is TLS
(grpc.ssl_channel_credentials trusting that CA; --tls-cert/--tls-key: mutual
TLS; --tls-server-name: grpc.ssl_target_name_override).

  unary          Echo answers the message as it came
  metadata       x-echo-* request metadata (a text key and a -bin key) comes
                 back in the response metadata (--metadata-from initial|
                 trailing), other keys do not
  deadline       Sleep longer than the deadline -> DEADLINE_EXCEEDED, in time
  unimplemented  an unknown method and an unknown service -> UNIMPLEMENTED
  overlimit      a message one byte over --server-max-recv -> RESOURCE_EXHAUSTED,
                 then a normal call on the same channel -> OK
  big            a round trip of a message of exactly --big-bytes (4 MiB: the
                 default limit, which it must fit), channel limits set to it
  concurrent     --concurrent (1000) calls in flight at once (futures), each
                 answered with its own payload
  bidi           Stream: --stream-messages (64) messages of --stream-bytes (64 KiB)
                 sent by a generator while the answers are read, each answer
                 the message sent; more than a window each way (flow control)
  clientstream   Stream with "x-stream-mode: concat": 20 messages, one answer
                 holding them all
  serverstream   Count("1000"): 1000 answers "1".."1000", then OK; Count("x")
                 -> INVALID_ARGUMENT
  streamcancel   streams canceled by this client mid-stream, the connection kept.
                 Protocol with the harness:
                   1. Count("100000000") read for 10 answers, then cancelled
                      (the server is left writing into a full window); a
                      Stream (bidi) sent one message, read its echo, then
                      cancelled (the server is left waiting to read); each
                      must end CANCELLED here; then an Echo on the same
                      channel (after the RST_STREAMs on the connection);
                   2. prints "streamcancel canceled 2" and waits for a line
                      on stdin, the channel open (the harness checks that
                      the server ended both handlers meanwhile);
                   3. "streamcancel ok" or "streamcancel FAIL: ...".
                 No line on stdin within 30 s fails the case.
  health         grpc.health.v1.Health/Check: "" -> SERVING, an unknown
                 service -> NOT_FOUND
  stalled        one Echo with a --timeout-ms deadline must fail with
                 DEADLINE_EXCEEDED (a frozen server: the harness SIGSTOPs it)
  shutdown       calls in flight when the server shuts down finish; new ones
                 get UNAVAILABLE.  Protocol with the harness:
                   1. starts --inflight (4) Sleep(--sleep-ms, 1500) calls and
                      prints "shutdown started N";
                   2. the harness waits until the server runs them (e.g. the
                      python server's "event sleep-begin N" line), begins the
                      server's graceful shutdown (SIGTERM) and waits until it
                      drains ("event draining"), then writes one line to this
                      script's stdin;
                   3. once the server's GOAWAY moved the channel off READY
                      (at most 5 s), a new Echo must fail with UNAVAILABLE and every Sleep
                      must succeed; then "shutdown ok" or "shutdown FAIL: ...".
                 No line on stdin within 20 s fails the case.
  frozen         a frozen client noticed by the server.  Protocol with the harness:
                   1. a Sleep(--sleep-ms) call must succeed: the server's
                      heartbeat PINGs during it (every 500 ms of silence) are
                      taken without a GOAWAY;
                   2. starts --inflight Sleep(--sleep-ms) calls, prints
                      "frozen started N" and waits for a line on stdin (the
                      harness SIGSTOPs this process meanwhile, sees the server
                      close the connection, and SIGCONTs it);
                   3. every one of those Sleeps must have failed with
                      UNAVAILABLE (the connection was closed under them);
                      then "frozen ok" or "frozen FAIL: ...".
  cancel         a call cancelled by its client.  Protocol with the harness:
                   1. an Echo, then one Sleep(--cancel-data) with NO deadline
                      (a future); prints "cancel started" and waits for a line
                      on stdin (the harness sees the server run it);
                   2. future.cancel() (grpcio sends RST_STREAM(CANCEL)); the
                      future must end cancelled; prints "cancel sent" and waits
                      for a line on stdin (the harness checks the server side);
                   3. an Echo on the same channel must succeed; then
                      "cancel ok" or "cancel FAIL: ...".
"""
import argparse
import os
import queue
import select
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import HEALTH_CHECK, load_stubs  # noqa: E402

import grpc  # noqa: E402

MiB = 1024 * 1024
CASES = ("unary", "metadata", "deadline", "unimplemented", "overlimit", "big",
         "concurrent", "health", "stalled", "shutdown", "frozen", "cancel", "bidi",
         "clientstream", "serverstream", "streamcancel")


class Fail(Exception):
    pass


def expect(cond, fmt, *a):
    if not cond:
        raise Fail(fmt % a)


def expect_code(err, want, what):
    expect(isinstance(err, grpc.RpcError), "%s: expected %s, got %r", what, want.name, err)
    expect(err.code() == want, "%s: expected %s, got %s (%s)", what, want.name,
           err.code().name, err.details())


def call_error(fn, *a, **kw):
    """Runs a call that must fail; returns its grpc.RpcError."""
    try:
        rsp = fn(*a, **kw)
    except grpc.RpcError as err:
        return err
    raise Fail("expected an error, got an answer of %d bytes" % len(getattr(rsp, "data", b"")))


def expect_cancelled(call, what):
    """The rest of a cancelled streaming call must raise CANCELLED."""
    try:
        for _ in call:
            pass
    except grpc.RpcError as err:
        expect_code(err, grpc.StatusCode.CANCELLED, what + " after cancel()")
        return
    raise Fail("%s ended normally after cancel()" % what)


def left_ready(ch, timeout):
    """Waits until the channel's connectivity is no longer READY."""
    moved = threading.Event()

    def on_state(state):
        if state != grpc.ChannelConnectivity.READY:
            moved.set()

    ch.subscribe(on_state, try_to_connect=False)
    try:
        return moved.wait(timeout)
    finally:
        ch.unsubscribe(on_state)


def msg_of_size(echo_pb2, size):
    """An EchoMsg whose serialized form is exactly `size` bytes."""
    for n in range(max(size - 6, 0), size + 1):
        m = echo_pb2.EchoMsg(data=bytes(range(256)) * (n // 256) + b"x" * (n % 256))
        if m.ByteSize() == size:
            return m
    raise Fail("no EchoMsg of %d bytes" % size)


class Client:
    def __init__(self, args, echo_pb2, echo_pb2_grpc, health_pb2):
        self.args = args
        self.pb = echo_pb2
        self.grpc_mod = echo_pb2_grpc
        self.health = health_pb2

    def channel(self, *options):
        a = self.args
        if a.tls_ca is None:
            return grpc.insecure_channel(a.target, options=list(options))
        # TLS: grpcio's own credentials, the files gen_certs.sh made (docs/tls.md).
        with open(a.tls_ca, "rb") as f:
            ca = f.read()
        key = cert = None
        if a.tls_cert is not None:
            with open(a.tls_key, "rb") as f:
                key = f.read()
            with open(a.tls_cert, "rb") as f:
                cert = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                             certificate_chain=cert)
        options = list(options)
        if a.tls_server_name is not None:
            options.append(("grpc.ssl_target_name_override", a.tls_server_name))
        return grpc.secure_channel(a.target, creds, options=options)

    def stub(self, ch):
        return self.grpc_mod.EchoStub(ch)

    def case_unary(self):
        with self.channel() as ch:
            rsp = self.stub(ch).Echo(self.pb.EchoMsg(data=b"hello \x00\xff"), timeout=10)
            expect(rsp.data == b"hello \x00\xff", "answer %r", rsp.data)

    def case_metadata(self):
        sent = (("x-echo-text", "hello"), ("x-echo-blob-bin", b"\x00\x01\xfe\xff"),
                ("other-key", "not echoed"))
        with self.channel() as ch:
            rsp, call = self.stub(ch).Echo.with_call(self.pb.EchoMsg(data=b"m"),
                                                     metadata=sent, timeout=10)
            expect(rsp.data == b"m", "answer %r", rsp.data)
            got = (call.initial_metadata() if self.args.metadata_from == "initial"
                   else call.trailing_metadata())
            got = dict(got or ())
            expect(got.get("x-echo-text") == "hello", "x-echo-text: %r in %r",
                   got.get("x-echo-text"), got)
            expect(got.get("x-echo-blob-bin") == b"\x00\x01\xfe\xff", "x-echo-blob-bin: %r",
                   got.get("x-echo-blob-bin"))
            expect("other-key" not in got, "other-key came back")

    def case_deadline(self):
        with self.channel() as ch:
            stub = self.stub(ch)
            stub.Echo(self.pb.EchoMsg(data=b"warm"), timeout=10)  # connected first
            start = time.monotonic()
            err = call_error(stub.Sleep, self.pb.EchoMsg(data=b"3000"), timeout=0.3)
            took = time.monotonic() - start
            expect_code(err, grpc.StatusCode.DEADLINE_EXCEEDED, "Sleep(3000) timeout 0.3 s")
            expect(took < 2.0, "DEADLINE_EXCEEDED after %.2f s", took)

    def case_unimplemented(self):
        with self.channel() as ch:
            for path in ("/arpc.echo.Echo/NoSuchMethod", "/no.such.Service/Echo"):
                fn = ch.unary_unary(path)  # raw bytes both ways
                err = call_error(fn, b"", timeout=10)
                expect_code(err, grpc.StatusCode.UNIMPLEMENTED, path)

    def case_overlimit(self):
        size = self.args.server_max_recv + 1
        with self.channel(("grpc.max_send_message_length", -1)) as ch:
            stub = self.stub(ch)
            err = call_error(stub.Echo, msg_of_size(self.pb, size), timeout=20)
            expect_code(err, grpc.StatusCode.RESOURCE_EXHAUSTED, "%d-byte message" % size)
            rsp = stub.Echo(self.pb.EchoMsg(data=b"after"), timeout=10)
            expect(rsp.data == b"after", "answer after the over-limit call %r", rsp.data)

    def case_big(self):
        size = self.args.big_bytes
        with self.channel(("grpc.max_send_message_length", size),
                          ("grpc.max_receive_message_length", size)) as ch:
            msg = msg_of_size(self.pb, size)
            rsp = self.stub(ch).Echo(msg, timeout=20)
            expect(rsp.data == msg.data, "answer of %d bytes differs", len(rsp.data))

    def case_concurrent(self):
        n = self.args.concurrent
        with self.channel() as ch:
            stub = self.stub(ch)
            futs = [stub.Echo.future(self.pb.EchoMsg(data=b"call %d" % i), timeout=20)
                    for i in range(n)]
            for i, f in enumerate(futs):
                rsp = f.result()
                expect(rsp.data == b"call %d" % i, "call %d answered %r", i, rsp.data)

    def case_bidi(self):
        n, size = self.args.stream_messages, self.args.stream_bytes
        msgs = [self.pb.EchoMsg(data=bytes([i % 256]) * size) for i in range(n)]
        with self.channel() as ch:
            got = 0
            for i, rsp in enumerate(self.stub(ch).Stream(iter(msgs), timeout=30)):
                expect(i < n, "more answers than messages")
                expect(rsp.data == msgs[i].data, "answer %d differs", i)
                got += 1
            expect(got == n, "%d answers of %d", got, n)

    def case_clientstream(self):
        parts = [b"part %d;" % i for i in range(20)]
        with self.channel() as ch:
            fn = ch.stream_unary("/arpc.echo.Echo/Stream",
                                 request_serializer=self.pb.EchoMsg.SerializeToString,
                                 response_deserializer=self.pb.EchoMsg.FromString)
            rsp = fn(iter(self.pb.EchoMsg(data=p) for p in parts),
                     metadata=(("x-stream-mode", "concat"),), timeout=10)
            expect(rsp.data == b"".join(parts), "answer %r", rsp.data)

    def case_serverstream(self):
        with self.channel() as ch:
            stub = self.stub(ch)
            got = [r.data for r in stub.Count(self.pb.EchoMsg(data=b"1000"), timeout=20)]
            expect(got == [b"%d" % i for i in range(1, 1001)], "%d answers, first %r",
                   len(got), got[:3])
            err = None
            try:
                list(stub.Count(self.pb.EchoMsg(data=b"x"), timeout=10))
            except grpc.RpcError as e:
                err = e
            expect_code(err, grpc.StatusCode.INVALID_ARGUMENT, "Count(x)")

    def case_streamcancel(self):
        with self.channel() as ch:
            stub = self.stub(ch)
            count = stub.Count(self.pb.EchoMsg(data=b"100000000"), timeout=60)
            for i in range(1, 11):
                rsp = next(count)
                expect(rsp.data == b"%d" % i, "Count answer %d: %r", i, rsp.data)
            count.cancel()
            expect_cancelled(count, "Count")

            sent = queue.Queue()
            bidi = stub.Stream(iter(sent.get, None), timeout=60)
            sent.put(self.pb.EchoMsg(data=b"one"))
            rsp = next(bidi)
            expect(rsp.data == b"one", "Stream answer %r", rsp.data)
            bidi.cancel()
            expect_cancelled(bidi, "Stream")
            sent.put(None)  # ends the request generator's thread

            rsp = stub.Echo(self.pb.EchoMsg(data=b"after"), timeout=10)
            expect(rsp.data == b"after", "Echo after the cancels %r", rsp.data)
            print("streamcancel canceled 2", flush=True)
            ready, _, _ = select.select([sys.stdin], [], [], 30)
            expect(ready and sys.stdin.readline() != "", "no line from the harness on stdin")

    def case_health(self):
        with self.channel() as ch:
            check = ch.unary_unary(
                HEALTH_CHECK,
                request_serializer=self.health.HealthCheckRequest.SerializeToString,
                response_deserializer=self.health.HealthCheckResponse.FromString)
            rsp = check(self.health.HealthCheckRequest(service=""), timeout=10)
            expect(rsp.status == self.health.HealthCheckResponse.SERVING, "status %d",
                   rsp.status)
            err = call_error(check, self.health.HealthCheckRequest(service="no.such.Service"),
                             timeout=10)
            expect_code(err, grpc.StatusCode.NOT_FOUND, "unknown service")

    def case_stalled(self):
        with self.channel() as ch:
            t = self.args.timeout_ms / 1000.0
            start = time.monotonic()
            err = call_error(self.stub(ch).Echo, self.pb.EchoMsg(data=b"s"), timeout=t)
            took = time.monotonic() - start
            expect_code(err, grpc.StatusCode.DEADLINE_EXCEEDED, "Echo to a frozen server")
            expect(took < t + 2.0, "DEADLINE_EXCEEDED after %.2f s", took)

    def case_shutdown(self):
        n, ms = self.args.inflight, self.args.sleep_ms
        with self.channel() as ch:
            stub = self.stub(ch)
            stub.Echo(self.pb.EchoMsg(data=b"warm"), timeout=10)
            futs = [stub.Sleep.future(self.pb.EchoMsg(data=b"%d" % ms), timeout=ms / 1000.0 + 20)
                    for _ in range(n)]
            print("shutdown started %d" % n, flush=True)
            ready, _, _ = select.select([sys.stdin], [], [], 20)
            expect(ready and sys.stdin.readline() != "", "no line from the harness on stdin")
            # The server's GOAWAY is on its way: a call sent before it lands
            # would race it, so wait (bounded) until it moved the channel off
            # READY.  If that never happens, the call below still decides.
            left_ready(ch, 5.0)
            err = call_error(stub.Echo, self.pb.EchoMsg(data=b"late"), timeout=10)
            expect_code(err, grpc.StatusCode.UNAVAILABLE, "a new call while draining")
            for i, f in enumerate(futs):
                try:
                    f.result()
                except grpc.RpcError as e:
                    raise Fail("in-flight Sleep %d: %s (%s)" % (i, e.code().name, e.details()))

    def case_frozen(self):
        n, ms = self.args.inflight, self.args.sleep_ms
        with self.channel() as ch:
            stub = self.stub(ch)
            stub.Sleep(self.pb.EchoMsg(data=b"%d" % ms), timeout=ms / 1000.0 + 20)
            futs = [stub.Sleep.future(self.pb.EchoMsg(data=b"%d" % ms), timeout=ms / 1000.0 + 20)
                    for _ in range(n)]
            print("frozen started %d" % n, flush=True)
            ready, _, _ = select.select([sys.stdin], [], [], 20)
            expect(ready and sys.stdin.readline() != "", "no line from the harness on stdin")
            for i, f in enumerate(futs):
                try:
                    f.result()
                    raise Fail("Sleep %d succeeded: its connection was not closed" % i)
                except grpc.RpcError as e:
                    expect_code(e, grpc.StatusCode.UNAVAILABLE, "Sleep %d" % i)

    def case_cancel(self):
        with self.channel() as ch:
            stub = self.stub(ch)
            stub.Echo(self.pb.EchoMsg(data=b"warm"), timeout=10)
            fut = stub.Sleep.future(self.pb.EchoMsg(data=self.args.cancel_data.encode()))
            print("cancel started", flush=True)
            wait_harness()
            expect(fut.cancel(), "future.cancel() refused: the call had ended (%r)", fut)
            expect(fut.cancelled(), "the future is not cancelled")
            try:
                fut.result(timeout=10)
                raise Fail("the cancelled Sleep answered")
            except grpc.FutureCancelledError:
                pass
            print("cancel sent", flush=True)
            wait_harness()
            rsp = stub.Echo(self.pb.EchoMsg(data=b"after"), timeout=10)
            expect(rsp.data == b"after", "answer after the cancel %r", rsp.data)


def wait_harness():
    """Waits (at most 20 s) for one line from the harness on stdin."""
    ready, _, _ = select.select([sys.stdin], [], [], 20)
    expect(ready and sys.stdin.readline() != "", "no line from the harness on stdin")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", required=True)
    p.add_argument("--stubs", default="")
    p.add_argument("--metadata-from", choices=("initial", "trailing"), default="initial")
    p.add_argument("--server-max-recv", type=int, default=4 * MiB)
    p.add_argument("--big-bytes", type=int, default=4 * MiB)
    p.add_argument("--concurrent", type=int, default=1000)
    p.add_argument("--timeout-ms", type=int, default=1000)
    p.add_argument("--inflight", type=int, default=4)
    p.add_argument("--sleep-ms", type=int, default=1500)
    p.add_argument("--cancel-data", default="60000",
                   help="the cancel case's Sleep request data")
    p.add_argument("--stream-messages", type=int, default=64)
    p.add_argument("--stream-bytes", type=int, default=64 * 1024)
    p.add_argument("--tls-ca", default=None,
                   help="call over TLS, trusting this PEM CA (ssl_channel_credentials)")
    p.add_argument("--tls-cert", default=None, help="with --tls-key: mutual TLS")
    p.add_argument("--tls-key", default=None)
    p.add_argument("--tls-server-name", default=None,
                   help="the name the server's certificate must carry (default: the target's)")
    p.add_argument("cases", nargs="+", metavar="CASE", help=" ".join(CASES))
    args = p.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None) or (
            args.tls_cert is not None and args.tls_ca is None):
        p.error("--tls-cert and --tls-key go together, with --tls-ca")
    for c in args.cases:
        if c not in CASES:
            p.error("unknown case %r (cases: %s)" % (c, " ".join(CASES)))
    return args


def main():
    args = parse_args()
    client = Client(args, *load_stubs(args.stubs))
    failed = 0
    for case in args.cases:
        start = time.monotonic()
        try:
            getattr(client, "case_" + case)()
            print("%s ok" % case, flush=True)
            sys.stderr.write("%s: %.0f ms\n" % (case, (time.monotonic() - start) * 1000))
        except Fail as e:
            failed += 1
            print("%s FAIL: %s" % (case, e), flush=True)
        except grpc.RpcError as e:
            failed += 1
            print("%s FAIL: %s: %s" % (case, e.code().name, e.details()), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

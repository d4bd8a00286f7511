"""The Thrift peer of the interop tests (tests/interop/interop_thrift.c), Debian's python3-thrift
with stubs generated from proto/arpc/echo.thrift (gen_stubs.sh).  Run with /usr/bin/python3 -B.

  thrift_peer.py --stubs DIR --serve nonblocking|threaded
      serves Echo on 127.0.0.1 (TNonblockingServer, or TThreadedServer over TFramedTransport,
      both with TBinaryProtocol) and prints "listening on 127.0.0.1:PORT".
  thrift_peer.py --stubs DIR --target HOST:PORT CASE...
      runs each case against the server at HOST:PORT and prints "CASE ok" or
      "CASE FAIL: reason"; exits 0 when every case passed.
"""
import argparse
import socket
import struct
import sys
import time


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--serve", choices=["nonblocking", "threaded"])
    ap.add_argument("--target")
    ap.add_argument("cases", nargs="*")
    return ap.parse_args()


args = parse()
sys.path.insert(0, args.stubs)
from thrift.Thrift import TApplicationException, TMessageType  # noqa: E402
from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402
from arpc_echo import Echo  # noqa: E402


class Handler:
    def echo(self, data):
        return data

    def sleep(self, ms):
        time.sleep(ms / 1000.0)
        return str(ms).encode()


class OnceSocket(TSocket.TServerSocket):
    """Listens once, so the port is known before serve() (which listens again)."""

    def listen(self):
        if self.handle is None:
            super().listen()


def serve(kind):
    sock = OnceSocket(host="127.0.0.1", port=0)
    sock.listen()
    port = sock.handle.getsockname()[1]
    proc = Echo.Processor(Handler())
    pf = TBinaryProtocol.TBinaryProtocolFactory()
    if kind == "nonblocking":
        from thrift.server import TNonblockingServer
        server = TNonblockingServer.TNonblockingServer(proc, sock, pf, pf, threads=16)
    else:
        from thrift.server import TServer
        server = TServer.TThreadedServer(proc, sock, TTransport.TFramedTransportFactory(), pf,
                                         daemon=True)
    print("listening on 127.0.0.1:%d" % port, flush=True)
    server.serve()


def connect(strict=True):
    host, port = args.target.rsplit(":", 1)
    sock = TSocket.TSocket(host, int(port))
    sock.setTimeout(10000)
    tr = TTransport.TFramedTransport(sock)
    proto = TBinaryProtocol.TBinaryProtocol(tr, strictRead=strict, strictWrite=strict)
    tr.open()
    return tr, proto


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def calls(strict):
    tr, proto = connect(strict)
    c = Echo.Client(proto)
    check(c.echo(b"hello") == b"hello", "echo")
    big = bytes(range(256)) * 400
    check(c.echo(big) == big, "100 KB echo")
    check(c.echo(b"") == b"", "empty echo")
    check(c.sleep(20) == b"20", "sleep")
    tr.close()


def case_strict():
    calls(True)


def case_nonstrict():
    calls(False)


def encode_calls(specs, first_seqid):
    """The framed bytes of the calls in specs [(name, arg)], seqids from first_seqid."""
    mem = TTransport.TMemoryBuffer()
    framed = TTransport.TFramedTransport(mem)
    c = Echo.Client(TBinaryProtocol.TBinaryProtocol(framed))
    c._seqid = first_seqid
    for name, arg in specs:
        getattr(c, "send_" + name)(arg)  # one frame each (send_* flushes)
        c._seqid += 1
    return mem.getvalue()


def case_pipelined():
    """Three sleeps and an echo in one write: handlers that run side by side finish in another
    order (the echo first), and the answers still come in request order with their seqids."""
    host, port = args.target.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    specs = [("sleep", 600), ("sleep", 300), ("sleep", 600), ("echo", b"last")]
    start = time.monotonic()
    raw.sendall(encode_calls(specs, 100))
    sock = TSocket.TSocket()
    sock.setHandle(raw)
    iprot = TBinaryProtocol.TBinaryProtocol(TTransport.TFramedTransport(sock))
    for i, (name, arg) in enumerate(specs):
        fname, mtype, seqid = iprot.readMessageBegin()
        check(fname == name and mtype == TMessageType.REPLY, "answer %d: %s %d" % (i, fname, mtype))
        check(seqid == 100 + i, "answer %d has seqid %d" % (i, seqid))
        res = getattr(Echo, name + "_result")()
        res.read(iprot)
        iprot.readMessageEnd()
        want = str(arg).encode() if name == "sleep" else arg
        check(res.success == want, "answer %d: %r" % (i, res.success))
    elapsed = time.monotonic() - start
    # One after another they would take 1.5 s: the handlers ran concurrently.
    check(elapsed < 1.4, "took %.2f s: the handlers did not run side by side" % elapsed)
    raw.close()


def case_unknown():
    """An unknown method: a TApplicationException UNKNOWN_METHOD with our seqid; the
    connection lives on."""
    tr, proto = connect()
    proto.writeMessageBegin("nosuch", TMessageType.CALL, 77)
    proto.writeStructBegin("nosuch_args")
    proto.writeFieldStop()
    proto.writeStructEnd()
    proto.writeMessageEnd()
    tr.flush()
    fname, mtype, seqid = proto.readMessageBegin()
    check(mtype == TMessageType.EXCEPTION and seqid == 77, "got %d seqid %d" % (mtype, seqid))
    x = TApplicationException()
    x.read(proto)
    proto.readMessageEnd()
    check(x.type == TApplicationException.UNKNOWN_METHOD, "type %d" % x.type)
    check(b"nosuch" in (x.message or "").encode(), "message %r" % x.message)
    check(Echo.Client(proto).echo(b"after") == b"after", "echo after")
    tr.close()


def case_oneway():
    """A ONEWAY call gets no answer; the next call's answer is the next on the wire."""
    tr, proto = connect()
    proto.writeMessageBegin("echo", TMessageType.ONEWAY, 5)
    Echo.echo_args(data=b"ignored").write(proto)
    proto.writeMessageEnd()
    tr.flush()
    c = Echo.Client(proto)
    check(c.echo(b"next") == b"next", "echo after oneway")
    tr.close()


def main():
    if args.serve:
        serve(args.serve)
        return 0
    failed = 0
    for name in args.cases:
        try:
            globals()["case_" + name]()
            print("%s ok" % name, flush=True)
        except Exception as e:  # a case's failure is reported, the others still run
            failed += 1
            print("%s FAIL: %r" % (name, e), flush=True)
    return 1 if failed else 0


sys.exit(main())

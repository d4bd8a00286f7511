#!/usr/bin/python3
"""grpcio with stubs generated from tests/codegen/proto's all.proto, the file arpc's typed
code of interop_grpc_typed is generated from (gen_typed_stubs.sh writes them).

  typed_peer.py --typed DIR --serve [--listen 127.0.0.1:0]
      serves ShapeStore with the semantics of tests/integration/protobuf/gen_service.h
      and prints "listening on HOST:PORT"; runs until stdin closes.
  typed_peer.py --stubs DIR --typed DIR --target HOST:PORT CASE...
      runs the client cases against a server with those semantics, printing "CASE ok"
      or "CASE FAIL: reason"; exits 0 only if every case passed.

DIR is OUT_DIR/v1 or OUT_DIR/v2 (Point and Shape with one field more: the forward
compatibility cases).  Exits 77 when the stubs are missing.
"""
import argparse
import os
import sys
import threading

sys.dont_write_bytecode = True

POINT_URL = "type.googleapis.com/arpc.test.common.Point"


def load(typed):
    if not os.path.exists(os.path.join(os.path.dirname(typed.rstrip("/")), "stamp")):
        print("skip: no typed stubs in %s" % typed, file=sys.stderr)
        sys.exit(77)
    sys.path.insert(0, typed)
    global grpc, types, svc, svc_grpc, any_pb2, empty_pb2, struct_pb2, wrappers_pb2
    import grpc
    from google.protobuf import any_pb2, empty_pb2, struct_pb2, wrappers_pb2
    from arpc.test.common import types_pb2 as types
    from arpc.test.svc import all_pb2 as svc
    from arpc.test.svc import all_pb2_grpc as svc_grpc


def v2():
    return "z" in types.Point.DESCRIPTOR.fields_by_name


# ---- the canonical messages (gen_service.h) ---------------------------------------------

def build_shape(x, y):
    s = types.Shape(name="shape-%d-%d" % (x, y))
    for i in range(3):
        v = s.vertices.add()
        v.at.x, v.at.y = x + i, y - i
        v.kind = types.Shape.Vertex.KIND_CORNER if i == 1 else types.Shape.Vertex.KIND_PLAIN
    s.labels["x"], s.labels["y"], s.labels["big"] = x, y, 1 << 40
    s.points_by_id[x].x, s.points_by_id[x].y = y, x
    s.points_by_id[1000 + x].x, s.points_by_id[1000 + x].y = -x, -y
    if x % 3 == 0:
        s.color = types.COLOR_GREEN
    elif x % 3 == 1:
        s.pattern = "stripes-%d" % y
    else:
        s.texture = bytes([x & 255, y & 255, 0, 255])
    s.area = x * y / 2
    s.created.seconds, s.created.nanos = 1700000000 + x, y
    s.lifetime.seconds, s.lifetime.nanos = y, 500
    s.tags.extend(["t0", "t-%d" % x])
    setattr(s, "int", -x - 1)
    s.default = y % 2 == 1
    return s


def diff(got, want):
    """None if equal, else the first top-level field that differs."""
    if got == want:
        return None
    for f in want.DESCRIPTOR.fields:
        a, b = getattr(got, f.name), getattr(want, f.name)
        if a != b:
            return "%s: %r vs %r" % (f.name, a, b)
    return "unknown fields or oneof case"


def meta_struct():
    s = struct_pb2.Struct()
    s.update({"n": 1.5, "s": "str", "b": True, "l": [1, "two"], "z": None})
    return s


def build_echo(x, y):
    r = svc.EchoRequest(text="echo", shape=build_shape(x, y), meta=meta_struct())
    r.extra.Pack(types.Point(x=x, y=y))
    r.maybe.value = x * y
    return r


def check_echo(r):
    """(x, y, None) when r is build_echo(x, y)'s, else (x, y, the field)."""
    p = types.Point()
    if r.text != "echo":
        return 0, 0, "text"
    if r.extra.type_url != POINT_URL or not r.extra.Unpack(p):
        return 0, 0, "extra"
    shape = types.Shape()
    shape.CopyFrom(r.shape)
    shape.DiscardUnknownFields()  # what a v1 reader does not know it ignores
    bad = diff(shape, build_shape(p.x, p.y))
    if bad:
        return p.x, p.y, bad
    if r.meta != meta_struct():
        return p.x, p.y, "meta"
    if r.maybe.value != p.x * p.y:
        return p.x, p.y, "maybe"
    return p.x, p.y, None


def reply(texts, seconds=0, nanos=0):
    out = svc.EchoReply()
    for t in texts:
        out.parts.add(text=t)
    out.at.seconds, out.at.nanos = seconds, nanos
    return out


# ---- the server --------------------------------------------------------------------------

class ShapeStore:
    """The base class answers UNIMPLEMENTED for what is not here (Now)."""

    def __init__(self):
        self.uploaded = 0

    def GetShape(self, req, ctx):
        if req.x < 0:
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "negative x")
        s = build_shape(req.x, req.y)
        if v2():  # fields the v1 reader does not know
            s.v2_note = "from v2"
            for v in s.vertices:
                v.at.z = 77
        return s

    def ListVertices(self, req, ctx):
        for v in req.vertices:
            yield v

    def UploadPoints(self, it, ctx):
        self.uploaded = sum(p.x + p.y for p in it)
        return empty_pb2.Empty()

    def GetHTTPStatus(self, req, ctx):
        return wrappers_pb2.Int32Value(value=self.uploaded)

    def Chat(self, it, ctx):
        for i, r in enumerate(it):
            yield reply([r.text, r.shape.name if r.HasField("shape") else ""], i)

    def Echo(self, r, ctx):
        if r.text == "metadata":
            v = dict(ctx.invocation_metadata()).get("x-typed-in")
            if v is not None:
                ctx.set_trailing_metadata((("x-typed-out", v),))
            return reply([r.text, v if v is not None else "(none)"])
        if r.text == "deadline":
            return reply([r.text, "%d" % int(ctx.time_remaining() * 1000)])
        x, y, bad = check_echo(r)
        if bad:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "mismatch: %s" % bad)
        return reply([r.text, "checked"], x, y)


def serve(listen):
    from concurrent import futures
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = type("Servicer", (ShapeStore, svc_grpc.ShapeStoreServicer), {})()
    svc_grpc.add_ShapeStoreServicer_to_server(servicer, server)
    port = server.add_insecure_port(listen)
    server.start()
    print("listening on 127.0.0.1:%d" % port, flush=True)
    sys.stdin.read()  # the test closes stdin (or kills us)
    server.stop(0)


# ---- the client cases --------------------------------------------------------------------

def expect_code(fn, code, details=None):
    """fn() fails with `code`, its details starting with `details` when given."""
    try:
        fn()
    except grpc.RpcError as e:
        if e.code() != code:
            raise AssertionError("code %s (%s), want %s" % (e.code(), e.details(), code))
        if details is not None and not e.details().startswith(details):
            raise AssertionError("details %r, want %r" % (e.details(), details))
        return
    raise AssertionError("succeeded, want %s" % code)


def case_unary(stub, ch):
    for x in range(6):
        req = types.Point(x=x * 7, y=0 if x == 0 else 100 - x)
        bad = diff(stub.GetShape(req, timeout=10), build_shape(req.x, req.y))
        if bad:
            raise AssertionError("GetShape(%d, %d): %s" % (req.x, req.y, bad))
    rsp = stub.Echo(build_echo(11, 13), timeout=10)
    if [p.text for p in rsp.parts] != ["echo", "checked"] or (rsp.at.seconds, rsp.at.nanos) != (11, 13):
        raise AssertionError("Echo: %r" % rsp)
    broken = build_echo(11, 13)
    broken.meta["s"] = "other"
    expect_code(lambda: stub.Echo(broken, timeout=10), grpc.StatusCode.INVALID_ARGUMENT,
                "mismatch: meta")


def case_error(stub, ch):
    expect_code(lambda: stub.GetShape(types.Point(x=-1), timeout=10),
                grpc.StatusCode.FAILED_PRECONDITION, "negative x")
    expect_code(lambda: stub.Now(empty_pb2.Empty(), timeout=10), grpc.StatusCode.UNIMPLEMENTED)


def case_metadata(stub, ch):
    rsp, call = stub.Echo.with_call(svc.EchoRequest(text="metadata"), timeout=10,
                                    metadata=(("x-typed-in", "val-1"),))
    if rsp.parts[1].text != "val-1":
        raise AssertionError("the server saw %r" % rsp.parts[1].text)
    md = dict(call.initial_metadata()) | dict(call.trailing_metadata())
    if md.get("x-typed-out") != "val-1":
        raise AssertionError("answer metadata %r" % (md,))


def case_deadline(stub, ch):
    rsp = stub.Echo(svc.EchoRequest(text="deadline"), timeout=5)
    ms = int(rsp.parts[1].text)
    # grpcio's client sends its grpc-timeout rounded up: grpcio's own server and arpc's
    # both see about 5009 ms of a 5 s timeout.
    if not 0 < ms <= 5050:
        raise AssertionError("remaining %d ms of 5000" % ms)
    # A stream that never gets a message: the deadline ends it.
    stop = threading.Event()

    def nothing():
        stop.wait(30)
        return
        yield

    expect_code(lambda: list(stub.Chat(nothing(), timeout=0.5)), grpc.StatusCode.DEADLINE_EXCEEDED)
    stop.set()
    stub.GetShape(types.Point(x=1, y=1), timeout=10)  # still serving


def case_streams(stub, ch):
    shape = build_shape(20, 30)
    got = list(stub.ListVertices(shape, timeout=10))
    if got != list(shape.vertices):
        raise AssertionError("ListVertices: %r" % got)
    stub.UploadPoints(iter([types.Point(x=i, y=2 * i) for i in range(1, 11)]), timeout=10)
    if stub.GetHTTPStatus(empty_pb2.Empty(), timeout=10).value != 165:
        raise AssertionError("the upload did not arrive whole")
    reqs = [svc.EchoRequest(text="hello %d" % i) for i in range(4)]
    reqs[1].shape.CopyFrom(build_shape(1, 1))
    for i, r in enumerate(stub.Chat(iter(reqs), timeout=10)):
        want = [reqs[i].text, "shape-1-1" if i == 1 else ""]
        if [p.text for p in r.parts] != want or r.at.seconds != i:
            raise AssertionError("Chat %d: %r" % (i, r))
    if i != 3:
        raise AssertionError("Chat: %d answers" % (i + 1))


def case_malformed(stub, ch):
    raw = ch.unary_unary("/arpc.test.svc.v1.ShapeStore/GetShape")
    for garbage in (b"\x0a\xff\xff\xff", b"\x08", b"\x0b\x00", b"\x12\x05ab"):
        expect_code(lambda: raw(garbage, timeout=10), grpc.StatusCode.INVALID_ARGUMENT)
    if diff(stub.GetShape(types.Point(x=2, y=3), timeout=10), build_shape(2, 3)):
        raise AssertionError("not serving after the garbage")


def case_v2(stub, ch):
    """A v2 client against the v1 server: its extra fields are ignored, or kept and
    sent back where the server sends the very message back."""
    if not v2():
        raise AssertionError("run with the v2 stubs")
    bad = diff(stub.GetShape(types.Point(x=3, y=4, z=7), timeout=10), build_shape(3, 4))
    if bad:
        raise AssertionError("GetShape: %s" % bad)
    shape = build_shape(5, 6)
    shape.v2_note = "new"
    for v in shape.vertices:
        v.at.z = 9
    got = list(stub.ListVertices(shape, timeout=10))
    if got != list(shape.vertices) or got[0].at.z != 9:
        raise AssertionError("ListVertices lost the unknown field: %r" % got)
    req = build_echo(8, 9)
    req.shape.v2_note = "ignored"
    rsp = stub.Echo(req, timeout=10)
    if rsp.parts[1].text != "checked":
        raise AssertionError("Echo: %r" % rsp)


CASES = {"unary": case_unary, "error": case_error, "metadata": case_metadata,
         "deadline": case_deadline, "streams": case_streams, "malformed": case_malformed,
         "v2": case_v2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stubs")  # the echo stubs interop_util passes; unused
    ap.add_argument("--typed", required=True)
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--target")
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    load(args.typed)
    if args.serve:
        serve(args.listen)
        return 0
    failed = 0
    with grpc.insecure_channel(args.target) as ch:
        stub = svc_grpc.ShapeStoreStub(ch)
        for name in args.cases:
            try:
                CASES[name](stub, ch)
                print("%s ok" % name, flush=True)
            except Exception as e:  # noqa: BLE001 - reported as the case's failure
                print("%s FAIL: %s" % (name, e), flush=True)
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

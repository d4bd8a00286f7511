#!/usr/bin/python3
"""A gRPC server reflection client for arpc's interop test (interop_grpc_reflection):
grpcio and protobuf's own descriptor machinery, as a reflection tool uses them.

  /usr/bin/python3 reflection_client.py --target HOST:PORT --stubs DIR \
      --version v1|v1alpha --service NAME:METHOD,METHOD... [--service ...]

On one ServerReflectionInfo stream of the version given it lists the services (each
--service must be there, and the reflection service itself), fetches the file of
each listed service by symbol, then of every import not yet seen by file name, and
checks that each answer held the file's imports too; builds a DescriptorPool from
the FileDescriptorProtos alone and finds each --service in it with exactly its
methods, their input and output types resolved.  Then the error paths: an unknown
file and an unknown symbol NOT_FOUND, a request with nothing set INVALID_ARGUMENT,
extensions none, all on the same stream.

Prints "CASE ok" or "CASE FAIL: reason" for the cases listservices, descriptors,
pool and errors, and exits 0 only if all passed (77 when the stubs are missing).
"""
import argparse
import os
import queue
import sys

sys.dont_write_bytecode = True

NOT_FOUND = 5
INVALID_ARGUMENT = 3


def load_stubs(stubs, version):
    if not os.path.exists(os.path.join(stubs, "stamp")):
        print("no stubs in %s" % stubs, file=sys.stderr)
        sys.exit(77)
    sys.path.insert(0, stubs)
    import importlib
    return importlib.import_module("reflection_%s_pb2" % version)


class Stream:
    """One ServerReflectionInfo stream: ask() writes a request and reads its answer."""

    def __init__(self, channel, pb, version):
        self.pb = pb
        self.requests = queue.Queue()
        method = "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version
        call = channel.stream_stream(
            method,
            request_serializer=pb.ServerReflectionRequest.SerializeToString,
            response_deserializer=pb.ServerReflectionResponse.FromString)
        self.answers = call(iter(self.requests.get, None), timeout=30)

    def ask(self, **fields):
        req = self.pb.ServerReflectionRequest(host="interop.test", **fields)
        self.requests.put(req)
        ans = next(self.answers)
        if ans.valid_host != "interop.test":
            raise AssertionError("valid_host %r" % ans.valid_host)
        if ans.original_request != req:
            raise AssertionError("original_request %r is not the request" % ans.original_request)
        return ans

    def close(self):
        self.requests.put(None)
        for extra in self.answers:
            raise AssertionError("an answer after the half-close: %r" % extra)


def parse_services(specs):
    out = {}
    for spec in specs:
        name, _, methods = spec.partition(":")
        out[name] = [m for m in methods.split(",") if m]
    return out


def case_listservices(st, ctx):
    ans = st.ask(list_services="")
    if ans.WhichOneof("message_response") != "list_services_response":
        raise AssertionError("answer %s" % ans.WhichOneof("message_response"))
    names = [s.name for s in ans.list_services_response.service]
    if len(names) != len(set(names)):
        raise AssertionError("a service listed twice: %r" % names)
    want = list(ctx["services"]) + ["grpc.reflection.%s.ServerReflection" % ctx["version"]]
    missing = [n for n in want if n not in names]
    if missing:
        raise AssertionError("%r not listed in %r" % (missing, names))
    ctx["listed"] = names


def files_of(ans):
    if ans.WhichOneof("message_response") != "file_descriptor_response":
        raise AssertionError("answer %s" % ans.WhichOneof("message_response"))
    from google.protobuf import descriptor_pb2
    return [descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in ans.file_descriptor_response.file_descriptor_proto]


def check_closed(files, what):
    """An answer holds its first file and every file that file imports, each once."""
    names = [f.name for f in files]
    if len(names) != len(set(names)):
        raise AssertionError("%s: a file sent twice in one answer: %r" % (what, names))
    for f in files:
        for dep in f.dependency:
            if dep not in names:
                raise AssertionError("%s: %s imports %s, not in the answer" % (what, f.name, dep))


def case_descriptors(st, ctx):
    got = {}
    for service in ctx["listed"]:
        files = files_of(st.ask(file_containing_symbol=service))
        check_closed(files, service)
        if not any(s.name == service.rpartition(".")[2] for s in files[0].service):
            raise AssertionError("%s is not in the first file %s" % (service, files[0].name))
        for f in files:
            got.setdefault(f.name, f)
    # Each file by its own name too, with the same bytes.
    for name, f in list(got.items()):
        again = files_of(st.ask(file_by_filename=name))
        check_closed(again, name)
        if again[0] != f:
            raise AssertionError("%s by name differs from %s by symbol" % (name, name))
    ctx["files"] = got


def case_pool(st, ctx):
    from google.protobuf import descriptor_pool
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        f = ctx["files"][name]
        for dep in f.dependency:
            add(dep)
        pool.Add(f)
        added.add(name)

    for name in ctx["files"]:
        add(name)
    for service, methods in ctx["services"].items():
        desc = pool.FindServiceByName(service)
        names = sorted(m.name for m in desc.methods)
        if names != sorted(methods):
            raise AssertionError("%s has methods %r, not %r" % (service, names, methods))
        for m in desc.methods:
            for t in (m.input_type, m.output_type):
                pool.FindMessageTypeByName(t.full_name)
            print("found %s.%s(%s) -> %s%s" % (service, m.name, m.input_type.full_name,
                                                m.output_type.full_name,
                                                " streams" if m.client_streaming or
                                                m.server_streaming else ""), file=sys.stderr)


def expect_error(ans, code, what):
    if ans.WhichOneof("message_response") != "error_response":
        raise AssertionError("%s: answer %s" % (what, ans.WhichOneof("message_response")))
    if ans.error_response.error_code != code:
        raise AssertionError("%s: code %d, not %d" % (what, ans.error_response.error_code, code))


def case_errors(st, ctx):
    pb = st.pb
    expect_error(st.ask(file_by_filename="no/such.proto"), NOT_FOUND, "unknown file")
    expect_error(st.ask(file_containing_symbol="no.such.Symbol"), NOT_FOUND, "unknown symbol")
    expect_error(st.ask(), INVALID_ARGUMENT, "nothing set")
    ext = pb.ExtensionRequest(containing_type=next(iter(ctx["services"])), extension_number=1)
    expect_error(st.ask(file_containing_extension=ext), NOT_FOUND, "extension")
    expect_error(st.ask(all_extension_numbers_of_type="no.such.Type"), NOT_FOUND, "no type")
    message = next(t for f in ctx["files"].values() for t in f.message_type)
    full = None
    for f in ctx["files"].values():
        if message in f.message_type:
            full = (f.package + "." if f.package else "") + message.name
    ans = st.ask(all_extension_numbers_of_type=full)
    if ans.WhichOneof("message_response") != "all_extension_numbers_response":
        raise AssertionError("extension numbers of %s: %s" % (full,
                                                             ans.WhichOneof("message_response")))
    nums = ans.all_extension_numbers_response
    if nums.base_type_name != full or list(nums.extension_number):
        raise AssertionError("extension numbers of %s: %r" % (full, nums))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--version", choices=["v1", "v1alpha"], required=True)
    ap.add_argument("--service", action="append", default=[])
    args = ap.parse_args()
    pb = load_stubs(args.stubs, args.version)
    import grpc
    ctx = {"services": parse_services(args.service), "version": args.version}
    ok = True
    with grpc.insecure_channel(args.target) as channel:
        st = Stream(channel, pb, args.version)
        for name, fn in (("listservices", case_listservices), ("descriptors", case_descriptors),
                         ("pool", case_pool), ("errors", case_errors)):
            try:
                fn(st, ctx)
                print("%s ok" % name, flush=True)
            except Exception as e:  # noqa: BLE001 (every failure is reported as the case's)
                print("%s FAIL: %s: %s" % (name, type(e).__name__, e), flush=True)
                ok = False
                break
        if ok:
            try:
                st.close()
            except Exception as e:  # noqa: BLE001
                print("close FAIL: %s" % e, flush=True)
                ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""grpcio's own client with aggressive keepalive against grpc_peer_server.py:
the cross-check of ping_probe.py from a real client (docs/grpc-interop.md,
section 4).  Not a ctest (it takes about 5 s and only prints).

  GRPC_VERBOSITY=debug GRPC_TRACE=http_keepalive \\
      /usr/bin/python3 -B keepalive_probe.py --stubs DIR [--sleep-ms 8000]

Asks for a PING every 100 ms even without calls (grpcio raises it to 1 s),
makes one Echo, then one Sleep and prints how that Sleep ended.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peer_common import load_stubs  # noqa: E402

import grpc  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stubs", required=True)
    p.add_argument("--sleep-ms", type=int, default=8000)
    args = p.parse_args()
    echo_pb2, echo_pb2_grpc, _ = load_stubs(args.stubs)
    server = subprocess.Popen([sys.executable, "-B", os.path.join(HERE, "grpc_peer_server.py"),
                               "--stubs", args.stubs, "--grace", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        target = server.stdout.readline().split()[-1]
        ch = grpc.insecure_channel(target, options=[
            ("grpc.keepalive_time_ms", 100), ("grpc.keepalive_timeout_ms", 1000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0)])
        stub = echo_pb2_grpc.EchoStub(ch)
        stub.Echo(echo_pb2.EchoMsg(data=b"x"), timeout=5)
        start = time.monotonic()
        try:
            stub.Sleep(echo_pb2.EchoMsg(data=b"%d" % args.sleep_ms),
                       timeout=args.sleep_ms / 1000.0 + 5)
            print("Sleep(%d) ok after %.2f s" % (args.sleep_ms, time.monotonic() - start))
        except grpc.RpcError as e:
            print("Sleep(%d) failed after %.2f s: %s: %s" % (
                args.sleep_ms, time.monotonic() - start, e.code().name, e.details()))
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared by grpc_peer_server.py and grpc_peer_client.py: finding the stubs
that tests/interop/grpc/gen_stubs.sh generated into the build directory.

Run these scripts with /usr/bin/python3: Debian's python3-grpcio and
python3-protobuf live in its dist-packages, not in other interpreters'.
"""
import os
import sys


def load_stubs(stubs_dir):
    """Imports echo_pb2, echo_pb2_grpc, health_pb2 from `stubs_dir` (or
    $ARPC_INTEROP_STUBS); exits with 77 (ctest's skip code) and a message
    when they were not generated."""
    stubs_dir = stubs_dir or os.environ.get("ARPC_INTEROP_STUBS", "")
    missing = os.path.join(stubs_dir, "MISSING")
    if os.path.exists(missing):
        with open(missing) as f:
            sys.stderr.write("skip: %s\n" % f.read().strip())
        sys.exit(77)
    if not os.path.exists(os.path.join(stubs_dir, "echo_pb2.py")):
        sys.stderr.write("skip: no generated stubs in %r (run the build)\n" % stubs_dir)
        sys.exit(77)
    sys.path.insert(0, stubs_dir)
    import echo_pb2  # noqa: E402
    import echo_pb2_grpc  # noqa: E402
    import health_pb2  # noqa: E402
    return echo_pb2, echo_pb2_grpc, health_pb2


HEALTH_CHECK = "/grpc.health.v1.Health/Check"

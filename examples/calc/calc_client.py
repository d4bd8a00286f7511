"""The calc demo's Python client: any gRPC client can call the typed arpc server.

calc_pb2.py and calc_pb2_grpc.py are generated at build time from calc.proto, the same
file the C server's typed handlers come from (examples/calc/CMakeLists.txt).  The server
also answers gRPC reflection, which this client uses to find the service by name.

Usage: /usr/bin/python3 calc_client.py HOST:PORT STUBS_DIR   (exit status 0 on success)
"""
import sys

sys.path.insert(0, sys.argv[2])

import grpc  # noqa: E402  (Debian python3-grpcio)
import calc_pb2  # noqa: E402
import calc_pb2_grpc  # noqa: E402
import reflection_pb2  # noqa: E402
import reflection_pb2_grpc  # noqa: E402


def reflected_services(channel):
    """The service names the server lists through grpc.reflection.v1alpha."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for answer in stub.ServerReflectionInfo(iter([request]), timeout=5):
        return sorted(s.name for s in answer.list_services_response.service)
    return []


def main():
    with grpc.insecure_channel(sys.argv[1]) as channel:
        calc = calc_pb2_grpc.CalcStub(channel)
        total = calc.SumAdd(calc_pb2.Pair(a=10, b=20), timeout=5).value
        try:
            calc.Div(calc_pb2.Pair(a=7, b=0), timeout=5)
            div_error = None
        except grpc.RpcError as error:
            div_error = (error.code(), error.details())
        squares = [n.value for n in calc.Squares(calc_pb2.Number(value=4), timeout=5)]
        services = reflected_services(channel)
    div = f"{div_error[0].name} \"{div_error[1]}\"" if div_error else "no error"
    print(f"         SumAdd(10, 20) = {total}, Div(7, 0) -> {div}, Squares(4) -> {squares};")
    print(f"         reflection lists {', '.join(services)}")
    ok = (total == 30 and div_error == (grpc.StatusCode.FAILED_PRECONDITION, "division by zero")
          and squares == [1, 4, 9, 16] and "calc.Calc" in services)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

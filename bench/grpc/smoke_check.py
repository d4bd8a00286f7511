"""bench/grpc/smoke.sh's protocol checks of grpc-echo-server, with grpcio (optional).

usage: /usr/bin/python3 smoke_check.py HOST:PORT
Echo answers the bytes as they came and returns x-echo-* metadata (text and -bin)
but no other; Sleep answers after `data` ms; a bad Sleep argument is
INVALID_ARGUMENT; an unknown method is UNIMPLEMENTED.  Exit 0 on success.
"""
import sys
import time

import grpc


def msg(data):
    """EchoMsg{data} in protobuf wire format (field 1, length-delimited)."""
    assert len(data) < 128
    return b"\x0a" + bytes([len(data)]) + data


def main():
    with grpc.insecure_channel(sys.argv[1]) as ch:
        echo = ch.unary_unary("/arpc.echo.Echo/Echo")
        sleep = ch.unary_unary("/arpc.echo.Echo/Sleep")
        md = [("x-echo-a", "1"), ("other", "2"), ("x-echo-b-bin", b"\x00\xff")]
        rsp, call = echo.with_call(msg(b"hello"), metadata=md, timeout=5)
        assert rsp == msg(b"hello"), rsp
        got = {m.key: m.value for m in call.initial_metadata()}
        assert got == {"x-echo-a": "1", "x-echo-b-bin": b"\x00\xff"}, got
        t = time.monotonic()
        assert sleep(msg(b"100"), timeout=5) == msg(b"100")
        assert time.monotonic() - t >= 0.099
        for method, req, code in ((sleep, msg(b"1x"), grpc.StatusCode.INVALID_ARGUMENT),
                                  (ch.unary_unary("/arpc.echo.Echo/Nope"), b"",
                                   grpc.StatusCode.UNIMPLEMENTED)):
            try:
                method(req, timeout=5)
                raise AssertionError("no error")
            except grpc.RpcError as e:
                assert e.code() == code, e
    print("smoke_check: echo, metadata, sleep and errors ok")


main()

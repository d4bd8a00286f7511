#!/usr/bin/env python3
"""Writes fuzz/corpus-grpc-session/: client frames that follow the preface and SETTINGS
fuzz_grpc_session.c feeds itself.  Byte 0 of each seed is the fuzzer's chunk-size byte.
HPACK blocks use literal fields without indexing and without Huffman, so they read as text.
Run: python3 fuzz/gen_grpc_session_seeds.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus-grpc-session")


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def hint(n):
    assert n < 127
    return bytes([n])


def lit(k, v):
    return b"\x00" + hint(len(k)) + k + hint(len(v)) + v


def headers(path, extra=b"", ctype=b"application/grpc"):
    return (lit(b":method", b"POST") + lit(b":scheme", b"http") + lit(b":path", path) +
            lit(b":authority", b"x") + lit(b"te", b"trailers") + lit(b"content-type", ctype) + extra)


def msg(payload, flag=0):
    return bytes([flag]) + struct.pack(">I", len(payload)) + payload


SETTINGS_ACK = frame(4, 1, 0, b"")
seeds = {
    "unary.bin": frame(1, 4, 1, headers(b"/a.B/C", lit(b"grpc-timeout", b"2500m") + lit(b"x-a", b"b")))
    + frame(0, 1, 1, msg(b"hello")) + SETTINGS_ACK,
    "unknown_path.bin": frame(1, 5, 1, headers(b"/x.Y/Z")),
    "rst.bin": frame(1, 4, 1, headers(b"/a.B/C")) + frame(0, 0, 1, msg(b"he")[:4]) + frame(3, 0, 1, b"\x00\x00\x00\x08"),
    "ping.bin": frame(6, 0, 0, b"12345678") + frame(6, 0, 0, b"abcdefgh"),
    "two_streams.bin": frame(1, 4, 1, headers(b"/a.B/C")) + frame(1, 4, 3, headers(b"/a.B/C"))
    + frame(0, 0, 3, msg(b"three")[:3]) + frame(0, 1, 1, msg(b"one")) + frame(0, 1, 3, msg(b"three")[3:]),
    "over_limit.bin": frame(1, 4, 1, headers(b"/a.B/C")) + frame(0, 0, 1, b"\x00\x00\x01\x00\x00" + b"z" * 100),
    "compressed.bin": frame(1, 4, 1, headers(b"/a.B/C")) + frame(0, 1, 1, msg(b"zz", 1)),
    "encoding.bin": frame(1, 4, 1, headers(b"/a.B/C", lit(b"grpc-encoding", b"gzip"))) + frame(0, 1, 1, msg(b"zz", 1)),
    "bad_ctype.bin": frame(1, 5, 1, headers(b"/a.B/C", ctype=b"text/plain")),
    "window_goaway.bin": frame(8, 0, 0, b"\x00\x01\x00\x00") + frame(7, 0, 0, b"\x00\x00\x00\x00\x00\x00\x00\x00"),
    "continuation.bin": frame(1, 0, 1, headers(b"/a.B/C")[:20]) + frame(9, 4, 1, headers(b"/a.B/C")[20:])
    + frame(0, 1, 1, msg(b"c")),
    "stream.bin": frame(1, 4, 1, headers(b"/a.B/S")) + frame(0, 0, 1, msg(b"\x02even") + msg(b"odd"))
    + frame(0, 0, 1, msg(b"\x01" + b"h" * 1500)[:700]) + frame(0, 0, 1, msg(b"\x01" + b"h" * 1500)[700:])
    + frame(0, 1, 1, msg(b"\x04last")),
    "stream_rst.bin": frame(1, 4, 1, headers(b"/a.B/S")) + frame(1, 4, 3, headers(b"/a.B/S"))
    + frame(0, 0, 1, msg(b"\x01" * 900)) + frame(0, 0, 3, msg(b"\x02two")) + frame(3, 0, 1, b"\x00\x00\x00\x08")
    + frame(0, 1, 3, b""),
}

os.makedirs(OUT, exist_ok=True)
for name, body in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(b"\xff" + body)
    with open(os.path.join(OUT, "small_" + name), "wb") as f:
        f.write(b"\x00" + body)

#!/usr/bin/env python3
"""Writes the stream seeds of fuzz/corpus-native-session/ (docs/protocol.md section 13).
Byte 0 of each seed is fuzz_native_session.c's mode (bit 0 server, bit 1 metadata, bits 2-7
the limit: 0x4b is a server with metadata and 10 MiB, 0x4a the client, 0x03 a server with a
40-byte limit); byte 1 has bit 6 set (streams on) and the chunk size - 1 in bits 0-5.  What
follows is what the peer sends.  Run: python3 fuzz/gen_native_stream_seeds.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus-native-session")

REQUEST, RESPONSE, PING, MESSAGE, HALF_CLOSE, END, CANCEL, WINDOW = 1, 2, 3, 6, 7, 8, 9, 10
IDEMPOTENT, METADATA, STREAM = 1, 2, 4


def frame(ftype, rid, flags=0, method=b"", payload=b"", status=0, timeout=0):
    return (b"AR\x01" + bytes([ftype]) + struct.pack("<HHIiII", flags, len(method), len(payload),
                                                    status, timeout, 0) +
            struct.pack("<Q", rid) + method + payload)


def block(*entries):
    body = b"".join(struct.pack("<HH", len(k), len(v)) + k + v for k, v in entries)
    return struct.pack("<I", len(body)) + body


def settings(*pairs):
    return b"".join(struct.pack("<HHI", i, 4, v) for i, v in pairs)


def window(rid, n, size=4):
    return frame(WINDOW, rid, payload=struct.pack("<I", n)[:size] + b"\x00" * max(0, size - 4))


MD = block((b"k", b"v"))
HELLO = frame(PING, 1, payload=settings((1, 1 << 24), (3, 1), (4, 1), (5, 1 << 18)))

SEEDS = {
    # A server: the client's settings, a stream with metadata, messages, credit, half-close,
    # then a unary request and its cancel, and a stream's cancel.
    "server_stream.bin": (0x4b, 0x47,
                          HELLO +
                          frame(REQUEST, 1, STREAM | METADATA, b"s.Chat", MD, timeout=2000) +
                          frame(MESSAGE, 1, payload=b"hello") + frame(MESSAGE, 1) +
                          window(1, 65536) + frame(HALF_CLOSE, 1) +
                          frame(REQUEST, 2, IDEMPOTENT, b"u.Unary", b"x") + frame(CANCEL, 2) +
                          frame(REQUEST, 3, STREAM, b"s.S") + frame(MESSAGE, 3, payload=b"m" * 40) +
                          frame(CANCEL, 3)),
    # A server: malformed stream frames (each closes; the rest is never read).
    "server_stream_window_3_bytes.bin": (0x4b, 0x40,
                                         frame(REQUEST, 1, STREAM, b"s") + window(1, 1, 3)),
    "server_stream_end.bin": (0x4b, 0x4f, frame(REQUEST, 1, STREAM, b"s") + frame(END, 1)),
    "server_stream_unopened.bin": (0x4b, 0x4f,
                                   frame(REQUEST, 1, STREAM, b"s") + frame(MESSAGE, 2, payload=b"x")),
    "server_stream_open_payload.bin": (0x4b, 0x4f, frame(REQUEST, 1, STREAM, b"s", b"x")),
    # A server with a 40-byte limit: an oversized OPEN is ended by the session, its body
    # skipped; then an oversized MESSAGE closes.
    "server_stream_oversized.bin": (0x03, 0x50,
                                    frame(REQUEST, 1, STREAM | METADATA, b"s", block((b"k", b"v" * 30))) +
                                    frame(MESSAGE, 1, payload=b"y" * 20)),
    # A client: the server's first MESSAGE with metadata, messages, credit, the END.
    "client_stream.bin": (0x4a, 0x45,
                          frame(PING + 1, 1, payload=settings((1, 1 << 24), (3, 1), (4, 1))) +
                          frame(MESSAGE, 1, METADATA, payload=MD + b"ok") +
                          frame(MESSAGE, 1, payload=b"two") + window(1, 100000) +
                          frame(MESSAGE, 2, payload=b"z" * 33) +
                          frame(END, 1, METADATA, payload=MD + b"bad", status=5) +
                          frame(END, 2, status=-125) + frame(MESSAGE, 1, payload=b"late")),
    # A client: metadata that breaks the rules (a CANCEL is written), a HALF_CLOSE toward it.
    "client_stream_bad_md.bin": (0x4a, 0x4f,
                                 frame(MESSAGE, 1, METADATA, payload=block((b"Bad", b"v")) + b"x") +
                                 frame(END, 2, METADATA, payload=block((b"k", b"\x01"))) +
                                 frame(HALF_CLOSE, 3)),
    "client_stream_window_zero.bin": (0x4a, 0x40, window(1, 0)),
}


def main():
    for name, (mode, chunk, body) in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([mode, chunk]) + body)


if __name__ == "__main__":
    main()

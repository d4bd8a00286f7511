#!/usr/bin/env python3
"""Writes the seeds of fuzz/corpus-thrift/ for fuzz_thrift.c.  Byte 0 of each seed is the
mode: bit 0 server, bits 1-3 the frame limit (7: 16 MiB, 0: 11 bytes), bits 4-7 the chunk
size (1 + 7 * n bytes).  What follows is what the peer sends: framed binary-protocol
messages, strict and old style.  Run: python3 fuzz/gen_thrift_seeds.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus-thrift")
CALL, REPLY, EXCEPTION, ONEWAY = 1, 2, 3, 4


def strict(name, mtype, seqid, body):
    return struct.pack(">IiI", 0x80010000 | mtype, len(name), 0)[:8] + name + \
        struct.pack(">i", seqid) + body


def old(name, mtype, seqid, body):
    return struct.pack(">i", len(name)) + name + bytes([mtype]) + struct.pack(">i", seqid) + body


def framed(msg):
    return struct.pack(">I", len(msg)) + msg


def binary_field(fid, data):
    return struct.pack(">bhi", 11, fid, len(data)) + data


ARGS = binary_field(1, b"hello") + b"\x00"
# Every type once, with containers and a nested struct: the reader skips them all.
RICH = (struct.pack(">bhb", 2, 1, 1) + struct.pack(">bhb", 3, 2, -1) +
        struct.pack(">bhh", 6, 3, 300) + struct.pack(">bhi", 8, 4, 7) +
        struct.pack(">bhq", 10, 5, 1 << 40) + struct.pack(">bhd", 4, 6, 1.5) +
        struct.pack(">bhbi", 15, 7, 8, 2) + struct.pack(">ii", 1, 2) +
        struct.pack(">bhbi", 14, 8, 11, 1) + struct.pack(">i", 1) + b"x" +
        struct.pack(">bhbbi", 13, 9, 11, 12, 1) + struct.pack(">i", 1) + b"k" + b"\x00" +
        struct.pack(">bh", 12, 10) + binary_field(1, b"in") + b"\x00" + b"\x00")
APPEX = binary_field(1, b"Unknown method x") + struct.pack(">bhi", 8, 2, 1) + b"\x00"
SEEDS = {
    "server_calls.bin": bytes([0x0f]) + b"".join(
        framed(strict(b"echo", CALL, i, ARGS)) for i in range(5)),
    "server_old_style.bin": bytes([0x1f]) + framed(old(b"echo", CALL, 1, ARGS)) +
    framed(old(b"sleep", ONEWAY, 2, struct.pack(">bhi", 8, 1, 5) + b"\x00")),
    "server_rich.bin": bytes([0x0f]) + framed(strict(b"rich", CALL, 9, RICH)),
    "server_oneway.bin": bytes([0x0f]) + framed(strict(b"a", ONEWAY, 1, b"\x00")) +
    framed(strict(b"b", CALL, 2, b"\x00")),
    "server_over_limit.bin": bytes([0x05]) + framed(strict(b"echo", CALL, 1, ARGS)),
    "server_bad_version.bin": bytes([0x0f]) + framed(b"\x80\x02\x00\x01" + ARGS),
    "client_answers.bin": bytes([0x0e]) +
    framed(strict(b"arpc.probe", EXCEPTION, 0, APPEX)) +
    b"".join(framed(strict(b"echo", REPLY, i, binary_field(0, b"hi") + b"\x00"))
             for i in range(1, 10)),
    "client_exception.bin": bytes([0x3e]) + framed(strict(b"arpc.probe", REPLY, 0, b"\x00")) +
    framed(old(b"echo", EXCEPTION, 1, APPEX)),
    "client_bad_seqid.bin": bytes([0x0e]) + framed(strict(b"arpc.probe", REPLY, 5, b"\x00")),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)

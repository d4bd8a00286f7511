#!/usr/bin/python3
"""What grpcio's server allows for client PINGs, measured with raw HTTP/2
frames (no HTTP/2 library: a preface, SETTINGS, PING, HEADERS with literal
HPACK fields and DATA are all a probe needs).

  /usr/bin/python3 -B ping_probe.py --stubs DIR [--check]

Starts grpc_peer_server.py (Debian's grpcio) for each experiment and prints
one line per experiment: how many PINGs were ACKed before a GOAWAY, and the
GOAWAY's error code and debug data.  With --check, exits 1 unless the
results are the ones docs/grpc-interop.md records (the rules arpc's HTTP/2
heartbeat defaults are chosen against), 77 if the stubs are missing.
"""
import argparse
import os
import select
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
ERRORS = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 11: "ENHANCE_YOUR_CALM"}


class Closed(Exception):
    pass


class H2:
    """A client connection, frame by frame; ACKs the server's SETTINGS and PINGs."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.goaway = None  # (last_stream_id, error name, debug data)
        self.acks = set()
        self.ended = set()  # stream ids whose END_STREAM arrived
        self.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        self.frame(SETTINGS, 0, 0, b"")

    def send(self, data):
        self.sock.sendall(data)

    def frame(self, ftype, flags, sid, payload):
        head = struct.pack(">I", len(payload))[1:] + bytes((ftype, flags))
        self.send(head + struct.pack(">I", sid) + payload)

    def pump(self, until, timeout):
        """Handles frames until until() is true; false on timeout."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
                r, _, _ = select.select([self.sock], [], [], left)
                if r:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise Closed()
                    self.buf += chunk
                continue
            self.handle()
        return True

    def handle(self):
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
        if ftype == SETTINGS and not flags & ACK:
            self.frame(SETTINGS, ACK, 0, b"")
        elif ftype == PING and flags & ACK:
            self.acks.add(payload)
        elif ftype == PING:
            self.frame(PING, ACK, 0, payload)  # the server's BDP pings
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = (last, ERRORS.get(code, str(code)), payload[8:].decode("latin1"))
        if ftype in (HEADERS, DATA, RST_STREAM) and (flags & END_STREAM or ftype == RST_STREAM):
            self.ended.add(sid)

    def ping(self, i):
        """Sends PING i; true if ACKed, false if a GOAWAY came instead."""
        payload = struct.pack(">Q", 0x70726F6265000000 + i)  # "probe" + i
        try:
            self.frame(PING, 0, 0, payload)
            self.pump(lambda: payload in self.acks or self.goaway is not None, 5)
        except (Closed, OSError):
            pass
        return payload in self.acks

    def call(self, sid, method, data):
        """Sends a unary call (HPACK literals, no Huffman) and its message."""
        hdrs = b"".join(b"\x00" + bytes((len(k),)) + k + bytes((len(v),)) + v for k, v in (
            (b":method", b"POST"), (b":scheme", b"http"),
            (b":path", b"/arpc.echo.Echo/" + method), (b":authority", b"127.0.0.1"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers")))
        self.frame(HEADERS, END_HEADERS, sid, hdrs)
        msg = b"\x0a" + bytes((len(data),)) + data  # EchoMsg{data}
        self.frame(DATA, END_STREAM, sid, b"\x00" + struct.pack(">I", len(msg)) + msg)

    def closed_after(self, timeout):
        """True if the server closes the connection within timeout."""
        try:
            self.pump(lambda: False, timeout)
        except (Closed, ConnectionResetError):
            return True
        return False


def start_server(stubs, options):
    cmd = [sys.executable, "-B", os.path.join(HERE, "grpc_peer_server.py"), "--stubs", stubs,
           "--listen", "127.0.0.1:0", "--grace", "0", "--workers", "64"]
    for o in options:
        cmd += ["--option", o]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if proc.poll() == 77 or not line.startswith("listening on "):
        proc.wait()
        sys.exit(77 if proc.returncode == 77 else 1)
    return proc, int(line.rsplit(":", 1)[1])


def pings(conn, count, gap, before_each=None):
    """count PINGs gap seconds apart, stopping at a GOAWAY; returns how many
    were ACKed and the number of the PING the GOAWAY answered (0: none)."""
    acked = 0
    for i in range(count):
        if before_each:
            before_each(i)
        ok = conn.ping(i)
        acked += ok
        if conn.goaway is not None:
            return acked, i + 1
        if not ok:
            break
        time.sleep(gap)
    return acked, 0


SERVERS = {}  # options -> (process, port): one server per set of options


def server_for(stubs, options):
    key = tuple(options)
    if key not in SERVERS:
        SERVERS[key] = start_server(stubs, options)
    return SERVERS[key][1]


def stop_servers():
    for proc, _ in SERVERS.values():
        proc.terminate()
    for proc, _ in SERVERS.values():
        proc.wait(10)
    SERVERS.clear()


def experiment(stubs, name, options, count, gap, setup=None, before_each=None):
    """One fresh connection (the strike count is per connection) to the
    server of `options`, closed at the end so its calls are cancelled."""
    conn = H2(server_for(stubs, options))
    try:
        conn.pump(lambda: False, 0.2)  # SETTINGS exchange
        if setup:
            setup(conn)
        acked, at = pings(conn, count, gap, (lambda i: before_each(conn, i)) if before_each else None)
        closed = conn.goaway is not None and conn.closed_after(2)
    finally:
        conn.sock.close()
    goaway = "GOAWAY %s %r at PING %d, connection %s" % (
        conn.goaway[1], conn.goaway[2], at, "closed" if closed else "open") \
        if conn.goaway else "no GOAWAY"
    print("%-40s %2d PINGs %4.0f ms apart: %2d ACKed, %s" % (name, count, gap * 1000, acked,
                                                             goaway), flush=True)
    return {"name": name, "acked": acked, "at": at, "goaway": conn.goaway, "closed": closed}


def unary_then_wait(conn, i):
    sid = 2 * i + 1
    conn.call(sid, b"Echo", b"x")
    conn.pump(lambda: sid in conn.ended, 5)


def sleeps_answered_100ms_apart(conn):
    """60 Sleep calls sent at once, answered 100, 200, ... 6000 ms later: the 15
    pairs of PINGs need 15 fresh answers even when some arrive together."""
    for k in range(1, 61):
        conn.call(2 * k - 1, b"Sleep", b"%d" % (100 * k))


def two_pings_per_answer(conn, i):
    """Sends PINGs in pairs, each pair only after an answer that arrived since
    the previous pair's last PING.  The rule measured is "data the server sends
    between PINGs resets the strikes"; on a loaded machine grpcio may write two
    answers at once, and waiting merely for answer k then let four PINGs follow
    one reset (GOAWAY at PING 22 in a full make test).  With a fresh answer
    before each pair at most three PINGs follow any reset, and grpcio lets four
    through (the idle experiments: its GOAWAY comes at the fifth)."""
    if i % 2 == 1:
        conn.answers_seen = len(conn.ended)
        return
    seen = getattr(conn, "answers_seen", 0)
    conn.pump(lambda: len(conn.ended) > seen, 5)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stubs", required=True)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    try:
        r = run_experiments(args.stubs)
    finally:
        stop_servers()
    if not args.check:
        return 0
    return check(r)


def run_experiments(stubs):
    relaxed = ["grpc.http2.min_ping_interval_without_data_ms=100",
               "grpc.keepalive_permit_without_calls=1"]
    sleep = lambda c: c.call(1, b"Sleep", b"10000")  # noqa: E731
    return [
        experiment(stubs, "idle connection", [], 10, 0.05),
        experiment(stubs, "idle connection", [], 6, 0.5),
        experiment(stubs, "a Sleep(10000) call in flight", [], 10, 0.05, setup=sleep),
        experiment(stubs, "a unary call before each PING", [], 20, 0.05,
                   before_each=unary_then_wait),
        experiment(stubs, "a new Sleep call sent before each PING", [], 20, 0.05,
                   before_each=lambda c, i: c.call(2 * i + 1, b"Sleep", b"10000")),
        experiment(stubs, "Sleeps answered 100 ms apart, no sends", [], 30, 0.05,
                   setup=sleeps_answered_100ms_apart, before_each=two_pings_per_answer),
        experiment(stubs, "idle, min_ping_interval 100 ms", relaxed[:1], 8, 0.2),
        experiment(stubs, "idle, 100 ms, permit_without_calls", relaxed, 8, 0.2),
        experiment(stubs, "a call in flight, 100 ms", relaxed[:1], 8, 0.2, setup=sleep),
        experiment(stubs, "idle, max_ping_strikes=2 (explicit)",
                   ["grpc.http2.max_ping_strikes=2"], 10, 0.05),
        experiment(stubs, "idle, max_ping_strikes=1", ["grpc.http2.max_ping_strikes=1"],
                   10, 0.05),
        experiment(stubs, "idle, max_ping_strikes=0 (no limit)",
                   ["grpc.http2.max_ping_strikes=0"], 10, 0.05),
    ]


def check(r):
    calm = ("ENHANCE_YOUR_CALM", "too_many_pings")

    def punished(x, at):
        return x["at"] == at and x["goaway"][1:] == calm and x["closed"]

    want = [
        (punished(r[0], 5) and punished(r[1], 5), "idle: GOAWAY too_many_pings at PING 5"),
        (r[2]["goaway"] is not None and r[2]["goaway"][1:] == calm and r[2]["at"] <= 6,
         "a call in flight, server silent: GOAWAY too_many_pings by PING 6"),
        (r[3]["goaway"] is None, "a call answered before each PING: no GOAWAY"),
        (r[4]["goaway"] is None and r[5]["goaway"] is None,
         "HEADERS/DATA either way between PINGs (a call sent; answers arriving): no GOAWAY"),
        (punished(r[6], 5), "idle, min interval lowered only: still GOAWAY at PING 5"),
        (r[7]["goaway"] is None and r[8]["goaway"] is None,
         "lowered min interval (+ permit_without_calls when idle): no GOAWAY"),
        (punished(r[9], 5) and punished(r[10], 4) and r[11]["goaway"] is None,
         "max_ping_strikes: default 2, GOAWAY at PING strikes + 3, 0 = no limit"),
    ]
    bad = [what for ok, what in want if not ok]
    for what in bad:
        print("CHECK FAIL: expected %s" % what)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

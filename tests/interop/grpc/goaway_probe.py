#!/usr/bin/python3
"""What grpcio's server sends on server.stop(grace), seen with raw HTTP/2
frames (the H2 client of ping_probe.py), and what becomes of calls that
arrive while it says goodbye.

  /usr/bin/python3 -B goaway_probe.py --stubs DIR [--check]

Each experiment starts grpc_peer_server.py --log-calls, opens one
connection with a Sleep call in flight, sends SIGTERM and prints every frame
that comes back (time since the signal, type, stream, code), then what each
stream ended with and whether the servicer ran it ("event call" lines).
With --check, exits 1 unless the results are the ones docs/grpc.md records
(arpc's GOAWAY handling is written against them), 77 if the stubs are missing.
"""
import argparse
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ping_probe  # noqa: E402
from ping_probe import ACK, DATA, END_STREAM, ERRORS, GOAWAY, H2, HEADERS, PING, \
    RST_STREAM  # noqa: E402

NAMES = {DATA: "DATA", HEADERS: "HEADERS", RST_STREAM: "RST_STREAM", 4: "SETTINGS",
         PING: "PING", GOAWAY: "GOAWAY", 8: "WINDOW_UPDATE"}
MAX_ID = 2 ** 31 - 1


def grpc_status(block):
    """grpc-status from a header block when it is a literal (grpcio sends the first ones
    so, value not Huffman-coded); "?" otherwise."""
    at = block.find(b"\x0bgrpc-status")
    if at < 0 or at + 13 >= len(block) or block[at + 12] & 0x80:
        return "?"
    n = block[at + 12]
    return block[at + 13:at + 13 + n].decode("latin1")


class Probe(H2):
    """H2 that logs every frame and can hold its PING ACKs."""

    def __init__(self, port):
        H2.__init__(self, port)
        self.t0 = time.monotonic()
        self.log = []  # (ms, type name, stream, detail)
        self.goaways = []  # last stream ids, in order
        self.hold_pings = False
        self.held = []
        self.ends = {}  # stream -> "message+trailers", "trailers only", "RST_STREAM(X)"
        self.got_data = set()

    def handle(self):
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        payload = self.buf[9:9 + n]
        detail = ""
        if ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaways.append(last)
            detail = "last=%d %s %r" % (last, ERRORS.get(code, code), payload[8:])
        elif ftype == RST_STREAM:
            code = struct.unpack(">I", payload)[0]
            detail = ERRORS.get(code, {8: "CANCEL", 7: "REFUSED_STREAM"}.get(code, str(code)))
            self.ends.setdefault(sid, "RST_STREAM(%s)" % detail)
        elif ftype == PING:
            detail = ("ACK " if flags & ACK else "") + payload.hex()
        elif ftype == DATA and n > 0:
            self.got_data.add(sid)
        elif ftype == HEADERS and flags & END_STREAM:
            # Trailers: grpc-status is HPACK-coded; a message before them means OK.
            self.ends.setdefault(sid, "message+trailers" if sid in self.got_data
                                 else "trailers only, grpc-status " + grpc_status(payload))
        if ftype not in (4, 8):
            self.log.append(((time.monotonic() - self.t0) * 1000, NAMES.get(ftype, ftype),
                             sid, detail))
        if ftype == PING and not flags & ACK and self.hold_pings:
            self.buf = self.buf[9 + n:]
            self.held.append(payload)
            return
        H2.handle(self)

    def release(self):
        self.hold_pings = False
        for p in self.held:
            self.frame(PING, ACK, 0, p)
        self.held = []


class Server:
    def __init__(self, stubs):
        cmd = [sys.executable, "-B", os.path.join(HERE, "grpc_peer_server.py"), "--stubs", stubs,
               "--listen", "127.0.0.1:0", "--grace", "3", "--log-calls"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if self.proc.poll() == 77 or not line.startswith("listening on "):
            self.proc.wait()
            sys.exit(77 if self.proc.returncode == 77 else 1)
        self.port = int(line.rsplit(":", 1)[1])
        self.lines = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()
        self.seen = []

    def read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return False
            self.seen.append(line)
            if line.startswith(prefix):
                return True

    def calls(self):
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return [x[len("event call "):] for x in self.seen if x.startswith("event call ")]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)


def experiment(stubs, name, late_calls, sleep_ms=1000):
    """A Sleep(1000) in flight on stream 1, then SIGTERM; late_calls(conn, srv) may send
    more calls as the GOAWAYs come.  Returns what happened."""
    srv = Server(stubs)
    conn = Probe(srv.port)
    try:
        conn.pump(lambda: False, 0.2)
        conn.call(1, b"Sleep", b"%d" % sleep_ms)
        assert srv.wait("event call Sleep", 5), "the Sleep did not start"
        conn.log, conn.t0 = [], time.monotonic()
        srv.stop()
        late = late_calls(conn, srv)
        try:
            conn.pump(lambda: len(conn.goaways) >= 2 and all(s in conn.ends for s in [1] + late),
                      8)
            conn.release()
            closed = conn.closed_after(3)
        except (ping_probe.Closed, OSError):
            closed = True
    finally:
        conn.sock.close()
        srv.proc.wait(15)
    print("== %s" % name)
    for ms, t, sid, detail in conn.log:
        print("  %7.1f ms  %-10s stream %d %s" % (ms, t, sid, detail))
    ran = srv.calls()
    for sid in [1] + late:
        print("  stream %d: %s" % (sid, conn.ends.get(sid, "no end (ignored)")))
    print("  servicer ran: %s; connection %s" % (ran, "closed" if closed else "open"),
          flush=True)
    return {"goaways": conn.goaways, "ends": conn.ends, "ran": ran, "closed": closed}


def none(conn, srv):
    return []


def between(conn, srv):
    """Echo calls on streams 3 and 5 after the first GOAWAY, before its PING is ACKed."""
    conn.hold_pings = True
    conn.pump(lambda: len(conn.goaways) >= 1, 5)
    conn.pump(lambda: conn.held, 2)
    conn.call(3, b"Echo", b"between-3")
    conn.call(5, b"Echo", b"between-5")
    conn.pump(lambda: False, 0.3)
    conn.release()
    return [3, 5]


def after(conn, srv):
    """An Echo call on stream 3 after the second GOAWAY (above its last id)."""
    conn.pump(lambda: len(conn.goaways) >= 2, 5)
    conn.call(3, b"Echo", b"after-3")
    return [3]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stubs", required=True)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    r = [experiment(args.stubs, "a Sleep in flight, SIGTERM", none),
         experiment(args.stubs, "Echo calls sent between the two GOAWAYs", between),
         experiment(args.stubs, "an Echo call sent after the second GOAWAY", after),
         experiment(args.stubs, "a Sleep(5000) past the grace (3 s)", none, 5000)]
    if not args.check:
        return 0
    want = [
        (all(x["goaways"][:1] == [MAX_ID] for x in r), "a first GOAWAY with last id 2^31-1"),
        (r[0]["goaways"][1:] == [1] and r[0]["ends"].get(1) == "message+trailers",
         "then GOAWAY(last=1); the call in flight finishes"),
        (r[1]["goaways"][1:] == [5] and r[1]["ran"] == ["Sleep 1000"] and
         all(r[1]["ends"].get(k) == "trailers only, grpc-status 1" for k in (3, 5)),
         "calls between the GOAWAYs: Trailers-Only CANCELLED, never run, within the last id"),
        (r[2]["goaways"][1:] == [1] and 3 not in r[2]["ends"] and "Echo after-3" not in r[2]["ran"],
         "a stream above the second GOAWAY's last id is ignored, never run"),
        (r[3]["ends"].get(1) == "trailers only, grpc-status 14",
         "a call still running when the grace ends: Trailers-Only (UNAVAILABLE)"),
        (all(x["closed"] for x in r), "the connection closes once its calls are done"),
    ]
    bad = [what for ok, what in want if not ok]
    for what in bad:
        print("CHECK FAIL: expected %s" % what)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Counts the read- and write-family system calls per request on each side of
# an arpc echo benchmark with 64 calls in flight on one connection (target:
# at most one read and one write per 16 requests on each side).  Uses perf's
# syscall tracepoints, which cost far less than strace's ptrace stops and so
# do not change how much work each loop iteration batches.
#
#   bench/syscalls.sh [BUILD_BIN_DIR]     (default build/bin)
set -euo pipefail
bin=${1:-build/bin}
secs=${BENCH_SECS:-3}
events=syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The server runs under perf; perf forwards SIGINT to it, which makes it
# shut down and report how many requests it served.
timeout 120 perf stat -x, -e "$events" -o "$work/server.perf" -- \
    "$bin/arpc-echo-server" --listen 127.0.0.1:0 --threads 1 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 1 200); do
    grep -q "listening on" "$work/server.out" 2>/dev/null && break
    sleep 0.05
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/server.out")
[ -n "$port" ] || { echo "syscalls.sh: server did not start" >&2; exit 1; }

perf stat -x, -e "$events" -o "$work/client.perf" -- \
    "$bin/arpc-bench" --target "127.0.0.1:$port" --conns 1 --depth 64 --size 64 \
    --secs "$secs" --mode coro >"$work/client.out"
kill -INT "$server_pid"
wait "$server_pid" || true
server_pid=""

requests=$(sed -n 's/.*: \([0-9]*\) requests served.*/\1/p' "$work/server.err")
[ -n "$requests" ] && [ "$requests" -gt 0 ] || { echo "syscalls.sh: no request count" >&2; exit 1; }

count() { # file, comma-separated event names -> sum
    awk -F, -v names="$2" 'BEGIN { n = split(names, want, " ") }
        { for (i = 1; i <= n; i++) if ($3 == "syscalls:sys_enter_" want[i]) sum += $1 }
        END { print sum + 0 }' "$1"
}

cat "$work/client.out"
printf '%-7s %10s %10s %10s %16s %16s\n' side requests reads writes requests/read requests/write
for side in server client; do
    reads=$(count "$work/$side.perf" "read recvfrom")
    writes=$(count "$work/$side.perf" "write sendto sendmsg writev")
    printf '%-7s %10d %10d %10d %16.1f %16.1f\n' "$side" "$requests" "$reads" "$writes" \
        "$(echo "$requests / ($reads + 0.0001)" | bc -l)" "$(echo "$requests / ($writes + 0.0001)" | bc -l)"
done

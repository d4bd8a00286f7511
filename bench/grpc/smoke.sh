#!/usr/bin/env bash
# bench/grpc/smoke.sh BIN_DIR -- ctest grpc_bench_smoke (label bench): starts
# grpc-echo-server on an ephemeral 127.0.0.1 port, runs grpc-bench against it for
# 1 s (2 connections, depth 4) and passes if it prints a result line with qps > 0
# and errors=0, grpc-bench --stream (2 streams, depth 8) gets msgs_per_s > 0 and
# errors=0, Sleep rejects a bad argument, smoke_check.py's protocol checks
# pass (when grpcio is installed), and the server then stops on SIGTERM.  Every process runs under
# `timeout` and is stopped by its PID.
set -euo pipefail

BIN=${1:?usage: smoke.sh BIN_DIR}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/grpc-smoke.XXXXXX")
# shellcheck source=bench/smoke_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../smoke_lib.sh"

smoke_start_server "$BIN/grpc-echo-server"

out=$(timeout -k 5 30 "$BIN/grpc-bench" --target "$ADDR" --conns 2 --depth 4 --size 64 \
    --secs 1) || fail "grpc-bench exited with status $?: $out"
echo "$out"
[[ $out == "system=grpc protocol=grpc mode=async conns=2 depth=4 size=64 qps="* ]] ||
    fail "unexpected result line"
[[ $out == *" errors=0" ]] || fail "errors"
[[ $out != *" qps=0 "* ]] || fail "no calls"

# Streams: 2 bidirectional streams of depth 8 on Stream, every echo back.
out=$(timeout -k 5 30 "$BIN/grpc-bench" --target "$ADDR" --stream --streams 2 --depth 8 \
    --secs 1) || fail "grpc-bench --stream exited with status $?: $out"
echo "$out"
[[ $out == "system=grpc mode=stream protocol=grpc conns=1 streams=2 depth=8 size=64 msgs_per_s="* ]] ||
    fail "unexpected stream result line"
[[ $out == *" errors=0" ]] || fail "stream errors"
[[ $out != *" msgs_per_s=0 "* ]] || fail "no stream messages"

# The Sleep method answers after the requested time, and a bad argument is an error:
# exercised through grpc-bench's --method with a size whose pattern bytes are not a
# number, so every call fails with INVALID_ARGUMENT and counts as an error.
out=$(timeout -k 5 30 "$BIN/grpc-bench" --target "$ADDR" --method /arpc.echo.Echo/Sleep \
    --size 8 --secs 1) || true
[[ $out == *" qps=0 "* && $out != *" errors=0" ]] || fail "Sleep with a bad argument: $out"

# Metadata, Sleep's timing and status codes, with grpcio when it is installed.
if /usr/bin/python3 -c 'import grpc' 2>/dev/null; then
    timeout -k 5 30 /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/smoke_check.py" "$ADDR" ||
        fail "smoke_check.py"
else
    echo "smoke: python3-grpcio not installed, protocol checks skipped"
fi

smoke_stop_server

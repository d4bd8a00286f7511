#!/usr/bin/env bash
# bench/thrift/smoke.sh BIN_DIR -- ctest thrift_bench_smoke (label bench): starts
# thrift-echo-server on an ephemeral 127.0.0.1 port, runs thrift-bench against it for
# 1 s (2 connections, depth 4) and passes if it prints a result line with qps > 0 and
# errors=0, arpc-bench --protocol thrift (when built) gets the same against it (arpc's
# client and Thrift C++'s server agree on the wire), and the server then stops on
# SIGTERM with status 0.  Every process runs under `timeout` and is stopped by its PID.
set -euo pipefail

BIN=${1:?usage: smoke.sh BIN_DIR}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/thrift-smoke.XXXXXX")
# shellcheck source=bench/smoke_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../smoke_lib.sh"

smoke_start_server "$BIN/thrift-echo-server"

out=$(timeout -k 5 30 "$BIN/thrift-bench" --target "$ADDR" --conns 2 --depth 4 --size 64 \
    --secs 1) || fail "thrift-bench exited with status $?: $out"
echo "$out"
[[ $out == "system=thrift mode=sync conns=2 depth=4 size=64 qps="* ]] || fail "unexpected result line"
[[ $out == *" errors=0 protocol=thrift" ]] || fail "errors"
[[ $out != *" qps=0 "* ]] || fail "no calls"

# arpc's Thrift client against Thrift C++'s server: the pairing run.sh measures.
if [[ -x $BIN/arpc-bench ]]; then
    out=$(timeout -k 5 30 "$BIN/arpc-bench" --protocol thrift --target "$ADDR" --conns 2 \
        --depth 4 --size 64 --secs 1 --threads 1) || fail "arpc-bench exited with status $?: $out"
    echo "$out"
    [[ $out == *" errors=0"* ]] || fail "arpc-bench errors"
    [[ $out != *" qps=0 "* ]] || fail "arpc-bench made no calls"
fi

smoke_stop_server

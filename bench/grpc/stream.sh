#!/usr/bin/env bash
# bench/grpc/stream.sh -- streaming messages per second, arpc against gRPC C++
# (issue #12's last item; run by `make bench` after bench/run.sh when the gRPC
# C++ programs are built).
#
# Starts on 127.0.0.1, each on an ephemeral port read from its "listening on
# HOST:PORT" line:
#   grpc-echo-server --threads 1    (gRPC C++ async server, bench/grpc/)
#   arpc-echo-server --threads 1
# then, per shape, one client thread each, one after the other, all on
# /arpc.echo.Echo/Stream (bidirectional echo), EchoMsg{data: S bytes} over gRPC:
#   arpc-bench --stream                  -> arpc-echo-server   arpc native
#   arpc-bench --stream --protocol grpc  -> arpc-echo-server   arpc over gRPC
#   arpc-bench --stream --protocol grpc  -> grpc-echo-server   arpc's client, gRPC C++ server
#   grpc-bench --stream                  -> grpc-echo-server   gRPC C++ on both sides
#   grpc-bench --stream                  -> arpc-echo-server   gRPC C++ client, arpc's server
# Shapes: 1 stream of depth 64, and 16 streams of depth 16, 64-byte messages,
# one connection.  The 4x target is read as for the unary rows
# (bench/grpc/run.sh): arpc's server against gRPC C++'s under the same client
# (arpc-bench), arpc's client against gRPC C++'s on the same server
# (arpc-echo-server); the pairings under grpc-bench are context.  Prints a
# table (messages per second, latency from a message's due time to its echo,
# each side's CPU per wall second, ratios within this run) and appends it with
# the machine's description to bench/RESULTS.md.
#
# Environment: BENCH_SECS (default 5), BENCH_BIN (default <repo>/build/bin),
# BENCH_RESULTS (default <repo>/bench/RESULTS.md; "-" = don't).
#
# Every process runs under `timeout`; on exit the script stops the servers it
# started (by PID) and nothing else.  Exit status: 0 if every run produced a
# result, 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BENCH_BIN:-$ROOT/build/bin}
SECS=${BENCH_SECS:-5}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}
HOST=127.0.0.1
SERVER_LIFETIME=600
READY_TIMEOUT=10
COMMAND="bench/grpc/stream.sh${*:+ $*} (BENCH_SECS=$SECS)"
TICKS=$(getconf CLK_TCK)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

bench_check_range BENCH_SECS "$SECS" 1 600
bench_require_progs "grpc-* need libgrpc++-dev" grpc-bench grpc-echo-server arpc-bench arpc-echo-server

bench_workdir stream-bench

RESULT_FIELD=msgs_per_s
# shellcheck source=bench/grpc/measure.sh
source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"

start_server grpc "$BIN/grpc-echo-server" --threads 1
GRPC=$ADDR
start_server arpc "$BIN/arpc-echo-server" --threads 1
ARPC=$ADDR

# Shapes: key, streams, depth, size.
SHAPES=("s1 1 64 64" "s16 16 16 64")
echo "running $((2 * 5)) clients of ~$((SECS + 2)) s each" >&2
for shape in "${SHAPES[@]}"; do
    read -r key n d s <<<"$shape"
    common=(--stream --streams "$n" --depth "$d" --size "$s" --secs "$SECS")
    run "$key:arpc" arpc "$BIN/arpc-bench" --target "$ARPC" "${common[@]}" --threads 1
    run "$key:arpcgrpc" arpc "$BIN/arpc-bench" --protocol grpc --target "$ARPC" "${common[@]}" \
        --threads 1
    run "$key:arpcgrpc-grpcsrv" grpc "$BIN/arpc-bench" --protocol grpc --target "$GRPC" \
        "${common[@]}" --threads 1
    run "$key:grpc" grpc "$BIN/grpc-bench" --target "$GRPC" "${common[@]}"
    run "$key:grpc-arpcsrv" arpc "$BIN/grpc-bench" --target "$ARPC" "${common[@]}"
done

# ---- the table ------------------------------------------------------------------

declare -A SHAPE_NAME=([s1]="1 stream, depth 64, 64 B" [s16]="16 streams, depth 16, 64 B")

table_start "msgs/s"

for shape in "${SHAPES[@]}"; do
    read -r key _ <<<"$shape"
    name=${SHAPE_NAME[$key]}
    q_nat=$(field "${LINE[$key:arpc]:-}" msgs_per_s)
    q_aa=$(field "${LINE[$key:arpcgrpc]:-}" msgs_per_s)
    q_ag=$(field "${LINE[$key:arpcgrpc-grpcsrv]:-}" msgs_per_s)
    q_gg=$(field "${LINE[$key:grpc]:-}" msgs_per_s)
    q_ga=$(field "${LINE[$key:grpc-arpcsrv]:-}" msgs_per_s)
    srv=$(ratio "$q_aa" "$q_ag") cli=$(ratio "$q_aa" "$q_ga")
    row "$name" "grpc-bench → grpc-echo-server (gRPC)" "$key:grpc" "1 (gRPC C++ both sides)" ""
    row "$name" "grpc-bench → arpc-echo-server (gRPC)" "$key:grpc-arpcsrv" \
        "server arpc / gRPC C++ under grpc-bench $(ratio "$q_ga" "$q_gg")" ""
    row "$name" "arpc-bench → grpc-echo-server (gRPC)" "$key:arpcgrpc-grpcsrv" \
        "client arpc / gRPC C++ against grpc-echo-server $(ratio "$q_ag" "$q_gg")" ""
    row "$name" "arpc-bench → arpc-echo-server (gRPC)" "$key:arpcgrpc" \
        "server arpc / gRPC C++ under arpc-bench $srv; client arpc / gRPC C++ against arpc-echo-server $cli; end to end / gRPC C++ $(ratio "$q_aa" "$q_gg")" \
        "server >= 4: $(check "$srv" ">=" 4); client >= 4: $(check "$cli" ">=" 4)"
    row "$name" "arpc-bench → arpc-echo-server (native)" "$key:arpc" \
        "/ arpc over gRPC $(ratio "$q_nat" "$q_aa"), / gRPC C++ $(ratio "$q_nat" "$q_gg")" ""
done

echo
cat "$TABLE"

grpc_version=$(dpkg-query -W -f='${Version}' libgrpc++-dev 2>/dev/null || echo unknown)
append_results "streams, arpc against gRPC C++" \
    "every client and server on one thread, one connection, on 127.0.0.1" \
    "- gRPC C++: Debian libgrpc++-dev $grpc_version (bench/grpc/)" "$TABLE" "$WORK/raw.txt"
exit "$FAILED"

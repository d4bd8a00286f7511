#!/usr/bin/env bash
# bench/thrift/run.sh -- Thrift C++ against arpc over Thrift's framed binary
# protocol on shapes (b)-(d) (issue #16's "Thrift C++ baseline"), with arpc's
# native rows of the same run for context.
#
# Starts on 127.0.0.1, each on an ephemeral port read from its "listening on
# HOST:PORT" line:
#   thrift-echo-server --threads 1   (Thrift C++ TNonblockingServer, bench/thrift/)
#   arpc-echo-server --threads 1     (serves echo.thrift's Echo on its one port)
# then, per shape, one client thread each, one after the other:
#   thrift-bench                    -> thrift-echo-server   Thrift C++ end to end
#   thrift-bench                    -> arpc-echo-server     arpc's server, same client
#   arpc-bench --protocol thrift    -> thrift-echo-server   arpc's client, same server
#   arpc-bench --protocol thrift    -> arpc-echo-server     arpc over Thrift end to end
#   arpc-bench                      -> arpc-echo-server     arpc native, for context
# The issue's 3x targets: arpc's server against Thrift C++'s under the same
# client, and arpc's client against Thrift C++'s on the same server.  As in
# bench/grpc/run.sh, each is read on the pairing where the other side is not
# the bottleneck: the server ratio under arpc-bench (arpc over Thrift end to
# end / arpc-bench -> thrift-echo-server) and the client ratio against
# arpc-echo-server (arpc end to end / thrift-bench -> arpc-echo-server); the
# ratios under the Thrift C++ peer (thrift-bench -> arpc-echo-server over
# Thrift C++ end to end, arpc-bench -> thrift-echo-server over the same) are
# printed beside them, because a peer that saturates its own core caps them.
# Every run is repeated BENCH_ROUNDS times, interleaved round by round, and
# the table shows each pairing's median round.  Prints a table (qps, latency,
# the CPU each side used per wall second over the client's whole run, ratios
# within this run) and appends it with the
# machine's description to bench/RESULTS.md.
#
# Environment:
#   BENCH_SECS      measured seconds per run (default 5; each run adds 1 s warm-up)
#   BENCH_BIN       directory of the binaries (default <repo>/build/bin)
#   BENCH_RESULTS   file to append to (default <repo>/bench/RESULTS.md; "-" = don't)
#   BENCH_ROUNDS    rounds of every run, interleaved (default 3); the table shows
#                   each pairing's median round by qps, the raw lines all rounds
#
# Every process runs under `timeout`, so it stops by itself even if this script
# is killed; on exit the script stops the servers it started (by PID) and
# nothing else.  Exit status: 0 if every run produced a result, 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BENCH_BIN:-$ROOT/build/bin}
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}
HOST=127.0.0.1
SERVER_LIFETIME=900 # seconds; a server outlives no run of this script
READY_TIMEOUT=10    # seconds to wait for a server's "listening on" line
COMMAND="bench/thrift/run.sh${*:+ $*} (BENCH_SECS=$SECS BENCH_ROUNDS=$ROUNDS)"
TICKS=$(getconf CLK_TCK)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

bench_check_range BENCH_SECS "$SECS" 1 600
bench_check_range BENCH_ROUNDS "$ROUNDS" 1 20
bench_require_progs "make build; thrift-* need libthrift-dev" thrift-bench thrift-echo-server \
    arpc-bench arpc-echo-server

bench_workdir thrift-bench

# shellcheck source=bench/grpc/measure.sh
source "$ROOT/bench/grpc/measure.sh"

start_server thrift "$BIN/thrift-echo-server" --threads 1
THRIFT=$ADDR
start_server arpc "$BIN/arpc-echo-server" --threads 1
ARPC=$ADDR

SHAPES=("b 1 64 64" "c 4 64 64" "d 4 16 4096")
KINDS=(thrift thrift-arpcsrv arpc-thriftsrv arpcthrift arpc)
echo "running $((3 * 5 * ROUNDS)) clients of ~$((SECS + 2)) s each" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    for shape in "${SHAPES[@]}"; do
        read -r key c d s <<<"$shape"
        common=(--conns "$c" --depth "$d" --size "$s" --secs "$SECS")
        run "$key:thrift:$round" thrift "$BIN/thrift-bench" --target "$THRIFT" "${common[@]}"
        run "$key:thrift-arpcsrv:$round" arpc "$BIN/thrift-bench" --target "$ARPC" "${common[@]}"
        run "$key:arpc-thriftsrv:$round" thrift "$BIN/arpc-bench" --protocol thrift \
            --target "$THRIFT" "${common[@]}" --mode coro --threads 1
        run "$key:arpcthrift:$round" arpc "$BIN/arpc-bench" --protocol thrift --target "$ARPC" \
            "${common[@]}" --mode coro --threads 1
        run "$key:arpc:$round" arpc "$BIN/arpc-bench" --target "$ARPC" "${common[@]}" \
            --mode coro --threads 1
    done
done

# The median round by qps stands for each pairing (the machine is shared: one
# run in a round that something else disturbed does not decide a ratio).
for shape in "${SHAPES[@]}"; do
    read -r key _ <<<"$shape"
    for kind in "${KINDS[@]}"; do
        pick=$(for ((round = 1; round <= ROUNDS; round++)); do
            echo "$(field "${LINE[$key:$kind:$round]:-}" qps) $round"
        done | sort -n | sed -n "$(((ROUNDS + 1) / 2))p" | cut -d' ' -f2)
        LINE[$key:$kind]=${LINE[$key:$kind:$pick]:-}
        CPU[$key:$kind]=${CPU[$key:$kind:$pick]:-}
    done
done

# ---- the table ------------------------------------------------------------------

declare -A SHAPE_NAME=(
    [b]="(b) c=1 d=64 s=64"
    [c]="(c) c=4 d=64 s=64"
    [d]="(d) c=4 d=16 s=4096"
)

table_start "qps"

for shape in "${SHAPES[@]}"; do
    read -r key _ <<<"$shape"
    name=${SHAPE_NAME[$key]}
    q1=$(field "${LINE[$key:thrift]:-}" qps)
    q2=$(field "${LINE[$key:thrift-arpcsrv]:-}" qps)
    q3=$(field "${LINE[$key:arpc-thriftsrv]:-}" qps)
    q4=$(field "${LINE[$key:arpcthrift]:-}" qps)
    aq=$(field "${LINE[$key:arpc]:-}" qps)
    srv=$(ratio "$q4" "$q3") cli=$(ratio "$q4" "$q2") nat=$(ratio "$q4" "$aq")
    targets="server >= 3: $(check "$srv" ">=" 3); client >= 3: $(check "$cli" ">=" 3)"
    row "$name" "thrift-bench → thrift-echo-server (Thrift)" "$key:thrift" "1 (baseline)" ""
    row "$name" "thrift-bench → arpc-echo-server (Thrift)" "$key:thrift-arpcsrv" \
        "server arpc / Thrift C++ under thrift-bench $(ratio "$q2" "$q1")" ""
    row "$name" "arpc-bench coro → thrift-echo-server (Thrift)" "$key:arpc-thriftsrv" \
        "client arpc / Thrift C++ against thrift-echo-server $(ratio "$q3" "$q1")" ""
    row "$name" "arpc-bench coro → arpc-echo-server (Thrift)" "$key:arpcthrift" \
        "server arpc / Thrift C++ under arpc-bench $srv; client arpc / Thrift C++ against arpc-echo-server $cli; / arpc native $nat" \
        "$targets"
    row "$name" "arpc-bench coro → arpc-echo-server (native)" "$key:arpc" \
        "/ Thrift C++ end to end $(ratio "$aq" "$q1")" ""
done

echo
cat "$TABLE"

thrift_version=$(dpkg-query -W -f='${Version}' libthrift-dev 2>/dev/null || echo unknown)
append_results "Thrift C++ baseline" "every client and server on one thread, on 127.0.0.1" \
    "- Thrift C++: Debian libthrift-dev $thrift_version (bench/thrift/: TNonblockingServer, generated client)" \
    "$TABLE" "$WORK/raw.txt"
exit "$FAILED"

#!/usr/bin/env bash
# bench/run.sh -- arpc against the raw-socket baselines on this machine (`make bench`).
#
# Starts on 127.0.0.1, each on an ephemeral port read from its "listening on
# HOST:PORT" line:
#   arpc-echo-server --threads 1                      (arpc shapes a-f)
#   arpc-echo-server --threads 1 --busy-poll-us N     (arpc shapes a-e, busy polling)
#   arpc-echo-server --threads 1 --relay <the first>  (shape g: two tiers)
#   raw-pingpong-server                               (baseline of shape a)
#   raw-pipelined-server --threads 1                  (baseline of shapes b-e)
# then runs every shape with one client thread, interleaved per shape (arpc
# coro, arpc async, arpc coro with busy polling on both sides, baseline),
# prints a table of results and ratios, and appends it with the machine's
# description to bench/RESULTS.md.  Then, when grpc-bench is built, it runs
# bench/grpc/stream.sh (streams, arpc against gRPC C++), which appends its own,
# and, when thrift-bench is built, bench/thrift/run.sh (arpc against Thrift C++
# over Thrift on shapes b-d), which appends its own too, and bench/tls/run.sh (TLS
# against plaintext on shapes b-d, handshakes per second), which appends its own.
#
# Environment:
#   BENCH_SECS     measured seconds per run (default 5; each run adds 1 s warm-up)
#   BENCH_BIN      directory of the binaries (default <repo>/build/bin)
#   BENCH_RESULTS  file to append to (default <repo>/bench/RESULTS.md; "-" = don't)
#   BENCH_BUSY_POLL_US  busy-poll window of the coro-bp rows (default 50)
#
# Every server runs under `timeout`, so it stops by itself even if this script
# is killed; on exit the script stops the servers it started (by PID) and
# nothing else.  Exit status: 0 if every run produced a result, 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BENCH_BIN:-$ROOT/build/bin}
SECS=${BENCH_SECS:-5}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}
BUSY_POLL_US=${BENCH_BUSY_POLL_US:-50}
HOST=127.0.0.1
COMMAND="bench/run.sh${*:+ $*} (BENCH_SECS=$SECS)"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if ! [[ $SECS =~ ^[0-9]+$ ]] || ((SECS < 1 || SECS > 600)); then
    die "BENCH_SECS must be 1..600, got '$SECS'"
fi
if ! [[ $BUSY_POLL_US =~ ^[0-9]+$ ]] || ((BUSY_POLL_US < 1 || BUSY_POLL_US > 1000000)); then
    die "BENCH_BUSY_POLL_US must be 1..1000000, got '$BUSY_POLL_US'"
fi
for prog in arpc-bench arpc-echo-server raw-pingpong raw-pingpong-server raw-pipelined \
    raw-pipelined-server; do
    [[ -x $BIN/$prog ]] || die "$BIN/$prog is missing: build first (make build)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/arpc-bench.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A LINE TAIL
FAILED=0
RUNS=0

# run KEY CMD...: runs a client, stores its result line in LINE[KEY] (and a
# tail line in TAIL[KEY]).  A run that prints no result counts as failed.
run() {
    local key=$1 out rc=0
    shift
    RUNS=$((RUNS + 1))
    echo "[$RUNS] ${*#"$BIN"/}" >&2
    out=$(timeout -k 5 $((SECS + 60)) "$@" 2>>"$WORK/clients.err") || rc=$?
    LINE[$key]=$(grep -m1 '^system=.* qps=' <<<"$out" || true)
    TAIL[$key]=$(grep -m1 ' tail_pct=' <<<"$out" || true)
    {
        echo "\$ ${*#"$BIN"/}"
        if [[ -n $out ]]; then echo "$out"; fi
        if ((rc != 0)); then echo "(exit status $rc)"; fi
    } >>"$WORK/raw.txt"
    if [[ -z ${LINE[$key]} ]]; then
        FAILED=1
        echo "    no result (exit status $rc)" >&2
    else
        echo "    ${LINE[$key]}" >&2
    fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
ARPC=$BIN/arpc-bench
start_server echo "$BIN/arpc-echo-server" --threads 1
ECHO=$ADDR
start_server echo-bp "$BIN/arpc-echo-server" --threads 1 --busy-poll-us "$BUSY_POLL_US"
ECHO_BP=$ADDR
start_server relay "$BIN/arpc-echo-server" --threads 1 --relay "$ECHO"
RELAY=$ADDR
start_server pingpong "$BIN/raw-pingpong-server"
PINGPONG=$ADDR
start_server pipelined "$BIN/raw-pipelined-server" --threads 1
PIPELINED=$ADDR

# Shapes: key, conns, depth, size.
SHAPES=("a 1 1 64" "b 1 64 64" "c 4 64 64" "d 4 16 4096" "e 1000 1 64")
echo "running 25 clients of ~$((SECS + 2)) s each" >&2
for shape in "${SHAPES[@]}"; do
    read -r key c d s <<<"$shape"
    common=(--conns "$c" --depth "$d" --size "$s" --secs "$SECS")
    run "$key:coro" "$ARPC" --target "$ECHO" "${common[@]}" --mode coro --threads 1
    run "$key:async" "$ARPC" --target "$ECHO" "${common[@]}" --mode async --threads 1
    run "$key:coro-bp" "$ARPC" --target "$ECHO_BP" "${common[@]}" --mode coro --threads 1 \
        --busy-poll-us "$BUSY_POLL_US"
    if [[ $key == a ]]; then
        run "$key:base" "$BIN/raw-pingpong" --target "$PINGPONG" "${common[@]}"
        # Not a target: the same ping-pong through a bare epoll loop, the floor
        # of any event-loop design (arpc's default wait is this epoll_wait).
        run "$key:epoll" "$BIN/raw-pipelined" --target "$PIPELINED" "${common[@]}" --threads 1
    else
        run "$key:base" "$BIN/raw-pipelined" --target "$PIPELINED" "${common[@]}" --threads 1
    fi
done
for mode in coro async; do
    run "f:$mode" "$ARPC" --target "$ECHO" --conns 4 --depth 64 --size 64 --secs "$SECS" \
        --mode "$mode" --threads 1 --tail-pct 1 --tail-ms 10
done
for mode in coro async; do
    run "g:$mode" "$ARPC" --target "$RELAY" --conns 1 --depth 64 --size 64 --secs "$SECS" \
        --mode "$mode" --threads 1
done

# ---- the table ------------------------------------------------------------------

declare -A QPS_TARGET=([b]=0.8 [c]=0.25 [d]=0.6 [e]=0.5)
declare -A SHAPE_NAME=(
    [a]="(a) c=1 d=1 s=64"
    [b]="(b) c=1 d=64 s=64"
    [c]="(c) c=4 d=64 s=64"
    [d]="(d) c=4 d=16 s=4096"
    [e]="(e) c=1000 d=1 s=64"
    [f]="(f) = (c) + 1% sleep 10ms"
    [g]="(g) = (b) via relay"
)

TABLE=$WORK/table.md
{
    echo "| shape | system/mode | qps | p50 us | p99 us | p999 us | errors | ratio | target |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
} >"$TABLE"

# row SHAPE LABEL LINE RATIOS TARGETS [PREFIX]: one table row; PREFIX "fast_"
# reads the fast-call fields of a tail line.
row() {
    local name=$1 label=$2 line=$3 ratios=$4 targets=$5 p=${6:-}
    if [[ -z $line ]]; then
        echo "| $name | $label | FAILED | | | | | | |" >>"$TABLE"
        return
    fi
    local errors
    errors=$(field "$line" errors)
    echo "| $name | $label | $(field "$line" "${p}qps") | $(field "$line" "${p}p50_us") |" \
        "$(field "$line" "${p}p99_us") | $(field "$line" "${p}p999_us") | ${errors:--} |" \
        "$ratios | $targets |" >>"$TABLE"
}

for shape in "${SHAPES[@]}"; do
    read -r key _ <<<"$shape"
    base=${LINE[$key:base]}
    base_label=$([[ $key == a ]] && echo "raw-pingpong" || echo "raw-pipelined")
    for mode in coro async coro-bp; do
        line=${LINE[$key:$mode]}
        qr=$(ratio "$(field "$line" qps)" "$(field "$base" qps)")
        p99r=$(ratio "$(field "$line" p99_us)" "$(field "$base" p99_us)")
        if [[ $key == a ]]; then
            p50r=$(ratio "$(field "$line" p50_us)" "$(field "$base" p50_us)")
            ratios="qps $qr, p50 $p50r, p99 $p99r"
            targets="p50 <= 1.15: $(check "$p50r" "<=" 1.15); p99 <= 2: $(check "$p99r" "<=" 2)"
        else
            ratios="qps $qr, p99 $p99r"
            targets="qps >= ${QPS_TARGET[$key]}: $(check "$qr" ">=" "${QPS_TARGET[$key]}"); p99 <= 2: $(check "$p99r" "<=" 2)"
        fi
        label="arpc $mode"
        [[ $mode == coro-bp ]] && label="arpc coro, busy-poll ${BUSY_POLL_US} us"
        row "${SHAPE_NAME[$key]}" "$label" "$line" "$ratios" "$targets"
    done
    row "${SHAPE_NAME[$key]}" "$base_label" "$base" "1 (baseline)" ""
    if [[ $key == a ]]; then
        line=${LINE[a:epoll]}
        p50r=$(ratio "$(field "$line" p50_us)" "$(field "$base" p50_us)")
        row "${SHAPE_NAME[a]}" "raw-pipelined, depth 1 (epoll loop, reference)" "$line" \
            "p50 $p50r" ""
    fi
done
for mode in coro async; do
    line=${LINE[f:$mode]}
    row "${SHAPE_NAME[f]}" "arpc $mode, all calls" "$line" "" ""
    tail_line=${TAIL[f:$mode]}
    fr=$(ratio "$(field "$tail_line" fast_p99_us)" "$(field "${LINE[c:$mode]}" p99_us)")
    row "${SHAPE_NAME[f]}" "arpc $mode, fast calls" "$tail_line" "fast p99 / (c) p99 $fr" \
        "<= 1.5: $(check "$fr" "<=" 1.5)" fast_
done
for mode in coro async; do
    line=${LINE[g:$mode]}
    gr=$(ratio "$(field "$line" qps)" "$(field "${LINE[b:$mode]}" qps)")
    row "${SHAPE_NAME[g]}" "arpc $mode" "$line" "qps / arpc (b) qps $gr" \
        ">= 0.5: $(check "$gr" ">=" 0.5)"
done

echo
cat "$TABLE"

append_results "" "client and servers with --threads 1 on 127.0.0.1" "" "$TABLE" "$WORK/raw.txt"

# Streams against gRPC C++ (bench/grpc/stream.sh), when the gRPC C++ programs are built.
if [[ -x $BIN/grpc-bench && -x $BIN/grpc-echo-server ]]; then
    "$ROOT/bench/grpc/stream.sh" || FAILED=1
else
    echo "bench/run.sh: no gRPC C++ programs in $BIN: stream rows skipped" >&2
fi

# Thrift, arpc against Thrift C++ (bench/thrift/run.sh), when the Thrift C++ programs are built.
if [[ -x $BIN/thrift-bench && -x $BIN/thrift-echo-server ]]; then
    "$ROOT/bench/thrift/run.sh" || FAILED=1
else
    echo "bench/run.sh: no Thrift C++ programs in $BIN: Thrift rows skipped" >&2
fi

# TLS against plaintext on shapes (b)-(d), and handshakes per second (bench/tls/run.sh),
# when the openssl command is there to make the certificates.
if command -v openssl >/dev/null; then
    "$ROOT/bench/tls/run.sh" || FAILED=1
else
    echo "bench/run.sh: no openssl command: TLS rows skipped" >&2
fi
exit "$FAILED"

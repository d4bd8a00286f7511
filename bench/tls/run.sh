#!/usr/bin/env bash
# bench/tls/run.sh -- TLS against plaintext on shapes (b)-(d) (issue #14's
# target: >= 0.7x the plaintext qps with one thread per side), and handshakes
# per second.
#
# Makes a CA and a server certificate with tests/integration/tls/gen_certs.sh
# (EC P-256) in a temporary directory, then starts on 127.0.0.1
#   arpc-echo-server --threads 1 --tls-cert server.pem --tls-key server.key
# whose plaintext and TLS listeners share the one loop (ephemeral ports from
# its "listening on" and "tls listening on" lines).  Per shape, one client
# thread each, one after the other: arpc-bench native and over gRPC, each to
# the plaintext port and to the TLS port (--tls-ca, TLS 1.3, no client
# certificate).  Every run is repeated BENCH_ROUNDS times, interleaved round
# by round; the table shows each pairing's median round by qps, and the CPU
# each side used per wall second.  Then `openssl s_time -new` (full
# handshakes, one blocking client process, TLS 1.3 and TLS 1.2) counts
# handshakes per second against the TLS port: that client does as much ECDHE
# work as the server, so on a shared 2-core machine the number is a lower
# bound of what the server alone could take.  Appends the table to
# bench/RESULTS.md.
#
# Environment:
#   BENCH_SECS      measured seconds per run (default 5; each run adds 1 s warm-up)
#   BENCH_BIN       directory of the binaries (default <repo>/build/bin)
#   BENCH_RESULTS   file to append to (default <repo>/bench/RESULTS.md; "-" = don't)
#   BENCH_ROUNDS    rounds of every run, interleaved (default 3)
#
# Every process runs under `timeout`; on exit the script stops the server it
# started (by PID) and nothing else.  Exit status: 0 if every run produced a
# result, 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BENCH_BIN:-$ROOT/build/bin}
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}
HOST=127.0.0.1
SERVER_LIFETIME=900
READY_TIMEOUT=10
COMMAND="bench/tls/run.sh${*:+ $*} (BENCH_SECS=$SECS BENCH_ROUNDS=$ROUNDS)"
TICKS=$(getconf CLK_TCK)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if ! [[ $SECS =~ ^[0-9]+$ ]] || ((SECS < 1 || SECS > 600)); then
    die "BENCH_SECS must be 1..600, got '$SECS'"
fi
if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 20)); then
    die "BENCH_ROUNDS must be 1..20, got '$ROUNDS'"
fi
for prog in arpc-bench arpc-echo-server; do
    [[ -x $BIN/$prog ]] || die "$BIN/$prog is missing: build first (make build)"
done
command -v openssl >/dev/null || die "the openssl command is missing (Debian: openssl)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tls-bench.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=bench/grpc/measure.sh
source "$ROOT/bench/grpc/measure.sh"
declare -A LINE CPU
FAILED=0
RUNS=0

sh "$ROOT/tests/integration/tls/gen_certs.sh" "$WORK/certs" >/dev/null 2>&1 ||
    die "gen_certs.sh failed"
CA=$WORK/certs/ca.pem

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
start_server arpc "$BIN/arpc-echo-server" --threads 1 --tls-cert "$WORK/certs/server.pem" \
    --tls-key "$WORK/certs/server.key"
PLAIN=$ADDR
# The TLS listener's line follows the plaintext one on the same pipe.
if ! read -r -t "$READY_TIMEOUT" -u "${SERVER_FDS[-1]}" line || [[ $line != "tls listening on "* ]]; then
    die "arpc-echo-server printed no 'tls listening on' line: ${line:-}"
fi
TLS=${line#tls listening on }
echo "TLS listener on $TLS" >&2

SHAPES=("b 1 64 64" "c 4 64 64" "d 4 16 4096")
KINDS=(native native-tls grpc grpc-tls)
echo "running $((3 * 4 * ROUNDS)) clients of ~$((SECS + 2)) s each" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    for shape in "${SHAPES[@]}"; do
        read -r key c d s <<<"$shape"
        common=(--conns "$c" --depth "$d" --size "$s" --secs "$SECS" --mode coro --threads 1)
        run "$key:native:$round" arpc "$BIN/arpc-bench" --target "$PLAIN" "${common[@]}"
        run "$key:native-tls:$round" arpc "$BIN/arpc-bench" --target "$TLS" "${common[@]}" \
            --tls-ca "$CA"
        run "$key:grpc:$round" arpc "$BIN/arpc-bench" --protocol grpc --target "$PLAIN" \
            "${common[@]}"
        run "$key:grpc-tls:$round" arpc "$BIN/arpc-bench" --protocol grpc --target "$TLS" \
            "${common[@]}" --tls-ca "$CA"
    done
done

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

# handshakes VERSION_FLAG: full handshakes per second by `openssl s_time -new`.
handshakes() {
    local out n t
    echo "[hs] openssl s_time -connect $TLS -new $1 -time $SECS" >&2
    out=$(timeout -k 5 $((SECS + 30)) openssl s_time -connect "$TLS" -new "$1" -time "$SECS" \
        -CAfile "$CA" 2>&1 </dev/null || true)
    {
        echo "\$ openssl s_time -connect $TLS -new $1 -time $SECS -CAfile ca.pem"
        grep -E 'connections' <<<"$out" || echo "$out" | tail -3
    } >>"$WORK/raw.txt"
    # "N connections in T.TTs; R connections/user sec, bytes read 0"
    read -r n t < <(sed -n 's/^\([0-9]*\) connections in \([0-9.]*\)s;.*/\1 \2/p' <<<"$out" | head -1)
    if [[ -z ${n:-} ]]; then
        FAILED=1
        echo "n/a"
        return
    fi
    awk -v n="$n" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }'
}
HS13=$(handshakes -tls1_3)
HS12=$(handshakes -tls1_2)

# ---- the table ------------------------------------------------------------------

declare -A SHAPE_NAME=(
    [b]="(b) c=1 d=64 s=64"
    [c]="(c) c=4 d=64 s=64"
    [d]="(d) c=4 d=16 s=4096"
)

TABLE=$WORK/table.md
{
    echo "| shape | arpc-bench coro → arpc-echo-server | qps | p50 us | p99 us | p999 us | errors | cpu client / server | TLS / plaintext | target |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"
} >"$TABLE"

row() {
    local name=$1 label=$2 key=$3 ratios=$4 targets=$5 line
    line=${LINE[$key]:-}
    if [[ -z $line ]]; then
        echo "| $name | $label | FAILED | | | | | | | |" >>"$TABLE"
        return
    fi
    echo "| $name | $label | $(field "$line" qps) | $(field "$line" p50_us) |" \
        "$(field "$line" p99_us) | $(field "$line" p999_us) | $(field "$line" errors) |" \
        "${CPU[$key]} | $ratios | $targets |" >>"$TABLE"
}

for shape in "${SHAPES[@]}"; do
    read -r key _ <<<"$shape"
    name=${SHAPE_NAME[$key]}
    for proto in native grpc; do
        q=$(field "${LINE[$key:$proto]:-}" qps)
        qt=$(field "${LINE[$key:$proto-tls]:-}" qps)
        r=$(ratio "$qt" "$q")
        row "$name" "$proto, plaintext" "$key:$proto" "1" ""
        row "$name" "$proto, TLS 1.3" "$key:$proto-tls" "$r" ">= 0.7: $(check "$r" ">=" 0.7)"
    done
done
{
    echo
    echo "| handshakes (openssl s_time -new, one client process) | per second |"
    echo "| --- | ---: |"
    echo "| TLS 1.3, P-256 certificate | $HS13 |"
    echo "| TLS 1.2, P-256 certificate | $HS12 |"
} >>"$TABLE"

echo
cat "$TABLE"

ssl_version=$(openssl version 2>/dev/null || echo unknown)
append_results "TLS against plaintext (issue #14)" \
    "client and server on one thread each, on 127.0.0.1; the server's plaintext and TLS listeners share its loop" \
    "- TLS: $ssl_version, server certificate EC P-256 from gen_certs.sh, no client certificate" \
    "$TABLE" "$WORK/raw.txt"
exit "$FAILED"

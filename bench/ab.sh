#!/usr/bin/env bash
# bench/ab.sh -- an interleaved before/after comparison of two builds of arpc.
#
#   bench/ab.sh BIN_A BIN_B [ROUNDS]
#
# BIN_A and BIN_B are directories with arpc-bench and arpc-echo-server (for
# instance the build/bin of the commit before a change, from a worktree, and
# this tree's build/bin).  Starts one `arpc-echo-server --threads 1` of each
# on 127.0.0.1, then runs shapes (a) c=1 d=1, (b) c=1 d=64, (c) c=4 d=64 and
# (d) c=4 d=16 s=4096 with `arpc-bench --threads 1`, each build's client
# against its own server, alternating A, B, A, B ... ROUNDS times (default 3)
# so that the machine's drift hits both alike.  Prints every result line and,
# per shape and mode, the median qps and p50 of each side and B/A.  Nothing is
# written to RESULTS.md: paste what matters there with the command.
#
# Environment: BENCH_SECS measured seconds per run (default 5).  Every server
# runs under `timeout` and is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOST=127.0.0.1
SECS=${BENCH_SECS:-5}
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

(($# >= 2)) || die "usage: bench/ab.sh BIN_A BIN_B [ROUNDS]"
A=$1
B=$2
ROUNDS=${3:-3}
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 20)) || die "ROUNDS must be 1..20"
[[ $SECS =~ ^[0-9]+$ ]] && ((SECS >= 1 && SECS <= 60)) || die "BENCH_SECS must be 1..60"
for dir in "$A" "$B"; do
    for prog in arpc-bench arpc-echo-server; do
        [[ -x $dir/$prog ]] || die "$dir/$prog is missing"
    done
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/arpc-ab.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_server echo-a "$A/arpc-echo-server" --threads 1
declare -A TARGET=([A]=$ADDR)
start_server echo-b "$B/arpc-echo-server" --threads 1
TARGET[B]=$ADDR
declare -A DIR=([A]=$A [B]=$B)

SHAPES=("a 1 1 64" "b 1 64 64" "c 4 64 64" "d 4 16 4096")
MODES=(coro async)
RESULT=$WORK/results.txt
: >"$RESULT"
for ((r = 1; r <= ROUNDS; r++)); do
    for shape in "${SHAPES[@]}"; do
        read -r key c d s <<<"$shape"
        for mode in "${MODES[@]}"; do
            for side in A B; do
                line=$(timeout -k 5 $((SECS + 60)) "${DIR[$side]}/arpc-bench" \
                    --target "${TARGET[$side]}" --conns "$c" --depth "$d" --size "$s" \
                    --secs "$SECS" --mode "$mode" --threads 1 2>/dev/null |
                    grep -m1 '^system=.* qps=' || true)
                echo "round $r $key $mode $side: ${line:-no result}" >&2
                echo "$key $mode $side $(field "$line" qps) $(field "$line" p50_us)" >>"$RESULT"
            done
        done
    done
done

# median FILE-LINES: the median of numbers on stdin.
median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "| shape | mode | A qps | B qps | B/A qps | A p50 us | B p50 us | B/A p50 |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for shape in "${SHAPES[@]}"; do
    read -r key c d s <<<"$shape"
    for mode in "${MODES[@]}"; do
        aq=$(awk -v k="$key" -v m="$mode" '$1 == k && $2 == m && $3 == "A" && $4 != "" { print $4 }' "$RESULT" | median)
        bq=$(awk -v k="$key" -v m="$mode" '$1 == k && $2 == m && $3 == "B" && $4 != "" { print $4 }' "$RESULT" | median)
        ap=$(awk -v k="$key" -v m="$mode" '$1 == k && $2 == m && $3 == "A" && $5 != "" { print $5 }' "$RESULT" | median)
        bp=$(awk -v k="$key" -v m="$mode" '$1 == k && $2 == m && $3 == "B" && $5 != "" { print $5 }' "$RESULT" | median)
        echo "| ($key) c=$c d=$d s=$s | $mode | $aq | $bq | $(ratio "$bq" "$aq") | $ap | $bp | $(ratio "$bp" "$ap") |"
    done
done

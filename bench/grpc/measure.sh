# The measuring part of bench/grpc/run.sh, bench/grpc/stream.sh and bench/thrift/run.sh,
# sourced by each after they set WORK, SECS, BIN, TICKS and SERVER_PROC (bench/lib.sh):
# each client run's result line and the CPU per wall second of the client and of its
# server, and the table rows made of them.  RESULT_FIELD names the field the result
# line has (default qps; stream.sh: msgs_per_s).
# shellcheck shell=bash disable=SC2034 # FAILED, LOAD_BEFORE: read by the sourcing script

declare -A LINE CPU # run key -> result line, "client / server" CPU per wall second
FAILED=0
RUNS=0
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

# proc_ticks PID: user+system clock ticks of PID so far (0 if unknown).
proc_ticks() {
    if [[ -n $1 && -r /proc/$1/stat ]]; then
        # Fields after the ")" of the command name: utime and stime are 12 and 13.
        sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
    else
        echo 0
    fi
}

# children_secs: sets CHILD_SECS to the CPU seconds (user+system) of this
# shell's finished children.  Not called through $(...): `times` in a subshell
# would report the subshell's children.
children_secs() {
    times >"$WORK/times"
    CHILD_SECS=$(tail -1 "$WORK/times" | awk '{
        s = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
        printf "%.3f", s }')
}

# run KEY SERVER_NAME CMD...: runs a client against the server SERVER_NAME,
# stores its result line in LINE[KEY] and "client/server" CPU seconds per wall
# second in CPU[KEY].  A run that prints no result counts as failed.
run() {
    local key=$1 server=$2 out rc=0 c0 c1 s0 s1 t0 t1
    shift 2
    RUNS=$((RUNS + 1))
    echo "[$RUNS] ${*#"$BIN"/}" >&2
    children_secs
    c0=$CHILD_SECS
    s0=$(proc_ticks "${SERVER_PROC[$server]:-}")
    t0=$(date +%s.%N)
    out=$(timeout -k 5 $((SECS + 60)) "$@" 2>"$WORK/client.err") || rc=$?
    t1=$(date +%s.%N)
    s1=$(proc_ticks "${SERVER_PROC[$server]:-}")
    children_secs
    c1=$CHILD_SECS
    CPU[$key]=$(awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" \
        -v hz="$TICKS" 'BEGIN { w = t1 - t0; if (w <= 0) { print "-"; exit }
        printf "%.2f / %.2f", (c1 - c0) / w, (s1 - s0) / hz / w }')
    LINE[$key]=$(grep -m1 "^system=.* ${RESULT_FIELD:-qps}=" <<<"$out" || true)
    {
        echo "\$ ${*#"$BIN"/}"
        if [[ -n $out ]]; then echo "$out"; fi
        grep -h '^grpc-bench: ' "$WORK/client.err" || true
        if ((rc != 0)); then echo "(exit status $rc)"; fi
        echo "(cpu s per wall s, client / server: ${CPU[$key]})"
    } >>"$WORK/raw.txt"
    cat "$WORK/client.err" >>"$WORK/clients.err"
    if [[ -z ${LINE[$key]} ]]; then
        FAILED=1
        echo "    no result (exit status $rc)" >&2
    else
        echo "    ${LINE[$key]} (cpu ${CPU[$key]})" >&2
    fi
}

# table_start COLUMN: starts the markdown table $WORK/table.md (sets TABLE), COLUMN
# heading the result column.
table_start() {
    TABLE=$WORK/table.md
    {
        echo "| shape | client → server (wire) | $1 | p50 us | p99 us | p999 us | errors | cpu client / server | ratio | target |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"
    } >"$TABLE"
}

# row SHAPE LABEL KEY RATIOS TARGETS: one table row from LINE[KEY] and CPU[KEY].
row() {
    local name=$1 label=$2 key=$3 ratios=$4 targets=$5 line
    line=${LINE[$key]:-}
    if [[ -z $line ]]; then
        echo "| $name | $label | FAILED | | | | | | | |" >>"$TABLE"
        return
    fi
    echo "| $name | $label | $(field "$line" "${RESULT_FIELD:-qps}") | $(field "$line" p50_us) |" \
        "$(field "$line" p99_us) | $(field "$line" p999_us) | $(field "$line" errors) |" \
        "${CPU[$key]} | $ratios | $targets |" >>"$TABLE"
}

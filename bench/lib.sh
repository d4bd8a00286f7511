# bench/lib.sh -- shared by the bench scripts (sourced, not run).
#
# The caller sets HOST, WORK (a temporary directory it owns) and optionally
# SERVER_LIFETIME / READY_TIMEOUT, and installs `trap bench_cleanup EXIT`.
# Every server runs under `timeout`, so it stops by itself even if the script
# is killed; bench_cleanup stops the servers started here (by PID) and nothing
# else.

SERVER_LIFETIME=${SERVER_LIFETIME:-600} # seconds; a server outlives no run
READY_TIMEOUT=${READY_TIMEOUT:-10}      # seconds to wait for "listening on"
SERVER_PIDS=()
SERVER_FDS=()
declare -A SERVER_PROC # name -> PID of the server itself (the child of its `timeout`)

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# shellcheck disable=SC2317 # reached through the EXIT trap
bench_cleanup() {
    local pid fd
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for fd in "${SERVER_FDS[@]}"; do
        exec {fd}<&- || true
    done
    rm -rf "$WORK"
}

# bench_check_range NAME VALUE LO HI: dies unless VALUE (of the setting NAME) is an
# integer in LO..HI.
bench_check_range() {
    if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
        die "$1 must be $3..$4, got '$2'"
    fi
}

# bench_require_progs HINT PROG...: dies unless every PROG is executable in $BIN,
# HINT saying how to build them.
bench_require_progs() {
    local hint=$1 prog
    shift
    for prog in "$@"; do
        [[ -x $BIN/$prog ]] || die "$BIN/$prog is missing: build first ($hint)"
    done
}

# bench_workdir NAME: creates WORK (a temporary directory NAME.XXXXXX) and installs
# the traps that remove it and stop the servers on exit, SIGINT and SIGTERM.
bench_workdir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# start_server NAME CMD...: starts CMD --listen $HOST:0 and waits for its
# "listening on HOST:PORT" line, read through a FIFO (a blocking read with a
# timeout, no guessing).  Sets ADDR to HOST:PORT.
start_server() {
    local name=$1 fifo line fd pid
    shift
    fifo=$WORK/$name.fifo
    mkfifo "$fifo"
    timeout -k 5 "$SERVER_LIFETIME" "$@" --listen "$HOST:0" >"$fifo" 2>"$WORK/$name.err" &
    pid=$!
    SERVER_PIDS+=("$pid")
    # Opening the read end completes the server's open of the write end; the fd
    # stays open until exit so the server can never get SIGPIPE on stdout.
    exec {fd}<"$fifo"
    SERVER_FDS+=("$fd")
    if ! read -r -t "$READY_TIMEOUT" -u "$fd" line || [[ $line != "listening on "* ]]; then
        die "$name did not start: ${line:-no 'listening on' line within ${READY_TIMEOUT}s}; $(cat "$WORK/$name.err")"
    fi
    ADDR=${line#listening on }
    # The server is timeout's only child (its CPU time can be read from /proc).
    SERVER_PROC[$name]=$(awk '{print $1}' "/proc/$pid/task/$pid/children" 2>/dev/null || true)
    echo "started $name (pid ${SERVER_PROC[$name]:-?} under timeout $pid) on $ADDR" >&2
}

# field LINE KEY: the value of KEY=VALUE in a result line ("" if absent).
field() {
    local w
    for w in $1; do
        if [[ $w == "$2="* ]]; then
            echo "${w#*=}"
            return
        fi
    done
    echo ""
}

# ratio A B: A/B with two decimals, or "n/a".
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

# check RATIO OP LIMIT: "ok" or "MISS" (OP is <= or >=).
check() {
    awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (r == "n/a") { print "n/a"; exit }
        ok = (op == "<=") ? (r + 0 <= t + 0) : (r + 0 >= t + 0)
        print ok ? "ok" : "MISS" }'
}

# append_results TITLE SETUP EXTRA TABLE RAW: appends a dated section to
# $RESULTS (unless it is "-"): the command ($COMMAND) with SETUP, EXTRA (a
# "- ..." line or ""), the machine, the commit, the load before ($LOAD_BEFORE)
# and after, the table file and the raw result lines file.
append_results() {
    local title=$1 setup=$2 extra=$3 table=$4 raw=$5 commit
    [[ $RESULTS != "-" ]] || return 0
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        commit="$commit (with uncommitted changes)"
    fi
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M UTC')${title:+: $title}"
        echo
        echo "- command: \`$COMMAND\`, $setup"
        if [[ -n $extra ]]; then echo "$extra"; fi
        echo "- \`uname -srm\`: $(uname -srm)"
        echo "- \`nproc\`: $(nproc)"
        echo "- CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
        echo "- commit: $commit"
        echo "- load average (1/5/15 min) before the runs: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
        echo
        cat "$table"
        echo
        echo "<details><summary>raw result lines</summary>"
        echo
        echo '```'
        cat "$raw"
        echo '```'
        echo
        echo "</details>"
    } >>"$RESULTS"
    echo >&2
    echo "appended to $RESULTS" >&2
}

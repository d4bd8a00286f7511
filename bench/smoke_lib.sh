# bench/smoke_lib.sh -- shared by bench/grpc/smoke.sh and bench/thrift/smoke.sh (sourced,
# not run): the one server a smoke test starts, its cleanup and the failure report.
#
# The caller sets WORK (a temporary directory it owns, removed on exit) before sourcing.
# smoke_start_server runs the server under `timeout`; the EXIT trap set here stops it by
# its PID and nothing else.
# shellcheck shell=bash

SERVER_PID=""
FD=""

# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n $FD ]]; then exec {FD}<&- || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# fail MSG: reports MSG and the server's stderr, exits 1.
fail() {
    echo "smoke: FAIL: $*" >&2
    [[ -f $WORK/server.err ]] && sed 's/^/server: /' "$WORK/server.err" >&2
    exit 1
}

# smoke_start_server PROG: starts PROG --listen 127.0.0.1:0 and waits for its
# "listening on HOST:PORT" line through a FIFO (a bounded blocking read, no guessing).
# Sets SERVER_PID and ADDR.
smoke_start_server() {
    local line
    mkfifo "$WORK/server.out"
    timeout -k 5 50 "$1" --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER_PID=$!
    exec {FD}<"$WORK/server.out"
    if ! read -r -t 10 -u "$FD" line || [[ $line != "listening on "* ]]; then
        fail "no 'listening on' line within 10 s: ${line:-}"
    fi
    ADDR=${line#listening on }
    echo "server pid $SERVER_PID on $ADDR"
}

# smoke_stop_server: SIGTERM to the server, which must then exit with status 0; prints
# its stderr and "smoke: ok".
smoke_stop_server() {
    local rc=0
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    ((rc == 0)) || fail "server exit status $rc after SIGTERM"
    cat "$WORK/server.err"
    echo "smoke: ok"
}

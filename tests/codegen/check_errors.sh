#!/bin/sh
# protoc-gen-arpc's refusals reach the user as protoc errors: for each .proto under
# errors/ that arpc cannot generate, protoc must exit non-zero with the plugin's message
# naming the file, the service and the method(s); good.proto must generate both files.
#
# usage: check_errors.sh PROTOC PLUGIN ERRORS_DIR PROTO_DIR WORK_DIR
set -u
protoc=${1:?usage: check_errors.sh PROTOC PLUGIN ERRORS_DIR PROTO_DIR WORK_DIR}
plugin=${2:?}
dir=${3:?}
protodir=${4:?}
work=${5:?}
status=0
rm -rf "$work"
mkdir -p "$work"

# $1: .proto, $2: --arpc_out's value; runs protoc, its stderr in $work/err.
run() {
    "$protoc" -I"$dir" -I"$protodir" --plugin=protoc-gen-arpc="$plugin" --arpc_out="$2" \
        "$1" 2>"$work/err"
}

# $1: .proto, then the strings its error must hold.
expect_error() {
    proto=$1
    shift
    if run "$proto" "$work"; then
        echo "FAIL $proto: protoc exited 0"
        status=1
        return
    fi
    for want in "$@"; do
        if ! grep -qF -- "$want" "$work/err"; then
            echo "FAIL $proto: the error lacks '$want':"
            cat "$work/err"
            status=1
        fi
    done
    echo "ok   $proto: $(cat "$work/err")"
}

expect_error collision.proto "collision.proto:" "service err.Calc, method SumAdd" \
    "service err.Calc, method SumAddAsync" "err__calc__arpc_sum_add_async"
expect_error member.proto "member.proto:" "service err.K" "methods Int and Int_" "int_"
expect_error protocc.proto "protocc.proto:" "service err.S" "method ArpcService" \
    "err__s__arpc_service" "protoc-c"
expect_error nogen.proto "nogen.proto:" "service err.UsesHidden, method Get" "unsupported" \
    "err.nogen.Hidden" "no_generate"
# An option is refused the same way (the plugin takes none).
if run good.proto "frobnicate:$work"; then
    echo "FAIL good.proto with an option: protoc exited 0"
    status=1
elif ! grep -qF "takes no options" "$work/err"; then
    echo "FAIL good.proto with an option: $(cat "$work/err")"
    status=1
else
    echo "ok   option refused: $(cat "$work/err")"
fi

if ! run good.proto "$work" || [ ! -s "$work/good.arpc.h" ] || [ ! -s "$work/good.arpc.c" ]; then
    echo "FAIL good.proto did not generate: $(cat "$work/err")"
    status=1
else
    echo "ok   good.proto generates good.arpc.h and good.arpc.c"
fi
exit $status

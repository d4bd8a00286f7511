#!/bin/sh
# gen_typed_stubs.sh OUT_DIR CODEGEN_PROTO_DIR V2_DIR
#
# Python stubs of tests/codegen/proto's arpc/test/svc/all.proto and the types it imports,
# for interop_grpc_typed (typed_peer.py): OUT_DIR/v1 from the .proto files arpc's code is
# generated from, OUT_DIR/v2 with V2_DIR's copy of arpc/test/common/types.proto first on
# the path (messages with a field more).  The well-known types' modules are
# python3-protobuf's own.  As gen_stubs.sh: a missing Debian package writes the reason to
# OUT_DIR/MISSING and succeeds without the stamp, so the test skips.
set -eu
out=$1
codegen=$2
v2=$3
py=/usr/bin/python3
plugin=/usr/bin/grpc_python_plugin

missing() {
    echo "$*" >"$out/MISSING"
    echo "interop: $* (scripts/install-deps.sh installs it); interop_grpc_typed will skip" >&2
    exit 0
}

mkdir -p "$out/v1" "$out/v2"
rm -f "$out/MISSING" "$out/stamp"
[ -x "$py" ] || missing "no $py"
"$py" -c 'import grpc, google.protobuf' 2>/dev/null ||
    missing "python3-grpcio or python3-protobuf is not installed"
command -v protoc >/dev/null 2>&1 || missing "no protoc (protobuf-compiler)"
[ -x "$plugin" ] || missing "no $plugin (protobuf-compiler-grpc)"
protos="arpc/test/common/types.proto arpc/test/svc/all.proto"
# shellcheck disable=SC2086
protoc -I"$codegen" --python_out="$out/v1" --grpc_out="$out/v1" \
    --plugin=protoc-gen-grpc="$plugin" $protos
# shellcheck disable=SC2086
protoc -I"$v2" -I"$codegen" --python_out="$out/v2" --grpc_out="$out/v2" \
    --plugin=protoc-gen-grpc="$plugin" $protos
touch "$out/stamp"

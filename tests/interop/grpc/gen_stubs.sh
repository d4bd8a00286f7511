#!/bin/sh
# gen_stubs.sh OUT_DIR ECHO_PROTO
#
# Generates the Python stubs of proto/arpc/echo.proto and of grpc-proto's
# grpc/health/v1/health.proto and grpc/reflection/{v1,v1alpha}/reflection.proto
# into OUT_DIR (the build directory; generated code is never committed) and
# touches OUT_DIR/stamp.  The grpc-proto files are copied into a flat folder
# first: generated from their own tree, their Python package would be named
# `grpc` and hide grpcio's.  The two reflection.proto become reflection_v1.proto
# and reflection_v1alpha.proto there (modules reflection_v1_pb2, ...).
#
# When a Debian package is missing it writes the reason to OUT_DIR/MISSING
# and succeeds without a stamp: the build goes on, the interop tests skip
# with that reason, and the next build tries again (scripts/install-deps.sh
# installs the packages, so CI never skips).
set -eu
out=$1
proto=$2
py=/usr/bin/python3
health=/usr/share/grpc-proto/grpc/health/v1/health.proto
reflection=/usr/share/grpc-proto/grpc/reflection
plugin=/usr/bin/grpc_python_plugin

missing() {
    echo "$*" >"$out/MISSING"
    echo "interop: $* (scripts/install-deps.sh installs it); the grpcio interop tests will skip" >&2
    exit 0
}

mkdir -p "$out/src"
rm -f "$out/MISSING" "$out/stamp"
[ -x "$py" ] || missing "no $py"
"$py" -c 'import grpc, google.protobuf' 2>/dev/null ||
    missing "python3-grpcio or python3-protobuf is not installed"
[ -f "$health" ] || missing "grpc-proto is not installed (no $health)"
cp "$proto" "$health" "$out/src/"
cp "$reflection/v1/reflection.proto" "$out/src/reflection_v1.proto"
cp "$reflection/v1alpha/reflection.proto" "$out/src/reflection_v1alpha.proto"

# protoc and grpc_python_plugin (protobuf-compiler, protobuf-compiler-grpc)
# match python3-protobuf's version; grpc_tools (python3-grpc-tools 1.14)
# bundles an older protoc and is the fallback.
if command -v protoc >/dev/null 2>&1 && [ -x "$plugin" ]; then
    protoc -I"$out/src" --python_out="$out" --grpc_out="$out" \
        --plugin=protoc-gen-grpc="$plugin" echo.proto health.proto reflection_v1.proto \
        reflection_v1alpha.proto
elif "$py" -c 'import grpc_tools.protoc' 2>/dev/null; then
    "$py" -m grpc_tools.protoc -I"$out/src" --python_out="$out" --grpc_python_out="$out" \
        echo.proto health.proto reflection_v1.proto reflection_v1alpha.proto
else
    missing "no protoc for Python (protobuf-compiler-grpc or python3-grpc-tools)"
fi
touch "$out/stamp"

#!/bin/sh
# gen_stubs.sh OUT_DIR ECHO_THRIFT
#
# Generates the Python stubs of proto/arpc/echo.thrift into OUT_DIR (the build directory;
# generated code is never committed) with Debian's thrift-compiler and touches OUT_DIR/stamp.
# When a package is missing it writes the reason to OUT_DIR/MISSING and succeeds without a
# stamp, so the Thrift interop tests skip with it (scripts/install-deps.sh installs both).
set -eu
out=$1
idl=$2
py=/usr/bin/python3

missing() {
    echo "$*" >"$out/MISSING"
    echo "interop: $* (scripts/install-deps.sh installs it); the Thrift interop tests will skip" >&2
    exit 0
}

mkdir -p "$out"
rm -f "$out/MISSING" "$out/stamp"
[ -x "$py" ] || missing "no $py"
"$py" -c 'import thrift.server.TNonblockingServer' 2>/dev/null || missing "python3-thrift is not installed"
command -v thrift >/dev/null 2>&1 || missing "thrift-compiler is not installed"
thrift --gen py -out "$out" "$idl"
touch "$out/stamp"

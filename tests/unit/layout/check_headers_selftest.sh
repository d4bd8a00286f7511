#!/bin/sh
# The header check must catch a missing extern "C": copy the public headers,
# remove ARPC_BEGIN_DECLS/ARPC_END_DECLS from every one of them, and expect
# check_headers.sh to fail and to name each header that exports a function
# (C++ accepts those headers as they are; only their linkage is wrong).
set -u
root=${1:?usage: check_headers_selftest.sh SOURCE_DIR WORK_DIR CC CXX}
work=${2:?}
cc=${3:-cc}
cxx=${4:-c++}
here=$(dirname "$0")

rm -rf "$work"
mkdir -p "$work/include"
cp -R "$root/include/arpc" "$work/include/"
for header in "$work"/include/arpc/*.h; do
    sed -i '/ARPC_BEGIN_DECLS/d; /ARPC_END_DECLS/d' "$header"
done
# export.h defines the macros; put its definitions back.
cp "$root/include/arpc/export.h" "$work/include/arpc/export.h"

if sh "$here/check_headers.sh" "$work" "$cc" "$cxx" >"$work/out.txt" 2>&1; then
    echo "check_headers.sh passed headers without extern \"C\":"
    cat "$work/out.txt"
    exit 1
fi
status=0
if grep '^not ' "$work/out.txt"; then
    echo "removing the macros should break only the linkage, not compilation"
    status=1
fi
for header in "$root"/include/arpc/*.h; do
    name=$(basename "$header")
    grep -q '^ARPC_EXPORT' "$header" || continue
    if ! grep -q "^exported functions without C linkage .*: $name\$" "$work/out.txt"; then
        echo "check_headers.sh did not report $name without extern \"C\""
        status=1
    fi
done
[ $status -eq 0 ] && echo "check_headers.sh reports every header without extern \"C\": ok"
exit $status

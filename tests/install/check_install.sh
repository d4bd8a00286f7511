#!/bin/sh
# Installs an arpc build tree into a temporary prefix, moves the installed tree
# elsewhere (an installed arpc must not depend on where it was first put), then
# builds and runs consumer/ against it four ways:
#
#   pkg-config, shared   cc main.c $(pkg-config --cflags --libs arpc)
#   pkg-config, static   ... -Wl,-Bstatic $(pkg-config --static --libs arpc) -Wl,-Bdynamic
#   find_package, shared target_link_libraries(consumer arpc::arpc)
#   find_package, static target_link_libraries(consumer arpc::arpc_static)
#
# Both ways also generate typed services from consumer/greet.proto and build them with
# consumer/typed.c into a program that makes typed calls: find_package with
# arpc_protobuf_generate(), pkg-config with the one-line protoc command of
# docs/protobuf.md (the installed protoc-gen-arpc).
#
# Each binary is checked to link the library it claims (libarpc.so in its
# NEEDED entries or not) and must make its calls and check their answers.  A build
# without the shared library (ARPC_BUILD_SHARED=OFF) skips the pkg-config
# shared case, and its arpc::arpc must be the static library.
#
# usage: check_install.sh SOURCE_DIR BUILD_DIR WORK_DIR CC CMAKE [GENERATOR]
set -eu
src=${1:?usage: check_install.sh SOURCE_DIR BUILD_DIR WORK_DIR CC CMAKE [GENERATOR]}
build=${2:?}
work=${3:?}
cc=${4:?}
cmake=${5:?}
generator=${6:-Unix Makefiles}
consumer="$src/tests/install/consumer"

step() {
    echo "== $*"
}

fail() {
    echo "check_install: $*" >&2
    exit 1
}

# $1: binary, $2: shared|static.  Runs it and checks its linkage.
check_binary() {
    needed=$(readelf -d "$1" | grep 'NEEDED' || true)
    case "$2:$needed" in
    shared:*libarpc.so*) ;;
    static:*libarpc.so*) fail "$1 should link libarpc.a but needs libarpc.so" ;;
    static:*) ;;
    *) fail "$1 should need libarpc.so; NEEDED entries: $needed" ;;
    esac
    "$1" || fail "$1 failed"
}

rm -rf "$work"
mkdir -p "$work"
step "install to a staging prefix, then move it"
"$cmake" --install "$build" --prefix "$work/stage" >"$work/install.log" ||
    fail "cmake --install failed (see $work/install.log)"
mv "$work/stage" "$work/prefix"
prefix="$work/prefix"
pcfile=$(find "$prefix" -name arpc.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pcfile" ] || fail "no arpc.pc under $prefix"

# Only this prefix: an arpc installed on the machine must not be found instead.
PKG_CONFIG_LIBDIR=$(dirname "$pcfile")
PKG_CONFIG_PATH=
export PKG_CONFIG_LIBDIR PKG_CONFIG_PATH
version=$(pkg-config --modversion arpc)
libdir=$(pkg-config --variable=libdir arpc)
[ -f "$libdir/libarpc.a" ] || fail "pkg-config's libdir $libdir has no libarpc.a"

shared=static
[ -e "$libdir/libarpc.so" ] && shared=shared

if [ $shared = shared ]; then
    step "pkg-config, shared"
    # shellcheck disable=SC2046  # pkg-config's output is a list of words
    "$cc" -o "$work/pc-shared" "$consumer/main.c" -DEXPECT_VERSION="\"$version\"" \
        $(pkg-config --cflags --libs arpc) -Wl,-rpath,"$libdir"
    check_binary "$work/pc-shared" shared
else
    step "pkg-config, shared: skipped (no libarpc.so installed)"
fi

step "pkg-config, static"
# shellcheck disable=SC2046
"$cc" -o "$work/pc-static" "$consumer/main.c" -DEXPECT_VERSION="\"$version\"" \
    $(pkg-config --cflags arpc) -Wl,-Bstatic $(pkg-config --static --libs arpc) -Wl,-Bdynamic
check_binary "$work/pc-static" static

step "pkg-config, protoc one-liner for typed services"
gen="$work/pc-gen"
mkdir -p "$gen"
plugin=$(pkg-config --variable=protoc_gen_arpc arpc)
[ -x "$plugin" ] || fail "pkg-config's protoc_gen_arpc '$plugin' is not an executable"
protoc -I"$consumer" --c_out="$gen" --arpc_out="$gen" --plugin=protoc-gen-arpc="$plugin" \
    "$consumer/greet.proto" || fail "protoc with the installed protoc-gen-arpc failed"
# The keyword repair the documented one-liner pairs with (docs/protobuf.md).
sed -i -E 's/\(\*(return|switch|default|int|delete)\)\(/(*\1_)(/; s/(function_prefix__ ## (return|switch|default|int|delete))([^A-Za-z0-9_])/\1_\3/' \
    "$gen/greet.pb-c.h"
# The docs' second line, shared or (without libarpc.so) static.
if [ $shared = shared ]; then
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/pc-typed" "$consumer/typed.c" \
        "$gen/greet.pb-c.c" "$gen/greet.arpc.c" -I"$gen" $(pkg-config --cflags --libs arpc) \
        -Wl,-rpath,"$libdir" || fail "building the typed consumer failed"
else
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/pc-typed" "$consumer/typed.c" \
        "$gen/greet.pb-c.c" "$gen/greet.arpc.c" -I"$gen" $(pkg-config --cflags arpc) \
        -Wl,-Bstatic $(pkg-config --static --libs arpc) -Wl,-Bdynamic ||
        fail "building the typed consumer failed"
fi
check_binary "$work/pc-typed" $shared

for target in arpc::arpc arpc::arpc_static; do
    kind=static
    [ $target = arpc::arpc ] && kind=$shared
    step "find_package, $target ($kind)"
    out="$work/cmake-${target#arpc::}"
    CC="$cc" "$cmake" -S "$consumer" -B "$out" -G "$generator" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DARPC_TARGET="$target" >"$out.log" 2>&1 ||
        { cat "$out.log"; fail "configuring the consumer ($kind) failed"; }
    found=$(sed -n 's/^arpc_DIR:PATH=//p' "$out/CMakeCache.txt")
    case "$found" in
    "$prefix"/*) ;;
    *) fail "find_package found arpc in '$found', not under $prefix" ;;
    esac
    "$cmake" --build "$out" >>"$out.log" 2>&1 || { cat "$out.log"; fail "building ($kind) failed"; }
    check_binary "$out/consumer" "$kind"
    check_binary "$out/consumer_typed" "$kind"
done
echo "install check: ok (arpc $version, pkg-config and find_package, libarpc.so: $([ $shared = shared ] && echo yes || echo no))"

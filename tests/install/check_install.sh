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
# Each binary is checked to link the library it claims (libarpc.so in its
# NEEDED entries or not) and must make one call and check its answer.  A build
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
done
echo "install check: ok (arpc $version, pkg-config and find_package, libarpc.so: $([ $shared = shared ] && echo yes || echo no))"

#!/bin/sh
# Each layer includes only itself and the layers below it (DESIGN.md):
#   base <- runtime <- transport <- rpc, base <- proto <- rpc <- protobuf.  Public headers include only
#   <arpc/...> and standard headers, never an internal one.  The shipped tools
#   use the public API and tools/common/, nothing from bench/ (whose programs
#   may use tools/common/, never the other way round).
set -u
root=${1:?usage: check_layers.sh SOURCE_DIR}
status=0

allowed() {
    case "$1" in
    base) echo "base" ;;
    runtime) echo "base runtime" ;;
    proto) echo "base proto" ;;
    transport) echo "base runtime transport" ;;
    rpc) echo "base runtime proto transport rpc" ;;
    protobuf) echo "base runtime proto transport rpc protobuf" ;;
    esac
}

for layer in base runtime proto transport rpc protobuf; do
    ok=$(allowed "$layer")
    for file in $(find "$root/src/$layer" -name '*.[chS]'); do
        for inc in $(sed -n 's/^#include "\([a-z_]*\)\/.*/\1/p' "$file"); do
            case " $ok " in
            *" $inc "*) ;;
            *)
                echo "layer violation: $file (layer $layer) includes from $inc"
                status=1
                ;;
            esac
        done
    done
done

for header in "$root"/include/arpc/*.h; do
    if grep -q '^#include "' "$header"; then
        echo "public header includes an internal header: $header"
        status=1
    fi
    if grep -q '^#include <sys/epoll.h>' "$header"; then
        echo "public header exposes epoll: $header"
        status=1
    fi
done

for file in $(find "$root/tools" -name '*.[ch]'); do
    dir=$(dirname "$file")
    for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file"); do
        if [ ! -e "$dir/$inc" ] && [ ! -e "$root/tools/common/$inc" ]; then
            echo "tool includes a header from outside tools/: $file includes \"$inc\""
            status=1
        fi
    done
done
for file in $(find "$root/tools" -name CMakeLists.txt); do
    # Comments aside, and the tool arpc-bench's own name, "bench" names bench/.
    if sed -e 's/#.*//' -e 's/arpc-bench//g' "$file" | grep -q 'bench'; then
        echo "a tool links something from bench/: $file"
        status=1
    fi
done

[ $status -eq 0 ] && echo "layers: ok"
exit $status

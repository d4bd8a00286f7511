#!/bin/sh
# Each layer includes only itself and the layers below it (DESIGN.md):
#   base <- runtime <- rpc, base <- proto <- rpc.  Public headers include only
#   <arpc/...> and standard headers, never an internal one.
set -u
root=${1:?usage: check_layers.sh SOURCE_DIR}
status=0

allowed() {
    case "$1" in
    base) echo "base" ;;
    runtime) echo "base runtime" ;;
    proto) echo "base proto" ;;
    rpc) echo "base runtime proto rpc" ;;
    esac
}

for layer in base runtime proto rpc; do
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

[ $status -eq 0 ] && echo "layers: ok"
exit $status

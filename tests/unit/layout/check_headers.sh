#!/bin/sh
# Every public header compiles on its own, as C11 and as C++, and gives every
# function it exports C linkage (extern "C", through ARPC_BEGIN_DECLS/END_DECLS).
#
# Compiling as C++ alone cannot see a missing extern "C": the header is still
# valid C++, only its functions get C++ linkage, and a C++ program then fails to
# link against libarpc.  So the C++ translation unit also redeclares each
# exported function inside extern "C" { decltype(f) f; }, which a C++ compiler
# rejects when the header gave f another language linkage.  The names come
# from the preprocessed header, with ARPC_EXPORT turned into a marker (so
# comments and #define lines do not count); a marked declaration whose arpc_
# name cannot be found is an error, not a skip.
set -u
root=${1:?usage: check_headers.sh SOURCE_DIR CC CXX}
cc=${2:-cc}
cxx=${3:-c++}
status=0

# Prints the names of the functions that `$1` (a file name under include/arpc/)
# and the headers it includes declare with ARPC_EXPORT, one per line; returns
# non-zero if a marked declaration has no recognizable name.
exported_names() {
    printf '#include <arpc/%s>\n' "$1" |
        "$cc" -E -P -std=c11 -I"$root/include" -DARPC_EXPORT_H -DARPC_EXPORT=ARPC_CHECK_EXPORTED \
            -DARPC_BEGIN_DECLS= -DARPC_END_DECLS= -x c - |
        tr '\n' ' ' | grep -o 'ARPC_CHECK_EXPORTED[^;]*;' |
        while IFS= read -r decl; do
            name=$(printf '%s\n' "$decl" | grep -o 'arpc_[A-Za-z0-9_]* *(' | head -n 1 |
                tr -d ' (')
            if [ -z "$name" ]; then
                echo "cannot find the function name in: $decl" >&2
                return 1
            fi
            echo "$name"
        done
}

for header in "$root"/include/arpc/*.h; do
    name=$(basename "$header")
    if ! printf '#include <arpc/%s>\ntypedef int arpc_check_nonempty;\n' "$name" |
        "$cc" -std=c11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$root/include" -x c -; then
        echo "not self-contained as C11: $name"
        status=1
    fi
    if ! printf '#include <arpc/%s>\nint main() { return 0; }\n' "$name" |
        "$cxx" -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$root/include" -x c++ -; then
        echo "not usable from C++: $name"
        status=1
        continue
    fi
    if ! names=$(exported_names "$name"); then
        echo "cannot list the exported functions of $name"
        status=1
        continue
    fi
    probes=$(printf '%s\n' "$names" | sort -u | sed -n 's/^\(arpc_.*\)$/decltype(\1) \1;/p')
    if ! printf '#include <arpc/%s>\nextern "C" {\n%s\n}\nint main() { return 0; }\n' \
        "$name" "$probes" |
        "$cxx" -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$root/include" -x c++ -; then
        echo "exported functions without C linkage (extern \"C\", ARPC_BEGIN_DECLS): $name"
        status=1
    fi
done
[ $status -eq 0 ] && echo "public headers: ok"
exit $status

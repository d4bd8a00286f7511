#!/bin/sh
# Every public header compiles on its own, as C11 and as C++ (self-contained,
# extern "C" where needed).
set -u
root=${1:?usage: check_headers.sh SOURCE_DIR CC CXX}
cc=${2:-cc}
cxx=${3:-c++}
status=0
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
    fi
done
[ $status -eq 0 ] && echo "public headers: ok"
exit $status

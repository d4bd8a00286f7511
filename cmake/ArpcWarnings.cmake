# Warning flags shared by every target of the project.
set(ARPC_WARNINGS -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes
    -Wformat=2 -Wvla -Wno-unused-parameter)
if(ARPC_WERROR)
    list(APPEND ARPC_WARNINGS -Werror)
endif()
add_compile_options("$<$<COMPILE_LANGUAGE:C>:${ARPC_WARNINGS}>")
add_compile_definitions(_GNU_SOURCE)

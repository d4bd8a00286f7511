# ARPC_SANITIZE selects a sanitizer build; each gets its own build directory
# (build/, build-asan/, build-tsan/) from the top-level Makefile.
if(ARPC_SANITIZE)
    set(san_flags -fsanitize=${ARPC_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    add_compile_options(${san_flags})
    add_link_options(${san_flags})
    add_compile_definitions(ARPC_SANITIZE_BUILD=1)
endif()
# TSan does not model atomic_thread_fence; our fences only order the loop's
# sleep/wake handshake, whose data is published by release/acquire pairs
# that TSan does see.
if(ARPC_SANITIZE MATCHES "thread" AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-tsan)
endif()

# arpc_protobuf_generate(TARGET t PROTOS a.proto ... [IMPORT_DIRS dir ...] [OUT_DIR dir])
#
# Turns each PROTO into C at build time and adds it to target t: protoc-c writes
# NAME.pb-c.c/.h (the messages), protoc-gen-arpc NAME.arpc.c/.h (the services,
# docs/protobuf.md), both under OUT_DIR (default ${CMAKE_CURRENT_BINARY_DIR}/arpc-gen)
# with the PROTO's folders below its import dir, and OUT_DIR goes on t's include path
# (PUBLIC), so `#include "pkg/x.arpc.h"` works.  A PROTO is a path (relative ones are
# taken from ${CMAKE_CURRENT_SOURCE_DIR}) inside one of IMPORT_DIRS (default
# ${CMAKE_CURRENT_SOURCE_DIR}); protoc names it relative to that dir, and imports are
# searched in IMPORT_DIRS, then in the folder of protoc's own .proto files
# (ARPC_PROTOBUF_PROTO_DIR: google/protobuf/*.proto).  An imported .proto's C must be
# generated too (list it in PROTOS, of this call or another): the well-known types'
# with IMPORT_DIRS ${ARPC_PROTOBUF_PROTO_DIR}.
#
# The plugin is the build's own protoc-gen-arpc inside arpc's tree, and the installed
# arpc::protoc-gen-arpc after find_package(arpc); ARPC_PROTOC_GEN_ARPC, when set, names
# another (a cross build's host tool).
#
# After protoc-c, each NAME.pb-c.h is repaired: protoc-c 1.4.1 writes a method named like
# a C or C++ keyword (Return, Switch, Delete) as `void (*return)(...)` in its service
# struct, which does not compile, and pastes that name in its P__INIT macro.  The
# repair appends '_' there (`(*return_)`, `function_prefix__ ## return_`), the rule
# protoc-c itself follows for fields and arpc for its handler members.  It is this file
# run as a script: cmake -DARPC_REPAIR=NAME.pb-c.h -P ArpcProtobufGenerate.cmake.

# C11 and C++ keywords and C++'s alternative tokens, as tools/protoc-gen-arpc/names.c.
set(_arpc_pb_keywords
    auto break case char const continue default do double else enum extern float for goto
    if inline int long register restrict return short signed sizeof static struct switch
    typedef union unsigned void volatile while alignas alignof and and_eq asm bitand bitor
    bool catch char8_t char16_t char32_t class compl concept consteval constexpr constinit
    const_cast co_await co_return co_yield decltype delete dynamic_cast explicit export false
    friend mutable namespace new noexcept not not_eq nullptr operator or or_eq private
    protected public reinterpret_cast requires static_assert static_cast template this
    thread_local throw true try typeid typename using virtual wchar_t xor xor_eq)

if(CMAKE_SCRIPT_MODE_FILE AND DEFINED ARPC_REPAIR)
    file(READ "${ARPC_REPAIR}" text)
    set(fixed "${text}")
    foreach(kw ${_arpc_pb_keywords})
        string(REPLACE "(*${kw})(" "(*${kw}_)(" fixed "${fixed}")
        string(REGEX REPLACE "function_prefix__ ## ${kw}([^A-Za-z0-9_])"
                             "function_prefix__ ## ${kw}_\\1" fixed "${fixed}")
    endforeach()
    if(NOT fixed STREQUAL text)
        file(WRITE "${ARPC_REPAIR}" "${fixed}")
    endif()
    return()
endif()

include_guard(GLOBAL)
# A global property, not a variable: the function is called from directories that never
# included this file (a variable would be empty there).
set_property(GLOBAL PROPERTY ARPC_PB_GENERATE_SCRIPT ${CMAKE_CURRENT_LIST_FILE})

find_program(ARPC_PROTOC protoc)
find_program(ARPC_PROTOC_C protoc-c)
find_path(ARPC_PROTOBUF_PROTO_DIR google/protobuf/descriptor.proto PATHS /usr/include
          NO_CMAKE_FIND_ROOT_PATH)

# Sets out_var to `proto`'s path relative to the first of the import dirs holding it.
function(_arpc_pb_relative out_var proto)
    foreach(dir ${ARGN})
        file(RELATIVE_PATH rel "${dir}" "${proto}")
        if(NOT rel MATCHES "^\\.\\./" AND NOT IS_ABSOLUTE "${rel}")
            set(${out_var} "${rel}" PARENT_SCOPE)
            return()
        endif()
    endforeach()
    message(FATAL_ERROR "arpc_protobuf_generate: ${proto} is in none of IMPORT_DIRS (${ARGN})")
endfunction()

# The plugin's path for the COMMAND, and what the command DEPENDS on to rebuild when the
# plugin changes.
function(_arpc_pb_plugin path_var dep_var)
    if(ARPC_PROTOC_GEN_ARPC)
        set(${path_var} "${ARPC_PROTOC_GEN_ARPC}" PARENT_SCOPE)
        set(${dep_var} "${ARPC_PROTOC_GEN_ARPC}" PARENT_SCOPE)
    elseif(TARGET arpc::protoc-gen-arpc)
        set(${path_var} "$<TARGET_FILE:arpc::protoc-gen-arpc>" PARENT_SCOPE)
        set(${dep_var} "$<TARGET_FILE:arpc::protoc-gen-arpc>" PARENT_SCOPE)
    else()
        # arpc's own tree, where tools/ defines the target after this call may run.
        set(${path_var} "$<TARGET_FILE:protoc-gen-arpc>" PARENT_SCOPE)
        set(${dep_var} protoc-gen-arpc PARENT_SCOPE)
    endif()
endfunction()

function(arpc_protobuf_generate)
    cmake_parse_arguments(G "" "TARGET;OUT_DIR" "PROTOS;IMPORT_DIRS" ${ARGN})
    if(NOT G_TARGET OR NOT G_PROTOS OR G_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "usage: arpc_protobuf_generate(TARGET t PROTOS a.proto ... "
                            "[IMPORT_DIRS dir ...] [OUT_DIR dir])")
    endif()
    if(NOT ARPC_PROTOC OR NOT ARPC_PROTOC_C)
        message(FATAL_ERROR "arpc_protobuf_generate: protoc and protoc-c are needed "
                            "(Debian: protobuf-compiler protobuf-c-compiler)")
    endif()
    if(NOT G_OUT_DIR)
        set(G_OUT_DIR ${CMAKE_CURRENT_BINARY_DIR}/arpc-gen)
    endif()
    get_filename_component(out "${G_OUT_DIR}" ABSOLUTE BASE_DIR ${CMAKE_CURRENT_BINARY_DIR})
    if(NOT G_IMPORT_DIRS)
        set(G_IMPORT_DIRS ${CMAKE_CURRENT_SOURCE_DIR})
    endif()
    set(dirs "")
    set(include_flags "")
    foreach(dir ${G_IMPORT_DIRS} ${ARPC_PROTOBUF_PROTO_DIR})
        get_filename_component(dir "${dir}" ABSOLUTE)
        list(APPEND dirs "${dir}")
        list(APPEND include_flags "-I${dir}")
    endforeach()
    set(protos "")
    foreach(proto ${G_PROTOS})
        get_filename_component(proto "${proto}" ABSOLUTE)
        list(APPEND protos "${proto}")
    endforeach()
    _arpc_pb_plugin(plugin plugin_dep)

    set(sources "")
    foreach(proto ${protos})
        _arpc_pb_relative(rel "${proto}" ${dirs})
        string(REGEX REPLACE "\\.proto$" "" stem "${rel}")
        set(generated ${out}/${stem}.pb-c.c ${out}/${stem}.pb-c.h ${out}/${stem}.arpc.c
                      ${out}/${stem}.arpc.h)
        get_property(repair_script GLOBAL PROPERTY ARPC_PB_GENERATE_SCRIPT)
        add_custom_command(
            OUTPUT ${generated}
            COMMAND ${CMAKE_COMMAND} -E make_directory ${out}
            COMMAND ${ARPC_PROTOC_C} ${include_flags} --c_out=${out} ${proto}
            COMMAND ${CMAKE_COMMAND} -DARPC_REPAIR=${out}/${stem}.pb-c.h
                    -P ${repair_script}
            COMMAND ${ARPC_PROTOC} ${include_flags} --plugin=protoc-gen-arpc=${plugin}
                    --arpc_out=${out} ${proto}
            DEPENDS ${protos} ${plugin_dep} ${repair_script}
            COMMENT "protoc-c and protoc-gen-arpc ${rel}"
            VERBATIM)
        list(APPEND sources ${out}/${stem}.pb-c.c ${out}/${stem}.arpc.c)
    endforeach()
    target_sources(${G_TARGET} PRIVATE ${sources})
    target_include_directories(${G_TARGET} PUBLIC ${out})
endfunction()

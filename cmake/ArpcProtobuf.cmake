# protobuf-c for the library and its tools: finds protobuf-c's header and library,
# protoc and protoc-c, and defines arpc_protoc_c() to turn a .proto file into C at
# build time.  Sets ARPC_HAVE_PROTOBUF_C when all four are there.
#
# Debian ships protobuf-c's runtime (libprotobuf-c-dev) without descriptor.pb-c.h or
# plugin.pb-c.h, and the .proto files they come from in libprotobuf-dev and
# libprotoc-dev (/usr/include/google/protobuf/...), so what the library and
# protoc-gen-arpc need is generated here rather than kept in the tree.
include_guard(GLOBAL)

find_path(ARPC_PROTOBUF_C_INCLUDE_DIR protobuf-c/protobuf-c.h)
find_library(ARPC_PROTOBUF_C_LIBRARY protobuf-c)
find_program(ARPC_PROTOC protoc)
find_program(ARPC_PROTOC_C protoc-c)
# Where Debian keeps the .proto files that come with protoc (descriptor.proto,
# compiler/plugin.proto, the well-known types) and grpc-proto's (reflection).
find_path(ARPC_PROTOBUF_PROTO_DIR google/protobuf/descriptor.proto
          PATHS /usr/include NO_CMAKE_FIND_ROOT_PATH)
set(ARPC_GRPC_PROTO_DIR /usr/share/grpc-proto CACHE PATH "Where grpc-proto's .proto files are")

if(ARPC_PROTOBUF_C_INCLUDE_DIR AND ARPC_PROTOBUF_C_LIBRARY AND ARPC_PROTOC AND ARPC_PROTOC_C
   AND ARPC_PROTOBUF_PROTO_DIR)
    set(ARPC_HAVE_PROTOBUF_C ON)
else()
    set(ARPC_HAVE_PROTOBUF_C OFF)
endif()

# arpc_protoc_c(OUT_DIR_VAR SOURCES_VAR IMPORT_DIR PROTO...)
#   Runs protoc-c on each PROTO (a path relative to IMPORT_DIR) at build time, writing
#   NAME.pb-c.c and NAME.pb-c.h under ${CMAKE_CURRENT_BINARY_DIR}/pb-c/ with the
#   PROTO's own folders.  Appends the .c files to SOURCES_VAR and sets OUT_DIR_VAR to
#   the folder to add to the include path.
function(arpc_protoc_c out_dir_var sources_var import_dir)
    set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/pb-c)
    set(sources ${${sources_var}})
    foreach(proto ${ARGN})
        string(REGEX REPLACE "\\.proto$" "" stem "${proto}")
        set(c_file ${out_dir}/${stem}.pb-c.c)
        set(h_file ${out_dir}/${stem}.pb-c.h)
        add_custom_command(
            OUTPUT ${c_file} ${h_file}
            COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
            COMMAND ${ARPC_PROTOC_C} -I${import_dir} --c_out=${out_dir} ${import_dir}/${proto}
            DEPENDS ${import_dir}/${proto}
            COMMENT "protoc-c ${proto}"
            VERBATIM)
        list(APPEND sources ${c_file})
    endforeach()
    set(${sources_var} ${sources} PARENT_SCOPE)
    set(${out_dir_var} ${out_dir} PARENT_SCOPE)
endfunction()

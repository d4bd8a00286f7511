# What `cmake --install` puts under the prefix, and the two ways a project finds it:
#
#   include/arpc/*.h                     the public headers
#   lib/libarpc.a, lib/libarpc.so*       the libraries (the .so unless ARPC_BUILD_SHARED=OFF)
#   lib/pkgconfig/arpc.pc                pkg-config --cflags --libs [--static] arpc
#   lib/cmake/arpc/arpcConfig*.cmake     find_package(arpc), targets arpc::arpc, arpc::arpc_static,
#                                        arpc::protoc-gen-arpc and arpc_protobuf_generate()
#   bin/protoc-gen-arpc                  protoc's plugin (tools/protoc-gen-arpc); arpc.pc's
#                                        variable protoc_gen_arpc names it
#
# Both descriptions are relocatable: arpc.pc names its prefix relative to its own
# directory (${pcfiledir}) and the CMake files relative to theirs, so
# `cmake --install build --prefix DIR` works for any DIR, not just the configured
# CMAKE_INSTALL_PREFIX.  tests/install/ checks all four combinations.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(arpc_install_targets arpc_static)
if(TARGET arpc_shared)
    list(APPEND arpc_install_targets arpc_shared)
endif()
install(TARGETS ${arpc_install_targets} EXPORT arpcTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/arpc DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# arpc.pc.  An absolute CMAKE_INSTALL_LIBDIR/INCLUDEDIR (given on purpose) stays as is;
# relative ones hang off a prefix computed from the .pc's own place in the tree.
set(arpc_pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(ARPC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
    set(ARPC_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
    set(ARPC_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
    set(ARPC_PC_BINDIR "${CMAKE_INSTALL_FULL_BINDIR}")
else()
    file(RELATIVE_PATH arpc_pc_up /root/${arpc_pc_dir} /root)
    string(REGEX REPLACE "/$" "" arpc_pc_up "${arpc_pc_up}")
    set(ARPC_PC_PREFIX "\${pcfiledir}/${arpc_pc_up}")
    set(ARPC_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
    set(ARPC_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
    set(ARPC_PC_BINDIR "\${prefix}/${CMAKE_INSTALL_BINDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/arpc.pc.in ${PROJECT_BINARY_DIR}/arpc.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/arpc.pc DESTINATION ${arpc_pc_dir})

# The CMake package.
set(arpc_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/arpc)
install(EXPORT arpcTargets NAMESPACE arpc:: DESTINATION ${arpc_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/arpcConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/arpcConfig.cmake
                              INSTALL_DESTINATION ${arpc_cmake_dir})
# 0.x: a new minor version may break the API, so only the same MAJOR.MINOR matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/arpcConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/arpcConfig.cmake ${PROJECT_BINARY_DIR}/arpcConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/ArpcProtobufGenerate.cmake
        DESTINATION ${arpc_cmake_dir})

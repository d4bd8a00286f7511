/**
 * The version of the arpc library and of its wire protocol.
 *
 * This header is the one place the library's version is written: the top-level
 * CMakeLists.txt reads ARPC_VERSION_MAJOR/MINOR/PATCH from it for the shared
 * library's VERSION and SOVERSION, arpc.pc and arpcConfigVersion.cmake.
 */
#ifndef ARPC_VERSION_H
#define ARPC_VERSION_H

#define ARPC_VERSION_MAJOR 0
#define ARPC_VERSION_MINOR 1
#define ARPC_VERSION_PATCH 0

#define ARPC__VERSION_STR2(x) #x
#define ARPC__VERSION_STR(x)  ARPC__VERSION_STR2(x)

/** "MAJOR.MINOR.PATCH", spelled from the three numbers above. */
#define ARPC_VERSION_STRING               \
    ARPC__VERSION_STR(ARPC_VERSION_MAJOR) \
    "." ARPC__VERSION_STR(ARPC_VERSION_MINOR) "." ARPC__VERSION_STR(ARPC_VERSION_PATCH)

/** The native protocol version this library speaks (docs/protocol.md). */
#define ARPC_PROTOCOL_VERSION 1

#endif

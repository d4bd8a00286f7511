/** The version of the arpc library and of its wire protocol. */
#ifndef ARPC_VERSION_H
#define ARPC_VERSION_H

#define ARPC_VERSION_MAJOR 0
#define ARPC_VERSION_MINOR 1
#define ARPC_VERSION_PATCH 0
#define ARPC_VERSION_STRING "0.1.0"

/** The native protocol version this library speaks (docs/protocol.md). */
#define ARPC_PROTOCOL_VERSION 1

#endif

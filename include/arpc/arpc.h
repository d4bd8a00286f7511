/** The umbrella header: everything a user of arpc needs. */
#ifndef ARPC_ARPC_H
#define ARPC_ARPC_H

#include <arpc/buf.h>
#include <arpc/client.h>
#include <arpc/coro.h>
#include <arpc/err.h>
#include <arpc/io.h>
#include <arpc/log.h>
#include <arpc/loop.h>
#include <arpc/metadata.h>
#include <arpc/runtime.h>
#include <arpc/server.h>
#include <arpc/stream.h>
#include <arpc/thrift.h>
#include <arpc/timer.h>
#include <arpc/tls.h>
#include <arpc/version.h>

#endif

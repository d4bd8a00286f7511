/* Internal logging: the level is tested before any formatting happens. */
#ifndef ARPC_BASE_LOG_H
#define ARPC_BASE_LOG_H

#include <stdatomic.h>

#include <arpc/log.h>

extern _Atomic int arpc__log_level;

__attribute__((format(printf, 2, 3))) void arpc__log(arpc_log_level level, const char *fmt, ...);

#define ARPC__LOG(level, ...)                                                          \
    do {                                                                               \
        if ((int)(level) >= atomic_load_explicit(&arpc__log_level, memory_order_relaxed)) \
            arpc__log((level), __VA_ARGS__);                                           \
    } while (0)

#define ARPC_LOG_DEBUGF(...) ARPC__LOG(ARPC_LOG_DEBUG, __VA_ARGS__)
#define ARPC_LOG_INFOF(...)  ARPC__LOG(ARPC_LOG_INFO, __VA_ARGS__)
#define ARPC_LOG_WARNF(...)  ARPC__LOG(ARPC_LOG_WARN, __VA_ARGS__)
#define ARPC_LOG_ERRORF(...) ARPC__LOG(ARPC_LOG_ERROR, __VA_ARGS__)

#endif

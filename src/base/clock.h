/* Monotonic time in nanoseconds; the only clock deadlines use. */
#ifndef ARPC_BASE_CLOCK_H
#define ARPC_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t arpc__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define ARPC__NS_PER_MS 1000000LL

/* A deadline that never comes. */
#define ARPC__NO_DEADLINE INT64_MAX

#endif

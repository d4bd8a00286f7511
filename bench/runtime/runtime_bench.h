/*
 * Helpers shared by the runtime micro-benchmarks (one clock, one way to die).
 */
#ifndef ARPC_RUNTIME_BENCH_H
#define ARPC_RUNTIME_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <arpc/err.h>

/* Monotonic nanoseconds: the clock every result here is timed with. */
static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A benchmark cannot go on after a failed set-up step: report and exit 1. */
static inline void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s failed: %s\n", what, arpc_strerror(rc));
        exit(1);
    }
}

#endif

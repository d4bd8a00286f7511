/*
 * Helpers shared by the runtime micro-benchmarks: the library's own clock
 * (base/clock.h) and one way to die.
 */
#ifndef ARPC_RUNTIME_BENCH_H
#define ARPC_RUNTIME_BENCH_H

#include <stdio.h>
#include <stdlib.h>

#include <arpc/err.h>

#include "base/clock.h"

/* A benchmark cannot go on after a failed set-up step: report and exit 1. */
static inline void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s failed: %s\n", what, arpc_strerror(rc));
        exit(1);
    }
}

#endif

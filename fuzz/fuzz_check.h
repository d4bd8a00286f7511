/* The fuzz targets' property check: a broken property aborts, so libFuzzer saves the input. */
#ifndef ARPC_FUZZ_CHECK_H
#define ARPC_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                                  \
    do {                                                                          \
        if (!(x)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
            abort();                                                              \
        }                                                                         \
    } while (0)

#endif

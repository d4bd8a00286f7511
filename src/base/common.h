/* Small helpers every layer uses: branch hints, container_of. */
#ifndef ARPC_BASE_COMMON_H
#define ARPC_BASE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define arpc__likely(x)   __builtin_expect(!!(x), 1)
#define arpc__unlikely(x) __builtin_expect(!!(x), 0)

/* For the rare half of a function whose common half is inlined: kept out of
 * line so the inlined part stays small. */
#define arpc__noinline __attribute__((noinline))

#define arpc__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define ARPC__CACHELINE 64

#endif

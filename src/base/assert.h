/*
 * ARPC_ASSERT: internal invariants, compiled out under NDEBUG.
 * ARPC_CHECK: always on, for invariants whose violation would corrupt memory
 * (a call completed twice, a heap slot mismatch).  Both print file:line and
 * abort.  Never use either on network input or caller errors: return a code.
 */
#ifndef ARPC_BASE_ASSERT_H
#define ARPC_BASE_ASSERT_H

#include "base/common.h"

_Noreturn void arpc__panic(const char *file, int line, const char *expr);

#define ARPC_CHECK(x)                                \
    do {                                             \
        if (arpc__unlikely(!(x)))                    \
            arpc__panic(__FILE__, __LINE__, #x);     \
    } while (0)

#ifdef NDEBUG
#define ARPC_ASSERT(x) ((void)0)
#else
#define ARPC_ASSERT(x) ARPC_CHECK(x)
#endif

#endif

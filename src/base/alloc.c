/*
 * Design notes: the counters are relaxed atomics; they cost one uncontended
 * add per allocation, and allocation is off the hot path in steady state
 * (that is what the counter exists to prove).
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "base/alloc.h"

static _Atomic int64_t fail_countdown = -1;
static _Atomic uint64_t alloc_total;
static _Atomic uint64_t fail_total;

static int should_fail(void)
{
    int64_t n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n < 0)
        return 0;
    if (atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed) != 0)
        return 0;
    atomic_fetch_add_explicit(&fail_total, 1, memory_order_relaxed);
    return 1;
}

void *arpc__malloc(size_t size)
{
    if (should_fail())
        return NULL;
    atomic_fetch_add_explicit(&alloc_total, 1, memory_order_relaxed);
    return malloc(size);
}

void *arpc__calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    atomic_fetch_add_explicit(&alloc_total, 1, memory_order_relaxed);
    return calloc(count, size);
}

void *arpc__realloc(void *ptr, size_t size)
{
    if (should_fail())
        return NULL;
    atomic_fetch_add_explicit(&alloc_total, 1, memory_order_relaxed);
    return realloc(ptr, size);
}

void arpc__free(void *ptr)
{
    free(ptr);
}

void arpc__alloc_fail_after(int64_t n)
{
    atomic_store(&fail_countdown, n);
}

uint64_t arpc__alloc_failures(void)
{
    return atomic_load_explicit(&fail_total, memory_order_relaxed);
}

uint64_t arpc__alloc_count(void)
{
    return atomic_load_explicit(&alloc_total, memory_order_relaxed);
}

/*
 * Every allocation of the library goes through these hooks, so fault tests can
 * make the n-th allocation fail (ARPC_ENOMEM paths) and benchmarks can count
 * allocations per request.
 */
#ifndef ARPC_BASE_ALLOC_H
#define ARPC_BASE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *arpc__malloc(size_t size);
void *arpc__calloc(size_t count, size_t size);
void *arpc__realloc(void *ptr, size_t size);
void arpc__free(void *ptr);

/* Test hook: the allocation after `n` more succeed fails; -1 disables. */
void arpc__alloc_fail_after(int64_t n);

/* Allocations made to fail so far by arpc__alloc_fail_after (all threads). */
uint64_t arpc__alloc_failures(void);

/* Allocations made so far through the hooks (all threads). */
uint64_t arpc__alloc_count(void);

#endif

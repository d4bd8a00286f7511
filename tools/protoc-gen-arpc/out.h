/*
 * A growable text buffer for generated files.  Out of memory is sticky: every later
 * append does nothing and gen_out_take() returns NULL, so the writers check once, at the
 * end, instead of after every line.
 */
#ifndef PROTOC_GEN_ARPC_OUT_H
#define PROTOC_GEN_ARPC_OUT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct gen_out {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed: the text is incomplete */
} gen_out;

void gen_out_init(gen_out *o);

/** Appends printf-formatted text. */
void gen_out_printf(gen_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** The text (NUL-terminated), which the caller then frees; NULL if an append failed
 *  (the buffer is freed then).  The buffer is empty afterwards. */
char *gen_out_take(gen_out *o);

/** Frees the text. */
void gen_out_fini(gen_out *o);

/* ---- a pool of strings freed together ------------------------------------------------- */

/** Owns strings until gen_pool_fini(); a failed allocation is sticky as in gen_out. */
typedef struct gen_pool {
    char **items;
    size_t n;
    size_t cap;
    bool failed;
} gen_pool;

void gen_pool_init(gen_pool *p);

/** Takes `s` (from malloc; NULL marks the pool failed) and returns it. */
char *gen_pool_add(gen_pool *p, char *s);

/** A printf-formatted string owned by the pool, or NULL (the pool is then failed). */
/* A new string (malloc) formatted as vsnprintf would, or NULL when out of memory. */
char *gen_vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

char *gen_pool_printf(gen_pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void gen_pool_fini(gen_pool *p);

#endif

#include "out.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void gen_out_init(gen_out *o)
{
    o->data = NULL;
    o->len = 0;
    o->cap = 0;
    o->failed = false;
}

/* Makes room for `more` bytes and the terminator. */
static bool reserve(gen_out *o, size_t more)
{
    size_t cap = o->cap != 0 ? o->cap : 4096;
    char *p;

    if (o->len + more + 1 <= o->cap)
        return true;
    while (cap < o->len + more + 1)
        cap *= 2;
    p = realloc(o->data, cap);
    if (p == NULL)
        return false;
    o->data = p;
    o->cap = cap;
    return true;
}

void gen_out_printf(gen_out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->failed)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(o, (size_t)n)) {
        o->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(o->data + o->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->len += (size_t)n;
}

char *gen_out_take(gen_out *o)
{
    char *text = o->data;

    if (!o->failed && text == NULL && reserve(o, 0)) {
        text = o->data;
        text[0] = '\0';
    }
    if (o->failed) {
        free(text);
        text = NULL;
    }
    gen_out_init(o);
    return text;
}

void gen_out_fini(gen_out *o)
{
    free(o->data);
    gen_out_init(o);
}

void gen_pool_init(gen_pool *p)
{
    p->items = NULL;
    p->n = 0;
    p->cap = 0;
    p->failed = false;
}

char *gen_pool_add(gen_pool *p, char *s)
{
    if (s == NULL) {
        p->failed = true;
        return NULL;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap != 0 ? 2 * p->cap : 64;
        char **items = realloc(p->items, cap * sizeof(*items));

        if (items == NULL) {
            free(s);
            p->failed = true;
            return NULL;
        }
        p->items = items;
        p->cap = cap;
    }
    p->items[p->n++] = s;
    return s;
}

char *gen_vformat(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s != NULL)
        vsnprintf(s, (size_t)n + 1, fmt, again);
    va_end(again);
    return s;
}

char *gen_pool_printf(gen_pool *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = gen_vformat(fmt, ap);
    va_end(ap);
    return gen_pool_add(p, s);
}

void gen_pool_fini(gen_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
    gen_pool_init(p);
}

/* arena.c — bump allocator (see arena.h). */
#include "base/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

void arena_init(arena_t *a, void *mem, size_t cap)
{
    a->first = mem;
    a->first_cap = mem ? cap : 0;
    a->extra = NULL;
    a->used = 0;
    a->limit = 0;
    a->heap_bytes = 0;
}

void *arena_alloc(arena_t *a, size_t n)
{
    n = align16(n ? n : 1);
    if (a->used + n <= a->first_cap) {
        void *p = a->first + a->used;
        a->used += n;
        return p;
    }
    arena_block_t *b = a->extra;
    if (b && b->used + n <= b->cap) {
        void *p = b->data + b->used;
        b->used += n;
        return p;
    }
    size_t cap = n > 16384 ? n : 16384;
    if (a->limit && a->heap_bytes + cap > a->limit) return NULL;
    b = malloc(sizeof(*b) + cap);
    if (!b) return NULL;
    b->cap = cap;
    b->used = n;
    b->next = a->extra;
    a->extra = b;
    a->heap_bytes += cap;
    return b->data;
}

void *arena_calloc(arena_t *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

str_t arena_strdup(arena_t *a, str_t s)
{
    char *p = arena_alloc(a, s.len + 1);
    if (!p) return STR_NULL;
    if (s.len) memcpy(p, s.s, s.len);
    p[s.len] = '\0';
    return (str_t){p, s.len};
}

str_t arena_printf(arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return STR_NULL;
    char *p = arena_alloc(a, (size_t)n + 1);
    if (!p) return STR_NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return (str_t){p, (size_t)n};
}

void arena_reset(arena_t *a)
{
    arena_block_t *b = a->extra;
    while (b) {
        arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    a->extra = NULL;
    a->used = 0;
    a->heap_bytes = 0;
}

void arena_free(arena_t *a) { arena_reset(a); }

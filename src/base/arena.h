/* arena.h — bump allocator for short-lived objects (one received message).
 *
 * An arena starts in a first block the caller supplies (a worker's receive
 * scratch, or a small malloc'ed block sized for a kept message), so parsing a
 * typical message never calls malloc, and chains heap blocks when it runs out.
 * arena_reset() frees the heap blocks and rewinds the first block;
 * arena_free() frees the heap blocks (the first block stays the caller's). */
#ifndef CASCADE_BASE_ARENA_H
#define CASCADE_BASE_ARENA_H

#include <stddef.h>

#include "base/str.h"

typedef struct arena_block {
    struct arena_block *next;
    size_t cap, used;
    char data[];
} arena_block_t;

typedef struct {
    char *first;            /* caller's first block (may be NULL) */
    size_t first_cap, used;
    arena_block_t *extra;   /* heap blocks, newest first */
    size_t limit;           /* total heap bytes allowed (0 = unlimited) */
    size_t heap_bytes;
} arena_t;

/* mem/cap: the first block (16-byte aligned), or NULL/0 to use only the heap. */
void arena_init(arena_t *a, void *mem, size_t cap);
void *arena_alloc(arena_t *a, size_t n);      /* 16-byte aligned, NULL when out of memory/limit */
void *arena_calloc(arena_t *a, size_t n);
str_t arena_strdup(arena_t *a, str_t s);      /* copy, NUL-terminated; STR_NULL on failure */
str_t arena_printf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_reset(arena_t *a);
void arena_free(arena_t *a);

#endif

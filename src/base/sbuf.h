/* sbuf.h — growable byte buffer for building messages and JSON-free text.
 *
 * Owns its heap memory; sbuf_free() releases it. Appends never fail silently:
 * on allocation failure the buffer is marked failed and stays so. */
#ifndef CASCADE_BASE_SBUF_H
#define CASCADE_BASE_SBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} sbuf_t;

void sbuf_init(sbuf_t *b);
void sbuf_free(sbuf_t *b);
void sbuf_clear(sbuf_t *b);                 /* keeps capacity */
bool sbuf_reserve(sbuf_t *b, size_t extra);
void sbuf_append(sbuf_t *b, const void *p, size_t n);
void sbuf_append_str(sbuf_t *b, str_t s);
void sbuf_append_cstr(sbuf_t *b, const char *c);
void sbuf_append_char(sbuf_t *b, char c);
void sbuf_append_u64(sbuf_t *b, unsigned long long v);
void sbuf_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline str_t sbuf_str(const sbuf_t *b) { return (str_t){b->data, b->len}; }
/* The contents without trailing CRLFs: header lines accumulated one by one,
 * handed on as the "extra headers" of a response. */
static inline str_t sbuf_lines(const sbuf_t *b)
{
    str_t s = sbuf_str(b);
    while (s.len >= 2 && s.s[s.len - 2] == '\r' && s.s[s.len - 1] == '\n') s.len -= 2;
    return s;
}
/* Hands the memory to the caller (NUL-terminated) and leaves the buffer empty. */
char *sbuf_take(sbuf_t *b);

#endif

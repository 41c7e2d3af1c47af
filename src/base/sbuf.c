/* sbuf.c — growable byte buffer (see sbuf.h). */
#include "base/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void sbuf_init(sbuf_t *b) { *b = (sbuf_t){0}; }

void sbuf_free(sbuf_t *b)
{
    free(b->data);
    *b = (sbuf_t){0};
}

void sbuf_clear(sbuf_t *b)
{
    b->len = 0;
    b->failed = false;
}

bool sbuf_reserve(sbuf_t *b, size_t extra)
{
    if (b->failed) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void sbuf_append(sbuf_t *b, const void *p, size_t n)
{
    if (!sbuf_reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sbuf_append_str(sbuf_t *b, str_t s) { sbuf_append(b, s.s, s.len); }
void sbuf_append_cstr(sbuf_t *b, const char *c) { sbuf_append(b, c, strlen(c)); }
void sbuf_append_char(sbuf_t *b, char c) { sbuf_append(b, &c, 1); }

void sbuf_append_u64(sbuf_t *b, unsigned long long v)
{
    char tmp[24];
    int i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sbuf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

void sbuf_printf(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sbuf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *sbuf_take(sbuf_t *b)
{
    if (!b->data) sbuf_append(b, "", 0);
    char *p = b->failed ? NULL : b->data;
    if (b->failed) free(b->data);
    *b = (sbuf_t){0};
    return p;
}

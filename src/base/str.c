/* str.c — helpers for non-owning string slices (see str.h). */
#include "base/str.h"

#include <stdlib.h>

static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

bool str_ieq_bytes(const char *a, const char *b, size_t n)
{
    if (n == 0 || memcmp(a, b, n) == 0) return true; /* the usual case: same spelling */
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return false;
    return true;
}

static inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

str_t str_trim(str_t a)
{
    while (a.len && is_space(a.s[0])) a.s++, a.len--;
    while (a.len && is_space(a.s[a.len - 1])) a.len--;
    return a;
}

int str_to_u64(str_t a, uint64_t max, uint64_t *out)
{
    if (a.len == 0) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < a.len; i++) {
        unsigned d = (unsigned char)a.s[i] - '0';
        if (d > 9) return -1;
        if (d > max || v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

size_t str_copy(char *dst, size_t cap, str_t src)
{
    if (cap == 0) return 0;
    size_t n = src.len < cap - 1 ? src.len : cap - 1;
    if (n) memcpy(dst, src.s, n);
    dst[n] = '\0';
    return n;
}

char *str_dup(str_t a)
{
    char *p = malloc(a.len + 1);
    if (!p) return NULL;
    if (a.len) memcpy(p, a.s, a.len);
    p[a.len] = '\0';
    return p;
}

uint32_t str_hash(str_t a)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < a.len; i++) h = (h ^ (unsigned char)a.s[i]) * 16777619u;
    return h;
}

uint32_t str_ihash(str_t a)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < a.len; i++) h = (h ^ lower((unsigned char)a.s[i])) * 16777619u;
    return h;
}

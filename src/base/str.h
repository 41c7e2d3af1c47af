/* str.h — non-owning string slices.
 *
 * A str_t points into memory someone else owns (a receive buffer, an arena, a
 * literal). Parsed SIP messages are made of them, so nothing is copied while
 * parsing. Slices are not NUL-terminated: always use the length. */
#ifndef CASCADE_BASE_STR_H
#define CASCADE_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t len;
} str_t;

#define STR_NULL ((str_t){NULL, 0})
#define STR_LIT(lit) ((str_t){(lit), sizeof(lit) - 1})
/* printf("%.*s", STR_FMT(x)) */
#define STR_FMT(x) (int)(x).len, (x).s

static inline str_t str_from_cstr(const char *c) { return (str_t){c, c ? strlen(c) : 0}; }
static inline str_t str_make(const char *s, size_t len) { return (str_t){s, len}; }
static inline bool str_empty(str_t a) { return a.len == 0; }

/* The bytes of a and b (n each) equal but for ASCII case. */
bool str_ieq_bytes(const char *a, const char *b, size_t n);

/* Inline so that the length test comes first and, with a literal, strlen
 * folds to a constant: protocol names are mostly compared against literals
 * of another length, and a mismatch then costs one comparison. */
static inline bool str_eq(str_t a, str_t b) { return a.len == b.len && (a.len == 0 || memcmp(a.s, b.s, a.len) == 0); }
static inline bool str_eq_cstr(str_t a, const char *c) { return str_eq(a, str_from_cstr(c)); }
/* ASCII case-insensitive. */
static inline bool str_ieq(str_t a, str_t b) { return a.len == b.len && str_ieq_bytes(a.s, b.s, a.len); }
static inline bool str_ieq_cstr(str_t a, const char *c) { return str_ieq(a, str_from_cstr(c)); }
str_t str_trim(str_t a);                 /* strips SP, HTAB, CR, LF both ends */
/* Parses an unsigned decimal (leading zeros allowed). Returns 0, or -1 when
 * the slice is empty, has a non-digit, or overflows max. */
int str_to_u64(str_t a, uint64_t max, uint64_t *out);
/* Copies into dst (size cap, always NUL-terminated); returns the copied length. */
size_t str_copy(char *dst, size_t cap, str_t src);
/* Duplicates into malloc'ed NUL-terminated memory; NULL on allocation failure. */
char *str_dup(str_t a);
uint32_t str_hash(str_t a);              /* FNV-1a */
uint32_t str_ihash(str_t a);             /* FNV-1a over lower-cased bytes */

#endif

/* scan.h — internal to src/sip: the character classes and small scanning
 * helpers shared by the SIP parser, the URI code and the SDP parser.
 *
 * One 256-entry table answers "may this byte appear here?" for every class
 * of the RFC 3261 §25 grammar with a single load, which keeps the hot loops
 * free of per-byte branches and calls (picohttpparser style). */
#ifndef CASCADE_SIP_SCAN_H
#define CASCADE_SIP_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

/* Bits of sip_cc[]; the names follow RFC 3261 §25.1. */
#define CC_TOKEN 0x0001
#define CC_LWS 0x0002
#define CC_HOST 0x0004
#define CC_USER 0x0008
#define CC_PASS 0x0010
#define CC_PARAM 0x0020
#define CC_HDRS 0x0040
#define CC_WORD 0x0080
#define CC_DIGIT 0x0100
#define CC_HEX 0x0200
#define CC_GENVAL 0x0400
#define CC_URIC 0x0800
#define CC_SEP 0x1000
#define CC_UTF8 0x2000
#define CC_TEL 0x4000

extern const uint16_t sip_cc[256];

/* A slice safe for pointer arithmetic: STR_NULL becomes an empty literal
 * (NULL + 0 is undefined behaviour in C). */
static inline str_t str_safe(str_t s) { return s.s ? s : (str_t){"", 0}; }

static inline bool cc_is(unsigned char c, uint16_t cls) { return (sip_cc[c] & cls) != 0; }
static inline bool cc_lws(char c) { return (sip_cc[(unsigned char)c] & CC_LWS) != 0; }
static inline bool cc_alnum(char c) { return (sip_cc[(unsigned char)c] & CC_DIGIT) || (unsigned)((c | 0x20) - 'a') < 26; }
static inline bool cc_digit(char c) { return (unsigned)(c - '0') < 10; }
static inline unsigned char cc_lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
static inline int cc_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Skips SP, HTAB, CR, LF (folded lines arrive with their CRLF inside). */
static inline const char *skip_lws(const char *p, const char *end)
{
    while (p < end && cc_lws(*p)) p++;
    return p;
}
/* Unrolled by four: one bound check per four table lookups. */
static inline const char *skip_cls(const char *p, const char *end, uint16_t cls)
{
    while (end - p >= 4) {
        if (!(sip_cc[(unsigned char)p[0]] & cls)) return p;
        if (!(sip_cc[(unsigned char)p[1]] & cls)) return p + 1;
        if (!(sip_cc[(unsigned char)p[2]] & cls)) return p + 2;
        if (!(sip_cc[(unsigned char)p[3]] & cls)) return p + 3;
        p += 4;
    }
    while (p < end && (sip_cc[(unsigned char)*p] & cls)) p++;
    return p;
}
/* Skips a quoted string starting at the opening quote; returns the byte
 * after the closing quote, or NULL when it is not terminated (RFC 3261 §25.1
 * quoted-pair: a backslash escapes any byte but CR/LF). */
const char *sip_skip_quoted(const char *p, const char *end);
/* Skips a comment "(...)" with nesting and quoted-pairs; NULL when unterminated. */
const char *sip_skip_comment(const char *p, const char *end);
/* Checks every %HH escape in s is complete and hex. */
bool sip_escapes_ok(str_t s);
/* Parses a decimal with at most max; leading zeros fine. -1 on empty/non-digit/overflow. */
int sip_parse_u64(const char *p, const char *end, uint64_t max, uint64_t *out);
/* Validates a host: hostname, IPv4 or "[IPv6]". */
bool sip_host_ok(str_t host, bool *ipv6);
/* Scans a host at p (hostname, IPv4, or "[IPv6]") and returns the byte
 * after it, or NULL when there is none or it is malformed. */
const char *sip_host_scan(const char *p, const char *end, bool *ipv6);
/* Case-insensitive compare of s with a lower-case literal of the same length. */
static inline bool ieq_lower(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cc_lower((unsigned char)s[i]) != (unsigned char)lit[i]) return false;
    return true;
}

static inline uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline uint32_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint16_t load16(const char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Like ieq_lower() for a token s (RFC 3261 token characters) against a
 * literal made of lower-case letters, digits and '-': OR-ing 0x20 into each
 * byte lowers letters and leaves every other token character unable to
 * match, so whole words compare at once (overlapping loads, no loop). */
static inline bool token_ieq(const char *s, const char *lit, size_t n)
{
    if (n >= 8) {
        for (size_t i = 0; i + 8 <= n; i += 8)
            if ((load64(s + i) | 0x2020202020202020ull) != load64(lit + i)) return false;
        return (load64(s + n - 8) | 0x2020202020202020ull) == load64(lit + n - 8);
    }
    if (n >= 4)
        return (load32(s) | 0x20202020u) == load32(lit) && (load32(s + n - 4) | 0x20202020u) == load32(lit + n - 4);
    if (n >= 2)
        return (uint16_t)(load16(s) | 0x2020u) == load16(lit) &&
               (uint16_t)(load16(s + n - 2) | 0x2020u) == load16(lit + n - 2);
    return n == 0 || ((unsigned char)s[0] | 0x20) == (unsigned char)lit[0];
}
static inline bool str_ieq_lit(str_t s, const char *lit, size_t n) { return s.len == n && ieq_lower(s.s, lit, n); }
/* Header name -> type for a name of n bytes (long or compact form). */
#include "sip/msg.h"
enum sip_hdr sip_hdr_lookup(const char *s, size_t n);
/* One generic-param after its ';' (see hdr.c). */
const char *sip_gparam_scan(const char *p, const char *end, str_t *name, str_t *value, bool *has_value);
/* Elements of a comma list; -1 when one is empty. */
int sip_list_count_strict(str_t v);

#define STR_IEQ(s, lit) str_ieq_lit((s), lit, sizeof(lit) - 1)

#endif

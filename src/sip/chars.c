/* chars.c — the character class table of scan.h and the small scanners
 * every part of src/sip shares (quoted strings, comments, escapes, hosts). */
#include "sip/scan.h"

#include <arpa/inet.h>
#include <string.h>

/* Generated from the RFC 3261 §25.1 sets (see the CC_* bits in scan.h). */
const uint16_t sip_cc[256] = {
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0002, 0x0002, 0x0000, 0x0000, 0x0002, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0002, 0x0cf9, 0x0080, 0x4800, 0x0878, 0x4cf9, 0x0838, 0x0cf9,
    0x48f8, 0x48f8, 0x4cf9, 0x4cf9, 0x1818, 0x4cfd, 0x4cfd, 0x08e8,
    0x4ffd, 0x4ffd, 0x4ffd, 0x4ffd, 0x4ffd, 0x4ffd, 0x4ffd, 0x4ffd,
    0x4ffd, 0x4ffd, 0x0ce0, 0x1808, 0x0080, 0x0818, 0x1080, 0x18c8,
    0x0800, 0x4efd, 0x4efd, 0x4efd, 0x4efd, 0x4efd, 0x4efd, 0x4cfd,
    0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd,
    0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd,
    0x4cfd, 0x4cfd, 0x4cfd, 0x0ce0, 0x0880, 0x0ce0, 0x0800, 0x0cfd,
    0x0c81, 0x4efd, 0x4efd, 0x4efd, 0x4efd, 0x4efd, 0x4efd, 0x4cfd,
    0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd,
    0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd, 0x4cfd,
    0x4cfd, 0x4cfd, 0x4cfd, 0x0880, 0x0800, 0x0880, 0x0cf9, 0x0000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
};

const char *sip_skip_quoted(const char *p, const char *end)
{
    p++; /* opening quote */
    while (p < end) {
        char c = *p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            /* quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F) */
            if (p + 1 >= end || p[1] == '\r' || p[1] == '\n') return NULL;
            p += 2;
            continue;
        }
        p++;
    }
    return NULL;
}

const char *sip_skip_comment(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '(') {
            if (++depth > 32) return NULL; /* bound nesting */
        } else if (c == ')') {
            if (--depth == 0) return p + 1;
        } else if (c == '\\') {
            if (p + 1 >= end) return NULL;
            p++;
        }
        p++;
    }
    return NULL;
}

bool sip_escapes_ok(str_t s)
{
    s = str_safe(s);
    const char *p = s.s, *end = s.s + s.len;
    while ((p = memchr(p, '%', (size_t)(end - p))) != NULL) {
        if (end - p < 3 || cc_hexval((unsigned char)p[1]) < 0 || cc_hexval((unsigned char)p[2]) < 0)
            return false;
        p += 3;
    }
    return true;
}

int sip_parse_u64(const char *p, const char *end, uint64_t max, uint64_t *out)
{
    if (p >= end) return -1;
    while (end - p > 1 && *p == '0') p++; /* leading zeros are fine (RFC 4475 §3.1.1.1) */
    /* 19 digits cannot overflow 64 bits, so range is checked once at the end */
    if (end - p > 19) return -1;
    uint64_t v = 0;
    for (; p < end; p++) {
        unsigned d = (unsigned char)*p - '0';
        if (d > 9) return -1;
        v = v * 10 + d;
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

const char *sip_host_scan(const char *p, const char *end, bool *ipv6)
{
    *ipv6 = false;
    if (p >= end) return NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) return NULL;
        return sip_host_ok((str_t){p, (size_t)(rb + 1 - p)}, ipv6) ? rb + 1 : NULL;
    }
    /* hostname = *( domainlabel "." ) toplabel [ "." ] (an IPv4 address
     * has the same shape): no label starts with '.' or '-', so the host
     * starts with neither and a '.' never follows '.' or '-' (RFC 1034 §3.5) */
    const char *s = p;
    p = skip_cls(p, end, CC_HOST);
    if (p == s || *s == '.' || *s == '-') return NULL;
    for (const char *q = s + 1; q < p; q++)
        if (*q == '.' && (q[-1] == '.' || q[-1] == '-')) return NULL;
    return p;
}

bool sip_host_ok(str_t host, bool *ipv6)
{
    *ipv6 = false;
    if (host.len == 0) return false;
    if (host.s[0] == '[') {
        /* IPv6reference = "[" IPv6address "]" (RFC 3261 §25.1) */
        char tmp[64];
        if (host.len < 4 || host.len - 2 >= sizeof(tmp) || host.s[host.len - 1] != ']') return false;
        memcpy(tmp, host.s + 1, host.len - 2);
        tmp[host.len - 2] = '\0';
        unsigned char bin[16];
        if (inet_pton(AF_INET6, tmp, bin) != 1) return false;
        *ipv6 = true;
        return true;
    }
    return sip_host_scan(host.s, host.s + host.len, ipv6) == host.s + host.len;
}

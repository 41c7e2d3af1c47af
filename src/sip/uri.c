/* uri.c — SIP/SIPS/tel URI parsing (RFC 3261 §19.1, RFC 3966), escapes,
 * parameter lists, and URI comparison (RFC 3261 §19.1.4).
 *
 * sip_uri_parse() only slices: every str_t points into the URI text. Escapes
 * stay as received; sip_unescape() and the comparison decode them when needed. */
#include <arpa/inet.h>
#include <string.h>

#include "sip/msg.h"
#include "sip/scan.h"

static void uri_pick_param(struct sip_uri *u, str_t name, str_t value, bool has_value)
{
    switch (name.len) {
    case 2:
        if (ieq_lower(name.s, "lr", 2)) u->lr = true;
        break;
    case 3:
        if (ieq_lower(name.s, "ttl", 3) && has_value) u->ttl = value;
        break;
    case 4:
        if (ieq_lower(name.s, "user", 4) && has_value) u->user_param = value;
        break;
    case 5:
        if (ieq_lower(name.s, "maddr", 5) && has_value) u->maddr = value;
        break;
    case 6:
        if (ieq_lower(name.s, "method", 6) && has_value) u->method_param = value;
        break;
    case 9:
        if (ieq_lower(name.s, "transport", 9) && has_value) u->transport = value;
        break;
    default:
        break;
    }
}

/* uri-parameters = *( ";" uri-parameter ); s is the run after the first ';'.
 * Every pname must be non-empty; characters were checked by the caller. */
static int uri_scan_params(struct sip_uri *u, str_t s)
{
    const char *p = s.s, *end = s.s + s.len;
    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        str_t name = {p, (size_t)((eq ? eq : pe) - p)};
        if (name.len == 0) return -1;
        str_t value = eq ? (str_t){eq + 1, (size_t)(pe - eq - 1)} : STR_NULL;
        if (eq && value.len == 0) return -1; /* pvalue = 1*paramchar */
        uri_pick_param(u, name, value, eq != NULL);
        if (!semi) return 0;
        p = semi + 1;
    }
}

/* Checks a run against a character class plus the separators allowed in it. */
static bool run_ok(const char *p, const char *end, uint16_t cls) { return skip_cls(p, end, cls) == end; }

static bool run_ok_extra(const char *p, const char *end, uint16_t cls, const char *extra)
{
    for (; p < end; p++)
        if (!(sip_cc[(unsigned char)*p] & cls) && (!*p || !strchr(extra, *p))) return false;
    return true;
}

static int parse_sip_part(struct sip_uri *u, const char *p, const char *end)
{
    /* The userinfo is everything before the first '@': '@' may appear nowhere
     * else unescaped (user, password, params and headers all exclude it). */
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *ue = colon ? colon : at;
        if (ue == p) return -1; /* user = 1*( unreserved / escaped / user-unreserved ) */
        if (!run_ok(p, ue, CC_USER)) return -1;
        u->user = (str_t){p, (size_t)(ue - p)};
        if (colon) {
            if (!run_ok(colon + 1, at, CC_PASS)) return -1;
            u->password = (str_t){colon + 1, (size_t)(at - colon - 1)};
        }
        p = at + 1;
    }
    const char *hs = p;
    p = sip_host_scan(p, end, &u->host_is_ipv6);
    if (!p) return -1;
    u->host = (str_t){hs, (size_t)(p - hs)};
    if (p < end && *p == ':') {
        const char *ps = ++p;
        while (p < end && cc_digit(*p)) p++;
        uint64_t port;
        if (p - ps > 5 || sip_parse_u64(ps, p, 65535, &port) < 0) return -1;
        u->port = (uint16_t)port;
    }
    if (p < end && *p == ';') {
        const char *ps = ++p;
        const char *q = memchr(p, '?', (size_t)(end - p));
        p = q ? q : end;
        if (!run_ok_extra(ps, p, CC_PARAM, "=;")) return -1;
        u->params = (str_t){ps, (size_t)(p - ps)};
        if (uri_scan_params(u, u->params) < 0) return -1;
    }
    if (p < end && *p == '?') {
        const char *hs2 = ++p;
        if (!run_ok_extra(hs2, end, CC_HDRS, "=&")) return -1;
        u->headers = (str_t){hs2, (size_t)(end - hs2)};
        if (u->headers.len == 0) return -1;
        p = end;
    }
    return p == end ? 0 : -1;
}

int sip_uri_parse(str_t raw, struct sip_uri *u)
{
    memset(u, 0, sizeof(*u));
    u->raw = raw;
    if (raw.len == 0 || raw.s == NULL) return -1;
    const char *p = raw.s, *end = raw.s + raw.len;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
    const char *q;
    if (raw.len > 4 && (load32(p) | 0x20202020u) == load32("sip:")) {
        q = p + 3; /* the common case, one compare */
    } else {
        unsigned char c0 = (unsigned char)*p | 0x20;
        if (c0 < 'a' || c0 > 'z') return -1;
        q = p + 1;
        while (q < end && (cc_alnum(*q) || *q == '+' || *q == '-' || *q == '.')) q++;
        if (q == end || *q != ':') return -1;
    }
    u->scheme_name = (str_t){p, (size_t)(q - p)};
    p = q + 1;
    if (p == end) return -1;
    if (STR_IEQ(u->scheme_name, "sip"))
        u->scheme = SIP_SCHEME_SIP;
    else if (STR_IEQ(u->scheme_name, "sips"))
        u->scheme = SIP_SCHEME_SIPS;
    else if (STR_IEQ(u->scheme_name, "tel"))
        u->scheme = SIP_SCHEME_TEL;
    else
        u->scheme = SIP_SCHEME_OTHER;

    if (!sip_escapes_ok(raw)) return -1;
    switch (u->scheme) {
    case SIP_SCHEME_SIP:
    case SIP_SCHEME_SIPS:
        return parse_sip_part(u, p, end);
    case SIP_SCHEME_TEL: {
        /* RFC 3966: telephone-subscriber = number *( ";" par ); kept loose on
         * the digits (visual separators vary), strict on structure. */
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *ne = semi ? semi : end;
        if (ne == p || !run_ok(p, ne, CC_TEL)) return -1;
        u->user = (str_t){p, (size_t)(ne - p)};
        if (semi) {
            if (!run_ok_extra(semi + 1, end, CC_PARAM, "=;?@,")) return -1;
            u->params = (str_t){semi + 1, (size_t)(end - semi - 1)};
            if (uri_scan_params(u, u->params) < 0) return -1;
        }
        return 0;
    }
    default:
        /* Other schemes (RFC 3986 absoluteURI) are kept raw; only require
         * visible characters so the URI cannot smuggle separators. */
        return run_ok(p, end, CC_URIC) ? 0 : -1;
    }
}

int sip_unescape(str_t in, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.s[i];
        if (c == '%') {
            if (i + 2 >= in.len) return -1;
            int h = cc_hexval((unsigned char)in.s[i + 1]), l = cc_hexval((unsigned char)in.s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (unsigned char)(h * 16 + l);
            i += 2;
        }
        if (o >= cap) return -1;
        dst[o++] = (char)c;
    }
    return (int)o;
}

/* ---- parameters ";name=value" ---------------------------------------- */

bool sip_param_next(str_t *cursor, str_t *name, str_t *value, bool *has_value)
{
    *cursor = str_safe(*cursor);
    const char *p = cursor->s, *end = cursor->s + cursor->len;
    for (;;) {
        p = skip_lws(p, end);
        while (p < end && *p == ';') p = skip_lws(p + 1, end);
        if (p >= end) {
            *cursor = (str_t){end, 0};
            return false;
        }
        const char *ns = p;
        while (p < end && *p != '=' && *p != ';' && !cc_lws(*p)) p++;
        *name = (str_t){ns, (size_t)(p - ns)};
        p = skip_lws(p, end);
        *value = STR_NULL;
        if (has_value) *has_value = false;
        if (p < end && *p == '=') {
            if (has_value) *has_value = true;
            p = skip_lws(p + 1, end);
            if (p < end && *p == '"') {
                const char *qe = sip_skip_quoted(p, end);
                if (!qe) qe = end; /* unterminated: take the rest, callers validate */
                *value = (str_t){p + 1, (size_t)(qe - p - (qe > p + 1 && qe[-1] == '"' ? 2 : 1))};
                p = qe;
            } else {
                const char *vs = p;
                while (p < end && *p != ';' && !cc_lws(*p)) p++;
                *value = (str_t){vs, (size_t)(p - vs)};
            }
            p = skip_lws(p, end);
        }
        /* skip anything up to the next ';' (malformed leftovers) */
        while (p < end && *p != ';') {
            if (*p == '"') {
                const char *qe = sip_skip_quoted(p, end);
                p = qe ? qe : end;
            } else {
                p++;
            }
        }
        *cursor = (str_t){p, (size_t)(end - p)};
        if (name->len) return true;
    }
}

bool sip_param_get(str_t params, const char *name, str_t *value)
{
    str_t cur = params, n, v;
    size_t nl = strlen(name);
    while (sip_param_next(&cur, &n, &v, NULL)) {
        if (n.len == nl) {
            size_t i = 0;
            while (i < nl && cc_lower((unsigned char)n.s[i]) == cc_lower((unsigned char)name[i])) i++;
            if (i == nl) {
                if (value) *value = v;
                return true;
            }
        }
    }
    return false;
}

/* ---- comparison (RFC 3261 §19.1.4) ---------------------------------- */

/* Next character of a URI component in canonical form: an escaped octet
 * equals the octet itself unless it is a reserved character, whose escaped
 * and literal forms differ ("%3B" is not ";"). Returns -1 at the end. */
static int canon_next(const char **pp, const char *end, bool fold)
{
    const char *p = *pp;
    if (p >= end) return -1;
    int c = (unsigned char)*p++;
    if (c == '%' && end - p >= 2) {
        int h = cc_hexval((unsigned char)p[0]), l = cc_hexval((unsigned char)p[1]);
        if (h >= 0 && l >= 0) {
            c = h * 16 + l;
            p += 2;
            if (strchr(";/?:@&=+$,", c) && c) c |= 0x100;
        }
    }
    *pp = p;
    if (fold && c < 0x100) c = cc_lower((unsigned char)c);
    return c;
}

static bool comp_eq(str_t a, str_t b, bool fold)
{
    a = str_safe(a);
    b = str_safe(b);
    const char *pa = a.s, *ea = a.s + a.len, *pb = b.s, *eb = b.s + b.len;
    for (;;) {
        int ca = canon_next(&pa, ea, fold), cb = canon_next(&pb, eb, fold);
        if (ca != cb) return false;
        if (ca < 0) return true;
    }
}

static bool host_eq(const struct sip_uri *a, const struct sip_uri *b)
{
    if (a->host_is_ipv6 && b->host_is_ipv6) {
        char ta[64], tb[64];
        unsigned char ba[16], bb[16];
        if (a->host.len - 2 < sizeof(ta) && b->host.len - 2 < sizeof(tb)) {
            memcpy(ta, a->host.s + 1, a->host.len - 2);
            ta[a->host.len - 2] = '\0';
            memcpy(tb, b->host.s + 1, b->host.len - 2);
            tb[b->host.len - 2] = '\0';
            if (inet_pton(AF_INET6, ta, ba) == 1 && inet_pton(AF_INET6, tb, bb) == 1) return memcmp(ba, bb, 16) == 0;
        }
    }
    return comp_eq(a->host, b->host, true);
}

/* The parameters that must match when present in either URI. */
static bool param_is_strict(str_t n)
{
    return STR_IEQ(n, "transport") || STR_IEQ(n, "user") || STR_IEQ(n, "ttl") || STR_IEQ(n, "method") ||
           STR_IEQ(n, "maddr");
}

/* 1: params holds name with value v; 0: holds name, other values only;
 * -1: does not hold name. Duplicates (not allowed, but seen) all count. */
static int param_match(str_t params, str_t name, str_t v)
{
    str_t cur = params, n, w;
    int r = -1;
    while (sip_param_next(&cur, &n, &w, NULL)) {
        if (!comp_eq(n, name, true)) continue;
        if (comp_eq(v, w, true)) return 1;
        r = 0;
    }
    return r;
}

/* Every parameter of pa is matched in pb: equal when there, and present
 * when it is one of the strict five. */
static bool params_contained(str_t pa, str_t pb)
{
    str_t cur = pa, n, v;
    while (sip_param_next(&cur, &n, &v, NULL)) {
        int r = param_match(pb, n, v);
        if (r == 0 || (r < 0 && param_is_strict(n))) return false;
    }
    return true;
}

static bool params_eq(str_t pa, str_t pb) { return params_contained(pa, pb) && params_contained(pb, pa); }

/* Splits "a=b&c=d" headers. */
static bool hdr_next(str_t *cur, str_t *name, str_t *value)
{
    if (cur->len == 0) return false;
    const char *p = cur->s, *end = cur->s + cur->len;
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *he = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(he - p));
    *name = (str_t){p, (size_t)((eq ? eq : he) - p)};
    *value = eq ? (str_t){eq + 1, (size_t)(he - eq - 1)} : STR_NULL;
    *cur = amp ? (str_t){amp + 1, (size_t)(end - amp - 1)} : (str_t){end, 0};
    return true;
}

static bool headers_contained(str_t ha, str_t hb)
{
    str_t ca = ha, n, v;
    while (hdr_next(&ca, &n, &v)) {
        str_t cb = hb, m, w;
        bool found = false;
        while (hdr_next(&cb, &m, &w))
            if (comp_eq(n, m, true) && comp_eq(v, w, true)) {
                found = true;
                break;
            }
        if (!found) return false;
    }
    return true;
}

bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b)
{
    if (a->scheme != b->scheme) return false;
    if (a->scheme == SIP_SCHEME_OTHER) {
        /* RFC 3986 §6.2.2.1: the scheme is case-insensitive, the rest is compared as is */
        if (!str_ieq(a->scheme_name, b->scheme_name) || a->raw.len != b->raw.len) return false;
        size_t skip = a->scheme_name.len + 1;
        return a->raw.len >= skip && memcmp(a->raw.s + skip, b->raw.s + skip, a->raw.len - skip) == 0;
    }
    /* userinfo is case-sensitive; escapes of unreserved characters decode */
    if (!comp_eq(a->user, b->user, a->scheme == SIP_SCHEME_TEL)) return false;
    if (!comp_eq(a->password, b->password, false)) return false;
    if (a->scheme != SIP_SCHEME_TEL) {
        if (!host_eq(a, b)) return false;
        if (a->port != b->port) return false; /* an explicit port never equals a default one */
    }
    if (!params_eq(a->params, b->params)) return false;
    /* headers: every one must be in the other, in any order */
    return headers_contained(a->headers, b->headers) && headers_contained(b->headers, a->headers);
}

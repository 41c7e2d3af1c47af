/* hdr.c — parsers for the structured header values of RFC 3261 §20/§25:
 * name-addr (From, To, Contact, Route...), via-parm, CSeq, comma lists,
 * generic parameters, and the Contact list of a message; plus header access
 * by type and name.
 *
 * Every function here takes a trimmed header value that may still contain
 * folded line breaks (CR/LF count as linear white space), and returns slices
 * of it. */
#include <string.h>

#include "sip/msg.h"
#include "sip/scan.h"

static str_t trim_lws(const char *p, const char *end)
{
    while (p < end && cc_lws(*p)) p++;
    while (end > p && cc_lws(end[-1])) end--;
    return (str_t){p, (size_t)(end - p)};
}

/* ---- generic parameters (RFC 3261 §25.1: generic-param) -------------- */

/* Reads one "token [ EQUAL gen-value ]" at p (after its SEMI); gen-value =
 * token / host / quoted-string. Returns the byte after it (LWS skipped) or
 * NULL when malformed. The value of a quoted string keeps its quotes out. */
const char *sip_gparam_scan(const char *p, const char *end, str_t *name, str_t *value, bool *has_value)
{
    p = skip_lws(p, end);
    const char *ns = p;
    p = skip_cls(p, end, CC_TOKEN);
    if (p == ns) return NULL;
    *name = (str_t){ns, (size_t)(p - ns)};
    *value = STR_NULL;
    *has_value = false;
    p = skip_lws(p, end);
    if (p < end && *p == '=') {
        *has_value = true;
        p = skip_lws(p + 1, end);
        if (p < end && *p == '"') {
            const char *qe = sip_skip_quoted(p, end);
            if (!qe) return NULL;
            *value = (str_t){p + 1, (size_t)(qe - p - 2)};
            p = qe;
        } else {
            const char *vs = p;
            p = skip_cls(p, end, CC_GENVAL);
            if (p == vs) return NULL;
            *value = (str_t){vs, (size_t)(p - vs)};
        }
        p = skip_lws(p, end);
    }
    return p;
}

/* ---- name-addr / addr-spec (RFC 3261 §20.10, §25.1) ------------------ */

int sip_name_addr_parse(str_t value, struct sip_name_addr *na)
{
    memset(na, 0, sizeof(*na));
    value = str_safe(value);
    str_t v = trim_lws(value.s, value.s + value.len);
    const char *p = v.s, *end = v.s + v.len;
    if (p == end) return -1;
    if (v.len == 1 && *p == '*') {
        na->star = true;
        return 0;
    }
    bool angle = false;
    if (*p == '"') {
        const char *qe = sip_skip_quoted(p, end);
        if (!qe) return -1; /* unterminated quoted display name */
        na->display = (str_t){p + 1, (size_t)(qe - p - 2)};
        p = skip_lws(qe, end);
        if (p >= end || *p != '<') return -1;
        angle = true;
    } else if (*p == '<') {
        angle = true;
    } else {
        /* display-name = *(token LWS); non-ASCII tolerated unquoted since
         * devices in the field send it. Anything else means an addr-spec. */
        const char *q = p;
        while (q < end && (sip_cc[(unsigned char)*q] & (CC_TOKEN | CC_LWS | CC_UTF8))) q++;
        if (q < end && *q == '<') {
            na->display = trim_lws(p, q);
            p = q;
            angle = true;
        }
    }
    str_t uri;
    if (angle) {
        p++;
        const char *gt = memchr(p, '>', (size_t)(end - p));
        if (!gt || gt == p) return -1;
        /* LAQUOT addr-spec RAQUOT: no white space inside the brackets */
        if (cc_lws(*p) || cc_lws(gt[-1])) return -1;
        uri = (str_t){p, (size_t)(gt - p)};
        p = gt + 1;
    } else {
        /* A bare addr-spec ends at the first ';' (those parameters belong to
         * the header), so it may not carry URI headers (RFC 3261 §20). */
        const char *q = p;
        while (q < end && *q != ';' && !cc_lws(*q)) {
            if (*q == '?' || *q == ',') return -1;
            q++;
        }
        uri = (str_t){p, (size_t)(q - p)};
        p = q;
    }
    na->uri_raw = uri;
    if (sip_uri_parse(uri, &na->uri) < 0) return -1;
    p = skip_lws(p, end);
    if (p == end) return 0;
    if (*p != ';') return -1;
    p++;
    na->params = trim_lws(p, end);
    while (p < end) {
        str_t n, val;
        bool hv;
        p = sip_gparam_scan(p, end, &n, &val, &hv);
        if (!p) return -1;
        if (n.len == 3 && ieq_lower(n.s, "tag", 3)) {
            if (!hv || val.len == 0) return -1;
            na->tag = val;
        }
        if (p == end) break;
        if (*p != ';') return -1;
        p++;
    }
    return 0;
}

/* ---- Via (RFC 3261 §20.42) ------------------------------------------ */

static inline void via_pick(struct sip_via *via, str_t n, str_t v, bool hv, bool *bad)
{
    switch (n.len) {
    case 3:
        if (ieq_lower(n.s, "ttl", 3)) {
            uint64_t t;
            if (!hv || sip_parse_u64(v.s, v.s + v.len, 255, &t) < 0) *bad = true;
            via->ttl = v;
        }
        break;
    case 5:
        if (ieq_lower(n.s, "maddr", 5)) {
            bool v6;
            if (!hv || !sip_host_ok(v, &v6)) *bad = true;
            via->maddr = v;
        } else if (ieq_lower(n.s, "rport", 5)) {
            via->has_rport = true;
            if (hv) {
                uint64_t port;
                if (sip_parse_u64(v.s, v.s + v.len, 65535, &port) < 0) *bad = true;
                via->rport = (uint16_t)port;
            }
        }
        break;
    case 6:
        if (ieq_lower(n.s, "branch", 6)) {
            if (!hv || v.len == 0) *bad = true;
            via->branch = v;
        }
        break;
    case 8:
        if (ieq_lower(n.s, "received", 8)) {
            /* IPv4address / IPv6address; hostnames seen in the wild too */
            if (!hv || v.len == 0) *bad = true;
            via->received = v;
        }
        break;
    default:
        break;
    }
}

int sip_via_parse(str_t value, struct sip_via *via)
{
    memset(via, 0, sizeof(*via));
    value = str_safe(value);
    str_t v = trim_lws(value.s, value.s + value.len);
    via->raw = v;
    const char *p = v.s, *end = v.s + v.len;
    /* sent-protocol = protocol-name SLASH protocol-version SLASH transport,
     * SLASH = SWS "/" SWS */
    const char *ps = p;
    const char *q = skip_cls(p, end, CC_TOKEN);
    if (q - p != 3 || !ieq_lower(p, "sip", 3)) return -1;
    p = skip_lws(q, end);
    if (p >= end || *p != '/') return -1;
    p = skip_lws(p + 1, end);
    q = skip_cls(p, end, CC_TOKEN);
    if (q - p != 3 || memcmp(p, "2.0", 3) != 0) return -1;
    via->protocol = (str_t){ps, (size_t)(q - ps)};
    p = skip_lws(q, end);
    if (p >= end || *p != '/') return -1;
    p = skip_lws(p + 1, end);
    q = skip_cls(p, end, CC_TOKEN);
    if (q == p) return -1;
    via->transport = (str_t){p, (size_t)(q - p)};
    /* LWS sent-by */
    p = q;
    q = skip_lws(p, end);
    if (q == p) return -1;
    p = q;
    const char *hs = p;
    bool v6;
    p = sip_host_scan(p, end, &v6);
    if (!p) return -1;
    via->host = (str_t){hs, (size_t)(p - hs)};
    p = skip_lws(p, end);
    if (p < end && *p == ':') {
        p = skip_lws(p + 1, end);
        const char *ds = p;
        while (p < end && cc_digit(*p)) p++;
        uint64_t port;
        if (p - ds > 5 || sip_parse_u64(ds, p, 65535, &port) < 0) return -1;
        via->port = (uint16_t)port;
        p = skip_lws(p, end);
    }
    if (p < end && *p == ';') {
        p++;
        const char *params = skip_lws(p, end);
        bool bad = false;
        for (;;) {
            str_t n, val;
            bool hv;
            p = sip_gparam_scan(p, end, &n, &val, &hv);
            if (!p) return -1;
            via_pick(via, n, val, hv, &bad);
            if (p < end && *p == ';') {
                p++;
                continue;
            }
            break;
        }
        if (bad) return -1;
        const char *pe = p;
        while (pe > params && cc_lws(pe[-1])) pe--;
        via->params = (str_t){params, (size_t)(pe - params)};
    }
    /* RFC 2543 peers may end a via-parm with a comment */
    if (p < end && *p == '(') {
        p = sip_skip_comment(p, end);
        if (!p) return -1;
        p = skip_lws(p, end);
    }
    return p == end ? 0 : -1;
}

/* ---- CSeq (RFC 3261 §20.16) ------------------------------------------ */

int sip_cseq_parse(str_t value, struct sip_cseq *cseq)
{
    memset(cseq, 0, sizeof(*cseq));
    value = str_safe(value);
    str_t v = trim_lws(value.s, value.s + value.len);
    const char *p = v.s, *end = v.s + v.len;
    const char *ds = p;
    while (p < end && cc_digit(*p)) p++;
    uint64_t n;
    /* RFC 3261 §8.1.1.5: the sequence number MUST be below 2**31 */
    if (sip_parse_u64(ds, p, 0x7fffffffu, &n) < 0) return -1;
    const char *q = skip_lws(p, end);
    if (q == p) return -1;
    p = q;
    q = skip_cls(p, end, CC_TOKEN);
    if (q == p || q != end) return -1;
    cseq->number = (uint32_t)n;
    cseq->method_name = (str_t){p, (size_t)(q - p)};
    cseq->method = sip_method_from_str(cseq->method_name);
    return 0;
}

/* ---- comma lists (RFC 3261 §7.3.1) ---------------------------------- */

/* Ends the element starting at p: the next ',' outside quotes, <> and comments. */
static const char *list_elem_end(const char *p, const char *end)
{
    while (p < end) {
        char c = *p;
        if (c == ',') return p;
        if (c == '"') {
            const char *q = sip_skip_quoted(p, end);
            p = q ? q : end;
        } else if (c == '<') {
            const char *q = memchr(p, '>', (size_t)(end - p));
            p = q ? q + 1 : end;
        } else if (c == '(') {
            const char *q = sip_skip_comment(p, end);
            p = q ? q : end;
        } else {
            p++;
        }
    }
    return end;
}

bool sip_list_next(str_t *cursor, str_t *item)
{
    if (!cursor->s) return false;
    const char *p = cursor->s, *end = cursor->s + cursor->len;
    for (;;) {
        p = skip_lws(p, end);
        if (p >= end) {
            *cursor = (str_t){end, 0};
            return false;
        }
        if (*p == ',') {
            p++;
            continue; /* empty elements are skipped (RFC 7230 §7 style tolerance) */
        }
        const char *e = list_elem_end(p, end);
        *item = trim_lws(p, e);
        *cursor = (str_t){e, (size_t)(end - e)};
        return true;
    }
}

/* Counts the elements of a list, -1 when one is empty (",," or a trailing ','). */
int sip_list_count_strict(str_t v)
{
    v = str_safe(v);
    const char *p = v.s, *end = v.s + v.len;
    int n = 0;
    for (;;) {
        p = skip_lws(p, end);
        if (p >= end || *p == ',') return -1;
        p = list_elem_end(p, end);
        n++;
        if (p >= end) return n;
        p++; /* ',' */
    }
}

void sip_list_iter_init(struct sip_list_iter *it, const struct sip_msg *m, enum sip_hdr type)
{
    it->m = m;
    it->h = sip_msg_header(m, type);
    it->cursor = it->h ? it->h->value : STR_NULL;
}

bool sip_list_iter_next(struct sip_list_iter *it, str_t *item)
{
    while (it->h) {
        if (sip_list_next(&it->cursor, item)) return true;
        it->h = sip_msg_header_next(it->m, it->h);
        it->cursor = it->h ? it->h->value : STR_NULL;
    }
    return false;
}

/* ---- header access ---------------------------------------------------- */

const struct sip_header *sip_msg_header(const struct sip_msg *m, enum sip_hdr type)
{
    if ((unsigned)type >= SIP_HDR_COUNT || !m->headers) return NULL;
    int32_t i = m->first[type];
    if (i < 0 || (uint32_t)i >= m->header_count) return NULL;
    return &m->headers[i];
}

const struct sip_header *sip_msg_header_next(const struct sip_msg *m, const struct sip_header *h)
{
    if (!h || !m->headers || h < m->headers) return NULL;
    const struct sip_header *end = m->headers + m->header_count;
    for (const struct sip_header *x = h + 1; x < end; x++) {
        if (x->type != h->type) continue;
        if (h->type != SIP_HDR_OTHER || str_ieq(x->name, h->name)) return x;
    }
    return NULL;
}

const struct sip_header *sip_msg_header_by_name(const struct sip_msg *m, const char *name)
{
    str_t n = str_from_cstr(name);
    enum sip_hdr t = sip_hdr_from_name(n);
    if (t != SIP_HDR_OTHER) return sip_msg_header(m, t);
    for (uint32_t i = 0; i < m->header_count; i++)
        if (m->headers[i].type == SIP_HDR_OTHER && str_ieq(m->headers[i].name, n)) return &m->headers[i];
    return NULL;
}

/* ---- Contact (RFC 3261 §20.10, §10.3) ------------------------------- */

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
static int parse_qvalue(str_t v, int *q1000)
{
    if (v.len == 0 || v.len > 5) return -1;
    if (v.s[0] != '0' && v.s[0] != '1') return -1;
    int q = (v.s[0] - '0') * 1000;
    if (v.len > 1) {
        if (v.s[1] != '.') return -1;
        int scale = 100;
        for (size_t i = 2; i < v.len; i++, scale /= 10) {
            if (!cc_digit(v.s[i])) return -1;
            q += (v.s[i] - '0') * scale;
        }
    }
    if (q > 1000) return -1;
    *q1000 = q;
    return 0;
}

int sip_msg_contacts(const struct sip_msg *m, arena_t *a, struct sip_contact **list, bool *star)
{
    *list = NULL;
    *star = false;
    struct sip_contact **tail = list;
    struct sip_list_iter it;
    str_t item;
    sip_list_iter_init(&it, m, SIP_HDR_CONTACT);
    while (sip_list_iter_next(&it, &item)) {
        if (item.len == 1 && item.s[0] == '*') {
            *star = true;
            continue;
        }
        struct sip_contact *c = arena_alloc(a, sizeof(*c));
        if (!c) return -1;
        memset(c, 0, sizeof(*c));
        if (sip_name_addr_parse(item, &c->addr) < 0 || c->addr.star) return -1;
        c->q1000 = 1000;
        c->expires = -1;
        str_t cur = c->addr.params, n, v;
        bool hv;
        while (sip_param_next(&cur, &n, &v, &hv)) {
            if (STR_IEQ(n, "q")) {
                if (!hv || parse_qvalue(v, &c->q1000) < 0) return -1;
            } else if (STR_IEQ(n, "expires")) {
                /* delta-seconds; overlarge values are taken as the largest
                 * 32-bit one (RFC 3261 §20.19 range), the registrar caps it */
                if (!hv || v.len == 0) return -1;
                const char *p = v.s, *e = v.s + v.len;
                uint64_t x = 0;
                for (; p < e; p++) {
                    if (!cc_digit(*p)) return -1;
                    if (x < 0xffffffffull) x = x * 10 + (uint64_t)(*p - '0');
                }
                c->expires = (int64_t)(x > 0xffffffffull ? 0xffffffffull : x);
            } else if (STR_IEQ(n, "+sip.instance")) {
                c->instance = v;
            } else if (STR_IEQ(n, "reg-id")) {
                c->reg_id = v;
            }
        }
        *tail = c;
        tail = &c->next;
    }
    return 0;
}

/* parse.c — sip_parse(): one SIP message (RFC 3261 §7) from a caller-owned
 * buffer into a struct sip_msg in a caller-owned arena, and
 * sip_frame_length(): message boundaries on stream transports (§18.3).
 *
 * The parser walks the buffer once. Line ends are found 16 bytes at a time
 * (SSE2 where available) while every control character is refused on the
 * way; header names are matched by length and first letter; only the
 * headers every layer needs are parsed further (see msg.h). Errors that
 * leave the message answerable (a bad Max-Forwards, a CSeq method mismatch)
 * are remembered and reported after the whole header block was read, so
 * the caller can still send the 400 with the right Via/From/To/Call-ID/CSeq.
 *
 * Issue 9 / RFC 4475: a request is answered whenever a response can be
 * formed, so that no client (a TCP one above all) waits for nothing. Extra
 * or trailing SP in the request line and LWS in the Request-URI (§3.1.2.8-10),
 * too many header fields or an overlong one (513), are refused but the
 * header block is still read. When the fields a response copies are broken,
 * the model is repaired for sip_build_response() only (see
 * sip_parse_error.can_answer in msg.h): a From/To reduced to <URI> and tag,
 * a CSeq with number 0, a stand-in Call-ID. A broken or missing Via, a
 * missing From/To/CSeq cannot be answered. */
#include <stddef.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "sip/msg.h"
#include "sip/scan.h"

void sip_parse_limits_default(struct sip_parse_limits *l)
{
    l->max_message_bytes = 65536;
    l->max_headers = SIP_MAX_HEADERS_DEFAULT;
    l->max_line_bytes = 8192;
}

/* First control character (CR, LF, HTAB, NUL, DEL...) in [p, end), or
 * end. HTAB is legal white space but rare, so the caller steps over it
 * rather than every block paying to exclude it. */
static inline const char *find_ctl(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i c1f = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v); /* v <= 0x1f */
        ctl = _mm_or_si128(ctl, _mm_cmpeq_epi8(v, del));
        unsigned mask = (unsigned)_mm_movemask_epi8(ctl);
        if (mask) return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f) return p;
    }
    return end;
}

struct pstate {
    const char *reason; /* first error that still lets the header block finish */
    int status;
    bool ruri_set, via_bad, from_ok, to_ok, callid_ok, cseq_ok;
    bool from_seen, to_seen, callid_seen, cseq_seen, mf_seen, ct_seen, exp_seen;
    bool unanswerable;  /* a field a response copies was not kept (too long, past the limit) */
    bool over_headers;  /* more header fields than max_headers */
    uint32_t via_lines; /* Via header fields kept */
    bool minor;         /* reason is a fault in a field a response does not copy */
};

/* The fields a response copies (RFC 3261 §8.2.6.2). */
static bool copied_in_response(enum sip_hdr t)
{
    return t == SIP_HDR_VIA || t == SIP_HDR_FROM || t == SIP_HDR_TO || t == SIP_HDR_CALL_ID || t == SIP_HDR_CSEQ;
}

static inline void defer(struct pstate *st, const char *reason, int status)
{
    if (!st->reason || st->minor) {
        st->reason = reason;
        st->status = status;
        st->minor = false;
    }
}

/* A fault in a field no response copies (Max-Forwards, Content-Type, ...):
 * reported unless a worse one follows (RFC 4475 §3.1.2.4: the 400 is "due to
 * the CSeq error", not the Max-Forwards one before it). */
static inline void defer_minor(struct pstate *st, const char *reason, int status)
{
    if (!st->reason) {
        defer(st, reason, status);
        st->minor = true;
    }
}

/* 0: "SIP/2.0"; 1: another well-formed SIP version; -1: not a version. */
static int check_version(const char *p, size_t n)
{
    if (n == 7 && ieq_lower(p, "sip/2.0", 7)) return 0;
    if (n < 7 || !ieq_lower(p, "sip/", 4)) return -1;
    const char *e = p + n, *q = p + 4, *d = q;
    while (q < e && cc_digit(*q)) q++;
    if (q == d || q >= e || *q != '.') return -1;
    d = ++q;
    while (q < e && cc_digit(*q)) q++;
    return (q == d || q != e) ? -1 : 1;
}

/* callid = word [ "@" word ] (RFC 3261 §25.1) */
static bool callid_ok(str_t v)
{
    if (v.len == 0) return false;
    const char *p = v.s, *end = v.s + v.len;
    const char *q = skip_cls(p, end, CC_WORD);
    if (q == end) return true;
    if (q == p || *q != '@' || q + 1 == end) return false;
    return skip_cls(q + 1, end, CC_WORD) == end;
}

/* m-type SLASH m-subtype *(SEMI m-parameter): the shape only. */
static bool ctype_ok(str_t v)
{
    const char *p = v.s, *end = v.s + v.len;
    const char *q = skip_cls(p, end, CC_TOKEN);
    if (q == p) return false;
    q = skip_lws(q, end);
    if (q >= end || *q != '/') return false;
    q = skip_lws(q + 1, end);
    return q < end && (sip_cc[(unsigned char)*q] & CC_TOKEN);
}

/* media-range *(SEMI accept-param) (RFC 3261 §20.1, §25.1): "*" is a token
 * character, so type/subtype covers "* / *" and "type / *"; the shape only. */
static bool accept_range_ok(str_t v)
{
    const char *p = v.s, *end = v.s + v.len;
    const char *q = skip_cls(p, end, CC_TOKEN);
    if (q == p) return false;
    q = skip_lws(q, end);
    if (q >= end || *q != '/') return false;
    q = skip_lws(q + 1, end);
    const char *r = skip_cls(q, end, CC_TOKEN);
    if (r == q) return false;
    str_t params = {r, (size_t)(end - r)};
    q = skip_lws(r, end);
    if (q == end) return true;
    if (*q != ';') return false;
    params = (str_t){q + 1, (size_t)(end - q - 1)};
    str_t name, value;
    bool has_value;
    while (params.len) {
        if (!sip_param_next(&params, &name, &value, &has_value)) return false;
        if (!name.len || skip_cls(name.s, name.s + name.len, CC_TOKEN) != name.s + name.len) return false;
        if (has_value && !value.len) return false;
    }
    return true;
}

static bool accept_ok(str_t v)
{
    if (v.len == 0) return true; /* no body is acceptable (§20.1) */
    if (sip_list_count_strict(v) < 0) return false;
    str_t cur = v, item;
    while (sip_list_next(&cur, &item))
        if (!accept_range_ok(item)) return false;
    return true;
}

/* The eager fields (msg.h): parsed as their header is stored. Shared with
 * sip_msg_refresh(). */
static void eager(struct sip_msg *m, const struct sip_header *h, struct pstate *st)
{
    str_t v = h->value;
    switch (h->type) {
    case SIP_HDR_VIA: {
        /* Every via-parm is checked, not only the top one: all of them go
         * back in responses, so a bad one anywhere makes the message
         * unanswerable. */
        struct sip_via tmp;
        if (!memchr(v.s, ',', v.len)) {
            if (sip_via_parse(v, m->via_count == 0 ? &m->via : &tmp) < 0) st->via_bad = true;
            m->via_count++;
        } else if (sip_list_count_strict(v) < 0) {
            st->via_bad = true;
            m->via_count++;
        } else {
            str_t cur = v, item;
            while (sip_list_next(&cur, &item)) {
                if (sip_via_parse(item, m->via_count == 0 ? &m->via : &tmp) < 0) st->via_bad = true;
                m->via_count++;
            }
        }
        if (st->via_bad) defer(st, "Bad Via", 400);
        break;
    }
    case SIP_HDR_FROM:
        if (st->from_seen) {
            defer(st, "Multiple From", 400);
            break;
        }
        st->from_seen = true;
        if (sip_name_addr_parse(v, &m->from) == 0 && !m->from.star)
            st->from_ok = true;
        else
            defer(st, "Bad From", 400);
        break;
    case SIP_HDR_TO:
        if (st->to_seen) {
            defer(st, "Multiple To", 400);
            break;
        }
        st->to_seen = true;
        if (sip_name_addr_parse(v, &m->to) == 0 && !m->to.star)
            st->to_ok = true;
        else
            defer(st, "Bad To", 400);
        break;
    case SIP_HDR_CALL_ID:
        if (st->callid_seen) {
            defer(st, "Multiple Call-ID", 400);
            break;
        }
        st->callid_seen = true;
        if (callid_ok(v)) {
            m->call_id = v;
            st->callid_ok = true;
        } else {
            defer(st, "Bad Call-ID", 400);
        }
        break;
    case SIP_HDR_CSEQ:
        if (st->cseq_seen) {
            defer(st, "Multiple CSeq", 400);
            break;
        }
        st->cseq_seen = true;
        if (sip_cseq_parse(v, &m->cseq) == 0)
            st->cseq_ok = true;
        else
            defer(st, "Bad CSeq", 400);
        break;
    case SIP_HDR_MAX_FORWARDS: {
        uint64_t x;
        if (st->mf_seen) {
            defer_minor(st, "Multiple Max-Forwards", 400);
            break;
        }
        st->mf_seen = true;
        /* RFC 3261 §20.22: an integer in the range 0-255 */
        if (sip_parse_u64(v.s, v.s + v.len, 255, &x) == 0)
            m->max_forwards = (int32_t)x;
        else
            defer_minor(st, "Bad Max-Forwards", 400);
        break;
    }
    case SIP_HDR_CONTENT_LENGTH: {
        uint64_t x;
        if (sip_parse_u64(v.s, v.s + v.len, 0xffffffffu, &x) < 0) {
            defer_minor(st, "Bad Content-Length", 400);
            break;
        }
        if (m->content_length >= 0 && (uint64_t)m->content_length != x) {
            defer_minor(st, "Conflicting Content-Length", 400);
            break;
        }
        m->content_length = (int64_t)x;
        break;
    }
    case SIP_HDR_CONTENT_TYPE:
        if (st->ct_seen) {
            defer_minor(st, "Multiple Content-Type", 400);
            break;
        }
        st->ct_seen = true;
        if (ctype_ok(v))
            m->content_type = v;
        else
            defer_minor(st, "Bad Content-Type", 400);
        break;
    case SIP_HDR_EXPIRES: {
        uint64_t x;
        if (st->exp_seen) {
            defer_minor(st, "Multiple Expires", 400);
            break;
        }
        st->exp_seen = true;
        /* RFC 3261 §20.19: 0 .. 2**32-1 seconds */
        if (sip_parse_u64(v.s, v.s + v.len, 0xffffffffu, &x) == 0)
            m->expires = (int64_t)x;
        else
            defer_minor(st, "Bad Expires", 400);
        break;
    }
    case SIP_HDR_ACCEPT:
        if (!accept_ok(v)) defer_minor(st, "Bad Accept", 400);
        break;
    default:
        break;
    }
}

static void reset_eager(struct sip_msg *m)
{
    memset(&m->via, 0, sizeof(m->via));
    m->via_count = 0;
    memset(&m->from, 0, sizeof(m->from));
    memset(&m->to, 0, sizeof(m->to));
    m->call_id = STR_NULL;
    memset(&m->cseq, 0, sizeof(m->cseq));
    m->max_forwards = -1;
    m->content_length = -1;
    m->expires = -1;
    m->content_type = STR_NULL;
}

int sip_msg_refresh(struct sip_msg *m)
{
    struct pstate st;
    memset(&st, 0, sizeof(st));
    reset_eager(m);
    memset(m->first, 0xff, sizeof(m->first));
    for (uint32_t i = 0; i < m->header_count; i++) {
        const struct sip_header *h = &m->headers[i];
        if (m->first[h->type] < 0) m->first[h->type] = (int32_t)i;
        eager(m, h, &st);
    }
    if (m->is_request && m->ruri_raw.len) {
        if (sip_uri_parse(m->ruri_raw, &m->ruri) < 0) return -1;
    }
    return st.reason ? -1 : 0;
}

static bool is_sp(char c) { return c == ' ' || c == '\t'; }

/* A request line that is not Method SP Request-URI SP SIP-Version but still
 * ends in a version: extra SP between or after the elements (RFC 4475
 * §3.1.2.9, §3.1.2.10) or LWS inside the Request-URI (§3.1.2.8). Refused
 * (400), but the header block is read so that the refusal can be answered.
 * us: after the method's SP. Returns the fatal reason, or NULL. */
static const char *lenient_request_line(struct sip_msg *m, const char *us, const char *le, struct pstate *st)
{
    const char *e = le;
    while (e > us && is_sp(e[-1])) e--;
    const char *vs = e;
    while (vs > us && !is_sp(vs[-1])) vs--;
    if (vs == us) return "Bad Request Line";
    int v = check_version(vs, (size_t)(e - vs));
    if (v < 0) return "Bad Request Line";
    const char *u = us, *ue = vs;
    while (ue > u && is_sp(ue[-1])) ue--;
    while (u < ue && is_sp(*u)) u++;
    if (u == ue) return "Bad Request Line";
    bool extra = u != us || ue + 1 != vs;
    bool inner = false;
    for (const char *x = u; x < ue; x++) inner |= is_sp(*x);
    m->ruri_raw = (str_t){u, (size_t)(ue - u)};
    m->version = (str_t){vs, (size_t)(e - vs)};
    if (v > 0) defer(st, "Version Not Supported", 505);
    if (inner)
        defer(st, "LWS in Request-URI", 400);
    else if (extra)
        defer(st, "Extra Spaces in Request-Line", 400);
    else
        defer(st, "Trailing Space in Request-Line", 400); /* the only fault left */
    /* m->ruri stays zeroed (ruri_set false): the request is refused anyway */
    return NULL;
}

/* Request-Line = Method SP Request-URI SP SIP-Version (single spaces:
 * RFC 4475 §3.1.2.9/§3.1.2.10), Status-Line = SIP-Version SP Status-Code
 * SP Reason-Phrase. Returns the fatal reason, or NULL. */
static const char *parse_start_line(struct sip_msg *m, const char *s, const char *le, struct pstate *st)
{
    if (le - s >= 4 && ieq_lower(s, "sip/", 4)) {
        const char *sp = memchr(s, ' ', (size_t)(le - s));
        if (!sp || check_version(s, (size_t)(sp - s)) != 0) return "Bad Status Line";
        m->version = (str_t){s, (size_t)(sp - s)};
        const char *c = sp + 1;
        if (le - c < 3 || !cc_digit(c[0]) || !cc_digit(c[1]) || !cc_digit(c[2])) return "Bad Status Code";
        if (le - c > 3 && c[3] != ' ') return "Bad Status Code";
        int code = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
        if (code < 100 || code > 699) return "Bad Status Code";
        m->status = code;
        m->reason = le - c > 3 ? (str_t){c + 4, (size_t)(le - c - 4)} : (str_t){le, 0};
        m->is_request = false;
        return NULL;
    }
    const char *p = skip_cls(s, le, CC_TOKEN);
    if (p == s || p >= le || *p != ' ') return "Bad Request Line";
    m->method_name = (str_t){s, (size_t)(p - s)};
    m->method = sip_method_from_str(m->method_name);
    m->is_request = true;
    const char *us = p + 1;
    const char *sp = memchr(us, ' ', (size_t)(le - us));
    if (!sp || sp == us) return lenient_request_line(m, us, le, st);
    m->ruri_raw = (str_t){us, (size_t)(sp - us)};
    const char *vs = sp + 1;
    int v = check_version(vs, (size_t)(le - vs));
    if (v < 0) return lenient_request_line(m, us, le, st);
    m->version = (str_t){vs, (size_t)(le - vs)};
    if (v > 0) defer(st, "Version Not Supported", 505);
    st->ruri_set = true;
    if (sip_uri_parse(m->ruri_raw, &m->ruri) < 0)
        defer(st, "Bad Request-URI", 400);
    else if (m->ruri.headers.len && m->ruri.scheme != SIP_SCHEME_OTHER)
        defer(st, "Bad Request-URI", 400); /* RFC 3261 §19.1.1: no headers in a Request-URI */
    return NULL;
}

static int fail(struct sip_parse_error *err, const char *reason, int status, bool can_answer)
{
    if (err) {
        err->reason = reason;
        err->status = status;
        err->can_answer = can_answer;
    }
    return -1;
}

/* Zeroes the message but its four large members (Request-URI, top Via,
 * From, To), which their parsers fill completely; sip_parse() clears the
 * ones no parser reached. Saves clearing a kilobyte per message twice. */
_Static_assert(offsetof(struct sip_msg, ruri) < offsetof(struct sip_msg, via) &&
                   offsetof(struct sip_msg, via) < offsetof(struct sip_msg, from) &&
                   offsetof(struct sip_msg, from) + sizeof(struct sip_name_addr) == offsetof(struct sip_msg, to),
               "sip_msg member order");
static void clear_small(struct sip_msg *m)
{
    char *b = (char *)m;
    memset(b, 0, offsetof(struct sip_msg, ruri));
    size_t a1 = offsetof(struct sip_msg, ruri) + sizeof(m->ruri);
    memset(b + a1, 0, offsetof(struct sip_msg, via) - a1);
    size_t a2 = offsetof(struct sip_msg, via) + sizeof(m->via);
    memset(b + a2, 0, offsetof(struct sip_msg, from) - a2);
    size_t a3 = offsetof(struct sip_msg, to) + sizeof(m->to);
    memset(b + a3, 0, sizeof(*m) - a3);
}

static int parse_all(const char *buf, size_t len, arena_t *arena, const struct sip_parse_limits *lim,
                     struct sip_msg *m, struct sip_parse_error *err, struct pstate *st);

/* ---- answering a refused request ---- */

/* Every response we build must parse again (tests/fuzz/fuzz_sip.c): a
 * field that does not parse is not copied as it came. These repair the
 * model of a refused request for sip_build_response() only. */

static str_t join3(arena_t *a, str_t x, str_t y, str_t z)
{
    char *b = arena_alloc(a, x.len + y.len + z.len + 1);
    if (!b) return STR_NULL;
    if (x.len) memcpy(b, x.s, x.len);
    if (y.len) memcpy(b + x.len, y.s, y.len);
    if (z.len) memcpy(b + x.len + y.len, z.s, z.len);
    b[x.len + y.len + z.len] = '\0';
    return (str_t){b, x.len + y.len + z.len};
}

/* A From/To whose display name or parameters do not parse (RFC 4475
 * §3.1.2.6, §3.1.2.15): "<URI>;tag=T" from its <URI> and tag, if they
 * parse; the URI is the same, as RFC 3261 §8.2.6.2 asks, the display name
 * is dropped. */
static bool repair_name_addr(struct sip_msg *m, arena_t *a, enum sip_hdr type, struct sip_name_addr *na)
{
    if (m->first[type] < 0) return false;
    struct sip_header *h = &m->headers[m->first[type]];
    str_t v = h->value;
    const char *lt = v.len ? memchr(v.s, '<', v.len) : NULL;
    const char *gt = lt ? memchr(lt, '>', (size_t)(v.s + v.len - lt)) : NULL;
    if (!gt) return false;
    str_t addr = {lt, (size_t)(gt + 1 - lt)};
    const char *semi = memchr(gt, ';', (size_t)(v.s + v.len - gt));
    str_t tag = STR_NULL;
    if (semi) (void)sip_param_get((str_t){semi + 1, (size_t)(v.s + v.len - semi - 1)}, "tag", &tag);
    bool tag_ok = tag.len && skip_cls(tag.s, tag.s + tag.len, CC_TOKEN) == tag.s + tag.len;
    str_t nv = join3(a, addr, tag_ok ? STR_LIT(";tag=") : STR_NULL, tag_ok ? tag : STR_NULL);
    if (!nv.s || sip_name_addr_parse(nv, na) != 0 || na->star) return false;
    h->value = nv;
    return true;
}

/* A CSeq whose number is out of range or unreadable (RFC 4475 §3.1.2.4):
 * "0 <request method>". Clients match a response by branch and CSeq method
 * (RFC 3261 §17.1.3), not by number. */
static bool repair_cseq(struct sip_msg *m, arena_t *a)
{
    if (m->first[SIP_HDR_CSEQ] < 0 || !m->method_name.len) return false;
    str_t nv = join3(a, STR_LIT("0 "), m->method_name, STR_NULL);
    if (!nv.s || sip_cseq_parse(nv, &m->cseq) != 0) return false;
    m->headers[m->first[SIP_HDR_CSEQ]].value = nv;
    return true;
}

/* A missing or malformed Call-ID: a stand-in, so that the 400 that names
 * the fault stays a well-formed response (see docs: RFC 4475 §3.3.1). */
#define CALL_ID_STAND_IN "missing-or-malformed.invalid"
static bool repair_call_id(struct sip_msg *m, arena_t *a, const struct sip_parse_limits *lim)
{
    str_t v = STR_LIT(CALL_ID_STAND_IN);
    if (m->first[SIP_HDR_CALL_ID] >= 0) {
        m->headers[m->first[SIP_HDR_CALL_ID]].value = v;
    } else {
        if (m->header_count >= lim->max_headers + 4) return false;
        if (m->header_count == m->header_cap) {
            struct sip_header *nh = arena_alloc(a, (m->header_cap + 1) * sizeof(*nh));
            if (!nh) return false;
            memcpy(nh, m->headers, m->header_count * sizeof(*nh));
            m->headers = nh;
            m->header_cap++;
        }
        m->first[SIP_HDR_CALL_ID] = (int32_t)m->header_count;
        m->headers[m->header_count++] = (struct sip_header){SIP_HDR_CALL_ID, STR_LIT("Call-ID"), v};
    }
    m->call_id = v;
    return true;
}

/* Can the refused request m be answered: is there where to send (every Via
 * well-formed) and what to copy (From, To, CSeq present; repaired when
 * malformed)? */
static bool answerable(struct sip_msg *m, arena_t *a, const struct sip_parse_limits *lim, const struct pstate *st)
{
    if (st->unanswerable || m->via_count == 0 || st->via_bad) return false;
    /* the response must fit the header limit too: its Vias, 4 fields and a few of ours */
    if (st->over_headers && st->via_lines + 8 > lim->max_headers) return false;
    if (!st->from_ok && !repair_name_addr(m, a, SIP_HDR_FROM, &m->from)) return false;
    if (!st->to_ok && !repair_name_addr(m, a, SIP_HDR_TO, &m->to)) return false;
    if (!st->cseq_ok && !repair_cseq(m, a)) return false;
    if (!st->callid_ok && !repair_call_id(m, a, lim)) return false;
    return true;
}

int sip_parse(const char *buf, size_t len, arena_t *arena, const struct sip_parse_limits *lim,
              struct sip_msg *m, struct sip_parse_error *err)
{
    struct sip_parse_limits dl;
    if (!lim) {
        sip_parse_limits_default(&dl);
        lim = &dl;
    }
    clear_small(m);
    memset(m->first, 0xff, sizeof(m->first));
    m->max_forwards = -1;
    m->content_length = -1;
    m->expires = -1;
    if (err) {
        err->reason = NULL;
        err->status = 0;
        err->can_answer = false;
    }
    struct pstate st;
    memset(&st, 0, sizeof(st));
    int rc = parse_all(buf, len, arena, lim, m, err, &st);
    if (!st.ruri_set) memset(&m->ruri, 0, sizeof(m->ruri));
    if (m->via_count == 0) memset(&m->via, 0, sizeof(m->via));
    if (!st.from_seen) memset(&m->from, 0, sizeof(m->from));
    if (!st.to_seen) memset(&m->to, 0, sizeof(m->to));
    return rc;
}

static int parse_all(const char *buf, size_t len, arena_t *arena, const struct sip_parse_limits *lim,
                     struct sip_msg *m, struct sip_parse_error *err, struct pstate *st)
{
    if (!buf) return fail(err, "Empty Message", 400, false);
    const char *p = buf, *end = buf + len;
    /* RFC 3261 §7.5: CRLFs before the start line are ignored */
    while (p < end && (*p == '\r' || *p == '\n')) p++;
    if (p == end) return fail(err, "Empty Message", 400, false);
    const char *start = p;
    m->buf = start;
    if ((size_t)(end - start) > lim->max_message_bytes) defer(st, "Message Too Large", 513);

    /* start line (HTAB may only appear in a reason phrase; the element
     * parsers refuse it elsewhere) */
    const char *x = find_ctl(p, end);
    while (x < end && *x == '\t') x = find_ctl(x + 1, end);
    if (x >= end) return fail(err, "Truncated Message", 400, false);
    const char *le = x;
    if (*x == '\n')
        p = x + 1;
    else if (*x == '\r' && x + 1 < end && x[1] == '\n')
        p = x + 2;
    else
        return fail(err, "Bad Character", 400, false);
    if ((size_t)(le - start) > lim->max_line_bytes) {
        /* RFC 3261 §21.4.12 for requests; a response is only dropped */
        if (le - start >= 4 && ieq_lower(start, "sip/", 4)) return fail(err, "Status Line Too Long", 400, false);
        return fail(err, "Request-URI Too Long", 414, false);
    }
    const char *why = parse_start_line(m, start, le, st);
    if (why) return fail(err, why, 400, false);

    /* header fields */
    uint32_t cap = lim->max_headers < 32 ? lim->max_headers : 32;
    if (cap == 0) cap = 1;
    m->headers = arena_alloc(arena, cap * sizeof(struct sip_header));
    if (!m->headers) return fail(err, "Out of Memory", 500, false);
    m->header_cap = cap;
    const char *body;
    for (;;) {
        if (p >= end) return fail(err, "Missing Header End", 400, false);
        char c = *p;
        if (c == '\n') {
            body = p + 1;
            break;
        }
        if (c == '\r') {
            if (p + 1 < end && p[1] == '\n') {
                body = p + 2;
                break;
            }
            return fail(err, "Bad Character", 400, false);
        }
        /* field-name HCOLON; HCOLON = *( SP / HTAB ) ":" SWS */
        const char *ns = p;
        p = skip_cls(p, end, CC_TOKEN);
        const char *ne = p;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (ne == ns || p >= end || *p != ':') return fail(err, "Bad Header", 400, false);
        const char *vs = ++p;
        /* the field value runs to a line end not followed by SP/HTAB */
        for (;;) {
            x = find_ctl(p, end);
            if (x >= end) return fail(err, "Missing Header End", 400, false);
            le = x;
            if (*x == '\n') {
                p = x + 1;
            } else if (*x == '\r' && x + 1 < end && x[1] == '\n') {
                p = x + 2;
            } else if (*x == '\t') {
                p = x + 1;
                continue;
            } else if (x > vs && x[-1] == '\\' && *x != '\r') {
                /* quoted-pair may escape any control but CR/LF (RFC 3261
                 * §25.1, RFC 4475 §3.1.1.2) */
                p = x + 1;
                continue;
            } else {
                return fail(err, "Bad Character", 400, false);
            }
            if (p < end && (*p == ' ' || *p == '\t')) continue; /* folded (RFC 3261 §7.3.1) */
            break;
        }
        enum sip_hdr type = sip_hdr_lookup(ns, (size_t)(ne - ns));
        if ((size_t)(le - ns) > lim->max_line_bytes) {
            /* RFC 3261 §21.5.9; the line is not kept, so it must not be one a response copies */
            defer(st, "Header Too Long", 513);
            if (copied_in_response(type)) st->unanswerable = true;
            continue;
        }
        if (m->header_count >= lim->max_headers) {
            /* Past the limit only single fields a response copies are kept,
             * 4 at most; the rest is read for its end only (and Content-Length). */
            defer(st, "Too Many Headers", 513);
            st->over_headers = true;
            if (!copied_in_response(type) || type == SIP_HDR_VIA || m->header_count >= lim->max_headers + 4) {
                if (copied_in_response(type)) st->unanswerable = true;
                if (type == SIP_HDR_CONTENT_LENGTH) {
                    struct sip_header tmp = {type, (str_t){ns, (size_t)(ne - ns)}, (str_t){vs, (size_t)(le - vs)}};
                    while (tmp.value.len && cc_lws(tmp.value.s[0])) tmp.value.s++, tmp.value.len--;
                    while (tmp.value.len && cc_lws(tmp.value.s[tmp.value.len - 1])) tmp.value.len--;
                    eager(m, &tmp, st);
                }
                continue;
            }
        }
        if (m->header_count == m->header_cap) {
            uint32_t ncap = m->header_cap * 2;
            uint32_t limit = st->over_headers ? lim->max_headers + 4 : lim->max_headers;
            if (ncap > limit) ncap = limit;
            struct sip_header *nh = arena_alloc(arena, ncap * sizeof(struct sip_header));
            if (!nh) return fail(err, "Out of Memory", 500, false);
            memcpy(nh, m->headers, m->header_count * sizeof(struct sip_header));
            m->headers = nh;
            m->header_cap = ncap;
        }
        while (vs < le && cc_lws(*vs)) vs++;
        while (le > vs && cc_lws(le[-1])) le--;
        struct sip_header *h = &m->headers[m->header_count];
        h->type = type;
        if (type == SIP_HDR_VIA) st->via_lines++;
        h->name = (str_t){ns, (size_t)(ne - ns)};
        h->value = (str_t){vs, (size_t)(le - vs)};
        if (m->first[h->type] < 0) m->first[h->type] = (int32_t)m->header_count;
        m->header_count++;
        if (h->type != SIP_HDR_OTHER) eager(m, h, st);
    }

    /* body: Content-Length bounds it; extra datagram bytes are dropped
     * (RFC 3261 §18.3), a shorter body is an error */
    size_t avail = (size_t)(end - body);
    if (m->content_length >= 0) {
        if ((uint64_t)m->content_length > avail) {
            if ((uint64_t)m->content_length + (uint64_t)(body - start) > lim->max_message_bytes)
                defer(st, "Request Entity Too Large", 413);
            else
                defer(st, "Bad Content-Length", 400);
            m->body = (str_t){body, avail};
        } else {
            m->body = (str_t){body, (size_t)m->content_length};
        }
    } else {
        m->body = (str_t){body, avail};
    }
    m->len = (size_t)(m->body.s + m->body.len - start);

    if (m->is_request && st->cseq_ok &&
        (m->cseq.method_name.len != m->method_name.len ||
         memcmp(m->cseq.method_name.s, m->method_name.s, m->method_name.len) != 0))
        defer(st, "CSeq method mismatch", 400); /* RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.17 */
    if (!st->reason) {
        if (m->first[SIP_HDR_VIA] < 0)
            defer(st, "Missing Via", 400);
        else if (m->first[SIP_HDR_FROM] < 0)
            defer(st, "Missing From", 400);
        else if (m->first[SIP_HDR_TO] < 0)
            defer(st, "Missing To", 400);
        else if (m->first[SIP_HDR_CALL_ID] < 0)
            defer(st, "Missing Call-ID", 400);
        else if (m->first[SIP_HDR_CSEQ] < 0)
            defer(st, "Missing CSeq", 400);
    }
    if (st->reason) return fail(err, st->reason, st->status, m->is_request && answerable(m, arena, lim, st));
    if (err) err->can_answer = m->is_request;
    return 0;
}

/* ---- stream framing (RFC 3261 §18.3) --------------------------------- */

/* Content-Length of a header block [p, end) (the lines after the start
 * line): -1 when absent, malformed or given twice with different values. */
static long long frame_content_length(const char *p, const char *end)
{
    long long cl = -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *ns = p;
        const char *q = skip_cls(p, le, CC_TOKEN);
        size_t n = (size_t)(q - ns);
        if ((n == 1 && (*ns | 0x20) == 'l') || (n == 14 && ieq_lower(ns, "content-length", 14))) {
            while (q < le && (*q == ' ' || *q == '\t')) q++;
            if (q < le && *q == ':') {
                q++;
                /* value, allowing folding onto following lines */
                const char *ve = le;
                while (ve + 1 < end && (ve[1] == ' ' || ve[1] == '\t')) {
                    const char *n2 = memchr(ve + 1, '\n', (size_t)(end - ve - 1));
                    ve = n2 ? n2 : end;
                }
                q = skip_lws(q, ve);
                const char *ds = q;
                while (q < ve && cc_digit(*q)) q++;
                uint64_t v;
                if (sip_parse_u64(ds, q, 0xffffffffu, &v) < 0) return -2;
                if (skip_lws(q, ve) != ve) return -2;
                if (cl >= 0 && (uint64_t)cl != v) return -2;
                cl = (long long)v;
                le = ve;
            }
        }
        p = le + 1;
    }
    return cl;
}

long sip_frame_length(const char *buf, size_t len, size_t max_bytes, size_t *skip)
{
    size_t s = 0;
    while (s < len && (buf[s] == '\r' || buf[s] == '\n')) s++;
    if (skip) *skip = s;
    if (max_bytes == 0) max_bytes = 65536;
    const char *p = buf + s, *end = buf + len;
    if (p == end) return 0;
    /* the start line must look like one as soon as its first bytes are in */
    const char *q = skip_cls(p, end, CC_TOKEN);
    if (q < end) {
        bool resp = q - p == 3 && ieq_lower(p, "sip", 3) && *q == '/';
        if (q == p || (!resp && *q != ' ')) return -1;
    } else if ((size_t)(q - p) > 64) {
        return -1;
    }
    /* header end: an empty line (CRLF CRLF, or LF LF from lenient peers) */
    const char *hend = NULL;
    const char *first_nl = NULL;
    for (const char *x = p; x < end;) {
        const char *nl = memchr(x, '\n', (size_t)(end - x));
        if (!nl) break;
        if (!first_nl) first_nl = nl;
        if (nl + 1 < end && nl[1] == '\n') {
            hend = nl + 2;
            break;
        }
        if (nl + 2 < end && nl[1] == '\r' && nl[2] == '\n') {
            hend = nl + 3;
            break;
        }
        x = nl + 1;
    }
    if (!hend) return (size_t)(end - p) > max_bytes ? -1 : 0;
    long long cl = frame_content_length(first_nl + 1, hend);
    if (cl < 0) return -1; /* required on streams (RFC 3261 §20.14) */
    unsigned long long total = (unsigned long long)(hend - p) + (unsigned long long)cl;
    if (total > max_bytes) return -1;
    if (total > (unsigned long long)(end - p)) return 0;
    return (long)total;
}

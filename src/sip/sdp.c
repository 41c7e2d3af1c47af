/* sdp.c — SDP (RFC 4566) parsing and printing, with GB/T 28181 y= and f=.
 *
 * Two passes over the body: the first checks the line shapes and counts
 * each kind of line, the second fills arrays sized from those counts in the
 * arena. Media-level lists are runs of the same arrays, so a session costs
 * a handful of allocations whatever its size. */
#include "sip/sdp.h"

#include <string.h>

#include "sip/scan.h"

struct line {
    char type;
    str_t value;
};

/* Next "x=value" line from [*p, end); CRLF or LF ends it. Empty lines are
 * skipped (trailing ones are common). Returns 1 line, 0 end, -1 malformed. */
static int next_line(const char **pp, const char *end, struct line *l)
{
    const char *p = *pp;
    for (;;) {
        if (p >= end) return 0;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r') le--;
        if (le == p) {
            p = next;
            continue;
        }
        if (le - p < 2 || p[1] != '=' || p[0] < 'a' || p[0] > 'z') return -1;
        /* no control characters but HTAB inside a line */
        for (const char *q = p + 2; q < le; q++) {
            unsigned char c = (unsigned char)*q;
            if ((c < 0x20 && c != '\t') || c == 0x7f) return -1;
        }
        l->type = p[0];
        l->value = (str_t){p + 2, (size_t)(le - p - 2)};
        *pp = next;
        return 1;
    }
}

/* Splits the next space-separated field of s (single spaces per RFC 4566,
 * runs tolerated). */
static bool field(str_t *s, str_t *f)
{
    if (s->len == 0) return false;
    const char *p = s->s, *end = s->s + s->len;
    while (p < end && *p == ' ') p++;
    if (p >= end) return false;
    const char *fs = p;
    while (p < end && *p != ' ') p++;
    *f = (str_t){fs, (size_t)(p - fs)};
    *s = (str_t){p, (size_t)(end - p)};
    return true;
}

static bool rest_empty(str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.s[i] != ' ') return false;
    return true;
}

static int to_u64(str_t v, uint64_t max, uint64_t *out) { return sip_parse_u64(v.s, v.s + v.len, max, out); }

static int parse_conn(str_t v, struct sdp_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->count = 1;
    if (!field(&v, &c->nettype) || !field(&v, &c->addrtype) || !field(&v, &c->address) || !rest_empty(v))
        return -1;
    const char *slash = memchr(c->address.s, '/', c->address.len);
    if (slash) {
        str_t extra = {slash + 1, (size_t)(c->address.s + c->address.len - slash - 1)};
        c->address.len = (size_t)(slash - c->address.s);
        const char *s2 = memchr(extra.s, '/', extra.len);
        uint64_t a, b;
        bool ip6 = STR_IEQ(c->addrtype, "ip6");
        if (s2) {
            if (ip6) return -1; /* IP6 carries only /<number> (RFC 4566 §5.7) */
            if (to_u64((str_t){extra.s, (size_t)(s2 - extra.s)}, 255, &a) < 0) return -1;
            if (to_u64((str_t){s2 + 1, (size_t)(extra.s + extra.len - s2 - 1)}, 65535, &b) < 0 || b == 0) return -1;
            c->ttl = (uint32_t)a;
            c->count = (uint32_t)b;
        } else if (ip6) {
            if (to_u64(extra, 65535, &b) < 0 || b == 0) return -1;
            c->count = (uint32_t)b;
        } else {
            if (to_u64(extra, 255, &a) < 0) return -1;
            c->ttl = (uint32_t)a;
        }
    }
    return c->address.len ? 0 : -1;
}

static int parse_bw(str_t v, struct sdp_bandwidth *b)
{
    const char *colon = memchr(v.s, ':', v.len);
    if (!colon || colon == v.s) return -1;
    b->type = (str_t){v.s, (size_t)(colon - v.s)};
    if (skip_cls(b->type.s, colon, CC_TOKEN) != colon) return -1;
    return to_u64((str_t){colon + 1, (size_t)(v.s + v.len - colon - 1)}, UINT64_MAX, &b->value);
}

static int parse_attr(str_t v, struct sdp_attr *a)
{
    const char *colon = memchr(v.s, ':', v.len);
    a->name = colon ? (str_t){v.s, (size_t)(colon - v.s)} : v;
    a->has_value = colon != NULL;
    a->value = colon ? (str_t){colon + 1, (size_t)(v.s + v.len - colon - 1)} : STR_NULL;
    if (a->name.len == 0 || skip_cls(a->name.s, a->name.s + a->name.len, CC_TOKEN) != a->name.s + a->name.len)
        return -1;
    return 0;
}

static int parse_media(str_t v, struct sdp_media *m)
{
    str_t port;
    if (!field(&v, &m->media) || !field(&v, &port) || !field(&v, &m->proto)) return -1;
    if (skip_cls(m->media.s, m->media.s + m->media.len, CC_TOKEN) != m->media.s + m->media.len) return -1;
    const char *slash = memchr(port.s, '/', port.len);
    uint64_t x;
    m->port_count = 1;
    if (slash) {
        if (to_u64((str_t){slash + 1, (size_t)(port.s + port.len - slash - 1)}, 65535, &x) < 0 || x == 0) return -1;
        m->port_count = (uint16_t)x;
        port.len = (size_t)(slash - port.s);
    }
    if (to_u64(port, 65535, &x) < 0) return -1;
    m->port = (uint16_t)x;
    while (v.len && v.s[0] == ' ') v.s++, v.len--;
    while (v.len && v.s[v.len - 1] == ' ') v.len--;
    if (v.len == 0) return -1; /* at least one fmt */
    m->fmts = v;
    return 0;
}

struct counts {
    uint32_t attr, bw, conn, time, repeat, email, phone, media;
};

int sdp_parse(const char *body, size_t len, arena_t *a, struct sdp_session *s, const char **reason)
{
    const char *dummy;
    if (!reason) reason = &dummy;
    memset(s, 0, sizeof(*s));
    if (!body || len == 0) {
        *reason = "Empty SDP";
        return -1;
    }
    const char *end = body + len;
    /* pass 1: shapes, order, counts */
    struct counts n = {0};
    struct line l;
    const char *p = body;
    int r, idx = 0;
    bool in_media = false, have_o = false, have_s = false, have_t = false;
    char prev = 0;
    while ((r = next_line(&p, end, &l)) > 0) {
        if (idx++ == 0 && l.type != 'v') {
            *reason = "SDP must start with v=";
            return -1;
        }
        switch (l.type) {
        case 'v':
            if (idx != 1) goto misplaced;
            break;
        case 'o':
            if (in_media || have_o) goto misplaced;
            have_o = true;
            break;
        case 's':
            if (in_media || have_s) goto misplaced;
            have_s = true;
            break;
        case 'u':
        case 'z':
        case 'e':
        case 'p':
            if (in_media) goto misplaced;
            if (l.type == 'e') n.email++;
            if (l.type == 'p') n.phone++;
            break;
        case 't':
            if (in_media) goto misplaced;
            have_t = true;
            n.time++;
            break;
        case 'r':
            if (in_media || (prev != 't' && prev != 'r')) goto misplaced;
            n.repeat++;
            break;
        case 'i':
        case 'k':
            break;
        case 'c':
            n.conn++;
            break;
        case 'b':
            n.bw++;
            break;
        case 'a':
            n.attr++;
            break;
        case 'm':
            in_media = true;
            n.media++;
            break;
        case 'y': /* GB/T 28181 */
        case 'f':
            break;
        default:
            *reason = "Unknown SDP line";
            return -1;
        }
        prev = l.type;
    }
    if (r < 0) {
        *reason = "Malformed SDP line";
        return -1;
    }
    if (!have_o || !have_s || !have_t) {
        *reason = !have_o ? "Missing o=" : !have_s ? "Missing s=" : "Missing t=";
        return -1;
    }

    struct sdp_attr *attrs = n.attr ? arena_alloc(a, n.attr * sizeof(*attrs)) : NULL;
    struct sdp_bandwidth *bws = n.bw ? arena_alloc(a, n.bw * sizeof(*bws)) : NULL;
    struct sdp_conn *conns = n.conn ? arena_alloc(a, n.conn * sizeof(*conns)) : NULL;
    struct sdp_time *times = arena_alloc(a, n.time * sizeof(*times));
    str_t *repeats = n.repeat ? arena_alloc(a, n.repeat * sizeof(*repeats)) : NULL;
    str_t *emails = n.email ? arena_alloc(a, n.email * sizeof(*emails)) : NULL;
    str_t *phones = n.phone ? arena_alloc(a, n.phone * sizeof(*phones)) : NULL;
    struct sdp_media *media = n.media ? arena_alloc(a, n.media * sizeof(*media)) : NULL;
    if ((n.attr && !attrs) || (n.bw && !bws) || (n.conn && !conns) || !times || (n.repeat && !repeats) ||
        (n.email && !emails) || (n.phone && !phones) || (n.media && !media)) {
        *reason = "Out of Memory";
        return -1;
    }
    if (media) memset(media, 0, n.media * sizeof(*media));

    /* pass 2: fill */
    struct counts k = {0};
    struct sdp_media *cur = NULL;
    p = body;
    while (next_line(&p, end, &l) > 0) {
        str_t v = l.value;
        switch (l.type) {
        case 'v': {
            uint64_t ver;
            if (to_u64(v, 0, &ver) < 0) {
                *reason = "Bad v=";
                return -1;
            }
            s->version = 0;
            break;
        }
        case 'o':
            if (!field(&v, &s->origin.username) || !field(&v, &s->origin.sess_id) ||
                !field(&v, &s->origin.sess_version) || !field(&v, &s->origin.nettype) ||
                !field(&v, &s->origin.addrtype) || !field(&v, &s->origin.address) || !rest_empty(v)) {
                *reason = "Bad o=";
                return -1;
            }
            break;
        case 's':
            s->name = v;
            break;
        case 'i':
            if (cur)
                cur->info = v;
            else
                s->info = v;
            break;
        case 'u':
            s->uri = v;
            break;
        case 'e':
            emails[k.email++] = v;
            break;
        case 'p':
            phones[k.phone++] = v;
            break;
        case 'c':
            if (parse_conn(v, &conns[k.conn]) < 0) {
                *reason = "Bad c=";
                return -1;
            }
            if (cur) {
                if (!cur->conns) cur->conns = &conns[k.conn];
                cur->conn_count++;
            } else if (!s->conn) {
                s->conn = &conns[k.conn];
            } else {
                *reason = "Bad c=";
                return -1;
            }
            k.conn++;
            break;
        case 'b':
            if (parse_bw(v, &bws[k.bw]) < 0) {
                *reason = "Bad b=";
                return -1;
            }
            if (cur) {
                if (!cur->bws) cur->bws = &bws[k.bw];
                cur->bw_count++;
            } else {
                if (!s->bws) s->bws = &bws[k.bw];
                s->bw_count++;
            }
            k.bw++;
            break;
        case 't': {
            str_t f1, f2;
            struct sdp_time *t = &times[k.time++];
            memset(t, 0, sizeof(*t));
            if (!field(&v, &f1) || !field(&v, &f2) || !rest_empty(v) || to_u64(f1, UINT64_MAX, &t->start) < 0 ||
                to_u64(f2, UINT64_MAX, &t->stop) < 0) {
                *reason = "Bad t=";
                return -1;
            }
            break;
        }
        case 'r': {
            struct sdp_time *t = &times[k.time - 1];
            if (!t->repeats) t->repeats = &repeats[k.repeat];
            t->repeat_count++;
            repeats[k.repeat++] = v;
            break;
        }
        case 'z':
            s->zone = v;
            break;
        case 'k':
            if (cur)
                cur->key = v;
            else
                s->key = v;
            break;
        case 'a':
            if (parse_attr(v, &attrs[k.attr]) < 0) {
                *reason = "Bad a=";
                return -1;
            }
            if (cur) {
                if (!cur->attrs) cur->attrs = &attrs[k.attr];
                cur->attr_count++;
            } else {
                if (!s->attrs) s->attrs = &attrs[k.attr];
                s->attr_count++;
            }
            k.attr++;
            break;
        case 'm':
            cur = &media[k.media++];
            if (parse_media(v, cur) < 0) {
                *reason = "Bad m=";
                return -1;
            }
            break;
        case 'y':
            /* GB/T 28181: 10 decimal digits; shorter forms are seen, accepted */
            if (v.len == 0 || v.len > 10 || skip_cls(v.s, v.s + v.len, CC_DIGIT) != v.s + v.len) {
                *reason = "Bad y=";
                return -1;
            }
            s->gb_ssrc = v;
            break;
        case 'f':
            s->gb_format = v;
            break;
        default:
            break;
        }
    }
    s->emails = emails;
    s->email_count = n.email;
    s->phones = phones;
    s->phone_count = n.phone;
    s->times = times;
    s->time_count = n.time;
    s->media = media;
    s->media_count = n.media;
    *reason = NULL;
    return 0;

misplaced:
    *reason = "Misplaced SDP line";
    return -1;
}

/* ---- printing -------------------------------------------------------- */

static void line(sbuf_t *o, char type, str_t v)
{
    char h[2] = {type, '='};
    sbuf_append(o, h, 2);
    sbuf_append_str(o, v);
    sbuf_append(o, "\r\n", 2);
}

static void print_conn(sbuf_t *o, const struct sdp_conn *c)
{
    sbuf_append(o, "c=", 2);
    sbuf_append_str(o, c->nettype);
    sbuf_append_char(o, ' ');
    sbuf_append_str(o, c->addrtype);
    sbuf_append_char(o, ' ');
    sbuf_append_str(o, c->address);
    /* IP4 multicast: /<ttl>[/<number>], so a number needs the TTL before
     * it; IP6 has no TTL (RFC 4566 §5.7) */
    bool ip6 = STR_IEQ(c->addrtype, "ip6");
    if (!ip6 && (c->ttl || c->count > 1)) {
        sbuf_append_char(o, '/');
        sbuf_append_u64(o, c->ttl);
    }
    if (c->count > 1) {
        sbuf_append_char(o, '/');
        sbuf_append_u64(o, c->count);
    }
    sbuf_append(o, "\r\n", 2);
}

static void print_bw(sbuf_t *o, const struct sdp_bandwidth *b)
{
    sbuf_append(o, "b=", 2);
    sbuf_append_str(o, b->type);
    sbuf_append_char(o, ':');
    sbuf_append_u64(o, b->value);
    sbuf_append(o, "\r\n", 2);
}

static void print_attr(sbuf_t *o, const struct sdp_attr *at)
{
    sbuf_append(o, "a=", 2);
    sbuf_append_str(o, at->name);
    if (at->has_value) {
        sbuf_append_char(o, ':');
        sbuf_append_str(o, at->value);
    }
    sbuf_append(o, "\r\n", 2);
}

int sdp_print(const struct sdp_session *s, sbuf_t *o)
{
    if (o->failed || !s->origin.username.len || s->time_count == 0) return -1;
    sbuf_append(o, "v=0\r\no=", 7);
    sbuf_append_str(o, s->origin.username);
    sbuf_append_char(o, ' ');
    sbuf_append_str(o, s->origin.sess_id);
    sbuf_append_char(o, ' ');
    sbuf_append_str(o, s->origin.sess_version);
    sbuf_append_char(o, ' ');
    sbuf_append_str(o, s->origin.nettype);
    sbuf_append_char(o, ' ');
    sbuf_append_str(o, s->origin.addrtype);
    sbuf_append_char(o, ' ');
    sbuf_append_str(o, s->origin.address);
    sbuf_append(o, "\r\n", 2);
    line(o, 's', s->name.len ? s->name : STR_LIT("-"));
    if (s->info.len) line(o, 'i', s->info);
    if (s->uri.len) line(o, 'u', s->uri);
    for (uint32_t i = 0; i < s->email_count; i++) line(o, 'e', s->emails[i]);
    for (uint32_t i = 0; i < s->phone_count; i++) line(o, 'p', s->phones[i]);
    if (s->conn) print_conn(o, s->conn);
    for (uint32_t i = 0; i < s->bw_count; i++) print_bw(o, &s->bws[i]);
    for (uint32_t i = 0; i < s->time_count; i++) {
        sbuf_append(o, "t=", 2);
        sbuf_append_u64(o, s->times[i].start);
        sbuf_append_char(o, ' ');
        sbuf_append_u64(o, s->times[i].stop);
        sbuf_append(o, "\r\n", 2);
        for (uint32_t j = 0; j < s->times[i].repeat_count; j++) line(o, 'r', s->times[i].repeats[j]);
    }
    if (s->zone.len) line(o, 'z', s->zone);
    if (s->key.len) line(o, 'k', s->key);
    for (uint32_t i = 0; i < s->attr_count; i++) print_attr(o, &s->attrs[i]);
    for (uint32_t i = 0; i < s->media_count; i++) {
        const struct sdp_media *m = &s->media[i];
        sbuf_append(o, "m=", 2);
        sbuf_append_str(o, m->media);
        sbuf_append_char(o, ' ');
        sbuf_append_u64(o, m->port);
        if (m->port_count > 1) {
            sbuf_append_char(o, '/');
            sbuf_append_u64(o, m->port_count);
        }
        sbuf_append_char(o, ' ');
        sbuf_append_str(o, m->proto);
        sbuf_append_char(o, ' ');
        sbuf_append_str(o, m->fmts);
        sbuf_append(o, "\r\n", 2);
        if (m->info.len) line(o, 'i', m->info);
        for (uint32_t j = 0; j < m->conn_count; j++) print_conn(o, &m->conns[j]);
        for (uint32_t j = 0; j < m->bw_count; j++) print_bw(o, &m->bws[j]);
        if (m->key.len) line(o, 'k', m->key);
        for (uint32_t j = 0; j < m->attr_count; j++) print_attr(o, &m->attrs[j]);
    }
    if (s->gb_ssrc.len) line(o, 'y', s->gb_ssrc);
    if (s->gb_format.len) line(o, 'f', s->gb_format);
    return o->failed ? -1 : 0;
}

/* ---- helpers --------------------------------------------------------- */

bool sdp_fmt_next(str_t *cursor, str_t *fmt) { return field(cursor, fmt); }

const struct sdp_attr *sdp_attr_find(const struct sdp_attr *attrs, uint32_t n, const char *name)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < n; i++)
        if (attrs[i].name.len == nl && memcmp(attrs[i].name.s, name, nl) == 0) return &attrs[i];
    return NULL;
}

const struct sdp_attr *sdp_media_attr(const struct sdp_session *s, const struct sdp_media *m, const char *name)
{
    const struct sdp_attr *a = m ? sdp_attr_find(m->attrs, m->attr_count, name) : NULL;
    return a ? a : sdp_attr_find(s->attrs, s->attr_count, name);
}

int sdp_media_rtpmap(const struct sdp_media *m, unsigned pt, struct sdp_rtpmap *out)
{
    for (uint32_t i = 0; i < m->attr_count; i++) {
        const struct sdp_attr *a = &m->attrs[i];
        if (!STR_IEQ(a->name, "rtpmap") || !a->has_value) continue;
        /* <payload type> <encoding name>/<clock rate>[/<encoding parameters>] */
        str_t v = a->value, f;
        if (!field(&v, &f)) continue;
        uint64_t x;
        if (to_u64(f, 127, &x) < 0 || x != pt) continue;
        str_t enc;
        if (!field(&v, &enc) || !rest_empty(v)) return -1;
        const char *s1 = memchr(enc.s, '/', enc.len);
        if (!s1 || s1 == enc.s) return -1;
        const char *eend = enc.s + enc.len;
        const char *s2 = memchr(s1 + 1, '/', (size_t)(eend - s1 - 1));
        str_t clock = {s1 + 1, (size_t)((s2 ? s2 : eend) - s1 - 1)};
        if (to_u64(clock, UINT32_MAX, &x) < 0) return -1;
        out->pt = pt;
        out->encoding = (str_t){enc.s, (size_t)(s1 - enc.s)};
        out->clock_rate = (uint32_t)x;
        out->params = s2 ? (str_t){s2 + 1, (size_t)(eend - s2 - 1)} : STR_NULL;
        return 0;
    }
    return -1;
}

static int direction_of(const struct sdp_attr *attrs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        str_t x = attrs[i].name;
        if (attrs[i].has_value) continue;
        if (STR_IEQ(x, "sendrecv")) return SDP_SENDRECV;
        if (STR_IEQ(x, "sendonly")) return SDP_SENDONLY;
        if (STR_IEQ(x, "recvonly")) return SDP_RECVONLY;
        if (STR_IEQ(x, "inactive")) return SDP_INACTIVE;
    }
    return -1;
}

enum sdp_direction sdp_media_direction(const struct sdp_session *s, const struct sdp_media *m)
{
    int d = m ? direction_of(m->attrs, m->attr_count) : -1;
    if (d < 0) d = direction_of(s->attrs, s->attr_count);
    return d < 0 ? SDP_SENDRECV : (enum sdp_direction)d;
}

const char *sdp_direction_name(enum sdp_direction d)
{
    switch (d) {
    case SDP_SENDONLY: return "sendonly";
    case SDP_RECVONLY: return "recvonly";
    case SDP_INACTIVE: return "inactive";
    default: return "sendrecv";
    }
}

enum sdp_setup sdp_media_setup(const struct sdp_session *s, const struct sdp_media *m)
{
    const struct sdp_attr *a = sdp_media_attr(s, m, "setup");
    if (!a || !a->has_value) return SDP_SETUP_NONE;
    if (STR_IEQ(a->value, "active")) return SDP_SETUP_ACTIVE;
    if (STR_IEQ(a->value, "passive")) return SDP_SETUP_PASSIVE;
    if (STR_IEQ(a->value, "actpass")) return SDP_SETUP_ACTPASS;
    if (STR_IEQ(a->value, "holdconn")) return SDP_SETUP_HOLDCONN;
    return SDP_SETUP_NONE;
}

const struct sdp_conn *sdp_media_conn(const struct sdp_session *s, const struct sdp_media *m)
{
    if (m && m->conn_count) return &m->conns[0];
    return s->conn;
}

int sdp_gb_ssrc(const struct sdp_session *s, uint32_t *ssrc)
{
    uint64_t v;
    if (s->gb_ssrc.len == 0 || s->gb_ssrc.len > 10 || to_u64(s->gb_ssrc, UINT32_MAX, &v) < 0) return -1;
    *ssrc = (uint32_t)v;
    return 0;
}

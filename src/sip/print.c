/* print.c — building, editing and serializing SIP messages: the model
 * editors of msg.h (insert/remove headers, set the Request-URI, refresh),
 * sip_print(), and sip_build_response(), the registrar's hot path, which
 * writes a response straight from a parsed request into one sbuf with a
 * single reservation and plain copies (no printf). */
#include <string.h>

#include "sip/msg.h"
#include "sip/scan.h"

static const str_t version_2_0 = {"SIP/2.0", 7};

/* ---- editing ---------------------------------------------------------- */

static void reindex(struct sip_msg *m)
{
    memset(m->first, 0xff, sizeof(m->first));
    for (uint32_t i = 0; i < m->header_count; i++) {
        enum sip_hdr t = m->headers[i].type;
        if (m->first[t] < 0) m->first[t] = (int32_t)i;
    }
}

static int ensure_cap(struct sip_msg *m, arena_t *a)
{
    if (m->headers && m->header_count < m->header_cap) return 0;
    uint32_t ncap = m->header_cap ? m->header_cap * 2 : 16;
    if (ncap < m->header_count + 1) ncap = m->header_count + 1;
    struct sip_header *nh = arena_alloc(a, ncap * sizeof(*nh));
    if (!nh) return -1;
    if (m->header_count) memcpy(nh, m->headers, m->header_count * sizeof(*nh));
    m->headers = nh;
    m->header_cap = ncap;
    return 0;
}

/* New values are single lines: no CR, LF or other controls but HTAB, so an
 * edit cannot inject a header or end the header block. */
static bool value_ok(str_t v)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

static bool token_ok(str_t v)
{
    if (v.len == 0) return false;
    return skip_cls(v.s, v.s + v.len, CC_TOKEN) == v.s + v.len;
}

static str_t trim_sp(str_t v)
{
    while (v.len && (v.s[0] == ' ' || v.s[0] == '\t')) v.s++, v.len--;
    while (v.len && (v.s[v.len - 1] == ' ' || v.s[v.len - 1] == '\t')) v.len--;
    return v;
}

int sip_msg_insert_header(struct sip_msg *m, arena_t *a, int index, str_t name, str_t value)
{
    value = trim_sp(value);
    if (!token_ok(name) || !value_ok(value)) return -1;
    if (ensure_cap(m, a) < 0) return -1;
    str_t n = arena_strdup(a, name);
    str_t v = arena_strdup(a, value);
    if (!n.s || !v.s) return -1;
    uint32_t idx = (index < 0 || (uint32_t)index > m->header_count) ? m->header_count : (uint32_t)index;
    memmove(&m->headers[idx + 1], &m->headers[idx], (m->header_count - idx) * sizeof(m->headers[0]));
    m->headers[idx] = (struct sip_header){sip_hdr_from_name(n), n, v};
    m->header_count++;
    reindex(m);
    return 0;
}

int sip_msg_add_header(struct sip_msg *m, arena_t *a, str_t name, str_t value)
{
    return sip_msg_insert_header(m, a, -1, name, value);
}

void sip_msg_remove_header(struct sip_msg *m, uint32_t index)
{
    if (index >= m->header_count) return;
    memmove(&m->headers[index], &m->headers[index + 1],
            (m->header_count - index - 1) * sizeof(m->headers[0]));
    m->header_count--;
    reindex(m);
}

int sip_msg_set_ruri(struct sip_msg *m, arena_t *a, str_t ruri)
{
    ruri = trim_sp(ruri);
    if (!value_ok(ruri) || memchr(ruri.s, ' ', ruri.len)) return -1;
    str_t copy = arena_strdup(a, ruri);
    if (!copy.s) return -1;
    struct sip_uri u;
    if (sip_uri_parse(copy, &u) < 0) return -1;
    m->ruri_raw = copy;
    m->ruri = u;
    return 0;
}

static void init_common(struct sip_msg *m)
{
    memset(m, 0, sizeof(*m));
    memset(m->first, 0xff, sizeof(m->first));
    m->max_forwards = -1;
    m->content_length = -1;
    m->expires = -1;
    m->version = version_2_0;
}

int sip_msg_init_request(struct sip_msg *m, arena_t *a, enum sip_method method, str_t method_name, str_t ruri)
{
    init_common(m);
    m->is_request = true;
    if (method_name.len == 0) method_name = str_from_cstr(sip_method_name(method));
    if (!token_ok(method_name)) return -1;
    m->method_name = arena_strdup(a, method_name);
    if (!m->method_name.s) return -1;
    m->method = sip_method_from_str(m->method_name);
    if (ensure_cap(m, a) < 0) return -1;
    return sip_msg_set_ruri(m, a, ruri);
}

int sip_msg_init_response(struct sip_msg *m, arena_t *a, int status, str_t reason)
{
    init_common(m);
    if (status < 100 || status > 699) return -1;
    m->status = status;
    if (reason.len == 0) reason = str_from_cstr(sip_reason_phrase(status));
    if (!value_ok(reason)) return -1;
    m->reason = arena_strdup(a, reason);
    if (!m->reason.s) return -1;
    return ensure_cap(m, a);
}

/* ---- printing -------------------------------------------------------- */

/* Header values may hold folded lines; they are printed unfolded (RFC 3261
 * §7.3.1 lets LWS become a single SP), by dropping the CR/LF and keeping the
 * white space that followed. */
static char *put_value(char *w, str_t v)
{
    if (v.len == 0) return w;
    const char *p = v.s, *end = v.s + v.len;
    const char *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        const char *e = nl;
        if (e > p && e[-1] == '\r') e--;
        memcpy(w, p, (size_t)(e - p));
        w += e - p;
        p = nl + 1;
    }
    memcpy(w, p, (size_t)(end - p));
    return w + (end - p);
}

static char *put(char *w, const void *s, size_t n)
{
    if (n) memcpy(w, s, n);
    return w + n;
}

static char *put_u64(char *w, uint64_t v)
{
    char tmp[24];
    int i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put(w, tmp + i, sizeof(tmp) - (size_t)i);
}

static char *put_status(char *w, int status)
{
    w[0] = (char)('0' + status / 100);
    w[1] = (char)('0' + status / 10 % 10);
    w[2] = (char)('0' + status % 10);
    return w + 3;
}

int sip_print(const struct sip_msg *m, sbuf_t *out)
{
    if (out->failed) return -1;
    str_t ver = m->version.len ? m->version : version_2_0;
    size_t need = 64 + ver.len + m->body.len;
    if (m->is_request)
        need += m->method_name.len + m->ruri_raw.len;
    else
        need += m->reason.len;
    for (uint32_t i = 0; i < m->header_count; i++)
        need += m->headers[i].name.len + m->headers[i].value.len + 24;
    if (!sbuf_reserve(out, need)) return -1;
    char *w = out->data + out->len;
    if (m->is_request) {
        if (m->method_name.len == 0 || m->ruri_raw.len == 0) return -1;
        w = put(w, m->method_name.s, m->method_name.len);
        *w++ = ' ';
        w = put(w, m->ruri_raw.s, m->ruri_raw.len);
        *w++ = ' ';
        w = put(w, ver.s, ver.len);
    } else {
        if (m->status < 100 || m->status > 699) return -1;
        w = put(w, ver.s, ver.len);
        *w++ = ' ';
        w = put_status(w, m->status);
        *w++ = ' ';
        w = put_value(w, m->reason);
    }
    w = put(w, "\r\n", 2);
    bool cl_done = false;
    for (uint32_t i = 0; i < m->header_count; i++) {
        const struct sip_header *h = &m->headers[i];
        w = put(w, h->name.s, h->name.len);
        w = put(w, ": ", 2);
        if (h->type == SIP_HDR_CONTENT_LENGTH) {
            /* one Content-Length, matching the body we print */
            if (cl_done) {
                w -= h->name.len + 2;
                continue;
            }
            w = put_u64(w, m->body.len);
            cl_done = true;
        } else {
            w = put_value(w, h->value);
        }
        w = put(w, "\r\n", 2);
    }
    if (!cl_done) {
        w = put(w, "Content-Length: ", 16);
        w = put_u64(w, m->body.len);
        w = put(w, "\r\n", 2);
    }
    w = put(w, "\r\n", 2);
    if (m->body.len) w = put(w, m->body.s, m->body.len);
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

/* ---- responses (RFC 3261 §8.2.6.2) ---------------------------------- */

static inline size_t hdr_size(size_t nlen, const struct sip_header *h) { return nlen + 2 + h->value.len + 2; }

static inline char *put_hdr(char *w, const char *name, size_t nlen, str_t value)
{
    w = put(w, name, nlen);
    *w++ = ':';
    *w++ = ' ';
    w = put_value(w, value);
    *w++ = '\r';
    *w++ = '\n';
    return w;
}

int sip_build_response(const struct sip_msg *req, int status, const char *reason, str_t to_tag,
                       const str_t *extra_headers, size_t n_extra, str_t content_type, str_t body,
                       sbuf_t *out)
{
    if (status < 100 || status > 699 || !req->headers || out->failed) return -1;
    const struct sip_header *from = sip_msg_header(req, SIP_HDR_FROM);
    const struct sip_header *to = sip_msg_header(req, SIP_HDR_TO);
    const struct sip_header *cid = sip_msg_header(req, SIP_HDR_CALL_ID);
    const struct sip_header *cseq = sip_msg_header(req, SIP_HDR_CSEQ);
    if (!from || !to || !cid || !cseq || req->first[SIP_HDR_VIA] < 0) return -1;
    str_t rs = (reason && *reason) ? str_from_cstr(reason) : str_from_cstr(sip_reason_phrase(status));
    bool add_tag = to_tag.len && req->to.tag.len == 0;
    /* RFC 3261 §12.1.1: Record-Route goes into dialog-creating responses */
    bool rr = req->method == SIP_INVITE && status > 100 && status < 300 && req->first[SIP_HDR_RECORD_ROUTE] >= 0;

    size_t need = 12 + rs.len + 2;
    for (uint32_t i = 0; i < req->header_count; i++) {
        const struct sip_header *h = &req->headers[i];
        if (h->type == SIP_HDR_VIA) need += hdr_size(3, h);
        else if (rr && h->type == SIP_HDR_RECORD_ROUTE) need += hdr_size(12, h);
    }
    need += hdr_size(4, from) + hdr_size(2, to) + hdr_size(7, cid) + hdr_size(4, cseq) + (add_tag ? 5 + to_tag.len : 0);
    for (size_t i = 0; i < n_extra; i++) need += extra_headers[i].len + 2;
    need += content_type.len ? 14 + content_type.len + 2 : 0;
    need += 16 + 20 + 2 + 2 + body.len;
    if (!sbuf_reserve(out, need)) return -1;

    char *w = out->data + out->len;
    w = put(w, "SIP/2.0 ", 8);
    w = put_status(w, status);
    *w++ = ' ';
    w = put(w, rs.s, rs.len);
    w = put(w, "\r\n", 2);
    for (uint32_t i = (uint32_t)req->first[SIP_HDR_VIA]; i < req->header_count; i++)
        if (req->headers[i].type == SIP_HDR_VIA) w = put_hdr(w, "Via", 3, req->headers[i].value);
    w = put_hdr(w, "From", 4, from->value);
    if (add_tag) {
        /* A To that ends in an empty parameter ("<sip:a@b> ;") would become
         * ";;tag=", which does not parse: drop the dangling separator. */
        str_t tv = to->value;
        while (tv.len && (tv.s[tv.len - 1] == ';' || tv.s[tv.len - 1] == ' ' || tv.s[tv.len - 1] == '\t' ||
                          tv.s[tv.len - 1] == '\r' || tv.s[tv.len - 1] == '\n'))
            tv.len--;
        w = put(w, "To: ", 4);
        w = put_value(w, tv);
        w = put(w, ";tag=", 5);
        w = put(w, to_tag.s, to_tag.len);
        w = put(w, "\r\n", 2);
    } else {
        w = put_hdr(w, "To", 2, to->value);
    }
    w = put_hdr(w, "Call-ID", 7, cid->value);
    w = put_hdr(w, "CSeq", 4, cseq->value);
    if (rr)
        for (uint32_t i = (uint32_t)req->first[SIP_HDR_RECORD_ROUTE]; i < req->header_count; i++)
            if (req->headers[i].type == SIP_HDR_RECORD_ROUTE)
                w = put_hdr(w, "Record-Route", 12, req->headers[i].value);
    for (size_t i = 0; i < n_extra; i++) {
        w = put(w, extra_headers[i].s, extra_headers[i].len);
        w = put(w, "\r\n", 2);
    }
    if (content_type.len) w = put_hdr(w, "Content-Type", 12, content_type);
    w = put(w, "Content-Length: ", 16);
    w = put_u64(w, body.len);
    w = put(w, "\r\n\r\n", 4);
    if (body.len) w = put(w, body.s, body.len);
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

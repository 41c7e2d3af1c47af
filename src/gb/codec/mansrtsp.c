/* mansrtsp.c — GB/T 28181 Annex B playback control bodies (see mansrtsp.h).
 *
 * The body is small and comes from a peer in a dialog: it is read line by
 * line with explicit lengths (it is not NUL-terminated), numbers are taken
 * from a bounded copy, and anything not understood is an error rather than
 * a guess, so that a device never seeks or speeds up on a misread. */
#include "gb/codec/mansrtsp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *gb_rtsp_method_name(enum gb_rtsp_method m)
{
    switch (m) {
    case GB_RTSP_PLAY: return "PLAY";
    case GB_RTSP_PAUSE: return "PAUSE";
    case GB_RTSP_TEARDOWN: return "TEARDOWN";
    }
    return "?";
}

static bool span_ieq(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && strncasecmp(p, lit, l) == 0;
}

static void trim(const char **p, size_t *n)
{
    while (*n && (**p == ' ' || **p == '\t')) (*p)++, (*n)--;
    while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) (*n)--;
}

/* A decimal number (digits, one optional point) filling [p, p+n). */
static int parse_number(const char *p, size_t n, double *out)
{
    char tmp[32];
    if (!n || n >= sizeof(tmp)) return -1;
    bool dot = false, digit = false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= '0' && p[i] <= '9') digit = true;
        else if (p[i] == '.' && !dot) dot = true;
        else return -1;
    }
    if (!digit) return -1;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    *out = strtod(tmp, NULL);
    return isfinite(*out) ? 0 : -1;
}

static int parse_request_line(const char *p, size_t n, struct gb_rtsp_req *r, const char **why)
{
    const char *sp = memchr(p, ' ', n);
    if (!sp) {
        *why = "no request line";
        return -1;
    }
    size_t mlen = (size_t)(sp - p);
    if (span_ieq(p, mlen, "PLAY")) r->method = GB_RTSP_PLAY;
    else if (span_ieq(p, mlen, "PAUSE")) r->method = GB_RTSP_PAUSE;
    else if (span_ieq(p, mlen, "TEARDOWN")) r->method = GB_RTSP_TEARDOWN;
    else {
        *why = "unknown MANSRTSP method";
        return -1;
    }
    const char *v = sp + 1;
    size_t vlen = n - mlen - 1;
    trim(&v, &vlen);
    if (!span_ieq(v, vlen, "MANSRTSP/1.0") && !span_ieq(v, vlen, "RTSP/1.0")) {
        *why = "unknown MANSRTSP version";
        return -1;
    }
    return 0;
}

/* "npt=now-", "npt=120-", "npt=120-300" (the end is accepted and ignored:
 * the dialog's t= already bounds the recording). */
static int parse_range(const char *v, size_t n, struct gb_rtsp_req *r)
{
    if (n < 5 || strncasecmp(v, "npt=", 4)) return -1;
    v += 4, n -= 4;
    const char *dash = memchr(v, '-', n);
    if (!dash) return -1;
    size_t flen = (size_t)(dash - v);
    if (span_ieq(v, flen, "now")) r->range_from = -1;
    else if (parse_number(v, flen, &r->range_from) != 0 || r->range_from > GB_MANSRTSP_MAX_NPT) return -1;
    size_t rest = n - flen - 1;
    double end;
    if (rest && (parse_number(dash + 1, rest, &end) != 0 || end > GB_MANSRTSP_MAX_NPT)) return -1;
    r->has_range = true;
    return 0;
}

static int parse_header(const char *p, size_t n, struct gb_rtsp_req *r, bool *cseq, const char **why)
{
    const char *colon = memchr(p, ':', n);
    if (!colon) {
        *why = "header line without ':'";
        return -1;
    }
    const char *name = p, *val = colon + 1;
    size_t nlen = (size_t)(colon - p), vlen = n - nlen - 1;
    trim(&name, &nlen);
    trim(&val, &vlen);
    double d;
    if (span_ieq(name, nlen, "CSeq")) {
        if (parse_number(val, vlen, &d) != 0 || memchr(val, '.', vlen) || d > UINT32_MAX) {
            *why = "bad CSeq";
            return -1;
        }
        r->cseq = (uint32_t)d;
        *cseq = true;
    } else if (span_ieq(name, nlen, "Range")) {
        if (parse_range(val, vlen, r) != 0) {
            *why = "bad Range (npt=now- or npt=SECONDS-)";
            return -1;
        }
    } else if (span_ieq(name, nlen, "Scale")) {
        if (parse_number(val, vlen, &d) != 0 || d < GB_MANSRTSP_MIN_SCALE || d > GB_MANSRTSP_MAX_SCALE) {
            *why = "bad Scale (0.0625 to 16)";
            return -1;
        }
        r->scale = d;
        r->has_scale = true;
    }
    /* PauseTime and anything else: nothing to act on. */
    return 0;
}

int gb_mansrtsp_parse(const char *buf, size_t len, struct gb_rtsp_req *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    out->scale = 1.0;
    *why = NULL;
    if (!buf || !len) {
        *why = "empty MANSRTSP body";
        return -1;
    }
    if (len > GB_MANSRTSP_MAX_BODY) {
        *why = "MANSRTSP body too large";
        return -1;
    }
    bool first = true, cseq = false;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        const char *line = buf + pos;
        size_t n = end - pos;
        if (n && line[n - 1] == '\r') n--;
        pos = nl ? end + 1 : len;
        if (!n) {
            if (first) continue; /* leading blank lines */
            break;               /* the blank line ends the headers */
        }
        if (memchr(line, 0, n)) {
            *why = "NUL in MANSRTSP body";
            return -1;
        }
        int rc = first ? parse_request_line(line, n, out, why) : parse_header(line, n, out, &cseq, why);
        if (rc) return -1;
        first = false;
    }
    if (first) {
        *why = "no request line";
        return -1;
    }
    if (!cseq) {
        *why = "no CSeq";
        return -1;
    }
    return 0;
}

int gb_mansrtsp_build(sbuf_t *out, const struct gb_rtsp_req *r)
{
    if (r->has_scale && !(r->scale >= GB_MANSRTSP_MIN_SCALE && r->scale <= GB_MANSRTSP_MAX_SCALE)) return -1;
    if (r->has_range && !(r->range_from < 0 || (isfinite(r->range_from) && r->range_from <= GB_MANSRTSP_MAX_NPT)))
        return -1;
    sbuf_printf(out, "%s MANSRTSP/1.0\r\nCSeq: %u\r\n", gb_rtsp_method_name(r->method), r->cseq);
    switch (r->method) {
    case GB_RTSP_PAUSE: sbuf_printf(out, "PauseTime: now\r\n"); break;
    case GB_RTSP_PLAY:
        if (r->has_range && r->range_from >= 0) sbuf_printf(out, "Range: npt=%.3f-\r\n", r->range_from);
        else if (r->has_range || !r->has_scale) sbuf_printf(out, "Range: npt=now-\r\n");
        if (r->has_scale) sbuf_printf(out, "Scale: %g\r\n", r->scale);
        break;
    case GB_RTSP_TEARDOWN: break;
    }
    return out->failed ? -1 : 0;
}

bool gb_mansrtsp_is_type(const char *s, size_t len)
{
    if (!s) return false;
    const char *semi = memchr(s, ';', len);
    size_t n = semi ? (size_t)(semi - s) : len;
    trim(&s, &n);
    return span_ieq(s, n, GB_MANSRTSP_TYPE);
}

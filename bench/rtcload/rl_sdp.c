/* rl_sdp.c — the load viewer's minimal SDP reader and writer (rl_sdp.h).
 * Lines are walked once; each attribute we need is copied into a fixed
 * field (too long: refused), everything else is skipped. */
#include "rl_sdp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Copies value[0..n) into dst (cap bytes) terminated; false when it does not fit. */
static bool copy_field(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return true;
}

/* If line (n bytes) starts with prefix, the rest and its length. */
static bool has_prefix(const char *line, size_t n, const char *prefix, const char **rest, size_t *rn)
{
    size_t pl = strlen(prefix);
    if (n < pl || strncmp(line, prefix, pl) != 0)
        return false;
    *rest = line + pl;
    *rn = n - pl;
    return true;
}

/* "a=rtpmap:<pt> <name>/<rate>[/ch]": returns the pt of Opus/H264/VP8 by name. */
static void read_rtpmap(rl_sdp_media_t *m, const char *v, size_t n)
{
    char buf[96];
    if (!copy_field(buf, sizeof buf, v, n))
        return;
    char *sp = strchr(buf, ' ');
    if (!sp)
        return;
    *sp = '\0';
    int pt = atoi(buf);
    if (pt < 0 || pt > 127)
        return;
    const char *name = sp + 1;
    if (strncasecmp(name, "opus/", 5) == 0 && m->pt_opus < 0)
        m->pt_opus = pt;
    else if (strncasecmp(name, "H264/", 5) == 0 && m->pt_h264 < 0)
        m->pt_h264 = pt;
    else if (strncasecmp(name, "VP8/", 4) == 0 && m->pt_vp8 < 0)
        m->pt_vp8 = pt;
}

/* "a=candidate:<f> <comp> <transport> <prio> <ip> <port> typ <type>...":
 * keeps the first component-1 UDP IPv4 one. */
static void read_candidate(rl_sdp_t *s, const char *v, size_t n)
{
    if (s->have_cand)
        return;
    char buf[256], found[64], transport[16], ip[64];
    unsigned comp, prio;
    int port;
    if (!copy_field(buf, sizeof buf, v, n))
        return;
    if (sscanf(buf, "%63s %u %15s %u %63s %d", found, &comp, transport, &prio, ip, &port) != 6)
        return;
    if (comp != 1 || strcasecmp(transport, "udp") != 0 || strchr(ip, ':') || port <= 0 || port > 65535)
        return;
    snprintf(s->cand_ip, sizeof s->cand_ip, "%s", ip);
    s->cand_port = port;
    s->have_cand = true;
}

int rl_sdp_parse(const char *sdp, size_t len, rl_sdp_t *out, const char **why)
{
    memset(out, 0, sizeof *out);
    rl_sdp_media_t *cur = NULL;
    const char *p = sdp, *end = sdp + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r')
            n--;
        const char *v;
        size_t vn;
        if (has_prefix(p, n, "m=", &v, &vn)) {
            if (out->n_media == RL_SDP_MAX_MEDIA) {
                cur = NULL; /* sections beyond the cap are ignored */
            } else {
                cur = &out->media[out->n_media++];
                cur->pt_opus = cur->pt_h264 = cur->pt_vp8 = -1;
                char buf[64];
                if (copy_field(buf, sizeof buf, v, vn < 63 ? vn : 63))
                    sscanf(buf, "%7s %d", cur->kind, &cur->port);
            }
        } else if (has_prefix(p, n, "a=ice-ufrag:", &v, &vn)) {
            if (!out->ufrag[0] && !copy_field(out->ufrag, sizeof out->ufrag, v, vn))
                goto toolong;
        } else if (has_prefix(p, n, "a=ice-pwd:", &v, &vn)) {
            if (!out->pwd[0] && !copy_field(out->pwd, sizeof out->pwd, v, vn))
                goto toolong;
        } else if (has_prefix(p, n, "a=fingerprint:", &v, &vn)) {
            if (!out->fingerprint[0] && !copy_field(out->fingerprint, sizeof out->fingerprint, v, vn))
                goto toolong;
        } else if (has_prefix(p, n, "a=setup:", &v, &vn)) {
            if (!out->setup[0])
                copy_field(out->setup, sizeof out->setup, v, vn);
        } else if (has_prefix(p, n, "a=ice-lite", &v, &vn)) {
            out->ice_lite = true;
        } else if (has_prefix(p, n, "a=candidate:", &v, &vn)) {
            read_candidate(out, v, vn);
        } else if (cur && has_prefix(p, n, "a=mid:", &v, &vn)) {
            if (!copy_field(cur->mid, sizeof cur->mid, v, vn))
                goto toolong;
        } else if (cur && has_prefix(p, n, "a=rtpmap:", &v, &vn)) {
            read_rtpmap(cur, v, vn);
        } else if (cur && has_prefix(p, n, "a=fmtp:", &v, &vn) && cur->pt_h264 >= 0) {
            char num[16];
            snprintf(num, sizeof num, "%d ", cur->pt_h264);
            size_t nl2 = strlen(num);
            if (vn > nl2 && strncmp(v, num, nl2) == 0)
                copy_field(cur->h264_fmtp, sizeof cur->h264_fmtp, v + nl2, vn - nl2);
        }
        p = nl ? nl + 1 : end;
    }
    if (!out->ufrag[0] || !out->pwd[0]) {
        *why = "no ice-ufrag/ice-pwd";
        return -1;
    }
    if (!out->fingerprint[0]) {
        *why = "no fingerprint";
        return -1;
    }
    if (out->n_media == 0) {
        *why = "no media section";
        return -1;
    }
    return 0;
toolong:
    *why = "attribute too long";
    return -1;
}

/* Appends printf output at *off; false once it no longer fits. */
static bool put(char *out, size_t cap, size_t *off, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool put(char *out, size_t cap, size_t *off, const char *fmt, ...)
{
    if (*off >= cap)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *off, cap - *off, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *off)
        return false;
    *off += (size_t)n;
    return true;
}

/* The transport lines every media section of ours carries. */
static bool put_transport(char *out, size_t cap, size_t *off, const rl_sdp_local_t *l, const char *mid)
{
    return put(out, cap, off,
               "c=IN IP4 %s\r\na=mid:%s\r\na=recvonly\r\na=rtcp-mux\r\n"
               "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:%s\r\na=setup:active\r\n"
               "a=candidate:1 1 udp 2130706431 %s %d typ host\r\na=end-of-candidates\r\n"
               "a=ssrc:%u cname:rtcload\r\n",
               l->ip, mid, l->ufrag, l->pwd, l->fingerprint, l->ip, l->port, l->ssrc);
}

static bool put_session(char *out, size_t cap, size_t *off, const rl_sdp_local_t *l, const char *group)
{
    return put(out, cap, off, "v=0\r\no=rtcload %u 1 IN IP4 %s\r\ns=-\r\nt=0 0\r\na=group:BUNDLE %s\r\n"
               "a=msid-semantic: WMS\r\n", l->ssrc, l->ip, group);
}

int rl_sdp_write_offer(const rl_sdp_local_t *l, char *out, size_t cap)
{
    size_t off = 0;
    bool ok = put_session(out, cap, &off, l, "0 1") &&
              put(out, cap, &off, "m=audio %d UDP/TLS/RTP/SAVPF 111\r\n", l->port) &&
              put_transport(out, cap, &off, l, "0") &&
              put(out, cap, &off, "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n") &&
              put(out, cap, &off, "m=video %d UDP/TLS/RTP/SAVPF 102 96\r\n", l->port) &&
              put_transport(out, cap, &off, l, "1") &&
              put(out, cap, &off,
                  "a=rtpmap:102 H264/90000\r\n"
                  "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
                  "a=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\na=rtcp-fb:102 ccm fir\r\n"
                  "a=rtpmap:96 VP8/90000\r\n"
                  "a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\n");
    return ok ? (int)off : -1;
}

int rl_sdp_write_answer(const rl_sdp_t *o, const rl_sdp_local_t *l, char *out, size_t cap)
{
    char group[80] = "";
    size_t goff = 0, usable = 0;
    for (size_t i = 0; i < o->n_media; i++) {
        const rl_sdp_media_t *m = &o->media[i];
        if (m->pt_opus >= 0 || m->pt_h264 >= 0 || m->pt_vp8 >= 0) {
            usable++;
            if (!put(group, sizeof group, &goff, "%s%s", goff ? " " : "", m->mid))
                return -1;
        }
    }
    if (!usable)
        return -1;
    size_t off = 0;
    if (!put_session(out, cap, &off, l, group))
        return -1;
    for (size_t i = 0; i < o->n_media; i++) {
        const rl_sdp_media_t *m = &o->media[i];
        int pt = m->pt_opus >= 0 ? m->pt_opus : m->pt_h264 >= 0 ? m->pt_h264 : m->pt_vp8;
        if (pt < 0) { /* a section we cannot take: rejected with port 0 */
            if (!put(out, cap, &off, "m=%s 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:%s\r\na=inactive\r\n", m->kind, m->mid))
                return -1;
            continue;
        }
        bool ok = put(out, cap, &off, "m=%s %d UDP/TLS/RTP/SAVPF %d\r\n", m->kind, l->port, pt) &&
                  put_transport(out, cap, &off, l, m->mid);
        if (ok && pt == m->pt_opus)
            ok = put(out, cap, &off, "a=rtpmap:%d opus/48000/2\r\n", pt);
        else if (ok && pt == m->pt_h264)
            ok = put(out, cap, &off, "a=rtpmap:%d H264/90000\r\na=fmtp:%d %s\r\n"
                     "a=rtcp-fb:%d nack\r\na=rtcp-fb:%d nack pli\r\n", pt, pt,
                     m->h264_fmtp[0] ? m->h264_fmtp : "packetization-mode=1;profile-level-id=42e01f", pt, pt);
        else if (ok)
            ok = put(out, cap, &off, "a=rtpmap:%d VP8/90000\r\na=rtcp-fb:%d nack\r\na=rtcp-fb:%d nack pli\r\n",
                     pt, pt, pt);
        if (!ok)
            return -1;
    }
    return (int)off;
}

/* rtcp.c — RTCP compound walking, decoders and builders (see rtcp.h). */
#include "media/rtcp.h"

#include <errno.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
/* 24-bit two's complement to int32 */
static int32_t sext24(uint32_t v) { return (int32_t)(v & 0x800000u ? v | 0xFF000000u : v); }

bool rtcp_is_rtcp(const uint8_t *buf, size_t len)
{
    return buf && len >= RTCP_HEADER_LEN && buf[1] >= 192 && buf[1] <= 223;
}

/* ---- compound walking ---- */

void rtcp_iter_init(rtcp_iter_t *it, const uint8_t *buf, size_t len)
{
    it->buf = buf;
    it->len = buf ? len : 0;
    it->off = 0;
}

int rtcp_iter_next(rtcp_iter_t *it, rtcp_packet_t *out)
{
    size_t left = it->len - it->off;
    if (left == 0) return 0;
    const uint8_t *h = it->buf + it->off;
    /* Past here an error leaves the next packet unknowable: stop the walk. */
    size_t plen = left >= RTCP_HEADER_LEN ? ((size_t)rd16(h + 2) + 1) * 4 : 0;
    if (left < RTCP_HEADER_LEN || (h[0] >> 6) != 2 || plen > left) {
        it->off = it->len;
        return -1;
    }
    rtcp_packet_t p = {
        .count = h[0] & 0x1F,
        .pt = h[1],
        .padding = h[0] & 0x20,
        .data = h,
        .len = plen,
        .body = h + RTCP_HEADER_LEN,
        .body_len = plen - RTCP_HEADER_LEN,
    };
    if (p.padding) { /* §6.4.1: the last octet counts the padding, itself included */
        uint8_t pad = h[plen - 1];
        if (pad == 0 || pad > p.body_len) {
            it->off = it->len;
            return -1;
        }
        p.body_len -= pad;
    }
    it->off += plen;
    *out = p;
    return 1;
}

/* ---- SR / RR, RFC 3550 §6.4 ---- */

static void read_block(const uint8_t *b, rtcp_report_block_t *r)
{
    r->ssrc = rd32(b);
    r->fraction_lost = b[4];
    r->cumulative_lost = sext24(rd24(b + 5));
    r->ext_highest_seq = rd32(b + 8);
    r->jitter = rd32(b + 12);
    r->lsr = rd32(b + 16);
    r->dlsr = rd32(b + 20);
}

int rtcp_parse_report(const rtcp_packet_t *p, rtcp_report_t *out)
{
    if (p->pt != RTCP_PT_SR && p->pt != RTCP_PT_RR) return -1;
    bool sr = p->pt == RTCP_PT_SR;
    size_t need = 4 + (sr ? 20 : 0) + (size_t)p->count * 24;
    if (p->body_len < need) return -1;
    const uint8_t *b = p->body;
    out->ssrc = rd32(b);
    out->is_sr = sr;
    memset(&out->si, 0, sizeof(out->si));
    b += 4;
    if (sr) {
        out->si.ntp = (uint64_t)rd32(b) << 32 | rd32(b + 4);
        out->si.rtp_ts = rd32(b + 8);
        out->si.packet_count = rd32(b + 12);
        out->si.octet_count = rd32(b + 16);
        b += 20;
    }
    out->report_count = p->count;
    for (unsigned i = 0; i < p->count; i++, b += 24) read_block(b, &out->reports[i]);
    return 0;
}

/* ---- SDES, §6.5 ---- */

#define SDES_END 0
#define SDES_CNAME 1

int rtcp_parse_sdes(const rtcp_packet_t *p, rtcp_sdes_t *out)
{
    if (p->pt != RTCP_PT_SDES) return -1;
    const uint8_t *b = p->body;
    size_t len = p->body_len, off = 0;
    out->count = 0;
    for (unsigned i = 0; i < p->count; i++) {
        if (len - off < 4) return -1;
        rtcp_sdes_chunk_t c = {.ssrc = rd32(b + off)};
        off += 4;
        for (;;) { /* items until the null one */
            if (off >= len) return -1;
            uint8_t type = b[off];
            if (type == SDES_END) break;
            if (len - off < 2 || len - off - 2 < b[off + 1]) return -1;
            uint8_t ilen = b[off + 1];
            if (type == SDES_CNAME && !c.cname) c.cname = b + off + 2, c.cname_len = ilen;
            off += 2u + ilen;
        }
        /* The null item, then nulls to the next word (chunks start on one;
         * the body starts at a word, so body offsets align as packet ones). */
        off = (off + 4) & ~(size_t)3;
        if (off > len) return -1;
        out->chunks[out->count++] = c;
    }
    return 0;
}

/* ---- BYE, §6.6 ---- */

int rtcp_parse_bye(const rtcp_packet_t *p, rtcp_bye_t *out)
{
    if (p->pt != RTCP_PT_BYE) return -1;
    size_t need = (size_t)p->count * 4;
    if (p->body_len < need) return -1;
    out->count = p->count;
    for (unsigned i = 0; i < p->count; i++) out->ssrcs[i] = rd32(p->body + 4 * i);
    out->reason = NULL;
    out->reason_len = 0;
    if (p->body_len > need) { /* optional length-prefixed reason */
        uint8_t rlen = p->body[need];
        if (p->body_len - need - 1 < rlen) return -1;
        out->reason = p->body + need + 1;
        out->reason_len = rlen;
    }
    return 0;
}

/* ---- feedback, RFC 4585 §6.1 ---- */

int rtcp_parse_fb(const rtcp_packet_t *p, rtcp_fb_t *out)
{
    if ((p->pt != RTCP_PT_RTPFB && p->pt != RTCP_PT_PSFB) || p->body_len < 8) return -1;
    out->sender_ssrc = rd32(p->body);
    out->media_ssrc = rd32(p->body + 4);
    out->fci = p->body + 8;
    out->fci_len = p->body_len - 8;
    return 0;
}

int rtcp_parse_nack(const rtcp_packet_t *p, rtcp_nack_t *out)
{
    rtcp_fb_t fb;
    if (p->pt != RTCP_PT_RTPFB || p->count != RTCP_FMT_NACK || rtcp_parse_fb(p, &fb) < 0) return -1;
    if (fb.fci_len == 0 || fb.fci_len % 4) return -1;
    out->sender_ssrc = fb.sender_ssrc;
    out->media_ssrc = fb.media_ssrc;
    out->count = 0;
    out->truncated = false;
    for (size_t off = 0; off < fb.fci_len; off += 4) {
        uint16_t pid = rd16(fb.fci + off), blp = rd16(fb.fci + off + 2);
        for (int bit = -1; bit < 16; bit++) { /* -1: the PID itself */
            if (bit >= 0 && !(blp & (1u << bit))) continue;
            if (out->count == RTCP_NACK_MAX_SEQS) {
                out->truncated = true;
                return 0;
            }
            out->seqs[out->count++] = (uint16_t)(pid + bit + 1);
        }
    }
    return 0;
}

int rtcp_parse_pli(const rtcp_packet_t *p, uint32_t *sender_ssrc, uint32_t *media_ssrc)
{
    rtcp_fb_t fb;
    if (p->pt != RTCP_PT_PSFB || p->count != RTCP_FMT_PLI || rtcp_parse_fb(p, &fb) < 0) return -1;
    *sender_ssrc = fb.sender_ssrc;
    *media_ssrc = fb.media_ssrc;
    return 0;
}

int rtcp_parse_fir(const rtcp_packet_t *p, rtcp_fir_t *out)
{
    rtcp_fb_t fb;
    if (p->pt != RTCP_PT_PSFB || p->count != RTCP_FMT_FIR || rtcp_parse_fb(p, &fb) < 0) return -1;
    if (fb.fci_len == 0 || fb.fci_len % 8) return -1;
    out->sender_ssrc = fb.sender_ssrc;
    out->count = 0;
    out->truncated = false;
    for (size_t off = 0; off < fb.fci_len; off += 8) {
        if (out->count == RTCP_FIR_MAX_ENTRIES) {
            out->truncated = true;
            break;
        }
        out->entries[out->count].ssrc = rd32(fb.fci + off);
        out->entries[out->count].seq_nr = fb.fci[off + 4];
        out->count++;
    }
    return 0;
}

/* ---- REMB, draft-alvestrand-rmcat-remb §2.2 ---- */

int rtcp_parse_remb(const rtcp_packet_t *p, rtcp_remb_t *out)
{
    rtcp_fb_t fb;
    if (p->pt != RTCP_PT_PSFB || p->count != RTCP_FMT_AFB || rtcp_parse_fb(p, &fb) < 0) return -1;
    if (fb.fci_len < 8 || memcmp(fb.fci, "REMB", 4) != 0) return -1;
    uint8_t n = fb.fci[4];
    uint8_t exp = fb.fci[5] >> 2;
    uint32_t mantissa = rd24(fb.fci + 5) & 0x3FFFFu;
    if (fb.fci_len - 8 < (size_t)n * 4) return -1;
    out->sender_ssrc = fb.sender_ssrc;
    /* 18-bit mantissa: the shift overflows 64 bits only past exp 46 */
    if (mantissa && exp > 63 - 17 && (mantissa >> (64 - exp)) != 0)
        out->bitrate = UINT64_MAX;
    else
        out->bitrate = (uint64_t)mantissa << exp;
    out->truncated = n > RTCP_REMB_MAX_SSRCS;
    out->ssrc_count = out->truncated ? RTCP_REMB_MAX_SSRCS : n;
    for (unsigned i = 0; i < out->ssrc_count; i++) out->ssrcs[i] = rd32(fb.fci + 8 + 4 * i);
    return 0;
}

/* ---- transport-wide CC feedback, draft-holmer-...-01 §3.1 ---- */

/* Walks the packet chunks over status_count packets, writing each one's
 * symbol into pkts[i].status for i < cap and summing the receive delta bytes
 * the symbols announce. Returns the chunk bytes used, or -1 when the chunks
 * stop short or use the reserved symbol. */
static int twcc_chunks(const uint8_t *b, size_t len, uint16_t status_count, rtcp_twcc_packet_t *pkts, size_t cap,
                       size_t *delta_bytes)
{
    size_t off = 0, done = 0, dbytes = 0;
    while (done < status_count) {
        if (len - off < 2) return -1;
        uint16_t c = rd16(b + off);
        off += 2;
        size_t n = !(c & 0x8000) ? (c & 0x1FFFu) /* run length: T=0, S(2), length(13) */
                   : (c & 0x4000) ? 7            /* status vector, seven 2-bit symbols */
                                  : 14;          /* status vector, fourteen 1-bit symbols */
        /* A chunk may describe more than is left; the rest is ignored. */
        for (size_t i = 0; i < n && done < status_count; i++, done++) {
            unsigned s = !(c & 0x8000) ? (c >> 13) & 3u
                         : (c & 0x4000) ? (c >> (12 - 2 * i)) & 3u
                                        : (c >> (13 - i)) & 1u;
            if (s == 3) return -1;
            dbytes += s; /* small delta: 1 byte, large: 2 */
            if (done < cap) pkts[done].status = (uint8_t)s;
        }
    }
    *delta_bytes = dbytes;
    return (int)off;
}

int rtcp_parse_twcc(const rtcp_packet_t *p, rtcp_twcc_t *out, rtcp_twcc_packet_t *pkts, size_t cap)
{
    rtcp_fb_t fb;
    if (p->pt != RTCP_PT_RTPFB || p->count != RTCP_FMT_TWCC || rtcp_parse_fb(p, &fb) < 0) return -1;
    if (fb.fci_len < 8 || (cap && !pkts)) return -1;
    rtcp_twcc_t t = {
        .sender_ssrc = fb.sender_ssrc,
        .media_ssrc = fb.media_ssrc,
        .base_seq = rd16(fb.fci),
        .status_count = rd16(fb.fci + 2),
        .reference_time = sext24(rd24(fb.fci + 4)),
        .fb_count = fb.fci[7],
    };
    const uint8_t *b = fb.fci + 8;
    size_t len = fb.fci_len - 8, delta_bytes = 0;
    size_t kept = t.status_count < cap ? t.status_count : cap;
    int used = twcc_chunks(b, len, t.status_count, pkts, cap, &delta_bytes);
    if (used < 0 || len - (size_t)used < delta_bytes) return -1;
    /* Deltas follow the chunks, one per received packet in order; those of
     * the kept packets come first. */
    size_t off = (size_t)used;
    int64_t at = (int64_t)t.reference_time * 64000;
    for (size_t i = 0; i < kept; i++) {
        rtcp_twcc_packet_t *k = &pkts[i];
        k->seq = (uint16_t)(t.base_seq + i);
        k->delta = 0;
        k->arrival_us = 0;
        if (k->status == RTCP_TWCC_NOT_RECEIVED) continue;
        if (k->status == RTCP_TWCC_SMALL_DELTA) {
            k->delta = b[off];
            off += 1;
        } else {
            k->delta = (int16_t)rd16(b + off);
            off += 2;
        }
        at += (int64_t)k->delta * 250;
        k->arrival_us = at;
    }
    t.count = kept;
    t.truncated = kept < t.status_count;
    *out = t;
    return 0;
}

/* ---- builders ---- */

/* V=2, P=0, count/fmt, pt, length in words minus one (§6.4.1) */
static void put_header(uint8_t *b, uint8_t count, uint8_t pt, size_t len)
{
    b[0] = (uint8_t)(0x80 | (count & 0x1F));
    b[1] = pt;
    wr16(b + 2, (uint16_t)(len / 4 - 1));
}

static void write_block(uint8_t *b, const rtcp_report_block_t *r)
{
    wr32(b, r->ssrc);
    /* cumulative lost clamps to the signed 24-bit range (§6.4.1) */
    int32_t lost = r->cumulative_lost > 0x7FFFFF ? 0x7FFFFF : r->cumulative_lost < -0x800000 ? -0x800000 : r->cumulative_lost;
    wr32(b + 4, (uint32_t)r->fraction_lost << 24 | ((uint32_t)lost & 0xFFFFFFu));
    wr32(b + 8, r->ext_highest_seq);
    wr32(b + 12, r->jitter);
    wr32(b + 16, r->lsr);
    wr32(b + 20, r->dlsr);
}

static int build_report(uint8_t *buf, size_t cap, uint8_t pt, uint32_t ssrc, const rtcp_sender_info_t *si,
                        const rtcp_report_block_t *blocks, size_t n)
{
    if (n > RTCP_MAX_REPORTS || (n && !blocks)) return -EINVAL;
    size_t len = 8 + (si ? 20 : 0) + n * 24;
    if (!buf || cap < len) return -ENOSPC;
    put_header(buf, (uint8_t)n, pt, len);
    wr32(buf + 4, ssrc);
    uint8_t *b = buf + 8;
    if (si) {
        wr32(b, (uint32_t)(si->ntp >> 32));
        wr32(b + 4, (uint32_t)si->ntp);
        wr32(b + 8, si->rtp_ts);
        wr32(b + 12, si->packet_count);
        wr32(b + 16, si->octet_count);
        b += 20;
    }
    for (size_t i = 0; i < n; i++, b += 24) write_block(b, &blocks[i]);
    return (int)len;
}

int rtcp_build_rr(uint8_t *buf, size_t cap, uint32_t ssrc, const rtcp_report_block_t *blocks, size_t n)
{
    return build_report(buf, cap, RTCP_PT_RR, ssrc, NULL, blocks, n);
}

int rtcp_build_sr(uint8_t *buf, size_t cap, uint32_t ssrc, const rtcp_sender_info_t *si,
                  const rtcp_report_block_t *blocks, size_t n)
{
    if (!si) return -EINVAL;
    return build_report(buf, cap, RTCP_PT_SR, ssrc, si, blocks, n);
}

int rtcp_build_sdes_cname(uint8_t *buf, size_t cap, uint32_t ssrc, const char *cname, size_t cname_len)
{
    if (!cname || cname_len == 0 || cname_len > 255) return -EINVAL;
    /* header, SSRC, type, length, text, then 1..4 null octets to a word */
    size_t len = (4 + 4 + 2 + cname_len + 4) & ~(size_t)3;
    if (!buf || cap < len) return -ENOSPC;
    memset(buf, 0, len);
    put_header(buf, 1, RTCP_PT_SDES, len);
    wr32(buf + 4, ssrc);
    buf[8] = SDES_CNAME;
    buf[9] = (uint8_t)cname_len;
    memcpy(buf + 10, cname, cname_len);
    return (int)len;
}

static int build_fb(uint8_t *buf, size_t cap, uint8_t pt, uint8_t fmt, uint32_t sender, uint32_t media, size_t fci_len)
{
    size_t len = 12 + fci_len;
    if (!buf || cap < len) return -ENOSPC;
    put_header(buf, fmt, pt, len);
    wr32(buf + 4, sender);
    wr32(buf + 8, media);
    return (int)len;
}

int rtcp_build_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc, const uint16_t *seqs,
                    size_t n)
{
    if (!seqs || n == 0) return -EINVAL;
    /* Pack into the FCI area as we go; count the words first for the header. */
    size_t fcis = 0;
    uint16_t pid = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t d = (uint16_t)(seqs[i] - pid);
        if (fcis && d <= 16) continue;
        pid = seqs[i];
        fcis++;
    }
    if (fcis > 65535 - 2) return -EINVAL; /* the length field's limit */
    int len = build_fb(buf, cap, RTCP_PT_RTPFB, RTCP_FMT_NACK, sender_ssrc, media_ssrc, fcis * 4);
    if (len < 0) return len;
    uint8_t *f = buf + 12 - 4; /* the current FCI; none yet */
    uint16_t blp = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        uint16_t d = (uint16_t)(seqs[i] - pid);
        if (any && d == 0) continue;
        if (any && d <= 16) {
            blp |= (uint16_t)(1u << (d - 1));
            wr16(f + 2, blp);
            continue;
        }
        f += 4;
        pid = seqs[i];
        blp = 0;
        any = true;
        wr16(f, pid);
        wr16(f + 2, 0);
    }
    return len;
}

int rtcp_build_pli(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc)
{
    return build_fb(buf, cap, RTCP_PT_PSFB, RTCP_FMT_PLI, sender_ssrc, media_ssrc, 0);
}

int rtcp_build_fir(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc, uint8_t seq_nr)
{
    /* RFC 5104 §4.3.1.2: the header's media SSRC is 0; the target is in the entry. */
    int len = build_fb(buf, cap, RTCP_PT_PSFB, RTCP_FMT_FIR, sender_ssrc, 0, 8);
    if (len < 0) return len;
    wr32(buf + 12, media_ssrc);
    wr32(buf + 16, (uint32_t)seq_nr << 24);
    return len;
}

int rtcp_build_remb(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint64_t bitrate, const uint32_t *ssrcs,
                    size_t n)
{
    if (n > 255 || (n && !ssrcs)) return -EINVAL;
    int len = build_fb(buf, cap, RTCP_PT_PSFB, RTCP_FMT_AFB, sender_ssrc, 0, 8 + 4 * n);
    if (len < 0) return len;
    unsigned exp = 0;
    while ((bitrate >> exp) > 0x3FFFFu) exp++; /* at most 46: 64 - 18 */
    uint32_t mantissa = (uint32_t)(bitrate >> exp);
    uint8_t *f = buf + 12;
    memcpy(f, "REMB", 4);
    wr32(f + 4, (uint32_t)n << 24 | (uint32_t)exp << 18 | mantissa);
    for (size_t i = 0; i < n; i++) wr32(f + 8 + 4 * i, ssrcs[i]);
    return len;
}

/* The chunk for the packets from i on: a run when at least 14 share a
 * symbol (or the rest all do), else a status vector — fourteen 1-bit
 * symbols when none of the next fourteen needs a large delta, seven 2-bit
 * ones otherwise. Sets *n to the packets it covers. */
static uint16_t twcc_chunk(const rtcp_twcc_packet_t *pkts, size_t i, size_t total, size_t *n)
{
    size_t run = 1;
    while (i + run < total && run < 0x1FFF && pkts[i + run].status == pkts[i].status) run++;
    if (run >= 14 || i + run == total) {
        *n = run;
        return (uint16_t)((unsigned)pkts[i].status << 13 | run);
    }
    bool large = false;
    for (size_t k = i; k < i + 14 && k < total; k++) large |= pkts[k].status == RTCP_TWCC_LARGE_DELTA;
    size_t width = large ? 7 : 14, bits = large ? 2 : 1;
    uint16_t c = large ? 0xC000 : 0x8000;
    *n = total - i < width ? total - i : width;
    for (size_t k = 0; k < *n; k++) c |= (uint16_t)(pkts[i + k].status << (14 - bits * (k + 1)));
    return c;
}

int rtcp_build_twcc(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc, uint16_t base_seq,
                    int32_t reference_time, uint8_t fb_count, const rtcp_twcc_packet_t *pkts, size_t n)
{
    if (!n || n > 0xFFFF || !pkts || reference_time < -0x800000 || reference_time > 0x7FFFFF) return -EINVAL;
    /* Sizes first: the chunks, then one or two bytes per received packet. */
    size_t chunk_bytes = 0, delta_bytes = 0;
    for (size_t i = 0, k; i < n; i += k) {
        twcc_chunk(pkts, i, n, &k);
        chunk_bytes += 2;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t s = pkts[i].status;
        if (s > RTCP_TWCC_LARGE_DELTA) return -EINVAL;
        if (s == RTCP_TWCC_SMALL_DELTA && (pkts[i].delta < 0 || pkts[i].delta > 255)) return -EINVAL;
        if (s == RTCP_TWCC_LARGE_DELTA && (pkts[i].delta < INT16_MIN || pkts[i].delta > INT16_MAX)) return -EINVAL;
        delta_bytes += s;
    }
    size_t fci = 8 + chunk_bytes + delta_bytes;
    size_t padded = (fci + 3) & ~(size_t)3;
    int len = build_fb(buf, cap, RTCP_PT_RTPFB, RTCP_FMT_TWCC, sender_ssrc, media_ssrc, padded);
    if (len < 0) return len;
    uint8_t *f = buf + 12;
    wr16(f, base_seq);
    wr16(f + 2, (uint16_t)n);
    uint32_t ref = (uint32_t)reference_time & 0xFFFFFFu;
    f[4] = (uint8_t)(ref >> 16), f[5] = (uint8_t)(ref >> 8), f[6] = (uint8_t)ref;
    f[7] = fb_count;
    size_t off = 8;
    for (size_t i = 0, k; i < n; i += k, off += 2) wr16(f + off, twcc_chunk(pkts, i, n, &k));
    for (size_t i = 0; i < n; i++) {
        if (pkts[i].status == RTCP_TWCC_SMALL_DELTA) f[off++] = (uint8_t)pkts[i].delta;
        if (pkts[i].status == RTCP_TWCC_LARGE_DELTA) {
            wr16(f + off, (uint16_t)(int16_t)pkts[i].delta);
            off += 2;
        }
    }
    /* The draft pads the FCI with zero bytes (not RTCP padding, P stays 0). */
    memset(f + off, 0, padded - fci);
    return len;
}

bool rtcp_rate_limit_allow(rtcp_rate_limit_t *rl, uint64_t now_ms, uint64_t interval_ms)
{
    if (rl->sent && now_ms >= rl->last_ms && now_ms - rl->last_ms < interval_ms) return false;
    rl->sent = true;
    rl->last_ms = now_ms;
    return true;
}

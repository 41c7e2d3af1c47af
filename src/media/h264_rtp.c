/* h264_rtp.c — RFC 6184 packetizer: single NAL unit packets, FU-A, SPS/PPS
 * ahead of every IDR (see h264_rtp.h). */
#include "media/h264_rtp.h"

#include <string.h>

int gb_h264_rtp_init(gb_h264_rtp_t *p, uint32_t ssrc, uint8_t payload_type, uint16_t first_seq, size_t max_payload)
{
    if (max_payload == 0) max_payload = 1200;
    /* An FU-A needs its two header bytes and one byte of the NAL. */
    if (max_payload < 3 || max_payload > GB_RTP_MAX_PACKET - GB_RTP_HEADER_LEN || payload_type > 127) return -1;
    memset(p, 0, sizeof(*p));
    p->ssrc = ssrc;
    p->payload_type = payload_type;
    p->seq = first_seq;
    p->max_payload = max_payload;
    return 0;
}

static void remember(gb_h264_rtp_t *p, uint8_t *slot, size_t *slot_len, const gb_nal_t *n)
{
    if (n->len > GB_H264_RTP_MAX_PARAM) {
        p->stats.params_too_big++;
        return;
    }
    memcpy(slot, n->data, n->len);
    *slot_len = n->len;
}

/* Types 1-23 only: 0 and 24-31 are unspecified in H.264 and 24-29 mean
 * aggregation/fragmentation units to a receiver (RFC 6184 §5.2), so such a
 * NAL sent as it is would be misread. */
static bool sendable(const gb_nal_t *n)
{
    int t = gb_h264_nal_type(n);
    return t >= 1 && t <= 23;
}

/* Left out of an access unit that gets the remembered SPS/PPS. */
static bool replaced(const gb_h264_rtp_t *p, const gb_nal_t *n)
{
    int t = gb_h264_nal_type(n);
    return p->insert && (t == GB_H264_NAL_SPS || t == GB_H264_NAL_PPS);
}

/* The next NAL unit to send, in order: the AU's NALs, with the remembered
 * SPS and PPS put in at insert_pos (and the AU's own then left out). */
static bool fetch(gb_h264_rtp_t *p, gb_nal_t *out)
{
    for (;;) {
        if (p->insert && p->inserted < 2 && p->pos == p->insert_pos) {
            out->data = p->inserted == 0 ? p->sps : p->pps;
            out->len = p->inserted == 0 ? p->sps_len : p->pps_len;
            out->start = NULL;
            p->inserted++;
            return true;
        }
        if (!gb_nal_next(p->au, p->au_len, &p->pos, out)) return false;
        if (sendable(out) && !replaced(p, out)) return true;
    }
}

int gb_h264_rtp_begin(gb_h264_rtp_t *p, const uint8_t *au, size_t len, uint32_t ts)
{
    p->au = au;
    p->au_len = au ? len : 0;
    p->ts = ts;
    p->insert = false;
    p->inserted = 0;
    p->have_cur = p->have_next = false;
    p->frag_off = 0;
    /* Pass 1: parameter sets to remember, whether this is an IDR AU, and
     * where SPS/PPS would go (after a leading AUD, H.264 §7.4.1.2.3). */
    bool idr = false, first = true;
    size_t pos = 0, before = 0, insert_pos = 0;
    int count = 0, params = 0;
    gb_nal_t n;
    while (before = pos, gb_nal_next(p->au, p->au_len, &pos, &n)) {
        int t = gb_h264_nal_type(&n);
        if (!sendable(&n)) {
            p->stats.nals_dropped++;
            continue;
        }
        count++;
        if (first && t != GB_H264_NAL_AUD) insert_pos = before, first = false;
        if (t == GB_H264_NAL_SPS) remember(p, p->sps, &p->sps_len, &n), params++;
        if (t == GB_H264_NAL_PPS) remember(p, p->pps, &p->pps_len, &n), params++;
        idr |= t == GB_H264_NAL_IDR;
    }
    if (idr && p->sps_len && p->pps_len) {
        p->insert = true;
        p->insert_pos = insert_pos;
        p->stats.params_inserted++;
        count += 2 - params; /* the remembered pair instead of the AU's own */
    } else if (idr) {
        p->stats.idr_without_params++;
    }
    p->pos = 0;
    p->have_cur = fetch(p, &p->cur);
    if (!p->have_cur) return 0;
    p->have_next = fetch(p, &p->next);
    p->stats.access_units++;
    return count;
}

static uint8_t *rtp_header(gb_h264_rtp_t *p, uint8_t *b, bool marker)
{
    b[0] = 0x80; /* V=2 */
    b[1] = (uint8_t)((marker ? 0x80 : 0) | p->payload_type);
    b[2] = (uint8_t)(p->seq >> 8), b[3] = (uint8_t)p->seq;
    b[4] = (uint8_t)(p->ts >> 24), b[5] = (uint8_t)(p->ts >> 16), b[6] = (uint8_t)(p->ts >> 8), b[7] = (uint8_t)p->ts;
    b[8] = (uint8_t)(p->ssrc >> 24), b[9] = (uint8_t)(p->ssrc >> 16), b[10] = (uint8_t)(p->ssrc >> 8);
    b[11] = (uint8_t)p->ssrc;
    p->seq++;
    return b + GB_RTP_HEADER_LEN;
}

/* Moves on to the following NAL unit once cur is fully sent. */
static void advance(gb_h264_rtp_t *p)
{
    p->frag_off = 0;
    p->cur = p->next;
    p->have_cur = p->have_next;
    p->have_next = p->have_cur && fetch(p, &p->next);
}

int gb_h264_rtp_next(gb_h264_rtp_t *p, uint8_t *buf, size_t cap)
{
    if (!p->have_cur) return 0;
    if (cap < GB_RTP_HEADER_LEN + p->max_payload) return -1;
    const gb_nal_t *n = &p->cur;
    size_t len;
    if (n->len <= p->max_payload) { /* single NAL unit packet, §5.6 */
        uint8_t *pl = rtp_header(p, buf, !p->have_next);
        memcpy(pl, n->data, n->len);
        len = GB_RTP_HEADER_LEN + n->len;
        advance(p);
    } else { /* FU-A, §5.8: the NAL header's F/NRI in the indicator, its type in the FU header */
        if (p->frag_off == 0) p->frag_off = 1;
        size_t left = n->len - p->frag_off, chunk = p->max_payload - 2;
        bool end = left <= chunk;
        if (end) chunk = left;
        uint8_t *pl = rtp_header(p, buf, end && !p->have_next);
        pl[0] = (uint8_t)((n->data[0] & 0xE0) | GB_H264_RTP_FU_A);
        pl[1] = (uint8_t)((p->frag_off == 1 ? 0x80 : 0) | (end ? 0x40 : 0) | (n->data[0] & 0x1F));
        memcpy(pl + 2, n->data + p->frag_off, chunk);
        len = GB_RTP_HEADER_LEN + 2 + chunk;
        p->frag_off += chunk;
        p->stats.fu_a_packets++;
        if (end) advance(p);
    }
    p->stats.packets++;
    p->stats.bytes += len;
    return (int)len;
}

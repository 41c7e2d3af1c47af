/* rtp.c — RTP packing/parsing, receiver statistics and RFC 4571 framing (see rtp.h). */
#include "media/rtp.h"

#include <stdlib.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

int gb_rtp_parse(const uint8_t *buf, size_t len, gb_rtp_packet_t *out)
{
    if (!buf || len < GB_RTP_HEADER_LEN) return -1;
    gb_rtp_packet_t r;
    memset(&r, 0, sizeof(r));
    r.version = buf[0] >> 6;
    if (r.version != 2) return -1;
    r.padding = buf[0] & 0x20;
    r.extension = buf[0] & 0x10;
    r.csrc_count = buf[0] & 0x0F;
    r.marker = buf[1] & 0x80;
    r.payload_type = buf[1] & 0x7F;
    r.seq = rd16(buf + 2);
    r.timestamp = rd32(buf + 4);
    r.ssrc = rd32(buf + 8);
    size_t off = GB_RTP_HEADER_LEN;
    if (len < off + 4u * r.csrc_count) return -1;
    for (unsigned i = 0; i < r.csrc_count; i++, off += 4) r.csrc[i] = rd32(buf + off);
    if (r.extension) { /* §5.3.1: profile (16), length in 32-bit words (16), data */
        if (len < off + 4) return -1;
        r.ext_profile = rd16(buf + off);
        r.ext_len = (size_t)rd16(buf + off + 2) * 4;
        off += 4;
        if (len < off + r.ext_len) return -1;
        r.ext_data = buf + off;
        off += r.ext_len;
    }
    size_t end = len;
    if (r.padding) { /* §5.1: the last octet counts the padding, itself included */
        uint8_t pad = buf[len - 1];
        if (pad == 0 || pad > len - off) return -1;
        end -= pad;
    }
    r.payload = buf + off;
    r.payload_len = end - off;
    *out = r;
    return 0;
}

int gb_rtp_packer_init(gb_rtp_packer_t *p, uint32_t ssrc, uint8_t payload_type, uint16_t first_seq, bool tcp,
                       size_t max_payload)
{
    if (max_payload == 0) max_payload = GB_RTP_MAX_PAYLOAD_UDP;
    if (max_payload > GB_RTP_MAX_PACKET - GB_RTP_HEADER_LEN || payload_type > 127) return -1;
    memset(p, 0, sizeof(*p));
    p->ssrc = ssrc;
    p->seq = first_seq;
    p->payload_type = payload_type;
    p->tcp = tcp;
    p->max_payload = max_payload;
    return 0;
}

int gb_rtp_pack_frame(gb_rtp_packer_t *p, const uint8_t *data, size_t len, uint32_t timestamp, gb_rtp_emit_cb emit,
                      void *arg)
{
    if (!data || !len) return -1;
    uint8_t pkt[2 + GB_RTP_MAX_PACKET];
    uint8_t *h = pkt + (p->tcp ? 2 : 0);
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < p->max_payload ? len - off : p->max_payload;
        bool last = off + n == len;
        h[0] = 0x80; /* V=2, no padding, no extension, no CSRC */
        h[1] = (uint8_t)((last ? 0x80 : 0) | p->payload_type);
        h[2] = (uint8_t)(p->seq >> 8), h[3] = (uint8_t)p->seq;
        h[4] = (uint8_t)(timestamp >> 24), h[5] = (uint8_t)(timestamp >> 16);
        h[6] = (uint8_t)(timestamp >> 8), h[7] = (uint8_t)timestamp;
        h[8] = (uint8_t)(p->ssrc >> 24), h[9] = (uint8_t)(p->ssrc >> 16);
        h[10] = (uint8_t)(p->ssrc >> 8), h[11] = (uint8_t)p->ssrc;
        memcpy(h + GB_RTP_HEADER_LEN, data + off, n);
        size_t rtp_len = GB_RTP_HEADER_LEN + n;
        if (p->tcp) pkt[0] = (uint8_t)(rtp_len >> 8), pkt[1] = (uint8_t)rtp_len; /* RFC 4571 §2 */
        p->seq++;
        p->packets++;
        p->bytes += rtp_len;
        off += n;
        int rc = emit(arg, pkt, rtp_len + (p->tcp ? 2 : 0));
        if (rc) return rc;
    }
    return 0;
}

/* ---- receiver statistics, RFC 3550 Appendix A.1 ---- */

#define RTP_SEQ_MOD (1u << 16)
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100

void gb_rtp_stats_init(gb_rtp_stats_t *s, bool check_ssrc, uint32_t ssrc)
{
    memset(s, 0, sizeof(*s));
    s->check_ssrc = check_ssrc;
    s->ssrc = ssrc;
}

static void init_seq(gb_rtp_stats_t *s, uint16_t seq)
{
    s->base_seq = seq;
    s->max_seq = seq;
    s->bad_seq = RTP_SEQ_MOD + 1; /* so seq == bad_seq is false */
    s->cycles = 0;
    s->received = 0;
    s->received_prior = 0;
    s->expected_prior = 0;
}

int gb_rtp_stats_update(gb_rtp_stats_t *s, const gb_rtp_packet_t *pkt)
{
    if (!s->started) {
        if (s->check_ssrc && pkt->ssrc != s->ssrc) {
            s->wrong_ssrc++;
            return -1;
        }
        s->ssrc = pkt->ssrc;
        s->check_ssrc = true;
        s->started = true;
        init_seq(s, pkt->seq);
        s->received = 1;
        s->bytes = pkt->payload_len;
        return 0;
    }
    if (pkt->ssrc != s->ssrc) {
        s->wrong_ssrc++;
        return -1;
    }
    uint16_t seq = pkt->seq;
    uint16_t udelta = (uint16_t)(seq - s->max_seq);
    if (udelta < MAX_DROPOUT) {
        if (seq < s->max_seq) s->cycles += RTP_SEQ_MOD; /* wrapped */
        s->max_seq = seq;
    } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
        if (seq == s->bad_seq) {
            /* Two sequential packets after a big jump: the sender restarted. */
            init_seq(s, seq);
            s->resets++;
        } else {
            s->bad_seq = (seq + 1u) & (RTP_SEQ_MOD - 1);
            return 1;
        }
    } /* else: duplicate or reordered, counted */
    s->received++;
    s->bytes += pkt->payload_len;
    return 0;
}

uint32_t gb_rtp_stats_ext_max(const gb_rtp_stats_t *s) { return s->cycles + s->max_seq; }

uint64_t gb_rtp_stats_expected(const gb_rtp_stats_t *s)
{
    if (!s->started) return 0;
    return (uint64_t)gb_rtp_stats_ext_max(s) - s->base_seq + 1;
}

int64_t gb_rtp_stats_lost(const gb_rtp_stats_t *s) { return (int64_t)gb_rtp_stats_expected(s) - (int64_t)s->received; }

uint8_t gb_rtp_stats_fraction_lost(gb_rtp_stats_t *s)
{
    uint32_t expected = (uint32_t)gb_rtp_stats_expected(s);
    uint32_t expected_interval = expected - s->expected_prior;
    s->expected_prior = expected;
    uint32_t received_interval = (uint32_t)s->received - s->received_prior;
    s->received_prior = (uint32_t)s->received;
    int64_t lost_interval = (int64_t)expected_interval - received_interval;
    if (expected_interval == 0 || lost_interval <= 0) return 0;
    return (uint8_t)(((uint64_t)lost_interval << 8) / expected_interval);
}

/* ---- RFC 4571 ---- */

void gb_rtp_deframer_init(gb_rtp_deframer_t *d) { memset(d, 0, sizeof(*d)); }

void gb_rtp_deframer_free(gb_rtp_deframer_t *d)
{
    free(d->buf);
    memset(d, 0, sizeof(*d));
}

static int deliver(gb_rtp_deframer_t *d, const uint8_t *pkt, size_t len, gb_rtp_packet_cb cb, void *arg)
{
    if (len == 0) {
        d->empty_frames++;
        return 0;
    }
    if ((pkt[0] >> 6) != 2) return -1; /* lost framing: not RTP/RTCP */
    d->packets++;
    return cb(arg, pkt, len);
}

int gb_rtp_deframer_feed(gb_rtp_deframer_t *d, const uint8_t *data, size_t len, gb_rtp_packet_cb cb, void *arg)
{
    while (len > 0) {
        if (d->len == 0 && len >= 2) {
            size_t plen = rd16(data);
            if (len >= 2 + plen) { /* whole packet in this chunk: no copy */
                int rc = deliver(d, data + 2, plen, cb, arg);
                if (rc) return rc;
                data += 2 + plen;
                len -= 2 + plen;
                continue;
            }
        }
        if (!d->buf) {
            d->cap = 2 + GB_RTP_MAX_PACKET;
            d->buf = malloc(d->cap);
            if (!d->buf) return -1;
        }
        /* Fill the length prefix first, then the packet it announces. */
        size_t want = d->len < 2 ? 2 - d->len : 2 + (size_t)rd16(d->buf) - d->len;
        size_t n = want < len ? want : len;
        memcpy(d->buf + d->len, data, n);
        d->len += n;
        data += n;
        len -= n;
        if (d->len >= 2 && d->len == 2 + (size_t)rd16(d->buf)) {
            d->len = 0;
            int rc = deliver(d, d->buf + 2, rd16(d->buf), cb, arg);
            if (rc) return rc;
        }
    }
    return 0;
}

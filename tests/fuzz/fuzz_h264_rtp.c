/* fuzz_h264_rtp.c — libFuzzer target for the RFC 6184 packetizer
 * (src/media/h264_rtp.c).
 *
 * Input: byte 0 the payload budget (3..258), bytes 1-4 the timestamp, then
 * access units separated by the 4 bytes "AU|\n" (so parameter sets carry
 * from one to the next). Each packet must fit its buffer and the budget;
 * sequence numbers must run on; the marker must sit on the last packet only;
 * the NAL units put back together must be the access unit's (types 1-23), with the
 * remembered SPS/PPS first (after an AUD) in an IDR access unit. */
#include <stdint.h>
#include <string.h>

#include "media/h264_rtp.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

static uint8_t pkt[GB_RTP_HEADER_LEN + 258];
static uint8_t got[1 << 17], want[1 << 17];
static uint8_t sps[GB_H264_RTP_MAX_PARAM], pps[GB_H264_RTP_MAX_PARAM];
static size_t sps_len, pps_len;

static size_t put_nal(uint8_t *buf, size_t at, const uint8_t *nal, size_t len)
{
    CHECK(at + 4 + len <= sizeof(want));
    buf[at] = (uint8_t)(len >> 24), buf[at + 1] = (uint8_t)(len >> 16), buf[at + 2] = (uint8_t)(len >> 8);
    buf[at + 3] = (uint8_t)len;
    memcpy(buf + at + 4, nal, len);
    return at + 4 + len;
}

/* The NAL units the packetizer must send, each as a 4-byte length and bytes. */
static size_t expected(const uint8_t *au, size_t len)
{
    size_t pos = 0, n = 0;
    gb_nal_t nal;
    bool idr = false;
    while (gb_nal_next(au, len, &pos, &nal)) {
        int t = gb_h264_nal_type(&nal);
        if (t == 0 || t > 23) continue;
        if (t == GB_H264_NAL_SPS && nal.len <= sizeof(sps)) memcpy(sps, nal.data, nal.len), sps_len = nal.len;
        if (t == GB_H264_NAL_PPS && nal.len <= sizeof(pps)) memcpy(pps, nal.data, nal.len), pps_len = nal.len;
        idr |= t == GB_H264_NAL_IDR;
    }
    bool insert = idr && sps_len && pps_len, first = true;
    pos = 0;
    while (gb_nal_next(au, len, &pos, &nal)) {
        int t = gb_h264_nal_type(&nal);
        if (t == 0 || t > 23) continue;
        if (insert && first && t != GB_H264_NAL_AUD) {
            n = put_nal(want, n, sps, sps_len);
            n = put_nal(want, n, pps, pps_len);
        }
        if (t != GB_H264_NAL_AUD) first = false;
        if (insert && (t == GB_H264_NAL_SPS || t == GB_H264_NAL_PPS)) continue;
        n = put_nal(want, n, nal.data, nal.len);
    }
    return n;
}

static void send_au(gb_h264_rtp_t *p, const uint8_t *au, size_t len, uint32_t ts)
{
    size_t want_len = expected(au, len);
    uint16_t seq = p->seq;
    int nals = gb_h264_rtp_begin(p, au, len, ts);
    CHECK(nals >= 0);
    size_t n = 0, fu_at = 0, count = 0;
    bool in_fu = false, marker = false;
    int rc;
    while ((rc = gb_h264_rtp_next(p, pkt, sizeof(pkt))) > 0) {
        CHECK((size_t)rc <= GB_RTP_HEADER_LEN + p->max_payload && rc > GB_RTP_HEADER_LEN);
        CHECK(!marker);
        CHECK((uint16_t)(pkt[2] << 8 | pkt[3]) == seq);
        seq++;
        CHECK(((uint32_t)pkt[4] << 24 | (uint32_t)pkt[5] << 16 | (uint32_t)pkt[6] << 8 | pkt[7]) == ts);
        marker = pkt[1] & 0x80;
        const uint8_t *pl = pkt + GB_RTP_HEADER_LEN;
        size_t pl_len = (size_t)rc - GB_RTP_HEADER_LEN;
        int type = pl[0] & 0x1F;
        CHECK(type >= 1 && type <= 23 ? !in_fu : type == GB_H264_RTP_FU_A);
        if (type == GB_H264_RTP_FU_A) {
            CHECK(pl_len >= 3);
            CHECK(in_fu != !!(pl[1] & 0x80)); /* S exactly on the first fragment */
            if (pl[1] & 0x80) {
                in_fu = true;
                fu_at = n;
                uint8_t hdr = (uint8_t)((pl[0] & 0xE0) | (pl[1] & 0x1F));
                n = put_nal(got, n, &hdr, 1);
            }
            CHECK(n + pl_len - 2 <= sizeof(got));
            memcpy(got + n, pl + 2, pl_len - 2);
            n += pl_len - 2;
            if (pl[1] & 0x40) {
                size_t l = n - fu_at - 4;
                got[fu_at] = (uint8_t)(l >> 24), got[fu_at + 1] = (uint8_t)(l >> 16);
                got[fu_at + 2] = (uint8_t)(l >> 8), got[fu_at + 3] = (uint8_t)l;
                in_fu = false;
                count++;
            }
        } else {
            n = put_nal(got, n, pl, pl_len);
            count++;
        }
    }
    CHECK(rc == 0 && !in_fu);
    CHECK(count == (size_t)nals);
    CHECK(marker == (count > 0));
    CHECK(p->seq == seq);
    CHECK(n == want_len && memcmp(got, want, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5 || size > 60000) return 0;
    gb_h264_rtp_t p;
    CHECK(gb_h264_rtp_init(&p, 1, 96, (uint16_t)(data[1] << 8 | data[2]), 3 + (size_t)data[0]) == 0);
    uint32_t ts = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
    sps_len = pps_len = 0;
    size_t off = 5;
    while (off <= size) {
        const uint8_t *end = memmem(data + off, size - off, "AU|\n", 4);
        size_t len = end ? (size_t)(end - (data + off)) : size - off;
        send_au(&p, data + off, len, ts);
        ts += 3600;
        off += len + 4;
    }
    return 0;
}

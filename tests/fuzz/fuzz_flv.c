/* fuzz_flv.c — libFuzzer target for the FLV muxer (src/media/flv.c).
 *
 * Input: byte 0 picks the video codec (bits 0-1), audio format (bits 2-3) and fps hint; then records, each a
 * kind byte (odd: audio), a 5-byte PTS, a 2-byte DTS offset below the PTS
 * (video), a 2-byte length and that many bytes: arbitrary access units with
 * arbitrary 33-bit timestamps through one muxer. Every output must fit the
 * advertised bound, parse as whole tags whose PreviousTagSize match, and
 * video frame bodies must be whole 4-byte-length-prefixed NAL units. */
#include <stdint.h>
#include <string.h>

#include "media/flv.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

static uint32_t be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | be24(p + 1); }

static void check_nalus(const uint8_t *b, size_t len)
{
    size_t off = 0;
    while (off < len) {
        CHECK(len - off >= 4);
        size_t n = be32(b + off);
        CHECK(n > 0 && len - off - 4 >= n);
        off += 4 + n;
    }
}

static void check_tags(const gb_flv_muxer_t *m, const uint8_t *b, size_t n)
{
    size_t off = 0;
    while (off < n) {
        CHECK(n - off >= 15);
        size_t len = be24(b + off + 1);
        CHECK(n - off - 15 >= len && len >= 1);
        CHECK(be32(b + off + 11 + len) == 11 + len);
        const uint8_t *body = b + off + 11;
        if (b[off] == 9 && m->cfg.video == GB_CODEC_H264 && body[1] == 1) check_nalus(body + 5, len - 5);
        if (b[off] == 9 && m->cfg.video == GB_CODEC_H265 && (body[0] & 0x0F) == 1) check_nalus(body + 8, len - 8);
        CHECK(b[off] == 8 || b[off] == 9 || b[off] == 18);
        off += 15 + len;
    }
}

static uint8_t out[(1 << 16) * 2 + 8192];
static uint8_t header[GB_FLV_HEADER_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const gb_codec_t video[4] = {GB_CODEC_UNKNOWN, GB_CODEC_H264, GB_CODEC_H265, GB_CODEC_H264};
    gb_flv_config_t cfg = {.video = video[data[0] & 3], .audio = GB_FLV_AUDIO_NONE, .fps = data[0] >> 4};
    cfg.audio = (data[0] >> 2) & 1 ? GB_FLV_AUDIO_PCMA : (data[0] >> 3) & 1 ? GB_FLV_AUDIO_PCMU : GB_FLV_AUDIO_NONE;
    gb_flv_muxer_t m;
    if (gb_flv_muxer_init(&m, &cfg) < 0) return 0;
    size_t off = 1;
    while (size - off >= 10) {
        const uint8_t *r = data + off;
        uint64_t pts = (uint64_t)r[1] << 32 | be32(r + 2);
        uint64_t dts = pts - (uint64_t)(r[6] << 8 | r[7]);
        size_t len = (size_t)(r[8] << 8 | r[9]);
        off += 10;
        if (len > size - off) len = size - off;
        const uint8_t *au = data + off;
        off += len;
        gb_flv_frame_info_t info;
        if (r[0] & 1) {
            size_t cap = len + 1 + GB_FLV_TAG_OVERHEAD;
            int rc = gb_flv_write_audio(&m, au, len, pts, out, cap, &info);
            CHECK(rc == 0 || cfg.audio == GB_FLV_AUDIO_NONE || len == 0);
            if (rc == 0) CHECK(info.len == cap);
        } else {
            size_t cap = gb_flv_video_bound(len);
            CHECK(cap <= sizeof(out));
            int rc = gb_flv_write_video(&m, au, len, pts, dts, out, cap, &info);
            CHECK(rc == 0 || cfg.video == GB_CODEC_UNKNOWN);
            if (rc == 0) CHECK(info.len <= cap);
            if (rc == 0 && len > 0) CHECK(gb_flv_write_video(&m, au, len, pts, dts, out, cap - 1, &info) == -1);
        }
        if (info.len) check_tags(&m, out, info.len);
        int hl = gb_flv_write_header(&m, header, sizeof(header));
        CHECK(hl > 13);
        check_tags(&m, header + 13, (size_t)hl - 13);
    }
    return 0;
}

/* fuzz_ps.c — libFuzzer target for the PS demuxer and the three packagers
 * a live GB stream feeds from it (FLV, H.264 RTP, HLS).
 *
 * Input: byte 0 picks the options (RTP payload budget, HLS TS or fMP4, a
 * flush at every cut); bytes 1..8 are the chunk sizes, used in turn, in
 * which the rest is fed to the demuxer (a 0 becomes 1), like RTP payloads
 * or TCP reads cut anywhere. Every frame the demuxer hands out goes through
 * the packagers as live.c, live_rtc.c and live_hls.c use them; every audio
 * PES (a PSM listing 0xC0-0xDF) goes to the FLV muxer as live.c does when
 * the PSM said G.711.
 *
 * Checked: a frame is never empty, never above GB_PS_MAX_FRAME nor above the
 * bytes fed so far; the frames' bytes add up to no more than the input; the
 * demuxer's pending input stays bounded; the FLV output of a frame fits its
 * bound and is a run of well-formed tags (type 9, size, PreviousTagSize =
 * 11 + size); every RTP packet is a version 2 header plus 1..budget bytes of
 * payload, an audio PES is non-empty, within the input, with a 33-bit PTS,
 * and its FLV tag is one well-formed audio tag; sequence numbers run on without gaps, the marker is set on the
 * last packet of an access unit only, and one timestamp covers it; the HLS
 * segmenter answers one of its documented values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/flv.h"
#include "media/h264_rtp.h"
#include "media/hls.h"
#include "media/ps.h"
#include "media/rtp.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

#define NCUTS 8

typedef struct {
    bool flv_ready;
    gb_flv_muxer_t flv;
    gb_h264_rtp_t rtp;
    gb_hls_t *hls;
    gb_hls_format_t hls_format;
    gb_codec_t hls_codec;
    size_t budget;
    uint8_t *out; /* FLV tags of one frame */
    size_t out_cap;
    uint8_t pkt[GB_RTP_HEADER_LEN + 1400];
    uint16_t next_seq;
    size_t fed;            /* bytes given to the demuxer so far */
    uint64_t frame_bytes;  /* sum of the frames handed out */
} fz_t;

static uint32_t be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | be24(p + 1); }

/* The tags of one frame tile the output exactly. */
static void check_flv_tags(const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        CHECK(len - off >= GB_FLV_TAG_OVERHEAD);
        CHECK(p[off] == 9);
        uint32_t size = be24(p + off + 1);
        CHECK(p[off + 8] == 0 && p[off + 9] == 0 && p[off + 10] == 0); /* stream id */
        CHECK(size >= 5 && size <= len - off - GB_FLV_TAG_OVERHEAD);
        CHECK(be32(p + off + 11 + size) == 11 + size);
        off += 11 + size + 4;
    }
    CHECK(off == len);
}

static void to_flv(fz_t *z, const gb_ps_frame_t *f)
{
    if (!z->flv_ready) {
        gb_flv_config_t cfg = {.video = f->codec == GB_CODEC_H265 ? GB_CODEC_H265 : GB_CODEC_H264};
        if (f->audio_stream_type == GB_PS_STREAM_TYPE_PCMA) cfg.audio = GB_FLV_AUDIO_PCMA;
        if (f->audio_stream_type == GB_PS_STREAM_TYPE_PCMU) cfg.audio = GB_FLV_AUDIO_PCMU;
        CHECK(gb_flv_muxer_init(&z->flv, &cfg) == 0);
        z->flv_ready = true;
    }
    size_t bound = gb_flv_video_bound(f->len);
    CHECK(bound > f->len);
    if (bound > z->out_cap) {
        uint8_t *p = realloc(z->out, bound);
        CHECK(p != NULL);
        z->out = p;
        z->out_cap = bound;
    }
    /* One byte short of the bound is refused and changes nothing. */
    gb_flv_frame_info_t info;
    uint64_t pts = f->has_pts ? f->pts : 0;
    CHECK(gb_flv_write_video(&z->flv, f->data, f->len, pts, pts, z->out, bound - 1, &info) == -1);
    CHECK(gb_flv_write_video(&z->flv, f->data, f->len, pts, pts, z->out, bound, &info) == 0);
    CHECK(info.len <= bound);
    check_flv_tags(z->out, info.len);
    CHECK(z->flv.width >= 0 && z->flv.height >= 0);
    uint8_t hdr[GB_FLV_HEADER_MAX];
    int n = gb_flv_write_header(&z->flv, hdr, sizeof(hdr));
    CHECK(n >= 13 && (size_t)n <= sizeof(hdr) && memcmp(hdr, "FLV", 3) == 0);
}

static void to_rtp(fz_t *z, const gb_ps_frame_t *f)
{
    if (f->codec == GB_CODEC_H265) return; /* live_rtc.c sends H.264 only */
    uint32_t ts = (uint32_t)f->pts;
    int nals = gb_h264_rtp_begin(&z->rtp, f->data, f->len, ts);
    CHECK(nals >= 0);
    CHECK(gb_h264_rtp_next(&z->rtp, z->pkt, GB_RTP_HEADER_LEN + z->budget - 1) == (nals ? -1 : 0));
    int n, last = 0;
    unsigned packets = 0;
    while ((n = gb_h264_rtp_next(&z->rtp, z->pkt, GB_RTP_HEADER_LEN + z->budget)) > 0) {
        CHECK((size_t)n > GB_RTP_HEADER_LEN && (size_t)n <= GB_RTP_HEADER_LEN + z->budget);
        CHECK((z->pkt[0] & 0xC0) == 0x80);
        CHECK(!(last & 0x80)); /* nothing after the marked packet */
        CHECK((uint16_t)(z->pkt[2] << 8 | z->pkt[3]) == z->next_seq);
        CHECK(be32(z->pkt + 4) == ts);
        uint8_t nal = z->pkt[GB_RTP_HEADER_LEN] & 0x1F;
        CHECK(nal != 0 && (nal < 24 || nal == GB_H264_RTP_FU_A));
        z->next_seq++;
        last = z->pkt[1];
        packets++;
        /* Every packet carries at least one byte of the AU or of the SPS/PPS put ahead of it. */
        CHECK(packets <= f->len + z->rtp.sps_len + z->rtp.pps_len);
    }
    CHECK(n == 0);
    CHECK(packets == 0 ? nals == 0 : (last & 0x80) != 0);
}

static void to_hls(fz_t *z, const gb_ps_frame_t *f)
{
    gb_codec_t codec = f->codec == GB_CODEC_H265 ? GB_CODEC_H265 : GB_CODEC_H264;
    if (z->hls && codec != z->hls_codec) {
        gb_hls_free(z->hls); /* live_hls.c starts over when the codec changes */
        z->hls = NULL;
    }
    if (!z->hls) {
        gb_hls_cfg_t cfg = {.codec = codec, .format = z->hls_format, .ring = 3, .max_segment_bytes = 1u << 20,
                            .uri_prefix = "s"};
        z->hls = gb_hls_new(&cfg);
        CHECK(z->hls != NULL);
        z->hls_codec = codec;
    }
    int rc = gb_hls_push(z->hls, f->data, f->len, f->has_pts ? f->pts : 0, f->key);
    CHECK(rc >= GB_HLS_QUEUED && rc <= GB_HLS_CUT);
    sbuf_t pl;
    sbuf_init(&pl);
    CHECK(gb_hls_playlist(z->hls, &pl) >= 0);
    sbuf_free(&pl);
}

static void on_frame(void *arg, const gb_ps_frame_t *f)
{
    fz_t *z = arg;
    CHECK(f->data != NULL && f->len > 0);
    CHECK(f->len <= GB_PS_MAX_FRAME && f->len <= z->fed);
    z->frame_bytes += f->len;
    CHECK(z->frame_bytes <= z->fed);
    CHECK(f->has_pts || f->pts == 0);
    CHECK(f->pts < (1ull << 33));
    to_flv(z, f);
    to_rtp(z, f);
    to_hls(z, f);
}

static void on_audio(void *arg, const gb_ps_audio_t *a)
{
    fz_t *z = arg;
    CHECK(a->data != NULL && a->len > 0 && a->len <= z->fed && a->len <= 65535);
    CHECK(a->stream_type >= 0 && a->stream_type <= 0xFF);
    CHECK(a->has_pts || a->pts == 0);
    CHECK(a->pts < (1ull << 33));
    if (!z->flv_ready || z->flv.cfg.audio == GB_FLV_AUDIO_NONE) return;
    size_t need = a->len + 1 + GB_FLV_TAG_OVERHEAD;
    if (need > z->out_cap) {
        uint8_t *p = realloc(z->out, need);
        CHECK(p != NULL);
        z->out = p;
        z->out_cap = need;
    }
    gb_flv_frame_info_t info;
    CHECK(gb_flv_write_audio(&z->flv, a->data, a->len, a->pts, z->out, need - 1, &info) == -1);
    CHECK(gb_flv_write_audio(&z->flv, a->data, a->len, a->pts, z->out, need, &info) == 0);
    CHECK(info.len == need && z->out[0] == 8 && be24(z->out + 1) == a->len + 1);
    CHECK(be32(z->out + 11 + a->len + 1) == 11 + a->len + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 + NCUTS) return 0;
    static fz_t z;
    uint8_t *out = z.out;
    size_t out_cap = z.out_cap;
    memset(&z, 0, sizeof(z));
    z.out = out; /* kept across inputs: only grows */
    z.out_cap = out_cap;
    uint8_t opt = data[0];
    static const size_t budgets[4] = {3, 100, 1200, 1400};
    z.budget = budgets[opt & 3];
    z.hls_format = (opt & 4) ? GB_HLS_FMP4 : GB_HLS_TS;
    bool flush_each = opt & 8;
    uint16_t seq0 = (uint16_t)(opt << 8 | data[1]);
    CHECK(gb_h264_rtp_init(&z.rtp, 0x1234, 96, seq0, z.budget) == 0);
    z.next_seq = seq0;
    gb_ps_demux_t d;
    gb_ps_demux_init(&d, on_frame, &z);
    gb_ps_demux_set_audio_cb(&d, on_audio, &z);
    const uint8_t *cuts = data + 1;
    size_t pos = 1 + NCUTS, k = 0;
    while (pos < size) {
        size_t n = cuts[k++ % NCUTS];
        n = n ? n * (1 + (opt >> 6)) : 1;
        if (n > size - pos) n = size - pos;
        z.fed += n;
        CHECK(gb_ps_demux_feed(&d, data + pos, n) == 0);
        pos += n;
        /* What is kept is an incomplete unit: at most one PES (6 + 65535 bytes) or a pack header. */
        CHECK(d.in_len <= 6 + 65535);
        if (flush_each) gb_ps_demux_flush(&d);
    }
    gb_ps_demux_flush(&d);
    CHECK(d.stats.bytes_in == size - 1 - NCUTS);
    CHECK(d.stats.bytes_skipped <= d.stats.bytes_in);
    CHECK(d.frame_cap <= 2 * (size_t)GB_PS_MAX_FRAME);
    gb_ps_demux_free(&d);
    if (z.hls) gb_hls_free(z.hls);
    return 0;
}

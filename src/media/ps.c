/* ps.c — MPEG-2 Program Stream mux/demux for GB/T 28181 media (see ps.h).
 * Field layouts: ISO/IEC 13818-1 §2.5.3.3 (pack header), §2.5.3.5 (system
 * header), §2.5.4.1 (program stream map), §2.4.3.6/7 (PES packet). */
#include "media/ps.h"

#include <stdlib.h>
#include <string.h>

#define PS_MUX_RATE 25000      /* units of 50 bytes/s: 10 Mbit/s, above any GB camera stream */
#define PS_PSTD_BUFFER_KB 1024 /* system header P-STD bound: 1024 x 1024 bytes */
#define PS_PES_MAX_LEN 0xFFFF  /* PES_packet_length is 16 bits */

int gb_ps_stream_type(gb_codec_t codec)
{
    switch (codec) {
    case GB_CODEC_H264: return GB_PS_STREAM_TYPE_H264;
    case GB_CODEC_H265: return GB_PS_STREAM_TYPE_H265;
    default: return -1;
    }
}

gb_codec_t gb_ps_codec_of_stream_type(int stream_type)
{
    switch (stream_type) {
    case GB_PS_STREAM_TYPE_H264: return GB_CODEC_H264;
    case GB_PS_STREAM_TYPE_H265: return GB_CODEC_H265;
    default: return GB_CODEC_UNKNOWN;
    }
}

uint32_t gb_ps_crc32(const uint8_t *p, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint32_t)p[i] << 24;
        for (int k = 0; k < 8; k++) crc = (crc & 0x80000000u) ? (crc << 1) ^ 0x04C11DB7u : crc << 1;
    }
    return crc;
}

static void put_u16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* §2.4.3.7: 4-bit prefix, then the 33-bit stamp in 3+15+15 bits with markers. */
void gb_ps_put_pes_ts(uint8_t p[5], unsigned prefix, uint64_t ts)
{
    p[0] = (uint8_t)((prefix << 4) | ((ts >> 29) & 0x0E) | 1);
    p[1] = (uint8_t)(ts >> 22);
    p[2] = (uint8_t)(((ts >> 14) & 0xFE) | 1);
    p[3] = (uint8_t)(ts >> 7);
    p[4] = (uint8_t)(((ts << 1) & 0xFE) | 1);
}

static uint64_t get_pes_ts(const uint8_t *p)
{
    return ((uint64_t)(p[0] & 0x0E) << 29) | ((uint64_t)p[1] << 22) | ((uint64_t)(p[2] & 0xFE) << 14) |
           ((uint64_t)p[3] << 7) | ((uint64_t)p[4] >> 1);
}

static void put_pack_header(uint8_t p[14], uint64_t scr)
{
    const unsigned ext = 0, rate = PS_MUX_RATE;
    p[0] = 0, p[1] = 0, p[2] = 1, p[3] = 0xBA;
    p[4] = (uint8_t)(0x44 | ((scr >> 27) & 0x38) | ((scr >> 28) & 0x03));
    p[5] = (uint8_t)(scr >> 20);
    p[6] = (uint8_t)(((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03));
    p[7] = (uint8_t)(scr >> 5);
    p[8] = (uint8_t)(((scr << 3) & 0xF8) | 0x04 | ((ext >> 7) & 0x03));
    p[9] = (uint8_t)(((ext << 1) & 0xFE) | 1);
    p[10] = (uint8_t)(rate >> 14);
    p[11] = (uint8_t)(rate >> 6);
    p[12] = (uint8_t)(((rate << 2) & 0xFC) | 0x03);
    p[13] = 0xF8; /* reserved '11111', pack_stuffing_length 0 */
}

/* Returns the length written (15, or 18 with an audio stream). */
static size_t put_system_header(uint8_t p[18], bool audio)
{
    const unsigned rate_bound = PS_MUX_RATE;
    p[0] = 0, p[1] = 0, p[2] = 1, p[3] = 0xBB;
    put_u16(p + 4, audio ? 12 : 9); /* header_length: 6 fixed bytes + 3 per stream entry */
    p[6] = (uint8_t)(0x80 | ((rate_bound >> 15) & 0x7F));
    p[7] = (uint8_t)(rate_bound >> 7);
    p[8] = (uint8_t)(((rate_bound << 1) & 0xFE) | 1);
    p[9] = audio ? 0x04 : 0x00; /* audio_bound (6 bits), fixed_flag 0, CSPS_flag 0 */
    p[10] = 0xE1; /* audio lock, video lock, marker, video_bound 1 */
    p[11] = 0x7F; /* packet_rate_restriction_flag 0, reserved */
    /* Video 0xE0: '11', P-STD_buffer_bound_scale 1 (units of 1024 bytes), size bound. */
    p[12] = GB_PS_VIDEO_STREAM_ID;
    p[13] = (uint8_t)(0xE0 | ((PS_PSTD_BUFFER_KB >> 8) & 0x1F));
    p[14] = (uint8_t)(PS_PSTD_BUFFER_KB & 0xFF);
    if (!audio) return 15;
    /* Audio 0xC0: scale 0 (units of 128 bytes), 32 x 128 = 4 KiB, seconds of G.711. */
    p[15] = GB_PS_AUDIO_STREAM_ID;
    p[16] = 0xC0;
    p[17] = 32;
    return 18;
}

/* Returns the length written (20, or 24 with an audio entry). */
static size_t put_psm(uint8_t p[24], int stream_type, int audio_stream_type)
{
    bool audio = audio_stream_type >= 0;
    p[0] = 0, p[1] = 0, p[2] = 1, p[3] = 0xBC;
    put_u16(p + 4, audio ? 18 : 14);
    p[6] = 0xE0; /* current_next_indicator 1, reserved, version 0 */
    p[7] = 0xFF; /* reserved, marker */
    put_u16(p + 8, 0);  /* program_stream_info_length */
    put_u16(p + 10, audio ? 8 : 4); /* elementary_stream_map_length */
    p[12] = (uint8_t)stream_type;
    p[13] = GB_PS_VIDEO_STREAM_ID;
    put_u16(p + 14, 0); /* elementary_stream_info_length */
    size_t n = 16;
    if (audio) {
        p[16] = (uint8_t)audio_stream_type;
        p[17] = GB_PS_AUDIO_STREAM_ID;
        put_u16(p + 18, 0);
        n = 20;
    }
    uint32_t crc = gb_ps_crc32(p, n);
    p[n] = (uint8_t)(crc >> 24), p[n + 1] = (uint8_t)(crc >> 16), p[n + 2] = (uint8_t)(crc >> 8);
    p[n + 3] = (uint8_t)crc;
    return n + 4;
}

int gb_ps_mux_frame(sbuf_t *out, gb_codec_t codec, const uint8_t *au, size_t len, uint64_t pts, bool key)
{
    return gb_ps_mux_frame_av(out, codec, -1, au, len, pts, key);
}

int gb_ps_mux_frame_av(sbuf_t *out, gb_codec_t codec, int audio_stream_type, const uint8_t *au, size_t len,
                       uint64_t pts, bool key)
{
    int stream_type = gb_ps_stream_type(codec);
    if (stream_type < 0 || audio_stream_type > 0xFF || !au || !len || out->failed) return -1;
    pts &= 0x1FFFFFFFFull;
    size_t before = out->len;
    size_t pes_count = len / (PS_PES_MAX_LEN - 3 - 10) + 1;
    if (!sbuf_reserve(out, 14 + 18 + 24 + len + pes_count * 19)) return -1;

    uint8_t hdr[24];
    put_pack_header(hdr, pts);
    sbuf_append(out, hdr, 14);
    if (key) {
        sbuf_append(out, hdr, put_system_header(hdr, audio_stream_type >= 0));
        sbuf_append(out, hdr, put_psm(hdr, stream_type, audio_stream_type));
    }
    size_t off = 0;
    bool first = true;
    while (off < len) {
        size_t hlen = first ? 10 : 0;
        size_t room = PS_PES_MAX_LEN - 3 - hlen;
        size_t n = len - off < room ? len - off : room;
        uint8_t pes[19];
        pes[0] = 0, pes[1] = 0, pes[2] = 1, pes[3] = GB_PS_VIDEO_STREAM_ID;
        put_u16(pes + 4, (unsigned)(3 + hlen + n));
        pes[6] = first ? 0x84 : 0x80; /* '10', data_alignment_indicator on the frame start */
        pes[7] = first ? 0xC0 : 0x00; /* PTS_DTS_flags '11' */
        pes[8] = (uint8_t)hlen;
        if (first) {
            gb_ps_put_pes_ts(pes + 9, 0x3, pts);
            gb_ps_put_pes_ts(pes + 14, 0x1, pts);
        }
        sbuf_append(out, pes, 9 + hlen);
        sbuf_append(out, au + off, n);
        off += n;
        first = false;
    }
    if (out->failed) {
        out->len = before;
        return -1;
    }
    return 0;
}

int gb_ps_mux_audio(sbuf_t *out, const uint8_t *samples, size_t len, uint64_t pts)
{
    if (!samples || !len || len > 65000 || out->failed) return -1;
    pts &= 0x1FFFFFFFFull;
    size_t before = out->len;
    if (!sbuf_reserve(out, 14 + 14 + len)) return -1;
    uint8_t hdr[14];
    put_pack_header(hdr, pts);
    sbuf_append(out, hdr, 14);
    hdr[0] = 0, hdr[1] = 0, hdr[2] = 1, hdr[3] = GB_PS_AUDIO_STREAM_ID;
    put_u16(hdr + 4, (unsigned)(3 + 5 + len));
    hdr[6] = 0x84; /* '10', data_alignment_indicator: the PES starts a block of samples */
    hdr[7] = 0x80; /* PTS_DTS_flags '10': a PTS alone */
    hdr[8] = 5;
    gb_ps_put_pes_ts(hdr + 9, 0x2, pts);
    sbuf_append(out, hdr, 14);
    sbuf_append(out, samples, len);
    if (out->failed) {
        out->len = before;
        return -1;
    }
    return 0;
}

/* ---- demuxer ---- */

void gb_ps_demux_init(gb_ps_demux_t *d, gb_ps_frame_cb cb, void *arg)
{
    memset(d, 0, sizeof(*d));
    d->cb = cb;
    d->arg = arg;
    d->stream_type = -1;
    d->audio_stream_type = -1;
}

void gb_ps_demux_set_audio_cb(gb_ps_demux_t *d, gb_ps_audio_cb cb, void *arg)
{
    d->audio_cb = cb;
    d->audio_arg = arg;
}

void gb_ps_demux_free(gb_ps_demux_t *d)
{
    free(d->in);
    free(d->frame);
    d->in = d->frame = NULL;
    d->in_len = d->in_cap = d->frame_len = d->frame_cap = 0;
    d->frame_open = false;
}

static bool grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p) return false;
    *buf = p;
    *cap = c;
    return true;
}

static void emit_frame(gb_ps_demux_t *d)
{
    if (!d->frame_open) return;
    d->frame_open = false;
    if (d->frame_overflow) {
        d->stats.frames_dropped++;
    } else if (d->frame_len) {
        gb_ps_frame_t f = {
            .codec = d->codec,
            .stream_type = d->stream_type,
            .data = d->frame,
            .len = d->frame_len,
            .has_pts = d->frame_has_pts,
            .pts = d->frame_pts,
            .audio_stream_type = d->audio_stream_type,
        };
        f.key = gb_annexb_has_key(d->codec == GB_CODEC_UNKNOWN ? GB_CODEC_H264 : d->codec, d->frame, d->frame_len);
        d->stats.frames++;
        if (d->cb) d->cb(d->arg, &f);
    }
    d->frame_len = 0;
    d->frame_overflow = false;
}

void gb_ps_demux_flush(gb_ps_demux_t *d) { emit_frame(d); }

static int video_payload(gb_ps_demux_t *d, bool has_pts, uint64_t pts, const uint8_t *p, size_t n)
{
    if (has_pts && (!d->frame_open || !d->frame_has_pts || d->frame_pts != pts)) emit_frame(d);
    if (!d->frame_open) {
        d->frame_open = true;
        d->frame_has_pts = has_pts;
        d->frame_pts = pts;
        d->frame_len = 0;
        d->frame_overflow = false;
    }
    if (d->frame_overflow || !n) return 0;
    if (d->frame_len + n > GB_PS_MAX_FRAME) {
        d->frame_overflow = true;
        return 0;
    }
    if (!grow(&d->frame, &d->frame_cap, d->frame_len + n)) return -1;
    memcpy(d->frame + d->frame_len, p, n);
    d->frame_len += n;
    return 0;
}

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

static void parse_psm(gb_ps_demux_t *d, const uint8_t *p, size_t total)
{
    d->stats.psms++;
    if (total < 16) return;
    uint32_t crc = (uint32_t)p[total - 4] << 24 | (uint32_t)p[total - 3] << 16 | (uint32_t)p[total - 2] << 8 |
                   p[total - 1];
    if (gb_ps_crc32(p, total - 4) != crc) d->stats.psm_crc_errors++;
    size_t end = total - 4;
    size_t off = 10 + be16(p + 8); /* skip program descriptors */
    if (off + 2 > end) return;
    size_t map_end = off + 2 + be16(p + off);
    off += 2;
    if (map_end > end) map_end = end;
    bool video_seen = false, audio_seen = false;
    while (off + 4 <= map_end && !(video_seen && audio_seen)) {
        int type = p[off];
        uint8_t id = p[off + 1];
        off += 4 + be16(p + off + 2);
        if (id >= 0xC0 && id <= 0xDF && !audio_seen) {
            /* The first audio entry is the audio (cameras have one). */
            audio_seen = true;
            d->audio_id = id;
            d->audio_stream_type = type;
            continue;
        }
        if (id < 0xE0 || id > 0xEF || video_seen) continue;
        if (d->video_id && id != d->video_id) continue;
        video_seen = true;
        d->stream_type = type;
        d->codec = gb_ps_codec_of_stream_type(type);
    }
    if (!audio_seen && off + 4 > map_end) { /* a whole map without audio: the audio is gone */
        d->audio_id = 0;
        d->audio_stream_type = -1;
    }
}

/* One PES of the video stream: MPEG-2 header (§2.4.3.6) then payload. */
static int parse_video_pes(gb_ps_demux_t *d, const uint8_t *p, size_t total)
{
    d->stats.pes_video++;
    if (total < 9 || (p[6] & 0xC0) != 0x80) return 0; /* not an MPEG-2 PES header: drop */
    size_t hlen = p[8];
    if (9 + hlen > total) return 0;
    unsigned pts_flags = p[7] >> 6;
    bool has_pts = false;
    uint64_t pts = 0;
    if ((pts_flags == 2 || pts_flags == 3) && hlen >= 5) {
        has_pts = true;
        pts = get_pes_ts(p + 9);
    }
    return video_payload(d, has_pts, pts, p + 9 + hlen, total - 9 - hlen);
}

/* One PES of the audio stream: handed up whole, from the input buffer. */
static void parse_audio_pes(gb_ps_demux_t *d, const uint8_t *p, size_t total)
{
    d->stats.pes_audio++;
    if (total < 9 || (p[6] & 0xC0) != 0x80) return; /* not an MPEG-2 PES header: drop */
    size_t hlen = p[8];
    if (9 + hlen >= total || !d->audio_cb) return;
    unsigned pts_flags = p[7] >> 6;
    gb_ps_audio_t a = {.stream_type = d->audio_stream_type, .data = p + 9 + hlen, .len = total - 9 - hlen};
    if ((pts_flags == 2 || pts_flags == 3) && hlen >= 5) {
        a.has_pts = true;
        a.pts = get_pes_ts(p + 9);
    }
    d->audio_cb(d->audio_arg, &a);
}

/* Length of the unit at p (a start code is there), 0 when more bytes are
 * needed, or -1 when this is not a valid PS unit (resync). */
static long unit_length(const uint8_t *p, size_t avail)
{
    uint8_t id = p[3];
    if (id == 0xBA) {
        if (avail < 5) return 0;
        if ((p[4] & 0xC0) == 0x40) { /* MPEG-2 */
            if (avail < 14) return 0;
            return 14 + (p[13] & 0x07);
        }
        if ((p[4] & 0xF0) == 0x20) return 12; /* MPEG-1 pack */
        return -1;
    }
    if (id == 0xB9) return 4; /* MPEG_program_end_code */
    if (id < 0xBB) return -1;
    if (avail < 6) return 0;
    size_t plen = be16(p + 4);
    if (plen == 0) return -1; /* unbounded PES is a transport-stream-only form (§2.4.3.7) */
    return (long)(6 + plen);
}

static int parse_units(gb_ps_demux_t *d)
{
    size_t pos = 0;
    int rc = 0;
    while (d->in_len - pos >= 4) {
        uint8_t *p = d->in + pos;
        size_t avail = d->in_len - pos;
        long n = -1;
        if (p[0] == 0 && p[1] == 0 && p[2] == 1) {
            n = unit_length(p, avail);
            if (n == 0) break;
        }
        if (n < 0) {
            /* Skip to the next start code prefix. */
            size_t skip = 1;
            while (skip + 3 <= avail && !(p[skip] == 0 && p[skip + 1] == 0 && p[skip + 2] == 1)) skip++;
            if (skip + 3 > avail) skip = avail - 2; /* keep a possible partial prefix */
            d->stats.resyncs++;
            d->stats.bytes_skipped += skip;
            pos += skip;
            continue;
        }
        if ((size_t)n > avail) break;
        uint8_t id = p[3];
        if (id == 0xBA) {
            d->stats.packs++;
        } else if (id == 0xBB) {
            d->stats.system_headers++;
        } else if (id == 0xBC) {
            parse_psm(d, p, (size_t)n);
        } else if (id >= 0xE0 && id <= 0xEF && (!d->video_id || id == d->video_id)) {
            d->video_id = id;
            if (parse_video_pes(d, p, (size_t)n) < 0) {
                rc = -1;
                break;
            }
        } else if (d->audio_id && id == d->audio_id) {
            parse_audio_pes(d, p, (size_t)n);
        } else if (id != 0xB9) {
            d->stats.pes_other++;
        }
        pos += (size_t)n;
    }
    if (pos) {
        memmove(d->in, d->in + pos, d->in_len - pos);
        d->in_len -= pos;
    }
    return rc;
}

int gb_ps_demux_feed(gb_ps_demux_t *d, const uint8_t *data, size_t len)
{
    d->stats.bytes_in += len;
    if (!len) return 0;
    if (!grow(&d->in, &d->in_cap, d->in_len + len)) goto oom;
    memcpy(d->in + d->in_len, data, len);
    d->in_len += len;
    if (parse_units(d) < 0) goto oom;
    return 0;
oom:
    d->in_len = 0;
    d->frame_len = 0;
    d->frame_open = false;
    return -1;
}

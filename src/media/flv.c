/* flv.c — FLV muxer for HTTP-FLV live: header blob, sequence headers, frame
 * and audio tags (see flv.h). Pure: writes into the caller's buffer only. */
#include "media/flv.h"

#include <string.h>

#include "media/codec_config.h"

#define TAG_AUDIO 8
#define TAG_VIDEO 9
#define TAG_SCRIPT 18
#define FLV_CODEC_AVC 7
#define FRAME_KEY 1
#define FRAME_INTER 2
#define EX_HEADER 0x80
#define EX_SEQUENCE_START 0
#define EX_CODED_FRAMES 1
#define FOURCC_HVC1 0x68766331u /* "hvc1" */
#define PTS_WRAP (1ull << 33)
#define FRAME_NALS 32 /* NAL units per frame remembered between the two passes */
#define TIME_ORIGIN (1ull << 40) /* unwrapped time starts here, so earlier stamps stay positive */

/* ---- byte writing (callers checked the capacity) ---- */

static uint8_t *put8(uint8_t *p, unsigned v)
{
    *p = (uint8_t)v;
    return p + 1;
}
static uint8_t *put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
    return p + 2;
}
static uint8_t *put24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16), p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)v;
    return p + 3;
}
static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
    return p + 4;
}
static uint8_t *putmem(uint8_t *p, const void *src, size_t n)
{
    memcpy(p, src, n);
    return p + n;
}

/* Tag header (FLV v10.1 §E.4.1): the 32-bit ms timestamp is split into a
 * 24-bit field and an 8-bit extension holding the upper bits. */
static uint8_t *tag_begin(uint8_t *p, int type, size_t body_len, uint32_t ts_ms)
{
    p = put8(p, (unsigned)type);
    p = put24(p, (uint32_t)body_len);
    p = put24(p, ts_ms & 0xFFFFFF);
    p = put8(p, ts_ms >> 24);
    return put24(p, 0); /* StreamID */
}
/* PreviousTagSize: the tag just written, header included. */
static uint8_t *tag_end(uint8_t *p, size_t body_len) { return put32(p, (uint32_t)(11 + body_len)); }

/* ---- AMF0 for onMetaData (AMF0 spec §2) ---- */

static uint8_t *amf_key(uint8_t *p, const char *key)
{
    size_t n = strlen(key);
    p = put16(p, (unsigned)n);
    return putmem(p, key, n);
}
static uint8_t *amf_number(uint8_t *p, const char *key, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    p = put8(amf_key(p, key), 0);
    p = put32(p, (uint32_t)(bits >> 32));
    return put32(p, (uint32_t)bits);
}
static uint8_t *amf_bool(uint8_t *p, const char *key, bool v) { return put8(put8(amf_key(p, key), 1), v); }
static uint8_t *amf_string(uint8_t *p, const char *key, const char *v)
{
    p = put8(amf_key(p, key), 2);
    return amf_key(p, v); /* same form: u16 length + bytes */
}

/* ---- muxer ---- */

int gb_flv_muxer_init(gb_flv_muxer_t *m, const gb_flv_config_t *cfg)
{
    if (cfg->video != GB_CODEC_UNKNOWN && cfg->video != GB_CODEC_H264 && cfg->video != GB_CODEC_H265) return -1;
    if (cfg->audio != GB_FLV_AUDIO_NONE && cfg->audio != GB_FLV_AUDIO_PCMA && cfg->audio != GB_FLV_AUDIO_PCMU) return -1;
    if (cfg->video == GB_CODEC_UNKNOWN && cfg->audio == GB_FLV_AUDIO_NONE) return -1;
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    if (cfg->fps > 0 && cfg->fps <= 240) m->fps = cfg->fps;
    return 0;
}

static bool params_complete(const gb_flv_muxer_t *m)
{
    return m->sps.len && m->pps.len && (m->cfg.video != GB_CODEC_H265 || m->vps.len);
}

static gb_param_sets_t param_sets(const gb_flv_muxer_t *m)
{
    gb_param_sets_t p = {m->vps.data, m->sps.data, m->pps.data, m->vps.len, m->sps.len, m->pps.len};
    return p;
}

/* Body length of the sequence header tag for the current parameter sets. */
static size_t seq_body_len(const gb_flv_muxer_t *m)
{
    gb_param_sets_t p = param_sets(m);
    return m->cfg.video == GB_CODEC_H264 ? 5 + gb_avcc_size(&p, true) : 5 + gb_hvcc_size(&p);
}

/* The avcC / hvcC after the tag's 5-byte video header. An H.265 SPS that does
 * not parse still gets a record (4:2:0, one sub-layer) so players can try. */
static uint8_t *write_config(const gb_flv_muxer_t *m, uint8_t *p)
{
    gb_param_sets_t ps = param_sets(m);
    long n;
    if (m->cfg.video == GB_CODEC_H264) {
        n = gb_avcc_write(&ps, true, p, gb_avcc_size(&ps, true));
    } else {
        gb_h265_sps_t info;
        memset(&info, 0, sizeof(info));
        if (gb_h265_sps_parse(m->sps.data, m->sps.len, &info) < 0) info.chroma_format_idc = 1, info.sub_layers = 1;
        n = gb_hvcc_write(&ps, &info, p, gb_hvcc_size(&ps));
    }
    /* Cannot fail: keep_param() holds sets of 4..GB_FLV_MAX_PARAM bytes (SPS)
     * and the capacity is the record's own size. */
    return n > 0 ? p + n : p;
}

static uint8_t *write_seq_tag(const gb_flv_muxer_t *m, uint8_t *p, uint32_t ts_ms)
{
    size_t body = seq_body_len(m);
    p = tag_begin(p, TAG_VIDEO, body, ts_ms);
    if (m->cfg.video == GB_CODEC_H264) {
        p = put8(p, FRAME_KEY << 4 | FLV_CODEC_AVC);
        p = put8(p, 0);  /* AVCPacketType: sequence header */
        p = put24(p, 0); /* CompositionTime */
    } else {
        p = put8(p, EX_HEADER | FRAME_KEY << 4 | EX_SEQUENCE_START);
        p = put32(p, FOURCC_HVC1);
    }
    p = write_config(m, p);
    return tag_end(p, body);
}

static uint8_t *write_metadata_tag(const gb_flv_muxer_t *m, uint8_t *p)
{
    uint8_t *tag = p;
    p += 11;
    uint8_t *body = p;
    p = put8(p, 2);
    p = amf_key(p, "onMetaData");
    p = put8(p, 8); /* ECMA array; its count is a hint, readers go by the end marker */
    uint8_t *count_at = p;
    p += 4;
    unsigned count = 0;
    p = amf_number(p, "duration", 0), count++;
    if (m->cfg.video != GB_CODEC_UNKNOWN) {
        if (m->width > 0 && m->height > 0) {
            p = amf_number(p, "width", m->width), count++;
            p = amf_number(p, "height", m->height), count++;
        }
        if (m->fps > 0) p = amf_number(p, "framerate", m->fps), count++;
        /* Enhanced RTMP: a FourCC codec id is written as its 32-bit value. */
        p = amf_number(p, "videocodecid", m->cfg.video == GB_CODEC_H264 ? FLV_CODEC_AVC : (double)FOURCC_HVC1), count++;
    }
    if (m->cfg.audio != GB_FLV_AUDIO_NONE) {
        p = amf_number(p, "audiocodecid", m->cfg.audio), count++;
        p = amf_number(p, "audiosamplerate", 8000), count++;
        p = amf_number(p, "audiosamplesize", 16), count++;
        p = amf_bool(p, "stereo", false), count++;
    }
    p = amf_string(p, "encoder", "cascade"), count++;
    put32(count_at, count);
    p = put24(p, 9); /* object end: empty key + marker 09 */
    size_t body_len = (size_t)(p - body);
    tag_begin(tag, TAG_SCRIPT, body_len, 0);
    return tag_end(p, body_len);
}

int gb_flv_write_header(const gb_flv_muxer_t *m, uint8_t *out, size_t cap)
{
    size_t need = 13 + GB_FLV_TAG_OVERHEAD + 512;
    bool seq = m->cfg.video != GB_CODEC_UNKNOWN && m->have_seq;
    if (seq) need += GB_FLV_TAG_OVERHEAD + seq_body_len(m);
    if (cap < need) return -1;
    uint8_t *p = putmem(out, "FLV\x01", 4);
    p = put8(p, (m->cfg.audio != GB_FLV_AUDIO_NONE ? 4 : 0) | (m->cfg.video != GB_CODEC_UNKNOWN ? 1 : 0));
    p = put32(p, 9);
    p = put32(p, 0); /* PreviousTagSize0 */
    p = write_metadata_tag(m, p);
    if (seq) p = write_seq_tag(m, p, 0);
    return (int)(p - out);
}

int gb_flv_write_seq_header(const gb_flv_muxer_t *m, uint8_t *out, size_t cap, uint32_t ts_ms)
{
    if (m->cfg.video == GB_CODEC_UNKNOWN || !m->have_seq) return 0;
    size_t need = GB_FLV_TAG_OVERHEAD + seq_body_len(m);
    if (cap < need) return -1;
    return (int)(write_seq_tag(m, out, ts_ms) - out);
}

size_t gb_flv_video_bound(size_t len)
{
    /* A NAL costs at least 4 bytes (3-byte start code + header); its 4-byte
     * length adds at most 1 byte over the start code. */
    return GB_FLV_TAG_OVERHEAD + 23 + 3 * 5 + 3 * GB_FLV_MAX_PARAM + 4 + GB_FLV_TAG_OVERHEAD + 8 + len + len / 4 + 4;
}

/* The 33-bit 90 kHz value unwrapped: the nearest value to the last one seen. */
static uint64_t unwrap(gb_flv_muxer_t *m, uint64_t v33)
{
    v33 &= PTS_WRAP - 1;
    if (!m->time_started) {
        m->time_started = true;
        m->last33 = v33;
        m->ext = m->base = TIME_ORIGIN;
        return m->ext;
    }
    uint64_t delta = (v33 - m->last33) & (PTS_WRAP - 1);
    m->ext = delta < PTS_WRAP / 2 ? m->ext + delta : m->ext - (PTS_WRAP - delta);
    m->last33 = v33;
    return m->ext;
}

static uint32_t to_ms(const gb_flv_muxer_t *m, uint64_t ext)
{
    return ext <= m->base ? 0 : (uint32_t)((ext - m->base) / 90);
}

/* Remembers a parameter set; true when it differs from the one held. */
static bool keep_param(gb_flv_muxer_t *m, gb_flv_param_t *slot, const gb_nal_t *n)
{
    /* avcC copies the SPS's bytes 1-3: shorter ones are not SPSs. */
    size_t min = slot == &m->sps ? 4 : 2;
    if (n->len > GB_FLV_MAX_PARAM || n->len < min) {
        m->stats.params_too_big += n->len > GB_FLV_MAX_PARAM;
        return false;
    }
    if (slot->len == n->len && memcmp(slot->data, n->data, n->len) == 0) return false;
    memcpy(slot->data, n->data, n->len);
    slot->len = n->len;
    return true;
}

/* Which slot an H.264/H.265 parameter set goes to, NULL for other NALs. */
static gb_flv_param_t *param_slot(gb_flv_muxer_t *m, const gb_nal_t *n)
{
    if (m->cfg.video == GB_CODEC_H264) {
        int t = gb_h264_nal_type(n);
        return t == GB_H264_NAL_SPS ? &m->sps : t == GB_H264_NAL_PPS ? &m->pps : NULL;
    }
    int t = gb_h265_nal_type(n);
    return t == GB_H265_NAL_VPS ? &m->vps : t == GB_H265_NAL_SPS ? &m->sps : t == GB_H265_NAL_PPS ? &m->pps : NULL;
}

static bool is_aud(const gb_flv_muxer_t *m, const gb_nal_t *n)
{
    return m->cfg.video == GB_CODEC_H264 ? gb_h264_nal_type(n) == GB_H264_NAL_AUD
                                         : gb_h265_nal_type(n) == GB_H265_NAL_AUD;
}

/* Size and frame rate for onMetaData from a new SPS. */
static void learn_sps(gb_flv_muxer_t *m)
{
    if (m->cfg.video == GB_CODEC_H264) {
        gb_h264_sps_t s;
        if (gb_h264_parse_sps(m->sps.data, m->sps.len, &s) < 0) {
            m->stats.bad_sps++;
            return;
        }
        m->width = s.width, m->height = s.height;
        if (s.has_timing && s.fps >= 1 && s.fps <= 240) m->fps = s.fps;
        return;
    }
    gb_h265_sps_t info;
    if (gb_h265_sps_parse(m->sps.data, m->sps.len, &info) < 0) {
        m->stats.bad_sps++;
        return;
    }
    m->width = info.width, m->height = info.height;
}

/* A frame rate from the DTS step when nothing else gave one. */
static void measure_fps(gb_flv_muxer_t *m, uint64_t dts)
{
    if (m->fps == 0 && m->have_prev_video && dts > m->prev_video_dts) {
        double fps = 90000.0 / (double)(dts - m->prev_video_dts);
        if (fps >= 1 && fps <= 240) {
            m->fps = fps;
            m->header_gen++;
        }
    }
    m->have_prev_video = true;
    m->prev_video_dts = dts;
}

int gb_flv_write_video(gb_flv_muxer_t *m, const uint8_t *au, size_t len, uint64_t pts, uint64_t dts, uint8_t *out,
                       size_t cap, gb_flv_frame_info_t *info)
{
    memset(info, 0, sizeof(*info));
    if (m->cfg.video == GB_CODEC_UNKNOWN || cap < gb_flv_video_bound(len)) return -1;
    /* Pass 1: parameter sets, and what the frame tag will hold. The NAL
     * units to send are kept (up to FRAME_NALS) so the copy need not search
     * for start codes again. */
    gb_nal_t nals[FRAME_NALS];
    size_t pos = 0, payload = 0, count = 0;
    gb_nal_t n;
    bool key = false;
    while (gb_nal_next(au, len, &pos, &n)) {
        gb_flv_param_t *slot = param_slot(m, &n);
        if (slot) {
            if (keep_param(m, slot, &n)) m->params_dirty = true;
            continue;
        }
        if (is_aud(m, &n)) continue;
        if (count < FRAME_NALS) nals[count] = n;
        count++;
        payload += 4 + n.len;
        key |= gb_nal_is_key(m->cfg.video, &n);
    }
    uint64_t t = unwrap(m, dts);
    uint32_t ts = to_ms(m, t);
    info->ts_ms = ts;
    uint8_t *p = out;
    if (m->params_dirty && params_complete(m)) {
        learn_sps(m);
        p = write_seq_tag(m, p, ts);
        m->params_dirty = false;
        m->have_seq = true;
        m->header_gen++;
        m->stats.seq_headers++;
        info->seq_header = true;
    }
    bool h264 = m->cfg.video == GB_CODEC_H264;
    size_t body = (h264 ? 5 : 8) + payload;
    if (payload == 0 || !m->have_seq || body > 0xFFFFFF) {
        if (payload && !m->have_seq) m->stats.frames_no_params++;
        if (payload && m->have_seq) m->stats.frames_too_big++; /* DataSize is 24 bits */
        info->len = (size_t)(p - out);
        m->stats.bytes += info->len;
        return 0;
    }
    measure_fps(m, t);
    /* PTS - DTS in ms, the nearest 33-bit difference, clamped to SI24. */
    uint64_t d = (pts - dts) & (PTS_WRAP - 1);
    int64_t cts90 = d < PTS_WRAP / 2 ? (int64_t)d : (int64_t)d - (int64_t)PTS_WRAP;
    int64_t cts = cts90 / 90;
    if (cts > 0x7FFFFF) cts = 0x7FFFFF;
    if (cts < -0x800000) cts = -0x800000;
    p = tag_begin(p, TAG_VIDEO, body, ts);
    unsigned ft = key ? FRAME_KEY : FRAME_INTER;
    if (h264) {
        p = put8(p, ft << 4 | FLV_CODEC_AVC);
        p = put8(p, 1); /* AVCPacketType: NALUs */
    } else {
        p = put8(p, EX_HEADER | ft << 4 | EX_CODED_FRAMES);
        p = put32(p, FOURCC_HVC1);
    }
    p = put24(p, (uint32_t)cts & 0xFFFFFF);
    for (size_t i = 0; i < count && i < FRAME_NALS; i++) {
        p = put32(p, (uint32_t)nals[i].len);
        p = putmem(p, nals[i].data, nals[i].len);
    }
    if (count > FRAME_NALS) { /* many slices: the rest found again */
        pos = (size_t)(nals[FRAME_NALS - 1].data + nals[FRAME_NALS - 1].len - au);
        while (gb_nal_next(au, len, &pos, &n)) {
            if (param_slot(m, &n) || is_aud(m, &n)) continue;
            p = put32(p, (uint32_t)n.len);
            p = putmem(p, n.data, n.len);
        }
    }
    p = tag_end(p, body);
    info->key = key;
    info->len = (size_t)(p - out);
    m->stats.video_frames++;
    m->stats.bytes += info->len;
    return 0;
}

int gb_flv_write_audio(gb_flv_muxer_t *m, const uint8_t *samples, size_t len, uint64_t pts, uint8_t *out, size_t cap,
                       gb_flv_frame_info_t *info)
{
    memset(info, 0, sizeof(*info));
    if (m->cfg.audio == GB_FLV_AUDIO_NONE || len == 0 || len + 1 > 0xFFFFFF || cap < len + 1 + GB_FLV_TAG_OVERHEAD)
        return -1;
    uint32_t ts = to_ms(m, unwrap(m, pts));
    uint8_t *p = tag_begin(out, TAG_AUDIO, len + 1, ts);
    /* SoundFormat, SoundRate 0 (G.711's rate is 8 kHz by definition), 16-bit, mono. */
    p = put8(p, (unsigned)m->cfg.audio << 4 | 0 << 2 | 1 << 1 | 0);
    p = putmem(p, samples, len);
    p = tag_end(p, len + 1);
    info->ts_ms = ts;
    info->key = m->cfg.video == GB_CODEC_UNKNOWN; /* audio-only: any frame is a start */
    info->len = (size_t)(p - out);
    m->stats.audio_frames++;
    m->stats.bytes += info->len;
    return 0;
}

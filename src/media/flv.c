/* flv.c — FLV muxer for HTTP-FLV live: header blob, sequence headers, frame
 * and audio tags (see flv.h). Pure: writes into the caller's buffer only. */
#include "media/flv.h"

#include <string.h>

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

/* ---- parameter sets ---- */

typedef struct {
    const uint8_t *p;
    size_t bits, pos;
    bool err;
} bits_t;

static uint32_t get_bits(bits_t *b, unsigned n)
{
    uint32_t v = 0;
    if (b->err || n > 32 || b->pos + n > b->bits) {
        b->err = true;
        return 0;
    }
    for (unsigned i = 0; i < n; i++, b->pos++) v = (v << 1) | ((b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1);
    return v;
}
static uint32_t get_ue(bits_t *b)
{
    unsigned zeros = 0;
    while (!b->err && get_bits(b, 1) == 0)
        if (++zeros > 31) b->err = true;
    return b->err ? 0 : (uint32_t)((1ull << zeros) - 1 + get_bits(b, zeros));
}

/* NAL payload without emulation prevention bytes (H.264 §7.4.1), skipping a
 * header of hdr bytes. Returns the RBSP length. */
static size_t unescape(const uint8_t *nal, size_t len, size_t hdr, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned zeros = 0;
    for (size_t i = hdr; i < len && n < cap; i++) {
        if (zeros >= 2 && nal[i] == 3) {
            zeros = 0;
            continue;
        }
        zeros = nal[i] == 0 ? zeros + 1 : 0;
        out[n++] = nal[i];
    }
    return n;
}

typedef struct {
    int width, height;
    unsigned chroma, depth_luma, depth_chroma; /* minus 8 for the depths */
    /* H.265 only */
    uint8_t ptl[12];     /* general profile_tier_level: space..level_idc */
    unsigned sub_layers; /* sps_max_sub_layers_minus1 + 1 */
    unsigned id_nesting;
} sps_info_t;

/* The bits of an H.264 SPS the avcC needs beyond what gb_h264_parse_sps
 * gives: chroma format and bit depths (§7.3.2.1.1, high profiles only). */
static void h264_sps_format(const gb_flv_param_t *sps, sps_info_t *info)
{
    info->chroma = 1, info->depth_luma = 0, info->depth_chroma = 0;
    uint8_t rbsp[64];
    size_t n = unescape(sps->data, sps->len, 1, rbsp, sizeof(rbsp));
    bits_t b = {rbsp, n * 8, 0, false};
    unsigned profile = get_bits(&b, 8);
    get_bits(&b, 16);
    get_ue(&b); /* seq_parameter_set_id */
    if (profile == 100 || profile == 110 || profile == 122 || profile == 244 || profile == 44 || profile == 83 ||
        profile == 86 || profile == 118 || profile == 128 || profile == 138 || profile == 139 || profile == 134 ||
        profile == 135) {
        unsigned c = get_ue(&b);
        if (c == 3) get_bits(&b, 1);
        unsigned dl = get_ue(&b), dc = get_ue(&b);
        if (!b.err && c <= 3 && dl <= 6 && dc <= 6) info->chroma = c, info->depth_luma = dl, info->depth_chroma = dc;
    }
}

/* H.265 SPS up to the bit depths (H.265 §7.3.2.2.1, §7.3.3). */
static int h265_sps_parse(const gb_flv_param_t *sps, sps_info_t *info)
{
    uint8_t rbsp[256];
    size_t n = unescape(sps->data, sps->len, 2, rbsp, sizeof(rbsp));
    if (n < 13) return -1;
    bits_t b = {rbsp, n * 8, 0, false};
    get_bits(&b, 4); /* sps_video_parameter_set_id */
    unsigned max_sub = get_bits(&b, 3);
    info->id_nesting = get_bits(&b, 1);
    info->sub_layers = max_sub + 1;
    memcpy(info->ptl, rbsp + 1, 12);
    b.pos += 96;
    unsigned prof_present = 0, level_present = 0;
    for (unsigned i = 0; i < max_sub; i++) {
        prof_present |= get_bits(&b, 1) << i;
        level_present |= get_bits(&b, 1) << i;
    }
    if (max_sub > 0)
        for (unsigned i = max_sub; i < 8; i++) get_bits(&b, 2);
    for (unsigned i = 0; i < max_sub; i++) {
        if (prof_present >> i & 1) b.pos += 88;
        if (level_present >> i & 1) b.pos += 8;
    }
    get_ue(&b); /* sps_seq_parameter_set_id */
    unsigned chroma = get_ue(&b);
    unsigned separate = chroma == 3 ? get_bits(&b, 1) : 0;
    uint32_t w = get_ue(&b), h = get_ue(&b);
    uint32_t cl = 0, cr = 0, ct = 0, cb = 0;
    if (get_bits(&b, 1)) cl = get_ue(&b), cr = get_ue(&b), ct = get_ue(&b), cb = get_ue(&b);
    unsigned dl = get_ue(&b), dc = get_ue(&b);
    if (b.err || chroma > 3 || dl > 8 || dc > 8 || w == 0 || h == 0 || w > 16888 || h > 16888) return -1;
    unsigned sx = (!separate && (chroma == 1 || chroma == 2)) ? 2 : 1, sy = (!separate && chroma == 1) ? 2 : 1;
    int64_t cw = (int64_t)w - (int64_t)sx * ((int64_t)cl + cr), ch = (int64_t)h - (int64_t)sy * ((int64_t)ct + cb);
    info->width = cw > 0 ? (int)cw : 0;
    info->height = ch > 0 ? (int)ch : 0;
    info->chroma = chroma, info->depth_luma = dl, info->depth_chroma = dc;
    return 0;
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

/* ISO/IEC 14496-15 §5.3.3.1: the format fields follow for these profiles only. */
static bool avcc_has_ext(const gb_flv_muxer_t *m)
{
    unsigned p = m->sps.data[1];
    return p == 100 || p == 110 || p == 122 || p == 144;
}

/* Body length of the sequence header tag for the current parameter sets. */
static size_t seq_body_len(const gb_flv_muxer_t *m)
{
    if (m->cfg.video == GB_CODEC_H264) return 5 + 11 + m->sps.len + m->pps.len + (avcc_has_ext(m) ? 4 : 0);
    return 5 + 23 + 3 * 5 + m->vps.len + m->sps.len + m->pps.len;
}

/* AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1). */
static uint8_t *write_avcc(const gb_flv_muxer_t *m, uint8_t *p)
{
    const uint8_t *s = m->sps.data;
    p = put8(p, 1);
    p = put8(p, s[1]), p = put8(p, s[2]), p = put8(p, s[3]); /* profile, compatibility, level */
    p = put8(p, 0xFC | 3);                                   /* lengthSizeMinusOne: 4-byte lengths */
    p = put8(p, 0xE0 | 1);
    p = put16(p, (unsigned)m->sps.len), p = putmem(p, s, m->sps.len);
    p = put8(p, 1);
    p = put16(p, (unsigned)m->pps.len), p = putmem(p, m->pps.data, m->pps.len);
    if (!avcc_has_ext(m)) return p;
    sps_info_t info;
    h264_sps_format(&m->sps, &info);
    p = put8(p, 0xFC | info.chroma);
    p = put8(p, 0xF8 | info.depth_luma);
    p = put8(p, 0xF8 | info.depth_chroma);
    return put8(p, 0); /* numOfSequenceParameterSetExt */
}

/* HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1). */
static uint8_t *write_hvcc(const gb_flv_muxer_t *m, uint8_t *p)
{
    sps_info_t info;
    memset(&info, 0, sizeof(info));
    if (h265_sps_parse(&m->sps, &info) < 0) info.chroma = 1, info.sub_layers = 1; /* ptl stays zero */
    p = put8(p, 1);
    p = putmem(p, info.ptl, 12); /* space/tier/profile, compatibility, constraints, level */
    p = put16(p, 0xF000);        /* min_spatial_segmentation_idc 0 */
    p = put8(p, 0xFC);           /* parallelismType 0 */
    p = put8(p, 0xFC | info.chroma);
    p = put8(p, 0xF8 | info.depth_luma);
    p = put8(p, 0xF8 | info.depth_chroma);
    p = put16(p, 0); /* avgFrameRate unknown */
    p = put8(p, (info.sub_layers & 7) << 3 | (info.id_nesting & 1) << 2 | 3);
    p = put8(p, 3);
    const gb_flv_param_t *sets[3] = {&m->vps, &m->sps, &m->pps};
    const int types[3] = {GB_H265_NAL_VPS, GB_H265_NAL_SPS, GB_H265_NAL_PPS};
    for (int i = 0; i < 3; i++) {
        p = put8(p, 0x80 | (unsigned)types[i]); /* array_completeness: no others in-band */
        p = put16(p, 1);
        p = put16(p, (unsigned)sets[i]->len);
        p = putmem(p, sets[i]->data, sets[i]->len);
    }
    return p;
}

static uint8_t *write_seq_tag(const gb_flv_muxer_t *m, uint8_t *p, uint32_t ts_ms)
{
    size_t body = seq_body_len(m);
    p = tag_begin(p, TAG_VIDEO, body, ts_ms);
    if (m->cfg.video == GB_CODEC_H264) {
        p = put8(p, FRAME_KEY << 4 | FLV_CODEC_AVC);
        p = put8(p, 0);  /* AVCPacketType: sequence header */
        p = put24(p, 0); /* CompositionTime */
        p = write_avcc(m, p);
    } else {
        p = put8(p, EX_HEADER | FRAME_KEY << 4 | EX_SEQUENCE_START);
        p = put32(p, FOURCC_HVC1);
        p = write_hvcc(m, p);
    }
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
    sps_info_t info;
    if (h265_sps_parse(&m->sps, &info) < 0) {
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

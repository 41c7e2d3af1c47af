/* codec_config.c — bit reader, RBSP unescaping, H.265 SPS fields and the
 * avcC / hvcC records shared by the FLV and fMP4 packagers (see codec_config.h). */
#include "media/codec_config.h"

#include <string.h>

#include "media/h264.h"

/* ---- bit reader ---- */

uint32_t gb_bits_get(gb_bits_t *b, unsigned n)
{
    uint32_t v = 0;
    if (b->err || n > 32 || b->pos + n > b->bits) {
        b->err = true;
        return 0;
    }
    for (unsigned i = 0; i < n; i++, b->pos++) v = (v << 1) | ((b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1);
    return v;
}

void gb_bits_skip(gb_bits_t *b, size_t n)
{
    if (b->err || n > b->bits - b->pos) b->err = true;
    else b->pos += n;
}

uint32_t gb_bits_ue(gb_bits_t *b)
{
    unsigned zeros = 0;
    while (!b->err && gb_bits_get(b, 1) == 0)
        if (++zeros > 31) b->err = true;
    return b->err ? 0 : (uint32_t)((1ull << zeros) - 1 + gb_bits_get(b, zeros));
}

int32_t gb_bits_se(gb_bits_t *b)
{
    uint32_t k = gb_bits_ue(b);
    return (k & 1) ? (int32_t)((k + 1) / 2) : -(int32_t)(k / 2);
}

size_t gb_rbsp_unescape(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned zeros = 0;
    for (size_t i = 0; i < len && n < cap; i++) {
        if (zeros >= 2 && in[i] == 3) { /* emulation_prevention_three_byte */
            zeros = 0;
            continue;
        }
        zeros = in[i] == 0 ? zeros + 1 : 0;
        out[n++] = in[i];
    }
    return n;
}

/* ---- H.265 SPS ---- */

/* The fields read sit in the first ~150 bytes even with 7 sub-layers and
 * 32-bit Exp-Golomb codes; a longer SPS is read from its head only. */
#define H265_SPS_HEAD 256
#define H265_MAX_CODED 16888 /* sqrt(8 * MaxLumaPs) at the highest level (H.265 §A.4.1) */

int gb_h265_sps_parse(const uint8_t *nal, size_t len, gb_h265_sps_t *s)
{
    uint8_t rbsp[H265_SPS_HEAD];
    size_t n = len > 2 ? gb_rbsp_unescape(nal + 2, len - 2, rbsp, sizeof(rbsp)) : 0;
    if (n < 13) return -1; /* the id byte and the 12 general profile_tier_level bytes */
    gb_bits_t b;
    gb_bits_init(&b, rbsp, n);
    gb_bits_get(&b, 4); /* sps_video_parameter_set_id */
    unsigned max_sub = gb_bits_get(&b, 3);
    s->temporal_nesting = gb_bits_get(&b, 1);
    s->sub_layers = max_sub + 1;
    memcpy(s->ptl, rbsp + 1, 12);
    gb_bits_skip(&b, 96);
    unsigned prof_present = 0, level_present = 0;
    for (unsigned i = 0; i < max_sub; i++) {
        prof_present |= gb_bits_get(&b, 1) << i;
        level_present |= gb_bits_get(&b, 1) << i;
    }
    if (max_sub > 0)
        for (unsigned i = max_sub; i < 8; i++) gb_bits_get(&b, 2); /* reserved_zero_2bits */
    for (unsigned i = 0; i < max_sub; i++) /* sub_layer profile (88 bits) and level (8 bits) */
        gb_bits_skip(&b, (prof_present >> i & 1 ? 88 : 0) + (level_present >> i & 1 ? 8 : 0));
    gb_bits_ue(&b); /* sps_seq_parameter_set_id */
    unsigned chroma = gb_bits_ue(&b);
    if (chroma == 3) gb_bits_get(&b, 1); /* separate_colour_plane_flag: SubWidthC stays 1 either way */
    uint32_t w = gb_bits_ue(&b), h = gb_bits_ue(&b);
    uint32_t cl = 0, cr = 0, ct = 0, cb = 0;
    if (gb_bits_get(&b, 1)) cl = gb_bits_ue(&b), cr = gb_bits_ue(&b), ct = gb_bits_ue(&b), cb = gb_bits_ue(&b);
    unsigned dl = gb_bits_ue(&b), dc = gb_bits_ue(&b);
    if (b.err || chroma > 3 || dl > 8 || dc > 8 || w == 0 || h == 0 || w > H265_MAX_CODED || h > H265_MAX_CODED)
        return -1;
    /* §7.4.3.2: the window is in chroma sample units (Table 6-1). */
    unsigned sx = chroma == 1 || chroma == 2 ? 2 : 1, sy = chroma == 1 ? 2 : 1;
    int64_t cw = (int64_t)w - (int64_t)sx * ((int64_t)cl + cr), ch = (int64_t)h - (int64_t)sy * ((int64_t)ct + cb);
    s->width = cw > 0 ? (int)cw : 0;
    s->height = ch > 0 ? (int)ch : 0;
    s->chroma_format_idc = chroma, s->bit_depth_luma = dl, s->bit_depth_chroma = dc;
    return 0;
}

/* ---- records ---- */

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
/* A parameter set behind its 16-bit length. */
static uint8_t *put_nal16(uint8_t *p, const uint8_t *nal, size_t len)
{
    p = put16(p, (unsigned)len);
    memcpy(p, nal, len);
    return p + len;
}

bool gb_avcc_has_format(const uint8_t *sps)
{
    unsigned p = sps[1];
    return p == 100 || p == 110 || p == 122 || p == 144;
}

/* Chroma format and bit depths (minus 8) of an H.264 SPS (§7.3.2.1.1), read
 * for the profiles that code them; 4:2:0 8-bit otherwise or when out of range. */
static void h264_sps_format(const uint8_t *sps, size_t len, unsigned fmt[3])
{
    fmt[0] = 1, fmt[1] = 0, fmt[2] = 0;
    uint8_t rbsp[64]; /* the fields sit in the first few bytes */
    gb_bits_t b;
    gb_bits_init(&b, rbsp, gb_rbsp_unescape(sps + 1, len - 1, rbsp, sizeof(rbsp)));
    unsigned profile = gb_bits_get(&b, 8);
    gb_bits_get(&b, 16);
    gb_bits_ue(&b); /* seq_parameter_set_id */
    if (profile == 100 || profile == 110 || profile == 122 || profile == 244 || profile == 44 || profile == 83 ||
        profile == 86 || profile == 118 || profile == 128 || profile == 138 || profile == 139 || profile == 134 ||
        profile == 135) {
        unsigned c = gb_bits_ue(&b);
        if (c == 3) gb_bits_get(&b, 1);
        unsigned dl = gb_bits_ue(&b), dc = gb_bits_ue(&b);
        if (!b.err && c <= 3 && dl <= 6 && dc <= 6) fmt[0] = c, fmt[1] = dl, fmt[2] = dc;
    }
}

size_t gb_avcc_size(const gb_param_sets_t *p, bool with_format)
{
    return 11 + p->sps_len + p->pps_len + (with_format && gb_avcc_has_format(p->sps) ? 4 : 0);
}

long gb_avcc_write(const gb_param_sets_t *p, bool with_format, uint8_t *out, size_t cap)
{
    if (p->sps_len < 4 || p->sps_len > 0xFFFF || p->pps_len > 0xFFFF || cap < gb_avcc_size(p, with_format))
        return -1;
    const uint8_t *s = p->sps;
    uint8_t *q = put8(out, 1);
    q = put8(q, s[1]), q = put8(q, s[2]), q = put8(q, s[3]); /* profile, constraint flags, level */
    q = put8(q, 0xFC | 3);                                   /* lengthSizeMinusOne: 4-byte lengths */
    q = put8(q, 0xE0 | 1);                                   /* one SPS */
    q = put_nal16(q, s, p->sps_len);
    q = put8(q, 1);
    q = put_nal16(q, p->pps, p->pps_len);
    if (with_format && gb_avcc_has_format(s)) {
        unsigned fmt[3];
        h264_sps_format(s, p->sps_len, fmt);
        q = put8(q, 0xFC | fmt[0]);
        q = put8(q, 0xF8 | fmt[1]);
        q = put8(q, 0xF8 | fmt[2]);
        q = put8(q, 0); /* numOfSequenceParameterSetExt */
    }
    return (long)(q - out);
}

size_t gb_hvcc_size(const gb_param_sets_t *p) { return 23 + 3 * 5 + p->vps_len + p->sps_len + p->pps_len; }

long gb_hvcc_write(const gb_param_sets_t *p, const gb_h265_sps_t *sps, uint8_t *out, size_t cap)
{
    if (p->vps_len > 0xFFFF || p->sps_len > 0xFFFF || p->pps_len > 0xFFFF || cap < gb_hvcc_size(p)) return -1;
    uint8_t *q = put8(out, 1);
    memcpy(q, sps->ptl, 12); /* space/tier/profile, compatibility, constraints, level */
    q += 12;
    q = put16(q, 0xF000); /* min_spatial_segmentation_idc 0 */
    q = put8(q, 0xFC);    /* parallelismType 0 */
    q = put8(q, 0xFC | sps->chroma_format_idc);
    q = put8(q, 0xF8 | sps->bit_depth_luma);
    q = put8(q, 0xF8 | sps->bit_depth_chroma);
    q = put16(q, 0); /* avgFrameRate unknown */
    q = put8(q, (sps->sub_layers & 7) << 3 | (sps->temporal_nesting ? 4 : 0) | 3);
    q = put8(q, 3); /* arrays: VPS, SPS, PPS */
    const uint8_t *nal[3] = {p->vps, p->sps, p->pps};
    const size_t len[3] = {p->vps_len, p->sps_len, p->pps_len};
    const unsigned type[3] = {GB_H265_NAL_VPS, GB_H265_NAL_SPS, GB_H265_NAL_PPS};
    for (int i = 0; i < 3; i++) {
        q = put8(q, 0x80 | type[i]); /* array_completeness: none elsewhere in the stream */
        q = put16(q, 1);
        q = put_nal16(q, nal[i], len[i]);
    }
    return (long)(q - out);
}

/* fmp4.c — fMP4 init segments and fragments for one video track (see fmp4.h).
 * Boxes: ISO/IEC 14496-12 §4.3 ftyp, §8.2 moov/mvhd, §8.3 trak/tkhd,
 * §8.4 mdia/mdhd/hdlr/minf, §8.5 stbl/stsd, §8.8 mvex/trex/moof/mfhd/traf/
 * tfhd/trun, §8.8.12 tfdt; sample entries: ISO/IEC 14496-15 §5.3.4, §8.4.1.
 * The avcC/hvcC bodies and the H.265 SPS come from codec_config.h. */
#include "media/fmp4.h"

#include <string.h>

#include "media/codec_config.h"

#define PARAM_MAX 512 /* larger parameter sets are refused: cameras send tens of bytes */

/* ---- box writing into an sbuf ------------------------------------------ */

static void put16(sbuf_t *b, unsigned v)
{
    uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    sbuf_append(b, p, 2);
}
static void put32(sbuf_t *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    sbuf_append(b, p, 4);
}
static void put_zero(sbuf_t *b, size_t n)
{
    static const uint8_t z[64];
    while (n) {
        size_t k = n < sizeof(z) ? n : sizeof(z);
        sbuf_append(b, z, k);
        n -= k;
    }
}

/* Opens a box; box_end() writes its size once its content is in. */
static size_t box_begin(sbuf_t *b, const char *type)
{
    size_t at = b->len;
    put32(b, 0);
    sbuf_append(b, type, 4);
    return at;
}
static size_t fullbox_begin(sbuf_t *b, const char *type, unsigned version, uint32_t flags)
{
    size_t at = box_begin(b, type);
    put32(b, (uint32_t)version << 24 | flags);
    return at;
}
static void box_end(sbuf_t *b, size_t at)
{
    if (b->failed) return;
    size_t n = b->len - at;
    uint8_t *p = (uint8_t *)b->data + at;
    p[0] = (uint8_t)(n >> 24), p[1] = (uint8_t)(n >> 16), p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
}

static void put_matrix(sbuf_t *b)
{
    static const uint32_t m[9] = {0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000};
    for (int i = 0; i < 9; i++) put32(b, m[i]);
}

/* ---- parameter sets ----------------------------------------------------- */

static void find_params(gb_codec_t codec, const uint8_t *au, size_t len, gb_param_sets_t *p)
{
    memset(p, 0, sizeof(*p));
    size_t pos = 0;
    gb_nal_t n;
    while (gb_nal_next(au, len, &pos, &n)) {
        int t = codec == GB_CODEC_H264 ? gb_h264_nal_type(&n) : gb_h265_nal_type(&n);
        bool h264 = codec == GB_CODEC_H264;
        if (!h264 && t == GB_H265_NAL_VPS && !p->vps) p->vps = n.data, p->vps_len = n.len;
        if (t == (h264 ? GB_H264_NAL_SPS : GB_H265_NAL_SPS) && !p->sps) p->sps = n.data, p->sps_len = n.len;
        if (t == (h264 ? GB_H264_NAL_PPS : GB_H265_NAL_PPS) && !p->pps) p->pps = n.data, p->pps_len = n.len;
    }
}

/* A record of at most this size: the sets are PARAM_MAX bytes at the most. */
#define CONFIG_MAX (23 + 3 * 5 + 3 * PARAM_MAX)

static int put_avcc(sbuf_t *b, const gb_param_sets_t *p, gb_fmp4_video_t *info)
{
    gb_h264_sps_t sps;
    if (p->sps_len > PARAM_MAX || p->pps_len > PARAM_MAX || gb_h264_parse_sps(p->sps, p->sps_len, &sps) < 0 ||
        p->sps_len < 4 || sps.width <= 0 || sps.height <= 0 || sps.width > 16384 || sps.height > 16384)
        return -1;
    info->width = sps.width, info->height = sps.height;
    info->profile_idc = sps.profile_idc, info->level_idc = sps.level_idc;
    uint8_t rec[CONFIG_MAX];
    long n = gb_avcc_write(p, false, rec, sizeof(rec)); /* the chroma/depth fields are left out */
    if (n < 0) return -1;
    size_t at = box_begin(b, "avcC");
    sbuf_append(b, rec, (size_t)n);
    box_end(b, at);
    return 0;
}

static int put_hvcc(sbuf_t *b, const gb_param_sets_t *p, gb_fmp4_video_t *info)
{
    gb_h265_sps_t sps;
    if (p->vps_len > PARAM_MAX || p->sps_len > PARAM_MAX || p->pps_len > PARAM_MAX ||
        gb_h265_sps_parse(p->sps, p->sps_len, &sps) < 0 || sps.width <= 0 || sps.height <= 0 || sps.width > 16384 ||
        sps.height > 16384)
        return -1;
    info->width = sps.width, info->height = sps.height;
    info->profile_idc = sps.ptl[0] & 0x1F, info->level_idc = sps.ptl[11];
    uint8_t rec[CONFIG_MAX];
    long n = gb_hvcc_write(p, &sps, rec, sizeof(rec));
    if (n < 0) return -1;
    size_t at = box_begin(b, "hvcC");
    sbuf_append(b, rec, (size_t)n);
    box_end(b, at);
    return 0;
}

/* ---- init segment ------------------------------------------------------- */

static int put_sample_entry(sbuf_t *b, gb_codec_t codec, const gb_param_sets_t *p, gb_fmp4_video_t *info)
{
    size_t at = box_begin(b, codec == GB_CODEC_H264 ? "avc1" : "hvc1");
    put_zero(b, 6);
    put16(b, 1); /* data_reference_index */
    put_zero(b, 16);
    size_t wh = b->len;
    put32(b, 0); /* width, height: once the SPS is read */
    put32(b, 0x00480000), put32(b, 0x00480000); /* 72 dpi */
    put32(b, 0);
    put16(b, 1); /* frame_count */
    put_zero(b, 32);
    put16(b, 0x0018), put16(b, 0xFFFF);
    int rc = codec == GB_CODEC_H264 ? put_avcc(b, p, info) : put_hvcc(b, p, info);
    if (rc < 0 || b->failed) return -1;
    uint8_t *q = (uint8_t *)b->data + wh;
    q[0] = (uint8_t)(info->width >> 8), q[1] = (uint8_t)info->width;
    q[2] = (uint8_t)(info->height >> 8), q[3] = (uint8_t)info->height;
    box_end(b, at);
    return 0;
}

static void put_empty_tables(sbuf_t *b)
{
    static const char *const tables[] = {"stts", "stsc", "stco"};
    for (int i = 0; i < 3; i++) {
        size_t at = fullbox_begin(b, tables[i], 0, 0);
        put32(b, 0);
        box_end(b, at);
    }
    size_t at = fullbox_begin(b, "stsz", 0, 0);
    put32(b, 0), put32(b, 0);
    box_end(b, at);
}

int gb_fmp4_init_segment(sbuf_t *out, gb_codec_t codec, const uint8_t *au, size_t len, gb_fmp4_video_t *info)
{
    if (codec != GB_CODEC_H264 && codec != GB_CODEC_H265) return -1;
    gb_param_sets_t p;
    find_params(codec, au, len, &p);
    if (!p.sps || !p.pps || (codec == GB_CODEC_H265 && !p.vps)) return -1;
    size_t start = out->len;
    gb_fmp4_video_t v = {0};

    size_t ftyp = box_begin(out, "ftyp");
    sbuf_append(out, "iso6", 4), put32(out, 0);
    sbuf_append(out, "iso6cmfcmp41", 12);
    box_end(out, ftyp);

    size_t moov = box_begin(out, "moov");
    size_t at = fullbox_begin(out, "mvhd", 0, 0);
    put32(out, 0), put32(out, 0), put32(out, 1000), put32(out, 0); /* times, timescale, duration */
    put32(out, 0x00010000), put16(out, 0x0100), put_zero(out, 10);
    put_matrix(out);
    put_zero(out, 24);
    put32(out, 2); /* next_track_ID */
    box_end(out, at);

    size_t trak = box_begin(out, "trak");
    size_t tkhd = fullbox_begin(out, "tkhd", 0, 3); /* enabled, in movie */
    put32(out, 0), put32(out, 0), put32(out, 1), put32(out, 0), put32(out, 0);
    put_zero(out, 8);
    put16(out, 0), put16(out, 0), put16(out, 0), put16(out, 0);
    put_matrix(out);
    size_t tkhd_wh = out->len;
    put32(out, 0), put32(out, 0);
    box_end(out, tkhd);

    size_t mdia = box_begin(out, "mdia");
    at = fullbox_begin(out, "mdhd", 0, 0);
    put32(out, 0), put32(out, 0), put32(out, GB_FMP4_TIMESCALE), put32(out, 0);
    put16(out, 0x55C4), put16(out, 0); /* language "und" */
    box_end(out, at);
    at = fullbox_begin(out, "hdlr", 0, 0);
    put32(out, 0);
    sbuf_append(out, "vide", 4);
    put_zero(out, 12);
    sbuf_append(out, "cascade video", 14); /* NUL included */
    box_end(out, at);

    size_t minf = box_begin(out, "minf");
    at = fullbox_begin(out, "vmhd", 0, 1);
    put_zero(out, 8);
    box_end(out, at);
    size_t dinf = box_begin(out, "dinf");
    size_t dref = fullbox_begin(out, "dref", 0, 0);
    put32(out, 1);
    at = fullbox_begin(out, "url ", 0, 1); /* media in the same file */
    box_end(out, at);
    box_end(out, dref);
    box_end(out, dinf);
    size_t stbl = box_begin(out, "stbl");
    size_t stsd = fullbox_begin(out, "stsd", 0, 0);
    put32(out, 1);
    if (put_sample_entry(out, codec, &p, &v) < 0) {
        out->len = start;
        return -1;
    }
    box_end(out, stsd);
    put_empty_tables(out);
    box_end(out, stbl);
    box_end(out, minf);
    box_end(out, mdia);
    box_end(out, trak);

    size_t mvex = box_begin(out, "mvex");
    at = fullbox_begin(out, "trex", 0, 0);
    put32(out, 1), put32(out, 1), put32(out, 0), put32(out, 0), put32(out, 0);
    box_end(out, at);
    box_end(out, mvex);
    box_end(out, moov);
    if (out->failed) return -1;
    uint8_t *q = (uint8_t *)out->data + tkhd_wh; /* 16.16 fixed point */
    q[0] = (uint8_t)(v.width >> 8), q[1] = (uint8_t)v.width;
    q[4] = (uint8_t)(v.height >> 8), q[5] = (uint8_t)v.height;
    if (info) *info = v;
    return 0;
}

/* ---- samples and fragments --------------------------------------------- */

static bool left_out(gb_codec_t codec, const gb_nal_t *n)
{
    if (codec == GB_CODEC_H264) {
        int t = gb_h264_nal_type(n);
        return t == GB_H264_NAL_AUD || t == GB_H264_NAL_SPS || t == GB_H264_NAL_PPS;
    }
    int t = gb_h265_nal_type(n);
    return t == GB_H265_NAL_AUD || t == GB_H265_NAL_VPS || t == GB_H265_NAL_SPS || t == GB_H265_NAL_PPS;
}

long gb_fmp4_sample(uint8_t *out, size_t cap, gb_codec_t codec, const uint8_t *au, size_t len)
{
    if (len > SIZE_MAX / 2 || cap < gb_fmp4_sample_bound(len)) return -1;
    size_t pos = 0, off = 0;
    gb_nal_t n;
    while (gb_nal_next(au, len, &pos, &n)) {
        if (left_out(codec, &n) || n.len > UINT32_MAX) continue;
        out[off] = (uint8_t)(n.len >> 24), out[off + 1] = (uint8_t)(n.len >> 16);
        out[off + 2] = (uint8_t)(n.len >> 8), out[off + 3] = (uint8_t)n.len;
        memcpy(out + off + 4, n.data, n.len);
        off += 4 + n.len;
    }
    return (long)off;
}

#define MOOF_FIXED (8 + 16 + 8 + 16 + 20 + 20 + 8) /* moof, mfhd, traf, tfhd, tfdt v1, trun head, mdat head */

size_t gb_fmp4_fragment_header_len(size_t n) { return n > (SIZE_MAX - MOOF_FIXED) / 12 ? SIZE_MAX : MOOF_FIXED + 12 * n; }

static void w32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

long gb_fmp4_fragment_header(uint8_t *out, size_t cap, uint32_t seq, uint64_t base_dts, const gb_fmp4_sample_t *s,
                             size_t n, size_t mdat_len)
{
    size_t total = gb_fmp4_fragment_header_len(n);
    if (n == 0 || total == SIZE_MAX || cap < total || total + mdat_len > UINT32_MAX) return -1;
    size_t moof_len = total - 8, traf_len = moof_len - 8 - 16, trun_len = 20 + 12 * n;
    uint8_t *p = out;
    w32(p, (uint32_t)moof_len), memcpy(p + 4, "moof", 4), p += 8;
    w32(p, 16), memcpy(p + 4, "mfhd", 4), w32(p + 8, 0), w32(p + 12, seq), p += 16;
    w32(p, (uint32_t)traf_len), memcpy(p + 4, "traf", 4), p += 8;
    w32(p, 16), memcpy(p + 4, "tfhd", 4), w32(p + 8, 0x020000), w32(p + 12, 1), p += 16; /* default-base-is-moof */
    w32(p, 20), memcpy(p + 4, "tfdt", 4), w32(p + 8, 0x01000000);
    w32(p + 12, (uint32_t)(base_dts >> 32)), w32(p + 16, (uint32_t)base_dts), p += 20;
    /* trun: data offset, per-sample duration, size and flags. */
    w32(p, (uint32_t)trun_len), memcpy(p + 4, "trun", 4), w32(p + 8, 0x000701);
    w32(p + 12, (uint32_t)n), w32(p + 16, (uint32_t)total), p += 20; /* data starts after the mdat header */
    for (size_t i = 0; i < n; i++, p += 12) {
        w32(p, s[i].duration);
        w32(p + 4, s[i].size);
        /* sample_depends_on 2 (no other) for key frames; 1 + non-sync otherwise. */
        w32(p + 8, s[i].key ? 0x02000000u : 0x01010000u);
    }
    w32(p, (uint32_t)(8 + mdat_len)), memcpy(p + 4, "mdat", 4);
    return (long)total;
}

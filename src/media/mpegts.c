/* mpegts.c — MPEG-2 TS muxer for one video stream (see mpegts.h).
 * Field layouts: ISO/IEC 13818-1 §2.4.3.2 (packet header), §2.4.3.4
 * (adaptation field, PCR), §2.4.4.3 (PAT), §2.4.4.8 (PMT), §2.4.3.6/7 (PES),
 * Annex A (CRC32, shared with the PS muxer's PSM). */
#include "media/mpegts.h"

#include <string.h>

#include "media/ps.h"

#define TS_PAYLOAD 184        /* 188 minus the 4-byte header */
#define TS_AF_PCR_LEN 8       /* adaptation_field_length byte, flags, 6-byte PCR */
#define PES_HDR_MAX 19        /* 9 fixed + PTS + DTS */
#define TS_33BIT ((1ull << 33) - 1)

static const uint8_t aud_h264[] = {0, 0, 0, 1, 0x09, 0xF0};       /* primary_pic_type 7 (any), stop bit */
static const uint8_t aud_h265[] = {0, 0, 0, 1, 0x46, 0x01, 0x50}; /* pic_type 2 (any), stop bit */
#define AUD_MAX sizeof(aud_h265)
#define PREFIX_MAX (PES_HDR_MAX + AUD_MAX)
#define PARAMS_MAX (3 * (GB_TS_PARAM_MAX + 4))

int gb_ts_stream_type(gb_codec_t codec)
{
    switch (codec) {
    case GB_CODEC_H264: return 0x1B;
    case GB_CODEC_H265: return 0x24;
    default: return -1;
    }
}

int gb_ts_mux_init(gb_ts_mux_t *m, gb_codec_t codec)
{
    memset(m, 0, sizeof(*m));
    if (gb_ts_stream_type(codec) < 0) return -1;
    m->codec = codec;
    return 0;
}

size_t gb_ts_mux_bound(size_t au_len)
{
    if (au_len > SIZE_MAX / 4) return SIZE_MAX;
    size_t payload = au_len + PREFIX_MAX + PARAMS_MAX;
    /* +2: the first packet gives up 8 bytes to the PCR, the last may be mostly stuffing. */
    return 2 * GB_TS_PACKET_SIZE + (payload / TS_PAYLOAD + 2) * GB_TS_PACKET_SIZE;
}

/* ---- sections -------------------------------------------------------- */

static size_t put_section_packet(uint8_t *p, unsigned pid, uint8_t *cc, const uint8_t *sec, size_t n)
{
    p[0] = 0x47;
    p[1] = (uint8_t)(0x40 | pid >> 8); /* payload_unit_start_indicator */
    p[2] = (uint8_t)pid;
    p[3] = (uint8_t)(0x10 | (*cc & 0x0F)); /* payload only */
    *cc = (uint8_t)((*cc + 1) & 0x0F);
    p[4] = 0; /* pointer_field: the section starts right away */
    memcpy(p + 5, sec, n);
    memset(p + 5 + n, 0xFF, GB_TS_PACKET_SIZE - 5 - n);
    return GB_TS_PACKET_SIZE;
}

static void put_crc(uint8_t *sec, size_t n)
{
    uint32_t crc = gb_ps_crc32(sec, n);
    sec[n] = (uint8_t)(crc >> 24);
    sec[n + 1] = (uint8_t)(crc >> 16);
    sec[n + 2] = (uint8_t)(crc >> 8);
    sec[n + 3] = (uint8_t)crc;
}

long gb_ts_mux_tables(gb_ts_mux_t *m, uint8_t *out, size_t cap)
{
    if (cap < 2 * GB_TS_PACKET_SIZE || gb_ts_stream_type(m->codec) < 0) return -1;
    /* PAT: one program. section_length 13 = 5 header bytes + 4 program + 4 CRC. */
    uint8_t pat[16] = {0x00, 0xB0, 13, 0x00, 0x01, 0xC1, 0x00, 0x00,
                       0x00, GB_TS_PROGRAM_NUMBER, (uint8_t)(0xE0 | GB_TS_PID_PMT >> 8), (uint8_t)GB_TS_PID_PMT};
    put_crc(pat, 12);
    /* PMT: PCR on the video PID, one elementary stream, no descriptors.
     * section_length 18 = 9 header bytes + 5 stream bytes + 4 CRC. */
    uint8_t pmt[21] = {0x02, 0xB0, 18, 0x00, GB_TS_PROGRAM_NUMBER, 0xC1, 0x00, 0x00,
                       (uint8_t)(0xE0 | GB_TS_PID_VIDEO >> 8), (uint8_t)GB_TS_PID_VIDEO, 0xF0, 0x00,
                       (uint8_t)gb_ts_stream_type(m->codec), (uint8_t)(0xE0 | GB_TS_PID_VIDEO >> 8),
                       (uint8_t)GB_TS_PID_VIDEO, 0xF0, 0x00};
    put_crc(pmt, 17);
    put_section_packet(out, GB_TS_PID_PAT, &m->cc_pat, pat, sizeof(pat));
    put_section_packet(out + GB_TS_PACKET_SIZE, GB_TS_PID_PMT, &m->cc_pmt, pmt, sizeof(pmt));
    m->packets += 2;
    return 2 * GB_TS_PACKET_SIZE;
}

/* ---- the access unit's payload as up to four slices ------------------ */

typedef struct {
    const uint8_t *p[4];
    size_t n[4];
    int count, i;
    size_t off;  /* inside slice i */
    size_t left; /* bytes in all slices from the cursor on */
} gather_t;

static void gather_add(gather_t *g, const uint8_t *p, size_t n)
{
    if (n == 0) return;
    g->p[g->count] = p;
    g->n[g->count++] = n;
    g->left += n;
}

static void gather_copy(gather_t *g, uint8_t *dst, size_t n)
{
    while (n > 0 && g->i < g->count) {
        size_t take = g->n[g->i] - g->off;
        if (take > n) take = n;
        memcpy(dst, g->p[g->i] + g->off, take);
        dst += take, n -= take, g->left -= take, g->off += take;
        if (g->off == g->n[g->i]) g->i++, g->off = 0;
    }
}

/* ---- parameter sets --------------------------------------------------- */

enum { PS_VPS = 1, PS_SPS = 2, PS_PPS = 4 };

static int param_kind(gb_codec_t codec, const gb_nal_t *n)
{
    if (codec == GB_CODEC_H264) {
        int t = gb_h264_nal_type(n);
        return t == GB_H264_NAL_SPS ? PS_SPS : t == GB_H264_NAL_PPS ? PS_PPS : 0;
    }
    int t = gb_h265_nal_type(n);
    return t == GB_H265_NAL_VPS ? PS_VPS : t == GB_H265_NAL_SPS ? PS_SPS : t == GB_H265_NAL_PPS ? PS_PPS : 0;
}

static gb_ts_param_t *param_slot(gb_ts_mux_t *m, int kind)
{
    return kind == PS_VPS ? &m->vps : kind == PS_SPS ? &m->sps : &m->pps;
}

static void param_keep(gb_ts_param_t *slot, const gb_nal_t *n)
{
    if (n->len + 4 > sizeof(slot->data)) return; /* not repeated: a camera's SPS is tens of bytes */
    memcpy(slot->data, "\x00\x00\x00\x01", 4);
    memcpy(slot->data + 4, n->data, n->len);
    slot->len = n->len + 4;
}

typedef struct {
    size_t aud_end; /* 0 when the AU does not start with an AUD; else where the next NAL begins */
    int have;       /* PS_* bits found in the AU */
} au_scan_t;

/* Walks the AU once: keeps its parameter sets, notes an AUD in front. */
static au_scan_t scan_au(gb_ts_mux_t *m, const uint8_t *au, size_t len)
{
    au_scan_t s = {0, 0};
    size_t pos = 0;
    gb_nal_t n;
    bool first = true, in_aud = false;
    while (gb_nal_next(au, len, &pos, &n)) {
        if (in_aud) s.aud_end = (size_t)(n.start - au), in_aud = false;
        if (first) {
            int t = m->codec == GB_CODEC_H264 ? gb_h264_nal_type(&n) : gb_h265_nal_type(&n);
            bool aud = t == (m->codec == GB_CODEC_H264 ? GB_H264_NAL_AUD : GB_H265_NAL_AUD);
            /* Only an AUD that opens the buffer counts: bytes before it would land ahead of ours. */
            if (aud && n.start == au) in_aud = true, s.aud_end = len;
            first = false;
        }
        int kind = param_kind(m->codec, &n);
        if (kind) {
            s.have |= kind;
            param_keep(param_slot(m, kind), &n);
        }
    }
    return s;
}

/* The stored parameter sets the key frame lacks, in VPS, SPS, PPS order. */
static size_t missing_params(const gb_ts_mux_t *m, int have, uint8_t *buf)
{
    size_t n = 0;
    const int kinds[3] = {PS_VPS, PS_SPS, PS_PPS};
    for (int i = 0; i < 3; i++) {
        if (have & kinds[i]) continue;
        if (kinds[i] == PS_VPS && m->codec != GB_CODEC_H265) continue;
        const gb_ts_param_t *p = kinds[i] == PS_VPS ? &m->vps : kinds[i] == PS_SPS ? &m->sps : &m->pps;
        memcpy(buf + n, p->data, p->len);
        n += p->len;
    }
    return n;
}

/* ---- PES and packets -------------------------------------------------- */

static size_t put_pes_header(uint8_t *p, uint64_t pts, uint64_t dts)
{
    bool with_dts = dts != pts;
    memcpy(p, "\x00\x00\x01\xE0\x00\x00", 6); /* PES_packet_length 0: unbounded video PES */
    p[6] = 0x80;                              /* '10', no scrambling, no priority/alignment flags */
    p[7] = with_dts ? 0xC0 : 0x80;
    p[8] = with_dts ? 10 : 5;
    gb_ps_put_pes_ts(p + 9, with_dts ? 3 : 2, pts);
    if (with_dts) gb_ps_put_pes_ts(p + 14, 1, dts);
    return with_dts ? 19 : 14;
}

/* §2.4.3.5: 33-bit base, 6 reserved bits, 9-bit extension (0: 90 kHz is enough here). */
static void put_pcr(uint8_t *p, uint64_t base)
{
    p[0] = (uint8_t)(base >> 25);
    p[1] = (uint8_t)(base >> 17);
    p[2] = (uint8_t)(base >> 9);
    p[3] = (uint8_t)(base >> 1);
    p[4] = (uint8_t)((base & 1) << 7 | 0x7E);
    p[5] = 0;
}

/* One video packet: the first of the PES carries the PCR (and the random
 * access flag on key frames); a short last one is filled with stuffing in
 * the adaptation field, never in the payload (§2.4.3.5). */
static void put_video_packet(gb_ts_mux_t *m, uint8_t *p, gather_t *g, bool first, bool key, uint64_t pcr)
{
    size_t af = first ? TS_AF_PCR_LEN : 0;
    size_t room = TS_PAYLOAD - af;
    size_t n = g->left < room ? g->left : room;
    af += room - n; /* stuffing; 1 byte is the length byte alone */
    p[0] = 0x47;
    p[1] = (uint8_t)((first ? 0x40 : 0) | GB_TS_PID_VIDEO >> 8);
    p[2] = (uint8_t)GB_TS_PID_VIDEO;
    p[3] = (uint8_t)((af ? 0x30 : 0x10) | m->cc_video);
    m->cc_video = (uint8_t)((m->cc_video + 1) & 0x0F);
    if (af) {
        p[4] = (uint8_t)(af - 1);
        size_t used = 1;
        if (af >= 2) {
            p[5] = first ? (uint8_t)(0x10 | (key ? 0x40 : 0)) : 0; /* PCR_flag, random_access_indicator */
            used = 2;
            if (first) put_pcr(p + 6, pcr), used = TS_AF_PCR_LEN;
        }
        memset(p + 4 + used, 0xFF, af - used);
    }
    gather_copy(g, p + 4 + af, n);
    m->packets++;
}

long gb_ts_mux_frame(gb_ts_mux_t *m, uint8_t *out, size_t cap, const uint8_t *au, size_t len, uint64_t pts,
                     uint64_t dts, bool key, bool tables)
{
    if (!au || len == 0 || gb_ts_stream_type(m->codec) < 0) return -1;
    size_t bound = gb_ts_mux_bound(len);
    if (bound == SIZE_MAX || cap < bound) return -1;
    pts &= TS_33BIT, dts &= TS_33BIT;

    au_scan_t s = scan_au(m, au, len);
    uint8_t prefix[PREFIX_MAX], params[PARAMS_MAX];
    size_t plen = put_pes_header(prefix, pts, dts), nparams = 0;
    const uint8_t *aud = m->codec == GB_CODEC_H264 ? aud_h264 : aud_h265;
    size_t aud_len = m->codec == GB_CODEC_H264 ? sizeof(aud_h264) : sizeof(aud_h265);
    if (!s.aud_end) {
        memcpy(prefix + plen, aud, aud_len);
        plen += aud_len;
        m->auds_added++;
    }
    if (key) nparams = missing_params(m, s.have, params);
    if (nparams) m->params_added++;

    /* PES header + AUD (ours, or the AU's own) + repeated parameter sets + the rest. */
    gather_t g = {0};
    gather_add(&g, prefix, plen);
    gather_add(&g, au, s.aud_end);
    gather_add(&g, params, nparams);
    gather_add(&g, au + s.aud_end, len - s.aud_end);

    size_t off = 0;
    if (key || tables) off += (size_t)gb_ts_mux_tables(m, out, cap);
    uint64_t pcr = (dts - GB_TS_PCR_DELAY) & TS_33BIT;
    bool first = true;
    while (g.left > 0) {
        put_video_packet(m, out + off, &g, first, key, pcr);
        off += GB_TS_PACKET_SIZE;
        first = false;
    }
    m->frames++;
    if (key) m->key_frames++;
    return (long)off;
}

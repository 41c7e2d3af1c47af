/* h264.c — H.264/H.265 Annex B NAL and access-unit reader, SPS frame rate (see h264.h). */
#include "media/h264.h"

#include <string.h>

#include "media/codec_config.h"

const char *gb_codec_name(gb_codec_t codec)
{
    switch (codec) {
    case GB_CODEC_H264: return "h264";
    case GB_CODEC_H265: return "h265";
    default: return "unknown";
    }
}

/* Index of the 0x01 of the next "00 00 01" whose zeros sit at or after from,
 * or len when there is none. */
static size_t find_start_code(const uint8_t *buf, size_t len, size_t from)
{
    size_t i = from + 2;
    while (i < len) {
        const uint8_t *one = memchr(buf + i, 0x01, len - i);
        if (!one) return len;
        i = (size_t)(one - buf);
        if (buf[i - 1] == 0 && buf[i - 2] == 0) return i;
        i++;
    }
    return len;
}

bool gb_nal_next(const uint8_t *buf, size_t len, size_t *pos, gb_nal_t *nal)
{
    size_t from = *pos;
    while (from < len) {
        size_t one = find_start_code(buf, len, from);
        if (one >= len) {
            *pos = len;
            return false;
        }
        /* Leading zeros (4-byte start codes, zero_byte padding) belong to the
         * start code, so consecutive NALs cover the buffer without gaps. */
        size_t start = one - 2;
        while (start > from && buf[start - 1] == 0) start--;
        size_t begin = one + 1;
        size_t next = find_start_code(buf, len, begin);
        size_t end = next >= len ? len : next - 2;
        while (end > begin && buf[end - 1] == 0) end--; /* trailing_zero_8bits */
        *pos = next >= len ? len : end;
        if (end == begin) {
            from = *pos;
            continue;
        }
        nal->data = buf + begin;
        nal->len = end - begin;
        nal->start = buf + start;
        return true;
    }
    *pos = len;
    return false;
}

bool gb_nal_is_vcl(gb_codec_t codec, const gb_nal_t *n)
{
    if (!n->len) return false;
    if (codec == GB_CODEC_H265) return gb_h265_nal_type(n) <= 31;
    int t = gb_h264_nal_type(n);
    return t >= 1 && t <= 5;
}

bool gb_nal_is_key(gb_codec_t codec, const gb_nal_t *n)
{
    if (!n->len) return false;
    if (codec == GB_CODEC_H265) {
        int t = gb_h265_nal_type(n);
        return t >= GB_H265_NAL_IRAP_FIRST && t <= 23;
    }
    return gb_h264_nal_type(n) == GB_H264_NAL_IDR;
}

bool gb_annexb_has_key(gb_codec_t codec, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    gb_nal_t n;
    while (gb_nal_next(buf, len, &pos, &n))
        if (gb_nal_is_key(codec, &n)) return true;
    return false;
}

/* H.264 §7.4.1.2.3 / H.265 §7.4.2.4.4: NALs that can only begin an access unit
 * once the current one has a slice. */
static bool starts_new_au(gb_codec_t codec, const gb_nal_t *n)
{
    if (codec == GB_CODEC_H265) {
        int t = gb_h265_nal_type(n);
        if (t <= 31) return n->len >= 3 && (n->data[2] & 0x80); /* first_slice_segment_in_pic_flag */
        return (t >= GB_H265_NAL_VPS && t <= GB_H265_NAL_AUD) || t == GB_H265_NAL_SEI_PREFIX ||
               (t >= 41 && t <= 44) || (t >= 48 && t <= 55);
    }
    int t = gb_h264_nal_type(n);
    if (t >= 1 && t <= 5) return n->len >= 2 && (n->data[1] & 0x80); /* first_mb_in_slice == 0 */
    return (t >= GB_H264_NAL_SEI && t <= GB_H264_NAL_AUD) || (t >= 14 && t <= 18);
}

void gb_au_reader_init(gb_au_reader_t *r, gb_codec_t codec, const uint8_t *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->codec = codec == GB_CODEC_H265 ? GB_CODEC_H265 : GB_CODEC_H264;
}

bool gb_au_reader_next(gb_au_reader_t *r, gb_au_t *au)
{
    memset(au, 0, sizeof(*au));
    const uint8_t *begin = NULL, *end = NULL;
    for (;;) {
        size_t save = r->pos;
        gb_nal_t n;
        if (!gb_nal_next(r->buf, r->len, &r->pos, &n)) break;
        if (au->vcl_count > 0 && starts_new_au(r->codec, &n)) {
            r->pos = save;
            break;
        }
        if (!begin) begin = n.start;
        end = n.data + n.len;
        au->nal_count++;
        if (gb_nal_is_vcl(r->codec, &n)) au->vcl_count++;
        if (gb_nal_is_key(r->codec, &n)) au->key = true;
    }
    if (!au->nal_count) return false;
    au->data = begin;
    au->len = (size_t)(end - begin);
    return true;
}

/* ---- SPS (H.264 §7.3.2.1.1, Annex E.1.1) ---- */

static void skip_scaling_list(gb_bits_t *b, int size)
{
    int last = 8, next = 8;
    for (int j = 0; j < size && !b->err; j++) {
        if (next != 0) {
            int32_t delta = gb_bits_se(b);
            if (delta < -128 || delta > 127) {
                b->err = true;
                return;
            }
            next = (last + delta + 256) % 256;
        }
        last = next == 0 ? last : next;
    }
}

#define SPS_MAX_RBSP 4096

int gb_h264_parse_sps(const uint8_t *nal, size_t len, gb_h264_sps_t *out)
{
    if (!nal || len < 4 || (nal[0] & 0x1f) != GB_H264_NAL_SPS) return -1;
    uint8_t rbsp[SPS_MAX_RBSP];
    gb_bits_t b;
    gb_bits_init(&b, rbsp, gb_rbsp_unescape(nal + 1, len - 1, rbsp, sizeof(rbsp)));
    gb_h264_sps_t s;
    memset(&s, 0, sizeof(s));
    s.profile_idc = (int)gb_bits_get(&b, 8);
    gb_bits_get(&b, 8); /* constraint flags */
    s.level_idc = (int)gb_bits_get(&b, 8);
    gb_bits_ue(&b); /* seq_parameter_set_id */
    uint32_t chroma_format_idc = 1;
    switch (s.profile_idc) {
    case 100: case 110: case 122: case 244: case 44: case 83: case 86: case 118: case 128: case 138: case 139:
    case 134: case 135:
        chroma_format_idc = gb_bits_ue(&b);
        if (chroma_format_idc > 3) return -1;
        if (chroma_format_idc == 3) gb_bits_get(&b, 1); /* separate_colour_plane_flag */
        gb_bits_ue(&b);                                 /* bit_depth_luma_minus8 */
        gb_bits_ue(&b);                                 /* bit_depth_chroma_minus8 */
        gb_bits_get(&b, 1);                             /* qpprime_y_zero_transform_bypass_flag */
        if (gb_bits_get(&b, 1)) {                       /* seq_scaling_matrix_present_flag */
            int lists = chroma_format_idc != 3 ? 8 : 12;
            for (int i = 0; i < lists && !b.err; i++)
                if (gb_bits_get(&b, 1)) skip_scaling_list(&b, i < 6 ? 16 : 64);
        }
        break;
    default: break;
    }
    gb_bits_ue(&b); /* log2_max_frame_num_minus4 */
    uint32_t poc_type = gb_bits_ue(&b);
    if (poc_type == 0) {
        gb_bits_ue(&b); /* log2_max_pic_order_cnt_lsb_minus4 */
    } else if (poc_type == 1) {
        gb_bits_get(&b, 1); /* delta_pic_order_always_zero_flag */
        gb_bits_se(&b);     /* offset_for_non_ref_pic */
        gb_bits_se(&b);     /* offset_for_top_to_bottom_field */
        uint32_t cycle = gb_bits_ue(&b);
        if (cycle > 255) return -1;
        for (uint32_t i = 0; i < cycle && !b.err; i++) gb_bits_se(&b);
    } else if (poc_type != 2) {
        return -1;
    }
    gb_bits_ue(&b);     /* max_num_ref_frames */
    gb_bits_get(&b, 1); /* gaps_in_frame_num_value_allowed_flag */
    uint32_t w_mbs = gb_bits_ue(&b) + 1, h_units = gb_bits_ue(&b) + 1;
    uint32_t frame_mbs_only = gb_bits_get(&b, 1);
    if (!frame_mbs_only) gb_bits_get(&b, 1); /* mb_adaptive_frame_field_flag */
    gb_bits_get(&b, 1);                      /* direct_8x8_inference_flag */
    uint32_t crop_l = 0, crop_r = 0, crop_t = 0, crop_b = 0;
    if (gb_bits_get(&b, 1)) {
        crop_l = gb_bits_ue(&b), crop_r = gb_bits_ue(&b), crop_t = gb_bits_ue(&b), crop_b = gb_bits_ue(&b);
    }
    if (b.err || w_mbs > 2048 || h_units > 2048) return -1;
    /* §7.4.2.1.1: crop units depend on chroma sampling and field coding. */
    uint32_t cx = (chroma_format_idc == 1 || chroma_format_idc == 2) ? 2 : 1;
    uint32_t cy = (chroma_format_idc == 1 ? 2 : 1) * (2 - frame_mbs_only);
    int64_t w = (int64_t)w_mbs * 16 - (int64_t)cx * (crop_l + crop_r);
    int64_t h = (int64_t)h_units * 16 * (2 - frame_mbs_only) - (int64_t)cy * (crop_t + crop_b);
    s.width = w > 0 ? (int)w : 0;
    s.height = h > 0 ? (int)h : 0;
    if (gb_bits_get(&b, 1)) { /* vui_parameters_present_flag */
        if (gb_bits_get(&b, 1) && gb_bits_get(&b, 8) == 255) gb_bits_get(&b, 32); /* aspect ratio, sar w/h */
        if (gb_bits_get(&b, 1)) gb_bits_get(&b, 1);                                 /* overscan */
        if (gb_bits_get(&b, 1)) { /* video_signal_type */
            gb_bits_get(&b, 4);
            if (gb_bits_get(&b, 1)) gb_bits_get(&b, 24); /* colour description */
        }
        if (gb_bits_get(&b, 1)) gb_bits_ue(&b), gb_bits_ue(&b); /* chroma_loc_info */
        if (gb_bits_get(&b, 1)) { /* timing_info_present_flag */
            s.num_units_in_tick = gb_bits_get(&b, 32);
            s.time_scale = gb_bits_get(&b, 32);
            if (!b.err && s.num_units_in_tick && s.time_scale) {
                s.has_timing = true;
                s.fps = (double)s.time_scale / (2.0 * s.num_units_in_tick);
            }
        }
    }
    if (b.err && !s.has_timing) {
        /* A truncated VUI still leaves a usable size. */
        if (s.width == 0) return -1;
    }
    *out = s;
    return 0;
}

double gb_h264_frame_rate(const uint8_t *buf, size_t len, double default_fps)
{
    size_t pos = 0;
    gb_nal_t n;
    while (gb_nal_next(buf, len, &pos, &n)) {
        if (gb_h264_nal_type(&n) != GB_H264_NAL_SPS) continue;
        gb_h264_sps_t s;
        if (gb_h264_parse_sps(n.data, n.len, &s) == 0 && s.has_timing && s.fps >= 1.0 && s.fps <= 240.0)
            return s.fps;
    }
    return default_fps;
}

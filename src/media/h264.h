/* h264.h — reading H.264 / H.265 Annex B byte streams: NAL units, access units
 * (frames), key frames, and the frame rate from the SPS VUI.
 *
 * Everything works on the caller's buffer and returns pointers into it; nothing
 * allocates. Used by the PS muxer (one access unit per PS pack), the PS demuxer
 * (key-frame flag of a received frame) and tests.
 *
 * References: ITU-T H.264 Annex B (byte stream), §7.3.1 (NAL header),
 * §7.3.2.1.1 (SPS), §7.4.1.2.3 (first NAL of an access unit), Annex E (VUI);
 * ITU-T H.265 §7.3.1.2 (NAL header), §7.4.2.4.4 (access unit order). */
#ifndef CASCADE_MEDIA_H264_H
#define CASCADE_MEDIA_H264_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { GB_CODEC_UNKNOWN = 0, GB_CODEC_H264, GB_CODEC_H265 } gb_codec_t;

const char *gb_codec_name(gb_codec_t codec); /* "h264", "h265", "unknown" */

/* H.264 nal_unit_type values (Table 7-1). */
enum {
    GB_H264_NAL_SLICE = 1,
    GB_H264_NAL_IDR = 5,
    GB_H264_NAL_SEI = 6,
    GB_H264_NAL_SPS = 7,
    GB_H264_NAL_PPS = 8,
    GB_H264_NAL_AUD = 9,
};
/* H.265 nal_unit_type values (Table 7-1). */
enum {
    GB_H265_NAL_IRAP_FIRST = 16, /* BLA_W_LP */
    GB_H265_NAL_IRAP_LAST = 21,  /* CRA_NUT; 22, 23 are reserved IRAP */
    GB_H265_NAL_VPS = 32,
    GB_H265_NAL_SPS = 33,
    GB_H265_NAL_PPS = 34,
    GB_H265_NAL_AUD = 35,
    GB_H265_NAL_SEI_PREFIX = 39,
};

typedef struct {
    const uint8_t *data; /* NAL header onward (no start code) */
    size_t len;          /* trailing zero bytes before the next start code are not counted */
    const uint8_t *start; /* the start code in front of it */
} gb_nal_t;

/* Finds the next NAL unit at or after *pos (3- or 4-byte start codes).
 * Returns true and advances *pos past it, or false at the end of buf.
 * Bytes before the first start code are skipped. Empty NALs are skipped. */
bool gb_nal_next(const uint8_t *buf, size_t len, size_t *pos, gb_nal_t *nal);

static inline int gb_h264_nal_type(const gb_nal_t *n) { return n->len ? n->data[0] & 0x1f : -1; }
static inline int gb_h265_nal_type(const gb_nal_t *n) { return n->len ? (n->data[0] >> 1) & 0x3f : -1; }
/* Slice data (a picture's coded samples): H.264 types 1-5, H.265 types 0-31. */
bool gb_nal_is_vcl(gb_codec_t codec, const gb_nal_t *n);
/* IDR (H.264 type 5) or IRAP (H.265 16-23). */
bool gb_nal_is_key(gb_codec_t codec, const gb_nal_t *n);
/* Whether any NAL in an Annex B buffer is a key NAL. */
bool gb_annexb_has_key(gb_codec_t codec, const uint8_t *buf, size_t len);

/* One access unit: the Annex B bytes of a frame, from the start code of its
 * first NAL (AUD/SPS/PPS/SEI included) to the end of its last slice. */
typedef struct {
    const uint8_t *data;
    size_t len;
    bool key;           /* contains an IDR / IRAP slice */
    unsigned nal_count;
    unsigned vcl_count; /* slices; 0 only for a trailing fragment with no slice */
} gb_au_t;

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    gb_codec_t codec;
} gb_au_reader_t;

void gb_au_reader_init(gb_au_reader_t *r, gb_codec_t codec, const uint8_t *buf, size_t len);
/* Returns true with the next access unit, false at the end. A new access unit
 * begins at an AUD/SPS/PPS/SEI (H.265: VPS/SPS/PPS/AUD/prefix SEI) or at a
 * slice that is the first of its picture (first_mb_in_slice == 0, resp.
 * first_slice_segment_in_pic_flag), once the current one has a slice. */
bool gb_au_reader_next(gb_au_reader_t *r, gb_au_t *au);

typedef struct {
    int profile_idc, level_idc;
    int width, height;           /* after cropping */
    bool has_timing;
    uint32_t num_units_in_tick, time_scale;
    double fps;                  /* time_scale / (2 * num_units_in_tick) when has_timing */
} gb_h264_sps_t;

/* Parses an H.264 SPS NAL (header byte included). 0, or -1 when it is not an
 * SPS or is truncated/invalid. Emulation prevention bytes are handled. */
int gb_h264_parse_sps(const uint8_t *nal, size_t len, gb_h264_sps_t *out);
/* Frame rate from the first SPS in an Annex B buffer with VUI timing info, or
 * default_fps when there is none (or the value is outside 1..240). */
double gb_h264_frame_rate(const uint8_t *buf, size_t len, double default_fps);

#endif

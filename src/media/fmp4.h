/* fmp4.h — fragmented MP4 (ISO/IEC 14496-12, CMAF-style) writer for one
 * video track: the init segment (ftyp + moov with an avc1/avcC or
 * hvc1/hvcC sample entry, ISO/IEC 14496-15) and media fragments (moof +
 * mdat). HLS uses it for H.265, which Safari plays only from fMP4 (RFC 8216
 * §3.3).
 *
 * Pure functions over the caller's buffers: nothing is kept between calls.
 * Samples are the access units in length-prefixed form (4-byte lengths);
 * AUDs and parameter sets are left out of them because hvc1/avc1 carry the
 * parameter sets in the sample entry only — a camera that changes its SPS
 * mid-stream needs a new init segment (not handled: the first one stays). */
#ifndef CASCADE_MEDIA_FMP4_H
#define CASCADE_MEDIA_FMP4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "media/h264.h"

#define GB_FMP4_TIMESCALE 90000

/* What the init segment was built from. */
typedef struct {
    int width, height;
    int profile_idc, level_idc;
} gb_fmp4_video_t;

/* Appends ftyp + moov for codec, with the parameter sets (H.264: SPS, PPS;
 * H.265: VPS, SPS, PPS) found in the Annex B buffer au (a key frame).
 * 0, or -1 when one is missing, does not parse, or out failed to grow. */
int gb_fmp4_init_segment(sbuf_t *out, gb_codec_t codec, const uint8_t *au, size_t len, gb_fmp4_video_t *info);

/* The bytes gb_fmp4_sample() can write for an AU of len bytes. */
static inline size_t gb_fmp4_sample_bound(size_t len) { return len + len / 3 + 16; }
/* Writes the AU's NAL units, minus AUDs and parameter sets, each behind a
 * 4-byte big-endian length. Returns the bytes written (0: nothing left), or
 * -1 when cap is short of the bound. */
long gb_fmp4_sample(uint8_t *out, size_t cap, gb_codec_t codec, const uint8_t *au, size_t len);

typedef struct {
    uint32_t duration; /* 90 kHz */
    uint32_t size;     /* bytes in mdat */
    bool key;
} gb_fmp4_sample_t;

/* The size of the moof + mdat header for n samples. */
size_t gb_fmp4_fragment_header_len(size_t n);
/* Writes moof + the mdat header (its payload, the samples in order, follows
 * them and is mdat_len bytes) into out, which must hold
 * gb_fmp4_fragment_header_len(n). seq is the mfhd sequence number,
 * base_dts the tfdt decode time (90 kHz, not wrapped). Returns the length,
 * or -1 when n is 0 or the sizes overflow 32 bits. */
long gb_fmp4_fragment_header(uint8_t *out, size_t cap, uint32_t seq, uint64_t base_dts, const gb_fmp4_sample_t *s,
                             size_t n, size_t mdat_len);

#endif

/* codec_config.h — what the packagers (FLV, fMP4) need to read out of H.264 /
 * H.265 parameter sets and write back as decoder configuration records:
 *
 *   - an MSB-first bit reader with Exp-Golomb codes (H.264 §9.1), for SPS parsing;
 *   - RBSP unescaping: emulation prevention bytes out (H.264 §7.4.1, H.265 §7.4.2);
 *   - the H.265 SPS fields an hvcC and a player need (H.265 §7.3.2.2.1, §7.3.3);
 *   - AVCDecoderConfigurationRecord (avcC, ISO/IEC 14496-15 §5.3.3.1) and
 *     HEVCDecoderConfigurationRecord (hvcC, §8.3.3.1) bodies.
 *
 * The H.264 SPS itself is parsed by gb_h264_parse_sps (h264.h), which reads it
 * with this bit reader. Nothing here allocates: parsing uses a bounded stack
 * buffer, the records are written into the caller's buffer, whose size is
 * checked against gb_avcc_size / gb_hvcc_size first. */
#ifndef CASCADE_MEDIA_CODEC_CONFIG_H
#define CASCADE_MEDIA_CODEC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- bit reader ---- */

/* Reads past the end set err and return 0; once err is set every read returns
 * 0, so a parser checks err once at the end. */
typedef struct {
    const uint8_t *p;
    size_t bits, pos;
    bool err;
} gb_bits_t;

static inline void gb_bits_init(gb_bits_t *b, const uint8_t *p, size_t len)
{
    b->p = p, b->bits = len * 8, b->pos = 0, b->err = false;
}
uint32_t gb_bits_get(gb_bits_t *b, unsigned n); /* n <= 32 */
void gb_bits_skip(gb_bits_t *b, size_t n);
uint32_t gb_bits_ue(gb_bits_t *b); /* ue(v); more than 31 leading zeros is an error */
int32_t gb_bits_se(gb_bits_t *b);  /* se(v) */

/* Copies in[0..len) to out without the 03 of each 00 00 03, stopping when out
 * holds cap bytes (a parser that needs only the head of a NAL passes a short
 * buffer). Returns the bytes written. */
size_t gb_rbsp_unescape(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* ---- H.265 SPS ---- */

typedef struct {
    uint8_t ptl[12];        /* general_profile_space .. general_level_idc, as hvcC copies them */
    unsigned sub_layers;    /* sps_max_sub_layers_minus1 + 1 */
    bool temporal_nesting;  /* sps_temporal_id_nesting_flag */
    unsigned chroma_format_idc;
    unsigned bit_depth_luma, bit_depth_chroma; /* minus 8 */
    int width, height;      /* after the conformance window; 0 when it covers the picture */
} gb_h265_sps_t;

/* Parses an H.265 SPS NAL (2-byte header included) up to the bit depths.
 * 0, or -1 when it is truncated or out of range (chroma_format_idc > 3, a
 * depth above 16 bits, a coded size of 0 or above 16888). On -1, ptl,
 * sub_layers and temporal_nesting may already hold what was read; the other
 * fields are left as they were. */
int gb_h265_sps_parse(const uint8_t *nal, size_t len, gb_h265_sps_t *s);

/* ---- decoder configuration records ---- */

/* Parameter sets, each a NAL from its header on (no start code); vps is for
 * H.265 only. */
typedef struct {
    const uint8_t *vps, *sps, *pps;
    size_t vps_len, sps_len, pps_len;
} gb_param_sets_t;

/* Whether an avcC for this H.264 SPS (sps_len >= 4) carries the chroma
 * format and bit depth fields: profiles 100, 110, 122, 144 (§5.3.3.1). */
bool gb_avcc_has_format(const uint8_t *sps);

/* avcC size and body: one SPS, one PPS, 4-byte NAL lengths. with_format adds
 * the chroma/bit depth fields when gb_avcc_has_format() (FLV writes them,
 * fMP4 does not). sps_len >= 4 and each set below 64 KiB. Returns the bytes
 * written, or -1 when cap is below gb_avcc_size() or a set does not fit. */
size_t gb_avcc_size(const gb_param_sets_t *p, bool with_format);
long gb_avcc_write(const gb_param_sets_t *p, bool with_format, uint8_t *out, size_t cap);

/* hvcC size and body from the parsed SPS: one VPS, SPS and PPS array each,
 * marked complete, 4-byte NAL lengths, frame rate unknown. Returns the bytes
 * written, or -1 when cap is below gb_hvcc_size() or a set does not fit. */
size_t gb_hvcc_size(const gb_param_sets_t *p);
long gb_hvcc_write(const gb_param_sets_t *p, const gb_h265_sps_t *sps, uint8_t *out, size_t cap);

#endif

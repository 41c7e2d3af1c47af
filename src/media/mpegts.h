/* mpegts.h — an MPEG-2 Transport Stream muxer (ISO/IEC 13818-1 §2.4) for one
 * video elementary stream: what HLS segments carry (RFC 8216 §3.2).
 *
 * One muxer per output stream; it owns its continuity counters and the last
 * parameter sets it saw, nothing else. It writes into the caller's buffer,
 * never allocates and does no I/O, so it can sit on the frame path.
 *
 * Layout per access unit:
 *   PAT (PID 0) + PMT (PID 0x1000), each in its own packet, with CRC32  key frames
 *     and whenever the caller asks (a segment start)
 *   one PES (stream_id 0xE0, PES_packet_length 0 as §2.4.3.7 allows for
 *   video in TS) with PTS, and DTS when it differs, split over 188-byte
 *   packets on PID 0x100; the first one has an adaptation field with the
 *   PCR (the video PID is the PCR PID) and random_access_indicator on key
 *   frames; the last one is padded with adaptation-field stuffing.
 *
 * What the muxer adds to the access unit (players need it, cameras forget it):
 *   - an access unit delimiter first when the AU has none (H.264 AUD type 9,
 *     H.265 AUD type 35), as Apple's HLS authoring guidance asks;
 *   - on a key frame without SPS/PPS (H.265: VPS/SPS/PPS), the last ones seen
 *     on this stream, so that every segment decodes on its own.
 *
 * Audio is not carried: GB cameras send G.711 (A-law/µ-law), which no HLS
 * player decodes (HLS audio is AAC, AC-3, MP3 …). Transcoding is out of scope
 * here; the HLS output is video only. */
#ifndef CASCADE_MEDIA_MPEGTS_H
#define CASCADE_MEDIA_MPEGTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/h264.h"

#define GB_TS_PACKET_SIZE 188
#define GB_TS_PID_PAT 0x0000
#define GB_TS_PID_PMT 0x1000
#define GB_TS_PID_VIDEO 0x0100
#define GB_TS_PROGRAM_NUMBER 1
#define GB_TS_PCR_DELAY 9000 /* PCR runs 100 ms (90 kHz) ahead of the DTS it belongs to */
#define GB_TS_PARAM_MAX 512  /* bytes kept per parameter set; larger ones are not repeated */

/* One parameter set kept for repetition (Annex B, start code included). */
typedef struct {
    uint8_t data[GB_TS_PARAM_MAX];
    size_t len;
} gb_ts_param_t;

typedef struct {
    gb_codec_t codec;
    uint8_t cc_pat, cc_pmt, cc_video; /* continuity_counter per PID (4 bits used) */
    gb_ts_param_t vps, sps, pps;      /* last seen; vps for H.265 only */
    uint64_t frames, key_frames, packets;
    uint64_t auds_added, params_added; /* key frames that got the stored parameter sets */
} gb_ts_mux_t;

/* codec must be GB_CODEC_H264 or GB_CODEC_H265: 0, or -1. */
int gb_ts_mux_init(gb_ts_mux_t *m, gb_codec_t codec);

/* The stream_type the PMT announces: 0x1B (H.264), 0x24 (H.265). */
int gb_ts_stream_type(gb_codec_t codec);

/* The most bytes gb_ts_mux_frame() can write for an access unit of au_len
 * bytes (tables, AUD and parameter sets included). SIZE_MAX on overflow. */
size_t gb_ts_mux_bound(size_t au_len);

/* Writes the TS packets of one access unit (Annex B) at out. pts and dts are
 * 90 kHz (33 bits used; pass dts = pts for streams without B-frames). key
 * marks a key frame (IDR/IRAP); tables forces PAT/PMT ahead of a non-key
 * frame too. Returns the bytes written (a multiple of 188), or -1 for an
 * empty AU, or when cap is below gb_ts_mux_bound(len) — nothing is written
 * and no counter moves then. */
long gb_ts_mux_frame(gb_ts_mux_t *m, uint8_t *out, size_t cap, const uint8_t *au, size_t len, uint64_t pts,
                     uint64_t dts, bool key, bool tables);

/* Writes PAT and PMT alone (two packets, 376 bytes): -1 when cap is short. */
long gb_ts_mux_tables(gb_ts_mux_t *m, uint8_t *out, size_t cap);

#endif

/* flv.h — FLV muxer for HTTP-FLV live viewing (what flv.js, mpegts.js and
 * ffplay read): a stream is packaged once and every viewer receives the same
 * bytes.
 *
 * How a live output uses it:
 *   - per stream, one gb_flv_muxer_t fed every video access unit (Annex B, as
 *     the PS demuxer hands them out) and every G.711 audio frame;
 *   - gb_flv_write_video/audio() write the tags of one frame into the caller's
 *     buffer (typically the tail of a buffer all viewers read from); nothing
 *     is allocated, no I/O;
 *   - a viewer that joins first receives gb_flv_write_header() (FLV header,
 *     onMetaData, the current sequence header) and then the shared bytes from
 *     the start of a frame whose gb_flv_frame_info_t.key was true. When the
 *     header changes (new SPS/PPS, size known) header_gen is bumped: rebuild
 *     the cached header blob then.
 *
 * Layout (Adobe FLV v10.1 Annex E; Enhanced RTMP v1 for H.265):
 *   "FLV" 1 flags 00000009 | PreviousTagSize0 | tag | PreviousTagSize | ...
 *   tag = type(8) size(24) timestamp(24) timestamp_ext(8) stream_id(24)=0 body
 *   H.264: 0x17/0x27, AVCPacketType 0 (avcC) or 1 (NALUs), SI24 composition time
 *   H.265: ExVideoTagHeader 0x80|FrameType<<4|PacketType, FourCC "hvc1";
 *          SequenceStart carries hvcC, CodedFrames an SI24 composition time
 *   G.711: SoundFormat 7 (A-law) or 8 (µ-law), 8 kHz mono
 * NAL units go out length-prefixed (4 bytes); SPS/PPS/VPS/AUD are taken out of
 * the frames (they live in the sequence header). Timestamps are DTS in ms
 * from the 90 kHz clock (33-bit PES wrap followed), starting at 0. */
#ifndef CASCADE_MEDIA_FLV_H
#define CASCADE_MEDIA_FLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/h264.h"

typedef enum { GB_FLV_AUDIO_NONE = 0, GB_FLV_AUDIO_PCMA = 7, GB_FLV_AUDIO_PCMU = 8 } gb_flv_audio_t;

#define GB_FLV_MAX_PARAM 1024   /* a VPS/SPS/PPS above this is refused (counted) */
#define GB_FLV_TAG_OVERHEAD 15  /* 11-byte tag header + 4-byte PreviousTagSize */
/* Capacity that always holds gb_flv_write_header() output. */
#define GB_FLV_HEADER_MAX (13 + GB_FLV_TAG_OVERHEAD + 512 + GB_FLV_TAG_OVERHEAD + 8 + 64 + 3 * (GB_FLV_MAX_PARAM + 5))

typedef struct {
    gb_codec_t video;      /* H264, H265, or UNKNOWN for no video */
    gb_flv_audio_t audio;
    double fps;            /* for onMetaData when the SPS has no timing; 0 = measure */
} gb_flv_config_t;

typedef struct {
    uint8_t data[GB_FLV_MAX_PARAM];
    size_t len;
} gb_flv_param_t;

typedef struct {
    uint64_t video_frames, audio_frames, bytes;
    uint64_t seq_headers;       /* sequence header tags written (first + changes) */
    uint64_t frames_no_params;  /* dropped: no SPS/PPS (VPS) seen yet */
    uint64_t params_too_big;    /* parameter sets refused (> GB_FLV_MAX_PARAM) */
    uint64_t frames_too_big;    /* dropped: a tag body holds at most 16 MiB - 1 */
    uint64_t bad_sps;           /* SPS that did not parse (kept, size unknown) */
} gb_flv_stats_t;

typedef struct {
    gb_flv_config_t cfg;
    gb_flv_param_t vps, sps, pps;   /* latest seen; vps for H.265 only */
    bool params_dirty;              /* changed since the last sequence header */
    bool have_seq;                  /* a sequence header was written */
    int width, height;              /* from the SPS, 0 until known */
    double fps;                     /* SPS timing, cfg.fps, or measured; 0 unknown */
    /* Timeline: 33-bit 90 kHz values unwrapped into 64 bits. */
    bool time_started;
    uint64_t last33, ext, base;
    bool have_prev_video;
    uint64_t prev_video_dts;        /* unwrapped, for the measured frame rate */
    uint32_t header_gen;            /* bumped when gb_flv_write_header() output changes */
    gb_flv_stats_t stats;
} gb_flv_muxer_t;

typedef struct {
    bool key;        /* a viewer may start at the first byte of this output */
    bool seq_header; /* a sequence header tag was written in front of the frame */
    uint32_t ts_ms;  /* FLV timestamp of the frame */
    size_t len;      /* bytes written (0: nothing to send, e.g. parameter sets only) */
} gb_flv_frame_info_t;

/* -1 for an unsupported video codec / audio format. */
int gb_flv_muxer_init(gb_flv_muxer_t *m, const gb_flv_config_t *cfg);

/* Writes the blob a new viewer receives first. Returns its length, or -1
 * when cap is too small (GB_FLV_HEADER_MAX always fits). Without parameter
 * sets yet, it holds only the FLV header and onMetaData. */
int gb_flv_write_header(const gb_flv_muxer_t *m, uint8_t *out, size_t cap);

/* The current sequence header as one tag stamped ts_ms, for a viewer that
 * resumes at a later key frame (the FLV header is not sent twice). Returns
 * its length, 0 when there is none yet (or no video), -1 when cap is too
 * small (GB_FLV_HEADER_MAX always fits). */
int gb_flv_write_seq_header(const gb_flv_muxer_t *m, uint8_t *out, size_t cap, uint32_t ts_ms);

/* Capacity that always holds gb_flv_write_video() output for an access unit
 * of len bytes (a sequence header tag included). */
size_t gb_flv_video_bound(size_t len);

/* One video access unit (Annex B), 90 kHz pts and dts (dts = pts when the
 * source has no DTS; both 33-bit values as in PES). Parameter sets in it are
 * remembered; when they changed, a sequence header tag precedes the frame
 * tag. Frames before the first complete parameter sets are dropped (counted).
 * Returns 0 with *info filled (info->len may be 0), or -1 when cap is below
 * gb_flv_video_bound(len) or there is no video stream (nothing changes). */
int gb_flv_write_video(gb_flv_muxer_t *m, const uint8_t *au, size_t len, uint64_t pts, uint64_t dts, uint8_t *out,
                       size_t cap, gb_flv_frame_info_t *info);

/* One G.711 frame (the raw bytes, 8 kHz mono), 90 kHz pts. Needs cap >=
 * len + 1 + GB_FLV_TAG_OVERHEAD. Returns 0 with *info, or -1 (no audio
 * configured, empty, too big for a tag, or cap too small). */
int gb_flv_write_audio(gb_flv_muxer_t *m, const uint8_t *samples, size_t len, uint64_t pts, uint8_t *out, size_t cap,
                       gb_flv_frame_info_t *info);

#endif

/* ps.h — MPEG-2 Program Stream (ISO/IEC 13818-1 §2.5) as GB/T 28181 carries
 * video in RTP: a muxer that wraps one access unit per pack, and a streaming
 * demuxer that takes PS bytes cut at arbitrary places (RTP payloads, TCP
 * chunks) and hands back whole video frames.
 *
 * Mux layout per frame (what GB devices send and ffmpeg reads):
 *   pack header 00 00 01 BA (SCR = PTS, 90 kHz)          every frame
 *   system header 00 00 01 BB, PSM 00 00 01 BC (+CRC32)  key frames
 *   PES 00 00 01 E0 with PTS = DTS on the first packet    every frame,
 *   split into more PES packets when the frame does not fit one
 *   (PES_packet_length is 16 bits). */
#ifndef CASCADE_MEDIA_PS_H
#define CASCADE_MEDIA_PS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "media/h264.h"

#define GB_PS_STREAM_TYPE_H264 0x1B
#define GB_PS_STREAM_TYPE_H265 0x24
#define GB_PS_STREAM_TYPE_MPEG4 0x10
#define GB_PS_STREAM_TYPE_SVAC 0x80
#define GB_PS_VIDEO_STREAM_ID 0xE0
#define GB_PS_MAX_FRAME (8u << 20) /* demuxer refuses frames above 8 MiB */

/* Stream type in a PSM <-> codec. */
int gb_ps_stream_type(gb_codec_t codec); /* -1 for unknown */
gb_codec_t gb_ps_codec_of_stream_type(int stream_type);

/* MPEG-2 CRC32 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection), as in the PSM. */
uint32_t gb_ps_crc32(const uint8_t *p, size_t len);

/* Writes a PES PTS or DTS field (ISO/IEC 13818-1 §2.4.3.7): prefix is 2 for
 * a PTS alone, 3 for a PTS followed by a DTS, 1 for that DTS; 33 bits of ts
 * are used. Shared with the TS muxer, whose PES headers are the same. */
void gb_ps_put_pes_ts(uint8_t p[5], unsigned prefix, uint64_t ts);

/* Appends the PS for one access unit (Annex B bytes) to out. pts is 90 kHz
 * (33 bits used). key adds the system header and PSM. Returns 0, or -1 for an
 * unknown codec, an empty frame, or when out failed to grow. */
int gb_ps_mux_frame(sbuf_t *out, gb_codec_t codec, const uint8_t *au, size_t len, uint64_t pts, bool key);

typedef struct {
    gb_codec_t codec;     /* from the PSM; GB_CODEC_UNKNOWN until one was seen */
    int stream_type;      /* raw PSM stream type of the video stream, -1 until seen */
    const uint8_t *data;  /* elementary stream bytes (Annex B), valid during the callback */
    size_t len;
    bool has_pts;
    uint64_t pts;         /* 90 kHz */
    bool key;             /* an IDR/IRAP NAL is in data (H.264 assumed when codec is unknown) */
} gb_ps_frame_t;

typedef void (*gb_ps_frame_cb)(void *arg, const gb_ps_frame_t *frame);

typedef struct {
    uint64_t bytes_in;
    uint64_t packs, system_headers, psms, pes_video, pes_other;
    uint64_t frames;
    uint64_t resyncs;        /* times garbage was skipped to find a start code */
    uint64_t bytes_skipped;
    uint64_t frames_dropped; /* over GB_PS_MAX_FRAME */
    uint64_t psm_crc_errors; /* counted, not refused: many devices write a bad CRC */
} gb_ps_stats_t;

typedef struct {
    gb_ps_frame_cb cb;
    void *arg;
    uint8_t *in;             /* unparsed input */
    size_t in_len, in_cap;
    uint8_t *frame;          /* video ES of the frame being assembled */
    size_t frame_len, frame_cap;
    bool frame_open, frame_has_pts, frame_overflow;
    uint64_t frame_pts;
    gb_codec_t codec;
    int stream_type;
    uint8_t video_id;        /* PES stream id taken as the video (first 0xE0-0xEF seen) */
    gb_ps_stats_t stats;
} gb_ps_demux_t;

void gb_ps_demux_init(gb_ps_demux_t *d, gb_ps_frame_cb cb, void *arg);
/* Parses as much as possible; keeps an incomplete tail for the next call.
 * A frame is handed to cb when the next frame's first PES (a PES with a
 * different PTS) arrives, or at gb_ps_demux_flush(). Returns 0, or -1 when
 * memory ran out (the demuxer is then reset and can be fed again). */
int gb_ps_demux_feed(gb_ps_demux_t *d, const uint8_t *data, size_t len);
/* Emits the frame being assembled (end of stream, or the RTP marker bit). */
void gb_ps_demux_flush(gb_ps_demux_t *d);
void gb_ps_demux_free(gb_ps_demux_t *d);

#endif

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
 *   (PES_packet_length is 16 bits).
 * Audio (G.711 as GB cameras send it): its own pack, one PES 00 00 01 C0
 * with a PTS per block of samples; the PSM and system header of a stream
 * with audio list it (stream type 0x90 A-law, 0x91 µ-law). */
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
#define GB_PS_STREAM_TYPE_PCMA 0x90 /* G.711 A-law, GB/T 28181 Annex C */
#define GB_PS_STREAM_TYPE_PCMU 0x91 /* G.711 µ-law */
#define GB_PS_VIDEO_STREAM_ID 0xE0
#define GB_PS_AUDIO_STREAM_ID 0xC0
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
/* The same for a stream that also carries audio: audio_stream_type (0x90,
 * 0x91; -1 none) is listed in the key frames' system header and PSM. */
int gb_ps_mux_frame_av(sbuf_t *out, gb_codec_t codec, int audio_stream_type, const uint8_t *au, size_t len,
                       uint64_t pts, bool key);
/* Appends one pack holding one audio PES (stream id 0xC0) of len bytes
 * (1..65000, e.g. 160 or 320 G.711 samples), pts 90 kHz. 0, or -1. */
int gb_ps_mux_audio(sbuf_t *out, const uint8_t *samples, size_t len, uint64_t pts);

typedef struct {
    gb_codec_t codec;     /* from the PSM; GB_CODEC_UNKNOWN until one was seen */
    int stream_type;      /* raw PSM stream type of the video stream, -1 until seen */
    const uint8_t *data;  /* elementary stream bytes (Annex B), valid during the callback */
    size_t len;
    bool has_pts;
    uint64_t pts;         /* 90 kHz */
    bool key;             /* an IDR/IRAP NAL is in data (H.264 assumed when codec is unknown) */
    int audio_stream_type; /* the PSM's audio stream type (0x90, 0x91...), -1 when it lists none */
} gb_ps_frame_t;

typedef void (*gb_ps_frame_cb)(void *arg, const gb_ps_frame_t *frame);

/* One audio PES of the stream the PSM lists as audio (0xC0-0xDF): handed up
 * as it comes (a PES is a whole block of samples; nothing is assembled). */
typedef struct {
    int stream_type;      /* raw PSM stream type: 0x90 PCMA, 0x91 PCMU, others passed as is */
    const uint8_t *data;  /* elementary stream bytes, valid during the callback */
    size_t len;
    bool has_pts;
    uint64_t pts;         /* 90 kHz */
} gb_ps_audio_t;

typedef void (*gb_ps_audio_cb)(void *arg, const gb_ps_audio_t *audio);

typedef struct {
    uint64_t bytes_in;
    uint64_t packs, system_headers, psms, pes_video, pes_other;
    uint64_t pes_audio;      /* PES of the PSM's audio stream (handed up when an audio callback is set) */
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
    uint8_t audio_id;        /* PES stream id of the PSM's first audio entry (0xC0-0xDF), 0: none */
    int audio_stream_type;   /* its stream type, -1 until a PSM listed one */
    gb_ps_audio_cb audio_cb;
    void *audio_arg;
    gb_ps_stats_t stats;
} gb_ps_demux_t;

void gb_ps_demux_init(gb_ps_demux_t *d, gb_ps_frame_cb cb, void *arg);
/* Audio PES go to cb from now on (none without it: they are only counted).
 * Only a stream id the PSM lists in 0xC0-0xDF is taken as audio: a PES
 * without a PSM entry says nothing of its codec. */
void gb_ps_demux_set_audio_cb(gb_ps_demux_t *d, gb_ps_audio_cb cb, void *arg);
/* Parses as much as possible; keeps an incomplete tail for the next call.
 * A frame is handed to cb when the next frame's first PES (a PES with a
 * different PTS) arrives, or at gb_ps_demux_flush(). Returns 0, or -1 when
 * memory ran out (the demuxer is then reset and can be fed again). */
int gb_ps_demux_feed(gb_ps_demux_t *d, const uint8_t *data, size_t len);
/* Emits the frame being assembled (end of stream, or the RTP marker bit). */
void gb_ps_demux_flush(gb_ps_demux_t *d);
void gb_ps_demux_free(gb_ps_demux_t *d);

#endif

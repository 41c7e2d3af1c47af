/* hls.h — a live HLS segmenter (RFC 8216): video access units in, MPEG-TS
 * segments and a live media playlist out, for one stream shared by all its
 * HLS viewers.
 *
 * The segmenter owns a bounded ring of the last completed segments and the
 * segment being built; it does no I/O and reads no clock (durations come
 * from the frames' PTS), so the caller feeds it from the demuxer's frame
 * callback and serves its output from the HTTP layer.
 *
 * Segmenting rules:
 *   - a segment always starts with a key frame (TS: PAT/PMT, then the
 *     IDR/IRAP with its parameter sets — see mpegts.h); the caller's key flag
 *     is checked against the AU (it must hold an IDR/IRAP slice); frames
 *     before the first key frame are dropped;
 *   - it ends at the first key frame once it holds target_ms of video, so
 *     its length is a multiple of the camera's GOP (1 s target, 2 s GOP →
 *     2 s segments);
 *   - a segment that reaches max_segment_bytes or max_segment_ms without a
 *     key frame (a camera that never sends one) is closed there, a warning
 *     is logged, and frames are dropped until the next key frame: memory
 *     stays bounded by (ring + 2) x max_segment_bytes (the ring, the segment
 *     being built, one spare buffer) plus the segments viewers still hold;
 *   - a PTS jump (backwards, or forward by more than 5 s) ends the segment
 *     too; the next one, at a key frame, carries EXT-X-DISCONTINUITY.
 *
 * Segments are reference counted: gb_hls_segment_ref() hands out one from
 * the ring, and it stays valid (bytes included) until gb_hls_segment_unref(),
 * even after it rotated out of the ring or the segmenter was freed. Not
 * thread-safe: one event loop owns the segmenter and its segments.
 *
 * Two segment formats: MPEG-TS (mpegts.h; H.264 0x1B, H.265 0x24 — hls.js,
 * VLC, ffplay) and fMP4 (fmp4.h; an init segment with avc1/hvc1 built from
 * the first key frame's parameter sets, then one moof + mdat per segment —
 * what Safari needs for H.265). */
#ifndef CASCADE_MEDIA_HLS_H
#define CASCADE_MEDIA_HLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "media/h264.h"

#define GB_HLS_RING_MIN 3 /* RFC 8216 §6.2.2: a live playlist spans >= 3 target durations */
#define GB_HLS_RING_MAX 32
#define GB_HLS_URI_PREFIX_MAX 128

typedef enum { GB_HLS_TS = 0, GB_HLS_FMP4 } gb_hls_format_t;

#define GB_HLS_MAX_SAMPLES 2048 /* fMP4: frames per segment; more is cut like the byte cap */

typedef struct {
    gb_codec_t codec;         /* H.264 or H.265 */
    gb_hls_format_t format;   /* TS (default) or fMP4 */
    uint32_t target_ms;       /* cut at the first key frame after this; 0 = 1000 */
    unsigned ring;            /* completed segments kept and listed; 0 = 6, clamped to 3..32 */
    size_t max_segment_bytes; /* 0 = 8 MiB; at least 64 KiB */
    uint32_t max_segment_ms;  /* 0 = 30 s */
    const char *uri_prefix;   /* copied; segment URI = prefix + sequence + ".ts" (fMP4: ".m4s",
                                 init segment prefix + "init.mp4"); NULL = "" */
    const char *name;         /* copied; names the stream in log lines; NULL = "hls" */
} gb_hls_cfg_t;

/* One completed segment. Read-only for the caller. */
typedef struct gb_hls_segment {
    uint64_t seq;           /* media sequence number */
    const uint8_t *data;    /* the TS bytes */
    size_t len;
    uint64_t start_pts;     /* 90 kHz, of its first (key) frame; fMP4: its tfdt decode time */
    uint64_t duration;      /* 90 kHz, from the PTS of its frames */
    unsigned frames;
    bool discontinuity;     /* listed after EXT-X-DISCONTINUITY */
    bool cut;               /* closed at a cap or a PTS jump, not at a key frame */
    /* private */
    uint8_t *buf;
    size_t cap;
    unsigned refs;
} gb_hls_segment_t;

typedef struct {
    uint64_t frames_in, frames_muxed;
    uint64_t frames_waiting_key; /* dropped: no segment open (start, or after a cut) */
    uint64_t frames_too_big;     /* dropped: one frame above max_segment_bytes */
    uint64_t segments;           /* completed */
    uint64_t cuts;               /* segments closed without a key frame (cap or PTS jump) */
    uint64_t pts_jumps;
    uint64_t bytes;              /* TS bytes written */
} gb_hls_stats_t;

typedef struct gb_hls gb_hls_t;

/* NULL when the codec is neither H.264 nor H.265, or memory ran out. */
gb_hls_t *gb_hls_new(const gb_hls_cfg_t *cfg);
/* Drops the ring's references; segments still referenced stay alive. */
void gb_hls_free(gb_hls_t *h);

/* What gb_hls_push() did with a frame. */
enum {
    GB_HLS_QUEUED = 0,       /* added to the segment being built */
    GB_HLS_SEGMENT_DONE = 1, /* a segment was completed (this key frame opens the next, if it has a slice) */
    GB_HLS_WAIT_KEY = 2,     /* dropped: waiting for a key frame to open a segment */
    GB_HLS_CUT = 3,          /* the segment was closed at a cap or PTS jump; this frame dropped */
};

/* Feeds one access unit (Annex B). pts is 90 kHz (33 bits used); key is
 * the frame's IDR/IRAP flag (gb_ps_frame_t.key). Returns a GB_HLS_* value,
 * -EINVAL for an empty frame, -EPIPE after gb_hls_end, -ENOMEM when a segment buffer could not grow
 * (the segment being built is then dropped and the next key frame starts
 * over). */
int gb_hls_push(gb_hls_t *h, const uint8_t *au, size_t len, uint64_t pts, bool key);

/* Appends the live media playlist to out. Returns the number of segments
 * listed (0: nothing to play yet — answer 404 or wait), or -ENOMEM. Once
 * ended (gb_hls_end) it closes with EXT-X-ENDLIST, and says
 * EXT-X-PLAYLIST-TYPE:VOD when the ring still holds every segment. */
int gb_hls_playlist(const gb_hls_t *h, sbuf_t *out);

/* The stream ended (a recording played to its end): the segment being
 * built is completed (its last frame counted one frame length), and the
 * playlist becomes final (RFC 8216 §4.3.3.4: no segment will be added).
 * Later pushes return -EPIPE. Returns the segments held. Idempotent. */
int gb_hls_end(gb_hls_t *h);
bool gb_hls_ended(const gb_hls_t *h);

/* The segment with this media sequence number, with a reference taken,
 * or NULL when it is not (or no longer) in the ring. */
gb_hls_segment_t *gb_hls_segment_ref(gb_hls_t *h, uint64_t seq);
void gb_hls_segment_unref(gb_hls_segment_t *s);
/* fMP4: the init segment (seq 0, duration 0), with a reference taken; NULL
 * in TS mode or before the first key frame with parameter sets. */
gb_hls_segment_t *gb_hls_init_ref(gb_hls_t *h);

/* Sequence numbers in the ring: first..last; false when it is empty. */
bool gb_hls_seq_range(const gb_hls_t *h, uint64_t *first, uint64_t *last);
/* Parses a segment URI's last path element ("<prefix><seq>.ts", fMP4 ".m4s") back to seq. */
bool gb_hls_parse_uri(const gb_hls_t *h, const char *name, size_t len, uint64_t *seq);
const gb_hls_stats_t *gb_hls_stats(const gb_hls_t *h);
/* EXT-X-TARGETDURATION in seconds: the longest segment so far, rounded up (at least 1). */
unsigned gb_hls_target_duration(const gb_hls_t *h);

#endif

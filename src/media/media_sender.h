/* media_sender.h — the sending side of GB/T 28181 live video: an H.264 Annex B
 * file played in a loop as MPEG-PS over RTP (PT 96, 90 kHz, SSRC = the SDP
 * y= value), over UDP, TCP active (we connect) or TCP passive (we listen),
 * the TCP ones with RFC 4571 framing. Used by the lower platform role for its
 * local channels and by the device simulator.
 *
 *   struct gb_media_clip *clip = gb_media_clip_load("tests/data/clip.h264", err, sizeof(err));
 *   struct gb_media_sender_config c = {.loop = loop, .timers = &w->timers, .proto = GB_MEDIA_UDP,
 *                                      .local_ip = "127.0.0.1", .ssrc = 100000001, .clip = clip};
 *   transport_addr_parse("127.0.0.1", 9, 30000, &c.remote);
 *   struct gb_media_sender *s = gb_media_sender_new(&c, &cb, obj, &err);
 *   port = gb_media_sender_local_port(s);  // goes into our SDP answer
 *   gb_media_sender_start(s);              // after the ACK
 *   ...
 *   gb_media_sender_free(s);               // no callback after this
 *
 * A clip is read once, cut into access units (frames) and shared by every
 * stream that plays it (reference counted). Frames are paced by a timer in the
 * caller's timer service at the clip's frame rate (from the SPS VUI, 25 when
 * absent); each frame is muxed into one PS pack (system header and PSM on key
 * frames) and cut into RTP packets with the marker on the last. Timestamps
 * keep growing across loops, so a receiver sees one endless stream.
 *
 * With audio set, each frame's pack is followed by G.711 audio covering the
 * frame's time (a 440 Hz tone, 8 kHz mono, in PES of at most 40 ms, each
 * pack of its own with a PTS on the same clock as the video), and the PSM
 * lists it (0x90 A-law, 0x91 µ-law), as GB cameras with a microphone send.
 *
 * Sockets are libuv handles on the caller's loop; gb_media_sender_free()
 * closes them and the memory goes in the close callbacks, so the loop must
 * run once more before it is closed. */
#ifndef CASCADE_MEDIA_MEDIA_SENDER_H
#define CASCADE_MEDIA_MEDIA_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "base/sbuf.h"
#include "base/str.h"
#include "base/timer.h"
#include "media/h264.h"

#define GB_MEDIA_MAX_CLIP (64u << 20)   /* files above 64 MiB are refused */
#define GB_MEDIA_MAX_FRAMES 1000000

struct gb_media_clip;
struct gb_media_sender;

/* Reads and indexes an Annex B file (H.264; H.265 when the first NAL says so).
 * NULL with a reason in err when it cannot be read, is empty, too large, or
 * holds no frame. The result has one reference. */
struct gb_media_clip *gb_media_clip_load(const char *path, char *err, size_t errcap);
/* Same from memory (copied). */
struct gb_media_clip *gb_media_clip_from_buffer(const uint8_t *data, size_t len, char *err, size_t errcap);
void gb_media_clip_ref(struct gb_media_clip *c);
void gb_media_clip_unref(struct gb_media_clip *c);
/* The built-in test clip (tests/data/clip.h264 embedded at build time by cmake/embed.cmake). */
const uint8_t *gb_media_builtin_clip(size_t *len);
double gb_media_clip_fps(const struct gb_media_clip *c);
size_t gb_media_clip_frames(const struct gb_media_clip *c);
gb_codec_t gb_media_clip_codec(const struct gb_media_clip *c);
const char *gb_media_clip_path(const struct gb_media_clip *c);

enum gb_media_proto {
    GB_MEDIA_UDP = 0,
    GB_MEDIA_TCP_ACTIVE,   /* we connect to the remote (peer offered a=setup:passive) */
    GB_MEDIA_TCP_PASSIVE,  /* we listen, the peer connects (peer offered a=setup:active) */
};
const char *gb_media_proto_name(enum gb_media_proto p); /* "udp", "tcp-active", "tcp-passive" */

enum gb_media_audio {
    GB_MEDIA_AUDIO_NONE = 0,
    GB_MEDIA_AUDIO_PCMA,   /* G.711 A-law, PS stream type 0x90 */
    GB_MEDIA_AUDIO_PCMU,   /* G.711 µ-law, 0x91 */
};

struct gb_media_sender_config {
    uv_loop_t *loop;
    struct timer_service *timers;
    /* Called after arming timers (the daemon re-arms its clock source
     * before each loop iteration and may leave it NULL). */
    void (*timers_changed)(void *arg);
    void *timers_arg;
    uint64_t (*now_ms)(void *arg);      /* the timer service's clock; NULL: uv_now(loop) */
    enum gb_media_proto proto;
    const char *local_ip;               /* numeric address to bind */
    struct sockaddr_storage remote;     /* UDP and TCP active: where the media goes */
    uint32_t ssrc;
    uint8_t payload_type;               /* 0: 96 */
    struct gb_media_clip *clip;         /* a reference is taken */
    uint32_t max_queue_bytes;           /* TCP: frames are skipped above it; 0: 2 MiB */
    uint32_t connect_timeout_ms;        /* TCP: connect / accept wait; 0: 10000 */
    bool loop_clip;                     /* false: stop after one pass (on_stopped "end") */
    uint32_t duration_ms;               /* playback: stop after this much media time ("end"); 0: none */
    enum gb_media_audio audio;          /* a test tone beside the video; NONE: video only */
};

struct gb_media_sender_stats {
    uint64_t frames, packets, bytes;    /* sent (RTP bytes, no RFC 4571 prefix) */
    uint64_t audio_pes, audio_samples;  /* G.711 sent with the frames */
    uint64_t frames_skipped;            /* TCP backpressure, UDP send errors */
    uint64_t loops;                     /* full passes over the clip */
    bool started, connected;
};

struct gb_media_sender_cb {
    /* The stream ended on its own: "connect-failed", "accept-timeout",
     * "peer-closed", "write-error", "send-error", "end". The owner frees the
     * sender (gb_media_sender_free) then or later; nothing is sent meanwhile. */
    void (*on_stopped)(void *arg, struct gb_media_sender *s, const char *reason);
};

/* Opens the socket (UDP bound to local_ip:0, TCP passive listening on
 * local_ip:0); TCP active connects at start. NULL with *err a negative libuv
 * code (or -EINVAL for a bad config) on failure. */
struct gb_media_sender *gb_media_sender_new(const struct gb_media_sender_config *cfg,
                                            const struct gb_media_sender_cb *cb, void *arg, int *err);
/* Our port for the SDP answer: the UDP source port or the TCP listening port;
 * 0 for TCP active before it connected. */
uint16_t gb_media_sender_local_port(const struct gb_media_sender *s);
/* Starts sending (UDP at once, TCP active after connecting, TCP passive once
 * the peer connected). 0, or a negative libuv code. Idempotent. */
int gb_media_sender_start(struct gb_media_sender *s);
void gb_media_sender_get_stats(const struct gb_media_sender *s, struct gb_media_sender_stats *out);
enum gb_media_proto gb_media_sender_proto(const struct gb_media_sender *s);
/* Stops and closes; no callback after this. NULL is ignored. */
void gb_media_sender_free(struct gb_media_sender *s);

/* Playback control (GB/T 28181 Annex B, MANSRTSP in INFO). Pause holds the
 * position; resume goes on from it. A scale (0.0625..16) makes media time
 * run that much faster or slower than the wall clock (timestamps keep media
 * time, as a device sends a recording faster). Seek moves to the key frame
 * at or before pos_s seconds into the stream's media time. */
void gb_media_sender_pause(struct gb_media_sender *s);
void gb_media_sender_resume(struct gb_media_sender *s);
int gb_media_sender_set_scale(struct gb_media_sender *s, double scale); /* 0, -EINVAL */
int gb_media_sender_seek(struct gb_media_sender *s, double pos_s);     /* 0, -EINVAL */
bool gb_media_sender_paused(const struct gb_media_sender *s);
/* Applies one MANSRTSP request as a device does: PAUSE pauses; PLAY seeks
 * (Range npt=N-), sets the speed (Scale) and resumes; TEARDOWN changes
 * nothing (the caller ends the stream). 0, or -EINVAL for a seek outside the
 * range (answer 457 Invalid Range). */
struct gb_rtsp_req;
int gb_media_sender_apply(struct gb_media_sender *s, const struct gb_rtsp_req *r);
double gb_media_sender_position(const struct gb_media_sender *s);      /* seconds of media time sent */

/* ---- the SDP of a GB/T 28181 play request (§9.2, Annex F) ---- */

struct gb_media_offer {
    enum gb_media_proto proto;          /* our role: UDP, or TCP active/passive per the offer's a=setup */
    struct sockaddr_storage remote;     /* the offerer's c= address and m= port */
    char remote_text[64];
    bool has_ssrc;
    uint32_t ssrc;                      /* y= as a number */
    char ssrc_text[11];                 /* y= as sent (10 digits) */
    unsigned pt;                        /* the payload type mapped to PS (96 when none is) */
    char session[16];                   /* s=: Play, Playback, Download */
    int64_t start, end;                 /* t= (playback: the recording's range, NTP or Unix seconds); 0 0 live */
    char uri[64];                       /* u= (playback: "<channel-id>:<type>"), "" when absent */
};

/* Reads the offer of an INVITE (content type and body). 0, or the SIP status
 * to refuse with (400 malformed SDP, 488 nothing we can serve) with *why set.
 * TCP roles (RFC 4145): a=setup:active in the offer makes us passive (we
 * listen); passive or absent makes us active (we connect). */
int gb_media_offer_parse(str_t content_type, str_t body, struct gb_media_offer *o, const char **why);
/* Appends our answer: sendonly, PS on the offer's PT, the same s=, t= and
 * y=, our address and port, a=setup/a=connection for TCP. 0, or -1 when out
 * failed. */
int gb_media_answer_sdp(sbuf_t *out, const char *origin_id, const char *ip, uint16_t port,
                        const struct gb_media_offer *o);

#endif
